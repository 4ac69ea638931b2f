//! Rules after the start snapshot that read only `TX` members no rule outside the
//! snapshot can write (CRS's paranoia-level and exclusion gates) are decided once per
//! rule set instead of running their links in every transaction. That must change no
//! outcome: every request of the WAF corpora is evaluated with and without the
//! decisions (and with a memo across requests), under CRS PL1 and PL4, CRS behind the
//! chat policy and the default rules, and the whole outcomes (matches with variables
//! and values, TX, intervention) must be equal; small rule sets check what must stay
//! undecided or be honoured at run time, and a property test compares random rule sets.

use chatgate_seclang::{Outcome, Request, RuleSet};
use proptest::prelude::*;

#[path = "support/request.rs"]
mod support_request;
use support_request::request;

#[path = "support/corpus.rs"]
#[allow(dead_code)]
mod support_corpus;
use support_corpus::{Switch, corpus, differences, key, rule_sets, rules_from as rules};

const SWITCH: Switch = RuleSet::set_decided_gates;

fn both(rules: &mut RuleSet, r: &Request) -> (Outcome, Outcome) {
    support_corpus::with_and_without(SWITCH, rules, r)
}

fn same(rules: &mut RuleSet, r: &Request) -> Outcome {
    support_corpus::same(SWITCH, rules, r)
}

#[test]
fn decided_gates_change_no_outcome_on_the_corpora() {
    let mut requests = corpus();
    requests.push(request(
        "GET",
        "/v1/models?json.messages.0.content=x",
        &[],
        "",
    ));
    let mut failures = Vec::new();
    for (name, mut rules) in rule_sets() {
        let decided = rules.decided_rules();
        // CRS's paranoia-level gates (two per file and phase at least) and the
        // application-exclusion gates.
        eprintln!("{name}: {decided} rules decided");
        if name.contains("CRS") {
            assert!(decided >= 60, "{name}: only {decided} rules decided");
        }
        failures.extend(differences(SWITCH, &name, &mut rules, &requests, |_, _| {}));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_member_a_later_rule_can_write_is_not_decided() {
    // Rule 2 reads the request and ends the snapshot; it writes `tx.pl`, so rule 3's
    // gate reads what each request made of it. Rule 4 reads `tx.x`, written only in the
    // snapshot: decided, and it skips rule 5 in every request.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1,setvar:tx.x=1"
SecRule REQUEST_URI "@contains high" "id:2,phase:1,pass,nolog,setvar:tx.pl=3"
SecRule TX:pl "@lt 2" "id:3,phase:1,pass,nolog,skipAfter:END-PL"
SecRule REQUEST_URI "@contains a" "id:6,phase:1,pass,log,setvar:tx.hit=1"
SecMarker END-PL
SecRule TX:x "@eq 1" "id:4,phase:2,pass,nolog,skipAfter:END-X"
SecRule REQUEST_URI "@contains a" "id:5,phase:2,deny,status:403"
SecMarker END-X
"#,
    );
    assert_eq!(set.decided_rules(), 1);
    let o = same(&mut set, &request("GET", "/a", &[], ""));
    assert_eq!(o.matched_ids(), [1, 3, 4]);
    let o = same(&mut set, &request("GET", "/high/a", &[], ""));
    assert_eq!(o.matched_ids(), [1, 2, 6, 4]);
    assert_eq!(o.tx("hit"), Some("1"));
    assert!(o.blocking().is_none());
}

#[test]
fn a_chain_that_fails_on_its_gate_is_decided_whatever_its_later_links_read() {
    // Rule 10's first link reads `tx.max` (unset: no value, no match), its second the
    // request: decided unmatched, as CRS's `TX:max_num_args "@eq 1"` before `&ARGS`.
    // Rule 11's first link matches: its second link reads the request, so it is not
    // decided. Rule 12's gate fails on its second link, also a gate: decided.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.on=1"
SecRule REQUEST_URI "@contains z" "id:2,phase:1,pass,nolog,setvar:tx.z=1"
SecRule TX:max "@eq 1" "id:10,phase:2,deny,status:403,chain"
    SecRule &ARGS "@gt 0" "t:none"
SecRule TX:on "@eq 1" "id:11,phase:2,pass,log,chain"
    SecRule ARGS:a "@streq b" "t:none,setvar:tx.hit=1"
SecRule TX:on "@eq 1" "id:12,phase:2,deny,status:403,chain"
    SecRule TX:on "@eq 2" "chain"
    SecRule REQUEST_URI "@contains a" "t:none"
SecAction "id:20,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
"#,
    );
    assert_eq!(set.decided_rules(), 2);
    let o = same(&mut set, &request("GET", "/a?a=b&max=1", &[], ""));
    assert_eq!(o.matched_ids(), [1, 11, 20]);
    assert_eq!(o.tx("hit"), Some("1"));
    assert!(o.blocking().is_none());
    let o = same(&mut set, &request("GET", "/a?a=c", &[], ""));
    assert_eq!(o.matched_ids(), [1, 20]);
    let m = o.matches.iter().find(|m| m.id == 20).expect("20 matched");
    assert_eq!(m.logdata.as_deref(), Some("TX:on=1"));
}

#[test]
fn keys_with_macros_and_captures_count_as_writes() {
    // Rule 2 writes `tx.header_name_<name>` (as CRS's 920450): a gate reading any member
    // starting with `header_name_` stays undecided, one reading `tx.other` is decided.
    // Rule 3 captures into TX:0 to TX:9: a gate reading `TX:1` stays undecided.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.header_name_host=1,setvar:tx.other=1,setvar:tx.1=z"
SecRule REQUEST_HEADERS_NAMES "@rx ^(.*)$" "id:2,phase:1,pass,nolog,capture,setvar:'tx.header_name_%{tx.1}=/%{tx.1}/'"
SecRule TX:header_name_host "@eq 1" "id:10,phase:2,pass,log"
SecRule TX:other "@eq 1" "id:11,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule TX:1 "@streq z" "id:12,phase:2,pass,log"
SecRule &TX:header_name_host|TX:header_name_host "@ge 1" "id:13,phase:2,pass,log"
"#,
    );
    assert_eq!(set.decided_rules(), 1);
    let o = same(&mut set, &request("GET", "/", &[], ""));
    assert_eq!(o.matched_ids(), [1, 2, 11, 13]);
    let m = o.matches.iter().find(|m| m.id == 11).expect("11 matched");
    assert_eq!(m.logdata.as_deref(), Some("TX:other=1"));
}

#[test]
fn chains_leave_matched_var_as_their_links_do() {
    // Rule 10's first link matches and its second does not; rule 11's both match: what
    // each leaves in MATCHED_VAR is what the next rule's logdata reads.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1,setvar:tx.b=2"
SecRule REQUEST_URI "@contains z" "id:2,phase:1,pass,nolog,setvar:tx.z=1"
SecRule TX:a "@eq 1" "id:10,phase:2,pass,nolog,chain"
    SecRule TX:b "@eq 3" "t:none"
SecAction "id:20,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
SecRule TX:b "@eq 2" "id:11,phase:2,pass,log,chain"
    SecRule &TX:a|TX:a "@ge 1" "t:none"
SecAction "id:21,phase:2,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
"#,
    );
    assert_eq!(set.decided_rules(), 2);
    let o = same(&mut set, &request("GET", "/", &[], ""));
    assert_eq!(o.matched_ids(), [1, 20, 11, 21]);
    let logdata = |id| {
        o.matches
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| m.logdata.clone())
    };
    assert_eq!(logdata(20).as_deref(), Some("TX:a=1"));
    assert_eq!(logdata(21).as_deref(), Some("TX:a=1"));
    let m = o.matches.iter().find(|m| m.id == 11).expect("11 matched");
    assert_eq!(m.matched_vars, ["&TX", "TX:a"]);
}

#[test]
fn exclusions_at_run_time_are_honoured() {
    // A request-dependent rule removes a decided gate (by id, by tag) or its target: the
    // transaction runs without it, or runs its link.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1,setvar:tx.ex=0"
SecRule REQUEST_URI "@contains rm-id" "id:2,phase:1,pass,nolog,ctl:ruleRemoveById=10"
SecRule REQUEST_URI "@contains rm-tag" "id:3,phase:1,pass,nolog,ctl:ruleRemoveByTag=gate"
SecRule REQUEST_URI "@contains rm-target" "id:4,phase:1,pass,nolog,ctl:ruleRemoveTargetById=11;TX:ex"
SecRule TX:pl "@lt 2" "id:10,phase:2,pass,nolog,tag:'gate',skipAfter:END"
SecRule &TX:ex|TX:ex "@ge 0" "id:11,phase:2,pass,log"
SecRule REQUEST_URI "@contains /" "id:12,phase:2,deny,status:403"
SecMarker END
"#,
    );
    assert_eq!(set.decided_rules(), 2);
    let o = same(&mut set, &request("GET", "/x", &[], ""));
    assert_eq!(o.matched_ids(), [1, 10]);
    assert!(o.blocking().is_none());
    let o = same(&mut set, &request("GET", "/rm-id", &[], ""));
    assert_eq!(o.matched_ids(), [1, 2, 11, 12]);
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(12));
    let m = o.matches.iter().find(|m| m.id == 11).expect("11 matched");
    assert_eq!(m.matched_vars, ["&TX", "TX:ex"]);
    let o = same(&mut set, &request("GET", "/rm-tag", &[], ""));
    assert_eq!(o.matched_ids(), [1, 3, 11, 12]);
    let o = same(&mut set, &request("GET", "/rm-id/rm-target", &[], ""));
    let m = o.matches.iter().find(|m| m.id == 11).expect("11 matched");
    assert_eq!(m.matched_vars, ["&TX"]);
}

#[test]
fn a_guard_that_matched_leaves_the_decisions_unused() {
    // The chat policy's kind of guard, checked before the snapshot: where it matches,
    // phase 1 runs from its start (detection only: on through phase 2), and the gate
    // runs its link.
    let mut set = rules(
        r#"SecRuleEngine DetectionOnly
SecRule ARGS_GET_NAMES "@rx ^json\." "id:1,phase:1,deny,status:403"
SecAction "id:2,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule REQUEST_URI "@contains a" "id:3,phase:1,pass,nolog"
SecRule TX:pl "@lt 2" "id:10,phase:2,pass,log"
"#,
    );
    assert_eq!(set.decided_rules(), 1);
    let o = same(&mut set, &request("GET", "/a?json.x=1", &[], ""));
    assert_eq!(o.matched_ids(), [1, 2, 3, 10]);
    let o = same(&mut set, &request("GET", "/a?x=1", &[], ""));
    assert_eq!(o.matched_ids(), [2, 3, 10]);
}

/// A member name among a few (some written in the snapshot only, some also by a rule
/// that reads the request, one through a key with a macro).
fn member() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("a"),
        Just("b"),
        Just("c"),
        Just("pre_x"),
        Just("pre_y"),
        Just("1")
    ]
}

fn operator() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        Just("@lt 2"),
        Just("@eq 0"),
        Just("@ge 1"),
        Just("@streq 1")
    ]
}

fn gate() -> impl Strategy<Value = String> {
    (
        member(),
        member(),
        operator(),
        any::<bool>(),
        any::<bool>(),
        0u8..3,
        proptest::option::of((member(), operator())),
    )
        .prop_map(|(m, m2, op, count, two, action, chained)| {
            let targets = match (count, two) {
                (true, true) => format!("&TX:{m}|TX:{m2}"),
                (true, false) => format!("&TX:{m}"),
                (false, true) => format!("TX:{m}|TX:{m2}"),
                (false, false) => format!("TX:{m}"),
            };
            let action = match action {
                0 => "pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'",
                1 => "pass,nolog,skipAfter:END",
                _ => "pass,nolog,skip:1",
            };
            match chained {
                None => format!("SecRule {targets} \"{op}\" \"ID,phase:PHASE,{action}\""),
                Some((m3, op2)) => format!(
                    "SecRule {targets} \"{op}\" \"ID,phase:PHASE,{action},chain\"\n    SecRule TX:{m3} \"{op2}\" \"t:none\""
                ),
            }
        })
}

fn request_rule() -> impl Strategy<Value = String> {
    (member(), 0u8..4, prop_oneof![Just("x"), Just("y")]).prop_map(|(m, what, word)| {
        let action = match what {
            0 => format!("setvar:tx.{m}=2"),
            1 => format!("setvar:!tx.{m}"),
            2 => "ctl:ruleRemoveTargetById=1000-1999;TX:a".into(),
            _ => "setvar:'tx.pre_%{REQUEST_METHOD}=1'".into(),
        };
        format!("SecRule REQUEST_URI \"@contains {word}\" \"ID,phase:PHASE,pass,nolog,{action}\"")
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_gates_decide_as_their_links(
        setup in proptest::collection::vec((member(), 0u8..3), 1..5),
        body in proptest::collection::vec(
            prop_oneof![
                gate(),
                gate(),
                request_rule(),
                // What the rule before left in MATCHED_VAR.
                Just("SecAction \"ID,phase:PHASE,pass,log,logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'\"".to_string()),
            ], 1..10),
        phases in proptest::collection::vec(1u8..3, 10),
    ) {
        let mut text = String::new();
        for (n, (m, v)) in setup.iter().enumerate() {
            text += &format!("SecAction \"id:{},phase:1,pass,nolog,setvar:tx.{m}={v}\"\n", n + 1);
        }
        // The first rule of the body reads the request, ending the snapshot.
        text += "SecRule REQUEST_URI \"@contains z\" \"id:99,phase:1,pass,nolog,setvar:tx.z=1\"\n";
        for (n, rule) in body.iter().enumerate() {
            let phase = phases[n].to_string();
            text += &rule
                .replace("ID", &format!("id:{}", 1000 + n))
                .replace("PHASE", &phase);
            text += "\n";
        }
        text += "SecMarker END\n";
        let mut set = rules(&text);
        for uri in ["/", "/x", "/y", "/xy", "/z"] {
            let r = request("GET", uri, &[], "");
            let (with, without) = both(&mut set, &r);
            prop_assert_eq!(key(&with), key(&without), "{}\n{}", text, uri);
        }
    }
}
