//! The chat API as OpenAI and Azure OpenAI clients see it, through the shipped
//! `spin.toml`: Azure's deployment paths, grounding options, the prompt token
//! budget and per-identity quotas.

use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::{Gateway, project_manifest};
use serde_json::{Value, json};

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const QUESTION: &str = "What does the web application firewall block?";

async fn gateway(variables: &[(&str, &str)]) -> Gateway {
    Gateway::start(&project_manifest(), variables)
        .await
        .unwrap()
}

async fn chat(gateway: &Gateway, body: &Value) -> Reply {
    post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], body).await
}

fn question(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

fn header_number(reply: &Reply, name: &str) -> u64 {
    reply
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header"))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_deployment_paths_answer_like_the_openai_path() {
    let gateway = gateway(&[]).await;
    let path = "/openai/deployments/chatgate-rag/chat/completions?api-version=2024-10-21";
    let reply = post_json(&gateway.url(path), &[DEV_KEY], &question(QUESTION)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert!(
        body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("[doc1]")
    );
    assert!(
        !body["choices"][0]["message"]["context"]["citations"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    let without_version = post_json(
        &gateway.url("/openai/deployments/chatgate-rag/chat/completions"),
        &[DEV_KEY],
        &question(QUESTION),
    )
    .await;
    assert_eq!(without_version.status, 400);
    assert_eq!(without_version.json()["error"]["param"], "api-version");

    let unknown = post_json(
        &gateway.url("/openai/deployments/gpt-5/chat/completions?api-version=2024-10-21"),
        &[DEV_KEY],
        &question(QUESTION),
    )
    .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], "DeploymentNotFound");
}

#[tokio::test(flavor = "multi_thread")]
async fn retrieval_can_be_turned_off_per_request() {
    let gateway = gateway(&[]).await;
    let mut body = question(QUESTION);
    body["chatgate"] = json!({"retrieval": false});
    let reply = chat(&gateway, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let body = reply.json();
    assert_eq!(
        body["choices"][0]["message"]["context"]["citations"],
        json!([])
    );
    // Without sources the extractive model has nothing to quote.
    assert!(
        !body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .contains("[doc")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn retrieval_options_narrow_the_sources() {
    let gateway = gateway(&[]).await;
    let mut body = question(QUESTION);
    body["chatgate"] = json!({"top_k": 1});
    let reply = chat(&gateway, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let citations = reply.json()["choices"][0]["message"]["context"]["citations"].clone();
    assert_eq!(citations.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_relevant_is_said_plainly_streamed_or_not() {
    let gateway = gateway(&[]).await;
    let nonsense = "zxqv wplk fjrt";
    let reply = chat(&gateway, &question(nonsense)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("x-chatgate-grounding"),
        Some("nothing-relevant")
    );
    let body = reply.json();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "I could not find anything relevant to your question in the documents."
    );
    assert_eq!(
        body["choices"][0]["message"]["context"]["citations"],
        json!([])
    );
    assert_eq!(body["usage"]["total_tokens"], 0);

    let mut streamed = question(nonsense);
    streamed["stream"] = json!(true);
    streamed["stream_options"] = json!({"include_usage": true});
    let reply = chat(&gateway, &streamed).await;
    assert_eq!(reply.status, 200);
    let events = reply.sse_data();
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
    let text: String = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|chunk| {
            chunk["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        text,
        "I could not find anything relevant to your question in the documents."
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_oldest_history_is_dropped_to_fit_the_prompt_budget() {
    let long_turn = "The gateway log shows many earlier requests. ".repeat(40);
    let conversation = json!({"messages": [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": long_turn},
        {"role": "assistant", "content": long_turn},
        {"role": "user", "content": QUESTION},
    ]});

    let roomy = gateway(&[]).await;
    let reply = chat(&roomy, &conversation).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(header_number(&reply, "x-chatgate-dropped-messages"), 0);
    let full_prompt = header_number(&reply, "x-chatgate-prompt-tokens");
    // The gateway counts the prompt as the (o200k) model bills it.
    assert_eq!(reply.json()["usage"]["prompt_tokens"], full_prompt);
    let sources = reply.json()["choices"][0]["message"]["context"]["citations"]
        .as_array()
        .unwrap()
        .len();

    // Room for everything but one of the two long turns (each over 300 tokens).
    let budget = (full_prompt - 300).to_string();
    let tight = gateway(&[("chat_max_prompt_tokens", &budget)]).await;
    let reply = chat(&tight, &conversation).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(header_number(&reply, "x-chatgate-dropped-messages"), 1);
    assert_eq!(header_number(&reply, "x-chatgate-dropped-passages"), 0);
    assert!(header_number(&reply, "x-chatgate-prompt-tokens") <= full_prompt - 300);
    let citations = reply.json()["choices"][0]["message"]["context"]["citations"].clone();
    assert_eq!(citations.as_array().unwrap().len(), sources);

    // The system prompt and the question alone are over a tiny budget.
    let tiny = gateway(&[("chat_max_prompt_tokens", "20")]).await;
    let reply = chat(&tiny, &conversation).await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["code"], "context_length_exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_per_minute_are_counted_per_identity_across_concurrent_requests() {
    let gateway = gateway(&[
        ("quota_requests_per_minute", "5"),
        ("auth_api_keys", "ann=key-ann,bob=key-bob"),
    ])
    .await;
    let url = gateway.url("/v1/chat/completions");
    let body = question(QUESTION);
    let minute = || chatgate_tests::jwt::now() / 60;
    let started_in = minute();
    let requests: Vec<_> = (0..12)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            tokio::spawn(async move {
                post_json(&url, &[("authorization", "Bearer key-ann")], &body).await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut limited = None;
    for request in requests {
        let reply = request.await.unwrap();
        statuses.push(reply.status);
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    if minute() == started_in {
        assert_eq!(admitted, 5, "{statuses:?}");
    } else {
        // The burst straddled two windows, each with its own 5.
        assert!((5..=10).contains(&admitted), "{statuses:?}");
    }
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    let limited = limited.expect("some requests are refused");
    let retry_after: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    let error = limited.json()["error"].clone();
    assert_eq!(error["code"], "rate_limit_exceeded");
    assert_eq!(error["type"], "requests");

    // Bob's minute is his own.
    let reply = post_json(&url, &[("authorization", "Bearer key-bob")], &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-ratelimit-limit-requests"), Some("5"));
    assert_eq!(reply.header("x-ratelimit-remaining-requests"), Some("4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_per_minute_stop_an_identity_once_spent() {
    let gateway = gateway(&[("quota_tokens_per_minute", "50")]).await;
    let first = chat(&gateway, &question(QUESTION)).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert!(first.json()["usage"]["total_tokens"].as_u64().unwrap() > 50);
    let second = chat(&gateway, &question(QUESTION)).await;
    assert_eq!(second.status, 429, "{}", second.text());
    assert_eq!(second.json()["error"]["type"], "tokens");
    assert!(second.header("retry-after").is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn parameters_that_cannot_be_honoured_are_refused() {
    let gateway = gateway(&[]).await;
    for (field, value) in [
        (
            "tools",
            json!([{"type": "function", "function": {"name": "lookup"}}]),
        ),
        ("logprobs", json!(true)),
        ("n", json!(3)),
        ("response_format", json!({"type": "json_object"})),
    ] {
        let mut body = question(QUESTION);
        body[field] = value;
        let reply = chat(&gateway, &body).await;
        assert_eq!(reply.status, 400, "{field}: {}", reply.text());
        let error = reply.json()["error"].clone();
        assert_eq!(error["type"], "invalid_request_error", "{field}");
        // Refused by chat or, for response_format, by the offline model: named either way.
        assert_eq!(error["param"], field, "{error}");
        assert!(error["message"].as_str().unwrap().len() > 10, "{field}");
    }
    // Sampling settings the offline model has no use for are still accepted.
    let mut body = question(QUESTION);
    body["top_p"] = json!(0.5);
    body["seed"] = json!(7);
    body["user"] = json!("end-user-1");
    assert_eq!(chat(&gateway, &body).await.status, 200);
}
