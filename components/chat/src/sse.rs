//! Server-sent events for `stream: true`: `chat.completion.chunk` objects, each
//! as one `data:` event, ended by `data: [DONE]`.

use serde_json::{Value, json};

use crate::domain::{FinishReason, Usage};
use crate::error::ApiError;
use crate::response::usage_json;

pub const DONE: &str = "data: [DONE]\n\n";

/// What every chunk of one streamed answer repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkHeader {
    pub id: String,
    pub created: u64,
    /// The model id the client asked for; the provider names the model that
    /// actually answered only when the stream ends (see [`finish_chunk`]).
    pub model: String,
}

/// One SSE event carrying `payload`. JSON text has no raw line breaks, so a
/// single `data:` line always suffices.
pub fn event(payload: &Value) -> String {
    format!("data: {payload}\n\n")
}

fn chunk(header: &ChunkHeader, model: &str, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": model,
        "choices": [{
            "index": 0,
            "delta": delta,
            "finish_reason": finish_reason,
        }],
    })
}

/// The first chunk: the assistant role and the citations, before any text.
pub fn role_chunk(header: &ChunkHeader, citations: Vec<Value>) -> String {
    event(&chunk(
        header,
        &header.model,
        json!({"role": "assistant", "content": "", "context": {"citations": citations}}),
        None,
    ))
}

pub fn content_chunk(header: &ChunkHeader, content: &str) -> String {
    event(&chunk(
        header,
        &header.model,
        json!({"content": content}),
        None,
    ))
}

/// The last chunk of the answer: empty delta, the finish reason, and the model
/// the provider reports.
pub fn finish_chunk(
    header: &ChunkHeader,
    provider_model: &str,
    finish_reason: FinishReason,
) -> String {
    event(&chunk(
        header,
        provider_model,
        json!({}),
        Some(finish_reason.as_openai()),
    ))
}

/// OpenAI's `stream_options.include_usage` chunk: no choices, only usage.
pub fn usage_chunk(header: &ChunkHeader, provider_model: &str, usage: Usage) -> String {
    event(&json!({
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": provider_model,
        "choices": [],
        "usage": usage_json(usage),
    }))
}

/// An error that cut the stream short; no `[DONE]` follows it.
pub fn error_event(error: &ApiError) -> String {
    event(&error.to_json())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::CompletionFailure;

    fn header() -> ChunkHeader {
        ChunkHeader {
            id: "chatcmpl-ab".into(),
            created: 42,
            model: "chatgate-rag".into(),
        }
    }

    /// Parses one SSE event back into its JSON payload.
    fn payload(event: &str) -> Value {
        let data = event
            .strip_prefix("data: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("one data event");
        assert!(!data.contains('\n'));
        serde_json::from_str(data).unwrap()
    }

    #[test]
    fn role_chunk_carries_citations_and_no_text() {
        let citation = json!({"title": "T", "filepath": "t.md", "content": "c", "chunk_id": "1"});
        assert_eq!(
            payload(&role_chunk(&header(), vec![citation.clone()])),
            json!({
                "id": "chatcmpl-ab", "object": "chat.completion.chunk", "created": 42, "model": "chatgate-rag",
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": "", "context": {"citations": [citation]}}, "finish_reason": null}]
            })
        );
    }

    #[test]
    fn content_chunk_escapes_line_breaks_into_one_data_line() {
        let event = content_chunk(&header(), "line one\n\nline two");
        assert_eq!(
            payload(&event)["choices"][0],
            json!({"index": 0, "delta": {"content": "line one\n\nline two"}, "finish_reason": null})
        );
    }

    #[test]
    fn finish_chunk_has_empty_delta_reason_and_provider_model() {
        let chunk = payload(&finish_chunk(
            &header(),
            "gpt-4o",
            FinishReason::ContentFilter,
        ));
        assert_eq!(chunk["model"], "gpt-4o");
        assert_eq!(
            chunk["choices"][0],
            json!({"index": 0, "delta": {}, "finish_reason": "content_filter"})
        );
    }

    #[test]
    fn usage_chunk_has_no_choices() {
        let chunk = payload(&usage_chunk(
            &header(),
            "gpt-4o",
            Usage {
                prompt_tokens: 3,
                completion_tokens: 4,
            },
        ));
        assert_eq!(chunk["choices"], json!([]));
        assert_eq!(
            chunk["usage"],
            json!({"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7})
        );
    }

    #[test]
    fn error_event_is_the_openai_error_object() {
        let error = ApiError::from(CompletionFailure::UpstreamUnavailable("reset".into()));
        assert_eq!(payload(&error_event(&error)), error.to_json());
        assert!(payload(&error_event(&error))["error"]["message"].is_string());
    }

    #[test]
    fn done_marker_is_literal() {
        assert_eq!(DONE, "data: [DONE]\n\n");
    }
}
