//! Measures the rule sets on the corpora in tests/waf/corpus (issue 11): benign chats
//! blocked, attack detection per family, prompt-injection precision and recall, for
//! chatgate's default rules, OWASP CRS 3.3 under the prompt-field policy, and plain CRS
//! 3.3. Prints a table and the requests each configuration gets wrong, and asserts the
//! figures reached (see the README in components/waf/rules for the goals).
//!
//! Run: `cargo test --release -p waf --test corpus -- --nocapture`

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chatgate_seclang::{FileSystem, LoadOptions, Request, RuleSet};
use serde_json::Value;

const CRS_ENTRY: &str = "/usr/share/modsecurity-crs/owasp-crs.load";

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/waf/corpus")
}

/// Loads files in the order given, as `chatgate waf --rules A --rules B` does (the order
/// components/waf/rules/README.md prescribes).
fn load(files: &[&str], skip_unsupported: bool) -> RuleSet {
    let text: String = files.iter().map(|f| format!("Include {f}\n")).collect();
    RuleSet::from_text(
        &FileSystem,
        &rules_dir().join("corpus-test.conf").to_string_lossy(),
        &text,
        LoadOptions { skip_unsupported },
    )
    .unwrap_or_else(|e| panic!("{files:?} does not load: {e}"))
}

fn default_rules() -> RuleSet {
    load(
        &[&rules_dir().join("default.conf").to_string_lossy()],
        false,
    )
}

fn crs_available() -> bool {
    Path::new(CRS_ENTRY).exists()
}

fn crs_with_policy() -> RuleSet {
    load(
        &[
            &rules_dir().join("chat-policy.conf").to_string_lossy(),
            CRS_ENTRY,
        ],
        true,
    )
}

fn plain_crs() -> RuleSet {
    load(&[CRS_ENTRY], true)
}

#[derive(Debug, Clone)]
struct Case {
    id: String,
    family: String,
    block: bool,
    request: Request,
}

fn read_corpus(name: &str) -> Vec<Case> {
    let path = corpus_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut ids = std::collections::HashSet::new();
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(n, line)| {
            let v: Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{name}:{}: {e}", n + 1));
            let s = |k: &str| {
                v[k].as_str()
                    .unwrap_or_else(|| panic!("{name}:{}: no string {k:?}", n + 1))
                    .to_string()
            };
            let headers = v["headers"]
                .as_array()
                .unwrap_or_else(|| panic!("{name}:{}: no headers", n + 1))
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap().to_string(),
                        h[1].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let id = s("id");
            assert!(ids.insert(id.clone()), "{name}: duplicate id {id}");
            let expect = s("expect");
            assert!(
                expect == "block" || expect == "pass",
                "{name}:{}: expect {expect:?}",
                n + 1
            );
            Case {
                id,
                family: s("family"),
                block: expect == "block",
                request: Request {
                    method: s("method"),
                    uri: s("uri"),
                    protocol: v["protocol"].as_str().unwrap_or("HTTP/1.1").to_string(),
                    headers,
                    body: s("body").into_bytes(),
                    remote_addr: "192.0.2.10".into(),
                    remote_port: 40000,
                    unique_id: "corpus".into(),
                },
            }
        })
        .collect()
}

struct Verdict<'c> {
    case: &'c Case,
    blocked: bool,
    rules: Vec<u64>,
}

fn run<'c>(rules: &RuleSet, cases: &'c [Case]) -> Vec<Verdict<'c>> {
    cases
        .iter()
        .map(|case| {
            let outcome = rules.evaluate(&case.request);
            Verdict {
                case,
                blocked: outcome.blocking().is_some(),
                // The detection rules that matched (set-up and evaluation rules left out).
                rules: outcome
                    .matches
                    .iter()
                    .filter(|m| !m.tags.is_empty())
                    .map(|m| m.id)
                    .collect(),
            }
        })
        .collect()
}

#[derive(Default, Debug, Clone, Copy)]
struct Count {
    hit: usize,
    of: usize,
}

impl Count {
    fn pct(self) -> f64 {
        if self.of == 0 {
            0.0
        } else {
            100.0 * self.hit as f64 / self.of as f64
        }
    }
}

impl std::fmt::Display for Count {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:5.1} % ({}/{})", self.pct(), self.hit, self.of)
    }
}

/// The figures of one configuration.
#[derive(Default)]
struct Figures {
    benign_chat_blocked: Count,
    benign_other_blocked: Count,
    attacks_detected: Count,
    per_family: BTreeMap<String, Count>,
    pi_true_pos: usize,
    pi_false_pos: usize,
    pi_false_neg: usize,
    wrong: Vec<String>,
}

impl Figures {
    fn pi_precision(&self) -> f64 {
        let d = self.pi_true_pos + self.pi_false_pos;
        if d == 0 {
            0.0
        } else {
            100.0 * self.pi_true_pos as f64 / d as f64
        }
    }
    fn pi_recall(&self) -> f64 {
        let d = self.pi_true_pos + self.pi_false_neg;
        if d == 0 {
            0.0
        } else {
            100.0 * self.pi_true_pos as f64 / d as f64
        }
    }
}

fn measure(rules: &RuleSet, benign: &[Case], attacks: &[Case], pi: &[Case]) -> Figures {
    let mut f = Figures::default();
    let wrong = |v: &Verdict, what: &str| {
        format!(
            "{what} {} [{}] {} {} rules {:?}",
            v.case.id, v.case.family, v.case.request.method, v.case.request.uri, v.rules
        )
    };
    for v in run(rules, benign) {
        assert!(!v.case.block, "{}: benign-chat must expect pass", v.case.id);
        f.benign_chat_blocked.of += 1;
        if v.blocked {
            f.benign_chat_blocked.hit += 1;
            f.wrong.push(wrong(&v, "benign blocked"));
        }
    }
    for v in run(rules, attacks) {
        if v.case.block {
            f.attacks_detected.of += 1;
            let fam = f.per_family.entry(v.case.family.clone()).or_default();
            fam.of += 1;
            if v.blocked {
                f.attacks_detected.hit += 1;
                fam.hit += 1;
            } else {
                f.wrong.push(wrong(&v, "attack missed"));
            }
        } else {
            f.benign_other_blocked.of += 1;
            if v.blocked {
                f.benign_other_blocked.hit += 1;
                f.wrong.push(wrong(&v, "benign blocked"));
            }
        }
    }
    for v in run(rules, pi) {
        match (v.case.block, v.blocked) {
            (true, true) => f.pi_true_pos += 1,
            (false, true) => {
                f.pi_false_pos += 1;
                f.wrong.push(wrong(&v, "look-alike blocked"));
            }
            (true, false) => {
                f.pi_false_neg += 1;
                f.wrong.push(wrong(&v, "injection missed"));
            }
            (false, false) => {}
        }
    }
    f
}

fn print_table(configs: &[(&str, &Figures)]) {
    let row = |label: &str, cell: &dyn Fn(&Figures) -> String| {
        let mut line = format!("| {label:<34} |");
        for (_, f) in configs {
            line.push_str(&format!(" {:<22} |", cell(f)));
        }
        println!("{line}");
    };
    let mut header = format!("| {:<34} |", "");
    for (name, _) in configs {
        header.push_str(&format!(" {name:<22} |"));
    }
    println!("{header}");
    println!("|{}", "---|".repeat(configs.len() + 1));
    row("benign chats blocked", &|f| {
        f.benign_chat_blocked.to_string()
    });
    row("benign non-chat requests blocked", &|f| {
        f.benign_other_blocked.to_string()
    });
    row("attacks detected (all families)", &|f| {
        f.attacks_detected.to_string()
    });
    let families: Vec<String> = configs[0].1.per_family.keys().cloned().collect();
    for fam in &families {
        row(&format!("  {fam}"), &|f| {
            f.per_family
                .get(fam)
                .copied()
                .unwrap_or_default()
                .to_string()
        });
    }
    row("prompt injection precision", &|f| {
        format!("{:5.1} %", f.pi_precision())
    });
    row("prompt injection recall", &|f| {
        format!(
            "{:5.1} % ({}/{})",
            f.pi_recall(),
            f.pi_true_pos,
            f.pi_true_pos + f.pi_false_neg
        )
    });
}

#[test]
fn corpus_figures() {
    let benign = read_corpus("benign-chat.jsonl");
    let attacks = read_corpus("attacks.jsonl");
    let pi = read_corpus("prompt-injection.jsonl");
    let default = measure(&default_rules(), &benign, &attacks, &pi);
    let mut configs: Vec<(&str, Figures)> = vec![("default rules", default)];
    if crs_available() {
        configs.push((
            "CRS 3.3 + policy",
            measure(&crs_with_policy(), &benign, &attacks, &pi),
        ));
        configs.push((
            "plain CRS 3.3",
            measure(&plain_crs(), &benign, &attacks, &pi),
        ));
    } else {
        println!("{CRS_ENTRY} missing: CRS configurations skipped");
    }
    for (name, f) in &configs {
        println!("\n== {name}: {} requests wrong", f.wrong.len());
        for w in &f.wrong {
            println!("  {w}");
        }
    }
    println!();
    print_table(&configs.iter().map(|(n, f)| (*n, f)).collect::<Vec<_>>());

    assert!(
        benign.len() >= 300,
        "benign-chat: {} requests",
        benign.len()
    );
    assert!(
        attacks.iter().filter(|c| c.block).count() >= 500,
        "attacks: {} attack requests",
        attacks.iter().filter(|c| c.block).count()
    );
    assert!(pi.iter().all(|c| c.family == "prompt-injection"));
    let d = &configs[0].1;
    assert!(
        d.benign_chat_blocked.pct() <= 1.0,
        "default: benign chats blocked {}",
        d.benign_chat_blocked
    );
    assert!(
        d.attacks_detected.pct() >= 95.0,
        "default: attacks detected {}",
        d.attacks_detected
    );
    if let Some((_, c)) = configs.get(1) {
        assert!(
            c.benign_chat_blocked.pct() <= 1.0,
            "CRS + policy: benign chats blocked {}",
            c.benign_chat_blocked
        );
    }
}
