//! What the tests that compare outcomes over the WAF corpora share (`memo.rs`,
//! `start_snapshot.rs`): the rule sets, the corpus requests, and the parts of an
//! [`Outcome`] that must be equal.

use chatgate_seclang::{FileSystem, LoadOptions, Outcome, Request, RuleSet, request::parse_json};

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
