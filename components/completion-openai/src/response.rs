//! Parsing OpenAI chat completion answers: the whole-body JSON of a non-streamed answer
//! and the JSON chunks of a streamed one.
//!
//! A 2xx answer that is not what the API promises (wrong content type, not JSON, no
//! choices) is `internal`, as the WIT contract says for a malformed provider response:
//! it points at a misconfigured origin or an incompatible server, which retrying will
//! not fix, unlike `upstream-unavailable`.

use crate::errors::error_for_error_object;
use chatgate_rag::completion::{ChatCompletion, CompletionError, FinishReason, Usage};
use serde::Deserialize;
use serde_json::Value;

pub const JSON: &str = "application/json";
pub const EVENT_STREAM: &str = "text/event-stream";

/// Whether a `content-type` header value names `expected`, ignoring parameters
/// such as `charset` and letter case.
pub fn has_media_type(content_type: Option<&str>, expected: &str) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media_type| media_type.trim().eq_ignore_ascii_case(expected))
}

/// The error for a 2xx answer whose content type is not `expected`.
pub fn wrong_content_type(content_type: Option<&str>, expected: &str) -> CompletionError {
    let got = content_type
        .map(|value| crate::errors::sanitize(value, None))
        .unwrap_or_else(|| "none".into());
    CompletionError::Internal(format!(
        "the upstream answered with content type {got}, expected {expected}"
    ))
}

#[derive(Deserialize)]
struct UsageBody {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
}

impl UsageBody {
    fn to_usage(&self) -> Usage {
        let clamp = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
        Usage {
            prompt_tokens: clamp(self.prompt_tokens),
            completion_tokens: clamp(self.completion_tokens),
        }
    }
}

#[derive(Deserialize)]
struct CompletionBody {
    model: Option<String>,
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<UsageBody>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    message: Option<AnswerMessage>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct AnswerMessage {
    content: Option<String>,
    /// Set instead of `content` when the model refuses (structured outputs).
    refusal: Option<String>,
}

fn reported_model(model: Option<String>, requested_model: &str) -> String {
    model
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| requested_model.to_string())
}

/// Parses the body of a non-streamed 2xx answer.
/// The upstream's id of its answer (`id`, e.g. `chatcmpl-...`), for the GenAI span's
/// `gen_ai.response.id`: `None` when absent, empty or longer than [`MAX_RESPONSE_ID`].
pub fn response_id(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Id {
        id: Option<String>,
    }
    serde_json::from_slice::<Id>(body)
        .ok()?
        .id
        .filter(|id| !id.is_empty() && id.len() <= MAX_RESPONSE_ID)
}

/// The longest upstream response id recorded: an id is short, a longer one is not kept.
pub const MAX_RESPONSE_ID: usize = 256;

pub fn parse_completion(
    body: &[u8],
    requested_model: &str,
    secret: Option<&str>,
) -> Result<ChatCompletion, CompletionError> {
    let body: CompletionBody = serde_json::from_slice(body).map_err(|e| {
        CompletionError::Internal(format!("the upstream answer is not a chat completion: {e}"))
    })?;
    if let Some(error) = &body.error {
        return Err(error_for_error_object(error, secret));
    }
    let Some(choice) = body
        .choices
        .iter()
        .find(|c| c.index == 0)
        .or(body.choices.first())
    else {
        return Err(CompletionError::Internal(
            "the upstream answer has no choices".into(),
        ));
    };
    let content = choice
        .message
        .as_ref()
        .and_then(|m| m.content.clone().or_else(|| m.refusal.clone()))
        .unwrap_or_default();
    Ok(ChatCompletion {
        model: reported_model(body.model, requested_model),
        content,
        finish_reason: choice
            .finish_reason
            .as_deref()
            .map(FinishReason::from_openai)
            .unwrap_or(FinishReason::Stop),
        usage: body
            .usage
            .as_ref()
            .map(UsageBody::to_usage)
            .unwrap_or_default(),
    })
}

/// What one `chat.completion.chunk` of a stream contributes.
#[derive(Debug, Default, PartialEq)]
pub struct Chunk {
    /// The upstream's id of the answer, when the chunk names one (see [`response_id`]).
    pub id: Option<String>,
    pub model: Option<String>,
    pub content: Option<String>,
    pub finish_reason: Option<FinishReason>,
    pub usage: Option<Usage>,
}

#[derive(Deserialize)]
struct ChunkBody {
    id: Option<String>,
    model: Option<String>,
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<UsageBody>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    delta: Option<ChunkDelta>,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct ChunkDelta {
    content: Option<String>,
}

/// Parses the data of one stream event. Azure's first chunk (prompt filter results)
/// and the final usage chunk have no choices; that is not an error.
pub fn parse_chunk(data: &str, secret: Option<&str>) -> Result<Chunk, CompletionError> {
    let body: ChunkBody = serde_json::from_str(data).map_err(|e| {
        CompletionError::Internal(format!("the upstream sent a malformed stream chunk: {e}"))
    })?;
    if let Some(error) = &body.error {
        return Err(error_for_error_object(error, secret));
    }
    let choice = body.choices.into_iter().find(|c| c.index == 0);
    let (content, finish_reason) = match choice {
        Some(choice) => (
            choice
                .delta
                .and_then(|d| d.content)
                .filter(|c| !c.is_empty()),
            choice
                .finish_reason
                .as_deref()
                .map(FinishReason::from_openai),
        ),
        None => (None, None),
    };
    Ok(Chunk {
        id: body
            .id
            .filter(|id| !id.is_empty() && id.len() <= MAX_RESPONSE_ID),
        model: body.model.filter(|m| !m.is_empty()),
        content,
        finish_reason,
        usage: body.usage.as_ref().map(UsageBody::to_usage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_id_is_read_when_it_is_a_short_string() {
        assert_eq!(
            response_id(br#"{"id":"chatcmpl-123","choices":[]}"#),
            Some("chatcmpl-123".into())
        );
        assert_eq!(response_id(br#"{"choices":[]}"#), None);
        assert_eq!(response_id(br#"{"id":""}"#), None);
        assert_eq!(response_id(br#"{"id":7}"#), None);
        let long = format!(r#"{{"id":"{}"}}"#, "x".repeat(MAX_RESPONSE_ID + 1));
        assert_eq!(response_id(long.as_bytes()), None);
    }

    #[test]
    fn media_type_ignores_parameters_and_case() {
        assert!(has_media_type(Some("application/json"), JSON));
        assert!(has_media_type(
            Some("Application/JSON; charset=utf-8"),
            JSON
        ));
        assert!(has_media_type(
            Some("text/event-stream;charset=UTF-8"),
            EVENT_STREAM
        ));
        assert!(!has_media_type(Some("text/html"), JSON));
        assert!(!has_media_type(Some("application/json-seq"), JSON));
        assert!(!has_media_type(None, JSON));
    }

    #[test]
    fn wrong_content_type_is_internal_and_names_both_types() {
        assert_eq!(
            wrong_content_type(Some("text/html"), JSON),
            CompletionError::Internal(
                "the upstream answered with content type text/html, expected application/json"
                    .into()
            )
        );
    }

    #[test]
    fn parses_an_openai_completion() {
        let body = br#"{
            "id": "chatcmpl-123", "object": "chat.completion", "created": 1741569952,
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there.", "refusal": null}, "logprobs": null, "finish_reason": "length"}],
            "usage": {"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29}
        }"#;
        assert_eq!(
            parse_completion(body, "gpt-4o-mini", None).unwrap(),
            ChatCompletion {
                model: "gpt-4o-mini-2024-07-18".into(),
                content: "Hello there.".into(),
                finish_reason: FinishReason::Length,
                usage: Usage {
                    prompt_tokens: 19,
                    completion_tokens: 10
                },
            }
        );
    }

    #[test]
    fn finish_reasons_map_with_unknown_as_stop() {
        for (reason, expected) in [
            ("stop", FinishReason::Stop),
            ("length", FinishReason::Length),
            ("content_filter", FinishReason::ContentFilter),
            ("tool_calls", FinishReason::Stop),
            ("eos", FinishReason::Stop),
        ] {
            let body = format!(
                r#"{{"choices":[{{"message":{{"content":"x"}},"finish_reason":"{reason}"}}]}}"#
            );
            let completion = parse_completion(body.as_bytes(), "m", None).unwrap();
            assert_eq!(completion.finish_reason, expected, "{reason}");
        }
    }

    #[test]
    fn minimal_local_server_answer_gets_requested_model_and_zero_usage() {
        let body = br#"{"choices":[{"message":{"content":"hi"},"finish_reason":null}]}"#;
        assert_eq!(
            parse_completion(body, "llama3.2", None).unwrap(),
            ChatCompletion {
                model: "llama3.2".into(),
                content: "hi".into(),
                finish_reason: FinishReason::Stop,
                usage: Usage::default(),
            }
        );
    }

    #[test]
    fn filtered_answer_without_content_is_empty() {
        let body = br#"{"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null},"finish_reason":"content_filter"}]}"#;
        let completion = parse_completion(body, "m", None).unwrap();
        assert_eq!(completion.content, "");
        assert_eq!(completion.finish_reason, FinishReason::ContentFilter);
    }

    #[test]
    fn refusal_is_the_content_when_content_is_null() {
        let body = br#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#;
        assert_eq!(
            parse_completion(body, "m", None).unwrap().content,
            "I can't help with that."
        );
    }

    #[test]
    fn malformed_answers_are_internal() {
        for body in [
            &b"<html>gateway</html>"[..],
            b"{}",
            b"{\"choices\": []}",
            b"{\"choices\": \"nope\"}",
        ] {
            assert!(
                matches!(
                    parse_completion(body, "m", None),
                    Err(CompletionError::Internal(_))
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn error_object_in_a_200_answer_is_mapped() {
        let body = br#"{"error":{"message":"overloaded","type":"server_error"}}"#;
        assert_eq!(
            parse_completion(body, "m", None),
            Err(CompletionError::UpstreamUnavailable("overloaded".into()))
        );
    }

    #[test]
    fn huge_token_counts_saturate() {
        let body = br#"{"choices":[{"message":{"content":""}}],"usage":{"prompt_tokens":99999999999,"completion_tokens":1}}"#;
        let usage = parse_completion(body, "m", None).unwrap().usage;
        assert_eq!(usage.prompt_tokens, u32::MAX);
        assert_eq!(usage.completion_tokens, 1);
    }

    #[test]
    fn parses_stream_chunks() {
        let first = r#"{"id":"c","object":"chat.completion.chunk","model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#;
        assert_eq!(
            parse_chunk(first, None).unwrap(),
            Chunk {
                id: Some("c".into()),
                model: Some("gpt-4o-mini".into()),
                ..Chunk::default()
            }
        );
        let text = r#"{"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#;
        assert_eq!(
            parse_chunk(text, None).unwrap().content.as_deref(),
            Some("Hel")
        );
        let last = r#"{"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"usage":null}"#;
        assert_eq!(
            parse_chunk(last, None).unwrap().finish_reason,
            Some(FinishReason::Stop)
        );
        let usage = r#"{"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}"#;
        assert_eq!(
            parse_chunk(usage, None).unwrap().usage,
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 2
            })
        );
    }

    #[test]
    fn azure_prompt_filter_chunk_has_no_choices_and_no_model() {
        let chunk = r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}"#;
        assert_eq!(parse_chunk(chunk, None).unwrap(), Chunk::default());
    }

    #[test]
    fn malformed_chunk_is_internal_and_error_chunk_is_mapped() {
        assert!(matches!(
            parse_chunk("{\"choices\":[", None),
            Err(CompletionError::Internal(_))
        ));
        assert_eq!(
            parse_chunk(
                r#"{"error":{"message":"filtered","code":"content_filter"}}"#,
                None
            ),
            Err(CompletionError::ContentFiltered("filtered".into()))
        );
    }
}
