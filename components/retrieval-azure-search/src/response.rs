//! Reading a search answer: `{"value": [{"@search.score": f, "@search.rerankerScore": f?,
//! <fields>...}]}` into passages, best first.

use crate::config::Fields;
use crate::errors::sanitize;
use crate::{Passage, RetrievalError};
use serde_json::Value;

/// The passages of a 2xx answer, highest score first. The semantic ranker's score
/// ranks when the service gave one, as it does for semantic queries.
pub fn parse_results(
    body: &[u8],
    fields: &Fields,
    secret: &str,
) -> Result<Vec<Passage>, RetrievalError> {
    let malformed = |why: &str| {
        RetrievalError::Upstream(format!(
            "Azure AI Search sent an answer that is not a search result: {why}"
        ))
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
    let documents = value
        .get("value")
        .and_then(Value::as_array)
        .ok_or_else(|| malformed("no `value` array"))?;
    let mut passages = Vec::with_capacity(documents.len());
    for document in documents {
        let document = document
            .as_object()
            .ok_or_else(|| malformed("a result is not an object"))?;
        let id = match document.get(&fields.id) {
            Some(Value::String(id)) => id.clone(),
            Some(Value::Number(id)) => id.to_string(),
            _ => {
                return Err(RetrievalError::Upstream(format!(
                    "a search result has no `{}` key field; check azure_search_id_field",
                    sanitize(&fields.id, Some(secret))
                )));
            }
        };
        let text = |field: &str| match document.get(field) {
            Some(Value::String(text)) => text.clone(),
            // A collection field (e.g. a multi-valued title) reads as its items.
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "),
            _ => String::new(),
        };
        // Numbers and booleans in their JSON spelling (dates arrive as strings); a
        // field the document lacks, or holds null or an object in, is left out.
        let metadata = fields
            .metadata
            .iter()
            .filter_map(|field| {
                let value = match document.get(field)? {
                    Value::Number(number) => number.to_string(),
                    Value::Bool(flag) => flag.to_string(),
                    Value::String(_) | Value::Array(_) => text(field),
                    Value::Null | Value::Object(_) => return None,
                };
                Some((field.clone(), value))
            })
            .collect();
        let score = document
            .get("@search.rerankerScore")
            .and_then(Value::as_f64)
            .or_else(|| document.get("@search.score").and_then(Value::as_f64))
            .unwrap_or(0.0);
        passages.push(Passage {
            id,
            title: text(&fields.title),
            content: text(&fields.content),
            source: text(&fields.source),
            score: score as f32,
            metadata,
        });
    }
    // The service orders by its score already; reranker scores can tie or arrive
    // unsorted across pages, so the contract's order is enforced here (stably).
    passages.sort_by(|a, b| b.score.total_cmp(&a.score));
    Ok(passages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::fields;
    use serde_json::json;

    fn parse(body: Value) -> Result<Vec<Passage>, RetrievalError> {
        parse_results(body.to_string().as_bytes(), &fields(), "key")
    }

    #[test]
    fn documents_become_passages_with_the_search_score() {
        let passages = parse(json!({
            "@odata.context": "https://x.search.windows.net/indexes('h')/$metadata#docs(*)",
            "value": [
                {"@search.score": 3.5, "id": "a1", "title": "Narwhal tusks", "content": "Tusks sense salinity.", "filepath": "zoo/narwhal.md"},
                {"@search.score": 1.25, "id": "b2", "title": "Krill", "content": "Krill swarm.", "filepath": "zoo/krill.md", "extra": 1}
            ]
        }))
        .unwrap();
        assert_eq!(
            passages,
            vec![
                Passage {
                    id: "a1".into(),
                    title: "Narwhal tusks".into(),
                    content: "Tusks sense salinity.".into(),
                    source: "zoo/narwhal.md".into(),
                    score: 3.5,
                    metadata: Vec::new(),
                },
                Passage {
                    id: "b2".into(),
                    title: "Krill".into(),
                    content: "Krill swarm.".into(),
                    source: "zoo/krill.md".into(),
                    score: 1.25,
                    metadata: Vec::new(),
                },
            ]
        );
    }

    #[test]
    fn configured_metadata_fields_travel_with_each_passage() {
        let fields = crate::config::Fields {
            metadata: vec![
                "team".into(),
                "pages".into(),
                "reviewed".into(),
                "tags".into(),
            ],
            ..fields()
        };
        let body = json!({"value": [
            {"@search.score": 1.0, "id": "a", "team": "payments", "pages": 12, "reviewed": true, "tags": ["pci", "cards"]},
            {"@search.score": 0.5, "id": "b", "team": null, "extra": "x"}
        ]});
        let passages = parse_results(body.to_string().as_bytes(), &fields, "key").unwrap();
        let pairs = |items: &[(&str, &str)]| -> Vec<(String, String)> {
            items
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            passages[0].metadata,
            pairs(&[
                ("team", "payments"),
                ("pages", "12"),
                ("reviewed", "true"),
                ("tags", "pci cards")
            ])
        );
        assert_eq!(passages[1].metadata, pairs(&[]));
    }

    #[test]
    fn the_reranker_score_ranks_when_present() {
        let passages = parse(json!({"value": [
            {"@search.score": 9.0, "@search.rerankerScore": 1.5, "id": "lexical-best"},
            {"@search.score": 2.0, "@search.rerankerScore": 3.25, "id": "semantic-best"},
            {"@search.score": 5.0, "@search.rerankerScore": null, "id": "unranked"}
        ]}))
        .unwrap();
        let ranked: Vec<(&str, f32)> = passages.iter().map(|p| (p.id.as_str(), p.score)).collect();
        assert_eq!(
            ranked,
            vec![
                ("unranked", 5.0),
                ("semantic-best", 3.25),
                ("lexical-best", 1.5)
            ]
        );
    }

    #[test]
    fn missing_text_fields_are_empty_and_collections_are_joined() {
        let passages = parse(json!({"value": [
            {"@search.score": 1.0, "id": 42, "title": ["Part", "one"], "content": null}
        ]}))
        .unwrap();
        assert_eq!(passages[0].id, "42");
        assert_eq!(passages[0].title, "Part one");
        assert_eq!(passages[0].content, "");
        assert_eq!(passages[0].source, "");
    }

    #[test]
    fn an_empty_result_is_no_passages() {
        assert_eq!(parse(json!({"value": []})), Ok(vec![]));
    }

    #[test]
    fn answers_that_are_not_search_results_are_upstream_failures() {
        for body in [
            json!({"error": {"message": "x"}}),
            json!({"value": [1]}),
            json!([]),
        ] {
            assert!(
                matches!(parse(body.clone()), Err(RetrievalError::Upstream(_))),
                "{body}"
            );
        }
        assert!(matches!(
            parse_results(b"<html>", &fields(), "key"),
            Err(RetrievalError::Upstream(m)) if m.contains("not JSON")
        ));
        let Err(RetrievalError::Upstream(message)) =
            parse(json!({"value": [{"@search.score": 1.0, "title": "no key"}]}))
        else {
            panic!("a result without its key field accepted");
        };
        assert!(message.contains("azure_search_id_field"), "{message}");
    }
}
