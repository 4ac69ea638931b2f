//! Load benchmark: requests per second and latency percentiles through the full
//! chain (telemetry -> waf -> auth -> chat -> retrieval + completion-extractive), for
//! `chat` alone (no middleware) and for the bare `hello` component, on the same host in
//! the same run, with instance reuse on (Spin's defaults) and off (a fresh instance per
//! request, `--max-instance-reuse-count 1`).
//!
//! Then, at one connection, where the chain's cost goes: what a bare middleware hop costs
//! (`hello` alone and behind one, two and three `passthrough` middlewares, which only call
//! the next handler), and what each of the shipped middlewares adds in front of `chat`.
//!
//! `cargo bench -p chatgate-tests --bench gateway` (after `make build`).
//! Environment: `BENCH_CONNECTIONS` (default `1,16`), `BENCH_SECONDS` per scenario
//! (default 5), `BENCH_REUSE` (`on,off`; `cN`: reuse on with at most N requests at once
//! per instance), `BENCH_CLOSE=1` for a new connection per
//! request (`Connection: close`), `BENCH_ORIGIN` (a URL: the shipped manifest's scenarios
//! against a server already running there, see `elsewhere`), `BENCH_COMPONENTS` (`id=path,...`: other builds of the
//! shipped components, e.g. an old and a new one run back to back), `BENCH_VARIANTS`
//! (`id:label=path,...`: other builds of one middleware, each also measured alone in front
//! of `chat` in the breakdown), `BENCH_STAGE_SETS` (`telemetry+waf,...`: sets of the shipped
//! middlewares, each also measured in front of `chat` in the breakdown), `BENCH_ROUNDS` (default 1): how many times the
//! one-connection breakdown is repeated, its configurations taking turns, so that a
//! drift in the machine's load falls on all of them. The load generator shares the machine with the
//! gateway; numbers are for comparison between scenarios of one run, not absolute
//! capacity.

chatgate_tests::host_allocator!();

use bytes::Bytes;
use chatgate::reuse::InstanceReuse;
use chatgate_tests::stats::percentile_ms;
use chatgate_tests::{Gateway, project_manifest, wasm};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};

struct Scenario {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
}

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");

const RAG: Scenario = Scenario {
    name: "RAG answer (POST /v1/chat/completions)",
    method: "POST",
    path: "/v1/chat/completions",
    headers: &[DEV_KEY, ("content-type", "application/json")],
    body: r#"{"model":"chatgate-rag","messages":[{"role":"user","content":"What does the web application firewall block?"}]}"#,
};

const MODELS: Scenario = Scenario {
    name: "chain GET /v1/models",
    method: "GET",
    path: "/v1/models",
    headers: &[DEV_KEY],
    body: "",
};

const HEALTHZ: Scenario = Scenario {
    name: "chain GET /healthz",
    method: "GET",
    path: "/healthz",
    headers: &[],
    body: "",
};

const CHAT_ALONE_MODELS: Scenario = Scenario {
    name: "chat alone GET /v1/models",
    method: "GET",
    path: "/v1/models",
    headers: &[DEV_KEY],
    body: "",
};

const HELLO: Scenario = Scenario {
    name: "bare hello (GET /hello)",
    method: "GET",
    path: "/hello",
    headers: &[],
    body: "",
};

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.to_string())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// One keep-alive connection sending requests back to back until `until`.
async fn connection(
    base: String,
    scenario: &'static Scenario,
    until: Instant,
    close: bool,
) -> (Vec<Duration>, u64) {
    let authority = base.trim_start_matches("http://").to_string();
    let open = || async {
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        stream.set_nodelay(true).ok();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        sender
    };
    let mut sender = open().await;
    let mut latencies = Vec::new();
    let mut failures = 0;
    while Instant::now() < until {
        let started = Instant::now();
        // The first request uses the connection opened above.
        if close && (!latencies.is_empty() || failures > 0) {
            sender = open().await;
        }
        let mut request = http::Request::builder()
            .method(scenario.method)
            .uri(scenario.path)
            .header("host", &authority);
        if close {
            request = request.header("connection", "close");
        }
        for (k, v) in scenario.headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::from_static(scenario.body.as_bytes())))
            .unwrap();
        sender.ready().await.expect("connection ready");
        let response = sender.send_request(request).await.expect("response");
        let ok = response.status().is_success();
        response.into_body().collect().await.expect("body");
        if ok {
            latencies.push(started.elapsed());
        } else {
            failures += 1;
        }
    }
    (latencies, failures)
}

/// `BENCH_ONLY=<text>[|<text>...]`: only the scenarios whose name contains one of them
/// (e.g. to profile one).
fn wanted(scenario: &Scenario) -> bool {
    std::env::var("BENCH_ONLY")
        .ok()
        .is_none_or(|only| only.split('|').any(|text| scenario.name.contains(text)))
}

async fn run(
    base: &str,
    scenario: &'static Scenario,
    connections: u64,
    seconds: u64,
    close: bool,
) -> serde_json::Value {
    if !wanted(scenario) {
        return serde_json::json!({
            "scenario": scenario.name, "connections": connections, "skipped": true,
            "rps": f64::NAN, "p50_ms": f64::NAN, "p99_ms": f64::NAN, "requests": 0, "failures": 0,
        });
    }
    // Warm-up: fills caches, the instance pool's free lists and (with reuse) the idle
    // instances.
    let warm_until = Instant::now() + Duration::from_secs(2);
    let warm: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(base.to_string(), scenario, warm_until, close)))
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let started = Instant::now();
    let cpu_before = process_cpu_seconds();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(base.to_string(), scenario, until, close)))
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = process_cpu_seconds() - cpu_before;
    latencies.sort();
    let pct = |p: f64| percentile_ms(&latencies, p);
    serde_json::json!({
        "scenario": scenario.name,
        "connections": connections,
        "seconds": elapsed,
        "requests": latencies.len(),
        "failures": failures,
        "rps": latencies.len() as f64 / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "cpu_us_per_request": 1e6 * cpu / latencies.len() as f64,
    })
}

/// CPU time (user and system) this process has used, in seconds: the gateway's and the
/// load generator's, whatever the machine's other work, so that per request it moves much
/// less with the neighbours' load than latency does (the load generator's share is about
/// the same for every configuration).
fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command's closing parenthesis; utime and stime are the 12th
    // and 13th of them, in clock ticks (USER_HZ, 100 on Linux).
    let after_command = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_command.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// `BENCH_ORIGIN`: the scenarios of the shipped manifest against a server already
/// running there, e.g. `spin up` on the manifest the bench serves (the shipped one with
/// `hello` on `/hello`, quotas off), to compare another host with chatgate on one
/// machine. The other host's instance reuse is its own.
async fn elsewhere(origin: &str, connections: &[u64], seconds: u64, close: bool) {
    println!(
        "gateway benchmark against {origin}: {seconds} s per scenario, connections {connections:?}, {}",
        if close {
            "a new connection per request"
        } else {
            "keep-alive"
        }
    );
    let mut all = Vec::new();
    for &conns in connections {
        let hello = run(origin, &HELLO, conns, seconds, close).await;
        let hello_rps = hello["rps"].as_f64().unwrap_or(f64::NAN);
        print_row("there", &hello, hello_rps);
        let mut results = vec![hello];
        for scenario in [&HEALTHZ, &MODELS, &RAG] {
            let result = run(origin, scenario, conns, seconds, close).await;
            print_row("there", &result, hello_rps);
            results.push(result);
        }
        all.push(serde_json::json!({"origin": origin, "connections": conns, "results": results}));
    }
    println!("{}", serde_json::Value::Array(all));
}

fn print_row(reuse: &str, result: &serde_json::Value, hello_rps: f64) {
    if result["skipped"] == true {
        return;
    }
    let rps = result["rps"].as_f64().unwrap();
    println!(
        "{:<5} {:<40} {:>3} conn {:>8.0} req/s {:>6.1} % of hello   p50 {:>7.3} ms   p99 {:>7.3} ms   ({} requests, {} failures)",
        reuse,
        result["scenario"].as_str().unwrap(),
        result["connections"],
        rps,
        100.0 * rps / hello_rps,
        result["p50_ms"].as_f64().unwrap_or(f64::NAN),
        result["p99_ms"].as_f64().unwrap(),
        result["requests"],
        result["failures"],
    );
}

/// The shipped manifest, with the component builds `BENCH_COMPONENTS` names in place of
/// the shipped ones (`telemetry=/tmp/old/telemetry.wasm,auth=...`): to run an old and a
/// new build of a component back to back on the same host binary.
fn shipped_manifest() -> String {
    let mut manifest = project_manifest();
    for entry in env_list("BENCH_COMPONENTS", "") {
        let (id, path) = entry
            .split_once('=')
            .expect("BENCH_COMPONENTS: id=path entries");
        manifest = with_source(&manifest, id, path);
    }
    manifest
}

/// `manifest` with the `source` of `[component.<id>]` set to `path`.
fn with_source(manifest: &str, id: &str, path: &str) -> String {
    let section = manifest
        .find(&format!("[component.{id}]\n"))
        .unwrap_or_else(|| panic!("spin.toml has no [component.{id}]"));
    let line = section
        + manifest[section..]
            .find("\nsource = \"")
            .expect("a component's source")
        + 1;
    let end = line + manifest[line..].find('\n').expect("end of the source line");
    format!("{}source = {path:?}{}", &manifest[..line], &manifest[end..])
}

/// The shipped manifest with only the middleware entries named in `kept` (none: `chat`
/// and its dependencies alone).
fn chat_behind(kept: &[&str]) -> String {
    let manifest = shipped_manifest();
    let start = manifest
        .find("dependencies.middleware = [")
        .expect("spin.toml declares middleware");
    let end = start
        + manifest[start..]
            .find("]\n")
            .expect("end of the middleware list")
        + 2;
    let entries: Vec<&str> = manifest[start..end]
        .lines()
        .filter(|line| {
            kept.iter()
                .any(|id| line.contains(&format!("component = \"{id}\"")))
        })
        .collect();
    format!(
        "{}dependencies.middleware = [\n{}\n]\n{}",
        &manifest[..start],
        entries.join("\n"),
        &manifest[end..]
    )
}

/// `BENCH_STAGE_SETS=telemetry+waf,...`: sets of the shipped middlewares, each run in
/// front of `chat` in the breakdown, to compare what a set adds with what its stages add
/// alone (the whole chain has cost more than the sum of its stages).
fn stage_sets() -> Vec<String> {
    env_list("BENCH_STAGE_SETS", "")
}

/// `BENCH_VARIANTS=id:label=path,...`: other builds of one middleware, each run alone in
/// front of `chat` beside the shipped build in every round of the breakdown (e.g. builds
/// with one part of a stage left out, to find what the stage's time goes to).
fn variants() -> Vec<(String, String, String)> {
    env_list("BENCH_VARIANTS", "")
        .into_iter()
        .map(|entry| {
            let (name, path) = entry
                .split_once('=')
                .expect("BENCH_VARIANTS: id:label=path entries");
            let (id, label) = name
                .split_once(':')
                .expect("BENCH_VARIANTS: id:label=path entries");
            (id.to_string(), label.to_string(), path.to_string())
        })
        .collect()
}

/// `chat` behind the middleware `id` built from `path`.
fn chat_behind_variant(id: &str, path: &str) -> String {
    with_source(&chat_behind(&[id]), id, path)
}

/// `/v1/models` behind one middleware, for the per-stage breakdown.
const STAGES: [(&str, Scenario); 3] = [
    (
        "telemetry",
        Scenario {
            name: "chat behind telemetry only GET /v1/models",
            ..CHAT_ALONE_MODELS
        },
    ),
    (
        "waf",
        Scenario {
            name: "chat behind waf only GET /v1/models",
            ..CHAT_ALONE_MODELS
        },
    ),
    (
        "auth",
        Scenario {
            name: "chat behind auth only GET /v1/models",
            ..CHAT_ALONE_MODELS
        },
    ),
];

/// `hello` behind 0 to 3 pass-through middlewares, for the cost of a bare hop.
const HOPS: [Scenario; 4] = [
    Scenario {
        name: "hop: hello alone GET /hello",
        ..HELLO
    },
    Scenario {
        name: "hop: hello behind 1 pass-through GET /hello",
        ..HELLO
    },
    Scenario {
        name: "hop: hello behind 2 pass-throughs GET /hello",
        ..HELLO
    },
    Scenario {
        name: "hop: hello behind 3 pass-throughs GET /hello",
        ..HELLO
    },
];

/// One route, `/...`, served by `hello` behind `hops` instances of `passthrough` (each its
/// own component id, as distinct middleware would be).
fn hello_behind_passthroughs(hops: usize) -> String {
    let ids: Vec<String> = (0..hops).map(|i| format!("hop-{}", HOP_NAMES[i])).collect();
    let mut manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"hops\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n\
         dependencies.middleware = [{}]\n\
         [component.hello]\nsource = \"{}\"\n",
        ids.iter()
            .map(|id| format!("{{ component = \"{id}\" }}"))
            .collect::<Vec<_>>()
            .join(", "),
        wasm("hello").display()
    );
    for id in &ids {
        manifest.push_str(&format!(
            "[component.{id}]\nsource = \"{}\"\n",
            wasm("passthrough").display()
        ));
    }
    manifest
}

const HOP_NAMES: [&str; 3] = ["one", "two", "three"];

/// The median of `values` (NaN when empty).
fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Where the chain's time goes, at one connection: the bare hop (`hello` behind 0-3
/// pass-throughs) and each shipped middleware alone in front of `chat`, against the
/// whole chain. Every configuration runs once per round, in turn; the figures are the
/// median over rounds of each run's p50 (and the smallest p50).
#[allow(clippy::too_many_arguments)]
async fn breakdown(
    mode: &str,
    gateway: &Gateway,
    alone: &Gateway,
    variables: &[(&str, &str)],
    adjust: impl Fn(&mut chatgate::app::AppOptions) + Copy,
    seconds: u64,
    close: bool,
    all: &mut Vec<serde_json::Value>,
) {
    let rounds = env_number("BENCH_ROUNDS", 1).max(1);
    let mut started = Vec::new();
    for hops in (0..HOPS.len()).filter(|&hops| wanted(&HOPS[hops])) {
        let behind = Gateway::start_with(&hello_behind_passthroughs(hops), &[], adjust)
            .await
            .expect("hello behind pass-throughs");
        started.push((format!("{hops} hop(s)"), behind, &HOPS[hops]));
    }
    for (stage, scenario) in STAGES.iter().filter(|(_, scenario)| wanted(scenario)) {
        let behind = Gateway::start_with(&chat_behind(&[stage]), variables, adjust)
            .await
            .expect("chat behind one middleware");
        started.push((stage.to_string(), behind, scenario));
    }
    let stage_sets = stage_sets();
    for set in &stage_sets {
        let scenario: &'static Scenario = Box::leak(Box::new(Scenario {
            name: Box::leak(format!("chat behind {set} GET /v1/models").into_boxed_str()),
            ..CHAT_ALONE_MODELS
        }));
        if !wanted(scenario) {
            continue;
        }
        let kept: Vec<&str> = set.split('+').collect();
        let behind = Gateway::start_with(&chat_behind(&kept), variables, adjust)
            .await
            .expect("chat behind a set of middlewares");
        started.push((set.clone(), behind, scenario));
    }
    let variants = variants();
    for (id, label, path) in &variants {
        let scenario: &'static Scenario = Box::leak(Box::new(Scenario {
            name: Box::leak(format!("chat behind {id} ({label}) GET /v1/models").into_boxed_str()),
            ..CHAT_ALONE_MODELS
        }));
        if !wanted(scenario) {
            continue;
        }
        let behind = Gateway::start_with(&chat_behind_variant(id, path), variables, adjust)
            .await
            .expect("chat behind a variant");
        started.push((format!("{id}:{label}"), behind, scenario));
    }
    // The chain and `chat` alone run on the gateways of the main scenarios.
    let mut configurations: Vec<(String, &str, &'static Scenario)> = started
        .iter()
        .map(|(label, behind, scenario)| (label.clone(), behind.base.as_str(), *scenario))
        .collect();
    configurations.push(("chat alone".into(), &alone.base, &CHAT_ALONE_MODELS));
    configurations.push(("chain".into(), &gateway.base, &MODELS));
    let mut p50s: Vec<Vec<f64>> = vec![Vec::new(); configurations.len()];
    let mut cpus: Vec<Vec<f64>> = vec![Vec::new(); configurations.len()];
    for _ in 0..rounds {
        for (i, (_, base, scenario)) in configurations.iter().enumerate() {
            let result = run(base, scenario, 1, seconds, close).await;
            if result["skipped"] == true {
                continue;
            }
            p50s[i].push(1000.0 * result["p50_ms"].as_f64().unwrap_or(f64::NAN));
            cpus[i].push(result["cpu_us_per_request"].as_f64().unwrap_or(f64::NAN));
            all.push(serde_json::json!({"reuse": mode, "breakdown": configurations[i].0, "result": result}));
        }
    }
    let summary: Vec<Row> = p50s
        .iter_mut()
        .zip(cpus.iter_mut())
        .map(|(runs, cpu)| Row {
            p50: median(runs),
            min: runs.iter().copied().fold(f64::NAN, f64::min),
            cpu: median(cpu),
        })
        .collect();
    let by_label = |label: &str| {
        configurations
            .iter()
            .position(|(l, _, _)| l == label)
            .map_or(Row::NONE, |i| summary[i])
    };
    println!(
        "{mode:<5} breakdown at 1 connection, {rounds} round(s) of {seconds} s: median of the runs' p50 (smallest p50), µs; median CPU time of the process per request, µs"
    );
    let hello = by_label("0 hop(s)");
    println!("{mode:<5}   hello alone                 {}", hello.show());
    for hops in 1..HOPS.len() {
        let row = by_label(&format!("{hops} hop(s)"));
        println!(
            "{mode:<5}   hello behind {hops} pass-through(s) {}   bare hop: +{:.0} µs, {:.0} µs per hop",
            row.show(),
            row.p50 - hello.p50,
            (row.p50 - hello.p50) / hops as f64
        );
    }
    let chat = by_label("chat alone");
    println!("{mode:<5}   chat alone /v1/models       {}", chat.show());
    for (stage, _) in &STAGES {
        let row = by_label(stage);
        println!(
            "{mode:<5}   chat behind {stage:<15} {}   stage adds {:>5.0} µs, CPU {:>5.0} µs",
            row.show(),
            row.p50 - chat.p50,
            row.cpu - chat.cpu
        );
    }
    for set in &stage_sets {
        let row = by_label(set);
        let (singles, singles_cpu) = set
            .split('+')
            .map(by_label)
            .fold((0.0, 0.0), |(p, c), stage| {
                (p + stage.p50 - chat.p50, c + stage.cpu - chat.cpu)
            });
        println!(
            "{mode:<5}   chat behind {set:<15} {}   set adds {:>5.0} µs, CPU {:>5.0} µs; its stages alone {singles:.0} µs, CPU {singles_cpu:.0} µs",
            row.show(),
            row.p50 - chat.p50,
            row.cpu - chat.cpu
        );
    }
    for (id, label, _) in &variants {
        let row = by_label(&format!("{id}:{label}"));
        let name = format!("{id} ({label})");
        println!(
            "{mode:<5}   chat behind {name:<15} {}   stage adds {:>5.0} µs, CPU {:>5.0} µs",
            row.show(),
            row.p50 - chat.p50,
            row.cpu - chat.cpu
        );
    }
    let chain = by_label("chain");
    println!(
        "{mode:<5}   chain /v1/models            {}   the three middlewares add {:.0} µs (goal < 150), CPU {:.0} µs",
        chain.show(),
        chain.p50 - chat.p50,
        chain.cpu - chat.cpu
    );
    for (label, behind, _) in &started {
        let instances = behind.app().instances();
        println!(
            "{mode:<5}   instances created behind {label}: {}",
            instances.created
        );
    }
    for (_, behind, _) in started {
        behind.stop().await;
    }
}

/// One configuration of the breakdown: the median and smallest of its runs' p50, and the
/// median of their CPU time per request, all in µs.
#[derive(Clone, Copy)]
struct Row {
    p50: f64,
    min: f64,
    cpu: f64,
}

impl Row {
    const NONE: Row = Row {
        p50: f64::NAN,
        min: f64::NAN,
        cpu: f64::NAN,
    };

    fn show(&self) -> String {
        format!("{:>7.0} ({:.0})  cpu {:>5.0}", self.p50, self.min, self.cpu)
    }
}

/// The process's resident memory, in KiB.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// What an idle instance of the full chain holds: the resident memory with a burst's
/// instances kept idle for reuse, less the same once their idle timeout has dropped them.
async fn idle_instance_memory(gateway: &Gateway, close: bool) {
    let settle = || tokio::time::sleep(Duration::from_millis(1500));
    settle().await;
    let empty = rss_kib();
    // 64 RAG answers at once leave several instances behind, each grown by a request.
    let until = Instant::now() + Duration::from_millis(500);
    let burst: Vec<_> = (0..64)
        .map(|_| tokio::spawn(connection(gateway.base.clone(), &RAG, until, close)))
        .collect();
    for task in burst {
        task.await.unwrap();
    }
    let idle = gateway.app().instances().idle;
    let with_idle = rss_kib();
    settle().await;
    let after = rss_kib();
    println!(
        "on    idle instances: {idle} held {} KiB resident ({} KiB each); with none: {empty} KiB before, {after} KiB after",
        with_idle.saturating_sub(after),
        with_idle.saturating_sub(after) / (idle.max(1) as u64),
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let connections: Vec<u64> = env_list("BENCH_CONNECTIONS", "1,16")
        .iter()
        .map(|c| c.parse().expect("BENCH_CONNECTIONS: numbers"))
        .collect();
    let seconds = env_number("BENCH_SECONDS", 5);
    let modes = env_list("BENCH_REUSE", "on,off");
    let close = std::env::var("BENCH_CLOSE").is_ok_and(|v| v == "1");
    let with_hello = format!(
        "{}\n[[trigger.http]]\nroute = \"/hello\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"{}\"\n",
        shipped_manifest(),
        wasm("hello").display()
    );
    let chat_alone = chat_behind(&[]);
    // Quotas off: one identity sends all the load.
    let unlimited = [
        ("quota_requests_per_minute", "0"),
        ("quota_tokens_per_minute", "0"),
    ];
    let runtime = tokio::runtime::Runtime::new().unwrap();
    if let Ok(origin) = std::env::var("BENCH_ORIGIN") {
        runtime.block_on(elsewhere(&origin, &connections, seconds, close));
        return;
    }
    runtime.block_on(async {
        println!(
            "chatgate gateway benchmark: {seconds} s per scenario, {} cores, connections {connections:?}, {}",
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            if close { "a new connection per request" } else { "keep-alive" }
        );
        let mut all = Vec::new();
        for mode in &modes {
            let reuse = match mode.as_str() {
                "on" => InstanceReuse::default(),
                "off" => InstanceReuse::SINGLE_USE,
                // `cN`: reuse on, at most N requests at once in one instance.
                other => match other.strip_prefix('c').and_then(|n| n.parse().ok()) {
                    Some(n) => InstanceReuse {
                        max_concurrent: chatgate::reuse::Range::Value(n),
                        ..InstanceReuse::default()
                    },
                    None => panic!("BENCH_REUSE: `{other}` is not on, off or cN"),
                },
            };
            // The host's probes are off: `/healthz` goes through the chain to `chat`.
            let adjust = |options: &mut chatgate::app::AppOptions| {
                options.reuse = reuse;
                options.probes = false;
                // Guests' log lines go where `chatgate up` sends them (stdout), unless
                // `BENCH_CAPTURE=1` keeps them in memory (to see what writing them costs).
                options.capture_guest_stdout = std::env::var("BENCH_CAPTURE").is_ok_and(|v| v == "1");
            };
            let gateway = Gateway::start_with(&with_hello, &unlimited, adjust)
                .await
                .expect("gateway");
            let alone = Gateway::start_with(&chat_alone, &unlimited, adjust)
                .await
                .expect("chat alone");
            for &conns in &connections {
                let hello = run(&gateway.base, &HELLO, conns, seconds, close).await;
                let hello_rps = hello["rps"].as_f64().unwrap_or(f64::NAN);
                print_row(mode, &hello, hello_rps);
                let mut results = vec![hello];
                for (base, scenario) in [
                    (&gateway.base, &HEALTHZ),
                    (&gateway.base, &MODELS),
                    (&alone.base, &CHAT_ALONE_MODELS),
                    (&gateway.base, &RAG),
                ] {
                    let result = run(base, scenario, conns, seconds, close).await;
                    print_row(mode, &result, hello_rps);
                    results.push(result);
                }
                let p50 = |i: usize| results[i]["p50_ms"].as_f64().unwrap_or(f64::NAN);
                println!(
                    "{mode:<5} the three middlewares add {:.0} µs p50 at {conns} connection(s) (chain /v1/models - chat alone)",
                    1000.0 * (p50(2) - p50(3))
                );
                all.push(serde_json::json!({"reuse": mode, "connections": conns, "results": results}));
            }
            breakdown(mode, &gateway, &alone, &unlimited, adjust, seconds, close, &mut all).await;
            let instances = gateway.app().instances();
            println!(
                "{mode:<5} instances created: {} (live {}, idle {})",
                instances.created, instances.live, instances.idle
            );
            if mode == "on" && std::env::var("BENCH_ONLY").is_err() {
                idle_instance_memory(&gateway, close).await;
            }
            gateway.stop().await;
            alone.stop().await;
        }
        println!("{}", serde_json::Value::Array(all));
    });
}
