//! Swapping retrieval to Azure AI Search by one line of `spin.toml`: the real gateway
//! with `retrieval-azure-search` as the retriever, against `chatgate_tests::search`, a
//! local double of the Azure AI Search REST API (and `chatgate_tests::upstream` as a
//! managed-identity token endpoint). Every test asserts what the client got and what
//! reached the search service. The plain `#[test]`s at the end check the double itself.

use chatgate_tests::Gateway;
use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::search::{self, Document, SearchIndex, VectorField};
use chatgate_tests::upstream::{Answer, Recorded, Upstream};
use chatgate_tests::{
    AZURE_SEARCH_RETRIEVER_LINE, SHIPPED_RETRIEVER_LINE, manifest_with_line_replaced,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicUsize, Ordering};

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const SEARCH_KEY: &str = "azs-admin-key-4f1e9c";
const INDEX: &str = "marine-handbook";
const CLIENT_ID: &str = "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d";

/// The swap line without the key-value store, where managed-identity tokens are cached.
const RETRIEVER_LINE_WITHOUT_STORE: &str = r#""chatgate:retriever/retriever" = { component = "retrieval-azure-search", inherit_configuration = ["variables", "allowed_outbound_hosts"] }"#;

/// The shipped manifest with the retriever line swapped to Azure AI Search.
fn manifest() -> String {
    manifest_with(AZURE_SEARCH_RETRIEVER_LINE)
}

fn manifest_with(retriever_line: &str) -> String {
    manifest_with_line_replaced(SHIPPED_RETRIEVER_LINE, retriever_line)
}

fn marine_index() -> SearchIndex {
    SearchIndex {
        name: INDEX,
        api_key: SEARCH_KEY,
        bearer_tokens: Vec::new(),
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
        vector_fields: vec![VectorField {
            name: "contentVector",
            source: "content",
        }],
    }
}

async fn start_gateway(service: &Upstream, extra: &[(&str, &str)]) -> Gateway {
    start_gateway_with(&manifest(), service, extra).await
}

async fn start_gateway_with(manifest: &str, service: &Upstream, extra: &[(&str, &str)]) -> Gateway {
    let mut variables = vec![
        ("azure_search_origin", service.origin.as_str()),
        ("azure_search_index", INDEX),
        ("azure_search_api_key", SEARCH_KEY),
    ];
    variables.retain(|(name, _)| !extra.iter().any(|(n, _)| n == name));
    variables.extend_from_slice(extra);
    Gateway::start(manifest, &variables).await.unwrap()
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

/// The cited paths; none when the answer cites nothing.
fn cited_paths(reply: &Reply) -> Vec<String> {
    reply.json()["choices"][0]["message"]["context"]["citations"]
        .as_array()
        .map(|cited| {
            cited
                .iter()
                .filter_map(|c| c["filepath"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A managed-identity endpoint shaped like Azure IMDS that hands out `tokens` in
/// order (the last one again once they run out), each valid for an hour.
async fn token_endpoint(tokens: &'static [&'static str]) -> Upstream {
    let expires_on = unix_now() + 3600;
    let handed_out = AtomicUsize::new(0);
    Upstream::start(move |_| {
        let n = handed_out.fetch_add(1, Ordering::SeqCst);
        Answer::json(
            200,
            &json!({
                "access_token": tokens[n.min(tokens.len() - 1)],
                "client_id": CLIENT_ID,
                "expires_in": "3599",
                "expires_on": expires_on.to_string(),
                "resource": "https://search.azure.com",
                "token_type": "Bearer",
            }),
        )
    })
    .await
}

/// A gateway whose retriever authenticates with the managed identity whose token
/// endpoint is at `token_origin`; an
/// API key is configured too, to show that it is not what is sent.
async fn identity_gateway(
    retriever_line: &str,
    service: &Upstream,
    token_origin: &str,
    extra: &[(&str, &str)],
) -> Gateway {
    let mut variables = vec![
        ("azure_search_auth", "managed-identity"),
        ("azure_search_token_origin", token_origin),
    ];
    variables.extend_from_slice(extra);
    start_gateway_with(&manifest_with(retriever_line), service, &variables).await
}

fn authorization(request: &Recorded) -> Option<&str> {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
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
    assert_eq!(reply.json()["error"]["code"], "invalid_filter");
    assert_eq!(reply.json()["error"]["param"], "chatgate.filters");
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

    // Unavailable twice: the call gives up after its one retry.
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
async fn throttling_longer_than_a_retry_can_wait_is_passed_on_as_429_with_retry_after() {
    // More than the two seconds a call waits before its one retry: not retried.
    let service = Upstream::start(|_| {
        search::error(429, "Too many requests").with_header("retry-after", "7")
    })
    .await;
    let gateway = start_gateway(&service, &[]).await;
    let reply = ask(&gateway, question("narwhals")).await;
    assert_eq!(reply.status, 429, "{}", reply.text());
    assert_eq!(reply.header("retry-after"), Some("7"));
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
    assert_eq!(service.hits(), 1);
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
    assert_eq!(reply.status, 504, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["code"], "retrieval_timeout", "{body}");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vector_fields_make_a_hybrid_query_that_finds_what_the_keywords_miss() {
    let service = search::start(marine_index()).await;
    // Only inflected forms ("animals", "form", "swarms") are in the krill passage, so
    // the keyword side cannot find it; the index's vectorizer can.
    let asked = question("Which animal forms a swarm?");

    let keyword_only = start_gateway(&service, &[]).await;
    let reply = ask(&keyword_only, asked.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        !cited_paths(&reply).contains(&"marine/krill.md".to_string()),
        "{}",
        reply.text()
    );
    assert!(service.recorded()[0].body.get("vectorQueries").is_none());
    keyword_only.stop().await;

    let hybrid = start_gateway(&service, &[("azure_search_vector_fields", "contentVector")]).await;
    let reply = ask(&hybrid, asked).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        citations(&reply).contains(&("Krill swarms".into(), "marine/krill.md".into())),
        "{}",
        reply.text()
    );
    let sent = &service.recorded()[1];
    assert_eq!(sent.headers["api-key"], SEARCH_KEY);
    assert_eq!(
        sent.body,
        json!({
            "search": "Which animal forms a swarm?",
            "top": 4,
            "select": "id,title,content,filepath",
            "vectorQueries": [{
                "kind": "text",
                "text": "Which animal forms a swarm?",
                "fields": "contentVector",
                "k": 4,
            }],
        })
    );
    hybrid.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_queries_keep_semantic_ranking_and_filter_before_taking_neighbours() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(
        &service,
        &[
            ("azure_search_vector_fields", "contentVector"),
            ("azure_search_vector_k", "10"),
            ("azure_search_semantic_configuration", "marine-semantic"),
            ("chat_top_k", "2"),
        ],
    )
    .await;
    let mut body = question("Who logged narwhals?");
    body["chatgate"] = json!({"filters": [{"field": "source", "value": "marine/"}]});

    let reply = ask(&gateway, body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let cited = cited_paths(&reply);
    assert!(!cited.is_empty(), "{}", reply.text());
    assert!(
        cited.iter().all(|path| path.starts_with("marine/")),
        "{cited:?}"
    );
    let sent = &service.recorded()[0];
    assert_eq!(sent.body["top"], 2);
    assert_eq!(sent.body["queryType"], "semantic");
    assert_eq!(sent.body["semanticConfiguration"], "marine-semantic");
    assert_eq!(
        sent.body["filter"],
        "filepath ge 'marine/' and filepath lt 'marine0'"
    );
    assert_eq!(sent.body["vectorFilterMode"], "preFilter");
    assert_eq!(
        sent.body["vectorQueries"],
        json!([{"kind": "text", "text": "Who logged narwhals?", "fields": "contentVector", "k": 10}])
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_vector_field_the_index_lacks_is_a_misconfiguration_not_the_callers_fault() {
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(&service, &[("azure_search_vector_fields", "titleVector")]).await;
    let reply = ask(&gateway, question("narwhals")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    assert_eq!(
        service.hits(),
        1,
        "the service, not the component, knows its fields"
    );
    gateway.stop().await;

    // An api-version without text vector queries is refused before sending anything.
    let service = search::start(marine_index()).await;
    let gateway = start_gateway(
        &service,
        &[
            ("azure_search_vector_fields", "contentVector"),
            ("azure_search_api_version", "2023-11-01"),
        ],
    )
    .await;
    let reply = ask(&gateway, question("narwhals")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(service.hits(), 0);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_managed_identity_token_is_fetched_once_and_sent_instead_of_the_key() {
    let imds = token_endpoint(&["search-token-1"]).await;
    let service = search::start(SearchIndex {
        bearer_tokens: vec!["search-token-1".into()],
        ..marine_index()
    })
    .await;
    let gateway = identity_gateway(
        AZURE_SEARCH_RETRIEVER_LINE,
        &service,
        &imds.origin,
        &[("azure_search_client_id", CLIENT_ID)],
    )
    .await;

    for _ in 0..2 {
        let reply = ask(&gateway, question("Why do narwhals have tusks?")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert!(
            citations(&reply).contains(&("Narwhal tusks".into(), "marine/narwhal-tusks.md".into())),
            "{}",
            reply.text()
        );
    }

    let token_requests = imds.recorded();
    assert_eq!(
        token_requests.len(),
        1,
        "the second call used the cached token"
    );
    assert_eq!(token_requests[0].method, "GET");
    assert_eq!(
        token_requests[0].path_and_query,
        format!(
            "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://search.azure.com&client_id={CLIENT_ID}"
        )
    );
    assert_eq!(token_requests[0].headers["metadata"], "true");
    let searches = service.recorded();
    assert_eq!(searches.len(), 2);
    for search in &searches {
        assert_eq!(authorization(search), Some("Bearer search-token-1"));
        assert!(
            search.headers.get("api-key").is_none(),
            "{:?}",
            search.headers
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_key_value_store_every_call_fetches_its_own_token() {
    let imds = token_endpoint(&["search-token-1"]).await;
    let service = search::start(SearchIndex {
        bearer_tokens: vec!["search-token-1".into()],
        ..marine_index()
    })
    .await;
    let gateway = identity_gateway(RETRIEVER_LINE_WITHOUT_STORE, &service, &imds.origin, &[]).await;
    for _ in 0..2 {
        let reply = ask(&gateway, question("Why do narwhals have tusks?")).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(imds.hits(), 2);
    assert!(
        imds.recorded()[0]
            .path_and_query
            .ends_with("&resource=https://search.azure.com"),
        "the system-assigned identity names no client id"
    );
    assert_eq!(service.hits(), 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_the_service_refuses_is_forgotten_and_the_next_call_fetches_a_new_one() {
    let imds = token_endpoint(&["revoked-token", "fresh-token"]).await;
    let service = search::start(SearchIndex {
        bearer_tokens: vec!["fresh-token".into()],
        ..marine_index()
    })
    .await;
    let gateway = identity_gateway(AZURE_SEARCH_RETRIEVER_LINE, &service, &imds.origin, &[]).await;

    let reply = ask(&gateway, question("Why do narwhals have tusks?")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    assert!(!reply.text().contains("revoked-token"), "{}", reply.text());

    let reply = ask(&gateway, question("Why do narwhals have tusks?")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(imds.hits(), 2);
    let sent: Vec<_> = service
        .recorded()
        .iter()
        .map(|r| authorization(r).map(str::to_string))
        .collect();
    assert_eq!(
        sent,
        [
            Some("Bearer revoked-token".to_string()),
            Some("Bearer fresh-token".to_string())
        ]
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_token_endpoint_is_retrieval_unavailable_without_calling_the_service() {
    let service = search::start(marine_index()).await;

    let failing = Upstream::start(|_| {
        Answer::json(
            500,
            &json!({"error": "unknown_error", "error_description": "IMDS is restarting"}),
        )
    })
    .await;
    let gateway =
        identity_gateway(AZURE_SEARCH_RETRIEVER_LINE, &service, &failing.origin, &[]).await;
    let reply = ask(&gateway, question("narwhals")).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    assert_eq!(
        failing.hits(),
        1,
        "a token request is not retried within a call"
    );
    gateway.stop().await;

    // Nothing listens at the token origin any more.
    let gone = Upstream::start(|_| Answer::new(200, "application/json", "{}")).await;
    let gone_origin = gone.origin.clone();
    drop(gone);
    let gateway = identity_gateway(
        AZURE_SEARCH_RETRIEVER_LINE,
        &service,
        &gone_origin,
        &[("azure_search_timeout_ms", "2000")],
    )
    .await;
    let reply = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        ask(&gateway, question("narwhals")),
    )
    .await
    .expect("the gateway answers instead of hanging");
    // Refused at once, not timed out: the endpoint is unreachable.
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert_eq!(reply.json()["error"]["code"], "retrieval_unavailable");
    gateway.stop().await;

    assert_eq!(service.hits(), 0);
}

// The double itself: it must refuse what Azure refuses, or the tests above prove
// nothing about the real service.

fn search_request(body: Value, headers: &[(&'static str, &str)]) -> Recorded {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    Recorded {
        method: "POST".into(),
        path_and_query: format!("/indexes/{INDEX}/docs/search?api-version=2024-07-01"),
        headers: map,
        body,
    }
}

fn answered(body: Value) -> (u16, Value) {
    let answer = search::answer(
        &search_request(body, &[("api-key", SEARCH_KEY)]),
        &marine_index(),
    );
    let json = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    (answer.status, json)
}

#[test]
fn the_double_refuses_malformed_vector_queries_as_azure_does() {
    let hybrid = |vector_queries: Value| json!({"search": "krill", "top": 4, "vectorQueries": vector_queries});
    let (status, _) = answered(hybrid(
        json!([{"kind": "text", "text": "krill", "fields": "contentVector", "k": 4}]),
    ));
    assert_eq!(status, 200);
    for (vector_queries, reason) in [
        (json!({"kind": "text"}), "must be an array"),
        (json!(["krill"]), "must be an object"),
        (
            json!([{"text": "krill", "fields": "contentVector"}]),
            "'kind' is required",
        ),
        (
            json!([{"kind": "words", "text": "krill", "fields": "contentVector"}]),
            "Unknown vector query kind 'words'",
        ),
        (
            json!([{"kind": "vector", "vector": [0.1, 0.2], "fields": "contentVector"}]),
            "kind 'text' only",
        ),
        (
            json!([{"kind": "text", "fields": "contentVector", "k": 4}]),
            "'text' parameter is required",
        ),
        (
            json!([{"kind": "text", "text": "krill", "k": 4}]),
            "'fields' parameter",
        ),
        (
            json!([{"kind": "text", "text": "krill", "fields": "titleVector"}]),
            "Unknown field 'titleVector' in vector field list",
        ),
        (
            json!([{"kind": "text", "text": "krill", "fields": "content"}]),
            "'content' in the vector field list is not a vector field",
        ),
        (
            json!([{"kind": "text", "text": "krill", "fields": "contentVector", "k": 0}]),
            "'k' must be a positive integer",
        ),
        (
            json!([{"kind": "text", "text": "krill", "fields": "contentVector", "top": 4}]),
            "'top'",
        ),
    ] {
        let (status, error) = answered(hybrid(vector_queries.clone()));
        assert_eq!(status, 400, "{vector_queries}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{vector_queries}: {message}");
    }
    let (status, error) = answered(json!({"search": "krill", "vectorFilterMode": "sometimes"}));
    assert_eq!(status, 400, "{error}");
}

#[test]
fn the_double_refuses_parameters_azure_does_not_define() {
    // `vectors` was the 2023-07-01-Preview shape, gone from 2024-07-01.
    let (status, error) = answered(
        json!({"search": "krill", "vectors": [{"value": [0.1], "fields": "contentVector", "k": 4}]}),
    );
    assert_eq!(status, 400);
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("'vectors'"),
        "{error}"
    );
}

#[test]
fn the_double_takes_a_bearer_token_only_when_no_api_key_header_is_sent() {
    let index = SearchIndex {
        bearer_tokens: vec!["search-token-1".into()],
        ..marine_index()
    };
    let status = |headers: &[(&'static str, &str)]| {
        search::answer(&search_request(json!({"search": "krill"}), headers), &index).status
    };
    assert_eq!(status(&[("authorization", "Bearer search-token-1")]), 200);
    assert_eq!(status(&[("authorization", "Bearer other-token")]), 403);
    assert_eq!(status(&[("authorization", "search-token-1")]), 403);
    assert_eq!(
        status(&[
            ("api-key", "wrong"),
            ("authorization", "Bearer search-token-1")
        ]),
        403
    );
    assert_eq!(status(&[]), 403);
}

#[test]
fn the_double_fuses_keyword_and_vector_rankings_by_reciprocal_rank() {
    let (status, answer) = answered(json!({
        "search": "narwhal tusks",
        "vectorQueries": [{"kind": "text", "text": "narwhal tusks", "fields": "contentVector", "k": 10}],
    }));
    assert_eq!(status, 200);
    let ranked: Vec<(&str, f64)> = answer["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap(),
                r["@search.score"].as_f64().unwrap(),
            )
        })
        .collect();
    let rrf = |ranks: &[f64]| ranks.iter().map(|r| 1.0 / (60.0 + r)).sum::<f64>();
    // Keyword: narwhal-1, narwhal-2 ("narwhals" is another word to it). Vector
    // (plurals folded): narwhal-1, narwhal-2, then obrien-1, which only it finds.
    let expected = [
        ("narwhal-1", rrf(&[1.0, 1.0])),
        ("narwhal-2", rrf(&[2.0, 2.0])),
        ("obrien-1", rrf(&[3.0])),
    ];
    assert_eq!(ranked.len(), expected.len(), "{ranked:?}");
    for ((id, score), (expected_id, expected_score)) in ranked.iter().zip(expected) {
        assert_eq!(*id, expected_id, "{ranked:?}");
        assert!((score - expected_score).abs() < 1e-12, "{ranked:?}");
    }
}
