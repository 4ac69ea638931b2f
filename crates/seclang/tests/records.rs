//! Match records are written compactly during a transaction (rule data shared with the
//! rule set, names and values in two buffers, the start snapshot's records shared) and
//! made into `RuleMatch`es when read: what is read must be what each rule matched.

use chatgate_seclang::{LoadOptions, MemoryFiles, Outcome, Request, RuleMatch, RuleSet};

const RULES: &str = r#"
SecAction "id:1,phase:1,pass,nolog,msg:'setup',tag:'setup',setvar:tx.level=1"
SecRule TX:level "@lt 2" "id:2,phase:1,pass,nolog"
SecRule ARGS "@rx ^(?:a|b)" "id:3,phase:1,pass,log,msg:'starts %{MATCHED_VAR_NAME}',logdata:'%{MATCHED_VAR}',tag:'one',tag:'two',severity:2"
SecRule ARGS_NAMES "@streq q" "id:4,phase:1,pass,nolog,chain"
    SecRule ARGS:q "@rx ^a" "t:none"
SecRule REQUEST_METHOD "@streq GET" "id:5,phase:1,pass,nolog"
"#;

fn evaluate(snapshot: bool) -> Outcome {
    let mut rules = RuleSet::from_text(
        &MemoryFiles::default(),
        "/t.conf",
        RULES,
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    rules.set_start_snapshot(snapshot);
    let long = "a".repeat(300);
    rules.evaluate(&Request {
        method: "GET".into(),
        uri: format!("/?q={long}&r=b2&s=c"),
        protocol: "HTTP/1.1".into(),
        headers: vec![("Host".into(), "example".into())],
        ..Request::default()
    })
}

fn record(
    id: u64,
    msg: Option<&str>,
    logdata: Option<&str>,
    tags: &[&str],
    log: bool,
    vars: &[(&str, &[u8])],
) -> RuleMatch {
    RuleMatch {
        id,
        phase: 1,
        msg: msg.map(str::to_owned),
        logdata: logdata.map(str::to_owned),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        severity: (id == 3).then_some(2),
        log,
        matched_vars: vars.iter().map(|(n, _)| n.to_string()).collect(),
        matched_values: vars.iter().map(|(_, v)| v.to_vec()).collect(),
    }
}

#[test]
fn records_read_as_the_rules_matched_them_with_and_without_the_snapshot() {
    let long = vec![b'a'; 256];
    let expected = vec![
        record(1, Some("setup"), None, &["setup"], false, &[]),
        record(2, None, None, &[], false, &[("TX:level", b"1")]),
        record(
            3,
            Some("starts ARGS:r"),
            Some("b2"),
            &["one", "two"],
            true,
            &[("ARGS:q", &long), ("ARGS:r", b"b2")],
        ),
        record(4, None, None, &[], false, &[("ARGS:q", &long)]),
        record(5, None, None, &[], false, &[("REQUEST_METHOD", b"GET")]),
    ];
    for snapshot in [true, false] {
        let o = evaluate(snapshot);
        // Answered from the compact records, before the slice is made.
        assert!(o.matches.any_logged());
        assert_eq!(o.matched_ids(), [1, 2, 3, 4, 5]);
        assert_eq!(o.matches.len(), 5);
        assert_eq!(&o.matches[..], &expected[..], "snapshot {snapshot}");
        // The same once made, and by value.
        assert_eq!(o.matched_ids(), [1, 2, 3, 4, 5]);
        assert_eq!(o.clone().matches.into_vec(), expected);
    }
}

#[test]
fn an_outcome_without_logged_matches_says_so_without_making_records() {
    let rules = RuleSet::from_text(
        &MemoryFiles::default(),
        "/t.conf",
        r#"SecRule REQUEST_METHOD "@streq GET" "id:1,phase:1,pass,nolog""#,
        LoadOptions::default(),
    )
    .unwrap();
    let o = rules.evaluate(&Request {
        method: "GET".into(),
        uri: "/".into(),
        protocol: "HTTP/1.1".into(),
        ..Request::default()
    });
    assert!(!o.matches.any_logged());
    assert_eq!(o.matched_ids(), [1]);
}
