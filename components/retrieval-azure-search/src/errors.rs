//! Mapping the service's failures onto `retrieval-error`, and when one retry is worth it.
//!
//! Text taken from the service goes through [`sanitize`]: the API key is redacted should
//! it be echoed, control characters become spaces, and it is bounded. For 401/403 the
//! service's text is not used at all.

use crate::RetrievalError;
use crate::config::Auth;
use chatgate_guest::identity::TokenFailure;
use serde_json::Value;

pub use chatgate_guest::{MAX_MESSAGE_CHARS, sanitize};
/// The longest `Retry-After` a call waits out before its single retry; a longer one
/// fails the call at once, since `chat` is waiting.
pub const MAX_RETRY_DELAY_MS: u64 = 2000;
/// The pause before the retry when the service named none.
pub const DEFAULT_RETRY_DELAY_MS: u64 = 250;

/// After a first attempt answered `status`, how long to wait before the one retry,
/// or `None` if it is not retried. Only 429 and 503 are: Azure AI Search uses them for
/// throttling and transient overload; other failures would fail again.
pub fn retry_delay_ms(status: u16, retry_after: Option<&str>, now_unix_ms: u64) -> Option<u64> {
    if !matches!(status, 429 | 503) {
        return None;
    }
    match retry_after.and_then(|text| requested_delay_ms(text, now_unix_ms)) {
        Some(ms) if ms > MAX_RETRY_DELAY_MS => None,
        Some(ms) => Some(ms),
        None => Some(DEFAULT_RETRY_DELAY_MS),
    }
}

/// `Retry-After` (RFC 9110) as delta-seconds or an HTTP-date, in milliseconds from
/// `now_unix_ms` (a past date asks for no delay). `None` when unusable.
pub fn requested_delay_ms(text: &str, now_unix_ms: u64) -> Option<u64> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return Some(text.parse::<u64>().unwrap_or(u64::MAX).saturating_mul(1000));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    let date_ms = date.duration_since(std::time::UNIX_EPOCH).ok()?.as_millis();
    Some(
        u64::try_from(date_ms)
            .unwrap_or(u64::MAX)
            .saturating_sub(now_unix_ms),
    )
}

/// The error for a non-2xx answer; `body` is the (possibly truncated) error body and
/// `secret` the credential that was sent.
pub fn error_for_status(status: u16, body: &[u8], secret: &str, auth: &Auth) -> RetrievalError {
    let detail = service_message(body, secret);
    let with_detail = |summary: String| match &detail {
        Some(detail) => format!("{summary}: {detail}"),
        None => summary,
    };
    match status {
        // The caller shapes only the words and the filter; the words cannot make a
        // simple query invalid, so a 400 not about `$filter` is about what this
        // component was configured to send (fields, semantic or vector settings).
        400 if about_the_filter(body) => RetrievalError::InvalidQuery(detail.unwrap_or_default()),
        400 => RetrievalError::IndexUnavailable(with_detail(
            "Azure AI Search refused the request as configured (HTTP 400); check the azure_search_* field, semantic and vector settings".into(),
        )),
        401 | 403 => RetrievalError::Upstream(format!(
            "Azure AI Search refused the credentials (HTTP {status}); {}",
            match auth {
                Auth::ApiKey(_) => "check azure_search_api_key",
                Auth::ManagedIdentity { .. } =>
                    "the service must allow role-based access and the identity needs the Search Index Data Reader role on the index",
            }
        )),
        404 => RetrievalError::IndexUnavailable(with_detail(
            "Azure AI Search has no such index (HTTP 404); check azure_search_index".into(),
        )),
        429 => RetrievalError::Upstream(with_detail(
            "Azure AI Search is throttling requests (HTTP 429)".into(),
        )),
        _ => RetrievalError::Upstream(with_detail(format!(
            "Azure AI Search answered HTTP {status}"
        ))),
    }
}

/// `error.message` of Azure's `{"error": {"code", "message"}}` body, as sent.
fn raw_service_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get("message")?.as_str()?.to_string())
}

/// `error.message`, sanitized.
fn service_message(body: &[u8], secret: &str) -> Option<String> {
    let message = sanitize(&raw_service_message(body)?, Some(secret));
    (!message.is_empty()).then_some(message)
}

/// Azure ends a filter's parse error with `Parameter name: $filter`, after quoting the
/// filter, so the whole message is searched, not the shortened one.
fn about_the_filter(body: &[u8]) -> bool {
    raw_service_message(body).is_some_and(|message| message.contains("$filter"))
}

/// Why the request got no answer at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// The host refused the request: the origin is not an allowed outbound host.
    Denied,
    TimedOut,
    Unreachable(String),
}

pub fn transport_error(failure: &TransportFailure) -> RetrievalError {
    match failure {
        TransportFailure::Denied => RetrievalError::IndexUnavailable(
            "the host denied the request; azure_search_origin must be an allowed outbound host of the component".into(),
        ),
        TransportFailure::TimedOut => {
            RetrievalError::Upstream("Azure AI Search did not answer in time".into())
        }
        TransportFailure::Unreachable(reason) => {
            RetrievalError::Upstream(format!("Azure AI Search is unreachable: {reason}"))
        }
    }
}

/// The error for a token that could not be had. A refused identity will stay refused
/// until the configuration changes; a failing endpoint may recover.
pub fn token_failure(failure: TokenFailure) -> RetrievalError {
    match failure {
        TokenFailure::Refused(message) => RetrievalError::IndexUnavailable(message),
        TokenFailure::Unavailable(message) => RetrievalError::Upstream(message),
    }
}

/// The error for a token request that got no answer.
pub fn token_transport_error(failure: &TransportFailure, budget_ms: u64) -> RetrievalError {
    match failure {
        TransportFailure::Denied => RetrievalError::IndexUnavailable(
            "the host denied the token request; azure_search_token_origin must be an allowed outbound host of the component".into(),
        ),
        TransportFailure::TimedOut => RetrievalError::Upstream(format!(
            "the managed identity endpoint did not answer within {budget_ms} ms"
        )),
        TransportFailure::Unreachable(reason) => RetrievalError::Upstream(format!(
            "the managed identity endpoint is unreachable: {reason}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;

    const KEY: &str = "admin-key-123";

    fn error_for_status(status: u16, body: &[u8], secret: &str) -> RetrievalError {
        super::error_for_status(status, body, secret, &Auth::ApiKey(ApiKey::new(KEY.into())))
    }

    fn azure_error(message: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": "", "message": message}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_bad_request_is_an_invalid_query_carrying_the_services_reason() {
        let error = error_for_status(
            400,
            &azure_error(
                "Invalid expression: Could not find a property named 'author'.\r\nParameter name: $filter",
            ),
            KEY,
        );
        assert_eq!(
            error,
            RetrievalError::InvalidQuery(
                "Invalid expression: Could not find a property named 'author'.  Parameter name: $filter".into()
            )
        );
    }

    #[test]
    fn a_bad_request_not_about_the_filter_is_a_misconfiguration() {
        let RetrievalError::IndexUnavailable(message) = error_for_status(
            400,
            &azure_error("Unknown field 'titleVector' in vector field list."),
            KEY,
        ) else {
            panic!("a vector field the index lacks is not the caller's fault");
        };
        assert!(
            message.contains("as configured")
                && message.ends_with("Unknown field 'titleVector' in vector field list."),
            "{message}"
        );
        assert!(matches!(
            error_for_status(400, b"<html>bad</html>", KEY),
            RetrievalError::IndexUnavailable(m) if m.contains("HTTP 400")
        ));
    }

    #[test]
    fn refused_credentials_never_quote_the_service_or_the_key() {
        for status in [401, 403] {
            let error =
                error_for_status(status, &azure_error(&format!("key {KEY} is invalid")), KEY);
            let RetrievalError::Upstream(message) = error else {
                panic!("{status} must be an upstream failure");
            };
            assert!(message.contains("refused the credentials"), "{message}");
            assert!(
                !message.contains(KEY) && !message.contains("is invalid"),
                "{message}"
            );
        }
    }

    #[test]
    fn a_missing_index_is_index_unavailable() {
        let error = error_for_status(
            404,
            &azure_error("The index 'handbook' for service 'x' was not found."),
            KEY,
        );
        let RetrievalError::IndexUnavailable(message) = error else {
            panic!("404 must be index-unavailable");
        };
        assert!(
            message.contains("azure_search_index") && message.contains("was not found"),
            "{message}"
        );
    }

    #[test]
    fn throttling_and_server_errors_are_upstream_failures_with_the_key_redacted() {
        let error = error_for_status(503, &azure_error(&format!("overloaded, key {KEY}")), KEY);
        assert_eq!(
            error,
            RetrievalError::Upstream(
                "Azure AI Search answered HTTP 503: overloaded, key [redacted]".into()
            )
        );
        assert!(
            matches!(error_for_status(429, b"", KEY), RetrievalError::Upstream(m) if m.contains("429"))
        );
        assert!(
            matches!(error_for_status(500, b"", KEY), RetrievalError::Upstream(m) if m == "Azure AI Search answered HTTP 500")
        );
    }

    #[test]
    fn long_service_messages_are_cut() {
        let long = format!("{}\r\nParameter name: $filter", "x".repeat(1000));
        let RetrievalError::InvalidQuery(message) = error_for_status(400, &azure_error(&long), KEY)
        else {
            panic!();
        };
        assert_eq!(message.chars().count(), MAX_MESSAGE_CHARS);
        assert!(message.ends_with('…'));
    }

    #[test]
    fn only_throttling_and_unavailability_are_retried_within_two_seconds() {
        assert_eq!(retry_delay_ms(429, None, 0), Some(DEFAULT_RETRY_DELAY_MS));
        assert_eq!(retry_delay_ms(503, Some("1"), 0), Some(1000));
        assert_eq!(retry_delay_ms(503, Some("2"), 0), Some(2000));
        assert_eq!(retry_delay_ms(429, Some("3"), 0), None);
        assert_eq!(
            retry_delay_ms(429, Some("soon"), 0),
            Some(DEFAULT_RETRY_DELAY_MS)
        );
        for status in [400, 401, 403, 404, 500, 502, 504] {
            assert_eq!(retry_delay_ms(status, Some("1"), 0), None, "{status}");
        }
    }

    #[test]
    fn retry_after_dates_count_from_now() {
        let now_ms = 1_445_412_480_000; // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            requested_delay_ms("Wed, 21 Oct 2015 07:28:01 GMT", now_ms),
            Some(1000)
        );
        assert_eq!(
            requested_delay_ms("Wed, 21 Oct 2015 07:27:00 GMT", now_ms),
            Some(0)
        );
        assert_eq!(requested_delay_ms("", now_ms), None);
        assert_eq!(
            requested_delay_ms("99999999999999999999999", now_ms),
            Some(u64::MAX)
        );
    }

    #[test]
    fn transport_failures_name_their_cause() {
        assert!(
            matches!(transport_error(&TransportFailure::Denied), RetrievalError::IndexUnavailable(m) if m.contains("allowed outbound host"))
        );
        assert!(
            matches!(transport_error(&TransportFailure::TimedOut), RetrievalError::Upstream(m) if m.contains("in time"))
        );
    }

    #[test]
    fn refused_tokens_point_at_role_assignments_not_at_a_key() {
        let identity = Auth::ManagedIdentity {
            token_origin: "http://169.254.169.254".into(),
            client_id: None,
        };
        let RetrievalError::Upstream(message) = super::error_for_status(
            403,
            &azure_error("Forbidden eyJ0.x.y"),
            "eyJ0.x.y",
            &identity,
        ) else {
            panic!("403 must be an upstream failure");
        };
        assert!(message.contains("Search Index Data Reader"), "{message}");
        assert!(
            !message.contains("api_key") && !message.contains("eyJ0"),
            "{message}"
        );
    }

    #[test]
    fn token_failures_say_whether_waiting_can_help() {
        assert_eq!(
            token_failure(TokenFailure::Refused("identity not found".into())),
            RetrievalError::IndexUnavailable("identity not found".into())
        );
        assert_eq!(
            token_failure(TokenFailure::Unavailable("HTTP 503".into())),
            RetrievalError::Upstream("HTTP 503".into())
        );
        assert!(matches!(
            token_transport_error(&TransportFailure::Denied, 10),
            RetrievalError::IndexUnavailable(m) if m.contains("azure_search_token_origin")
        ));
        assert_eq!(
            token_transport_error(&TransportFailure::TimedOut, 250),
            RetrievalError::Upstream(
                "the managed identity endpoint did not answer within 250 ms".into()
            )
        );
        assert!(matches!(
            token_transport_error(&TransportFailure::Unreachable("connection refused".into()), 10),
            RetrievalError::Upstream(m) if m.ends_with("unreachable: connection refused")
        ));
    }
}
