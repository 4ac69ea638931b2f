//! The engine end to end: directives, variables, actions, chains, flow control, runtime
//! and configure-time exclusions, anomaly scoring, and load errors.

use std::collections::BTreeMap;

use chatgate_seclang::{
    EngineMode, ErrorKind, InterventionKind, LoadOptions, MemoryFiles, Outcome, Request, RuleSet,
};

fn load(text: &str) -> RuleSet {
    RuleSet::from_text(
        &MemoryFiles::default(),
        "/rules/t.conf",
        text,
        LoadOptions::default(),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

fn load_err(files: &[(&str, &str)], text: &str) -> String {
    let files = MemoryFiles(
        files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    RuleSet::from_text(&files, "/rules/t.conf", text, LoadOptions::default())
        .map(|_| ())
        .expect_err("should not load")
        .to_string()
}

fn get(uri: &str) -> Request {
    Request {
        method: "GET".into(),
        uri: uri.into(),
        protocol: "HTTP/1.1".into(),
        headers: vec![
            ("Host".into(), "example".into()),
            ("User-Agent".into(), "test".into()),
        ],
        remote_addr: "192.0.2.1".into(),
        ..Request::default()
    }
}

fn post(content_type: &str, body: &str) -> Request {
    let mut r = get("/v1/chat/completions");
    r.method = "POST".into();
    r.headers.push(("Content-Type".into(), content_type.into()));
    r.body = body.as_bytes().to_vec();
    r
}

fn ids(rules: &RuleSet, r: &Request) -> Vec<u64> {
    rules.evaluate(r).matched_ids()
}

const CHAT: &str = r#"{"model":"m","messages":[{"role":"user","content":"DROP TABLE users"},{"role":"assistant","content":"<script>"}],"user":"u1"}"#;

#[test]
fn deny_stops_the_request_with_its_status_and_later_phases_do_not_run() {
    let rules = load(
        r#"
        SecRule REQUEST_METHOD "@streq GET" "id:1,phase:1,deny,status:405,msg:'no GET'"
        SecRule REQUEST_URI "@unconditionalMatch" "id:2,phase:2,pass"
        SecAction "id:3,phase:5,pass,nolog"
        "#,
    );
    let o = rules.evaluate(&get("/"));
    let i = o.blocking().unwrap();
    assert_eq!(
        (i.rule_id, i.status, i.phase, &i.kind),
        (1, 405, 1, &InterventionKind::Deny)
    );
    // The logging phase still runs after an interruption.
    assert_eq!(o.matched_ids(), [1, 3]);
    assert_eq!(o.matches[0].msg.as_deref(), Some("no GET"));
}

#[test]
fn request_variables() {
    let rules = load(
        r#"
        SecRule REQUEST_METHOD "@streq GET" "id:1,phase:1,pass"
        SecRule REQUEST_URI "@streq /a/b.php?x=1&y=<" "id:2,phase:1,pass"
        SecRule REQUEST_FILENAME "@streq /a/b.php" "id:3,phase:1,pass"
        SecRule REQUEST_BASENAME "@streq b.php" "id:4,phase:1,pass"
        SecRule QUERY_STRING "@streq x=1&y=%3C" "id:5,phase:1,pass"
        SecRule REQUEST_LINE "@streq GET /a/b.php?x=1&y=%3C HTTP/1.1" "id:6,phase:1,pass"
        SecRule REQUEST_PROTOCOL "@streq HTTP/1.1" "id:7,phase:1,pass"
        SecRule ARGS_GET:y "@streq <" "id:8,phase:1,pass"
        SecRule REQUEST_HEADERS:user-agent "@streq test" "id:9,phase:1,pass"
        SecRule REQUEST_HEADERS_NAMES "@streq Host" "id:10,phase:1,pass"
        SecRule REQUEST_COOKIES:SESSION "@streq abc" "id:11,phase:1,pass"
        SecRule REQUEST_COOKIES_NAMES "@streq theme" "id:12,phase:1,pass"
        SecRule REMOTE_ADDR "@ipMatch 192.0.2.0/24" "id:13,phase:1,pass"
        SecRule ARGS_COMBINED_SIZE "@eq 4" "id:14,phase:1,pass"
        SecRule REQUEST_URI_RAW "@beginsWith http://" "id:15,phase:1,pass"
        "#,
    );
    let mut r = get("/a/b.php?x=1&y=%3C");
    r.headers
        .push(("Cookie".into(), "session=abc; theme=dark".into()));
    assert_eq!(ids(&rules, &r), (1..=14).collect::<Vec<_>>());
    // As in ModSecurity v3, the path variables are percent-decoded and the basename
    // starts after the last `/` or `\`; QUERY_STRING stays as sent.
    let rules_decoded = load(
        r#"
        SecRule REQUEST_FILENAME "@streq /x y/c\d.php" "id:1,phase:1,pass"
        SecRule REQUEST_BASENAME "@streq d.php" "id:2,phase:1,pass"
        SecRule QUERY_STRING "@streq q=%41" "id:3,phase:1,pass"
        SecRule SERVER_NAME "@streq example" "id:4,phase:1,pass"
        "#,
    );
    let mut r = get("/x%20y/c%5Cd.php?q=%41");
    r.headers[0].1 = "example:8080".into();
    assert_eq!(ids(&rules_decoded, &r), [1, 2, 3, 4]);
    // The absolute form names the same resource; REQUEST_URI_RAW keeps it.
    let r = get("http://example/a/b.php?x=1&y=%3C");
    assert!(ids(&rules, &r).contains(&15));
    assert!(ids(&rules, &r).contains(&3));
}

#[test]
fn json_body_becomes_path_named_args() {
    let rules = load(
        r#"
        SecRule ARGS:json.messages.0.content "@streq DROP TABLE users" "id:1,phase:2,pass"
        SecRule ARGS_POST:/^json\.messages\.\d+\.role$/ "@streq assistant" "id:2,phase:2,pass"
        SecRule ARGS_NAMES "@streq json.user" "id:3,phase:2,pass"
        SecRule &ARGS_POST "@eq 6" "id:4,phase:2,pass"
        SecRule REQBODY_PROCESSOR "@streq JSON" "id:5,phase:2,pass"
        SecRule REQBODY_ERROR "@eq 0" "id:6,phase:2,pass"
        SecRule REQUEST_BODY "@contains \"user\":\"u1\"" "id:7,phase:2,pass"
        SecRule ARGS "@rx ^DROP" "id:8,phase:1,pass"
        "#,
    );
    // Phase 1 runs before the body is read: rule 8 sees no body argument.
    assert_eq!(
        ids(&rules, &post("application/json", CHAT)),
        [1, 2, 3, 4, 5, 6, 7]
    );
}

#[test]
fn malformed_bodies_set_reqbody_error() {
    let rules = load(
        r#"
        SecRule REQBODY_ERROR "!@eq 0" "id:1,phase:2,deny,status:400,msg:'%{REQBODY_ERROR_MSG}'"
        "#,
    );
    let o = rules.evaluate(&post("application/json", r#"{"a":"#));
    assert_eq!(o.blocking().map(|i| i.status), Some(400));
    assert!(
        o.body_error.as_deref().is_some_and(|e| e.contains("byte")),
        "{:?}",
        o.body_error
    );
    assert!(
        o.matches[0]
            .msg
            .as_deref()
            .is_some_and(|m| m.contains("unexpected end"))
    );
    assert!(
        rules
            .evaluate(&post("application/json", "{}"))
            .intervention
            .is_none()
    );
}

#[test]
fn form_and_multipart_bodies() {
    let rules = load(
        r#"
        SecRule ARGS_POST:a "@streq 1 2" "id:1,phase:2,pass"
        SecRule FILES "@endsWith .php" "id:2,phase:2,pass"
        SecRule FILES_NAMES "@streq upload" "id:3,phase:2,pass"
        SecRule MULTIPART_PART_HEADERS "@rx ^content-type:" "id:4,phase:2,pass,t:lowercase"
        SecRule MULTIPART_STRICT_ERROR "@eq 0" "id:5,phase:2,pass"
        "#,
    );
    assert_eq!(
        ids(&rules, &post("application/x-www-form-urlencoded", "a=1+2")),
        [1, 5]
    );
    let body = "--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1 2\r\n--B\r\nContent-Disposition: form-data; name=\"upload\"; filename=\"x.php\"\r\nContent-Type: text/plain\r\n\r\n<?php\r\n--B--\r\n";
    assert_eq!(
        ids(&rules, &post("multipart/form-data; boundary=B", body)),
        [1, 2, 3, 4, 5]
    );
}

#[test]
fn target_lists_counts_exclusions_and_selectors() {
    let rules = load(
        r#"
        SecRule ARGS|!ARGS:safe "@contains evil" "id:1,phase:2,pass"
        SecRule ARGS:/^s/ "@contains evil" "id:2,phase:2,pass"
        SecRule &ARGS "@eq 2" "id:3,phase:2,pass"
        SecRule &ARGS:missing "@eq 0" "id:4,phase:2,pass"
        SecRule &TX:nothing "@eq 0" "id:5,phase:2,pass"
        SecRule REQUEST_HEADERS:Host|REQUEST_METHOD "@streq GET" "id:6,phase:2,pass"
        "#,
    );
    assert_eq!(ids(&rules, &get("/?safe=evil&other=fine")), [2, 3, 4, 5, 6]);
    assert_eq!(ids(&rules, &get("/?safe=fine&other=evil")), [1, 3, 4, 5, 6]);
}

#[test]
fn transformations_default_actions_and_t_none() {
    let rules = load(
        r#"
        SecDefaultAction "phase:2,log,auditlog,deny,status:418,t:lowercase"
        SecRule ARGS "@contains select" "id:1,phase:2,block"
        SecRule ARGS "@contains select" "id:2,phase:2,pass,t:none"
        SecRule ARGS "@contains union select" "id:3,phase:2,pass,t:none,t:urlDecodeUni,t:replaceComments,t:lowercase,t:compressWhitespace"
        "#,
    );
    // `block` takes the default disruptive action and status; the default t:lowercase
    // applies unless t:none clears it.
    let o = rules.evaluate(&get("/?q=1%2520UNION/**/%2520SELECT"));
    assert_eq!(o.matched_ids(), [1]);
    assert_eq!(o.blocking().map(|i| (i.rule_id, i.status)), Some((1, 418)));
    let o = rules.evaluate(&get("/?q=UNION/**/SELECT"));
    assert_eq!(o.matched_ids(), [1]);
    let rules = load(
        r#"SecRule ARGS "@contains union select" "id:3,phase:2,pass,t:none,t:urlDecodeUni,t:replaceComments,t:lowercase,t:compressWhitespace""#,
    );
    assert_eq!(ids(&rules, &get("/?q=UNION/**/%2520SELECT")), [3]);
}

#[test]
fn multi_match_checks_every_stage() {
    let rules = load(
        r#"
        SecRule ARGS "@streq %41" "id:1,phase:2,pass,t:none,t:urlDecode,multiMatch"
        SecRule ARGS "@streq %41" "id:2,phase:2,pass,t:none,t:urlDecode"
        "#,
    );
    // The argument `%2541` (the query string decodes `%252541` once) becomes `%41` after
    // t:urlDecode, which both rules see.
    assert_eq!(ids(&rules, &get("/?a=%252541")), [1, 2]);
    // `%41` is seen raw only by multiMatch (t:urlDecode turns it into `A`).
    let mut r = get("/");
    r.method = "POST".into();
    r.headers
        .push(("Content-Type".into(), "application/json".into()));
    r.body = br#"{"a":"%41"}"#.to_vec();
    assert_eq!(ids(&rules, &r), [1]);
}

#[test]
fn chains_match_as_a_whole_but_setvar_runs_per_matching_link() {
    let rules = load(
        r#"
        SecRule REQUEST_METHOD "@streq POST" "id:1,phase:2,pass,setvar:tx.starter=1,chain"
            SecRule ARGS:json.model "@rx ^(\w+)$" "capture,setvar:tx.model=%{TX.1},chain"
                SecRule MATCHED_VAR "@streq m" "setvar:tx.last=%{MATCHED_VAR_NAME}"
        SecRule REQUEST_METHOD "@streq POST" "id:2,phase:2,pass,setvar:tx.starter2=1,ctl:ruleRemoveById=3,chain"
            SecRule ARGS:json.model "@streq other" "setvar:tx.never=1"
        SecAction "id:3,phase:2,pass"
        "#,
    );
    let o = rules.evaluate(&post("application/json", CHAT));
    assert_eq!(o.matched_ids(), [1, 3]);
    assert_eq!(o.tx("starter"), Some("1"));
    assert_eq!(o.tx("model"), Some("m"));
    assert_eq!(o.tx("last"), Some("MATCHED_VAR"));
    // ModSecurity v3: a link's setvar runs when that link matches, even if the chain then
    // fails ("independent of the chained rule result"); ctl and the disruptive action need
    // the whole chain.
    assert_eq!((o.tx("starter2"), o.tx("never")), (Some("1"), None));
}

#[test]
fn setvar_runs_once_per_matching_value() {
    let rules = load(
        r#"SecRule ARGS "@contains x" "id:1,phase:2,pass,setvar:tx.score=+3,setvar:'tx.last=%{MATCHED_VAR_NAME}'""#,
    );
    let o = rules.evaluate(&get("/?a=x&b=y&c=xx"));
    assert_eq!((o.tx("score"), o.tx("last")), (Some("6"), Some("ARGS:c")));
}

#[test]
fn matched_var_outlives_rules_that_match_nothing() {
    let rules = load(
        r#"
        SecRule ARGS "@contains x" "id:1,phase:2,pass,setvar:'tx.in_rule=%{MATCHED_VAR}'"
        SecRule ARGS "@contains nothing-has-this" "id:2,phase:2,pass"
        SecRule REQUEST_METHOD "@streq GET" "id:3,phase:2,pass,chain"
            SecRule ARGS:b "@streq y" "chain"
                SecRule MATCHED_VAR "@streq y" "setvar:'tx.chained=%{MATCHED_VAR_NAME}'"
        SecAction "id:4,phase:2,pass,setvar:'tx.after=%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
        SecRule MATCHED_VARS "@rx ." "id:5,phase:2,pass,setvar:tx.vars=+1"
        "#,
    );
    let o = rules.evaluate(&get("/?a=x1&b=y&c=x2"));
    // Per matching value, MATCHED_VAR is the latest one (`x1`, then `x2`).
    assert_eq!(o.tx("in_rule"), Some("x2"));
    // Rule 2 matches nothing and rule 4 has no operator: MATCHED_VAR is still the last
    // value matched, by rule 3's last link.
    assert_eq!(o.tx("chained"), Some("MATCHED_VAR"));
    assert_eq!(o.tx("after"), Some("MATCHED_VAR=y"));
    // MATCHED_VARS belong to the rule being matched: empty again for rule 5.
    assert_eq!(o.tx("vars"), None);
}

#[test]
fn default_disruptive_action_applies_to_block_only() {
    let rules = load(
        r#"
        SecDefaultAction "phase:2,log,deny,status:403"
        SecAction "id:1,phase:2"
        SecAction "id:2,phase:2,pass"
        SecAction "id:3,phase:2,block"
        "#,
    );
    let o = rules.evaluate(&get("/"));
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(3));
}

#[test]
fn skip_after_marker_and_skip() {
    let rules = load(
        r#"
        SecRule ARGS:pl "@lt 2" "id:1,phase:1,pass,nolog,skipAfter:END-PL2"
        SecAction "id:2,phase:1,pass"
        SecMarker END-PL2
        SecAction "id:3,phase:1,pass,skip:1"
        SecAction "id:4,phase:1,pass"
        SecMarker IGNORED-BY-SKIP
        SecAction "id:5,phase:1,pass"
        "#,
    );
    assert_eq!(ids(&rules, &get("/?pl=1")), [1, 3, 5]);
    assert_eq!(ids(&rules, &get("/?pl=2")), [2, 3, 5]);
}

#[test]
fn anomaly_scoring_with_setvar_arithmetic_and_macros() {
    let rules = load(
        r#"
        SecAction "id:1,phase:1,pass,nolog,setvar:tx.critical=5,setvar:tx.threshold=8,setvar:tx.score=0"
        SecRule ARGS "@contains a" "id:2,phase:2,pass,setvar:'tx.score=+%{tx.critical}'"
        SecRule ARGS "@contains b" "id:3,phase:2,pass,setvar:tx.score=+3,setvar:tx.tmp=x"
        SecRule ARGS "@contains c" "id:4,phase:2,pass,setvar:tx.score=-1,setvar:!tx.tmp"
        SecRule TX:SCORE "@ge %{tx.threshold}" "id:5,phase:2,deny,msg:'score %{tx.score}',logdata:'%{MATCHED_VAR_NAME}=%{MATCHED_VAR}'"
        "#,
    );
    let o = rules.evaluate(&get("/?x=ab"));
    assert_eq!(o.tx("score"), Some("8"));
    assert_eq!(o.tx("tmp"), Some("x"));
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(5));
    let last = o.matches.last().unwrap();
    assert_eq!(last.msg.as_deref(), Some("score 8"));
    assert_eq!(last.logdata.as_deref(), Some("TX:score=8"));
    let o = rules.evaluate(&get("/?x=abc"));
    assert_eq!((o.tx("score"), o.tx("tmp")), (Some("7"), None));
    assert!(o.intervention.is_none());
}

#[test]
fn ctl_rule_remove_by_id_and_tag() {
    let rules = load(
        r#"
        SecRule REQUEST_FILENAME "@streq /a" "id:1,phase:1,pass,nolog,ctl:ruleRemoveById=10-19"
        SecRule REQUEST_FILENAME "@streq /b" "id:2,phase:1,pass,nolog,ctl:ruleRemoveByTag=sqli"
        SecAction "id:10,phase:2,pass"
        SecAction "id:20,phase:2,pass,tag:'sqli'"
        "#,
    );
    assert_eq!(ids(&rules, &get("/a")), [1, 20]);
    assert_eq!(ids(&rules, &get("/b")), [2, 10]);
    assert_eq!(ids(&rules, &get("/c")), [10, 20]);
}

#[test]
fn ctl_rule_remove_target_by_id_and_tag_exempts_prompt_fields_only() {
    let rules = load(
        r#"
        SecRule REQUEST_FILENAME "@streq /v1/chat/completions" "id:1,phase:1,pass,nolog,\
            ctl:ruleRemoveTargetById=100;ARGS:json.messages.0.content,\
            ctl:ruleRemoveTargetByTag=attack-xss;ARGS:/^json\.messages\.\d+\.content$/"
        SecRule ARGS "@rx (?i)drop\s+table" "id:100,phase:2,pass"
        SecRule ARGS "@rx (?i)<script" "id:200,phase:2,pass,tag:'attack-xss'"
        "#,
    );
    assert_eq!(ids(&rules, &post("application/json", CHAT)), [1]);
    // Other fields keep every rule.
    let attack = r#"{"model":"<script>","messages":[{"role":"user","content":"hi"}],"user":"x; DROP TABLE t"}"#;
    assert_eq!(
        ids(&rules, &post("application/json", attack)),
        [1, 100, 200]
    );
}

#[test]
fn configure_time_removal_and_target_updates_apply_to_earlier_rules() {
    let rules = load(
        r#"
        SecRule ARGS "@contains x" "id:1,phase:2,pass,tag:'a'"
        SecRule ARGS "@contains x" "id:2,phase:2,pass,tag:'b'"
        SecRule ARGS "@contains x" "id:3,phase:2,pass,tag:'c'"
        SecRule ARGS "@contains x" "id:4,phase:2,pass,tag:'d'"
        SecRule ARGS "@contains x" "id:5,phase:2,pass"
        SecRuleRemoveById 1
        SecRuleRemoveByTag b
        SecRuleUpdateTargetById 3 "!ARGS:q"
        SecRuleUpdateTargetByTag d "!ARGS:/^q/"
        SecRuleUpdateTargetById 5 "REQUEST_HEADERS:User-Agent" "ARGS"
        "#,
    );
    assert_eq!(rules.rule_ids().collect::<Vec<_>>(), [3, 4, 5]);
    assert_eq!(ids(&rules, &get("/?q=x")), Vec::<u64>::new());
    assert_eq!(ids(&rules, &get("/?r=x")), [3, 4]);
    let mut r = get("/");
    r.headers[1].1 = "x".into();
    assert_eq!(ids(&rules, &r), [5]);
    assert!(load_err(&[], "SecRuleUpdateTargetById 9 \"!ARGS:q\"").contains("no rule with id 9"));
}

#[test]
fn detection_only_records_but_does_not_enforce_and_keeps_evaluating() {
    let rules = load(
        r#"
        SecRuleEngine DetectionOnly
        SecAction "id:1,phase:1,deny"
        SecAction "id:2,phase:2,pass"
        "#,
    );
    let o = rules.evaluate(&get("/"));
    assert_eq!(o.mode, EngineMode::DetectionOnly);
    assert_eq!(o.intervention.as_ref().map(|i| i.rule_id), Some(1));
    assert!(o.blocking().is_none());
    assert_eq!(o.matched_ids(), [1, 2]);
    let rules = load(
        r#"
        SecAction "id:1,phase:1,pass,ctl:ruleEngine=Off"
        SecAction "id:2,phase:1,deny"
        "#,
    );
    let o = rules.evaluate(&get("/"));
    assert_eq!((o.matched_ids(), o.mode), (vec![1], EngineMode::Off));
}

#[test]
fn allow_skips_the_remaining_request_rules() {
    let rules = load(
        r#"
        SecRule REMOTE_ADDR "@ipMatch 192.0.2.1" "id:1,phase:1,allow"
        SecAction "id:2,phase:1,deny"
        SecAction "id:3,phase:2,deny"
        SecAction "id:4,phase:5,pass"
        SecRule REQUEST_FILENAME "@streq /p" "id:5,phase:1,allow:phase,chain"
            SecRule REMOTE_ADDR "!@ipMatch 192.0.2.1"
        "#,
    );
    let o = rules.evaluate(&get("/"));
    assert_eq!((o.matched_ids(), o.intervention), (vec![1, 4], None));
}

#[test]
fn body_processor_and_access_follow_ctl() {
    let rules = load(
        r#"
        SecRule REQUEST_HEADERS:Content-Type "@streq text/plain" "id:1,phase:1,pass,ctl:requestBodyProcessor=URLENCODED"
        SecRule REQUEST_FILENAME "@streq /nobody" "id:2,phase:1,pass,ctl:requestBodyAccess=Off"
        SecRule ARGS_POST:a "@streq 1" "id:3,phase:2,pass"
        SecRule REQUEST_BODY "@streq a=1" "id:4,phase:2,pass"
        "#,
    );
    assert_eq!(ids(&rules, &post("text/plain", "a=1")), [1, 3, 4]);
    let mut r = post("application/x-www-form-urlencoded", "a=1");
    r.uri = "/nobody".into();
    assert_eq!(ids(&rules, &r), [2]);
}

#[test]
fn include_globs_and_data_files_resolve_relative_to_the_including_file() {
    let files = MemoryFiles(BTreeMap::from([
        (
            "/crs/setup.conf".to_string(),
            "SecAction \"id:1,phase:1,pass,setvar:tx.pl=1\"".to_string(),
        ),
        (
            "/crs/rules/A.conf".to_string(),
            "SecRule ARGS \"@pmFromFile words.data\" \"id:2,phase:2,deny\"".to_string(),
        ),
        ("/crs/rules/B.conf".to_string(), "SecMarker END".to_string()),
        ("/crs/rules/words.data".to_string(), "evil\n".to_string()),
        (
            "/crs/rules/notes.txt".to_string(),
            "not a rule file".to_string(),
        ),
    ]));
    let text = "Include setup.conf\nInclude rules/*.conf\nIncludeOptional none/*.conf\n";
    let rules = RuleSet::from_text(&files, "/crs/main.conf", text, LoadOptions::default()).unwrap();
    assert_eq!(rules.rule_ids().collect::<Vec<_>>(), [1, 2]);
    assert_eq!(
        rules
            .evaluate(&get("/?q=EVIL"))
            .blocking()
            .map(|i| i.rule_id),
        Some(2)
    );
}

#[test]
fn load_errors_name_file_line_and_reason() {
    let cases: &[(&str, &str)] = &[
        (
            "\n\nSecRule ARGS \"@rx (?<=\\xff)b\" \"id:1\"",
            "/rules/t.conf:3: regular expression \"(?<=\\\\xff)b\" does not compile: look-around",
        ),
        (
            "SecRule ARGS \"@rx (\" \"id:1\"",
            "/rules/t.conf:1: regular expression \"(\"",
        ),
        ("SecFoo On", "/rules/t.conf:1: unknown directive SecFoo"),
        (
            "SecRule ARGS \"@rx a\" \"phase:2\"",
            "/rules/t.conf:1: rule has no id",
        ),
        (
            "SecAction \"id:1\"\nSecAction \"id:1\"",
            "/rules/t.conf:2: rule id 1 is already used",
        ),
        (
            "SecRule ARGS \"@rx a\" \"id:1,chain\"",
            "/rules/t.conf:1: the last rule has `chain`",
        ),
        (
            "SecAction \"id:1,chain\"\nSecMarker X",
            "/rules/t.conf:2: the last rule has `chain`",
        ),
        (
            "SecAction \"id:1,chain\"\nSecAction \"id:2\"",
            "/rules/t.conf:2: id is only allowed in the first rule",
        ),
        (
            "SecAction \"id:1,skipAfter:NOWHERE\"",
            "/rules/t.conf:1: skipAfter:NOWHERE names no SecMarker",
        ),
        (
            "SecRule ARGZ \"@rx a\" \"id:1\"",
            "/rules/t.conf:1: invalid variable \"ARGZ\"",
        ),
        (
            "SecRule ARGS \"@rx a\" \"id:1,bogus\"",
            "/rules/t.conf:1: unknown action bogus",
        ),
        (
            "SecRule ARGS \"@rx a\" \"id:1,t:rot13\"",
            "/rules/t.conf:1: unknown transformation rot13",
        ),
        (
            "Include missing.conf",
            "/rules/t.conf:1: Include pattern /rules/missing.conf matches no file",
        ),
        (
            "SecRule ARGS \"@pmFromFile missing.data\" \"id:1\"",
            "/rules/t.conf:1: cannot read /rules/missing.data",
        ),
        (
            "SecRule ARGS \"@fuzzyHash x.txt 4\" \"id:1\"",
            "/rules/t.conf:1: unsupported: operator @fuzzyHash",
        ),
        (
            "SecRule ARGS \"@rx a",
            "/rules/t.conf:1: unterminated quoted string",
        ),
    ];
    for (text, expected) in cases {
        let got = load_err(&[], text);
        assert!(
            got.starts_with(expected),
            "{text:?}\n got: {got}\nwant: {expected}"
        );
    }
    let err = load_err(&[("/rules/inc.conf", "\nSecBogus 1")], "Include inc.conf");
    assert_eq!(err, "/rules/inc.conf:2: unknown directive SecBogus");
}

#[test]
fn unsupported_rules_can_be_listed_instead_of_failing() {
    let text = "SecRule REMOTE_ADDR \"@gsbLookup x\" \"id:7,phase:2,block\"\nSecRule ARGS \"@rx (?!\\xff)\" \"id:8\"\nSecAction \"id:9\"";
    let rules = RuleSet::from_text(
        &MemoryFiles::default(),
        "/r.conf",
        text,
        LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap();
    assert_eq!(rules.rule_ids().collect::<Vec<_>>(), [9]);
    let listed: Vec<String> = rules.unsupported().iter().map(|u| u.to_string()).collect();
    assert_eq!(listed.len(), 2);
    assert!(
        listed[0].starts_with("/r.conf:1 rule 7: operator @gsbLookup"),
        "{listed:?}"
    );
    assert!(
        listed[1].starts_with("/r.conf:2 rule 8: @rx (?!\\xff) (look-around"),
        "{listed:?}"
    );
    assert!(matches!(
        RuleSet::from_text(
            &MemoryFiles::default(),
            "/r.conf",
            text,
            LoadOptions::default()
        )
        .map_err(|e| e.kind),
        Err(ErrorKind::Unsupported { .. })
    ));
}

/// Skipping unsupported rules never skips a broken one: a malformed pattern is still an
/// error naming its line.
#[test]
fn a_malformed_pattern_is_an_error_even_when_unsupported_rules_are_skipped() {
    let text = "SecAction \"id:1\"\nSecRule ARGS \"@rx (unclosed\" \"id:2\"";
    let error = RuleSet::from_text(
        &MemoryFiles::default(),
        "/r.conf",
        text,
        LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap_err();
    assert_eq!(error.at.line, 2);
    assert!(matches!(error.kind, ErrorKind::Regex { .. }), "{error}");
}

#[test]
fn outcome_reports_matched_variable_names() {
    let rules = load(
        r#"SecRule ARGS|REQUEST_HEADERS "@contains evil" "id:1,phase:2,pass,msg:'m',tag:'t',severity:'CRITICAL'""#,
    );
    let o: Outcome = rules.evaluate(&post("application/json", r#"{"a":["evil"],"b":"evil"}"#));
    let m = &o.matches[0];
    assert_eq!(m.matched_vars, ["ARGS:json.a.0", "ARGS:json.b"]);
    assert_eq!(m.matched_values, [b"evil".to_vec(), b"evil".to_vec()]);
    // Values are kept transformed and cut short.
    let rules =
        load(r#"SecRule ARGS "@contains evil" "id:1,phase:2,pass,t:uppercase,t:lowercase""#);
    let long = format!("/?q={}", "evil".repeat(100));
    let o = rules.evaluate(&get(&long));
    assert_eq!(
        o.matches[0].matched_values[0],
        "evil".repeat(64).into_bytes()
    );
    assert_eq!(
        (m.severity, m.tags.as_slice(), m.log),
        (Some(2), &["t".to_string()][..], true)
    );
}

#[test]
fn xml_body_text_and_attributes() {
    let rules = load(
        r#"
        SecRule XML:/* "@contains select * from" "id:1,phase:2,pass,t:lowercase"
        SecRule XML://@* "@rx <script" "id:2,phase:2,pass"
        SecRule REQBODY_PROCESSOR "@streq XML" "id:3,phase:2,pass"
        SecRule REQBODY_ERROR "@eq 1" "id:4,phase:2,pass"
        "#,
    );
    let body = r#"<?xml version="1.0"?><q a="&lt;script>"><w>SELECT * </w>FROM t</q>"#;
    let o = rules.evaluate(&post("text/xml", body));
    assert_eq!(o.matched_ids(), [1, 2, 3]);
    assert_eq!(o.matches[0].matched_vars, ["XML:/*"]);
    assert_eq!(ids(&rules, &post("application/xml", "<q><w></q>")), [3, 4]);
    assert!(load_err(&[], r#"SecRule XML:/q/w "@rx a" "id:1""#).contains("unsupported: XML:/q/w"));
}

#[test]
fn staged_transaction_refuses_on_headers_before_the_body_is_read() {
    let rules = load(
        r#"
        SecRule REQUEST_HEADERS:Content-Length "@gt 100" "id:1,phase:1,deny,status:413"
        SecRule ARGS "@contains evil" "id:2,phase:2,deny"
        SecAction "id:3,phase:5,pass,nolog"
        "#,
    );
    let mut head = post("application/json", "");
    head.headers.push(("Content-Length".into(), "1000".into()));
    let mut t = rules.transaction(&head);
    assert_eq!(
        t.process_request_headers().map(|i| (i.rule_id, i.status)),
        Some((1, 413))
    );
    // Phase 2 does not run after an enforced interruption; logging does.
    assert!(
        t.process_request_body(Some(br#"{"a":"evil"}"#.to_vec()))
            .is_some()
    );
    assert_eq!(t.finish().matched_ids(), [1, 3]);

    let mut t = rules.transaction(&post("application/json", ""));
    assert!(t.process_request_headers().is_none());
    assert_eq!(
        t.process_request_body(Some(br#"{"a":"evil"}"#.to_vec()))
            .map(|i| i.rule_id),
        Some(2)
    );
}

#[test]
fn response_phases_see_status_headers_and_body() {
    use chatgate_seclang::Response;
    let rules = load(
        r#"
        SecRule RESPONSE_STATUS "@streq 500" "id:1,phase:3,pass"
        SecRule RESPONSE_HEADERS:Content-Type "@beginsWith text/html" "id:2,phase:3,pass"
        SecRule RESPONSE_BODY "@contains SQL syntax" "id:3,phase:3,pass"
        SecRule RESPONSE_BODY "@contains SQL syntax" "id:4,phase:4,deny,status:502"
        SecRule RESPONSE_PROTOCOL "@streq HTTP/1.1" "id:5,phase:4,pass"
        SecRule REQUEST_FILENAME "@streq /open" "id:6,phase:1,allow:request"
        SecAction "id:7,phase:2,deny"
        "#,
    );
    let response = Response {
        status: 500,
        protocol: "HTTP/1.1".into(),
        headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
        body: b"You have an error in your SQL syntax".to_vec(),
    };
    // `allow:request` skips the rest of the request phases but not the response's.
    let mut t = rules.transaction(&get("/open"));
    assert!(t.process_request_body(None).is_none());
    assert_eq!(
        t.process_response(&response)
            .map(|i| (i.rule_id, i.status, i.phase)),
        Some((4, 502, 4))
    );
    // The body is not there in phase 3.
    assert_eq!(t.finish().matched_ids(), [6, 1, 2, 4]);
}

#[test]
fn a_compiled_rule_set_is_shared_by_concurrent_transactions() {
    // Compiled once (at start-up or pre-initialisation), then read by every request.
    fn shareable<T: Send + Sync>() {}
    shareable::<RuleSet>();
    let rules = std::sync::Arc::new(load(
        r#"SecRule ARGS "@rx ^%{REQUEST_HEADERS.x-want}$" "id:1,phase:2,deny""#,
    ));
    let handles: Vec<_> = (0..4)
        .map(|n| {
            let rules = rules.clone();
            std::thread::spawn(move || {
                let mut r = get(&format!("/?a=v{n}"));
                r.headers.push(("X-Want".into(), format!("v{n}")));
                rules.evaluate(&r).blocking().map(|i| i.rule_id)
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), Some(1));
    }
}

#[test]
fn too_many_body_arguments_are_a_body_error() {
    let rules = load(
        r#"
        SecArgumentsLimit 3
        SecRule &ARGS_POST "@eq 3" "id:2,phase:2,pass"
        SecRule REQBODY_ERROR "!@eq 0" "id:1,phase:2,deny,status:400,msg:'%{REQBODY_ERROR_MSG}'"
        "#,
    );
    assert!(
        rules
            .evaluate(&post("application/x-www-form-urlencoded", "a=1&b=2&c=3"))
            .intervention
            .is_none()
    );
    let o = rules.evaluate(&post(
        "application/json",
        r#"{"a":1,"b":2,"c":3,"d":"<script>"}"#,
    ));
    assert_eq!(o.blocking().map(|i| i.rule_id), Some(1));
    // The arguments kept are the first 3.
    assert_eq!(o.matched_ids(), [2, 1]);
    assert_eq!(
        o.matches[1].msg.as_deref(),
        Some("4 arguments in the body, more than the limit of 3")
    );
    assert!(
        load_err(&[], "SecArgumentsLimit 0")
            .contains("SecArgumentsLimit expects a positive number")
    );
}

/// `REQBODY_PROCESSOR` is known in phase 1, as ModSecurity v3 sets it with the
/// Content-Type header (MULTIPART, URLENCODED; JSON and XML as its recommended rules
/// 200000/200001 set them in phase 1). CRS 4's 920400 (upload too large) reads it in
/// phase 1, and CRS's 901350 (`tx.enforce_bodyproc_urlencoded=1`) forces URLENCODED only
/// when it is empty. Without a processor it is empty, not absent (v3's anchored
/// variables always have a value), so that 901350's `!@rx` matches.
#[test]
fn reqbody_processor_is_known_in_phase_1() {
    let rules = load(
        r#"
        SecRule REQBODY_PROCESSOR "@rx ^(.*)$" "id:1,phase:1,pass,capture,setvar:tx.p1=%{tx.1}"
        SecRule REQBODY_PROCESSOR "!@rx (?:URLENCODED|MULTIPART|XML|JSON)" "id:2,phase:1,pass,ctl:requestBodyProcessor=URLENCODED"
        SecRule REQBODY_PROCESSOR "@rx ^(.*)$" "id:3,phase:2,pass,capture,setvar:tx.p2=%{tx.1}"
        SecRule ARGS_POST_NAMES "@rx ^json\.a$" "id:4,phase:2,pass"
        "#,
    );
    for (content_type, body, p1) in [
        ("multipart/form-data; boundary=B", "--B--\r\n", "MULTIPART"),
        ("application/x-www-form-urlencoded", "a=1", "URLENCODED"),
        ("application/json", r#"{"a":"1"}"#, "JSON"),
        ("text/xml", "<a>1</a>", "XML"),
    ] {
        let outcome = rules.evaluate(&post(content_type, body));
        assert_eq!(outcome.tx("p1"), Some(p1), "{content_type}");
        assert_eq!(outcome.tx("p2"), Some(p1), "{content_type}");
        assert!(!outcome.matched_ids().contains(&2), "{content_type}");
    }
    // The JSON body was parsed as JSON, not forced to URLENCODED.
    assert!(ids(&rules, &post("application/json", r#"{"a":"1"}"#)).contains(&4));
    // No Content-Type: empty (not absent, as in v3) in phase 1, and rule 2 forces
    // URLENCODED.
    let mut r = post("x", "a=1");
    r.headers.retain(|(k, _)| k != "Content-Type");
    let outcome = rules.evaluate(&r);
    assert_eq!(outcome.tx("p1"), Some(""));
    assert!(outcome.matched_ids().contains(&2));
    assert_eq!(outcome.tx("p2"), Some("URLENCODED"));
}
