//! Swapping retrieval to Azure AI Search by one line of `spin.toml`: the real gateway
//! with `retrieval-azure-search` as the retriever, against `chatgate_tests::search`, a
//! local double of the Azure AI Search REST API. Every test asserts what the client got
//! and what reached the search service.

use chatgate_tests::Gateway;
use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::search::{self, Document, SearchIndex};
use chatgate_tests::upstream::{Answer, Upstream};
use chatgate_tests::{
    AZURE_SEARCH_RETRIEVER_LINE, SHIPPED_RETRIEVER_LINE, manifest_with_line_replaced,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const SEARCH_KEY: &str = "azs-admin-key-4f1e9c";
const INDEX: &str = "marine-handbook";

/// The shipped manifest with the retriever line swapped to Azure AI Search.
fn manifest() -> String {
    manifest_with_line_replaced(SHIPPED_RETRIEVER_LINE, AZURE_SEARCH_RETRIEVER_LINE)
}

fn marine_index() -> SearchIndex {
    SearchIndex {
        name: INDEX,
        api_key: SEARCH_KEY,
        documents: vec![
            Document {
                id: "narwhal-1",
                title: "Narwhal tusks",
                content: "A narwhal tusk is a sensory organ: narwhals use their tusks to sense salinity and temperature.",
                filepath: "marine/narwhal-tusks.md",
            },
            Document {
                id: "narwhal-2",
                title: "Narwhal migration",
                content: "Narwhals migrate along the Greenland ice edge and rarely show their tusks in open water.",
                filepath: "marine/narwhal-migration.md",
            },
            Document {
                id: "obrien-1",
                title: "O'Brien",
                content: "Captain O'Brien logged narwhals near Baffin Island.",
                filepath: "logs/obrien.md",
            },
            Document {
                id: "krill-1",
                title: "Krill swarms",
                content: "Antarctic krill form swarms of ten thousand animals per cubic metre.",
                filepath: "marine/krill.md",
            },
        ],
    }
}

async fn start_gateway(service: &Upstream, extra: &[(&str, &str)]) -> Gateway {
    let mut variables = vec![
        ("azure_search_origin", service.origin.as_str()),
        ("azure_search_index", INDEX),
        ("azure_search_api_key", SEARCH_KEY),
    ];
    variables.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
    variables.extend_from_slice(extra);
    Gateway::start(&manifest(), &variables).await.unwrap()
}

async fn ask(gateway: &Gateway, body: Value) -> Reply {
    post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], &body).await
}

fn question(text: &str) -> Value {
    json!({"messages": [{"role": "user", "content": text}]})
}

fn citations(reply: &Reply) -> Vec<(String, String)> {
    let body = reply.json();
    body["choices"][0]["message"]["context"]["citations"]
        .as_array()
        .unwrap_or_else(|| panic!("no citations in {body}"))
        .iter()
        .map(|c| {
            (
                c["title"].as_str().unwrap().to_string(),
                c["filepath"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_swapped_line_grounds_answers_on_the_azure_search_index() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(&service, &[]).await;

    let reply = ask(&gateway, question("Why do narwhals have tusks?")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cited = citations(&reply);
    assert!(
        cited.contains(&("Narwhal tusks".into(), "marine/narwhal-tusks.md".into())),
        "{cited:?}"
    );
    assert!(
        cited.iter().all(|(_, path)| path != "marine/krill.md"),
        "{cited:?}"
    );
    // Nothing from the embedded corpus of `retrieval`.
    assert!(
        cited.iter().all(|(_, path)| !path.starts_with("data/")),
        "{cited:?}"
    );
    let answer = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(answer.to_lowercase().contains("narwhal"), "{answer}");

    let received = service.recorded();
    assert_eq!(received.len(), 1);
    let sent = &received[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(
        sent.path_and_query,
        format!("/indexes/{INDEX}/docs/search?api-version=2024-07-01")
    );
    assert_eq!(sent.headers["api-key"], SEARCH_KEY);
    assert_eq!(sent.headers["content-type"], "application/json");
    assert_eq!(
        sent.body,
        json!({"search": "Why do narwhals have tusks?", "top": 4, "select": "id,title,content,filepath"})
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn semantic_ranking_and_field_names_come_from_variables() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(
        &service,
        &[
            ("azure_search_semantic_configuration", "marine-semantic"),
            ("azure_search_api_version", "2025-05-01-preview"),
            ("chat_top_k", "2"),
        ],
    )
    .await;
    let reply = ask(&gateway, question("narwhal tusks")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = &service.recorded()[0];
    assert!(
        sent.path_and_query
            .ends_with("?api-version=2025-05-01-preview"),
        "{}",
        sent.path_and_query
    );
    assert_eq!(sent.body["queryType"], "semantic");
    assert_eq!(sent.body["semanticConfiguration"], "marine-semantic");
    assert_eq!(sent.body["top"], 2);
    assert_eq!(citations(&reply).len(), 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_title_filter_arrives_as_an_escaped_odata_literal() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(&service, &[]).await;
    let mut body = question("Who logged narwhals?");
    body["chatgate"] = json!({"filters": [{"field": "title", "value": "O'Brien"}]});

    let reply = ask(&gateway, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        citations(&reply),
        vec![("O'Brien".to_string(), "logs/obrien.md".to_string())]
    );
    assert_eq!(service.recorded()[0].body["filter"], "title eq 'O''Brien'");

    // A value written to break out of the literal is compared as one string.
    let mut body = question("Who logged narwhals?");
    body["chatgate"] = json!({"filters": [{"field": "title", "value": "x' or title ne 'x"}]});
    let reply = ask(&gateway, body).await;
    assert_eq!(
        service.recorded()[1].body["filter"],
        "title eq 'x'' or title ne ''x'"
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply.json()["choices"][0]["message"]["context"]["citations"]
            .as_array()
            .is_none_or(Vec::is_empty),
        "{}",
        reply.text()
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_source_filter_is_a_prefix_range() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(&service, &[]).await;
    let mut body = question("Who logged narwhals near Baffin Island?");
    body["chatgate"] = json!({"filters": [{"field": "source", "value": "marine/"}]});

    let reply = ask(&gateway, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        service.recorded()[0].body["filter"],
        "filepath ge 'marine/' and filepath lt 'marine0'"
    );
    let cited = citations(&reply);
    assert!(!cited.is_empty());
    assert!(
        cited.iter().all(|(_, path)| path.starts_with("marine/")),
        "{cited:?}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_filter_field_is_refused_before_reaching_the_service() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(&service, &[]).await;
    let mut body = question("narwhals");
    body["chatgate"] = json!({"filters": [{"field": "author", "value": "x"}]});
    let reply = ask(&gateway, body).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "invalid_query");
    assert!(reply.text().contains("author"), "{}", reply.text());
    assert_eq!(service.hits(), 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_give_retrieval_unavailable_without_the_key() {
    // A service that rejects the key and quotes it back, as some proxies do.
    let service = Upstream::start(|request| {
        let key = request
            .headers
            .get("api-key")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        search::error(401, &format!("Access denied for key {key}"))
    })
    .await;
    let gateway = start_gateway(&service, &[]).await;

    let reply = ask(&gateway, question("Why do narwhals have tusks?")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    assert!(!reply.text().contains(SEARCH_KEY), "{}", reply.text());
    assert_eq!(service.hits(), 1, "credentials are not retried");
    let log = serde_json::to_string(&gateway.guest_log()).unwrap();
    assert!(!log.contains(SEARCH_KEY), "{log}");
    gateway.stop().await;

    // The double's own check: a wrong key is refused (403) the same way.
    let service = search::start(marine_index()).await;
    let gateway = Gateway::start(
        &manifest(),
        &[
            ("azure_search_origin", service.origin.as_str()),
            ("azure_search_index", INDEX),
            ("azure_search_api_key", "wrong-key"),
        ],
    )
    .await
    .unwrap();
    let reply = ask(&gateway, question("narwhals")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_is_retried_once_after_retry_after() {
    let index = marine_index();
    let calls = AtomicUsize::new(0);
    let service = Upstream::start(move |request| {
        if calls.fetch_add(1, Ordering::SeqCst) == 0 {
            search::error(429, "Too many requests").with_header("retry-after", "0")
        } else {
            search::answer(request, &index)
        }
    })
    .await;
    let gateway = start_gateway(&service, &[]).await;
    let reply = ask(&gateway, question("Why do narwhals have tusks?")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(service.hits(), 2);
    gateway.stop().await;

    // Throttled twice: the call gives up after its one retry.
    let service =
        Upstream::start(|_| search::error(503, "busy").with_header("retry-after", "0")).await;
    let gateway = start_gateway(&service, &[]).await;
    let reply = ask(&gateway, question("narwhals")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    assert_eq!(service.hits(), 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_index_is_retrieval_unavailable() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(&service, &[("azure_search_index", "no-such-index")]).await;
    let reply = ask(&gateway, question("narwhals")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    assert_eq!(
        service.recorded()[0].path_and_query,
        "/indexes/no-such-index/docs/search?api-version=2024-07-01"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_service_fails_the_request_at_the_configured_timeout() {
    let service = Upstream::start(|_| Answer {
        stall: true,
        ..Answer::new(200, "application/json", "")
    })
    .await;
    let gateway = start_gateway(&service, &[("azure_search_timeout_ms", "300")]).await;
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        ask(&gateway, question("narwhals")),
    )
    .await
    .expect("the gateway answers instead of hanging");
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    gateway.stop().await;
}
