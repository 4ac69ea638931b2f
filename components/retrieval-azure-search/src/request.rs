//! The `POST /indexes/{index}/docs/search` request for one `search` call.
//!
//! With vector fields configured the request is a hybrid query: the keyword `search`
//! and one vector query of kind `text` over the same words, which the service embeds
//! with the index's vectorizer (integrated vectorization) and fuses with the keyword
//! ranking by reciprocal rank fusion. Semantic ranking, when configured, reranks the
//! fused results.

use crate::config::Config;
use crate::odata::filter_expression;
use crate::{Filter, RetrievalError};
use serde_json::{Map, Value, json};

/// A search request, ready to send once a credential is added ([`headers`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SearchRequest {
    pub url: String,
    pub body: Value,
}

/// What authorizes one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    ApiKey(&'a str),
    /// An Entra ID access token.
    Bearer(&'a str),
}

impl Credential<'_> {
    /// The secret to redact from anything the service says back.
    pub fn secret(&self) -> &str {
        match self {
            Credential::ApiKey(secret) | Credential::Bearer(secret) => secret,
        }
    }
}

/// The headers of a search request. A token goes in `Authorization` only: the service
/// would take an `api-key` header over it.
pub fn headers(credential: Credential<'_>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", "application/json".to_string()),
    ];
    headers.push(match credential {
        Credential::ApiKey(key) => ("api-key", key.to_string()),
        Credential::Bearer(token) => ("authorization", format!("Bearer {token}")),
    });
    headers
}

/// What a call needs from the service, or that it needs nothing: `top-k` 0 asks for
/// no passages, which takes no request.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    Nothing,
    Send(SearchRequest),
}

pub fn plan(
    config: &Config,
    query: &str,
    top_k: u32,
    filters: &[Filter],
) -> Result<Plan, RetrievalError> {
    let query = query.trim();
    if query.is_empty() {
        return Err(RetrievalError::InvalidQuery("the query is empty".into()));
    }
    chatgate_rag::retriever::check_search(top_k, filters)?;
    // Validated even when nothing is sent, so a bad filter is reported the same way.
    let filter = filter_expression(filters, &config.fields)?;
    if top_k == 0 {
        return Ok(Plan::Nothing);
    }
    let fields = &config.fields;
    let mut select: Vec<&str> = Vec::new();
    let parts = [&fields.id, &fields.title, &fields.content, &fields.source];
    for field in parts.into_iter().chain(&fields.metadata) {
        if !select.contains(&field.as_str()) {
            select.push(field);
        }
    }
    let mut body = Map::new();
    body.insert("search".into(), json!(query));
    body.insert("top".into(), json!(top_k));
    body.insert("select".into(), json!(select.join(",")));
    if let Some(vector) = &config.vector {
        body.insert(
            "vectorQueries".into(),
            json!([{
                "kind": "text",
                "text": query,
                "fields": vector.fields.join(","),
                "k": vector.k.unwrap_or(top_k),
            }]),
        );
        if filter.is_some() {
            // Filter first, then take the k nearest: filtering the k nearest could
            // leave none. It is the default only for indexes created since 2023-10.
            body.insert("vectorFilterMode".into(), json!("preFilter"));
        }
    }
    if let Some(filter) = filter {
        body.insert("filter".into(), json!(filter));
    }
    if let Some(semantic) = &config.semantic_configuration {
        body.insert("queryType".into(), json!("semantic"));
        body.insert("semanticConfiguration".into(), json!(semantic));
    }
    Ok(Plan::Send(SearchRequest {
        url: format!(
            "{}/indexes/{}/docs/search?api-version={}",
            config.origin, config.index, config.api_version
        ),
        body: Value::Object(body),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VariableValue;

    fn config(extra: &[(&str, &str)]) -> Config {
        let base = [
            ("azure_search_origin", "https://contoso.search.windows.net"),
            ("azure_search_index", "handbook"),
            ("azure_search_api_key", "admin-key-123"),
        ];
        Config::from_variables(|name| {
            extra
                .iter()
                .chain(base.iter())
                .find(|(n, _)| *n == name)
                .map(|(_, v)| VariableValue::Value(v.to_string()))
                .unwrap_or(VariableValue::Missing)
        })
        .unwrap()
    }

    fn sent(plan: Result<Plan, RetrievalError>) -> SearchRequest {
        match plan {
            Ok(Plan::Send(request)) => request,
            other => panic!("expected a request, got {other:?}"),
        }
    }

    #[test]
    fn a_plain_search_posts_the_question_top_and_selected_fields() {
        let request = sent(plan(&config(&[]), "  What does the WAF block?  ", 4, &[]));
        assert_eq!(
            request.url,
            "https://contoso.search.windows.net/indexes/handbook/docs/search?api-version=2024-07-01"
        );
        assert_eq!(
            request.body,
            json!({"search": "What does the WAF block?", "top": 4, "select": "id,title,content,filepath"})
        );
    }

    #[test]
    fn filters_and_a_semantic_configuration_shape_the_body() {
        let config = config(&[
            ("azure_search_semantic_configuration", "my-semantic"),
            ("azure_search_api_version", "2025-05-01-preview"),
        ]);
        let filters = [Filter {
            field: "title".into(),
            value: "O'Brien".into(),
        }];
        let request = sent(plan(&config, "who", 10, &filters));
        assert!(
            request.url.ends_with("?api-version=2025-05-01-preview"),
            "{}",
            request.url
        );
        assert_eq!(
            request.body,
            json!({
                "search": "who", "top": 10, "select": "id,title,content,filepath",
                "filter": "title eq 'O''Brien'",
                "queryType": "semantic", "semanticConfiguration": "my-semantic",
            })
        );
    }

    #[test]
    fn fields_mapped_twice_are_selected_once() {
        let config = config(&[
            ("azure_search_id_field", "chunk_id"),
            ("azure_search_title_field", "chunk_id"),
            ("azure_search_source_field", "url"),
        ]);
        let request = sent(plan(&config, "q", 1, &[]));
        assert_eq!(request.body["select"], "chunk_id,content,url");
    }

    #[test]
    fn empty_queries_oversized_top_and_bad_filters_send_nothing() {
        let config = config(&[]);
        assert_eq!(
            plan(&config, " \n", 4, &[]),
            Err(RetrievalError::InvalidQuery("the query is empty".into()))
        );
        assert!(matches!(
            plan(&config, "q", 51, &[]),
            Err(RetrievalError::InvalidQuery(_))
        ));
        let unknown = [Filter {
            field: "author".into(),
            value: "x".into(),
        }];
        assert!(matches!(
            plan(&config, "q", 0, &unknown),
            Err(RetrievalError::InvalidFilter(_))
        ));
        assert_eq!(plan(&config, "q", 0, &[]), Ok(Plan::Nothing));
    }

    #[test]
    fn an_api_key_goes_in_api_key_and_a_token_in_authorization_never_both() {
        assert_eq!(
            headers(Credential::ApiKey("admin-key-123")),
            vec![
                ("content-type", "application/json".to_string()),
                ("accept", "application/json".to_string()),
                ("api-key", "admin-key-123".to_string()),
            ]
        );
        assert_eq!(
            headers(Credential::Bearer("eyJ0.x.y")),
            vec![
                ("content-type", "application/json".to_string()),
                ("accept", "application/json".to_string()),
                ("authorization", "Bearer eyJ0.x.y".to_string()),
            ]
        );
        assert_eq!(Credential::Bearer("eyJ0.x.y").secret(), "eyJ0.x.y");
    }

    #[test]
    fn vector_fields_add_one_text_vector_query_over_the_same_words() {
        let config = config(&[("azure_search_vector_fields", "contentVector,titleVector")]);
        let request = sent(plan(&config, "  Which animal forms a swarm? ", 4, &[]));
        assert_eq!(
            request.body,
            json!({
                "search": "Which animal forms a swarm?", "top": 4, "select": "id,title,content,filepath",
                "vectorQueries": [{
                    "kind": "text", "text": "Which animal forms a swarm?",
                    "fields": "contentVector,titleVector", "k": 4,
                }],
            })
        );
    }

    #[test]
    fn vector_k_overrides_top_and_filters_apply_before_the_neighbours_are_taken() {
        let config = config(&[
            ("azure_search_vector_fields", "contentVector"),
            ("azure_search_vector_k", "50"),
            ("azure_search_semantic_configuration", "my-semantic"),
        ]);
        let filters = [Filter {
            field: "source".into(),
            value: "marine/".into(),
        }];
        let request = sent(plan(&config, "krill", 3, &filters));
        assert_eq!(
            request.body,
            json!({
                "search": "krill", "top": 3, "select": "id,title,content,filepath",
                "filter": "filepath ge 'marine/' and filepath lt 'marine0'",
                "vectorFilterMode": "preFilter",
                "vectorQueries": [{"kind": "text", "text": "krill", "fields": "contentVector", "k": 50}],
                "queryType": "semantic", "semanticConfiguration": "my-semantic",
            })
        );
    }

    #[test]
    fn without_vector_fields_the_query_is_keyword_only() {
        let request = sent(plan(
            &config(&[("azure_search_vector_k", "50")]),
            "krill",
            3,
            &[],
        ));
        assert!(request.body.get("vectorQueries").is_none());
        assert!(request.body.get("vectorFilterMode").is_none());
    }
}
