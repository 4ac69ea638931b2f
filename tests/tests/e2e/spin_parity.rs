//! The requests compared between Spin 4.1 and `chatgate up` on the shipped `spin.toml`
//! (issue 10: identical status, headers and bodies on both, once Spin could load the
//! manifest). They are the behaviour both hosts must share, so they run here on chatgate
//! in one place, against the manifest as it ships and its embedded defaults.

use chatgate_tests::http_client::{Reply, send};
use chatgate_tests::{Gateway, project_manifest};
use serde_json::json;

const KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const JSON: (&str, &str) = ("content-type", "application/json");
const QUESTION: &str = "What does the web application firewall block?";

fn chat_body(content: &str, stream: bool) -> String {
    json!({"model": "chatgate-rag", "stream": stream, "messages": [{"role": "user", "content": content}]})
        .to_string()
}

/// Every answer went through `telemetry`, outermost: trace context, request id, timing.
fn assert_telemetry(name: &str, reply: &Reply) {
    for header in ["traceparent", "x-request-id", "server-timing"] {
        assert!(reply.header(header).is_some(), "{name}: no {header}");
    }
}

fn error_code(reply: &Reply) -> String {
    reply.json()["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_requests_compared_with_spin_answer_as_they_did_on_both_hosts() {
    let gateway = Gateway::start(&project_manifest(), &[]).await.unwrap();
    let url = |path: &str| gateway.url(path);

    let health = send("GET", &url("/healthz"), &[], "").await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );

    let models = send("GET", &url("/v1/models"), &[KEY], "").await;
    assert_eq!(models.status, 200, "{}", models.text());
    assert_eq!(models.json()["data"][0]["id"], "chatgate-rag");
    let azure_models = send(
        "GET",
        &url("/openai/models?api-version=2024-10-21"),
        &[("api-key", "chatgate-dev-key")],
        "",
    )
    .await;
    assert_eq!(azure_models.status, 200, "{}", azure_models.text());

    for (name, headers) in [
        ("no credential", vec![]),
        ("wrong key", vec![("authorization", "Bearer not-the-key")]),
        (
            "forged identity alone",
            vec![("x-chatgate-subject", "admin")],
        ),
    ] {
        let reply = send("GET", &url("/v1/models"), &headers, "").await;
        assert_eq!(reply.status, 401, "{name}: {}", reply.text());
        assert_telemetry(name, &reply);
    }

    let grounded = send(
        "POST",
        &url("/v1/chat/completions"),
        &[KEY, JSON],
        chat_body(QUESTION, false),
    )
    .await;
    assert_eq!(grounded.status, 200, "{}", grounded.text());
    let answer = grounded.json();
    assert!(
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("[doc1]")
    );
    assert!(
        !answer["choices"][0]["message"]["context"]["citations"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    assert!(grounded.header("x-ratelimit-remaining-requests").is_some());
    assert_telemetry("grounded", &grounded);

    // A client-sent identity does not change who is asking: the answer is the key's.
    let forged = send(
        "POST",
        &url("/v1/chat/completions"),
        &[
            KEY,
            JSON,
            ("x-chatgate-subject", "admin"),
            ("x-chatgate-auth", "jwt"),
        ],
        chat_body(QUESTION, false),
    )
    .await;
    assert_eq!(forged.status, 200, "{}", forged.text());

    let streamed = send(
        "POST",
        &url("/v1/chat/completions"),
        &[KEY, JSON],
        chat_body(QUESTION, true),
    )
    .await;
    assert_eq!(streamed.status, 200);
    assert!(
        streamed
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    assert_eq!(
        streamed.sse_data().last().map(String::as_str),
        Some("[DONE]")
    );

    let azure = send(
        "POST",
        &url("/openai/deployments/chatgate-rag/chat/completions?api-version=2024-10-21"),
        &[("api-key", "chatgate-dev-key"), JSON],
        chat_body(QUESTION, false),
    )
    .await;
    assert_eq!(azure.status, 200, "{}", azure.text());

    // The attacks were compared in the prompt; since the WAF's prompt-field policy
    // (issue 11) prompts go to the model uninspected by the injection rules, so they are
    // sent in the `model` field, which keeps every rule.
    for attack in ["x' OR 1=1 --", "<script>alert(1)</script>"] {
        let body = json!({"model": attack, "messages": [{"role": "user", "content": QUESTION}]});
        let reply = send(
            "POST",
            &url("/v1/chat/completions"),
            &[KEY, JSON],
            body.to_string(),
        )
        .await;
        assert_eq!(reply.status, 403, "{attack}: {}", reply.text());
        assert_telemetry(attack, &reply);
    }
    let traversal = send("GET", &url("/v1/models/..%2f..%2fetc%2fpasswd"), &[KEY], "").await;
    assert_eq!(traversal.status, 403, "{}", traversal.text());

    let unknown = send("GET", &url("/v2/nothing-here"), &[KEY], "").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());
    assert!(!error_code(&unknown).is_empty(), "{}", unknown.text());

    let nothing = send(
        "POST",
        &url("/v1/chat/completions"),
        &[KEY, JSON],
        chat_body("zxqv wplk fjrt", false),
    )
    .await;
    assert_eq!(nothing.status, 200, "{}", nothing.text());
    assert_eq!(
        nothing.header("x-chatgate-grounding"),
        Some("nothing-relevant")
    );

    gateway.stop().await;
}
