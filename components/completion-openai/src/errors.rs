//! Mapping upstream failures (HTTP statuses, error bodies, transport failures, error
//! events inside a stream) onto `completion-error`.
//!
//! Every text taken from the upstream goes through [`sanitize`]: control characters
//! become spaces, the API key is redacted should the upstream echo it, and the result
//! is at most [`MAX_MESSAGE_CHARS`] characters. For 401/403 the upstream's text is not
//! used at all, because providers quote (masked) keys there.

use crate::types::CompletionError;
use serde_json::Value;

pub const MAX_MESSAGE_CHARS: usize = 300;
const DEFAULT_RETRY_AFTER_SECONDS: u32 = 1;

/// The headers of a 429 answer that tell when to retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryHeaders<'a> {
    /// `retry-after-ms` (OpenAI, Azure OpenAI): milliseconds, possibly fractional.
    pub retry_after_ms: Option<&'a str>,
    /// `Retry-After` (RFC 9110): delta-seconds or an HTTP-date.
    pub retry_after: Option<&'a str>,
}

/// Seconds to wait before retrying: `retry-after-ms` rounded up, else `Retry-After`
/// delta-seconds, else 1. An HTTP-date also gives 1: the component has no trustworthy
/// clock to subtract from, and a short retry is the safe guess. Never 0, so that a
/// caller honouring it cannot spin.
pub fn retry_after_seconds(headers: RetryHeaders<'_>) -> u32 {
    let from_ms = headers.retry_after_ms.and_then(|text| {
        let ms: f64 = text.trim().parse().ok()?;
        (ms.is_finite() && ms >= 0.0).then(|| (ms / 1000.0).ceil())
    });
    let from_seconds = || {
        let text = headers.retry_after?.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        // All digits: only overflow can fail, and that means "very long".
        Some(text.parse::<f64>().unwrap_or(f64::MAX))
    };
    match from_ms.or_else(from_seconds) {
        // `as` saturates float-to-int conversions.
        Some(seconds) => (seconds as u32).max(1),
        None => DEFAULT_RETRY_AFTER_SECONDS,
    }
}

/// The parts of an OpenAI-shaped error body (`{"error": {"message", "type", "code"}}`)
/// that decide the mapping. llama.cpp sends a numeric `code`, some servers send
/// `{"error": "text"}`; both are accepted.
#[derive(Debug, Default, PartialEq)]
struct UpstreamError {
    message: Option<String>,
    kind: Option<String>,
    code: Option<String>,
    inner_code: Option<String>,
}

impl UpstreamError {
    fn from_body(body: &[u8]) -> Option<UpstreamError> {
        let value: Value = serde_json::from_slice(body).ok()?;
        UpstreamError::from_value(value.get("error")?)
    }

    fn from_value(error: &Value) -> Option<UpstreamError> {
        let text = |v: Option<&Value>| match v? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        match error {
            Value::String(message) => Some(UpstreamError {
                message: Some(message.clone()),
                ..UpstreamError::default()
            }),
            Value::Object(fields) => Some(UpstreamError {
                message: text(fields.get("message")),
                kind: text(fields.get("type")),
                code: text(fields.get("code")),
                inner_code: text(fields.get("innererror").and_then(|i| i.get("code"))),
            }),
            _ => None,
        }
    }

    fn is_content_filter(&self) -> bool {
        self.code.as_deref() == Some("content_filter")
            || self.inner_code.as_deref() == Some("ResponsibleAIPolicyViolation")
    }

    fn is_rate_limit(&self) -> bool {
        self.kind.as_deref() == Some("rate_limit_error")
            || self.code.as_deref() == Some("rate_limit_exceeded")
    }

    fn sanitized_message(&self, secret: Option<&str>) -> Option<String> {
        let message = sanitize(self.message.as_deref()?, secret);
        (!message.is_empty()).then_some(message)
    }
}

/// Makes upstream text safe to pass on: no API key, no control characters, bounded.
pub fn sanitize(text: &str, secret: Option<&str>) -> String {
    let text = match secret {
        Some(secret) if !secret.is_empty() => text.replace(secret, "[redacted]"),
        _ => text.to_string(),
    };
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim();
    if text.chars().count() <= MAX_MESSAGE_CHARS {
        text.to_string()
    } else {
        let mut cut: String = text.chars().take(MAX_MESSAGE_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// The error for a non-2xx answer. `body` is the (possibly truncated) error body.
pub fn error_for_status(
    status: u16,
    retry: RetryHeaders<'_>,
    body: &[u8],
    secret: Option<&str>,
) -> CompletionError {
    let upstream = UpstreamError::from_body(body).unwrap_or_default();
    let message = upstream.sanitized_message(secret);
    match status {
        429 => CompletionError::RateLimited {
            retry_after_seconds: retry_after_seconds(retry),
            message: message.unwrap_or_else(|| "the upstream is rate limiting requests".into()),
        },
        401 | 403 => CompletionError::Unauthorized(format!(
            "the upstream refused the credentials (HTTP {status}); check openai_api_key"
        )),
        400 | 404 | 413 | 422 if upstream.is_content_filter() => CompletionError::ContentFiltered(
            message.unwrap_or_else(|| "the upstream content filter rejected the prompt".into()),
        ),
        400 | 404 | 413 | 422 => CompletionError::InvalidRequest(
            message.unwrap_or_else(|| format!("the upstream rejected the request (HTTP {status})")),
        ),
        408 | 500..=599 => CompletionError::UpstreamUnavailable(match message {
            Some(message) => format!("the upstream failed (HTTP {status}): {message}"),
            None => format!("the upstream failed (HTTP {status})"),
        }),
        _ => CompletionError::Internal(format!("unexpected upstream status {status}")),
    }
}

/// The error for an `{"error": ...}` object that arrived with HTTP 200: inside an event
/// stream (`data: {"error": ...}`) or as a whole body from a proxy, so only the object
/// tells what went wrong.
pub fn error_for_error_object(error: &Value, secret: Option<&str>) -> CompletionError {
    let upstream = UpstreamError::from_value(error).unwrap_or_default();
    let message = upstream
        .sanitized_message(secret)
        .unwrap_or_else(|| "the upstream reported an error mid-stream".into());
    if upstream.is_content_filter() {
        CompletionError::ContentFiltered(message)
    } else if upstream.is_rate_limit() {
        CompletionError::RateLimited {
            retry_after_seconds: DEFAULT_RETRY_AFTER_SECONDS,
            message,
        }
    } else if upstream.kind.as_deref() == Some("invalid_request_error") {
        CompletionError::InvalidRequest(message)
    } else {
        CompletionError::UpstreamUnavailable(message)
    }
}

/// Why the HTTP exchange itself failed (no usable status or body).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// The host refused the outbound request: the origin is not an allowed outbound host.
    Denied,
    TimedOut,
    /// Connection refused or reset, DNS, TLS, protocol errors: described for operators.
    Unreachable(String),
}

pub fn transport_error(failure: &TransportFailure) -> CompletionError {
    match failure {
        TransportFailure::Denied => CompletionError::Internal(
            "the host denied the outbound request; openai_origin must be an allowed outbound host"
                .into(),
        ),
        TransportFailure::TimedOut => CompletionError::UpstreamUnavailable(
            "the upstream did not answer in time (openai_timeout_ms)".into(),
        ),
        TransportFailure::Unreachable(what) => {
            CompletionError::UpstreamUnavailable(format!("the upstream is unreachable: {what}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn retry(ms: Option<&str>, seconds: Option<&str>) -> u32 {
        retry_after_seconds(RetryHeaders {
            retry_after_ms: ms,
            retry_after: seconds,
        })
    }

    #[test]
    fn retry_after_ms_is_rounded_up_to_seconds() {
        assert_eq!(retry(Some("1500"), None), 2);
        assert_eq!(retry(Some("2000"), None), 2);
        assert_eq!(retry(Some("20.5"), None), 1);
        assert_eq!(retry(Some("60001"), Some("5")), 61);
    }

    #[test]
    fn retry_after_ms_of_zero_still_waits_a_second() {
        assert_eq!(retry(Some("0"), None), 1);
    }

    #[test]
    fn retry_after_seconds_used_when_ms_is_absent_or_invalid() {
        assert_eq!(retry(None, Some("7")), 7);
        assert_eq!(retry(Some("soon"), Some(" 12 ")), 12);
        assert_eq!(retry(Some("-5"), Some("3")), 3);
        assert_eq!(retry(Some("NaN"), Some("4")), 4);
    }

    #[test]
    fn retry_after_http_date_or_garbage_falls_back_to_one_second() {
        assert_eq!(retry(None, Some("Wed, 21 Oct 2015 07:28:00 GMT")), 1);
        assert_eq!(retry(None, Some("-3")), 1);
        assert_eq!(retry(None, Some("")), 1);
        assert_eq!(retry(None, None), 1);
    }

    #[test]
    fn retry_after_huge_values_saturate() {
        assert_eq!(retry(None, Some("99999999999999999999999")), u32::MAX);
        assert_eq!(retry(Some("1e300"), None), u32::MAX);
    }

    #[test]
    fn rate_limited_carries_retry_after_and_upstream_message() {
        let body = br#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","code":"rate_limit_exceeded"}}"#;
        let headers = RetryHeaders {
            retry_after_ms: Some("2500"),
            retry_after: Some("3"),
        };
        assert_eq!(
            error_for_status(429, headers, body, None),
            CompletionError::RateLimited {
                retry_after_seconds: 3,
                message: "Rate limit reached for gpt-4o-mini".into()
            }
        );
        assert_eq!(
            error_for_status(429, RetryHeaders::default(), b"", None),
            CompletionError::RateLimited {
                retry_after_seconds: 1,
                message: "the upstream is rate limiting requests".into()
            }
        );
    }

    #[test]
    fn credential_failures_are_unauthorized_without_upstream_text() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-abc***xyz.","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        for status in [401, 403] {
            match error_for_status(status, RetryHeaders::default(), body, Some("sk-abcdefxyz")) {
                CompletionError::Unauthorized(message) => {
                    assert!(!message.contains("sk-"), "{message}");
                    assert!(message.contains(&status.to_string()));
                }
                other => panic!("expected unauthorized, got {other:?}"),
            }
        }
    }

    #[test]
    fn client_errors_pass_the_upstream_message_on() {
        let body = br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        for status in [400, 404, 422] {
            assert_eq!(
                error_for_status(status, RetryHeaders::default(), body, None),
                CompletionError::InvalidRequest(
                    "This model's maximum context length is 128000 tokens.".into()
                )
            );
        }
    }

    #[test]
    fn client_error_without_openai_shape_names_the_status() {
        assert_eq!(
            error_for_status(
                404,
                RetryHeaders::default(),
                b"<html>Not Found</html>",
                None
            ),
            CompletionError::InvalidRequest("the upstream rejected the request (HTTP 404)".into())
        );
    }

    #[test]
    fn numeric_codes_and_string_errors_are_understood() {
        let llama_cpp = br#"{"error":{"code":400,"message":"context too long","type":"invalid_request_error"}}"#;
        assert_eq!(
            error_for_status(400, RetryHeaders::default(), llama_cpp, None),
            CompletionError::InvalidRequest("context too long".into())
        );
        let plain = br#"{"error":"model 'llama9' not found"}"#;
        assert_eq!(
            error_for_status(404, RetryHeaders::default(), plain, None),
            CompletionError::InvalidRequest("model 'llama9' not found".into())
        );
    }

    #[test]
    fn azure_content_filter_400_is_content_filtered() {
        let body = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#;
        match error_for_status(400, RetryHeaders::default(), body, None) {
            CompletionError::ContentFiltered(message) => {
                assert!(message.starts_with("The response was filtered"))
            }
            other => panic!("expected content-filtered, got {other:?}"),
        }
    }

    #[test]
    fn timeouts_and_server_errors_are_upstream_unavailable() {
        for status in [408, 500, 502, 503, 504] {
            assert!(matches!(
                error_for_status(status, RetryHeaders::default(), b"", None),
                CompletionError::UpstreamUnavailable(_)
            ));
        }
        let body = br#"{"error":{"message":"The server had an error","type":"server_error"}}"#;
        assert_eq!(
            error_for_status(500, RetryHeaders::default(), body, None),
            CompletionError::UpstreamUnavailable(
                "the upstream failed (HTTP 500): The server had an error".into()
            )
        );
    }

    #[test]
    fn unexpected_statuses_are_internal() {
        for status in [302, 409, 418] {
            assert_eq!(
                error_for_status(status, RetryHeaders::default(), b"", None),
                CompletionError::Internal(format!("unexpected upstream status {status}"))
            );
        }
    }

    #[test]
    fn upstream_messages_are_trimmed_to_300_chars() {
        let long = "é".repeat(1000);
        let body = json!({"error": {"message": long}}).to_string();
        let error = error_for_status(400, RetryHeaders::default(), body.as_bytes(), None);
        let message = error.message();
        assert_eq!(message.chars().count(), 300);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn echoed_api_key_and_control_characters_are_removed() {
        let body = json!({"error": {"message": "bad key sk-live-123\nfor org"}}).to_string();
        let error = error_for_status(
            422,
            RetryHeaders::default(),
            body.as_bytes(),
            Some("sk-live-123"),
        );
        assert_eq!(
            error,
            CompletionError::InvalidRequest("bad key [redacted] for org".into())
        );
    }

    #[test]
    fn error_objects_map_by_type_and_code() {
        let server = json!({"message": "The server had an error while processing your request.", "type": "server_error"});
        assert!(matches!(
            error_for_error_object(&server, None),
            CompletionError::UpstreamUnavailable(m) if m.starts_with("The server had an error")
        ));
        let filtered = json!({"message": "filtered", "code": "content_filter"});
        assert_eq!(
            error_for_error_object(&filtered, None),
            CompletionError::ContentFiltered("filtered".into())
        );
        let limited = json!({"message": "slow down", "type": "rate_limit_error"});
        assert_eq!(
            error_for_error_object(&limited, None),
            CompletionError::RateLimited {
                retry_after_seconds: 1,
                message: "slow down".into()
            }
        );
        let invalid = json!({"message": "bad stop", "type": "invalid_request_error"});
        assert_eq!(
            error_for_error_object(&invalid, None),
            CompletionError::InvalidRequest("bad stop".into())
        );
        assert_eq!(
            error_for_error_object(&json!(null), None),
            CompletionError::UpstreamUnavailable(
                "the upstream reported an error mid-stream".into()
            )
        );
    }

    #[test]
    fn transport_failures() {
        assert!(matches!(
            transport_error(&TransportFailure::Denied),
            CompletionError::Internal(m) if m.contains("allowed outbound host")
        ));
        assert!(matches!(
            transport_error(&TransportFailure::TimedOut),
            CompletionError::UpstreamUnavailable(_)
        ));
        assert_eq!(
            transport_error(&TransportFailure::Unreachable("connection refused".into())),
            CompletionError::UpstreamUnavailable(
                "the upstream is unreachable: connection refused".into()
            )
        );
    }
}
