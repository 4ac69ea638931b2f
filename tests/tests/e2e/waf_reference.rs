//! Verdict agreement (issue 11): every request of the WAF corpora (`tests/waf/corpus/*.jsonl`
//! and the harness's own `tests/waf/reference/smoke.jsonl`) goes byte for byte through
//! nginx + ModSecurity v3 + Debian's CRS 3.3 at paranoia level 1, and through
//! chatgate-seclang loading the same CRS natively. Each disagreement must be listed, with
//! its reason, in `tests/waf/reference/disagreements.md`; an unlisted disagreement fails,
//! and so does a listed one that no longer disagrees.
//!
//! Needs the Debian packages `.ci/test-deps.sh` installs (`make test` runs it); without
//! them the test fails saying so.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::Path;

use chatgate_seclang::{LoadOptions, RuleSet};
use chatgate_tests::repo_root;
use chatgate_tests::waf_reference::{
    CRS_ENTRY, CorpusRequest, NginxOptions, ReferenceNginx, Verdict, load_corpus_dir,
    load_corpus_file, match_audit, nginx_binary, nginx_version,
};

const DISAGREEMENTS: &str = "tests/waf/reference/disagreements.md";

/// One row of the disagreements file: `| corpus/id | reference | seclang | reason |`.
struct Listed {
    reference: Verdict,
    seclang: Verdict,
    reason: String,
}

fn listed_disagreements(path: &Path) -> BTreeMap<String, Listed> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut listed = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let cells: Vec<&str> = line.trim().split('|').map(str::trim).collect();
        // `| a | b | c | d |` splits into six cells, the outer two empty.
        if cells.len() != 6 || !cells[0].is_empty() || !cells[5].is_empty() {
            continue;
        }
        let (id, reference, seclang, reason) = (cells[1], cells[2], cells[3], cells[4]);
        if id == "id" || id.starts_with("---") {
            continue;
        }
        let at = format!("{}:{}", path.display(), n + 1);
        let verdict = |v: &str| {
            Verdict::parse(v).unwrap_or_else(|| panic!("{at}: {v:?} is not block or pass"))
        };
        assert!(!reason.is_empty(), "{at}: {id} has no reason");
        let row = Listed {
            reference: verdict(reference),
            seclang: verdict(seclang),
            reason: reason.to_string(),
        };
        assert!(
            listed.insert(id.to_string(), row).is_none(),
            "{at}: {id} is listed twice"
        );
    }
    listed
}

fn corpus() -> Vec<CorpusRequest> {
    let root = repo_root();
    let mut requests =
        load_corpus_dir(&root.join("tests/waf/corpus")).unwrap_or_else(|e| panic!("{e}"));
    requests.extend(
        load_corpus_file(&root.join("tests/waf/reference/smoke.jsonl"))
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let mut seen = HashSet::new();
    for r in &requests {
        assert!(
            seen.insert(r.key()),
            "{}: id {} is not unique",
            r.source,
            r.id
        );
    }
    requests
}

struct Compared {
    request: CorpusRequest,
    reference_status: u16,
    /// `None` when ModSecurity has no record of the request (nginx answered it itself).
    reference_rules: Option<Vec<u64>>,
    seclang_status: u16,
    seclang_rules: Vec<u64>,
}

impl Compared {
    fn reference(&self) -> Verdict {
        Verdict::of_status(self.reference_status)
    }
    fn seclang(&self) -> Verdict {
        Verdict::of_status(self.seclang_status)
    }
    /// The rules only one side logged; `None` when ModSecurity has no record. CRS's
    /// phase-5 reporting rules (980xxx, `noauditlog`) are left out: the audit log never
    /// shows them.
    fn rule_differences(&self) -> Option<(Vec<u64>, Vec<u64>)> {
        let reference: BTreeSet<u64> = self.reference_rules.as_ref()?.iter().copied().collect();
        let seclang: BTreeSet<u64> = self
            .seclang_rules
            .iter()
            .copied()
            .filter(|id| !(980000..981000).contains(id))
            .collect();
        Some((
            reference.difference(&seclang).copied().collect(),
            seclang.difference(&reference).copied().collect(),
        ))
    }

    fn describe(&self) -> String {
        let rules = match self.rule_differences() {
            Some((reference, seclang)) => format!(
                "rules only ModSecurity logged {reference:?}, only chatgate-seclang {seclang:?}"
            ),
            None => format!(
                "ModSecurity has no record of it (nginx answered itself); chatgate-seclang's rules {:?}",
                self.seclang_rules
            ),
        };
        format!(
            "{} ({}, {}): nginx+ModSecurity {} ({}), chatgate-seclang {} ({}); {rules}",
            self.request.key(),
            self.request.family,
            self.request.source,
            self.reference().name(),
            match self.reference_status {
                0 => "closed without an answer".to_string(),
                s => s.to_string(),
            },
            self.seclang().name(),
            self.seclang_status,
        )
    }
}

#[test]
fn chatgate_seclang_agrees_with_nginx_modsecurity_crs() {
    nginx_binary().unwrap_or_else(|e| panic!("the reference WAF cannot run: {e}"));
    let requests = corpus();
    let listed = listed_disagreements(&repo_root().join(DISAGREEMENTS));

    // nginx loads CRS while chatgate-seclang loads it here.
    let starting = std::thread::spawn(|| {
        ReferenceNginx::start(NginxOptions {
            modsecurity: true,
            audit_log: true,
        })
    });
    let rules = RuleSet::load(
        CRS_ENTRY,
        LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap_or_else(|e| panic!("CRS does not load in chatgate-seclang: {e}"));
    let nginx = starting
        .join()
        .expect("starting nginx")
        .unwrap_or_else(|e| panic!("{e}"));

    let mut exchanges = Vec::new();
    for r in &requests {
        let exchange = nginx
            .exchange(&r.raw())
            .unwrap_or_else(|e| panic!("{} ({}): nginx did not answer: {e}", r.id, r.source));
        exchanges.push(exchange);
    }
    let sent: Vec<(u16, &str)> = requests
        .iter()
        .zip(&exchanges)
        .map(|(r, e)| (e.client_port, r.uri.as_str()))
        .collect();
    let audit = match_audit(nginx.stop(), &sent);
    let producer = audit
        .iter()
        .flatten()
        .next()
        .map(|e| e.producer.clone())
        .unwrap_or_default();
    println!("reference: {}, {producer}, CRS 3.3 PL1", nginx_version());

    let compared: Vec<Compared> = requests
        .iter()
        .zip(exchanges)
        .zip(audit)
        .map(|((r, exchange), audit)| {
            let outcome = rules.evaluate(&r.seclang_request());
            Compared {
                request: r.clone(),
                reference_status: exchange.status,
                reference_rules: audit.map(|e| e.rule_ids),
                seclang_status: outcome.blocking().map_or(200, |i| i.status),
                seclang_rules: outcome
                    .matches
                    .iter()
                    .filter(|m| m.log)
                    .map(|m| m.id)
                    .collect(),
            }
        })
        .collect();

    // The harness itself: the reference must be inspecting (a plain SQL injection is
    // blocked by CRS's libinjection rule, seen in the audit log).
    let probe = compared
        .iter()
        .find(|c| c.request.key() == "smoke/ref-sqli-1")
        .expect("smoke.jsonl has ref-sqli-1");
    assert!(
        probe.reference_status == 403
            && probe
                .reference_rules
                .as_ref()
                .is_some_and(|ids| ids.contains(&942100)),
        "the reference WAF is not inspecting: {}",
        probe.describe()
    );

    let mut by_family: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for c in &compared {
        let entry = by_family.entry(c.request.family.as_str()).or_default();
        entry.1 += 1;
        if c.reference() == c.seclang() {
            entry.0 += 1;
        }
    }
    let agreed = compared
        .iter()
        .filter(|c| c.reference() == c.seclang())
        .count();
    println!(
        "verdict agreement: {agreed}/{} ({:.1} %)",
        compared.len(),
        100.0 * agreed as f64 / compared.len() as f64
    );
    for (family, (a, n)) in &by_family {
        println!("  {family:<20} {a}/{n}");
    }
    for (expect, what) in [(Verdict::Block, "blocked"), (Verdict::Pass, "passed")] {
        let of: Vec<&Compared> = compared
            .iter()
            .filter(|c| c.request.expect == expect)
            .collect();
        println!(
            "expect {}: nginx+ModSecurity {what} {}/{n}, chatgate-seclang {what} {}/{n}",
            expect.name(),
            of.iter().filter(|c| c.reference() == expect).count(),
            of.iter().filter(|c| c.seclang() == expect).count(),
            n = of.len()
        );
    }

    // Where the verdicts agree the rules that fired may still differ: listed for a look
    // (not asserted), as a lead to engine differences the corpus does not yet turn into
    // a verdict.
    let mut only: BTreeMap<(u64, &str), usize> = BTreeMap::new();
    let mut differing = 0;
    println!("requests where the rules logged differ:");
    for c in &compared {
        if let Some((reference, seclang)) = c.rule_differences() {
            if !reference.is_empty() || !seclang.is_empty() {
                differing += 1;
                println!("  {}", c.describe());
            }
            for id in reference {
                *only.entry((id, "ModSecurity")).or_default() += 1;
            }
            for id in seclang {
                *only.entry((id, "chatgate-seclang")).or_default() += 1;
            }
        }
    }
    println!(
        "rules logged by one side only: in {differing} of the {} requests ModSecurity inspected",
        compared
            .iter()
            .filter(|c| c.reference_rules.is_some())
            .count()
    );
    for ((id, side), n) in &only {
        println!("  {id} only {side}: {n} requests");
    }

    let mut failures = Vec::new();
    for c in &compared {
        let disagrees = c.reference() != c.seclang();
        match (disagrees, listed.get(&c.request.key())) {
            (true, None) => failures.push(format!(
                "unlisted disagreement: {}\n  add to {DISAGREEMENTS}: | {} | {} | {} | <reason> |",
                c.describe(),
                c.request.key(),
                c.reference().name(),
                c.seclang().name()
            )),
            (true, Some(l)) if (l.reference, l.seclang) != (c.reference(), c.seclang()) => failures
                .push(format!(
                    "listed as reference {} / seclang {}, now: {}",
                    l.reference.name(),
                    l.seclang.name(),
                    c.describe()
                )),
            (true, Some(l)) => println!("explained: {} — {}", c.describe(), l.reason),
            (false, Some(_)) => failures.push(format!(
                "{} is listed in {DISAGREEMENTS} but both now say {}: remove it",
                c.request.key(),
                c.reference().name()
            )),
            (false, None) => {}
        }
    }
    let known: HashSet<String> = requests.iter().map(CorpusRequest::key).collect();
    for id in listed.keys() {
        if !known.contains(id) {
            failures.push(format!(
                "{id} is listed in {DISAGREEMENTS} but no corpus has it"
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
