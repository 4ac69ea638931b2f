//! A flaky upstream, end to end: the real gateway (telemetry, waf, auth, chat) with
//! `completion-openai` swapped in, against `chatgate_tests::upstream` scripted to fail
//! like real OpenAI / Azure OpenAI deployments do. Every test asserts which outcome the
//! client got (success after a retry or a failover, or which OpenAI-style error) and
//! how many requests reached each upstream.
//!
//! Timeouts and backoffs are set small through variables so the suite runs quickly;
//! the only time assertions are generous upper bounds proving that nothing hangs.

use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::upstream::{Answer, Behaviour, Upstream};
use chatgate_tests::{Gateway, OPENAI_COMPLETION_LINE, project_manifest};
use serde_json::json;
use std::time::{Duration, Instant};

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const ANSWER: &str = "The firewall blocks SQL injection [doc1].";
/// No request in this suite may take longer: a hang is a failure, not a slow pass.
const NO_HANG: Duration = Duration::from_secs(20);

/// Fast resilience settings: 1 s per attempt to get response headers, 500 ms between
/// stream chunks, 5 s per call, two retries with a 10 ms backoff base.
const FAST: &[(&str, &str)] = &[
    ("openai_api_key", "sk-primary"),
    ("openai_timeout_ms", "5000"),
    ("openai_connect_timeout_ms", "500"),
    ("openai_first_byte_timeout_ms", "500"),
    ("openai_idle_timeout_ms", "500"),
    ("openai_max_retries", "2"),
    ("openai_retry_base_ms", "10"),
];

/// The shipped manifest with `swapped` as the completion dependency, `chat` allowed to
/// reach exactly `hosts`.
fn manifest(swapped: &str, hosts: &[&str]) -> String {
    let hosts = hosts
        .iter()
        .map(|h| format!("\"{h}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let mut section = String::new();
    let mut lines = Vec::new();
    for line in project_manifest().lines() {
        if line.starts_with('[') {
            section = line.to_string();
        }
        let line = if line.starts_with("\"chatgate:completion/completion\"") {
            swapped.to_string()
        } else if section == "[component.chat]" && line.starts_with("allowed_outbound_hosts") {
            format!("allowed_outbound_hosts = [{hosts}]")
        } else {
            line.to_string()
        };
        lines.push(line);
    }
    let manifest = lines.join("\n");
    assert!(
        manifest.contains(swapped),
        "spin.toml has a completion dependency"
    );
    manifest
}

/// A gateway allowed to reach `hosts`, with [`FAST`] settings unless `variables`
/// sets them otherwise.
async fn gateway(hosts: &[&str], variables: &[(&str, &str)]) -> Gateway {
    gateway_with(OPENAI_COMPLETION_LINE, hosts, variables).await
}

async fn gateway_with(swapped: &str, hosts: &[&str], variables: &[(&str, &str)]) -> Gateway {
    let mut all: Vec<(&str, &str)> = FAST
        .iter()
        .filter(|(name, _)| !variables.iter().any(|(n, _)| n == name))
        .copied()
        .collect();
    all.extend_from_slice(variables);
    Gateway::start(&manifest(swapped, hosts), &all)
        .await
        .unwrap()
}

/// A gateway in front of `upstream` alone.
async fn gateway_for(upstream: &Upstream, variables: &[(&str, &str)]) -> Gateway {
    let mut all = vec![("openai_origin", upstream.origin.as_str())];
    all.extend_from_slice(variables);
    gateway(&[&upstream.origin], &all).await
}

async fn ask(gateway: &Gateway, stream: bool) -> Reply {
    let question = json!({"stream": stream, "messages": [{"role": "user", "content": "What does the web application firewall block?"}]});
    let started = Instant::now();
    let reply = tokio::time::timeout(
        NO_HANG,
        post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], &question),
    )
    .await
    .expect("the gateway answers instead of hanging");
    assert!(started.elapsed() < NO_HANG);
    reply
}

fn assert_answered(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["choices"][0]["message"]["content"], ANSWER);
}

fn assert_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].is_string(), "{body}");
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(!reply.text().contains("sk-primary"));
}

/// The streamed text, the `data: {"error": ...}` event if any, and whether `[DONE]` came.
fn stream_outcome(reply: &Reply) -> (String, Option<serde_json::Value>, bool) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut text = String::new();
    let mut error = None;
    let mut done = false;
    for data in reply.sse_data() {
        if data == "[DONE]" {
            done = true;
            continue;
        }
        let event: serde_json::Value = serde_json::from_str(&data).unwrap();
        if let Some(e) = event.get("error") {
            assert!(error.is_none(), "one error event at most");
            error = Some(e.clone());
        } else if let Some(piece) = event["choices"][0]["delta"]["content"].as_str() {
            assert!(error.is_none(), "nothing after the error event");
            text.push_str(piece);
        }
    }
    (text, error, done)
}

fn retry_after(seconds: &str) -> Behaviour {
    Behaviour::Error {
        status: 429,
        headers: vec![("retry-after", seconds.to_string())],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limit_with_retry_after_is_waited_out_then_answered() {
    let upstream = Upstream::scripted(ANSWER, vec![retry_after("1")]).await;
    let gateway = gateway_for(&upstream, &[]).await;
    assert_answered(&ask(&gateway, false).await);
    assert_eq!(upstream.hits(), 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requested_delay_past_the_deadline_is_passed_to_the_client_instead_of_slept() {
    // 20 s is longer than the 5 s the call may take: no second attempt, and the
    // client is told when to come back.
    let upstream = Upstream::always(Behaviour::Error {
        status: 429,
        headers: vec![("retry-after-ms", "20000".into())],
    })
    .await;
    let gateway = gateway_for(&upstream, &[]).await;
    let reply = ask(&gateway, false).await;
    assert_error(&reply, 429, "rate_limit_exceeded");
    assert_eq!(reply.header("retry-after"), Some("20"));
    assert_eq!(upstream.hits(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_are_retried_until_the_upstream_answers() {
    let upstream =
        Upstream::scripted(ANSWER, vec![Behaviour::status(500), Behaviour::status(503)]).await;
    let gateway = gateway_for(&upstream, &[]).await;
    assert_answered(&ask(&gateway, false).await);
    assert_eq!(upstream.hits(), 3);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_keeps_failing_is_a_503_after_the_last_retry() {
    let upstream = Upstream::always(Behaviour::status(503)).await;
    let gateway = gateway_for(&upstream, &[]).await;
    let reply = ask(&gateway, false).await;
    assert_error(&reply, 503, "upstream_unavailable");
    assert_eq!(reply.json()["error"]["type"], "server_error");
    assert_eq!(upstream.hits(), 3, "one attempt and two retries");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn client_errors_are_never_retried() {
    let upstream = Upstream::always(Behaviour::status(400)).await;
    let gateway = gateway_for(&upstream, &[]).await;
    let reply = ask(&gateway, false).await;
    assert_error(&reply, 400, "invalid_request");
    assert_eq!(upstream.hits(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_connection_is_abandoned_and_retried() {
    let upstream = Upstream::scripted(ANSWER, vec![Behaviour::Stall]).await;
    let gateway = gateway_for(&upstream, &[]).await;
    assert_answered(&ask(&gateway, false).await);
    assert_eq!(upstream.hits(), 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_that_never_answers_is_a_504_not_a_hang() {
    let upstream = Upstream::always(Behaviour::Stall).await;
    // Without a breaker, which would otherwise open after five of the six timeouts.
    let gateway = gateway_for(&upstream, &[("openai_breaker_failures", "0")]).await;
    for stream in [false, true] {
        let reply = ask(&gateway, stream).await;
        assert_error(&reply, 504, "upstream_timeout");
    }
    assert_eq!(upstream.hits(), 6, "three attempts per request");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_after_some_chunks_ends_with_an_error_event_and_no_done() {
    // Events: the role chunk, "The", " firewall", then the connection is cut.
    let upstream = Upstream::scripted(ANSWER, vec![Behaviour::CutAfter(3)]).await;
    let gateway = gateway_for(&upstream, &[]).await;
    let (text, error, done) = stream_outcome(&ask(&gateway, true).await);
    assert_eq!(text, "The firewall");
    assert_eq!(
        error.expect("an error event")["code"],
        "upstream_unavailable"
    );
    assert!(!done);
    assert_eq!(
        upstream.hits(),
        1,
        "never retried once the answer has begun"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_cut_before_its_first_chunk_is_retried() {
    let upstream = Upstream::scripted(ANSWER, vec![Behaviour::CutAfter(0)]).await;
    let gateway = gateway_for(&upstream, &[]).await;
    let (text, error, done) = stream_outcome(&ask(&gateway, true).await);
    assert_eq!((text.as_str(), error, done), (ANSWER, None, true));
    assert_eq!(upstream.hits(), 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_chunk_ends_the_stream_with_an_error_event() {
    let upstream = Upstream::scripted(ANSWER, vec![Behaviour::MalformedAfter(2)]).await;
    let gateway = gateway_for(&upstream, &[]).await;
    let (text, error, done) = stream_outcome(&ask(&gateway, true).await);
    assert_eq!(text, "The");
    assert_eq!(error.expect("an error event")["code"], "upstream_error");
    assert!(!done);
    assert_eq!(upstream.hits(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stream_that_goes_silent_ends_with_a_timeout_event() {
    let upstream = Upstream::scripted(ANSWER, vec![Behaviour::SilentAfter(2)]).await;
    let gateway = gateway_for(&upstream, &[]).await;
    let (text, error, done) = stream_outcome(&ask(&gateway, true).await);
    assert_eq!(text, "The");
    assert_eq!(error.expect("an error event")["code"], "upstream_timeout");
    assert!(!done);
    assert_eq!(upstream.hits(), 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_content_type_is_a_502_and_not_retried_on_the_same_target() {
    let upstream = Upstream::always(Behaviour::Html).await;
    let gateway = gateway_for(&upstream, &[]).await;
    let reply = ask(&gateway, false).await;
    assert_error(&reply, 502, "upstream_error");
    let reply = ask(&gateway, true).await;
    assert_error(&reply, 502, "upstream_error");
    assert_eq!(upstream.hits(), 2, "one attempt per request");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_deployment_fails_over_to_the_next_one_at_once() {
    let upstream = Upstream::scripted(ANSWER, vec![retry_after("30")]).await;
    let gateway = gateway_for(&upstream, &[("openai_model", "gpt-4o, gpt-4o-mini")]).await;
    assert_answered(&ask(&gateway, false).await);
    let models: Vec<_> = upstream
        .recorded()
        .iter()
        .map(|r| r.body["model"].clone())
        .collect();
    assert_eq!(models, [json!("gpt-4o"), json!("gpt-4o-mini")]);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_down_origin_fails_over_to_the_second_origin_with_its_own_key() {
    // Nothing listens on the primary origin: its connections are refused.
    let down = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let failover = Upstream::openai(ANSWER).await;
    let gateway = gateway(
        &[&down, &failover.origin],
        &[
            ("openai_origin", &down),
            ("openai_failover_origin", &failover.origin),
            ("openai_failover_api_key", "sk-failover"),
        ],
    )
    .await;
    assert_answered(&ask(&gateway, false).await);
    let (text, error, done) = stream_outcome(&ask(&gateway, true).await);
    assert_eq!((text.as_str(), error, done), (ANSWER, None, true));
    let recorded = failover.recorded();
    assert_eq!(recorded.len(), 2);
    assert!(
        recorded
            .iter()
            .all(|r| r.headers["authorization"] == "Bearer sk-failover")
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_circuit_breaker_keeps_requests_away_until_a_probe_succeeds() {
    let upstream = Upstream::scripted(ANSWER, vec![Behaviour::status(503); 2]).await;
    let gateway = gateway_for(
        &upstream,
        &[
            ("openai_max_retries", "0"),
            ("openai_breaker_failures", "2"),
            ("openai_breaker_cooldown_ms", "2000"),
        ],
    )
    .await;
    // Two failures in a row open the breaker...
    for hits in [1, 2] {
        assert_error(&ask(&gateway, false).await, 503, "upstream_unavailable");
        assert_eq!(upstream.hits(), hits);
    }
    // ...so the next requests fail fast without reaching the upstream,
    for _ in 0..2 {
        assert_error(&ask(&gateway, false).await, 503, "upstream_unavailable");
        assert_eq!(upstream.hits(), 2, "the open breaker sent nothing");
    }
    // until the cooldown is over and one probe finds the upstream healthy again.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_answered(&ask(&gateway, false).await);
    assert_answered(&ask(&gateway, false).await);
    assert_eq!(upstream.hits(), 4);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_value_store_calls_still_run_without_a_breaker() {
    let upstream = Upstream::always(Behaviour::status(503)).await;
    let no_store = OPENAI_COMPLETION_LINE.replace(r#", "key_value_stores""#, "");
    let gateway = gateway_with(
        &no_store,
        &[&upstream.origin],
        &[
            ("openai_origin", &upstream.origin),
            ("openai_breaker_failures", "1"),
        ],
    )
    .await;
    // With a store, the first failure would open the breaker; without one, every
    // request still makes all its attempts.
    for hits in [3, 6] {
        assert_error(&ask(&gateway, false).await, 503, "upstream_unavailable");
        assert_eq!(upstream.hits(), hits);
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_managed_identity_token_is_fetched_once_and_reused() {
    let expires_on = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let imds = Upstream::start(move |_| {
        Answer::json(
            200,
            &json!({
                "access_token": "entra-token-1",
                "expires_on": expires_on.to_string(),
                "resource": "https://cognitiveservices.azure.com",
                "token_type": "Bearer",
            }),
        )
    })
    .await;
    let upstream = Upstream::openai(ANSWER).await;
    let gateway = gateway(
        &[&upstream.origin, &imds.origin],
        &[
            ("openai_origin", &upstream.origin),
            ("openai_api_flavor", "azure"),
            ("openai_model", "chat"),
            ("openai_auth", "managed-identity"),
            ("openai_token_origin", &imds.origin),
            ("openai_client_id", "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d"),
        ],
    )
    .await;
    assert_answered(&ask(&gateway, false).await);
    assert_answered(&ask(&gateway, false).await);

    let token_requests = imds.recorded();
    assert_eq!(
        token_requests.len(),
        1,
        "the second request used the cached token"
    );
    let token_request = &token_requests[0];
    assert_eq!(token_request.method, "GET");
    assert_eq!(
        token_request.path_and_query,
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://cognitiveservices.azure.com&client_id=6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d"
    );
    assert_eq!(token_request.headers["metadata"], "true");

    let completions = upstream.recorded();
    assert_eq!(completions.len(), 2);
    for request in &completions {
        assert_eq!(request.headers["authorization"], "Bearer entra-token-1");
        assert!(request.headers.get("api-key").is_none());
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_token_endpoint_is_an_error_without_calling_the_model() {
    let upstream = Upstream::openai(ANSWER).await;
    let imds = Upstream::always(Behaviour::status(500)).await;
    let gateway = gateway(
        &[&upstream.origin, &imds.origin],
        &[
            ("openai_origin", &upstream.origin),
            ("openai_auth", "managed-identity"),
            ("openai_token_origin", &imds.origin),
        ],
    )
    .await;
    assert_error(&ask(&gateway, false).await, 503, "upstream_unavailable");
    assert_eq!(imds.hits(), 1);
    assert_eq!(upstream.hits(), 0);
    gateway.stop().await;
}
