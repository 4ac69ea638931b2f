//! The attributes `chat` reports on its spans (through `chatgate-guest-otel`): its call
//! of the completion component (its `completion` span), and what retrieval found.
//!
//! Never the prompt, the passages or the answer: only ids, counts, models and settings.
//! No GenAI semantic-convention attribute (`gen_ai.*`) on `completion`: the completion
//! component reports the GenAI `chat {gen_ai.request.model}` CLIENT span of its upstream
//! call itself (provider, request settings, response, token usage), as a child of
//! `completion` (the `traceparent` of `options`). A backend that recognises model calls
//! by those attributes (Application Insights' and others' GenAI views) would count a
//! call twice if `completion` carried them too; so `completion` is an INTERNAL span (a
//! call inside the composed component, not a model call) with only what the gateway
//! alone knows: the model id the client asked for and the response id it was given.

use crate::domain::Passage;
use serde_json::{Value, json};

/// One span attribute: a semantic-convention key and its value.
pub type Attribute = (&'static str, Value);

/// What `chat` asked its completion component for: the gateway's public model id (the
/// provider's model is the model span's `gen_ai.request.model`).
pub fn call_attributes(public_model: &str) -> Vec<Attribute> {
    vec![("chatgate.model", json!(public_model))]
}

/// What the call answered, as the client saw it: the response id `chat` gave the client
/// (the upstream's own is the model span's `gen_ai.response.id`).
pub fn answer_attributes(response_id: &str) -> Vec<Attribute> {
    vec![("chatgate.response.id", json!(response_id))]
}

/// What retrieval found: how many usable passages, and the best one's score.
pub fn retrieval_attributes(top_k: u32, passages: &[Passage]) -> Vec<Attribute> {
    let mut attributes = vec![
        ("chatgate.retrieval.top_k", json!(top_k)),
        ("chatgate.retrieval.passages", json!(passages.len())),
    ];
    if let Some(top) = passages
        .iter()
        .map(|p| f64::from(p.score))
        .filter(|s| s.is_finite())
        .reduce(f64::max)
    {
        attributes.push(("chatgate.retrieval.top_score", json!(top)));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_carries_no_genai_attribute() {
        // `gen_ai.*` belongs to the completion component's model span only.
        let all = [
            call_attributes("chatgate-rag"),
            answer_attributes("chatcmpl-1"),
        ]
        .concat();
        assert_eq!(
            all,
            vec![
                ("chatgate.model", json!("chatgate-rag")),
                ("chatgate.response.id", json!("chatcmpl-1")),
            ]
        );
        assert!(!all.iter().any(|(k, _)| k.starts_with("gen_ai.")));
    }
}
