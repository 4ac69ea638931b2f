//! Per-request cost of the WAF (issue 11), the same requests through every contender:
//!
//! - nginx + ModSecurity v3 + Debian's CRS 3.3 at paranoia level 1 (the reference WAF of
//!   `tests/src/waf_reference.rs`), against the same nginx without `modsecurity on`, over
//!   one keep-alive connection: the WAF's share is the difference;
//! - chatgate-seclang natively, CRS 3.3 PL1 (`RuleSet::evaluate`, as
//!   `crates/seclang/benches/evaluate.rs` measures it);
//! - the `waf` component inside Wasm, through the host: `waf` in front of the `hello` test
//!   component against `hello` alone, with the default rules (`target/chatgate-waf/waf.wasm`,
//!   from `make build`) and with CRS PL1 (preloaded here by `target/release/chatgate waf`
//!   into `target/chatgate-waf-bench/crs`). Needs the built components (`make build`).
//!
//! The requests are those of `crates/seclang/benches/evaluate.rs`: a 2 KB chat completion
//! and a 1 KB query-string GET. `cargo bench -p chatgate-tests --bench waf`;
//! `WAF_BENCH_RUNS` sets the timed runs per figure (default 2000).

chatgate_tests::host_allocator!();

use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};
use std::process::Command;

use chatgate_seclang::{LoadOptions, Request, RuleSet};
use chatgate_tests::stats::percentile_ms;
use chatgate_tests::waf_reference::{
    CRS_ENTRY, Connection, NginxOptions, ReferenceNginx, nginx_version,
};
use chatgate_tests::{Gateway, repo_root, wasm};

/// The requests `cargo bench -p chatgate-seclang` measures (a 2 KB chat completion and a
/// 1 KB query-string GET), from its own module, so that both benches time the same bytes.
#[allow(dead_code)]
#[path = "../../crates/seclang/benches/common/mod.rs"]
mod seclang_bench;
use seclang_bench::{chat_2kb, get_1kb};

/// The request's bytes on the wire.
fn raw(r: &Request) -> Vec<u8> {
    let mut text = format!("{} {} {}\r\n", r.method, r.uri, r.protocol);
    for (name, value) in &r.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    bytes.extend_from_slice(&r.body);
    bytes
}

/// p50 and p99 in microseconds of `runs` timed calls of `f` after a warm-up; `f` returns
/// the status the request got, which must be the same every time.
fn measure(runs: usize, mut f: impl FnMut() -> u16) -> Figure {
    let status = f();
    for _ in 0..runs / 10 {
        assert_eq!(f(), status, "the answer changed during the warm-up");
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let got = std::hint::black_box(f());
            let took = start.elapsed();
            assert_eq!(got, status, "the answer changed during the run");
            took
        })
        .collect();
    times.sort();
    Figure {
        p50: percentile_ms(&times, 0.5) * 1000.0,
        p99: percentile_ms(&times, 0.99) * 1000.0,
        status,
    }
}

#[derive(Clone, Copy)]
struct Figure {
    p50: f64,
    p99: f64,
    status: u16,
}

struct Table {
    rows: Vec<(String, String, Figure)>,
}

impl Table {
    fn add(&mut self, contender: &str, request: &str, figure: Figure) {
        println!(
            "  {contender:<48} {request:<10} p50 {:>8.1} µs  p99 {:>8.1} µs  ({})",
            figure.p50, figure.p99, figure.status
        );
        self.rows.push((contender.into(), request.into(), figure));
    }

    /// `with` minus `without`, request by request.
    fn add_share(&mut self, contender: &str, with: &str, without: &str) {
        for request in ["chat 2 KB", "GET 1 KB"] {
            let find = |c: &str| {
                self.rows
                    .iter()
                    .find(|(rc, rr, _)| rc == c && rr == request)
                    .map(|r| r.2)
            };
            if let (Some(w), Some(wo)) = (find(with), find(without)) {
                self.add(
                    contender,
                    request,
                    Figure {
                        p50: w.p50 - wo.p50,
                        p99: w.p99 - wo.p99,
                        status: w.status,
                    },
                );
            }
        }
    }

    fn print(&self) {
        println!("\n| contender | request | p50 µs | p99 µs | status |");
        println!("| --- | --- | ---: | ---: | ---: |");
        for (contender, request, f) in &self.rows {
            println!(
                "| {contender} | {request} | {:.1} | {:.1} | {} |",
                f.p50, f.p99, f.status
            );
        }
    }
}

fn nginx(table: &mut Table, runs: usize, requests: &[(&str, Request)]) {
    for (name, modsecurity) in [
        ("nginx alone (baseline)", false),
        ("nginx + ModSecurity + CRS PL1", true),
    ] {
        let reference = ReferenceNginx::start(NginxOptions {
            modsecurity,
            audit_log: false,
        })
        .unwrap_or_else(|e| panic!("{e}"));
        let mut connection = Connection::open(reference.address()).expect("connecting to nginx");
        for (request, r) in requests {
            let bytes = raw(r);
            let figure = measure(runs, || {
                connection.round_trip(&bytes).expect("nginx answers")
            });
            table.add(name, request, figure);
        }
        drop(connection);
        reference.stop();
    }
    table.add_share(
        "nginx: ModSecurity's share (difference)",
        "nginx + ModSecurity + CRS PL1",
        "nginx alone (baseline)",
    );
}

fn seclang(table: &mut Table, runs: usize, requests: &[(&str, Request)]) {
    let rules = RuleSet::load(
        CRS_ENTRY,
        LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e} (install Debian's modsecurity-crs: make test-deps)"));
    for (request, r) in requests {
        let figure = measure(runs, || {
            rules
                .evaluate(std::hint::black_box(r))
                .blocking()
                .map_or(200, |i| i.status)
        });
        table.add("chatgate-seclang native, CRS PL1", request, figure);
    }
}

/// A manifest with one route served by `hello`, behind the `waf` component at `waf` if
/// given (a preloaded `waf.wasm`).
fn manifest(waf: Option<&Path>) -> String {
    let hello = format!(
        "[component.hello]\nsource = \"{}\"\n",
        wasm("hello").display()
    );
    let (middleware, waf_component) = match waf {
        Some(path) => (
            r#"{ component = "waf", inherit_configuration = ["variables"] }"#,
            format!("[component.waf]\nsource = \"{}\"\n", path.display()),
        ),
        None => ("", String::new()),
    };
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"waf-bench\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n\
         dependencies.middleware = [{middleware}]\n{hello}{waf_component}"
    )
}

/// The `waf` component preloaded by `chatgate waf` (the command `make build` preloads the
/// default rules with) with `rules`, into `target/chatgate-waf-bench/<name>`; `None`
/// (with the reason printed) without it.
fn preloaded_waf(name: &str, rules: &Path) -> Option<PathBuf> {
    let root = repo_root();
    let chatgate = root.join("target/release/chatgate");
    let out = root.join("target/chatgate-waf-bench").join(name);
    let output = Command::new(&chatgate)
        .current_dir(&root)
        .args(["waf", "--rules"])
        .arg(rules)
        .arg("--out")
        .arg(&out)
        .arg("--component")
        .arg(wasm("waf"))
        .output();
    match output {
        Ok(o) if o.status.success() => {
            let report = String::from_utf8_lossy(&o.stderr);
            println!(
                "waf preloaded with {name} by `chatgate waf`: {}",
                report
                    .lines()
                    .find(|l| l.starts_with("compiled"))
                    .unwrap_or("")
            );
            Some(out.join("waf.wasm"))
        }
        Ok(o) => {
            println!(
                "waf with {name} not measured: `{} waf` failed: {}",
                chatgate.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            );
            None
        }
        Err(e) => {
            println!(
                "waf with {name} not measured: {}: {e} (`make build` builds it)",
                chatgate.display()
            );
            None
        }
    }
}

/// CRS 3.3 PL1 (Debian's entry point, the rules the engine cannot honour left out, as
/// natively).
fn crs_waf() -> Option<PathBuf> {
    preloaded_waf("crs", Path::new(CRS_ENTRY))
}

/// One rule that never matches: what the waf stage costs whatever its rules.
fn one_rule_waf() -> Option<PathBuf> {
    let dir = repo_root().join("target/chatgate-waf-bench");
    std::fs::create_dir_all(&dir).expect("creating target/chatgate-waf-bench");
    let rules = dir.join("one-rule.conf");
    std::fs::write(
        &rules,
        "SecRule REQUEST_METHOD \"@streq NONE\" \"id:1,phase:1,deny,status:403\"\n",
    )
    .expect("writing one-rule.conf");
    preloaded_waf("one-rule", &rules)
}

fn in_wasm(table: &mut Table, runs: usize, requests: &[(&str, Request)]) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let default_waf = repo_root().join("target/chatgate-waf/waf.wasm");
    if !default_waf.exists() {
        println!(
            "waf with the default rules not measured: {} is missing (`make build` writes it)",
            default_waf.display()
        );
    }
    let crs = crs_waf();
    let one_rule = one_rule_waf();
    let contenders = [
        ("hello alone (Wasm baseline)", None),
        ("waf one rule + hello", one_rule.as_deref()),
        (
            "waf default rules + hello",
            default_waf.exists().then_some(default_waf.as_path()),
        ),
        ("waf CRS PL1 + hello", crs.as_deref()),
    ];
    for (i, (name, waf)) in contenders.into_iter().enumerate() {
        if i > 0 && waf.is_none() {
            continue;
        }
        let gateway = runtime
            .block_on(Gateway::start_with(&manifest(waf), &[], |options| {
                options.probes = false;
            }))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut connection = Connection::open(gateway.address()).expect("connecting");
        for (request, r) in requests {
            let bytes = raw(r);
            let figure = measure(runs, || {
                connection.round_trip(&bytes).expect("the gateway answers")
            });
            table.add(name, request, figure);
        }
        drop(connection);
        runtime.block_on(gateway.stop());
    }
    for (share, with) in [
        ("Wasm: waf's share, one rule", "waf one rule + hello"),
        (
            "Wasm: waf's share, default rules",
            "waf default rules + hello",
        ),
        ("Wasm: waf's share, CRS PL1", "waf CRS PL1 + hello"),
    ] {
        table.add_share(share, with, "hello alone (Wasm baseline)");
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is not supported.
    let runs: usize = std::env::var("WAF_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let requests = [("chat 2 KB", chat_2kb()), ("GET 1 KB", get_1kb())];
    for (name, r) in &requests {
        println!("{name}: {} bytes on the wire", raw(r).len());
    }
    println!(
        "{}, {runs} timed runs per figure, keep-alive connection for nginx",
        nginx_version()
    );
    let mut table = Table { rows: Vec::new() };
    nginx(&mut table, runs, &requests);
    seclang(&mut table, runs, &requests);
    in_wasm(&mut table, runs, &requests);
    table.print();
}
