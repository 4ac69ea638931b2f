//! Capacity always comes back: storms of abandoned uploads, response timeouts, slow
//! upstream answers and clients that vanish mid-stream, each against the real gateway
//! (telemetry, waf, auth, chat, with `completion-openai` and a local upstream), with a
//! response timeout of 1 s and a small instance budget. After every storm the gateway
//! must be back to full capacity (no live instance, nothing in flight or uploading)
//! within one response-timeout period, answer normal requests, and hold no more memory
//! than before (within 10 %).
//!
//! The storms are many times larger than the instance budget, so a single request whose
//! instance outlived it would be visible; each test runs alone (one lock) so that memory
//! figures are the storm's own.

chatgate_tests::host_allocator!();

use chatgate_tests::http_client::{Reply, connect_from, open, partial_upload, post_json};
use chatgate_tests::upstream::{Answer, Ending, Upstream, openai_answer};
use chatgate_tests::{Gateway, OPENAI_COMPLETION_LINE, manifest_with_completion_line};
use serde_json::json;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// Instances the gateway may hold at once: far fewer than any storm's requests.
const BUDGET: usize = 24;
/// The longest the gateway may take to be back at full capacity after a storm ends.
const RECOVERY: Duration = Duration::from_secs(2);
/// The same after a storm of abandoned requests, which must not wait for any timeout:
/// well under the response timeout, so that instances kept until it expire fail the test.
const RECOVERY_AT_ONCE: Duration = Duration::from_millis(500);

static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Every component deadline under the 1 s response timeout (the host refuses to load
/// otherwise), and completion-openai failing fast.
const FAST: &[(&str, &str)] = &[
    ("openai_api_key", "sk-test"),
    ("openai_timeout_ms", "800"),
    ("openai_connect_timeout_ms", "300"),
    ("openai_first_byte_timeout_ms", "600"),
    ("openai_idle_timeout_ms", "300"),
    ("openai_max_retries", "0"),
    ("openai_breaker_failures", "1000"),
    ("azure_search_timeout_ms", "500"),
    ("retrieval_embeddings_timeout_ms", "500"),
    ("quota_requests_per_minute", "0"),
    ("quota_tokens_per_minute", "0"),
];

async fn gateway(upstream: &Upstream) -> Gateway {
    gateway_with(&upstream.origin, &[], RESPONSE_TIMEOUT).await
}

/// [`gateway`] calling the upstream at `origin`, with some of the [`FAST`] variables
/// replaced and another response timeout.
async fn gateway_with(
    origin: &str,
    overrides: &[(&str, &str)],
    response_timeout: Duration,
) -> Gateway {
    let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
    let mut variables = fast_with(overrides);
    variables.push(("openai_origin", origin));
    Gateway::start_with(&manifest, &variables, |options| {
        options.response_timeout = response_timeout.into();
        options.limits.max_in_flight = BUDGET;
        // A test is one client address: its share must not be what refuses it.
        options.limits.max_in_flight_per_client = 10 * BUDGET;
        options.limits.max_queued = 4 * BUDGET;
        options.limits.queue_timeout = Duration::from_millis(200);
        options.limits.max_uploads = 10 * BUDGET;
        options.limits.max_uploads_per_client = 10 * BUDGET;
        options.limits.body_read_timeout = Duration::from_millis(500);
    })
    .await
    .expect("gateway starts")
}

/// [`FAST`] with some of its variables replaced.
fn fast_with<'a>(overrides: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut variables: Vec<(&str, &str)> = FAST
        .iter()
        .filter(|(name, _)| overrides.iter().all(|(replaced, _)| replaced != name))
        .copied()
        .collect();
    variables.extend_from_slice(overrides);
    variables
}

/// Deadlines for tests whose requests may wait long (held streams, an overloaded
/// gateway) without that being what they test: with the response timeout below.
const PATIENT: &[(&str, &str)] = &[
    ("openai_timeout_ms", "20000"),
    ("openai_first_byte_timeout_ms", "20000"),
    ("openai_idle_timeout_ms", "20000"),
];
const PATIENT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

fn question(stream: bool) -> serde_json::Value {
    json!({
        "model": "chatgate-rag",
        "stream": stream,
        "messages": [{"role": "user", "content": "What does the web application firewall block?"}],
    })
}

/// An OpenAI-compatible upstream that answers normally until `faulty` is set, then
/// answers as `fault` makes it.
async fn switchable_upstream(
    answer: &'static str,
    faulty: Arc<std::sync::atomic::AtomicBool>,
    fault: fn(Answer) -> Answer,
) -> Upstream {
    Upstream::start(move |request| {
        let normal = openai_answer(request, answer);
        if faulty.load(std::sync::atomic::Ordering::SeqCst) {
            fault(normal)
        } else {
            normal
        }
    })
    .await
}

/// The process's resident memory, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Waits (at most [`RECOVERY`]) until nothing is in flight, uploading or instantiated.
async fn assert_capacity_back(gateway: &Gateway, storm: &str) {
    assert_capacity_back_within(gateway, storm, RECOVERY).await
}

async fn assert_capacity_back_within(gateway: &Gateway, storm: &str, bound: Duration) {
    let started = Instant::now();
    loop {
        let usage = gateway.app().usage();
        // Idle instances kept for reuse are capacity: the pool reclaims them on demand.
        let instances = gateway.app().instances();
        let busy = instances.live.saturating_sub(instances.idle);
        if usage.in_flight == 0 && usage.uploads == 0 && usage.queued == 0 && busy == 0 {
            break;
        }
        assert!(
            started.elapsed() < bound,
            "{storm}: capacity not back after {bound:?}: {usage:?}, {instances:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A full budget's worth of normal requests at once all succeed.
async fn assert_serves_normally(gateway: &Gateway, storm: &str) {
    let url = gateway.url("/v1/chat/completions");
    let question = question(false);
    let replies =
        futures_util::future::join_all((0..BUDGET).map(|_| post_json(&url, &[DEV_KEY], &question)))
            .await;
    for reply in replies {
        assert_eq!(reply.status, 200, "{storm}: {}", reply.text());
    }
}

/// Asks `count` questions at once; every answer's status must be one of `statuses`.
async fn storm_of_questions(
    gateway: &Gateway,
    count: usize,
    stream: bool,
    statuses: &[u16],
) -> Vec<Reply> {
    let url = gateway.url("/v1/chat/completions");
    let question = question(stream);
    let replies =
        futures_util::future::join_all((0..count).map(|_| post_json(&url, &[DEV_KEY], &question)))
            .await;
    for reply in &replies {
        assert!(
            statuses.contains(&reply.status),
            "{}: {}",
            reply.status,
            reply.text()
        );
    }
    replies
}

/// Warms the gateway up (compiled code, first allocations) and returns its memory.
async fn baseline(gateway: &Gateway) -> u64 {
    for _ in 0..3 {
        assert_serves_normally(gateway, "warm-up").await;
    }
    assert_capacity_back(gateway, "warm-up").await;
    until_no_instance_is_left(gateway, "warm-up").await;
    rss_kib()
}

/// Idle instances kept for reuse hold the memory their requests grew; memory is compared
/// once they are gone (after their idle timeout, 1 s by default).
async fn until_no_instance_is_left(gateway: &Gateway, storm: &str) {
    let started = Instant::now();
    while gateway.app().instances().live > 0 {
        assert!(
            started.elapsed() < RECOVERY + Duration::from_secs(1),
            "{storm}: instances left: {:?}",
            gateway.app().instances()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn assert_memory_back(gateway: &Gateway, baseline: u64, storm: &str) {
    // The same normal load as the baseline, so that both figures include it.
    assert_serves_normally(gateway, storm).await;
    assert_capacity_back(gateway, storm).await;
    until_no_instance_is_left(gateway, storm).await;
    let after = rss_kib();
    assert!(
        after * 10 <= baseline * 11,
        "{storm}: resident memory {after} KiB, baseline {baseline} KiB (more than 10 % over)"
    );
}

/// Opens `count` connections (at most `at_once` at a time) that each send `bytes` and
/// then close, or stay silent when `linger` is set, until the gateway closes them.
async fn storm_of_uploads(
    address: SocketAddr,
    from: IpAddr,
    bytes: Vec<u8>,
    count: usize,
    at_once: usize,
    linger: bool,
) {
    let bytes = Arc::new(bytes);
    let permits = Arc::new(tokio::sync::Semaphore::new(at_once));
    let mut tasks = Vec::new();
    for _ in 0..count {
        let permit = permits.clone().acquire_owned().await.unwrap();
        let bytes = bytes.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = permit;
            let Ok(mut stream) = connect_from(from, address).await else {
                return;
            };
            if stream.write_all(&bytes).await.is_err() {
                return;
            }
            if linger {
                // Whatever the gateway answers, read until it closes (bounded).
                let mut sink = Vec::new();
                let _ =
                    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink))
                        .await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_uploads_give_their_capacity_back_at_once() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("The firewall blocks SQL injection [doc1].").await;
    let gateway = gateway(&upstream).await;
    let before = baseline(&gateway).await;

    // The reported attack: headers of a 1000-byte body, 6 bytes of it, then close.
    let attack = partial_upload(gateway.address(), 1000, 6);
    storm_of_uploads(
        gateway.address(),
        "127.0.0.1".parse().unwrap(),
        attack,
        20 * BUDGET,
        64,
        false,
    )
    .await;
    assert_capacity_back_within(&gateway, "uploads closed mid-body", RECOVERY_AT_ONCE).await;
    assert_serves_normally(&gateway, "uploads closed mid-body").await;

    // The same, but the clients stay connected and silent: the body read timeout ends them.
    let silent = partial_upload(gateway.address(), 1000, 6);
    storm_of_uploads(
        gateway.address(),
        "127.0.0.1".parse().unwrap(),
        silent,
        4 * BUDGET,
        64,
        true,
    )
    .await;
    assert_capacity_back(&gateway, "silent uploads").await;
    assert_memory_back(&gateway, before, "abandoned uploads").await;
    gateway.stop().await;
}

/// An abandoned upload (headers of a 1000-byte body, 6 bytes, close) is answered by the
/// component that reads the body, and its instance serves the next request: abandoned
/// uploads one after another do not create an instance each, as they did before
/// `chatgate::app::ABANDONED_GRACE` (13 instances for these 20).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_abandoned_upload_leaves_its_instance_to_the_next_request() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("The firewall blocks SQL injection [doc1].").await;
    let gateway = gateway(&upstream).await;
    assert_serves_normally(&gateway, "warm-up").await;
    assert_capacity_back(&gateway, "warm-up").await;
    let created = gateway.app().instances().created;
    let uploads = 20;
    for _ in 0..uploads {
        let mut stream = TcpStream::connect(gateway.address()).await.unwrap();
        stream
            .write_all(&partial_upload(gateway.address(), 1000, 6))
            .await
            .unwrap();
        drop(stream);
        assert_capacity_back_within(&gateway, "an abandoned upload", RECOVERY_AT_ONCE).await;
    }
    let new = gateway.app().instances().created - created;
    assert!(
        new <= 2,
        "{new} instances created for {uploads} abandoned uploads, one after another"
    );
    assert_serves_normally(&gateway, "abandoned uploads").await;
    gateway.stop().await;
}

/// A connection that has sent a question's head declaring a 100-byte body, and 11 bytes
/// of that body.
async fn short_body_begun(address: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer chatgate-dev-key\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"messages\""
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// A body that stalls while its client waits: the component reading it sees the error
/// and answers, and the client gets the host's 408, not the component's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_body_gets_408_whatever_the_component_answers() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("unused").await;
    let gateway = gateway(&upstream).await;
    let mut stream = short_body_begun(gateway.address()).await;
    // Then silence, the connection open: the body read timeout (500 ms) ends it.
    let reply = first_reply(&mut stream, "answered").await;
    assert!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    assert!(reply.contains("body_timeout"), "{reply}");
    assert_eq!(upstream.hits(), 0);
    assert_capacity_back(&gateway, "a stalled body").await;
    gateway.stop().await;
}

/// An upstream that reads requests and never answers them, and counts the connections
/// whose request it had and that the gateway then closed: an outbound call the gateway
/// gave up on must end with its connection, or a hung upstream would keep one descriptor
/// and one socket per abandoned request. Plain TCP rather than [`Upstream`]'s HTTP
/// server, so that the close is seen on the socket itself.
struct SilentUpstream {
    origin: String,
    /// Connections whose request head arrived.
    reached: Arc<std::sync::atomic::AtomicUsize>,
    /// Of those, the ones the gateway closed (end of stream or reset).
    closed: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl SilentUpstream {
    async fn start() -> SilentUpstream {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let reached = Arc::new(AtomicUsize::new(0));
        let closed = Arc::new(AtomicUsize::new(0));
        let (reached_count, closed_count) = (reached.clone(), closed.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (reached, closed) = (reached_count.clone(), closed_count.clone());
                tokio::spawn(async move {
                    let mut seen = Vec::new();
                    let mut buffer = [0u8; 4096];
                    let mut had_head = false;
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) if !had_head => {
                                seen.extend_from_slice(&buffer[..n]);
                                if seen.windows(4).any(|w| w == b"\r\n\r\n") {
                                    had_head = true;
                                    reached.fetch_add(1, Ordering::SeqCst);
                                }
                            }
                            Ok(_) => {}
                        }
                    }
                    if had_head {
                        closed.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        SilentUpstream {
            origin,
            reached,
            closed,
            task,
        }
    }

    fn reached(&self) -> usize {
        self.reached.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn closed(&self) -> usize {
        self.closed.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Waits (at most `bound`) until every connection that reached it is closed.
    async fn assert_all_closed_within(&self, bound: Duration, what: &str) {
        let started = Instant::now();
        while self.closed() < self.reached() || self.reached() == 0 {
            assert!(
                started.elapsed() < bound,
                "{what}: {} of {} outbound connections still open after {bound:?}",
                self.reached() - self.closed(),
                self.reached()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for SilentUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A client that goes away while its question waits on an upstream that never answers:
/// the component gets the grace to answer, does not, and its instance is dropped with
/// the outbound call, well before the response timeout and the component's own deadline
/// (20 s each).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_gone_before_the_answer_gives_its_capacity_back_at_once() {
    let _alone = ALONE.lock().await;
    let upstream = SilentUpstream::start().await;
    let gateway = gateway_with(&upstream.origin, PATIENT, Duration::from_secs(30)).await;
    let created = gateway.app().instances().created;
    let body = serde_json::to_vec(&question(false)).unwrap();
    let url = gateway.url("/v1/chat/completions");
    let waiting = tokio::spawn(async move {
        post_json(&url, &[DEV_KEY], &serde_json::from_slice(&body).unwrap()).await
    });
    let started = Instant::now();
    while upstream.reached() == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "upstream reached"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(gateway.app().usage().in_flight, 1);
    assert_eq!(
        upstream.closed(),
        0,
        "the call is open while the client waits"
    );
    waiting.abort();
    assert_capacity_back_within(
        &gateway,
        "a client gone before the answer",
        RECOVERY_AT_ONCE,
    )
    .await;
    // Its instance was dropped, not kept for another request, and its call with it.
    assert_eq!(gateway.app().instances().live, 0);
    assert!(gateway.app().instances().created > created);
    upstream
        .assert_all_closed_within(RECOVERY, "a client gone before the answer")
        .await;
    gateway.stop().await;
}

/// `completion-openai`'s own deadline (800 ms to the first byte) ends a call to an
/// upstream that never answers: `chat` answers 504 and the outbound connection is closed,
/// one request at a time and in a storm.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_component_deadline_closes_its_outbound_call() {
    let _alone = ALONE.lock().await;
    let upstream = SilentUpstream::start().await;
    let gateway = gateway_with(&upstream.origin, &[], RESPONSE_TIMEOUT).await;
    let reply = post_json(
        &gateway.url("/v1/chat/completions"),
        &[DEV_KEY],
        &question(false),
    )
    .await;
    assert_eq!(reply.status, 504, "{}", reply.text());
    upstream
        .assert_all_closed_within(RECOVERY, "one timed-out call")
        .await;
    let replies = storm_of_questions(&gateway, 5 * BUDGET, false, &[503, 504]).await;
    assert!(replies.iter().any(|r| r.status == 504), "some timed out");
    upstream
        .assert_all_closed_within(RECOVERY, "a storm of timed-out calls")
        .await;
    assert!(upstream.reached() > 1);
    assert_capacity_back(&gateway, "timed-out calls").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_that_time_out_give_their_capacity_back_within_one_timeout() {
    let _alone = ALONE.lock().await;
    let faulty = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Accepts the request and never answers it.
    let upstream = switchable_upstream("The firewall blocks [doc1].", faulty.clone(), |a| Answer {
        stall: true,
        ..a
    })
    .await;
    let gateway = gateway(&upstream).await;
    let before = baseline(&gateway).await;

    // Every request of the storm reaches a stalled upstream; with openai's own deadline
    // (800 ms) just under the response timeout, each ends as a clean 504 from chat, or the
    // host's 504, or a fast 503 when the budget is taken. None may hang.
    faulty.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = Instant::now();
    let replies = storm_of_questions(&gateway, 5 * BUDGET, false, &[503, 504]).await;
    for reply in &replies {
        assert!(
            reply.json()["error"]["code"].is_string(),
            "{}",
            reply.text()
        );
    }
    assert!(replies.iter().any(|r| r.status == 504), "some timed out");
    assert!(started.elapsed() < Duration::from_secs(20), "nothing hangs");
    assert_capacity_back(&gateway, "response timeouts").await;
    faulty.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_memory_back(&gateway, before, "response timeouts").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_upstream_streams_give_their_capacity_back() {
    let _alone = ALONE.lock().await;
    let faulty = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // A stream that begins, then goes silent for good.
    let upstream = switchable_upstream(
        "The firewall blocks SQL injection and cross-site scripting [doc1].",
        faulty.clone(),
        |mut answer| {
            let second_event = answer
                .body
                .match_indices("\n\n")
                .nth(1)
                .map_or(0, |(i, _)| i + 2);
            answer.body.truncate(second_event);
            answer.ending = Ending::Silence;
            answer
        },
    )
    .await;
    let gateway = gateway(&upstream).await;
    let before = baseline(&gateway).await;

    // completion-openai's idle timeout ends each stream with an error event, and the
    // instance must go.
    faulty.store(true, std::sync::atomic::Ordering::SeqCst);
    let replies = storm_of_questions(&gateway, 3 * BUDGET, true, &[200, 503]).await;
    let broken_off = replies
        .iter()
        .filter(|r| {
            r.status == 200 && r.text().contains("\"error\"") && !r.text().contains("[DONE]")
        })
        .count();
    assert!(
        broken_off > 0,
        "some streams began and broke off with an error event"
    );
    assert_capacity_back(&gateway, "slow upstream streams").await;
    faulty.store(false, std::sync::atomic::Ordering::SeqCst);
    assert_memory_back(&gateway, before, "slow upstream streams").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_vanish_mid_stream_give_their_capacity_back_at_once() {
    let _alone = ALONE.lock().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    // The stream's rest is held back for good: only a vanished client can end these.
    let upstream =
        Upstream::openai_held("The firewall blocks SQL injection [doc1].", gate.clone()).await;
    let gateway = gateway(&upstream).await;
    let before = baseline(&gateway).await;
    let url = gateway.url("/v1/chat/completions");
    let body = serde_json::to_vec(&question(true)).unwrap();
    for _round in 0..4 {
        let mut streams = Vec::new();
        for _ in 0..BUDGET {
            let mut stream = open(
                "POST",
                &url,
                &[DEV_KEY, ("content-type", "application/json")],
                body.clone(),
            )
            .await;
            assert_eq!(stream.status, 200);
            stream.read_until(|text| text.contains("data: ")).await;
            streams.push(stream);
        }
        assert_eq!(gateway.app().usage().in_flight, BUDGET);
        drop(streams);
        // Far sooner than the 1 s idle timeouts could, and the 600 s body timeout would.
        assert_capacity_back_within(&gateway, "clients gone mid-stream", RECOVERY_AT_ONCE).await;
    }
    assert_memory_back(&gateway, before, "clients gone mid-stream").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_address_abandoning_uploads_leaves_another_unaffected() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("The firewall blocks SQL injection [doc1].").await;
    let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
    let mut variables = FAST.to_vec();
    variables.push(("openai_origin", &upstream.origin));
    // The default per-client shares, with a small instance budget.
    let gateway = Gateway::start_with(&manifest, &variables, |options| {
        options.response_timeout = RESPONSE_TIMEOUT.into();
        options.limits.max_in_flight = 4 * BUDGET;
        options.limits.max_in_flight_per_client = BUDGET;
        options.limits.body_read_timeout = Duration::from_millis(500);
    })
    .await
    .expect("gateway starts");
    let address = gateway.address();
    let noisy: IpAddr = "127.0.0.2".parse().unwrap();
    let quiet: IpAddr = "127.0.0.3".parse().unwrap();

    let attack = tokio::spawn(storm_of_uploads(
        address,
        noisy,
        partial_upload(address, 1000, 6),
        1_000,
        200,
        true,
    ));
    let body = serde_json::to_string(&question(false)).unwrap();
    let mut served = 0;
    while !attack.is_finished() || served < 20 {
        let mut stream = connect_from(quiet, address).await.expect("connect");
        let request = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer chatgate-dev-key\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut reply))
            .await
            .expect("the quiet client is answered")
            .unwrap();
        let reply = String::from_utf8_lossy(&reply);
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "the quiet client got: {reply}"
        );
        served += 1;
    }
    attack.await.unwrap();
    assert_capacity_back(&gateway, "noisy neighbour").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_declared_body_gets_413_instead_of_100_continue() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("unused").await;
    let gateway = gateway(&upstream).await;
    let address = gateway.address();
    let limit = gateway.app().limits().max_body_bytes;
    let mut stream = TcpStream::connect(address).await.unwrap();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\nauthorization: Bearer chatgate-dev-key\r\ncontent-type: application/json\r\nexpect: 100-continue\r\ncontent-length: {}\r\n\r\n",
        limit + 1
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let reply = first_reply(&mut stream, "an answer without sending the body").await;
    assert!(reply.starts_with("HTTP/1.1 413"), "{reply}");
    assert!(reply.contains("request_too_large"), "{reply}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_wide_options_is_answered_by_the_host() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("unused").await;
    let gateway = gateway(&upstream).await;
    let address = gateway.address();
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream
        .write_all(
            format!("OPTIONS * HTTP/1.1\r\nhost: {address}\r\nconnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .unwrap()
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 204"), "{reply}");
    assert!(reply.to_ascii_lowercase().contains("allow: "), "{reply}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn probes_answer_from_the_host_and_readiness_reflects_capacity() {
    let _alone = ALONE.lock().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let upstream = Upstream::openai_held("The firewall blocks [doc1].", gate.clone()).await;
    // The held streams must outlive the time it takes to open all of them (each goes
    // through the whole chain, WAF included): no deadline of the fast set may end them.
    let gateway = gateway_with(&upstream.origin, PATIENT, PATIENT_RESPONSE_TIMEOUT).await;
    let health = chatgate_tests::http_client::get(&gateway.url("/healthz"), &[]).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    assert_eq!(gateway.app().live_instances(), 0, "no component ran");
    let ready = chatgate_tests::http_client::get(&gateway.url("/readyz"), &[]).await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["max_in_flight"], BUDGET);

    let url = gateway.url("/v1/chat/completions");
    let body = serde_json::to_vec(&question(true)).unwrap();
    let mut streams = Vec::new();
    for _ in 0..BUDGET {
        let mut stream = open(
            "POST",
            &url,
            &[DEV_KEY, ("content-type", "application/json")],
            body.clone(),
        )
        .await;
        stream.read_until(|text| text.contains("data: ")).await;
        streams.push(stream);
    }
    let saturated = chatgate_tests::http_client::get(&gateway.url("/readyz"), &[]).await;
    assert_eq!(saturated.status, 503, "{}", saturated.text());
    assert_eq!(saturated.json()["in_flight"], BUDGET);
    assert_eq!(saturated.header("retry-after"), Some("1"));
    // Liveness does not depend on capacity.
    let health = chatgate_tests::http_client::get(&gateway.url("/healthz"), &[]).await;
    assert_eq!(health.status, 200);
    // A request beyond the budget waits briefly in the queue, then gets a clean 503.
    let refused = post_json(&url, &[DEV_KEY], &question(false)).await;
    assert_eq!(refused.status, 503, "{}", refused.text());
    assert_eq!(refused.json()["error"]["code"], "overloaded");
    assert_eq!(refused.header("retry-after"), Some("1"));
    gate.notify_waiters();
    drop(streams);
    assert_capacity_back(&gateway, "saturation").await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_deadline_not_shorter_than_the_response_timeout_is_refused_at_load() {
    let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
    let mut variables = FAST.to_vec();
    variables.retain(|(name, _)| *name != "openai_timeout_ms");
    variables.push(("openai_timeout_ms", "1000"));
    let error = Gateway::start_with(&manifest, &variables, |options| {
        options.response_timeout = RESPONSE_TIMEOUT.into();
    })
    .await
    .err()
    .expect("the gateway refuses to start");
    assert!(error.contains("openai_timeout_ms"), "{error}");
    assert!(error.contains("response timeout"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_shorter_than_declared_ends_the_chain_at_once() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("unused").await;
    let gateway = gateway(&upstream).await;
    let mut stream = short_body_begun(gateway.address()).await;
    // The client is done sending: the body ends 89 bytes short.
    stream.shutdown().await.unwrap();
    let started = Instant::now();
    let mut reply = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut reply))
        .await
        .expect("answered without waiting for the response timeout")
        .unwrap();
    let reply = String::from_utf8_lossy(&reply);
    // The WAF, reading the body, sees the error and refuses; nothing reaches chat.
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply}"
    );
    assert!(
        started.elapsed() < RESPONSE_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(upstream.hits(), 0);
    assert_capacity_back(&gateway, "short body").await;
    gateway.stop().await;
}

/// Many more CPU-bound requests at once than the gateway's runtime can run promptly:
/// once its scheduler has been behind for the overload interval, new requests get a
/// clean 503 at once instead of joining the backlog, `/readyz` says so, and the first
/// moment the backlog is gone the gateway admits and serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_behind_on_cpu_sheds_new_requests_and_recovers() {
    let _alone = ALONE.lock().await;
    let upstream = Upstream::openai("The firewall blocks SQL injection [doc1].").await;
    // The gateway on a runtime of its own with one thread, so that the clients' work
    // (on this test's runtime) is not what makes it late.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let origin = upstream.origin.clone();
    let gateway = server
        .spawn(async move {
            let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
            // Only shedding may refuse: admitted requests may take long, and must not
            // end by a deadline instead.
            let mut variables = fast_with(PATIENT);
            variables.push(("openai_origin", &origin));
            Gateway::start_with(&manifest, &variables, |options| {
                options.response_timeout = PATIENT_RESPONSE_TIMEOUT.into();
                options.limits.max_in_flight = 400;
                options.limits.max_in_flight_per_client = 400;
                options.limits.max_uploads = 400;
                options.limits.max_uploads_per_client = 400;
                options.limits.overload_lag = Duration::from_millis(20);
                options.limits.overload_interval = Duration::from_millis(100);
                // A fresh instance per request makes the CPU backlog the detector must
                // see: with reuse, the same 300 clients kept the one thread's lag at
                // 0-10 ms, served every request, and nothing was shed.
                options.reuse = chatgate::reuse::InstanceReuse::SINGLE_USE;
            })
            .await
            .expect("gateway starts")
        })
        .await
        .expect("the gateway's start-up");
    let url = gateway.url("/v1/chat/completions");
    let quiet = post_json(&url, &[DEV_KEY], &question(false)).await;
    assert_eq!(quiet.status, 200, "{}", quiet.text());

    // Every request goes through the whole chain on one thread: 300 clients asking again
    // as soon as they are answered, for 3 s, are far more work than fits in the 20 ms
    // the scheduler may be behind, for far longer than the 100 ms it is smoothed over.
    let storm_ends = Instant::now() + Duration::from_secs(3);
    let question = question(false);
    let readiness_seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let storm = futures_util::future::join_all((0..300).map(|_| {
        let (url, question) = (&url, &question);
        async move {
            let mut replies = Vec::new();
            while Instant::now() < storm_ends {
                replies.push(post_json(url, &[DEV_KEY], question).await);
            }
            replies
        }
    }));
    let watch_readiness = {
        let seen = readiness_seen.clone();
        let readyz = gateway.url("/readyz");
        async move {
            while Instant::now() < storm_ends {
                let ready = chatgate_tests::http_client::get(&readyz, &[]).await;
                let json = ready.json();
                seen.lock()
                    .unwrap()
                    .push((json["status"].clone(), json["scheduler_lag_ms"].clone()));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (replies, ()) = tokio::join!(storm, watch_readiness);
    let replies: Vec<Reply> = replies.into_iter().flatten().collect();
    let mut shed = 0;
    for reply in &replies {
        match reply.status {
            200 => {}
            503 => {
                let error = &reply.json()["error"];
                assert_eq!(error["code"], "overloaded", "{}", reply.text());
                assert_eq!(reply.header("retry-after"), Some("1"));
                if error["message"]
                    .as_str()
                    .unwrap_or_default()
                    .contains("shedding")
                {
                    shed += 1;
                }
            }
            other => panic!("{other}: {}", reply.text()),
        }
    }
    eprintln!(
        "shed {shed} of {} requests; readiness and lag seen: {:?}",
        replies.len(),
        readiness_seen.lock().unwrap()
    );
    assert!(
        shed > 0,
        "no request was shed out of {}; readiness and lag seen: {:?}",
        replies.len(),
        readiness_seen.lock().unwrap()
    );
    assert!(
        readiness_seen
            .lock()
            .unwrap()
            .iter()
            .any(|(status, _)| status == "overloaded"),
        "readiness never reported overload: {:?}",
        readiness_seen.lock().unwrap()
    );

    // Bounded by the harness: on a loaded machine the backlog may take a while to clear.
    while gateway.app().usage().overloaded || gateway.app().usage().in_flight > 0 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for _ in 0..8 {
        let reply = post_json(&url, &[DEV_KEY], &question).await;
        assert_eq!(reply.status, 200, "after the storm: {}", reply.text());
    }
    server
        .spawn(async move { gateway.stop().await })
        .await
        .expect("the gateway stops");
    server.shutdown_background();
}

/// What the gateway first sends back on `stream` (at most 4 KiB), within 5 s; `expected`
/// says what was awaited when it does not come.
async fn first_reply(stream: &mut tokio::net::TcpStream, expected: &str) -> String {
    let mut reply = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut reply))
        .await
        .expect(expected)
        .unwrap();
    String::from_utf8_lossy(&reply[..read]).into_owned()
}
