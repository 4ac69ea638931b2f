//! Gateway-added latency: time to first token and total time of a chat
//! completion through the full chain (telemetry -> waf -> auth -> chat ->
//! retrieval + completion-openai) against the same local OpenAI-compatible
//! upstream called directly.
//!
//! `cargo bench -p chatgate-tests --bench latency` (after `make build`).
//! Environment: `BENCH_REQUESTS` per scenario (default 300). Requests are
//! sequential on one keep-alive connection, so the numbers are latencies, not
//! throughput; the upstream answers at once, so the difference between the two
//! paths is what the gateway adds.

use bytes::Bytes;
use chatgate_tests::stats::percentile_ms;
use chatgate_tests::upstream::Upstream;
use chatgate_tests::{Gateway, OPENAI_COMPLETION_LINE, manifest_with_completion_line};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::time::{Duration, Instant};

const ANSWER: &str = "The Web Application Firewall inspects each request and blocks common web attacks such as SQL injection and cross-site scripting [doc1].";
const QUESTION: &str = "What does the web application firewall block?";

struct Timing {
    first_token: Duration,
    total: Duration,
}

/// One sequential client on a keep-alive connection.
struct Client {
    authority: String,
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Client {
    async fn connect(origin: &str) -> Client {
        let authority = origin.trim_start_matches("http://").to_string();
        let stream = tokio::net::TcpStream::connect(&authority)
            .await
            .expect("connect");
        stream.set_nodelay(true).ok();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(connection);
        Client { authority, sender }
    }

    /// Posts `body` to `path`; the first token is the first body bytes that
    /// carry answer text (`"content":"` followed by a non-empty string).
    async fn chat(&mut self, path: &str, body: &serde_json::Value) -> Timing {
        let request = http::Request::post(path)
            .header("host", &self.authority)
            .header("content-type", "application/json")
            .header("authorization", "Bearer chatgate-dev-key")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let started = Instant::now();
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("response");
        assert!(response.status().is_success(), "{}", response.status());
        let mut body = response.into_body();
        let mut seen = Vec::new();
        let mut first_token = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("body");
            if let Some(data) = frame.data_ref() {
                seen.extend_from_slice(data);
                if first_token.is_none() && carries_text(&seen) {
                    first_token = Some(started.elapsed());
                }
            }
        }
        let total = started.elapsed();
        Timing {
            first_token: first_token.expect("the answer has text"),
            total,
        }
    }
}

fn carries_text(seen: &[u8]) -> bool {
    let text = String::from_utf8_lossy(seen);
    text.match_indices("\"content\":\"")
        .any(|(at, marker)| !text[at + marker.len()..].starts_with('"'))
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Summary {
    name: String,
    first_token: Vec<Duration>,
    total: Vec<Duration>,
}

async fn measure(
    name: &str,
    origin: &str,
    path: &str,
    body: serde_json::Value,
    requests: usize,
) -> Summary {
    let mut client = Client::connect(origin).await;
    for _ in 0..requests / 10 {
        client.chat(path, &body).await;
    }
    let mut first_token = Vec::with_capacity(requests);
    let mut total = Vec::with_capacity(requests);
    for _ in 0..requests {
        let timing = client.chat(path, &body).await;
        first_token.push(timing.first_token);
        total.push(timing.total);
    }
    first_token.sort();
    total.sort();
    Summary {
        name: name.to_string(),
        first_token,
        total,
    }
}

fn print(summary: &Summary, streamed: bool) -> serde_json::Value {
    let ttft = (
        percentile_ms(&summary.first_token, 0.5),
        percentile_ms(&summary.first_token, 0.99),
    );
    let total = (
        percentile_ms(&summary.total, 0.5),
        percentile_ms(&summary.total, 0.99),
    );
    if streamed {
        println!(
            "{:<34} first token p50 {:>6.2} ms  p99 {:>6.2} ms   total p50 {:>6.2} ms  p99 {:>6.2} ms",
            summary.name, ttft.0, ttft.1, total.0, total.1
        );
    } else {
        println!(
            "{:<34} {:>48} total p50 {:>6.2} ms  p99 {:>6.2} ms",
            summary.name, "", total.0, total.1
        );
    }
    serde_json::json!({
        "scenario": summary.name,
        "requests": summary.total.len(),
        "first_token_p50_ms": ttft.0, "first_token_p99_ms": ttft.1,
        "total_p50_ms": total.0, "total_p99_ms": total.1,
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let requests = env_number("BENCH_REQUESTS", 300);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let upstream = Upstream::openai(ANSWER).await;
        let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
        let gateway = Gateway::start(
            &manifest,
            &[
                ("openai_origin", &upstream.origin),
                ("openai_api_key", "sk-bench"),
                ("quota_requests_per_minute", "0"),
                ("quota_tokens_per_minute", "0"),
            ],
        )
        .await
        .expect("gateway");
        println!(
            "chatgate latency benchmark: {requests} sequential requests per scenario, {} cores",
            std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(0)
        );

        let mut results = Vec::new();
        for streamed in [true, false] {
            // The gateway picks its default model, the upstream's `openai_model`.
            let question = serde_json::json!({
                "stream": streamed,
                "messages": [{"role": "user", "content": QUESTION}],
            });
            let mut direct_question = question.clone();
            direct_question["model"] = serde_json::json!("gpt-4o-mini");
            let mode = if streamed { "streamed" } else { "not streamed" };
            let direct = measure(
                &format!("upstream directly, {mode}"),
                &upstream.origin,
                "/v1/chat/completions",
                direct_question,
                requests,
            )
            .await;
            let chain = measure(
                &format!("through chatgate, {mode}"),
                &gateway.base,
                "/v1/chat/completions",
                question,
                requests,
            )
            .await;
            results.push(print(&direct, streamed));
            results.push(print(&chain, streamed));
            println!(
                "{:<34} first token p50 +{:.2} ms, total p50 +{:.2} ms",
                "  added by the gateway",
                percentile_ms(&chain.first_token, 0.5) - percentile_ms(&direct.first_token, 0.5),
                percentile_ms(&chain.total, 0.5) - percentile_ms(&direct.total, 0.5),
            );
        }
        println!("{}", serde_json::Value::Array(results));
        gateway.stop().await;
    });
}
