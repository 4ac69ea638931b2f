//! Transactions start from the state the request-independent start of phase 1 leaves
//! (CRS's set-up rules), computed once per rule set, instead of running those rules
//! again. That must change no outcome: every request of the WAF corpora is evaluated
//! with and without the snapshot (and with a memo across requests), under CRS PL1 and
//! PL4, CRS behind the chat policy and the default rules, and the whole outcomes
//! (matches with variables and values, TX, intervention) must be equal; small rule
//! sets check where the snapshot must stop.

use chatgate_seclang::{EngineMode, Outcome, Request, RuleSet};

#[path = "support/request.rs"]
mod support_request;
use support_request::request;

#[path = "support/corpus.rs"]
#[allow(dead_code)]
mod support_corpus;
use support_corpus::{Switch, corpus, differences, rule_sets, rules_from as rules};

const SWITCH: Switch = RuleSet::set_start_snapshot;

fn same(rules: &mut RuleSet, r: &Request) -> Outcome {
    support_corpus::same(SWITCH, rules, r)
}

#[test]
fn the_start_snapshot_changes_no_outcome_on_the_corpora() {
    let mut requests = corpus();
    // The chat policy's guard 40110 (a query parameter named like a body field), a check
    // of the snapshot under the policy: where it matches, phase 1 runs from its start.
    requests.push(request(
        "GET",
        "/v1/models?json.messages.0.content=x",
        &[],
        "",
    ));
    let mut failures = Vec::new();
    for (name, mut rules) in rule_sets() {
        let items = rules.start_snapshot_items();
        // CRS's crs-setup.conf and 901 rules, up to the first that reads the request (past
        // the chat policy's guard 40110, a check).
        if name.contains("CRS") {
            assert!(
                items >= 20,
                "{name}: the snapshot covers only {items} items"
            );
        }
        let guard_checked = name.contains("policy");
        failures.extend(differences(
            SWITCH,
            &name,
            &mut rules,
            &requests,
            |r, with| {
                if guard_checked && r.uri.contains("?json.") {
                    assert_eq!(with.blocking().map(|i| i.rule_id), Some(40110));
                }
            },
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn it_stops_at_the_first_rule_that_reads_the_request() {
    // Rule 2 reads a header through a macro: it and everything after it run in every
    // transaction, so rule 3 sees each request's own header.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecAction "id:2,phase:1,pass,nolog,setvar:'tx.host=%{REQUEST_HEADERS.host}'"
SecRule TX:host "@streq evil.example" "id:3,phase:1,deny,status:403"
SecRule TX:a "@eq 1" "id:4,phase:1,pass,nolog,setvar:tx.b=2"
"#,
    );
    assert_eq!(set.start_snapshot_items(), 1);
    let mut evil = request("GET", "/", &[], "");
    evil.headers[0].1 = "evil.example".into();
    let good = request("GET", "/", &[], "");
    assert!(same(&mut set, &evil).blocking().is_some());
    let o = same(&mut set, &good);
    assert!(o.blocking().is_none());
    assert_eq!(o.tx("host"), Some("chat.example"));
    assert_eq!((o.tx("a"), o.tx("b")), (Some("1"), Some("2")));
    assert_eq!(o.matched_ids(), [1, 2, 4]);
}

#[test]
fn a_rule_that_matches_with_a_disruptive_action_is_never_in_it() {
    // Rule 2 matches every request (x is never set) and denies: it must run, and block,
    // in every transaction, in block and detection modes alike.
    let text = r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecRule &TX:x "@eq 0" "id:2,phase:1,deny,status:500"
"#;
    let mut set = rules(text);
    assert_eq!(set.start_snapshot_items(), 1);
    let r = request("GET", "/", &[], "");
    let o = same(&mut set, &r);
    assert_eq!(o.blocking().map(|i| (i.rule_id, i.status)), Some((2, 500)));
    let mut t = set.transaction(&r);
    t.detect_only();
    t.process_request_headers();
    let o = t.finish();
    assert_eq!(o.mode, EngineMode::DetectionOnly);
    assert_eq!(o.intervention.as_ref().map(|i| i.rule_id), Some(2));
    assert_eq!(o.matched_ids(), [1, 2]);

    // One that does not match is passed over, as CRS's 901001 is when crs-setup.conf
    // sets its version.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.x=1"
SecRule &TX:x "@eq 0" "id:2,phase:1,deny,status:500"
SecRule REQUEST_URI "@contains attack" "id:3,phase:1,deny,status:403"
"#,
    );
    // Rule 3, a guard that reads only the request, is in it as a check.
    assert_eq!(set.start_snapshot_items(), 3);
    assert!(
        same(&mut set, &request("GET", "/", &[], ""))
            .blocking()
            .is_none()
    );
    let o = same(&mut set, &request("GET", "/attack", &[], ""));
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(3));
}

#[test]
fn a_ctl_allow_or_skip_after_is_honoured() {
    // A `ctl` in the snapshot is run again by every transaction: its exclusions are in
    // force in each, and rules it removes stay removed.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecAction "id:2,phase:1,pass,nolog,ctl:ruleRemoveById=3,ctl:ruleRemoveTargetById=5;ARGS:q"
SecRule REQUEST_URI "@contains a" "id:3,phase:1,deny,status:403"
SecRule ARGS "@contains x" "id:5,phase:2,deny,status:403"
"#,
    );
    assert_eq!(set.start_snapshot_items(), 2);
    assert!(
        same(&mut set, &request("GET", "/a", &[], ""))
            .blocking()
            .is_none()
    );
    assert!(
        same(&mut set, &request("GET", "/?q=x", &[], ""))
            .blocking()
            .is_none()
    );
    let o = same(&mut set, &request("GET", "/?p=x", &[], ""));
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(5));

    // One that changes the engine's mode ends the snapshot (a caller's detection-only
    // mode would be overwritten differently).
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecAction "id:2,phase:1,pass,nolog,ctl:ruleEngine=DetectionOnly"
SecRule REQUEST_URI "@contains a" "id:3,phase:1,deny,status:403"
"#,
    );
    assert_eq!(set.start_snapshot_items(), 1);
    let o = same(&mut set, &request("GET", "/a", &[], ""));
    assert!(o.blocking().is_none() && o.intervention.is_some());

    // `allow` ends the phases: never in the snapshot.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,allow,nolog"
SecRule REQUEST_URI "@contains a" "id:3,phase:2,deny,status:403"
"#,
    );
    assert_eq!(set.start_snapshot_items(), 0);
    assert!(
        same(&mut set, &request("GET", "/a", &[], ""))
            .blocking()
            .is_none()
    );

    // A `skipAfter` in the snapshot jumps over a rule that reads the request; the
    // transaction goes on after the marker.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.pl=1"
SecRule TX:pl "@lt 2" "id:2,phase:1,pass,nolog,skipAfter:END-PL"
SecRule REQUEST_URI "@contains a" "id:3,phase:1,deny,status:403"
SecMarker END-PL
SecRule REQUEST_URI "@contains b" "id:4,phase:1,deny,status:403"
"#,
    );
    // Rule 3 is never visited; rule 4, a guard, is a check.
    assert_eq!(set.start_snapshot_items(), 5);
    assert!(
        same(&mut set, &request("GET", "/a", &[], ""))
            .blocking()
            .is_none()
    );
    let o = same(&mut set, &request("GET", "/b", &[], ""));
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(4));
    assert_eq!(o.matched_ids(), [1, 2, 4]);
}

#[test]
fn an_engine_turned_off_runs_nothing() {
    let mut set = rules(
        r#"SecRuleEngine Off
SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
"#,
    );
    assert_eq!(set.start_snapshot_items(), 0);
    let o = same(&mut set, &request("GET", "/", &[], ""));
    assert!(o.matches.is_empty() && o.tx.is_empty());
}

#[test]
fn a_guard_that_reads_the_request_is_checked_first() {
    // Rule 2 (as the chat policy's 40110) reads the request, before more set-up: the
    // snapshot goes past it, and each transaction runs it first. Where it matches, phase
    // 1 runs from its start instead: the deny, and nothing of the set-up after it.
    // Rule 4 reads the request but passes: the snapshot ends there.
    let text = r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecRule ARGS_GET_NAMES "@rx ^json\." "id:2,phase:1,deny,status:403,setvar:tx.guard=1"
SecAction "id:3,phase:1,pass,nolog,setvar:tx.b=2"
SecRule REQUEST_HEADERS:User-Agent "@rx ." "id:4,phase:1,pass,nolog,setvar:'tx.ua=%{MATCHED_VAR}'"
SecRule TX:b "@eq 2" "id:5,phase:1,pass,nolog,setvar:tx.c=3"
SecRule TX:guard "@eq 1" "id:6,phase:5,pass,log"
"#;
    let mut set = rules(text);
    assert_eq!(set.start_snapshot_items(), 3);
    let o = same(&mut set, &request("GET", "/?q=1", &[], ""));
    assert!(o.blocking().is_none());
    assert_eq!(o.matched_ids(), [1, 3, 4, 5]);
    assert_eq!(
        (o.tx("b"), o.tx("c"), o.tx("guard")),
        (Some("2"), Some("3"), None)
    );
    let o = same(
        &mut set,
        &request("GET", "/?json.messages.0.content=x", &[], ""),
    );
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(2));
    assert_eq!(o.matched_ids(), [1, 2, 6]);
    assert_eq!((o.tx("b"), o.tx("guard")), (None, Some("1")));

    // A chain whose first link matches and second does not still changes MATCHED_VAR
    // and runs the first link's setvars: such a transaction does not use the snapshot.
    let mut set = rules(
        r#"SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1"
SecRule ARGS_GET_NAMES "@rx ^x" "id:2,phase:1,deny,status:403,setvar:tx.first=1,chain"
    SecRule ARGS_GET "@streq never" "t:none"
SecAction "id:3,phase:1,pass,nolog,setvar:'tx.last=%{MATCHED_VAR}'"
"#,
    );
    assert_eq!(set.start_snapshot_items(), 3);
    let o = same(&mut set, &request("GET", "/?xq=1", &[], ""));
    assert!(o.blocking().is_none());
    assert_eq!((o.tx("first"), o.tx("last")), (Some("1"), Some("xq")));
    let o = same(&mut set, &request("GET", "/?q=1", &[], ""));
    assert_eq!((o.tx("first"), o.tx("last")), (None, Some("")));
}
