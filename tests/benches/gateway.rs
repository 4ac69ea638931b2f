//! Load benchmark: requests per second and latency percentiles through the full
//! chain (telemetry -> waf -> auth -> chat -> retrieval + completion-extractive) and
//! for the bare `hello` component, on the same host in the same run.
//!
//! `cargo bench -p chatgate-tests --bench gateway` (after `make build`).
//! Environment: `BENCH_CONNECTIONS` (default 16), `BENCH_SECONDS` per scenario (default 10).
//! The load generator shares the machine with the gateway; numbers are for comparison
//! between scenarios of one run, not absolute capacity.

use bytes::Bytes;
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

const CHAIN: Scenario = Scenario {
    name: "full chain (POST /v1/chat/completions)",
    method: "POST",
    path: "/v1/chat/completions",
    headers: &[
        ("authorization", "Bearer chatgate-dev-key"),
        ("content-type", "application/json"),
    ],
    body: r#"{"model":"chatgate-rag","messages":[{"role":"user","content":"What does the web application firewall block?"}]}"#,
};

const CHAIN_NO_RAG: Scenario = Scenario {
    name: "full chain, no retrieval (GET /v1/models)",
    method: "GET",
    path: "/v1/models",
    headers: &[("authorization", "Bearer chatgate-dev-key")],
    body: "",
};

const HELLO: Scenario = Scenario {
    name: "bare hello component (GET /hello)",
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

/// One keep-alive connection sending requests back to back until `until`.
async fn connection(
    base: String,
    scenario: &'static Scenario,
    until: Instant,
) -> (Vec<Duration>, u64) {
    let authority = base.trim_start_matches("http://").to_string();
    let stream = tokio::net::TcpStream::connect(&authority)
        .await
        .expect("connect");
    stream.set_nodelay(true).ok();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut latencies = Vec::new();
    let mut failures = 0;
    while Instant::now() < until {
        let mut request = http::Request::builder()
            .method(scenario.method)
            .uri(scenario.path)
            .header("host", &authority);
        for (k, v) in scenario.headers {
            request = request.header(*k, *v);
        }
        let request = request
            .body(Full::new(Bytes::from_static(scenario.body.as_bytes())))
            .unwrap();
        let started = Instant::now();
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

async fn run(
    base: &str,
    scenario: &'static Scenario,
    connections: u64,
    seconds: u64,
) -> serde_json::Value {
    // Warm-up: fills caches and the instance pool's free lists.
    let warm_until = Instant::now() + Duration::from_secs(2);
    let warm: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(base.to_string(), scenario, warm_until)))
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..connections)
        .map(|_| tokio::spawn(connection(base.to_string(), scenario, until)))
        .collect();
    let mut latencies = Vec::new();
    let mut failures = 0;
    for task in tasks {
        let (l, f) = task.await.unwrap();
        latencies.extend(l);
        failures += f;
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    let pct = |p: f64| percentile_ms(&latencies, p);
    let result = serde_json::json!({
        "scenario": scenario.name,
        "connections": connections,
        "seconds": elapsed,
        "requests": latencies.len(),
        "failures": failures,
        "rps": latencies.len() as f64 / elapsed,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    });
    println!(
        "{:<42} {:>9.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({} requests, {} failures)",
        scenario.name,
        result["rps"].as_f64().unwrap(),
        result["p50_ms"].as_f64().unwrap(),
        result["p99_ms"].as_f64().unwrap(),
        result["requests"],
        failures
    );
    result
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let connections = env_number("BENCH_CONNECTIONS", 16);
    let seconds = env_number("BENCH_SECONDS", 10);
    let manifest = format!(
        "{}\n[[trigger.http]]\nroute = \"/hello\"\ncomponent = \"hello\"\n[component.hello]\nsource = \"{}\"\n",
        project_manifest(),
        wasm("hello").display()
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        // Quotas off: one identity sends all the load.
        let unlimited = [
            ("quota_requests_per_minute", "0"),
            ("quota_tokens_per_minute", "0"),
        ];
        let gateway = Gateway::start(&manifest, &unlimited)
            .await
            .expect("gateway");
        println!("chatgate gateway benchmark: {connections} connections, {seconds} s per scenario, {} cores", std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0));
        let hello = run(&gateway.base, &HELLO, connections, seconds).await;
        let models = run(&gateway.base, &CHAIN_NO_RAG, connections, seconds).await;
        let chain = run(&gateway.base, &CHAIN, connections, seconds).await;
        println!("{}", serde_json::json!({"hello": hello, "chain_models": models, "chain": chain}));
        gateway.stop().await;
    });
}
