//! Loads Debian's OWASP CRS 3.3 (package `modsecurity-crs`, installed by `make test`'s
//! set-up step) unmodified, through the package's own entry point, and lists what cannot
//! be loaded.

use chatgate_seclang::{LoadOptions, RuleSet};

#[path = "support/request.rs"]
mod support_request;
use support_request::request;

const CRS_ENTRY: &str = "/usr/share/modsecurity-crs/owasp-crs.load";

/// CRS with the paranoia level set the way crs-setup.conf documents (rule 900000, before
/// the rules).
fn load_crs_at(paranoia_level: u8) -> RuleSet {
    load_crs(Some(&format!(
        "SecAction \"id:900000,phase:1,nolog,pass,t:none,setvar:tx.paranoia_level={paranoia_level}\""
    )))
}

fn load_crs(setup_override: Option<&str>) -> RuleSet {
    assert!(
        std::path::Path::new(CRS_ENTRY).exists(),
        "{CRS_ENTRY} is missing: install Debian's modsecurity-crs package \
         (`make test` installs it through .ci/test-deps.sh when run as root)"
    );
    let options = LoadOptions {
        skip_unsupported: true,
    };
    match setup_override {
        None => RuleSet::load(CRS_ENTRY, options),
        Some(extra) => {
            let text = format!("{extra}\nInclude {CRS_ENTRY}\n");
            RuleSet::from_text(
                &chatgate_seclang::FileSystem,
                "/test/paranoia.conf",
                &text,
                options,
            )
        }
    }
    .unwrap_or_else(|e| panic!("CRS does not load: {e}"))
}

/// Issue 11: every rule of CRS 3.3 loads, at every paranoia level, and the list of rules
/// that cannot (printed) is empty. The last five (910100 `@geoLookup`, 910140 `@rbl`,
/// 920120 / 942130 / 953120 look-around and backreferences) load since the backtracking
/// `@rx` fallback and the lookup operators.
#[track_caller]
fn assert_nothing_left_out(rules: &RuleSet, what: &str) {
    println!("{what}: {} rules (chains count once)", rules.len());
    println!("cannot load ({}):", rules.unsupported().len());
    for u in rules.unsupported() {
        println!("  {u}");
    }
    let listed: Vec<String> = rules.unsupported().iter().map(|u| u.to_string()).collect();
    assert!(
        listed.is_empty(),
        "{what}: left out:\n{}",
        listed.join("\n")
    );
}

#[test]
fn crs_3_3_loads_unmodified() {
    let rules = load_crs(None);
    assert_nothing_left_out(&rules, "CRS 3.3");
    assert!(rules.len() > 400, "only {} rules", rules.len());
    // Loading without `skip_unsupported` succeeds too: nothing needed leaving out.
    RuleSet::load(CRS_ENTRY, LoadOptions::default())
        .unwrap_or_else(|e| panic!("CRS does not load strictly: {e}"));
}

#[test]
fn crs_blocks_classic_attacks_at_paranoia_level_1() {
    let rules = load_crs(None);
    let attacks = [
        // Caught at PL1 by libinjection only (942100).
        request("GET", "/?id=1%27%20OR%20%271%27%3D%271", &[], ""),
        request("GET", "/?id=1%20AND%20sleep(5)", &[], ""),
        request("GET", "/?q=%3Cscript%3Ealert(1)%3C/script%3E", &[], ""),
        request("GET", "/?file=../../../../etc/passwd", &[], ""),
        request("GET", "/?cmd=;cat%20/etc/passwd", &[], ""),
        request(
            "GET",
            "/",
            &[("User-Agent", "sqlmap/1.7.2#stable (https://sqlmap.org)")],
            "",
        ),
        request(
            "POST",
            "/upload",
            &[("Content-Type", "application/x-www-form-urlencoded")],
            "code=%3C%3Fphp%20system(%24_GET%5B%27c%27%5D)%3B%20%3F%3E",
        ),
        request(
            "POST",
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            r#"{"model":"m","user":"x' UNION SELECT password FROM users--"}"#,
        ),
    ];
    let mut missed = Vec::new();
    for r in &attacks {
        let outcome = rules.evaluate(r);
        if !outcome
            .blocking()
            .is_some_and(|i| i.rule_id == 949110 && i.status == 403)
        {
            missed.push(format!(
                "{} {} {:?}: score {:?}, matches {:?}",
                r.method,
                r.uri,
                String::from_utf8_lossy(&r.body),
                outcome.tx("anomaly_score"),
                outcome
                    .matched_ids()
                    .into_iter()
                    .filter(|id| *id >= 911000)
                    .collect::<Vec<_>>()
            ));
        }
    }
    assert!(missed.is_empty(), "not blocked:\n{}", missed.join("\n"));
}

#[test]
fn crs_passes_a_plain_chat_request() {
    let rules = load_crs(None);
    let r = request(
        "POST",
        "/v1/chat/completions",
        &[
            ("Content-Type", "application/json"),
            ("Authorization", "Bearer abc.def.ghi"),
        ],
        r#"{"model":"chatgate-rag","messages":[{"role":"user","content":"What does the web application firewall block?"}]}"#,
    );
    let outcome = rules.evaluate(&r);
    assert!(
        outcome.intervention.is_none(),
        "blocked: {:?}",
        outcome.matches
    );
    assert_eq!(outcome.tx("anomaly_score"), Some("0"));
}

#[test]
fn paranoia_levels_1_to_4_load_and_gate_their_rules() {
    // 14 SQL meta-characters in one argument: rule 942430 (PL2, warning +3) counts 12 or
    // more, 942431 (PL3, +3) 6 or more, 942432 (PL4, +3) 2 or more; 942460 (PL3, +3)
    // flags the repeated non-word characters and 920273 (PL4, critical +5) bytes outside
    // the strictest set.
    let probe = request("GET", "/search?x=((((((((((((((", &[], "");
    let expected: [(u8, &[u64], &str, bool); 4] = [
        (1, &[], "0", false),
        (2, &[942430], "3", false),
        (3, &[942430, 942431, 942460], "9", true),
        (4, &[920273, 942430, 942431, 942460, 942432], "17", true),
    ];
    for (pl, ids, score, blocked) in expected {
        let rules = load_crs_at(pl);
        assert_nothing_left_out(&rules, &format!("PL{pl}"));
        let outcome = rules.evaluate(&probe);
        assert_eq!(
            outcome.tx("executing_paranoia_level"),
            Some(pl.to_string().as_str())
        );
        let sqli_meta: Vec<u64> = outcome
            .matched_ids()
            .into_iter()
            .filter(|id| (942430..=942432).contains(id) || [942460, 920273].contains(id))
            .collect();
        assert_eq!(sqli_meta, ids, "PL{pl}");
        assert_eq!(
            outcome.tx("anomaly_score"),
            Some(score),
            "PL{pl}: {:?}",
            outcome.matched_ids()
        );
        assert_eq!(outcome.blocking().is_some(), blocked, "PL{pl}");
    }
}

#[test]
fn crs_prompt_field_exclusion_written_as_an_ordinary_rule() {
    // The shape of the issue's prompt-field policy: exempt chat message contents from the
    // XSS and SQLi families with a ctl rule placed before CRS, like any CRS exclusion.
    let rules = load_crs(Some(
        r#"SecRule REQUEST_FILENAME "@streq /v1/chat/completions" "id:1000,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=attack-xss;ARGS:/^json\.messages\.\d+\.content$/,ctl:ruleRemoveTargetByTag=attack-sqli;ARGS:/^json\.messages\.\d+\.content$/""#,
    ));
    let question = r#"{"model":"m","messages":[{"role":"user","content":"What's the difference between <script defer> and <script async>? And how do I sort SELECT name FROM a UNION ALL SELECT name FROM b?"}]}"#;
    let chat = request(
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        question,
    );
    let plain = load_crs(None).evaluate(&chat);
    assert!(
        plain.blocking().is_some(),
        "plain CRS blocks this question (the issue's finding)"
    );
    let outcome = rules.evaluate(&chat);
    assert!(outcome.blocking().is_none(), "{:?}", outcome.matches);
    // The same payload in a field that is not a prompt is still an attack.
    let attack =
        r#"{"model":"<script>alert(1)</script>","messages":[{"role":"user","content":"hi"}]}"#;
    let outcome = rules.evaluate(&request(
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        attack,
    ));
    assert!(outcome.blocking().is_some(), "{:?}", outcome.matches);
}

#[test]
fn crs_response_rules_catch_a_leaked_sql_error() {
    use chatgate_seclang::Response;
    let rules = load_crs(None);
    let mut t = rules.transaction(&request("GET", "/products?id=7", &[], ""));
    assert!(t.process_request_body(None).is_none());
    let leak = Response {
        status: 200,
        protocol: "HTTP/1.1".into(),
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: b"<p>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version</p>".to_vec(),
    };
    let blocked = t.process_response(&leak).map(|i| (i.rule_id, i.phase));
    let outcome = t.finish();
    assert_eq!(
        blocked,
        Some((959100, 4)),
        "{:?} {:?}",
        outcome.matched_ids(),
        outcome.tx("outbound_anomaly_score")
    );
}

/// The three CRS 3.3 rules whose patterns need the backtracking `@rx` fallback fire where
/// their patterns say: 942130 (PL2) on a SQL tautology, 920120 on a file name with a
/// quote, 953120 on PHP source in a response.
#[test]
fn crs_rules_on_the_backtracking_fallback_fire() {
    use chatgate_seclang::Response;
    let tautology = request("GET", "/search?q=x%27%20or%20%27a%27%3D%27a", &[], "");
    assert!(
        load_crs_at(2)
            .evaluate(&tautology)
            .matched_ids()
            .contains(&942130)
    );
    let plain = request("GET", "/search?q=paris%20hotels", &[], "");
    assert!(
        !load_crs_at(2)
            .evaluate(&plain)
            .matched_ids()
            .contains(&942130)
    );

    let rules = load_crs(None);
    let upload = |name: &str| {
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"{name}\"\r\n\
             Content-Type: text/plain\r\n\r\nhello\r\n--b--\r\n"
        );
        request(
            "POST",
            "/upload",
            &[("Content-Type", "multipart/form-data; boundary=b")],
            &body,
        )
    };
    assert!(
        rules
            .evaluate(&upload("a'b.txt"))
            .matched_ids()
            .contains(&920120)
    );
    assert!(
        !rules
            .evaluate(&upload("M&uuml;ller.txt"))
            .matched_ids()
            .contains(&920120)
    );
    assert!(
        !rules
            .evaluate(&upload("report.txt"))
            .matched_ids()
            .contains(&920120)
    );

    let respond = |body: &[u8]| {
        let mut t = rules.transaction(&request("GET", "/page", &[], ""));
        assert!(t.process_request_body(None).is_none());
        t.process_response(&Response {
            status: 200,
            protocol: "HTTP/1.1".into(),
            headers: vec![("Content-Type".into(), "text/html".into())],
            body: body.to_vec(),
        });
        t.finish().matched_ids()
    };
    assert!(respond(b"<html><?php echo $secret; ?></html>").contains(&953120));
    assert!(!respond(b"<?xml version=\"1.0\"?><html></html>").contains(&953120));
}
