//! The attributes `chat` reports on its spans (through `chatgate-guest-otel`): the
//! completion call (its `completion` span, with the GenAI request and response
//! attributes `chat` knows), and what retrieval found.
//!
//! Never the prompt, the passages or the answer: only ids, counts, models and settings.
//! `gen_ai.provider.name` is not set here: the completion component reports the GenAI
//! `chat {gen_ai.request.model}` CLIENT span of its upstream call itself, with its
//! provider's name, as a child of `completion` (the `traceparent` of `options`).

use crate::domain::{CompletionOptions, FinishReason, Passage, Usage};
use serde_json::{Value, json};

/// One span attribute: a semantic-convention key and its value.
pub type Attribute = (&'static str, Value);

/// The model the completion call asks for: the provider model the public id maps to,
/// else the public id (the provider's own configured model answers it).
pub fn request_model<'a>(options: &'a CompletionOptions, public_model: &'a str) -> &'a str {
    options.model.as_deref().unwrap_or(public_model)
}

/// What the completion call asked for.
pub fn request_attributes(options: &CompletionOptions, public_model: &str) -> Vec<Attribute> {
    let mut attributes = vec![
        ("gen_ai.operation.name", json!("chat")),
        (
            "gen_ai.request.model",
            json!(request_model(options, public_model)),
        ),
    ];
    if let Some(t) = options.temperature {
        attributes.push(("gen_ai.request.temperature", json!(f64::from(t))));
    }
    if let Some(p) = options.top_p {
        attributes.push(("gen_ai.request.top_p", json!(f64::from(p))));
    }
    if let Some(max) = options.max_tokens {
        attributes.push(("gen_ai.request.max_tokens", json!(max)));
    }
    if let Some(seed) = options.seed {
        attributes.push(("gen_ai.request.seed", json!(seed)));
    }
    attributes
}

/// What the completion call answered: the response id `chat` gave the client, the
/// model that answered, why it ended and the tokens it cost (as the provider counted).
pub fn response_attributes(
    response_id: &str,
    response_model: &str,
    finish_reason: FinishReason,
    usage: Option<Usage>,
) -> Vec<Attribute> {
    let mut attributes = vec![
        ("gen_ai.response.id", json!(response_id)),
        ("gen_ai.response.model", json!(response_model)),
        (
            "gen_ai.response.finish_reasons",
            json!([finish_reason.as_openai()]),
        ),
    ];
    if let Some(usage) = usage {
        attributes.push(("gen_ai.usage.input_tokens", json!(usage.prompt_tokens)));
        attributes.push(("gen_ai.usage.output_tokens", json!(usage.completion_tokens)));
    }
    attributes
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

    fn options() -> CompletionOptions {
        CompletionOptions {
            model: Some("gpt-4o-mini".into()),
            temperature: Some(0.5),
            top_p: None,
            max_tokens: Some(300),
            stop: vec!["END".into()],
            seed: None,
            response_format: None,
            user: Some("alice@example.com".into()),
            traceparent: None,
        }
    }

    #[test]
    fn the_request_names_the_provider_model_and_the_settings_given_and_no_user() {
        let attributes = request_attributes(&options(), "chatgate-rag");
        assert_eq!(
            attributes,
            vec![
                ("gen_ai.operation.name", json!("chat")),
                ("gen_ai.request.model", json!("gpt-4o-mini")),
                ("gen_ai.request.temperature", json!(0.5)),
                ("gen_ai.request.max_tokens", json!(300)),
            ]
        );
        let default_model = CompletionOptions {
            model: None,
            ..options()
        };
        assert_eq!(
            request_model(&default_model, "chatgate-rag"),
            "chatgate-rag"
        );
    }

    #[test]
    fn the_response_carries_id_model_finish_reason_and_usage() {
        let attributes = response_attributes(
            "chatcmpl-1",
            "gpt-4o-mini-2024-07-18",
            FinishReason::Length,
            Some(Usage {
                prompt_tokens: 812,
                completion_tokens: 300,
            }),
        );
        assert_eq!(
            attributes,
            vec![
                ("gen_ai.response.id", json!("chatcmpl-1")),
                ("gen_ai.response.model", json!("gpt-4o-mini-2024-07-18")),
                ("gen_ai.response.finish_reasons", json!(["length"])),
                ("gen_ai.usage.input_tokens", json!(812)),
                ("gen_ai.usage.output_tokens", json!(300)),
            ]
        );
        let without_usage = response_attributes("id", "m", FinishReason::Stop, None);
        assert!(
            !without_usage
                .iter()
                .any(|(k, _)| k.starts_with("gen_ai.usage"))
        );
    }
}
