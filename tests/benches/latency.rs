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
//!
//! Each scenario also prints where its first token's time went, as medians of four
//! spans that add up to the time to first token: until the upstream has the whole
//! request (the gateway's inward path: middleware, `chat`, retrieval, prompt budget,
//! `completion-openai`'s set-up and the outbound send), from there to the response
//! head at the client (the upstream's answer, `completion-openai` reading its first
//! chunk, `chat` starting its answer, the outward path), from the head to the first
//! body bytes, and from those to the first answer text (`chat`'s first event carries the
//! role and citations, the text comes in the next).

chatgate_tests::host_allocator!();

use bytes::Bytes;
use chatgate_tests::stats::percentile_ms;
use chatgate_tests::upstream::{Upstream, openai_answer};
use chatgate_tests::{Gateway, OPENAI_COMPLETION_LINE, manifest_with_completion_line};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const ANSWER: &str = "The Web Application Firewall inspects each request and blocks common web attacks such as SQL injection and cross-site scripting [doc1].";
const QUESTION: &str = "What does the web application firewall block?";

/// When the upstream last had a whole request: its handler runs once the request's
/// body has arrived, and the requests are sequential.
static UPSTREAM_HAD_REQUEST: Mutex<Option<Instant>> = Mutex::new(None);

struct Timing {
    first_token: Duration,
    total: Duration,
    /// Until the upstream had the whole request.
    to_upstream: Duration,
    /// Until the response head arrived.
    head: Duration,
    /// Until the first body bytes arrived.
    first_frame: Duration,
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
        UPSTREAM_HAD_REQUEST.lock().unwrap().take();
        let started = Instant::now();
        self.sender.ready().await.expect("connection ready");
        let response = self.sender.send_request(request).await.expect("response");
        let head = started.elapsed();
        assert!(response.status().is_success(), "{}", response.status());
        let mut body = response.into_body();
        let mut seen = Vec::new();
        let mut first_token = None;
        let mut first_frame = None;
        while let Some(frame) = body.frame().await {
            let frame = frame.expect("body");
            if let Some(data) = frame.data_ref() {
                first_frame.get_or_insert_with(|| started.elapsed());
                seen.extend_from_slice(data);
                if first_token.is_none() && carries_text(&seen) {
                    first_token = Some(started.elapsed());
                }
            }
        }
        let total = started.elapsed();
        let upstream_at = UPSTREAM_HAD_REQUEST
            .lock()
            .unwrap()
            .take()
            .expect("the upstream was asked");
        Timing {
            first_token: first_token.expect("the answer has text"),
            total,
            to_upstream: upstream_at.saturating_duration_since(started),
            head,
            first_frame: first_frame.expect("the answer has a body"),
        }
    }
}

/// Whether the body so far holds answer text: a streamed answer's first event whose
/// `choices[0].delta.content` is not empty, or a whole answer's message. Not any
/// `"content":"` in the bytes: `chat`'s first event carries the citations, each with
/// its passage as `content`, before the model has said anything.
fn carries_text(seen: &[u8]) -> bool {
    let text = String::from_utf8_lossy(seen);
    let has_text =
        |value: &serde_json::Value| value.as_str().is_some_and(|content| !content.is_empty());
    if let Ok(whole) = serde_json::from_str::<serde_json::Value>(&text) {
        return has_text(&whole["choices"][0]["message"]["content"]);
    }
    text.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<serde_json::Value>(data).ok())
        .any(|chunk| has_text(&chunk["choices"][0]["delta"]["content"]))
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
    to_upstream: Vec<Duration>,
    upstream_to_head: Vec<Duration>,
    head_to_first_frame: Vec<Duration>,
    first_frame_to_first_token: Vec<Duration>,
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
    let mut to_upstream = Vec::with_capacity(requests);
    let mut upstream_to_head = Vec::with_capacity(requests);
    let mut head_to_first_frame = Vec::with_capacity(requests);
    let mut first_frame_to_first_token = Vec::with_capacity(requests);
    for _ in 0..requests {
        let timing = client.chat(path, &body).await;
        first_token.push(timing.first_token);
        total.push(timing.total);
        to_upstream.push(timing.to_upstream);
        upstream_to_head.push(timing.head.saturating_sub(timing.to_upstream));
        head_to_first_frame.push(timing.first_frame.saturating_sub(timing.head));
        first_frame_to_first_token.push(timing.first_token.saturating_sub(timing.first_frame));
    }
    for spans in [
        &mut first_token,
        &mut total,
        &mut to_upstream,
        &mut upstream_to_head,
        &mut head_to_first_frame,
        &mut first_frame_to_first_token,
    ] {
        spans.sort();
    }
    Summary {
        name: name.to_string(),
        first_token,
        total,
        to_upstream,
        upstream_to_head,
        head_to_first_frame,
        first_frame_to_first_token,
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
    let spans = (
        percentile_ms(&summary.to_upstream, 0.5),
        percentile_ms(&summary.upstream_to_head, 0.5),
        percentile_ms(&summary.head_to_first_frame, 0.5),
        percentile_ms(&summary.first_frame_to_first_token, 0.5),
    );
    if streamed {
        println!(
            "{:<34} first token p50 {:>6.2} ms  p99 {:>6.2} ms   total p50 {:>6.2} ms  p99 {:>6.2} ms",
            summary.name, ttft.0, ttft.1, total.0, total.1
        );
        println!(
            "{:<34} p50 spans: to upstream {:.3} ms, upstream to head {:.3} ms, head to first frame {:.3} ms, first frame to first token {:.3} ms",
            "", spans.0, spans.1, spans.2, spans.3
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
        "to_upstream_p50_ms": spans.0, "upstream_to_head_p50_ms": spans.1,
        "head_to_first_frame_p50_ms": spans.2, "first_frame_to_first_token_p50_ms": spans.3,
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let requests = env_number("BENCH_REQUESTS", 300);
    // The gateway gets a runtime of its own, as `chatgate up` has in its own process; the
    // client and the upstream share another, on this thread, as they would be other
    // processes. On one runtime, the client had the response head only once the gateway's
    // guests had relayed the whole answer, 0.5 ms after the host had taken the answer's
    // first event (temporary timestamps in `chat`, median of 330 requests); on their own,
    // the head came before the rest of the answer was relayed.
    let gateway_runtime = tokio::runtime::Runtime::new().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let upstream = runtime.block_on(Upstream::start(|request| {
        *UPSTREAM_HAD_REQUEST.lock().unwrap() = Some(Instant::now());
        openai_answer(request, ANSWER)
    }));
    let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
    let gateway = gateway_runtime
        .block_on(Gateway::start(
            &manifest,
            &[
                ("openai_origin", &upstream.origin),
                ("openai_api_key", "sk-bench"),
                ("quota_requests_per_minute", "0"),
                ("quota_tokens_per_minute", "0"),
            ],
        ))
        .expect("gateway");
    runtime.block_on(async {
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
    });
    gateway_runtime.block_on(gateway.stop());
}
