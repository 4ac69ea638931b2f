//! Swapping one component by editing one line of `spin.toml`, and the limits the
//! host puts on what a swapped-in dependency may reach.
//!
//! The upstream is `chatgate_tests::upstream`, a local test double of OpenAI's
//! `/v1/chat/completions` that speaks the real wire protocol (JSON and SSE).

use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::upstream::Upstream;
use chatgate_tests::{Gateway, OPENAI_COMPLETION_LINE, manifest_with_completion_line};
use serde_json::json;

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");

fn question(stream: bool) -> serde_json::Value {
    json!({"stream": stream, "messages": [{"role": "user", "content": "What does the web application firewall block?"}]})
}

#[tokio::test(flavor = "multi_thread")]
async fn one_edited_line_switches_answers_to_an_openai_compatible_upstream() {
    let upstream = Upstream::openai("The firewall blocks SQL injection and XSS [doc1].").await;
    let gateway = Gateway::start(
        &manifest_with_completion_line(OPENAI_COMPLETION_LINE),
        &[
            ("openai_origin", &upstream.origin),
            ("openai_api_key", "sk-test-upstream"),
        ],
    )
    .await
    .unwrap();
    let url = gateway.url("/v1/chat/completions");

    let reply = post_json(&url, &[DEV_KEY], &question(false)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "The firewall blocks SQL injection and XSS [doc1]."
    );
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["usage"]["total_tokens"], 18);
    assert!(
        !body["choices"][0]["message"]["context"]["citations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // The upstream got an OpenAI request grounded in the retrieved passages.
    let sent = &upstream.recorded()[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path_and_query, "/v1/chat/completions");
    assert_eq!(sent.headers["authorization"], "Bearer sk-test-upstream");
    let system = sent.body["messages"][0]["content"].as_str().unwrap();
    assert_eq!(sent.body["messages"][0]["role"], "system");
    assert!(
        system.contains("[doc1]") && system.contains("Application Gateway"),
        "{system}"
    );
    assert_eq!(
        sent.body["messages"].as_array().unwrap().last().unwrap()["content"],
        "What does the web application firewall block?"
    );

    let reply = post_json(&url, &[DEV_KEY], &question(true)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = reply.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<serde_json::Value>(e).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(text, "The firewall blocks SQL injection and XSS [doc1].");
    assert_eq!(upstream.recorded()[1].body["stream"], true);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_openai_is_called_on_its_deployment_url_with_an_api_key_header() {
    let upstream = Upstream::openai("Azure says hello.").await;
    let gateway = Gateway::start(
        &manifest_with_completion_line(OPENAI_COMPLETION_LINE),
        &[
            ("openai_origin", &upstream.origin),
            ("openai_api_flavor", "azure"),
            ("openai_model", "chat-deployment"),
            ("openai_api_key", "azure-key"),
        ],
    )
    .await
    .unwrap();
    let reply = post_json(
        &gateway.url("/v1/chat/completions"),
        &[DEV_KEY],
        &question(false),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Azure says hello."
    );
    let sent = &upstream.recorded()[0];
    assert_eq!(
        sent.path_and_query,
        "/openai/deployments/chat-deployment/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.headers["api-key"], "azure-key");
    assert!(sent.headers.get("authorization").is_none());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outbound_request_to_a_host_not_allowed_is_refused_by_the_host() {
    let upstream = Upstream::openai("never sent").await;
    // The upstream is configured, but `chat` only allows the public OpenAI origin.
    let manifest = with_chat_outbound_hosts(
        &manifest_with_completion_line(OPENAI_COMPLETION_LINE),
        r#"allowed_outbound_hosts = ["https://api.openai.com"]"#,
    );
    let gateway = Gateway::start(&manifest, &[("openai_origin", &upstream.origin)])
        .await
        .unwrap();
    let reply = ask_without_reaching(&gateway, &upstream).await;
    assert_eq!(reply.status, 502, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "server_error");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_that_does_not_inherit_configuration_cannot_reach_variables_or_network() {
    let upstream = Upstream::openai("never sent").await;
    let manifest = manifest_with_completion_line(
        r#""chatgate:completion/completion" = { component = "completion-openai" }"#,
    );
    let gateway = Gateway::start(
        &manifest,
        &[
            ("openai_origin", &upstream.origin),
            ("openai_api_key", "sk-secret-value"),
        ],
    )
    .await
    .unwrap();
    // As with Spin's deny adapter, its variable reads come back undefined and its
    // outbound request fails, so the provider reports its upstream unavailable.
    let reply = ask_without_reaching(&gateway, &upstream).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "server_error");
    assert!(!reply.text().contains("sk-secret-value"));
    gateway.stop().await;
}

/// `manifest` with the `allowed_outbound_hosts` line of `[component.chat]` replaced.
fn with_chat_outbound_hosts(manifest: &str, line: &str) -> String {
    let mut section = "";
    let mut replaced = 0;
    let lines: Vec<&str> = manifest
        .lines()
        .map(|current| {
            if current.starts_with('[') {
                section = current;
            }
            if section == "[component.chat]" && current.starts_with("allowed_outbound_hosts") {
                replaced += 1;
                line
            } else {
                current
            }
        })
        .collect();
    assert_eq!(replaced, 1, "chat declares its outbound hosts once");
    lines.join("\n")
}

/// Asks the usual question, asserting that no request reached `upstream`.
async fn ask_without_reaching(gateway: &Gateway, upstream: &Upstream) -> Reply {
    let reply = post_json(
        &gateway.url("/v1/chat/completions"),
        &[DEV_KEY],
        &question(false),
    )
    .await;
    assert!(
        upstream.recorded().is_empty(),
        "no request left the gateway"
    );
    reply
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_deltas_reach_the_client_while_the_upstream_is_still_answering() {
    let gate = std::sync::Arc::new(tokio::sync::Notify::new());
    let upstream = Upstream::openai_held("first then the rest", gate.clone()).await;
    let gateway = Gateway::start(
        &manifest_with_completion_line(OPENAI_COMPLETION_LINE),
        &[("openai_origin", &upstream.origin)],
    )
    .await
    .unwrap();
    let mut stream = chatgate_tests::http_client::open(
        "POST",
        &gateway.url("/v1/chat/completions"),
        &[DEV_KEY, ("content-type", "application/json")],
        question(true).to_string(),
    )
    .await;
    assert_eq!(stream.status, 200);
    // The upstream has sent only its first word: it must already be on the wire to us.
    let early = stream
        .read_until(|t| t.contains(r#""content":"first""#))
        .await;
    assert!(!early.contains("[DONE]"));
    gate.notify_one();
    let all = stream.read_until(|t| t.contains("data: [DONE]")).await;
    assert!(all.contains(r#""content":" rest""#), "{all}");
    gateway.stop().await;
}
