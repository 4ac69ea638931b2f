//! OpenAI response bodies: `chat.completion`, the model list, and Azure
//! "on your data" citations.

use serde_json::{Value, json};

use crate::domain::{Completion, Passage, Usage};

/// `chatcmpl-` followed by the random bytes in lowercase hex.
pub fn completion_id(random: &[u8]) -> String {
    let mut id = String::with_capacity("chatcmpl-".len() + random.len() * 2);
    id.push_str("chatcmpl-");
    for byte in random {
        id.push_str(&format!("{byte:02x}"));
    }
    id
}

/// Citations for the passages used in the prompt, in `[docN]` order.
pub fn citations(passages: &[Passage]) -> Vec<Value> {
    passages.iter().map(citation).collect()
}

fn citation(passage: &Passage) -> Value {
    let mut citation = json!({
        "title": passage.title,
        "content": passage.content.trim(),
        "chunk_id": passage.id,
    });
    let location = if is_url(&passage.source) {
        "url"
    } else {
        "filepath"
    };
    citation[location] = Value::String(passage.source.clone());
    citation
}

fn is_url(source: &str) -> bool {
    let lower = source.trim_start().to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://")
}

pub fn usage_json(usage: Usage) -> Value {
    json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens.saturating_add(usage.completion_tokens),
    })
}

/// The `chat.completion` body; `model` is the one the provider says answered.
pub fn completion_body(
    id: &str,
    created: u64,
    completion: &Completion,
    citations: Vec<Value>,
) -> Value {
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": completion.model,
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": completion.content,
                "context": {"citations": citations},
            },
            "finish_reason": completion.finish_reason.as_openai(),
        }],
        "usage": usage_json(completion.usage),
    })
}

pub fn model_object(id: &str) -> Value {
    json!({"id": id, "object": "model", "created": 0, "owned_by": "chatgate"})
}

pub fn model_list(ids: &[String]) -> Value {
    json!({
        "object": "list",
        "data": ids.iter().map(|id| model_object(id)).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Passage;
    use crate::domain::{FinishReason, Usage};

    #[test]
    fn completion_id_is_prefixed_hex() {
        assert_eq!(completion_id(&[0x00, 0xab, 0x7f]), "chatcmpl-00ab7f");
    }

    #[test]
    fn citations_use_url_for_web_sources_and_filepath_otherwise() {
        let citations = citations(&[
            Passage::new("web#1", "Docs", "https://example.com/a", " body \n"),
            Passage::new("file#2", "Guide", "docs/guide.md", "text"),
            Passage::new("file#3", "Odd", "http-notes/x.md", "text"),
        ]);
        assert_eq!(
            citations[0],
            json!({"title": "Docs", "url": "https://example.com/a", "content": "body", "chunk_id": "web#1"})
        );
        assert_eq!(
            citations[1],
            json!({"title": "Guide", "filepath": "docs/guide.md", "content": "text", "chunk_id": "file#2"})
        );
        assert_eq!(citations[2]["filepath"], "http-notes/x.md");
        assert!(citations[2].get("url").is_none());
    }

    #[test]
    fn completion_body_has_the_openai_shape_with_context() {
        let completion = Completion {
            model: "gpt-4o-2024-08-06".into(),
            content: "Spin runs Wasm [doc1].".into(),
            finish_reason: FinishReason::Length,
            usage: Usage {
                prompt_tokens: 120,
                completion_tokens: 7,
            },
        };
        let cites = citations(&[Passage::new("s#0", "Spin", "spin.md", "Spin runs Wasm.")]);
        assert_eq!(
            completion_body("chatcmpl-1", 1_700_000_000, &completion, cites),
            json!({
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": "gpt-4o-2024-08-06",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Spin runs Wasm [doc1].",
                        "context": {"citations": [
                            {"title": "Spin", "filepath": "spin.md", "content": "Spin runs Wasm.", "chunk_id": "s#0"}
                        ]}
                    },
                    "finish_reason": "length"
                }],
                "usage": {"prompt_tokens": 120, "completion_tokens": 7, "total_tokens": 127}
            })
        );
    }

    #[test]
    fn total_tokens_saturates() {
        let usage = usage_json(Usage {
            prompt_tokens: u32::MAX,
            completion_tokens: 1,
        });
        assert_eq!(usage["total_tokens"], u32::MAX);
    }

    #[test]
    fn model_list_has_the_openai_shape() {
        assert_eq!(
            model_list(&["a".into(), "b".into()]),
            json!({"object": "list", "data": [
                {"id": "a", "object": "model", "created": 0, "owned_by": "chatgate"},
                {"id": "b", "object": "model", "created": 0, "owned_by": "chatgate"}
            ]})
        );
    }
}
