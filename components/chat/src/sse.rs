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
    /// The model that answers, as the provider named it when the stream began.
    pub model: String,
}

/// One SSE event carrying `payload`. JSON text has no raw line breaks, so a
/// single `data:` line always suffices.
pub fn event(payload: &Value) -> String {
    format!("data: {payload}\n\n")
}

fn chunk(header: &ChunkHeader, delta: Value, finish_reason: Option<&str>) -> Value {
    json!({
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": header.model,
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
        json!({"role": "assistant", "content": "", "context": {"citations": citations}}),
        None,
    ))
}

pub fn content_chunk(header: &ChunkHeader, content: &str) -> String {
    event(&chunk(header, json!({"content": content}), None))
}

/// The last chunk of the answer: empty delta and the finish reason.
pub fn finish_chunk(header: &ChunkHeader, finish_reason: FinishReason) -> String {
    event(&chunk(header, json!({}), Some(finish_reason.as_openai())))
}

/// OpenAI's `stream_options.include_usage` chunk: no choices, only usage.
pub fn usage_chunk(header: &ChunkHeader, usage: Usage) -> String {
    event(&json!({
        "id": header.id,
        "object": "chat.completion.chunk",
        "created": header.created,
        "model": header.model,
        "choices": [],
        "usage": usage_json(usage),
    }))
}

/// A whole stream for an answer known in advance, as one body.
pub fn whole_answer(
    header: &ChunkHeader,
    citations: Vec<Value>,
    content: &str,
    finish_reason: FinishReason,
    usage: Option<Usage>,
) -> String {
    let mut body = role_chunk(header, citations);
    body.push_str(&content_chunk(header, content));
    body.push_str(&finish_chunk(header, finish_reason));
    if let Some(usage) = usage {
        body.push_str(&usage_chunk(header, usage));
    }
    body.push_str(DONE);
    body
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
    fn finish_chunk_has_empty_delta_and_reason() {
        let chunk = payload(&finish_chunk(&header(), FinishReason::ContentFilter));
        assert_eq!(chunk["model"], "chatgate-rag");
        assert_eq!(
            chunk["choices"][0],
            json!({"index": 0, "delta": {}, "finish_reason": "content_filter"})
        );
    }

    #[test]
    fn usage_chunk_has_no_choices() {
        let chunk = payload(&usage_chunk(
            &header(),
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
    fn a_whole_answer_is_the_same_events_as_a_streamed_one() {
        let usage = Usage {
            prompt_tokens: 0,
            completion_tokens: 2,
        };
        let body = whole_answer(&header(), vec![], "No.", FinishReason::Stop, Some(usage));
        let expected = [
            role_chunk(&header(), vec![]),
            content_chunk(&header(), "No."),
            finish_chunk(&header(), FinishReason::Stop),
            usage_chunk(&header(), usage),
            DONE.to_string(),
        ]
        .concat();
        assert_eq!(body, expected);
        let without_usage = whole_answer(&header(), vec![], "No.", FinishReason::Stop, None);
        assert!(!without_usage.contains("\"usage\""));
    }

    #[test]
    fn done_marker_is_literal() {
        assert_eq!(DONE, "data: [DONE]\n\n");
    }
}
