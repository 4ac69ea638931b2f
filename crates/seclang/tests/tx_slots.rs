//! `TX` members are numbered at load time (every name a rule writes as a constant:
//! `setvar` targets, `TX:name` targets, `%{tx.name}` macros) and reached by index; names
//! computed at run time go through the rule set's numbering first and a collection's own
//! map otherwise. Whatever path a name takes, it must name the same member, compared
//! without regard to ASCII case, in the order members were set, as one map by name did.

use chatgate_seclang::{LoadOptions, MemoryFiles, Outcome, Request, RuleSet};

fn evaluate(text: &str, uri: &str) -> Outcome {
    let rules = RuleSet::from_text(
        &MemoryFiles::default(),
        "/t.conf",
        text,
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let request = Request {
        method: "GET".into(),
        uri: uri.into(),
        protocol: "HTTP/1.1".into(),
        headers: vec![("Host".into(), "example".into())],
        ..Request::default()
    };
    rules.evaluate(&request)
}

/// The names of the last match record of rule `id`.
fn vars(o: &Outcome, id: u64) -> Vec<String> {
    o.matches
        .iter()
        .rev()
        .find(|m| m.id == id)
        .map(|m| m.matched_vars.clone())
        .unwrap_or_default()
}

#[test]
fn a_computed_name_reaches_the_member_its_constant_spelling_numbers() {
    // `tx.%{tx.p}_score` is `tx.app_score` at run time: the member rule 3 reads by its
    // constant name (and 4 through a macro), in any case.
    let o = evaluate(
        r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.p=APP,setvar:tx.App_Score=2"
        SecAction "id:2,phase:1,pass,nolog,setvar:tx.%{tx.p}_score=+3"
        SecRule TX:app_score "@eq 5" "id:3,phase:1,pass,nolog"
        SecAction "id:4,phase:1,pass,nolog,setvar:tx.copy=%{TX.APP_SCORE}"
        SecAction "id:5,phase:1,pass,nolog,setvar:!tx.%{tx.p}_SCORE"
        SecRule &TX:app_score "@eq 0" "id:6,phase:1,pass,nolog"
        "#,
        "/",
    );
    assert_eq!(o.matched_ids(), vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(o.tx("copy"), Some("5"));
    assert_eq!(o.tx("app_score"), None);
}

#[test]
fn names_no_rule_spells_live_in_the_collection_and_keep_their_order() {
    // `run_<uri>` is known only at run time; members are listed in the order they were
    // set, a removed and set again member last.
    let o = evaluate(
        r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.k_a=1,setvar:tx.k_b=2"
        SecRule REQUEST_FILENAME "@rx ^/(\w+)" "id:2,phase:1,pass,nolog,capture,setvar:tx.k_%{tx.1}=x"
        SecAction "id:3,phase:1,pass,nolog,setvar:!tx.k_a,setvar:tx.k_A=3"
        SecRule TX:/^k_/ "@rx ." "id:4,phase:1,pass,nolog"
        SecAction "id:5,phase:1,pass,nolog,setvar:tx.k_RUN=+1"
        SecRule TX:/^k_run$/ "@eq 1" "id:6,phase:1,pass,nolog"
        SecAction "id:7,phase:1,pass,nolog,setvar:!tx.k_run"
        SecRule &TX:/^k_/ "@eq 2" "id:8,phase:1,pass,nolog"
        "#,
        "/run",
    );
    assert_eq!(o.matched_ids(), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(vars(&o, 4), ["TX:k_b", "TX:k_run", "TX:k_a"]);
    assert_eq!(vars(&o, 6), ["TX:k_run"]);
    let tx: Vec<(&str, &str)> =
        o.tx.iter()
            .filter(|(k, _)| k.starts_with("k_"))
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
    assert_eq!(tx, [("k_a", "3"), ("k_b", "2")]);
}

#[test]
fn captures_removed_and_set_again_many_times_leave_the_other_members_in_place() {
    // Every matching argument replaces TX:0 and TX:1 (removes then sets them): after
    // forty, the removed entries are dropped and the members renumbered, those known
    // at load time and a computed one alike.
    let args: Vec<String> = (0..40).map(|i| format!("a{i}=v{i}")).collect();
    let uri = format!("/computed?{}", args.join("&"));
    let o = evaluate(
        r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.before=1"
        SecRule REQUEST_FILENAME "@rx ^/(\w+)" "id:2,phase:1,pass,nolog,capture,setvar:tx.dyn_%{tx.1}=7,setvar:tx.p=%{tx.1}"
        SecRule ARGS "@rx ^v(\d+)$" "id:3,phase:1,pass,nolog,capture,setvar:tx.count=+1,setvar:tx.last=%{tx.1}"
        SecRule TX:/^dyn_c/ "@eq 7" "id:4,phase:1,pass,nolog"
        SecAction "id:5,phase:1,pass,nolog,setvar:tx.dyn_%{tx.p}=+1"
        SecRule TX:/^dyn_/ "@eq 8" "id:6,phase:1,pass,nolog"
        SecRule TX:1 "@eq 39" "id:7,phase:1,pass,nolog"
        SecRule TX:before "@eq 1" "id:8,phase:1,pass,nolog"
        SecRule TX:p "@streq computed" "id:9,phase:1,pass,nolog"
        "#,
        &uri,
    );
    assert_eq!(o.matched_ids(), vec![1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert_eq!(o.tx("count"), Some("40"));
    assert_eq!(o.tx("last"), Some("39"));
    assert_eq!((o.tx("0"), o.tx("1")), (Some("v39"), Some("39")));
    assert_eq!(o.tx("dyn_computed"), Some("8"));
    assert_eq!(vars(&o, 6), ["TX:dyn_computed"]);
    // The order of setting: before, the first capture's removal and re-setting put
    // 0 and 1 after the members set since.
    let order: Vec<String> = evaluate(
        r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.before=1"
        SecRule ARGS "@rx ^v(\d+)$" "id:3,phase:1,pass,nolog,capture,setvar:tx.after=1"
        SecRule TX "@rx ." "id:10,phase:1,pass,nolog"
        "#,
        &uri,
    )
    .matches
    .iter()
    .find(|m| m.id == 10)
    .map(|m| m.matched_vars.clone())
    .unwrap_or_default();
    let tail: Vec<&str> = order
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(String::as_str)
        .collect();
    assert_eq!(tail, ["TX:before", "TX:after", "TX:0", "TX:1"]);
}

#[test]
fn counts_and_members_of_transaction_collections_match_as_listed() {
    // Links on `TX` members and counts are decided on the members in place: the same
    // matches, the same `MATCHED_VARS` names (`&TX` for a count) and `setvar`s as a
    // listing of copies.
    let o = evaluate(
        r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.a=3"
        SecRule &TX:a|TX:A|&TX:missing|TX:missing "@lt 5" "id:2,phase:1,pass,nolog"
        SecRule &TX:a|TX:a "@eq 0" "id:3,phase:1,pass,nolog"
        SecRule &TX:nothing "@eq 0" "id:4,phase:1,pass,nolog,setvar:tx.seen=+1"
        SecRule &TX:nothing|&TX:none "@eq 0" "id:5,phase:1,pass,nolog,setvar:tx.twice=+1"
        SecRule &TX:a "@eq 1" "id:6,phase:1,pass,nolog,chain"
            SecRule MATCHED_VARS_NAMES "@streq &TX" "setvar:tx.chained=1"
        "#,
        "/",
    );
    assert_eq!(o.matched_ids(), vec![1, 2, 4, 5, 6]);
    assert_eq!(vars(&o, 2), ["&TX", "TX:a", "&TX"]);
    assert_eq!(vars(&o, 4), ["&TX"]);
    assert_eq!(o.tx("seen"), Some("1"));
    assert_eq!(o.tx("twice"), Some("2"));
    assert_eq!(o.tx("chained"), Some("1"));
}
