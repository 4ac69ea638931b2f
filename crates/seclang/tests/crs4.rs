//! Loads an OWASP CRS 4 release unmodified, when the environment variable
//! `CHATGATE_CRS4_DIR` names its directory (the unpacked release archive, with
//! `crs-setup.conf.example` copied to `crs-setup.conf`); skipped with a printed reason
//! otherwise (CI has no CRS 4: Debian ships 3.3 only). See the README's "CRS 4".
//!
//! Run: `CHATGATE_CRS4_DIR=/tmp/crs4 cargo test --release -p chatgate-seclang --test crs4 -- --nocapture`

use std::path::PathBuf;

use chatgate_seclang::{LoadOptions, Request, Response, RuleSet};
use std::collections::BTreeMap;

#[path = "support/request.rs"]
mod support_request;
use support_request::request;

/// The CRS 4 directory, or `None` after printing why the test is skipped.
fn crs4_dir() -> Option<PathBuf> {
    let Some(dir) = std::env::var_os("CHATGATE_CRS4_DIR") else {
        println!("skipped: CHATGATE_CRS4_DIR is not set (it names an unpacked CRS 4 release)");
        return None;
    };
    let dir = PathBuf::from(dir);
    for needed in ["crs-setup.conf", "rules/REQUEST-901-INITIALIZATION.conf"] {
        assert!(
            dir.join(needed).exists(),
            "CHATGATE_CRS4_DIR={}: no {needed} (copy crs-setup.conf.example to crs-setup.conf)",
            dir.display()
        );
    }
    Some(dir)
}

/// The entry file an operator writes for CRS 4 (the order of CRS's INSTALL.md: set-up,
/// plugin configuration, plugins before, the rules, plugins after), with `extra` settings
/// first, as rule 900000 of crs-setup.conf documents.
fn entry(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "{extra}\n\
         Include {d}/crs-setup.conf\n\
         IncludeOptional {d}/plugins/*-config.conf\n\
         IncludeOptional {d}/plugins/*-before.conf\n\
         Include {d}/rules/*.conf\n\
         IncludeOptional {d}/plugins/*-after.conf\n",
        d = dir.display()
    )
}

fn load(dir: &std::path::Path, extra: &str, skip_unsupported: bool) -> RuleSet {
    RuleSet::from_text(
        &chatgate_seclang::FileSystem,
        &dir.join("chatgate-crs4-test.conf").to_string_lossy(),
        &entry(dir, extra),
        LoadOptions { skip_unsupported },
    )
    .unwrap_or_else(|e| panic!("CRS 4 does not load: {e}"))
}

fn at_paranoia_level(pl: u8) -> String {
    format!(
        "SecAction \"id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level={pl}\""
    )
}

/// Issue 11: CRS 4 loads unmodified at paranoia levels 1 to 4 with nothing left out, also
/// without `skip_unsupported`.
#[test]
fn crs4_loads_unmodified_at_paranoia_levels_1_to_4() {
    let Some(dir) = crs4_dir() else { return };
    for pl in 1..=4u8 {
        let rules = load(&dir, &at_paranoia_level(pl), true);
        println!("CRS 4 PL{pl}: {} rules (chains count once)", rules.len());
        println!("cannot load ({}):", rules.unsupported().len());
        for u in rules.unsupported() {
            println!("  {u}");
        }
        assert!(rules.unsupported().is_empty(), "PL{pl}: rules left out");
        assert!(rules.len() > 500, "PL{pl}: only {} rules", rules.len());
        let outcome = rules.evaluate(&request("GET", "/", &[], ""));
        assert_eq!(
            outcome.tx("blocking_paranoia_level"),
            Some(pl.to_string().as_str())
        );
    }
    load(&dir, "", false);
}

/// One stage of a CRS regression test, as `support/crs_ftw_to_cases.py` writes it.
#[derive(Default, Debug)]
struct FtwCase {
    name: String,
    rule: u64,
    request: Request,
    expect: Vec<u64>,
    no_expect: Vec<u64>,
    response: Option<Response>,
}

fn unhex(s: &str) -> Vec<u8> {
    if s == "-" {
        return Vec::new();
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

fn ids(s: &str) -> Vec<u64> {
    s.split(',')
        .filter(|x| *x != "-")
        .map(|x| x.parse().expect("rule id"))
        .collect()
}

fn read_ftw(path: &str) -> Vec<FtwCase> {
    let data = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut cases = Vec::new();
    let mut c = FtwCase::default();
    for line in data.lines() {
        let mut f = line.split(' ');
        let tag = f.next().unwrap_or("");
        let mut next = || f.next().unwrap_or("-");
        match tag {
            "T" => {
                let (rule, test, stage) = (next(), next(), next());
                c.rule = rule.parse().unwrap_or(0);
                c.name = format!("{rule}-{test}/{stage}");
                c.request.remote_addr = "127.0.0.1".into();
                c.request.remote_port = 40000;
                c.request.unique_id = c.name.clone();
            }
            "M" => c.request.method = text(unhex(next())),
            "U" => c.request.uri = text(unhex(next())),
            "V" => c.request.protocol = text(unhex(next())),
            "H" => {
                let (k, v) = (unhex(next()), unhex(next()));
                c.request.headers.push((text(k), text(v)));
            }
            "B" => c.request.body = unhex(next()),
            "E" => c.expect = ids(next()),
            "N" => c.no_expect = ids(next()),
            "S" => {}
            "RS" => {
                c.response = Some(Response {
                    status: next().parse().unwrap_or(200),
                    protocol: "HTTP/1.1".into(),
                    ..Response::default()
                })
            }
            "RH" => {
                let (k, v) = (unhex(next()), unhex(next()));
                if let Some(r) = c.response.as_mut() {
                    r.headers.push((text(k), text(v)));
                }
            }
            "RB" => {
                if let Some(r) = c.response.as_mut() {
                    r.body = unhex(next());
                }
            }
            "." => cases.push(std::mem::take(&mut c)),
            other => panic!("{path}: unknown record {other:?}"),
        }
    }
    cases
}

/// The settings of CRS's own test set-up (tests/docker-compose.yml of the CRS source:
/// the owasp/modsecurity-crs image with `BLOCKING_PARANOIA=4`, `ARG_LENGTH=400`,
/// `TOTAL_ARG_LENGTH=6400`, `MAX_FILE_SIZE=64100`, `COMBINED_FILE_SIZES=65535`,
/// `DetectionOnly`, and the image's defaults `MAX_NUM_ARGS=255`, `ARG_NAME_LENGTH=100`),
/// loaded before crs-setup.conf as the image does.
const FTW_SETUP: &str = r#"SecRuleEngine DetectionOnly
SecAction "id:900000,phase:1,pass,t:none,nolog,setvar:tx.blocking_paranoia_level=4"
SecAction "id:900300,phase:1,pass,t:none,nolog,setvar:tx.max_num_args=255,setvar:tx.arg_name_length=100,setvar:tx.arg_length=400,setvar:tx.total_arg_length=6400,setvar:tx.max_file_size=64100,setvar:tx.combined_file_sizes=65535""#;

/// CRS's own regression tests (go-ftw YAML converted by `support/crs_ftw_to_cases.py`,
/// named by `CHATGATE_CRS4_FTW`) against the engine with CRS 4: each stage's
/// `expect_ids` must match and its `no_expect_ids` must not. Status-only checks (what
/// Apache or nginx refuse before ModSecurity runs) are not counted. Prints the failures
/// per rule; the known ones are listed in `FTW_KNOWN` with the reason.
#[test]
fn crs4_regression_tests() {
    let Some(dir) = crs4_dir() else { return };
    let Ok(path) = std::env::var("CHATGATE_CRS4_FTW") else {
        println!(
            "skipped: CHATGATE_CRS4_FTW is not set (support/crs_ftw_to_cases.py writes the file)"
        );
        return;
    };
    let rules = load(&dir, FTW_SETUP, false);
    let cases = read_ftw(&path);
    let mut failed: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut checked = 0;
    for c in &cases {
        if c.expect.is_empty() && c.no_expect.is_empty() {
            continue;
        }
        checked += 1;
        let mut t = rules.transaction(&c.request);
        t.process_request_body(None);
        if let Some(r) = &c.response {
            t.process_response(r);
        }
        let matched = t.finish().matched_ids();
        let missing: Vec<u64> = c
            .expect
            .iter()
            .filter(|i| !matched.contains(i))
            .copied()
            .collect();
        let unwanted: Vec<u64> = c
            .no_expect
            .iter()
            .filter(|i| matched.contains(i))
            .copied()
            .collect();
        if !missing.is_empty() || !unwanted.is_empty() {
            failed.entry(c.rule).or_default().push(format!(
                "{}: missing {missing:?} unwanted {unwanted:?}",
                c.name
            ));
        }
    }
    let failures: usize = failed.values().map(Vec::len).sum();
    let mut unexplained = Vec::new();
    for (rule, list) in &failed {
        println!("rule {rule}: {} failing", list.len());
        for l in list {
            let name = l.split(':').next().unwrap_or("");
            match known_failure(name) {
                Some(why) => println!("  {l} (known: {why})"),
                None => {
                    println!("  {l} (NOT EXPLAINED)");
                    unexplained.push(l.clone());
                }
            }
        }
    }
    println!(
        "CRS 4 regression tests: {checked} checked, {} pass, {failures} fail ({} rules), {} unexplained",
        checked - failures,
        failed.len(),
        unexplained.len()
    );
    assert!(
        unexplained.is_empty(),
        "failing CRS 4 regression tests not in FTW_KNOWN:\n{}",
        unexplained.join("\n")
    );
}

/// The CRS 4.28.0 regression tests this engine fails, each failing the same way with
/// Debian's libmodsecurity 3.0.9 given the same cases and settings (checked by replaying
/// them through the library with ctypes, as tests/waf/modsec_replay.py does): what they
/// test is the web server in front of ModSecurity, or ModSecurity v2's behaviour.
fn known_failure(name: &str) -> Option<&'static str> {
    let (test, _stage) = name.split_once('/')?;
    let (rule, id) = test.split_once('-')?;
    let id: u32 = id.parse().ok()?;
    Some(match (rule, id) {
        ("944100" | "944110", 11 | 12 | 15 | 16)
        | (
            "944120",
            6 | 7 | 23 | 24 | 40 | 41 | 57 | 58 | 74 | 75 | 91 | 92 | 108 | 109 | 125 | 126,
        )
        | ("944210", 6 | 7 | 23 | 24 | 40 | 41) => {
            "a Java keyword in an XML element or attribute name must not match: ModSecurity v2 \
             fills REQUEST_BODY only for URLENCODED bodies, v3 (and this engine) for every \
             body, where these rules see it"
        }
        ("920181", 1) => "chunked body with a Content-Length: the web server decodes chunks",
        ("920430", 5) => "HTTP/0.9 request line: the web server answers it",
        ("920620", 1) => "two Content-Type headers: httpd joins them into one, v3 sees two",
        ("920640", 5) => "body without Content-Length: the test says HTTP/1.1 cannot carry it",
        ("921140", 1) => "a bare CR in a header: the web server refuses it with 400",
        _ => return None,
    })
}

/// CRS 4 at its default paranoia level 1 blocks classic attacks through 949110, passes a
/// plain chat request with a score of 0, and its response rules catch a leaked SQL error
/// (959100).
#[test]
fn crs4_blocks_attacks_and_passes_a_chat_at_paranoia_level_1() {
    let Some(dir) = crs4_dir() else { return };
    let rules = load(&dir, "", false);
    let attacks = [
        request("GET", "/?id=1%27%20OR%20%271%27%3D%271", &[], ""),
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
            "/v1/chat/completions",
            &[("Content-Type", "application/json")],
            r#"{"model":"m","user":"x' UNION SELECT password FROM users--"}"#,
        ),
    ];
    for r in &attacks {
        let outcome = rules.evaluate(r);
        assert!(
            outcome
                .blocking()
                .is_some_and(|i| i.rule_id == 949110 && i.status == 403),
            "{} {}: {:?}",
            r.method,
            r.uri,
            outcome.matched_ids()
        );
    }
    let chat = request(
        "POST",
        "/v1/chat/completions",
        &[("Content-Type", "application/json")],
        r#"{"model":"chatgate-rag","messages":[{"role":"user","content":"What does the web application firewall block?"}]}"#,
    );
    let outcome = rules.evaluate(&chat);
    assert!(
        outcome.intervention.is_none(),
        "{:?}",
        outcome.matched_ids()
    );
    assert_eq!(outcome.tx("blocking_inbound_anomaly_score"), Some("0"));

    let mut t = rules.transaction(&request("GET", "/products?id=7", &[], ""));
    assert!(t.process_request_body(None).is_none());
    let leak = Response {
        status: 200,
        protocol: "HTTP/1.1".into(),
        headers: vec![("Content-Type".into(), "text/html".into())],
        body: b"<p>You have an error in your SQL syntax; check the manual that corresponds to your MySQL server version</p>".to_vec(),
    };
    let blocked = t.process_response(&leak).map(|i| (i.rule_id, i.phase));
    assert_eq!(blocked, Some((959100, 4)), "{:?}", t.finish().matched_ids());
}
