//! The project's own `spin.toml`, as shipped: telemetry -> waf -> auth -> chat ->
//! retrieval + completion-extractive, answering from the corpus in `data/`.

use chatgate_tests::http_client::{Reply, get, post_json, send};
use chatgate_tests::{Gateway, project_manifest};
use serde_json::json;

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");

async fn gateway() -> Gateway {
    Gateway::start(&project_manifest(), &[]).await.unwrap()
}

async fn ask(gateway: &Gateway, question: &str, stream: bool) -> Reply {
    let body = json!({"model": "chatgate-rag", "stream": stream, "messages": [{"role": "user", "content": question}]});
    post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], &body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_gets_a_grounded_answer_with_citations_from_data() {
    let gateway = gateway().await;
    let reply = ask(
        &gateway,
        "What does the web application firewall block?",
        false,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["model"].as_str().unwrap().contains("extractive"));
    let message = &body["choices"][0]["message"];
    assert_eq!(message["role"], "assistant");
    let content = message["content"].as_str().unwrap();
    assert!(content.contains("[doc1]"), "{content}");
    let citations = message["context"]["citations"].as_array().unwrap();
    assert!(!citations.is_empty());
    assert_eq!(citations[0]["filepath"], "data/application-gateway-waf.md");
    assert!(
        citations
            .iter()
            .all(|c| c["title"].is_string() && c["content"].is_string())
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64(),
        Some(
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        )
    );
    // Telemetry wraps every answer.
    assert!(
        reply
            .header("traceparent")
            .is_some_and(|t| t.starts_with("00-"))
    );
    assert!(reply.header("x-request-id").is_some());
    assert!(
        reply
            .header("server-timing")
            .is_some_and(|t| t.contains("total;dur="))
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_answer_is_server_sent_events_ending_with_done() {
    let gateway = gateway().await;
    let reply = ask(
        &gateway,
        "How does Key Vault keep secrets out of the application code?",
        true,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = reply.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<serde_json::Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    let first = &chunks[0]["choices"][0]["delta"];
    assert_eq!(first["role"], "assistant");
    assert!(!first["context"]["citations"].as_array().unwrap().is_empty());
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(text.contains("[doc"), "{text}");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sql_injection_and_script_outside_the_prompt_are_refused_by_the_waf_before_chat_runs() {
    let gateway = gateway().await;
    for attack in ["x' OR 1=1 --", "<script>alert(1)</script>"] {
        let body = json!({"model": attack, "messages": [{"role": "user", "content": "hello"}]});
        let reply = post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], &body).await;
        assert_eq!(reply.status, 403, "{attack}: {}", reply.text());
        let error = &reply.json()["error"];
        assert!(
            error["code"].as_str().unwrap().starts_with("waf_rule_"),
            "{error}"
        );
        assert!(
            error["message"].as_str().unwrap().contains("rule"),
            "{error}"
        );
    }
    gateway.stop().await;
}

/// The prompt is prose for the model (the WAF's prompt-field policy): a question about
/// SQL injection or HTML is answered, not refused.
#[tokio::test(flavor = "multi_thread")]
async fn code_questions_in_the_prompt_reach_chat() {
    let gateway = gateway().await;
    for question in [
        "Why does ' OR 1=1 -- bypass a login form, and what does the web application firewall block?",
        "What's the difference between <script defer> and <script async>?",
    ] {
        let reply = ask(&gateway, question, false).await;
        assert_eq!(reply.status, 200, "{question}: {}", reply.text());
        assert_eq!(reply.json()["object"], "chat.completion");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_without_a_valid_credential_are_401() {
    let gateway = gateway().await;
    let body = json!({"messages": [{"role": "user", "content": "hi"}]});
    let reply = post_json(&gateway.url("/v1/chat/completions"), &[], &body).await;
    assert_eq!(reply.status, 401);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert_eq!(reply.json()["error"]["code"], "invalid_api_key");
    let reply = post_json(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", "Bearer not-the-key")],
        &body,
    )
    .await;
    assert_eq!(reply.status, 401);
    assert!(
        !reply.text().contains("not-the-key"),
        "the credential is never echoed"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn models_and_health_answer_in_openai_and_probe_shapes() {
    let gateway = gateway().await;
    let models = get(&gateway.url("/v1/models"), &[DEV_KEY]).await.json();
    assert_eq!(models["object"], "list");
    assert_eq!(models["data"][0]["id"], "chatgate-rag");
    let health = get(&gateway.url("/healthz"), &[]).await;
    assert_eq!(
        (health.status, health.json()),
        (200, json!({"status": "ok"}))
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_openai_style_errors_naming_the_field() {
    let gateway = gateway().await;
    let url = gateway.url("/v1/chat/completions");
    let cases = [
        (json!({"messages": []}), 400, "messages"),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "n": 2}),
            400,
            "n",
        ),
        (
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": 7}),
            400,
            "temperature",
        ),
        (
            json!({"messages": [{"role": "wizard", "content": "hi"}]}),
            400,
            "messages[0].role",
        ),
    ];
    for (body, status, param) in cases {
        let reply = post_json(&url, &[DEV_KEY], &body).await;
        assert_eq!(reply.status, status, "{body}: {}", reply.text());
        let error = &reply.json()["error"];
        assert_eq!(error["param"], param, "{error}");
        assert!(error["message"].is_string() && error["type"].is_string());
    }
    let reply = send(
        "POST",
        &url,
        &[DEV_KEY, ("content-type", "application/json")],
        "{not json",
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(reply.json()["error"]["message"].is_string());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_question_outside_the_corpus_is_answered_as_not_found() {
    let gateway = gateway().await;
    let reply = ask(
        &gateway,
        "Who won the 1954 football world cup final?",
        false,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let content = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(content.contains("could not find"), "{content}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_leaves_one_structured_log_line_with_its_trace() {
    let gateway = gateway().await;
    let reply = ask(&gateway, "What is BM25?", false).await;
    assert_eq!(reply.status, 200);
    let trace_id = reply
        .header("traceparent")
        .unwrap()
        .split('-')
        .nth(1)
        .unwrap()
        .to_string();
    let lines: Vec<_> = gateway
        .guest_log()
        .into_iter()
        .filter(|l| l["msg"] == "request" && l["trace_id"] == trace_id.as_str())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["method"], "POST");
    assert_eq!(line["route"], "/v1/chat/completions");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0);
    assert_eq!(line["request_id"], reply.header("x-request-id").unwrap());
    gateway.stop().await;
}
