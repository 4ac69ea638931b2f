//! Mapping upstream failures (HTTP statuses, error bodies, transport failures, error
//! events inside a stream) onto `completion-error`.
//!
//! Every text taken from the upstream goes through [`sanitize`]: control characters
//! become spaces, the API key is redacted should the upstream echo it, and the result
//! is at most [`MAX_MESSAGE_CHARS`] characters. For 401/403 the upstream's text is not
//! used at all, because providers quote (masked) keys there.

use chatgate_rag::completion::CompletionError;
use serde_json::Value;

use chatgate_guest::retry_after;
pub use chatgate_guest::{MAX_MESSAGE_CHARS, TransportFailure, sanitize};
const DEFAULT_RETRY_AFTER_SECONDS: u32 = 1;

/// The headers of a 429 (or 503) answer that tell when to retry.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryHeaders<'a> {
    /// `retry-after-ms` (OpenAI, Azure OpenAI): milliseconds, possibly fractional.
    pub retry_after_ms: Option<&'a str>,
    /// `Retry-After` (RFC 9110): delta-seconds or an HTTP-date.
    pub retry_after: Option<&'a str>,
}

/// The delay the upstream asked for, in milliseconds: `retry-after-ms` (rounded up),
/// else `Retry-After` as delta-seconds or as an HTTP-date compared with `now_unix_ms`
/// (a date in the past asks for no delay). `None` when neither header is usable.
pub fn requested_delay_ms(headers: RetryHeaders<'_>, now_unix_ms: u64) -> Option<u64> {
    let from_ms = headers.retry_after_ms.and_then(|text| {
        let ms: f64 = text.trim().parse().ok()?;
        // `as` saturates float-to-int conversions.
        (ms.is_finite() && ms >= 0.0).then(|| ms.ceil() as u64)
    });
    let from_retry_after = || retry_after::delay_ms(headers.retry_after?, now_unix_ms);
    from_ms.or_else(from_retry_after)
}

/// Whole seconds for a `rate-limited` error: the requested delay rounded up, else 1;
/// never 0, so that a caller honouring it cannot spin.
pub fn retry_after_seconds(requested_delay_ms: Option<u64>) -> u32 {
    requested_delay_ms.map_or(DEFAULT_RETRY_AFTER_SECONDS, retry_after::client_seconds)
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
    param: Option<String>,
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
                param: text(fields.get("param")),
            }),
            _ => None,
        }
    }

    /// An invalid request, naming the parameter the upstream blamed.
    fn invalid(&self, message: String) -> CompletionError {
        match &self.param {
            Some(param) => CompletionError::invalid_parameter(param.clone(), message),
            None => CompletionError::invalid_request(message),
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

/// The error for a non-2xx answer. `body` is the (possibly truncated) error body.
pub fn error_for_status(
    status: u16,
    requested_delay_ms: Option<u64>,
    body: &[u8],
    secret: Option<&str>,
) -> CompletionError {
    let upstream = UpstreamError::from_body(body).unwrap_or_default();
    let message = upstream.sanitized_message(secret);
    match status {
        429 => CompletionError::RateLimited {
            retry_after_seconds: retry_after_seconds(requested_delay_ms),
            message: message.unwrap_or_else(|| "the upstream is rate limiting requests".into()),
        },
        401 | 403 => CompletionError::Unauthorized(format!(
            "the upstream refused the credentials (HTTP {status}); check openai_api_key"
        )),
        400 | 404 | 413 | 422 if upstream.is_content_filter() => CompletionError::ContentFiltered(
            message.unwrap_or_else(|| "the upstream content filter rejected the prompt".into()),
        ),
        400 | 404 | 413 | 422 => upstream.invalid(
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
        upstream.invalid(message)
    } else {
        CompletionError::UpstreamUnavailable(message)
    }
}

pub fn transport_error(failure: &TransportFailure) -> CompletionError {
    match failure {
        TransportFailure::Denied => CompletionError::Internal(
            "the host denied the outbound request; openai_origin must be an allowed outbound host"
                .into(),
        ),
        TransportFailure::TimedOut => {
            CompletionError::Timeout("the upstream did not answer in time".into())
        }
        TransportFailure::Unreachable(what) => {
            CompletionError::UpstreamUnavailable(format!("the upstream is unreachable: {what}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// 2015-10-21T07:28:00Z, the date in the RFC 9110 example.
    const NOW_MS: u64 = 1_445_412_480_000;

    fn delay(ms: Option<&str>, retry_after: Option<&str>) -> Option<u64> {
        requested_delay_ms(
            RetryHeaders {
                retry_after_ms: ms,
                retry_after,
            },
            NOW_MS,
        )
    }

    #[test]
    fn retry_after_ms_wins_and_is_rounded_up() {
        assert_eq!(delay(Some("1500"), Some("9")), Some(1500));
        assert_eq!(delay(Some("20.5"), None), Some(21));
        assert_eq!(delay(Some("0"), None), Some(0));
    }

    #[test]
    fn retry_after_seconds_are_used_when_ms_is_absent_or_invalid() {
        assert_eq!(delay(None, Some("7")), Some(7000));
        assert_eq!(delay(Some("soon"), Some(" 12 ")), Some(12_000));
        assert_eq!(delay(Some("-5"), Some("3")), Some(3000));
        assert_eq!(delay(Some("NaN"), Some("4")), Some(4000));
    }

    #[test]
    fn retry_after_http_date_is_the_time_left_until_then() {
        assert_eq!(
            delay(None, Some("Wed, 21 Oct 2015 07:28:30 GMT")),
            Some(30_000)
        );
        // RFC 850 and asctime forms are HTTP-dates too.
        assert_eq!(
            delay(None, Some("Wednesday, 21-Oct-15 07:29:00 GMT")),
            Some(60_000)
        );
        assert_eq!(delay(None, Some("Wed Oct 21 07:28:01 2015")), Some(1000));
        assert_eq!(delay(None, Some("Tue, 20 Oct 2015 07:28:00 GMT")), Some(0));
    }

    #[test]
    fn unusable_retry_headers_ask_for_nothing() {
        assert_eq!(delay(None, Some("-3")), None);
        assert_eq!(delay(None, Some("")), None);
        assert_eq!(delay(None, Some("next tuesday")), None);
        assert_eq!(delay(None, None), None);
    }

    #[test]
    fn huge_retry_values_saturate() {
        assert_eq!(delay(None, Some("99999999999999999999999")), Some(u64::MAX));
        assert_eq!(delay(Some("1e300"), None), Some(u64::MAX));
        assert_eq!(retry_after_seconds(Some(u64::MAX)), u32::MAX);
    }

    #[test]
    fn rate_limit_seconds_round_up_and_are_never_zero() {
        assert_eq!(retry_after_seconds(Some(1500)), 2);
        assert_eq!(retry_after_seconds(Some(2000)), 2);
        assert_eq!(retry_after_seconds(Some(0)), 1);
        assert_eq!(retry_after_seconds(None), 1);
    }

    #[test]
    fn rate_limited_carries_retry_after_and_upstream_message() {
        let body = br#"{"error":{"message":"Rate limit reached for gpt-4o-mini","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            error_for_status(429, Some(2500), body, None),
            CompletionError::RateLimited {
                retry_after_seconds: 3,
                message: "Rate limit reached for gpt-4o-mini".into()
            }
        );
        assert_eq!(
            error_for_status(429, None, b"", None),
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
            match error_for_status(status, None, body, Some("sk-abcdefxyz")) {
                CompletionError::Unauthorized(message) => {
                    assert!(!message.contains("sk-"), "{message}");
                    assert!(message.contains(&status.to_string()));
                }
                other => panic!("expected unauthorized, got {other:?}"),
            }
        }
    }

    #[test]
    fn client_errors_pass_the_upstream_message_and_param_on() {
        let body = br#"{"error":{"message":"This model's maximum context length is 128000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
        for status in [400, 404, 422] {
            assert_eq!(
                error_for_status(status, None, body, None),
                CompletionError::invalid_parameter(
                    "messages",
                    "This model's maximum context length is 128000 tokens."
                )
            );
        }
        let without_param =
            br#"{"error":{"message":"Bad request.","type":"invalid_request_error","param":null}}"#;
        assert_eq!(
            error_for_status(400, None, without_param, None),
            CompletionError::invalid_request("Bad request.")
        );
    }

    #[test]
    fn client_error_without_openai_shape_names_the_status() {
        assert_eq!(
            error_for_status(404, None, b"<html>Not Found</html>", None),
            CompletionError::invalid_request("the upstream rejected the request (HTTP 404)")
        );
    }

    #[test]
    fn numeric_codes_and_string_errors_are_understood() {
        let llama_cpp = br#"{"error":{"code":400,"message":"context too long","type":"invalid_request_error"}}"#;
        assert_eq!(
            error_for_status(400, None, llama_cpp, None),
            CompletionError::invalid_request("context too long")
        );
        let plain = br#"{"error":"model 'llama9' not found"}"#;
        assert_eq!(
            error_for_status(404, None, plain, None),
            CompletionError::invalid_request("model 'llama9' not found")
        );
    }

    #[test]
    fn azure_content_filter_400_is_content_filtered() {
        let body = br#"{"error":{"message":"The response was filtered due to the prompt triggering Azure OpenAI's content management policy.","type":null,"param":"prompt","code":"content_filter","status":400,"innererror":{"code":"ResponsibleAIPolicyViolation","content_filter_result":{"hate":{"filtered":true,"severity":"high"}}}}}"#;
        match error_for_status(400, None, body, None) {
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
                error_for_status(status, None, b"", None),
                CompletionError::UpstreamUnavailable(_)
            ));
        }
        let body = br#"{"error":{"message":"The server had an error","type":"server_error"}}"#;
        assert_eq!(
            error_for_status(500, None, body, None),
            CompletionError::UpstreamUnavailable(
                "the upstream failed (HTTP 500): The server had an error".into()
            )
        );
    }

    #[test]
    fn unexpected_statuses_are_internal() {
        for status in [302, 409, 418] {
            assert_eq!(
                error_for_status(status, None, b"", None),
                CompletionError::Internal(format!("unexpected upstream status {status}"))
            );
        }
    }

    #[test]
    fn upstream_messages_are_trimmed_to_300_chars() {
        let long = "é".repeat(1000);
        let body = json!({"error": {"message": long}}).to_string();
        let error = error_for_status(400, None, body.as_bytes(), None);
        let message = error.message();
        assert_eq!(message.chars().count(), 300);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn echoed_api_key_and_control_characters_are_removed() {
        let body = json!({"error": {"message": "bad key sk-live-123\nfor org"}}).to_string();
        let error = error_for_status(422, None, body.as_bytes(), Some("sk-live-123"));
        assert_eq!(
            error,
            CompletionError::invalid_request("bad key [redacted] for org")
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
            CompletionError::invalid_request("bad stop")
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
            CompletionError::Timeout(_)
        ));
        assert_eq!(
            transport_error(&TransportFailure::Unreachable("connection refused".into())),
            CompletionError::UpstreamUnavailable(
                "the upstream is unreachable: connection refused".into()
            )
        );
    }
}
