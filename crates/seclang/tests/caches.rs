//! What a transaction remembers to go faster must never leak: transformed values between
//! variables or transformation lists (`t:none` resets), regular-expression selector
//! answers between keys, the prefilter's candidates between phases.

use chatgate_seclang::{LoadOptions, MemoryFiles, Request, RuleSet};

fn rules(text: &str) -> RuleSet {
    RuleSet::from_text(
        &MemoryFiles::default(),
        "/t.conf",
        text,
        LoadOptions::default(),
    )
    .unwrap()
}

fn request(uri: &str, body: &str) -> Request {
    let mut headers = vec![("Host".to_string(), "example".to_string())];
    if !body.is_empty() {
        headers.push((
            "Content-Type".to_string(),
            "application/x-www-form-urlencoded".to_string(),
        ));
    }
    Request {
        method: if body.is_empty() { "GET" } else { "POST" }.into(),
        uri: uri.into(),
        protocol: "HTTP/1.1".into(),
        headers,
        body: body.as_bytes().to_vec(),
        ..Request::default()
    }
}

/// The matched rule ids with the variables each matched, the same with the prefilter on
/// and off.
fn matches(text: &str, r: &Request) -> Vec<(u64, Vec<String>)> {
    let mut all = Vec::new();
    for on in [true, false] {
        let mut rules = rules(text);
        rules.set_prefilter(on);
        all.push(
            rules
                .evaluate(r)
                .matches
                .into_iter()
                .map(|m| (m.id, m.matched_vars))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(all[0], all[1], "the prefilter changed the matches");
    all.swap_remove(0)
}

#[test]
fn transformed_values_stay_with_their_variable_and_list() {
    // The same bytes in two arguments, different bytes in a third; lists that lowercase,
    // that reset with t:none, and none at all.
    let rules = r#"
        SecRule ARGS "@streq abc" "id:1,phase:2,pass,t:lowercase"
        SecRule ARGS "@streq ABC" "id:2,phase:2,pass,t:lowercase,t:none"
        SecRule ARGS "@streq ABC" "id:3,phase:2,pass"
        SecRule ARGS "@streq abd" "id:4,phase:2,pass,t:lowercase"
        SecRule ARGS "@streq abc" "id:5,phase:2,pass,t:none,t:urlDecode,t:lowercase"
        "#;
    let found = matches(rules, &request("/?a=ABC&b=ABC&c=ABD", ""));
    let vars = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            (1, vars(&["ARGS:a", "ARGS:b"])),
            (2, vars(&["ARGS:a", "ARGS:b"])),
            (3, vars(&["ARGS:a", "ARGS:b"])),
            (4, vars(&["ARGS:c"])),
            (5, vars(&["ARGS:a", "ARGS:b"])),
        ]
    );
}

#[test]
fn regex_selector_answers_are_per_key() {
    // `content` is excluded from rule 2 by a regex selector; `contents` and `x` are not,
    // though they hold the same value and are asked about by the same selector.
    let rules = r#"
        SecAction "id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=t;ARGS:/^content$/"
        SecRule ARGS "@contains attack" "id:2,phase:2,pass,tag:'t'"
        SecRule ARGS:/^content/ "@contains attack" "id:3,phase:2,pass"
        "#;
    let found = matches(
        rules,
        &request(
            "/?content=attack",
            "contents=attack&x=attack&content=attack",
        ),
    );
    let vars = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            (1, vec![]),
            (2, vars(&["ARGS:contents", "ARGS:x"])),
            (3, vars(&["ARGS:content", "ARGS:contents", "ARGS:content"])),
        ]
    );
}

#[test]
fn the_prefilter_sees_the_body_in_phase_2() {
    // Phase 1 knows only the query; the body's arguments arrive before phase 2, and the
    // candidates computed in phase 1 must not hide them.
    let rules = r#"
        SecRule ARGS "@pm evil" "id:1,phase:1,pass"
        SecRule ARGS "@pm evil" "id:2,phase:2,pass"
        SecRule ARGS_NAMES "@rx (?i)^sneaky" "id:3,phase:2,pass"
        "#;
    let found = matches(rules, &request("/?q=fine", "a=EVIL&SNEAKY_name=1"));
    let ids: Vec<u64> = found.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![2, 3]);
}

#[test]
fn without_a_body_phase_2_reuses_what_phase_1_found() {
    // No body: what phase 1 transformed and the candidates it found are kept for phase 2
    // (the data has not changed). Both phases, and a transformation list phase 1 never
    // used, must still see the query's arguments and headers; an empty REQUEST_BODY
    // matches only what matches nothing.
    let rules = r#"
        SecRule ARGS "@pm evil" "id:1,phase:1,pass,t:lowercase"
        SecRule ARGS "@pm evil" "id:2,phase:2,pass,t:lowercase"
        SecRule ARGS "@rx evil" "id:3,phase:2,pass,t:urlDecodeUni,t:lowercase"
        SecRule REQUEST_HEADERS:Host "@contains exam" "id:4,phase:2,pass"
        SecRule REQUEST_BODY "@rx ^$" "id:5,phase:2,pass"
        SecRule REQUEST_BODY "@contains evil" "id:6,phase:2,pass"
        SecRule ARGS_NAMES "@pm q" "id:7,phase:2,pass,t:none"
        "#;
    // `%45VIL` is `evil` only after t:urlDecodeUni, a list only phase 2 uses.
    let found = matches(rules, &request("/?q=%2545VIL", ""));
    let ids: Vec<u64> = found.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![3, 4, 5, 7]);
    let found = matches(rules, &request("/?q=EVIL", ""));
    let ids: Vec<u64> = found.iter().map(|(id, _)| *id).collect();
    assert_eq!(ids, vec![1, 2, 3, 4, 5, 7]);
}

#[test]
fn transaction_collections_stay_consistent_after_deletes() {
    // TX is indexed by key: deleting a variable must leave the others findable, in any
    // case, and a deleted one gone.
    let text = r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=1,setvar:tx.b=2,setvar:tx.c=3,setvar:!tx.A,setvar:tx.D=4,setvar:tx.b=+5"
        SecRule TX:c "@eq 3" "id:2,phase:1,pass"
        SecRule TX:B "@eq 7" "id:3,phase:1,pass"
        SecRule TX:a "@eq 1" "id:4,phase:1,pass"
        SecRule TX:d "@eq 4" "id:5,phase:1,pass"
        SecRule &TX:a "@eq 0" "id:6,phase:1,pass"
    "#;
    let outcome = rules(text).evaluate(&request("/", ""));
    assert_eq!(outcome.matched_ids(), vec![1, 2, 3, 5, 6]);
    let tx: Vec<(&str, &str)> = outcome
        .tx
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(tx, vec![("b", "7"), ("c", "3"), ("d", "4")]);
}

#[test]
fn exclusions_take_a_value_only_from_the_variable_they_name() {
    // The prefilter leaves out values a `ctl` exclusion takes from a rule; an exclusion
    // on ARGS must not hide the same value from a rule that reads ARGS_POST.
    let text = r#"
        SecAction "id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=t;ARGS:/^content$/"
        SecRule ARGS "@pm attack" "id:2,phase:2,pass,tag:'t'"
        SecRule ARGS_POST "@pm attack" "id:3,phase:2,pass,tag:'t'"
        SecRule ARGS|ARGS_NAMES "@pm content" "id:4,phase:2,pass,tag:'t'"
    "#;
    let found = matches(text, &request("/", "content=attack"));
    let vars = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            (1, vec![]),
            (3, vars(&["ARGS_POST:content"])),
            (4, vars(&["ARGS_NAMES:content"])),
        ]
    );
}

#[test]
fn libinjection_answers_stay_with_their_value_and_operator() {
    // Answers are remembered by value: a repeated value gets the same answer and
    // fingerprint, another value its own, and `@detectXSS` is not answered by
    // `@detectSQLi`'s memory (nor the other way round).
    let text = r#"
        SecRule ARGS "@detectSQLi" "id:1,phase:2,pass,capture,setvar:'tx.fp_%{MATCHED_VAR_NAME}=%{TX.0}'"
        SecRule ARGS "@detectXSS" "id:2,phase:2,pass"
        SecRule ARGS "!@detectSQLi" "id:3,phase:2,pass"
    "#;
    let body = "a=1%27+OR+%271%27%3D%271&b=hello&c=1%27+OR+%271%27%3D%271&d=%3Cscript%3Ealert(1)%3C%2Fscript%3E";
    let found = matches(text, &request("/", body));
    let vars = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        found,
        vec![
            (1, vars(&["ARGS:a", "ARGS:c"])),
            (2, vars(&["ARGS:d"])),
            (3, vars(&["ARGS:b", "ARGS:d"])),
        ]
    );
    let outcome = rules(text).evaluate(&request("/", body));
    let fp_a = outcome.tx("fp_args:a").expect("a fingerprint for a");
    assert!(!fp_a.is_empty());
    assert_eq!(outcome.tx("fp_args:c"), Some(fp_a));
}
