//! Soak and fault harness, and the noisy-neighbour figure (issue 9).
//!
//! `cargo bench -p chatgate-tests --bench soak` (after `make build`). Not part of any
//! test run: without cargo bench's `--bench` argument it does nothing.
//!
//! The real `target/release/chatgate up` runs as a subprocess (so that the resident
//! memory and open file descriptors sampled from `/proc/<pid>` are the gateway's own)
//! with the shipped `spin.toml`, its completion swapped to `completion-openai`, in front
//! of a local OpenAI-compatible upstream that injects faults while a switch is on: 429
//! with `Retry-After`, 500/502/503, connection resets, slow first bytes (some past the
//! component's first-byte timeout) and streams cut after they began. Everything is on
//! loopback; every phase is bounded in time and the harness stops by itself.
//!
//! 1. calibrate: closed loop of `CALIBRATE_CLIENTS` (16) clients for `CALIBRATE_SECS`
//!    (15) without faults; capacity = successful requests per second.
//! 2. soak: open loop at `SOAK_LOAD_PERCENT` (80) % of capacity for `SOAK_SECS` (600),
//!    faults on, half the requests streamed. `SOAK_RATE` (requests/s) replaces the
//!    share of the measured capacity: on a shared machine the calibration varies with
//!    what else runs.
//! 3. recovery: the same load for `RECOVERY_SECS` (30), faults off.
//! 4. noisy neighbour: a quiet client (127.0.0.3) alone for `QUIET_SECS` (20), then
//!    while another address (127.0.0.2) sends `NOISY_UPLOADS` (10,000) abandoned
//!    uploads, `NOISY_AT_ONCE` (200) at a time: the headers of a chat request declaring
//!    1000 body bytes, 6 of them, then close.
//!
//! The load of phases 1-3 comes from `LOAD_ADDRESSES` (16) loopback addresses,
//! 127.0.1.1 and up, as real traffic comes from many clients, so that the per-client
//! limits are not what is measured. Every request gets a fresh connection. Every error
//! a client sees must be a clean one: an OpenAI-style JSON error, or a stream that ends
//! with one `data: {"error": ...}` event and no `[DONE]`; anything else (transport
//! errors, other bodies, streams that just stop, no answer within 30 s) is counted as
//! unexpected and printed. Every 10 s the gateway's RSS, fds and threads (from `/proc`)
//! and `/readyz` are sampled. The
//! gateway's own limits and timeouts are its defaults unless `CHATGATE_*` variables in
//! the environment set them (the subprocess inherits them). Its run directory
//! (manifest, key-value store, compile cache) is `target/chatgate-soak/`.

use bytes::Bytes;
use chatgate_tests::stats::percentile_ms;
use chatgate_tests::upstream::{Answer, Ending, Recorded, Upstream, openai_answer};
use chatgate_tests::{OPENAI_COMPLETION_LINE, manifest_with_completion_line, repo_root};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::collections::BTreeMap;
use std::io::BufRead;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ANSWER: &str = "The Web Application Firewall inspects each request and blocks common web attacks such as SQL injection and cross-site scripting [doc1].";
const QUESTION: &str = "What does the web application firewall block?";
/// Longest a client waits for a complete answer; anything slower is unexpected.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the gateway's memory and descriptors are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Open-loop requests outstanding at once, at most; beyond them requests are skipped
/// (and counted), so that an overloaded gateway cannot make the harness unbounded.
const MAX_OUTSTANDING: usize = 2_000;

/// The component settings of the run: every deadline far under the host's response
/// timeout, retries with a short backoff, breakers with a short cooldown.
const VARIABLES: &[(&str, &str)] = &[
    ("openai_api_key", "sk-soak"),
    ("openai_timeout_ms", "8000"),
    ("openai_connect_timeout_ms", "1000"),
    ("openai_first_byte_timeout_ms", "2000"),
    ("openai_idle_timeout_ms", "2000"),
    ("openai_max_retries", "2"),
    ("openai_retry_base_ms", "100"),
    ("openai_breaker_failures", "5"),
    ("openai_breaker_cooldown_ms", "2000"),
    ("quota_requests_per_minute", "0"),
    ("quota_tokens_per_minute", "0"),
];

/// Faults per 1000 upstream requests while faults are on (the rest are answered normally).
const FAULTS_PER_MILLE: &[(Fault, u32)] = &[
    (Fault::RateLimited, 30),
    (Fault::ServerError, 30),
    (Fault::Reset, 20),
    (Fault::SlowFirstByte, 30),
    (Fault::FirstByteTimeout, 10),
    (Fault::Cut, 30),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    RateLimited,
    ServerError,
    Reset,
    SlowFirstByte,
    FirstByteTimeout,
    Cut,
}

impl Fault {
    fn describe(self) -> &'static str {
        match self {
            Fault::RateLimited => "429 with Retry-After: 1",
            Fault::ServerError => "500 / 502 / 503 (OpenAI-style error body)",
            Fault::Reset => "connection reset (RST) after the request",
            Fault::SlowFirstByte => {
                "first byte after 500-1500 ms (under the 2 s first-byte timeout)"
            }
            Fault::FirstByteTimeout => "first byte after 3 s (past the 2 s first-byte timeout)",
            Fault::Cut => "answer cut mid-body (streams: after 3 events)",
        }
    }
}

struct Knobs {
    calibrate: Duration,
    calibrate_clients: usize,
    soak: Duration,
    load_percent: f64,
    /// Requests per second of the soak and recovery, instead of a share of the capacity.
    rate: Option<f64>,
    recovery: Duration,
    quiet: Duration,
    noisy_uploads: usize,
    noisy_at_once: usize,
    load_addresses: usize,
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

impl Knobs {
    fn from_env() -> Knobs {
        let secs = |name, default| Duration::from_secs(env_number(name, default).max(1));
        Knobs {
            calibrate: secs("CALIBRATE_SECS", 15),
            calibrate_clients: env_number("CALIBRATE_CLIENTS", 16).max(1) as usize,
            soak: secs("SOAK_SECS", 600),
            load_percent: env_number("SOAK_LOAD_PERCENT", 80).clamp(1, 200) as f64,
            rate: std::env::var("SOAK_RATE")
                .ok()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|rate| *rate >= 1.0),
            recovery: secs("RECOVERY_SECS", 30),
            quiet: secs("QUIET_SECS", 20),
            noisy_uploads: env_number("NOISY_UPLOADS", 10_000) as usize,
            noisy_at_once: env_number("NOISY_AT_ONCE", 200).max(1) as usize,
            load_addresses: env_number("LOAD_ADDRESSES", 16).clamp(1, 250) as usize,
        }
    }
}

// ---------------------------------------------------------------------------------
// The upstream

/// Counts of the faults the upstream injected, and of all the requests it got.
#[derive(Default)]
struct Injected {
    requests: AtomicU64,
    faults: Mutex<BTreeMap<Fault, u64>>,
}

async fn faulty_upstream(faults_on: Arc<AtomicBool>, injected: Arc<Injected>) -> Upstream {
    Upstream::start(move |request| {
        injected.requests.fetch_add(1, Ordering::Relaxed);
        if !faults_on.load(Ordering::Relaxed) {
            return openai_answer(request, ANSWER);
        }
        let mut roll = rand::random::<u32>() % 1000;
        let mut chosen = None;
        for (fault, per_mille) in FAULTS_PER_MILLE {
            if roll < *per_mille {
                chosen = Some(*fault);
                break;
            }
            roll -= per_mille;
        }
        let Some(fault) = chosen else {
            return openai_answer(request, ANSWER);
        };
        *injected.faults.lock().unwrap().entry(fault).or_default() += 1;
        inject(request, fault)
    })
    .await
}

fn upstream_error(status: u16) -> Answer {
    let (kind, code) = match status {
        429 => ("requests", "rate_limit_exceeded"),
        _ => ("server_error", "server_error"),
    };
    Answer::json(
        status,
        &serde_json::json!({"error": {
            "message": format!("injected {status}"), "type": kind, "param": null, "code": code,
        }}),
    )
}

fn inject(request: &Recorded, fault: Fault) -> Answer {
    match fault {
        Fault::RateLimited => upstream_error(429).with_header("retry-after", "1"),
        Fault::ServerError => upstream_error([500, 502, 503][rand::random::<usize>() % 3]),
        Fault::Reset => Answer::reset(),
        Fault::SlowFirstByte => openai_answer(request, ANSWER)
            .with_delay(Duration::from_millis(500 + rand::random::<u64>() % 1000)),
        Fault::FirstByteTimeout => {
            openai_answer(request, ANSWER).with_delay(Duration::from_millis(3000))
        }
        Fault::Cut => {
            let mut answer = openai_answer(request, ANSWER);
            let keep = if answer.content_type == "text/event-stream" {
                // The role chunk and two words: the answer has begun.
                answer
                    .body
                    .match_indices("\n\n")
                    .nth(2)
                    .map(|(at, _)| at + 2)
                    .unwrap_or(answer.body.len())
            } else {
                answer.body.len() / 2
            };
            answer.body.truncate(keep);
            answer.ending = Ending::Cut;
            answer
        }
    }
}

// ---------------------------------------------------------------------------------
// The gateway subprocess

/// What the gateway wrote to stderr after it started serving.
#[derive(Default)]
struct Log {
    lines: u64,
    by_level: BTreeMap<String, u64>,
    /// Warning and error messages (timestamps dropped, cut to 160 characters), counted.
    messages: BTreeMap<String, u64>,
}

impl Log {
    fn record(&mut self, line: &str) {
        let line = strip_ansi(line);
        let line = line.as_str();
        self.lines += 1;
        for level in ["ERROR", "WARN"] {
            if let Some(at) = line.find(&format!(" {level} ")) {
                *self.by_level.entry(level.to_string()).or_default() += 1;
                let message: String = line[at + level.len() + 2..]
                    .trim()
                    .chars()
                    .take(160)
                    .collect();
                if self.messages.len() < 40 || self.messages.contains_key(&message) {
                    *self.messages.entry(message).or_default() += 1;
                }
                return;
            }
        }
    }
}

/// `text` without ANSI escape sequences (colours).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte (a letter).
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

struct GatewayProcess {
    child: std::process::Child,
    address: SocketAddr,
    log: Arc<Mutex<Log>>,
}

impl GatewayProcess {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `None` while it runs, else how it ended.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The shipped manifest with completion-openai, `chat` allowed to reach `origin` only,
/// and component sources made absolute (the manifest lives in the run directory).
fn soak_manifest(origin: &str) -> String {
    let root = repo_root();
    let mut section = String::new();
    let mut lines = Vec::new();
    for line in manifest_with_completion_line(OPENAI_COMPLETION_LINE).lines() {
        if line.starts_with('[') {
            section = line.to_string();
        }
        let line = if section == "[component.chat]" && line.starts_with("allowed_outbound_hosts") {
            format!("allowed_outbound_hosts = [\"{origin}\"]")
        } else if let Some(relative) = line
            .strip_prefix("source = \"")
            .and_then(|rest| rest.strip_suffix('"'))
        {
            let path = root.join(relative);
            assert!(
                path.exists(),
                "{} is missing: run `make build` first",
                path.display()
            );
            format!("source = {:?}", path.display().to_string())
        } else {
            line.to_string()
        };
        lines.push(line);
    }
    lines.join("\n") + "\n"
}

fn start_gateway(origin: &str, run_dir: &Path) -> GatewayProcess {
    let binary = repo_root().join("target/release/chatgate");
    assert!(
        binary.exists(),
        "{} is missing: run `make build` first",
        binary.display()
    );
    std::fs::create_dir_all(run_dir).expect("creating the run directory");
    let manifest = run_dir.join("spin.toml");
    std::fs::write(&manifest, soak_manifest(origin)).expect("writing the manifest");
    let key_value = run_dir.join("key_value.db");
    for stale in ["key_value.db", "key_value.db-wal", "key_value.db-shm"] {
        let _ = std::fs::remove_file(run_dir.join(stale));
    }
    let mut command = std::process::Command::new(&binary);
    command
        .arg("up")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("-f")
        .arg(&manifest)
        .arg("--key-value")
        .arg(&key_value)
        .env("SPIN_VARIABLE_OPENAI_ORIGIN", origin)
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        // One JSON log line per request from telemetry: not needed here.
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (name, value) in VARIABLES {
        command.env(
            format!("SPIN_VARIABLE_{}", name.to_ascii_uppercase()),
            value,
        );
    }
    let mut child = command.spawn().expect("starting chatgate up");
    let stderr = child.stderr.take().expect("piped stderr");
    let log = Arc::new(Mutex::new(Log::default()));
    let (address_tx, address_rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
    {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut startup = Vec::new();
            let mut address_tx = Some(address_tx);
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(tx) = &address_tx {
                    if let Some(address) = line
                        .strip_prefix("chatgate: serving `")
                        .and_then(|rest| rest.split_once(" on http://"))
                        .and_then(|(_, rest)| rest.split_whitespace().next())
                        .and_then(|address| address.parse().ok())
                    {
                        let _ = tx.send(Ok(address));
                        address_tx = None;
                    } else {
                        startup.push(line);
                    }
                    continue;
                }
                log.lock().unwrap().record(&line);
            }
            if let Some(tx) = address_tx {
                let _ = tx.send(Err(startup.join("\n")));
            }
        });
    }
    let address = match address_rx.recv_timeout(Duration::from_secs(900)) {
        Ok(Ok(address)) => address,
        Ok(Err(output)) => panic!("chatgate up ended before serving:\n{output}"),
        Err(_) => panic!("chatgate up did not start serving within 900 s"),
    };
    GatewayProcess {
        child,
        address,
        log,
    }
}

// ---------------------------------------------------------------------------------
// Process figures

fn rss_kib(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The process's threads (tokio workers, the blocking pool, wasmtime's).
fn thread_count(pid: u32) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|line| line.strip_prefix("Threads:"))
        .and_then(|v| v.trim().parse().ok())
}

fn fd_count(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

struct Sample {
    at: Duration,
    phase: &'static str,
    rss_kib: Option<u64>,
    fds: Option<usize>,
    threads: Option<u64>,
    ready: Option<Ready>,
}

/// What `/readyz` says.
#[derive(Debug, PartialEq)]
struct Ready {
    status: String,
    in_flight: u64,
    uploads: u64,
    instances: u64,
    scheduler_lag_ms: u64,
}

impl Ready {
    fn idle(&self) -> bool {
        self.in_flight == 0 && self.uploads == 0 && self.instances == 0
    }
}

async fn readyz(address: SocketAddr) -> Option<Ready> {
    let exchange = async {
        let stream = TcpStream::connect(address).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = http::Request::get("/readyz")
            .header("host", address.to_string())
            .body(Full::new(Bytes::new()))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let body = response.into_body().collect().await.ok()?.to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).ok()?;
        Some(Ready {
            status: json["status"].as_str()?.to_owned(),
            in_flight: json["in_flight"].as_u64()?,
            uploads: json["uploads"].as_u64()?,
            instances: json["instances"].as_u64()?,
            scheduler_lag_ms: json["scheduler_lag_ms"].as_u64()?,
        })
    };
    tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .ok()
        .flatten()
}

async fn sample(pid: u32, address: SocketAddr, started: Instant, phase: &'static str) -> Sample {
    Sample {
        at: started.elapsed(),
        phase,
        rss_kib: rss_kib(pid),
        fds: fd_count(pid),
        threads: thread_count(pid),
        ready: readyz(address).await,
    }
}

/// Waits (at most `limit`) until nothing is in flight, uploading or instantiated.
async fn wait_idle(address: SocketAddr, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if readyz(address).await.is_some_and(|ready| ready.idle()) {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

// ---------------------------------------------------------------------------------
// Clients

#[derive(Debug, Clone)]
enum Outcome {
    Ok,
    /// A clean error: its kind (status and OpenAI code, or the stream's error event).
    Clean(String),
    /// Anything else: its kind, and one example.
    Unexpected(String, String),
}

struct Record {
    /// When the request started, from the start of its phase.
    started: Duration,
    latency: Duration,
    outcome: Outcome,
}

fn question(streamed: bool) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": "chatgate-rag",
            "stream": streamed,
            "messages": [{"role": "user", "content": QUESTION}],
        })
        .to_string(),
    )
}

/// A TCP connection from the loopback address `from` (127.0.0.0/8 is all local on Linux).
async fn connect_from(from: Option<IpAddr>, to: SocketAddr) -> std::io::Result<TcpStream> {
    match from {
        None => TcpStream::connect(to).await,
        Some(from) => chatgate_tests::http_client::connect_from(from, to).await,
    }
}

fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(300).collect();
    text.replace('\n', "\\n")
}

/// The `error.code` (else `error.type`) of an OpenAI-style error object, if it is one.
fn openai_error_code(error: &serde_json::Value) -> Option<String> {
    let error = error.get("error")?;
    error["message"].as_str()?;
    error["type"].as_str()?;
    Some(
        error["code"]
            .as_str()
            .or(error["type"].as_str())
            .unwrap_or_default()
            .to_string(),
    )
}

fn unexpected(kind: &str, example: String) -> Outcome {
    Outcome::Unexpected(kind.to_string(), example)
}

/// Classifies a complete exchange.
fn classify(
    streamed: bool,
    status: u16,
    content_type: &str,
    body: &[u8],
    broke: Option<String>,
) -> Outcome {
    if !(200..300).contains(&status) {
        if let Some(broke) = broke {
            return unexpected(
                &format!("{status} with a broken body"),
                format!("{broke}: {}", snippet(body)),
            );
        }
        return match serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .as_ref()
            .and_then(openai_error_code)
        {
            Some(code) if content_type.starts_with("application/json") => {
                Outcome::Clean(format!("{status} {code}"))
            }
            _ => unexpected(
                &format!("{status} without an OpenAI error body"),
                format!("content-type {content_type:?}: {}", snippet(body)),
            ),
        };
    }
    if !streamed {
        if let Some(broke) = broke {
            return unexpected(
                "200 JSON body broke off",
                format!("{broke}: {}", snippet(body)),
            );
        }
        let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
        return match json {
            Some(json) if json["choices"][0]["message"]["content"].is_string() => Outcome::Ok,
            _ => unexpected("200 without a chat completion", snippet(body)),
        };
    }
    if !content_type.starts_with("text/event-stream") {
        return unexpected(
            "streamed request answered without an event stream",
            format!("{status} {content_type:?}: {}", snippet(body)),
        );
    }
    let text = String::from_utf8_lossy(body);
    let mut done = false;
    let mut error = None;
    let mut after_end = false;
    let mut content = false;
    for event in text.split("\n\n") {
        let data: Vec<&str> = event
            .lines()
            .filter_map(|line| line.strip_prefix("data:"))
            .map(|d| d.strip_prefix(' ').unwrap_or(d))
            .collect();
        if data.is_empty() {
            continue;
        }
        let data = data.join("\n");
        if done || error.is_some() {
            after_end = true;
        }
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let Ok(event) = serde_json::from_str::<serde_json::Value>(&data) else {
            return unexpected(
                "stream event that is not JSON",
                data.chars().take(300).collect(),
            );
        };
        if event.get("error").is_some() {
            match openai_error_code(&event) {
                Some(code) => error = Some(code),
                None => return unexpected("stream error event not OpenAI-shaped", data),
            }
        } else if event["choices"][0]["delta"]["content"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
        {
            content = true;
        }
    }
    let tail = || snippet(&body[body.len().saturating_sub(300)..]);
    match (done, error, broke) {
        _ if after_end => unexpected("stream events after its end", tail()),
        (true, None, None) if content => Outcome::Ok,
        (true, None, None) => unexpected("stream with [DONE] but no text", tail()),
        (false, Some(code), None) => Outcome::Clean(format!("stream error event {code}")),
        (false, Some(_), Some(broke)) => unexpected(
            "stream error event, then the body broke",
            format!("{broke}: {}", tail()),
        ),
        (_, _, Some(broke)) => unexpected("stream broke off", format!("{broke}: {}", tail())),
        (false, None, None) => unexpected("stream ended without [DONE] or error event", tail()),
        (true, Some(_), None) => unexpected("stream with both [DONE] and an error event", tail()),
    }
}

/// One chat request on a fresh connection from `from`, classified.
async fn chat(address: SocketAddr, from: Option<IpAddr>, streamed: bool) -> (Duration, Outcome) {
    let started = Instant::now();
    let exchange = async {
        let stream = match connect_from(from, address).await {
            Ok(stream) => stream,
            Err(e) => return unexpected("transport: connect", e.to_string()),
        };
        stream.set_nodelay(true).ok();
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(handshake) => handshake,
                Err(e) => return unexpected("transport: handshake", e.to_string()),
            };
        tokio::spawn(connection);
        let request = http::Request::post("/v1/chat/completions")
            .header("host", address.to_string())
            .header("authorization", "Bearer chatgate-dev-key")
            .header("content-type", "application/json")
            .body(Full::new(question(streamed)))
            .expect("a valid request");
        let response = match sender.send_request(request).await {
            Ok(response) => response,
            Err(e) => return unexpected("transport: no response head", e.to_string()),
        };
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let mut body = response.into_body();
        let mut received = Vec::new();
        let mut broke = None;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    if let Some(data) = frame.data_ref() {
                        received.extend_from_slice(data);
                    }
                }
                Err(e) => {
                    broke = Some(e.to_string());
                    break;
                }
            }
        }
        classify(streamed, status, &content_type, &received, broke)
    };
    let outcome = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .unwrap_or_else(|_| {
            unexpected(
                "no complete answer within 30 s",
                format!("streamed: {streamed}"),
            )
        });
    (started.elapsed(), outcome)
}

/// `clients` concurrent sequential clients for `duration`, alternating streamed and
/// not, client `k` connecting from `sources[k % sources.len()]`.
async fn closed_loop(
    address: SocketAddr,
    sources: &[IpAddr],
    clients: usize,
    duration: Duration,
) -> (Vec<Record>, Duration) {
    let phase = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let from = Some(sources[client % sources.len()]);
            tokio::spawn(async move {
                let mut records = Vec::new();
                let mut streamed = client % 2 == 1;
                while phase.elapsed() < duration {
                    let started = phase.elapsed();
                    let (latency, outcome) = chat(address, from, streamed).await;
                    records.push(Record {
                        started,
                        latency,
                        outcome,
                    });
                    streamed = !streamed;
                }
                records
            })
        })
        .collect();
    let mut records = Vec::new();
    for task in tasks {
        records.extend(task.await.expect("client task"));
    }
    (records, phase.elapsed())
}

/// Requests started at `rate` per second for `duration`, whatever the answers take,
/// request `i` connecting from `sources[i % sources.len()]`.
async fn open_loop(
    address: SocketAddr,
    sources: &[IpAddr],
    rate: f64,
    duration: Duration,
) -> (Vec<Record>, u64) {
    let records = Arc::new(Mutex::new(Vec::new()));
    let outstanding = Arc::new(tokio::sync::Semaphore::new(MAX_OUTSTANDING));
    let phase = Instant::now();
    let mut skipped = 0;
    for i in 0u64.. {
        let due = Duration::from_secs_f64(i as f64 / rate);
        if due >= duration {
            break;
        }
        tokio::time::sleep_until((phase + due).into()).await;
        let Ok(permit) = outstanding.clone().try_acquire_owned() else {
            skipped += 1;
            continue;
        };
        let records = records.clone();
        let from = Some(sources[i as usize % sources.len()]);
        tokio::spawn(async move {
            let started = phase.elapsed();
            let (latency, outcome) = chat(address, from, i % 2 == 1).await;
            records.lock().unwrap().push(Record {
                started,
                latency,
                outcome,
            });
            drop(permit);
        });
    }
    // Every request ends within REQUEST_TIMEOUT.
    let _all = tokio::time::timeout(
        REQUEST_TIMEOUT + Duration::from_secs(5),
        outstanding.acquire_many(MAX_OUTSTANDING as u32),
    )
    .await
    .expect("every request ends within its timeout");
    let records = std::mem::take(&mut *records.lock().unwrap());
    (records, skipped)
}

/// `count` connections from `from`, at most `at_once` open, each sending `bytes` and closing.
/// Returns how many could not connect or send.
async fn abandoned_uploads(
    address: SocketAddr,
    from: IpAddr,
    count: usize,
    at_once: usize,
) -> usize {
    let bytes = Arc::new(chatgate_tests::http_client::partial_upload(
        address, 1000, 6,
    ));
    let permits = Arc::new(tokio::sync::Semaphore::new(at_once));
    let failed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(count);
    for _ in 0..count {
        let permit = permits.clone().acquire_owned().await.expect("semaphore");
        let bytes = bytes.clone();
        let failed = failed.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let sent = tokio::time::timeout(Duration::from_secs(10), async {
                let mut stream = connect_from(Some(from), address).await?;
                stream.write_all(&bytes).await
            })
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                failed.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for task in tasks {
        task.await.expect("upload task");
    }
    failed.load(Ordering::Relaxed) as usize
}

// ---------------------------------------------------------------------------------
// Figures

#[derive(Default)]
struct Summary {
    requests: usize,
    ok: usize,
    clean: BTreeMap<String, usize>,
    unexpected: BTreeMap<String, (usize, String)>,
    /// All answered requests (successes and clean errors), sorted.
    latencies: Vec<Duration>,
    ok_latencies: Vec<Duration>,
}

impl Summary {
    fn of<'a>(records: impl IntoIterator<Item = &'a Record>) -> Summary {
        let mut summary = Summary::default();
        for record in records {
            summary.requests += 1;
            match &record.outcome {
                Outcome::Ok => {
                    summary.ok += 1;
                    summary.latencies.push(record.latency);
                    summary.ok_latencies.push(record.latency);
                }
                Outcome::Clean(kind) => {
                    *summary.clean.entry(kind.clone()).or_default() += 1;
                    summary.latencies.push(record.latency);
                }
                Outcome::Unexpected(kind, example) => {
                    summary
                        .unexpected
                        .entry(kind.clone())
                        .or_insert_with(|| (0, example.clone()))
                        .0 += 1;
                }
            }
        }
        summary.latencies.sort();
        summary.ok_latencies.sort();
        summary
    }

    fn errors(&self) -> usize {
        self.requests - self.ok
    }

    fn unexpected_count(&self) -> usize {
        self.unexpected.values().map(|(n, _)| n).sum()
    }

    fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            return f64::NAN;
        }
        self.errors() as f64 / self.requests as f64 * 100.0
    }

    fn p(&self, q: f64) -> f64 {
        percentile_ms(&self.latencies, q)
    }

    fn ok_p(&self, q: f64) -> f64 {
        percentile_ms(&self.ok_latencies, q)
    }

    fn row(&self, name: &str, seconds: f64) -> String {
        format!(
            "| {name} | {:.0} s | {} | {:.1}/s | {} | {:.2} % | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            seconds,
            self.requests,
            self.requests as f64 / seconds,
            self.errors(),
            self.error_rate(),
            self.unexpected_count(),
            self.p(0.5),
            self.p(0.99),
            self.ok_p(0.5),
            self.ok_p(0.99),
        )
    }
}

const TABLE_HEAD: &str = "| phase | length | requests | rate | errors | error rate | unexpected | p50 ms | p99 ms | p50 ms (ok) | p99 ms (ok) |\n|---|---|---|---|---|---|---|---|---|---|---|";

fn print_errors(name: &str, summary: &Summary) {
    for (kind, count) in &summary.clean {
        println!("| {name} | clean | {kind} | {count} |");
    }
    for (kind, (count, _)) in &summary.unexpected {
        println!("| {name} | **UNEXPECTED** | {kind} | {count} |");
    }
}

fn print_unexpected_examples(name: &str, summary: &Summary) {
    for (kind, (_, example)) in &summary.unexpected {
        println!("- {name}, {kind}: {example}");
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --all-targets` runs benches without `--bench`: a 12-minute soak
        // has no place in a test run.
        println!("soak: run with `cargo bench -p chatgate-tests --bench soak`");
        return;
    }
    let knobs = Knobs::from_env();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(knobs));
}

async fn run(knobs: Knobs) {
    let faults_on = Arc::new(AtomicBool::new(false));
    let injected = Arc::new(Injected::default());
    let upstream = faulty_upstream(faults_on.clone(), injected.clone()).await;
    let run_dir = repo_root().join("target/chatgate-soak");
    let mut gateway = start_gateway(&upstream.origin, &run_dir);
    let address = gateway.address;
    let pid = gateway.pid();
    let serving: Vec<String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("CHATGATE_"))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    println!(
        "soak: chatgate up (pid {pid}) on {address}, upstream {}, {} cores; gateway settings from the environment: {}",
        upstream.origin,
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        if serving.is_empty() {
            "none (defaults)".to_string()
        } else {
            serving.join(" ")
        }
    );

    // Sampling runs from start to end, labelled with the phase it falls in.
    let run_started = Instant::now();
    let phase = Arc::new(Mutex::new("warm-up"));
    let samples = Arc::new(Mutex::new(Vec::<Sample>::new()));
    let stop_sampling = Arc::new(tokio::sync::Notify::new());
    let sampler = {
        let phase = phase.clone();
        let samples = samples.clone();
        let stop = stop_sampling.clone();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {}
                    () = stop.notified() => break,
                }
                let label = *phase.lock().unwrap();
                let s = sample(pid, address, run_started, label).await;
                println!(
                    "  [{:>5.0} s] {:<16} RSS {:>7.1} MiB  fds {:>5}  threads {:>4}  readyz {}",
                    s.at.as_secs_f64(),
                    s.phase,
                    mib(s.rss_kib.unwrap_or(0)),
                    s.fds.unwrap_or(0),
                    s.threads.unwrap_or(0),
                    s.ready.as_ref().map_or("-".to_owned(), |r| format!(
                        "{} in flight {} uploads {} instances {} lag {} ms",
                        r.status, r.in_flight, r.uploads, r.instances, r.scheduler_lag_ms
                    ))
                );
                samples.lock().unwrap().push(s);
            }
        })
    };
    let set_phase = |name: &'static str| {
        *phase.lock().unwrap() = name;
        println!("soak: phase {name}");
    };

    // Warm-up: compiled code, first allocations, every path once.
    // The load comes from several client addresses, as real traffic does, so that the
    // per-client limits are not what is measured.
    let sources: Vec<IpAddr> = (0..knobs.load_addresses)
        .map(|k| IpAddr::from([127, 0, 1, 1 + k as u8]))
        .collect();
    let (warm, _) = closed_loop(address, &sources, 4, Duration::from_secs(3)).await;
    let warm = Summary::of(&warm);
    println!(
        "soak: warm-up {} requests, {} errors",
        warm.requests,
        warm.errors()
    );
    print_errors("warm-up", &warm);

    set_phase("calibrate");
    let (records, took) =
        closed_loop(address, &sources, knobs.calibrate_clients, knobs.calibrate).await;
    let calibration = Summary::of(&records);
    let capacity = calibration.ok as f64 / took.as_secs_f64();
    let rate = knobs
        .rate
        .unwrap_or((capacity * knobs.load_percent / 100.0).max(1.0));
    println!(
        "soak: capacity {capacity:.1} requests/s with {} clients; soak rate {rate:.1}/s",
        knobs.calibrate_clients
    );
    let idle = wait_idle(address, Duration::from_secs(30)).await;
    let baseline = sample(pid, address, run_started, "after calibrate").await;

    set_phase("soak (faults)");
    faults_on.store(true, Ordering::Relaxed);
    let upstream_before = injected.requests.load(Ordering::Relaxed);
    let (soak_records, soak_skipped) = open_loop(address, &sources, rate, knobs.soak).await;
    let soak_upstream = injected.requests.load(Ordering::Relaxed) - upstream_before;
    let soak = Summary::of(&soak_records);

    set_phase("recovery");
    faults_on.store(false, Ordering::Relaxed);
    let (recovery_records, recovery_skipped) =
        open_loop(address, &sources, rate, knobs.recovery).await;
    let recovery = Summary::of(&recovery_records);
    // After the first 5 s (the breaker cooldown and requests begun under faults are over).
    let settled = Summary::of(
        recovery_records
            .iter()
            .filter(|r| r.started >= Duration::from_secs(5)),
    );
    let recovery_idle = wait_idle(address, Duration::from_secs(60)).await;
    let after_recovery = sample(pid, address, run_started, "after recovery").await;

    set_phase("quiet alone");
    let quiet_from: IpAddr = "127.0.0.3".parse().unwrap();
    let noisy_from: IpAddr = "127.0.0.2".parse().unwrap();
    let (alone_records, alone_took) = closed_loop(address, &[quiet_from], 1, knobs.quiet).await;
    let alone = Summary::of(&alone_records);

    set_phase("noisy neighbour");
    let storm_started = Instant::now();
    let storm = tokio::spawn(abandoned_uploads(
        address,
        noisy_from,
        knobs.noisy_uploads,
        knobs.noisy_at_once,
    ));
    // The quiet client keeps going until the storm is over (bounded), and at least QUIET_SECS.
    let quiet_limit = knobs.quiet.max(Duration::from_secs(300));
    let quiet_min = knobs.quiet;
    let storm_done = Arc::new(AtomicBool::new(false));
    let quiet_task = tokio::spawn({
        let storm_done = storm_done.clone();
        async move {
            let mut records = Vec::new();
            let mut streamed = false;
            while storm_started.elapsed() < quiet_limit {
                let started = storm_started.elapsed();
                let (latency, outcome) = chat(address, Some(quiet_from), streamed).await;
                records.push(Record {
                    started,
                    latency,
                    outcome,
                });
                streamed = !streamed;
                if storm_done.load(Ordering::Relaxed) && storm_started.elapsed() >= quiet_min {
                    break;
                }
            }
            records
        }
    });
    let storm_failed = storm.await.expect("storm task");
    let storm_took = storm_started.elapsed();
    storm_done.store(true, Ordering::Relaxed);
    let noisy_records = quiet_task.await.expect("quiet client");
    let during = Summary::of(noisy_records.iter().filter(|r| r.started < storm_took));
    let quiet_total = Summary::of(&noisy_records);
    let quiet_took = storm_started.elapsed();
    let storm_idle = wait_idle(address, Duration::from_secs(60)).await;

    set_phase("end");
    let end = sample(pid, address, run_started, "end").await;
    stop_sampling.notify_one();
    let _ = sampler.await;
    let exited = gateway.exited();

    // ---- the report
    let samples = std::mem::take(&mut *samples.lock().unwrap());
    println!("\n## Soak and fault figures\n");
    println!(
        "chatgate up on {} cores (shared with the load generator and the upstream), fresh connection per request from {} client addresses (127.0.1.x), half the requests streamed. Capacity {capacity:.1} req/s ({} clients, {:.0} s, no faults); soak at {} = {rate:.1} req/s for {:.0} s with faults, then {:.0} s without.\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0),
        knobs.load_addresses,
        knobs.calibrate_clients,
        took.as_secs_f64(),
        match knobs.rate {
            Some(_) => "SOAK_RATE".to_string(),
            None => format!("{:.0} %", knobs.load_percent),
        },
        knobs.soak.as_secs_f64(),
        knobs.recovery.as_secs_f64(),
    );
    println!("{TABLE_HEAD}");
    println!(
        "{}",
        calibration.row("calibrate (no faults)", took.as_secs_f64())
    );
    println!("{}", soak.row("soak (faults on)", knobs.soak.as_secs_f64()));
    println!(
        "{}",
        recovery.row("recovery (faults off)", knobs.recovery.as_secs_f64())
    );
    println!(
        "{}",
        settled.row(
            "recovery after its first 5 s",
            (knobs.recovery.as_secs_f64() - 5.0).max(1.0)
        )
    );
    println!(
        "\nBy {} s window (by the time a request started):\n",
        SAMPLE_EVERY.as_secs()
    );
    println!(
        "| window | phase | requests | errors | unexpected | p50 ms | p99 ms |\n|---|---|---|---|---|---|---|"
    );
    for (name, records, offset) in [
        ("soak", &soak_records, Duration::ZERO),
        ("recovery", &recovery_records, knobs.soak),
    ] {
        let mut windows: BTreeMap<u64, Vec<&Record>> = BTreeMap::new();
        for record in records.iter() {
            let at = (offset + record.started).as_secs() / SAMPLE_EVERY.as_secs();
            windows.entry(at).or_default().push(record);
        }
        for (window, records) in windows {
            let summary = Summary::of(records);
            let from = window * SAMPLE_EVERY.as_secs();
            println!(
                "| {from}-{} s | {name} | {} | {} | {} | {:.1} | {:.1} |",
                from + SAMPLE_EVERY.as_secs(),
                summary.requests,
                summary.errors(),
                summary.unexpected_count(),
                summary.p(0.5),
                summary.p(0.99),
            );
        }
    }
    println!(
        "\nOpen-loop requests skipped because {MAX_OUTSTANDING} were outstanding: soak {soak_skipped}, recovery {recovery_skipped}."
    );
    println!(
        "\nUpstream during the soak: {soak_upstream} requests ({:.2} per client request); faults injected:",
        soak_upstream as f64 / soak.requests.max(1) as f64
    );
    println!("\n| fault | injected |\n|---|---|");
    for (fault, count) in injected.faults.lock().unwrap().iter() {
        println!("| {} | {count} |", fault.describe());
    }
    println!(
        "\nErrors by kind (clean: OpenAI JSON error with its status and code, or a stream ended by an error event):\n"
    );
    println!("| phase | | kind | count |\n|---|---|---|---|");
    print_errors("calibrate", &calibration);
    print_errors("soak", &soak);
    print_errors("recovery", &recovery);
    print_errors("quiet alone", &alone);
    print_errors("quiet, noisy neighbour", &quiet_total);
    let phases = [
        ("calibrate", &calibration),
        ("soak", &soak),
        ("recovery", &recovery),
        ("quiet alone", &alone),
        ("quiet, noisy neighbour", &quiet_total),
    ];
    if phases.iter().any(|(_, s)| s.unexpected_count() > 0) {
        println!("\nUnexpected errors, one example of each kind:\n");
        for (name, summary) in phases {
            print_unexpected_examples(name, summary);
        }
    }

    println!("\nGateway process every {} s:\n", SAMPLE_EVERY.as_secs());
    println!(
        "| at | phase | RSS MiB | fds | threads | readyz: status, in flight, uploads, instances, scheduler lag |\n|---|---|---|---|---|---|"
    );
    let marks = [&baseline, &after_recovery, &end];
    let mut all: Vec<&Sample> = samples.iter().chain(marks).collect();
    all.sort_by_key(|s| s.at);
    for s in &all {
        println!(
            "| {:.0} s | {} | {:.1} | {} | {} | {} |",
            s.at.as_secs_f64(),
            s.phase,
            mib(s.rss_kib.unwrap_or(0)),
            s.fds.map(|n| n.to_string()).unwrap_or_default(),
            s.threads.map(|n| n.to_string()).unwrap_or_default(),
            s.ready
                .as_ref()
                .map(|r| format!(
                    "{}, {}, {}, {}, {} ms",
                    r.status, r.in_flight, r.uploads, r.instances, r.scheduler_lag_ms
                ))
                .unwrap_or_else(|| "no answer".into())
        );
    }
    let soak_samples: Vec<&Sample> = all
        .iter()
        .copied()
        .filter(|s| s.phase == "soak (faults)")
        .collect();
    let range = |values: Vec<u64>| -> Option<(u64, u64)> {
        Some((*values.iter().min()?, *values.iter().max()?))
    };
    if let Some((low, high)) = range(soak_samples.iter().filter_map(|s| s.rss_kib).collect()) {
        println!(
            "\nDuring the soak: RSS min {:.1} MiB, max {:.1} MiB (first {:.1}, last {:.1});",
            mib(low),
            mib(high),
            mib(soak_samples.first().and_then(|s| s.rss_kib).unwrap_or(0)),
            mib(soak_samples.last().and_then(|s| s.rss_kib).unwrap_or(0)),
        );
    }
    if let Some((low, high)) = range(
        soak_samples
            .iter()
            .filter_map(|s| s.fds.map(|n| n as u64))
            .collect(),
    ) {
        println!(
            "fds min {low}, max {high} (first {}, last {}).",
            soak_samples.first().and_then(|s| s.fds).unwrap_or(0),
            soak_samples.last().and_then(|s| s.fds).unwrap_or(0),
        );
    }
    println!(
        "Idle marks: after calibration RSS {:.1} MiB, {} fds; after recovery {:.1} MiB, {} fds; at the end {:.1} MiB, {} fds.",
        mib(baseline.rss_kib.unwrap_or(0)),
        baseline.fds.unwrap_or(0),
        mib(after_recovery.rss_kib.unwrap_or(0)),
        after_recovery.fds.unwrap_or(0),
        mib(end.rss_kib.unwrap_or(0)),
        end.fds.unwrap_or(0),
    );
    println!(
        "Back to idle (nothing in flight, uploading or instantiated): after calibration {}, after recovery {}, after the noisy neighbour {}.",
        idle_text(idle),
        idle_text(recovery_idle),
        idle_text(storm_idle),
    );

    println!("\n## Noisy neighbour\n");
    println!(
        "{} abandoned uploads from 127.0.0.2 ({} at a time; headers declaring 1000 bytes, 6 bytes, close) took {:.1} s ({storm_failed} could not connect or send). The quiet client (127.0.0.3, one request at a time, fresh connection each, alternating streamed and not):\n",
        knobs.noisy_uploads,
        knobs.noisy_at_once,
        storm_took.as_secs_f64(),
    );
    println!("{TABLE_HEAD}");
    println!(
        "{}",
        alone.row("quiet client alone", alone_took.as_secs_f64())
    );
    println!(
        "{}",
        during.row("quiet client during the storm", storm_took.as_secs_f64())
    );
    println!(
        "{}",
        quiet_total.row("quiet client, storm and after", quiet_took.as_secs_f64())
    );
    for (window, summary) in [
        ("while the uploads were sent", &during),
        ("from the first upload to the end", &quiet_total),
    ] {
        println!(
            "\nQuiet client {window}: error rate {:.2} % (goal 0), p99 {:.1} ms = {:.2}x alone (goal within 2x).",
            summary.error_rate(),
            summary.p(0.99),
            summary.p(0.99) / alone.p(0.99),
        );
    }
    let storm_peak = samples
        .iter()
        .filter(|s| s.phase == "noisy neighbour")
        .filter_map(|s| s.ready.as_ref().map(|r| r.in_flight))
        .max();
    println!(
        "\nThe gateway's own capacity: most in flight at a sample during this phase {}; back to idle {} after the last upload was sent.",
        storm_peak
            .map(|n| n.to_string())
            .unwrap_or_else(|| "unknown".into()),
        match storm_idle {
            Some(waited) => format!("{:.1} s", (quiet_took - storm_took + waited).as_secs_f64()),
            None => format!(
                "NOT within {:.0} s",
                (quiet_took - storm_took).as_secs_f64() + 60.0
            ),
        }
    );

    {
        let log = gateway.log.lock().unwrap();
        println!(
            "\nGateway stderr after start: {} lines; by level {:?}.",
            log.lines, log.by_level
        );
        for (message, count) in &log.messages {
            println!("  {count:>6} x {message}");
        }
    }
    let unexpected_total: usize = [&calibration, &soak, &recovery, &alone, &quiet_total]
        .iter()
        .map(|s| s.unexpected_count())
        .sum();
    println!(
        "\nVerdict: {unexpected_total} unexpected errors; gateway {}.",
        match exited {
            None => "still running (killed now)".to_string(),
            Some(status) => format!("EXITED during the run ({status})"),
        }
    );
    drop(gateway);
}

fn idle_text(waited: Option<Duration>) -> String {
    match waited {
        Some(waited) => format!("within {:.1} s", waited.as_secs_f64()),
        None => "NOT within the limit".to_string(),
    }
}
