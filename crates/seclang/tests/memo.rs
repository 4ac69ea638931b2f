//! The memo across requests (`EvalMemo`) only saves work: it must never change a verdict.
//! Every request of the WAF corpora (`tests/waf/corpus/*.jsonl`: attacks of every
//! family, benign technical chats, prompt injections) and generated attacks are evaluated
//! with one memo shared by all of them, twice over (the second time every value has been
//! seen), and without a memo; the whole outcomes must be equal: matched rules with their
//! variables and values, the TX collection (anomaly scores), the intervention. Rule sets:
//! CRS 3.3 at paranoia levels 1 and 4, CRS behind the component's prompt-field policy,
//! and chatgate's default rules.

use chatgate_seclang::{
    EvalMemo, FileSystem, LoadOptions, MEMO_VALUE_LIMIT, MEMO_VALUES, Request, RuleSet,
};
use proptest::prelude::*;

#[path = "support/request.rs"]
mod support_request;
use support_request::request;

#[path = "support/corpus.rs"]
#[allow(dead_code)]
mod support_corpus;
use support_corpus::{CRS_ENTRY, WAF_RULES, corpus, key, load, paranoia, rule_sets};

fn same(rules: &RuleSet, memo: &mut EvalMemo, r: &Request) -> Result<bool, String> {
    let with = rules.evaluate_with(r, memo);
    let without = rules.evaluate(r);
    if key(&with) == key(&without) {
        Ok(without.blocking().is_some())
    } else {
        Err(format!(
            "{} {} {:?}\nwith the memo:    {:?} score {:?}\nwithout the memo: {:?} score {:?}",
            r.method,
            r.uri,
            String::from_utf8_lossy(&r.body),
            with.matched_ids(),
            with.tx("anomaly_score"),
            without.matched_ids(),
            without.tx("anomaly_score"),
        ))
    }
}

#[test]
fn memo_changes_no_verdict_on_the_corpora() {
    let requests = corpus();
    let mut failures = Vec::new();
    for (name, rules) in rule_sets() {
        let mut memo = EvalMemo::new();
        let mut blocked = 0;
        // Twice over: the second pass finds every value of the corpora in the memo (as
        // far as it holds them), attacks and benign alike.
        for pass in 0..2 {
            for r in &requests {
                match same(&rules, &mut memo, r) {
                    Ok(b) => blocked += usize::from(b && pass == 0),
                    Err(e) => failures.push(format!("{name}, pass {pass}: {e}")),
                }
            }
        }
        assert!(!memo.is_empty(), "{name}: the memo was never used");
        // The corpora must exercise the rules, not only pass through them.
        assert!(
            blocked * 4 > requests.len(),
            "{name}: only {blocked} blocked"
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// A value that matches no rule in one place and one that does elsewhere: a value
/// remembered as not matching some links must still match the links it does match, in
/// any variable, and a matching value is never remembered as not matching.
#[test]
fn a_value_seen_harmless_still_matches_where_it_is_an_attack() {
    let rules = load(&format!("{}\nInclude {CRS_ENTRY}\n", paranoia(1)));
    let attack = "1' UNION SELECT password FROM users--";
    let encoded = "1%27%20UNION%20SELECT%20password%20FROM%20users--";
    let chat = |content: &str| {
        request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            &format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{content}"}}]}}"#),
        )
    };
    let mut memo = EvalMemo::new();
    // Seen first where no rule looks for SQL (a header CRS does not inspect for it)...
    let harmless = request("GET", "/", &[("X-Note", attack)], "");
    same(&rules, &mut memo, &harmless).unwrap();
    // ... then where it is an attack: the query, a JSON field, a cookie.
    for r in [
        request("GET", &format!("/search?q={encoded}"), &[], ""),
        chat(attack),
        request("GET", "/", &[("Cookie", &format!("s={encoded}"))], ""),
    ] {
        for _ in 0..2 {
            assert!(
                same(&rules, &mut memo, &r).unwrap(),
                "{} not blocked",
                r.uri
            );
        }
    }
}

/// The memo is bounded: it never keeps values longer than [`MEMO_VALUE_LIMIT`], is
/// emptied when a transaction starts with more than [`MEMO_VALUES`] values in it, and
/// is emptied when given to another rule set.
#[test]
fn memo_is_bounded_and_belongs_to_one_rule_set() {
    let rules = load(&format!("Include {WAF_RULES}/default.conf\n"));
    let other = load(&format!("Include {WAF_RULES}/default.conf\n"));
    let mut memo = EvalMemo::new();
    let long = "a".repeat(MEMO_VALUE_LIMIT + 1);
    rules.evaluate_with(&request("GET", &format!("/?q={long}"), &[], ""), &mut memo);
    let after_one = memo.len();
    assert!(after_one > 0);
    let mut n = 0;
    while memo.len() <= MEMO_VALUES {
        let query: String = (0..50).map(|i| format!("k{n}x{i}=v{n}y{i}&")).collect();
        rules.evaluate_with(&request("GET", &format!("/?{query}"), &[], ""), &mut memo);
        n += 1;
        assert!(n < 1000, "the memo does not grow");
    }
    // Full: the next transaction starts with an empty memo.
    rules.evaluate_with(&request("GET", "/", &[], ""), &mut memo);
    assert!(memo.len() < after_one + 50, "{} values kept", memo.len());
    // Another rule set starts afresh too.
    rules.evaluate_with(&request("GET", "/?a=b", &[], ""), &mut memo);
    let before = memo.len();
    other.evaluate_with(&request("GET", "/", &[], ""), &mut memo);
    assert!(memo.len() <= before, "{} then {}", before, memo.len());
    assert!(
        same(
            &other,
            &mut memo,
            &request("GET", &format!("/?q={long}"), &[], "")
        )
        .is_ok()
    );
}

/// Pieces attacks are made of, joined at random.
fn fragment() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "select", "UNION", " ", "%20", "'", "\"", "--", "/*", "*/", "#", "<", ">", "script", "on",
        "error=", "alert(", ")", "../", "..\\", "/etc/", "passwd", ";", "|", "`", "$(", "${",
        "jndi:", "php", "<?", "=", "&#", "x3c;", "\\u00", "%u", "%2e", "%00", "cmd", "exec",
        "eval(", "http://", "sleep(", "1=1", "or ", "and ", "&&", "A", "9", "é", "+", "sh", "ls",
        "from", "where", "char(",
    ])
    .prop_map(str::to_owned)
}

fn placements(payload: &str) -> Vec<Request> {
    let encoded: String = payload
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let json = payload.replace('\\', "\\\\").replace('"', "\\\"");
    let chat = |body: String| {
        request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            &body,
        )
    };
    vec![
        // Where the prompt-field policy takes it from most rules, then where it does not:
        // what was learnt about it as a message must not hide it as a model name.
        chat(format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":"{json}"}}]}}"#
        )),
        chat(format!(
            r#"{{"messages":[{{"role":"user","content":"{json}"}}],"model":"{json}"}}"#
        )),
        chat(format!(
            r#"{{"model":"{json}","messages":[{{"role":"user","content":"hi"}}]}}"#
        )),
        request("GET", &format!("/search?q={encoded}"), &[], ""),
        request("GET", &format!("/search?{encoded}=1"), &[], ""),
        request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            &format!(r#"{{"model":"{json}","messages":[{{"role":"user","content":"{json}"}}]}}"#),
        ),
        request(
            "GET",
            "/",
            &[("User-Agent", payload), ("Referer", payload)],
            "",
        ),
        request("GET", "/", &[("Cookie", &format!("s={encoded}"))], ""),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// The same payload in every placement, through one memo that lives across cases.
    #[test]
    fn memo_changes_no_verdict_on_generated_attacks(
        pieces in prop::collection::vec(fragment(), 1..10),
    ) {
        static STATE: std::sync::OnceLock<std::sync::Mutex<Vec<(String, RuleSet, EvalMemo)>>> =
            std::sync::OnceLock::new();
        let state = STATE.get_or_init(|| {
            std::sync::Mutex::new(
                rule_sets()
                    .into_iter()
                    .map(|(name, rules)| (name, rules, EvalMemo::new()))
                    .collect(),
            )
        });
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        let payload = pieces.concat();
        for (name, rules, memo) in state.iter_mut() {
            for r in placements(&payload) {
                if let Err(e) = same(rules, memo, &r) {
                    prop_assert!(false, "{name}: {e}");
                }
            }
        }
    }
}

/// Operators whose parameter has macros depend on the transaction, not on the value
/// alone: their answers are not remembered. Here the same argument value does not match
/// in one request and matches in the next, because a header changed the parameter.
#[test]
fn operators_with_macros_are_not_remembered() {
    let rules = RuleSet::from_text(
        &FileSystem,
        "/test/memo.conf",
        r#"
SecRule REQUEST_HEADERS:X-List "@rx ." "id:1,phase:1,pass,nolog,setvar:tx.list=%{MATCHED_VAR}"
SecRule ARGS "@within %{tx.list}" "id:2,phase:2,deny,status:403"
SecRule ARGS "@rx ^%{tx.list}$" "id:3,phase:2,pass,log"
"#,
        LoadOptions::default(),
    )
    .unwrap();
    let mut memo = EvalMemo::new();
    let ask = |list: &str, memo: &mut EvalMemo| {
        let r = request("GET", "/?a=zzz", &[("X-List", list)], "");
        let outcome = rules.evaluate_with(&r, memo);
        assert_eq!(key(&outcome), key(&rules.evaluate(&r)));
        outcome.matched_ids()
    };
    assert_eq!(ask("abc", &mut memo), vec![1]);
    assert_eq!(ask("zzz", &mut memo), vec![1, 2]);
    assert_eq!(ask("abc", &mut memo), vec![1]);
}
