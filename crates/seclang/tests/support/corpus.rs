//! What the tests that compare outcomes over the WAF corpora share (`memo.rs`,
//! `start_snapshot.rs`, `decided_gates.rs`): the rule sets, the corpus requests, the parts
//! of an [`Outcome`] that must be equal, and evaluating with and without a switch of the
//! engine (`RuleSet::set_start_snapshot`, `RuleSet::set_decided_gates`).

use chatgate_seclang::{
    EvalMemo, FileSystem, LoadOptions, MemoryFiles, Outcome, Request, RuleSet, request::parse_json,
};

/// A switch of the engine that must change no outcome.
pub type Switch = fn(&mut RuleSet, bool);

/// Rules from `text` alone (no files read), for the small rule sets of a test.
pub fn rules_from(text: &str) -> RuleSet {
    RuleSet::from_text(
        &MemoryFiles::default(),
        "rules.conf",
        text,
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `r` evaluated with `switch` on, then off; the switch is left on.
pub fn with_and_without(switch: Switch, rules: &mut RuleSet, r: &Request) -> (Outcome, Outcome) {
    switch(rules, true);
    let with = rules.evaluate(r);
    switch(rules, false);
    let without = rules.evaluate(r);
    switch(rules, true);
    (with, without)
}

/// [`with_and_without`], requiring equal outcomes; returns the one with the switch on.
pub fn same(switch: Switch, rules: &mut RuleSet, r: &Request) -> Outcome {
    let (with, without) = with_and_without(switch, rules, r);
    assert_eq!(key(&with), key(&without), "{} {}", r.method, r.uri);
    with
}

/// Every request of `requests` evaluated under `rules` with `switch` on, off, and on with
/// one memo across the requests; `check` sees each outcome with the switch on. Returns a
/// description of each request whose outcomes differ (`name`: the rule set's).
pub fn differences(
    switch: Switch,
    name: &str,
    rules: &mut RuleSet,
    requests: &[Request],
    mut check: impl FnMut(&Request, &Outcome),
) -> Vec<String> {
    let mut memo = EvalMemo::new();
    let mut failures = Vec::new();
    for r in requests {
        let (with, without) = with_and_without(switch, rules, r);
        let with_memo = rules.evaluate_with(r, &mut memo);
        check(r, &with);
        if key(&with) != key(&without) || key(&with_memo) != key(&without) {
            failures.push(format!(
                "{name}: {} {}\nswitch on:  {:?} score {:?}\nswitch off: {:?} score {:?}",
                r.method,
                r.uri,
                with.matched_ids(),
                with.tx("anomaly_score"),
                without.matched_ids(),
                without.tx("anomaly_score"),
            ));
        }
    }
    failures
}

pub const CRS_ENTRY: &str = "/usr/share/modsecurity-crs/owasp-crs.load";
pub const WAF_RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../components/waf/rules");
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/waf/corpus");

pub fn load(text: &str) -> RuleSet {
    RuleSet::from_text(
        &FileSystem,
        &format!("{WAF_RULES}/memo-test.conf"),
        text,
        LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap_or_else(|e| panic!("the rules do not load ({e}): install Debian's modsecurity-crs"))
}

pub fn paranoia(level: u8) -> String {
    format!("SecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={level}\"")
}

pub fn rule_sets() -> Vec<(String, RuleSet)> {
    vec![
        (
            "CRS PL1".into(),
            load(&format!("{}\nInclude {CRS_ENTRY}\n", paranoia(1))),
        ),
        (
            "CRS PL4".into(),
            load(&format!("{}\nInclude {CRS_ENTRY}\n", paranoia(4))),
        ),
        (
            "chat policy + CRS PL1".into(),
            load(&format!(
                "Include {WAF_RULES}/chat-policy.conf\nInclude {CRS_ENTRY}\n"
            )),
        ),
        (
            "default rules".into(),
            load(&format!("Include {WAF_RULES}/default.conf\n")),
        ),
    ]
}

/// The requests of the corpora, read with the engine's own JSON body processor (each
/// line is one JSON object: `method`, `uri`, `headers` as pairs, `body`).
pub fn corpus() -> Vec<Request> {
    let mut requests = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(CORPUS)
        .expect("tests/waf/corpus")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("corpus file");
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let mut fields = Vec::new();
            parse_json(line.as_bytes(), &mut fields)
                .unwrap_or_else(|e| panic!("{}: {e}: {line}", file.display()));
            let field = |name: &str| {
                fields
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            let mut headers = Vec::new();
            for i in 0.. {
                let name = format!("json.headers.{i}.0");
                if !fields.iter().any(|(k, _)| *k == name) {
                    break;
                }
                headers.push((field(&name), field(&format!("json.headers.{i}.1"))));
            }
            requests.push(Request {
                method: field("json.method"),
                uri: field("json.uri"),
                protocol: "HTTP/1.1".into(),
                headers,
                body: field("json.body").into_bytes(),
                remote_addr: "192.0.2.10".into(),
                remote_port: 40000,
                unique_id: "memo".into(),
            });
        }
    }
    assert!(requests.len() > 1000, "only {} requests", requests.len());
    requests
}

pub fn key(o: &Outcome) -> impl PartialEq + std::fmt::Debug + use<> {
    (
        o.mode,
        o.intervention.clone(),
        o.matches.clone(),
        o.tx.clone(),
        o.body_error.clone(),
    )
}
