//! Mapping the service's failures onto `retrieval-error`, and when one retry is worth it.
//!
//! Text taken from the service goes through [`sanitize`]: the API key is redacted should
//! it be echoed, control characters become spaces, and it is bounded. For 401/403 the
//! service's text is not used at all.

use crate::config::Auth;
pub use chatgate_guest::TransportFailure;
use chatgate_guest::identity::{FetchFailure, TokenFailure};
use chatgate_guest::retry_after;
use chatgate_guest::token_source::TokenSource;
use chatgate_rag::retriever::{FilterRefusal, RetrievalError};
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
    match retry_after.and_then(|text| retry_after::delay_ms(text, now_unix_ms)) {
        Some(ms) if ms > MAX_RETRY_DELAY_MS => None,
        Some(ms) => Some(ms),
        None => Some(DEFAULT_RETRY_DELAY_MS),
    }
}

/// What a non-2xx answer said: its status, its `Retry-After` and its (possibly
/// truncated) body.
#[derive(Debug, Clone, Copy)]
pub struct FailedAnswer<'a> {
    pub status: u16,
    pub retry_after: Option<&'a str>,
    pub body: &'a [u8],
}

/// The error for a non-2xx answer received at `now_unix_ms`; `secret` is the
/// credential that was sent.
pub fn error_for_status(
    answer: FailedAnswer<'_>,
    now_unix_ms: u64,
    secret: &str,
    auth: &Auth,
) -> RetrievalError {
    let FailedAnswer { status, body, .. } = answer;
    let detail = service_message(body, secret);
    let with_detail = |summary: String| match &detail {
        Some(detail) => format!("{summary}: {detail}"),
        None => summary,
    };
    match status {
        // The caller shapes only the words and the filter; the words cannot make a
        // simple query invalid, so a 400 not about `$filter` is about what this
        // component was configured to send (fields, semantic or vector settings).
        // The service does not say which filter, only why.
        400 if about_the_filter(body) => RetrievalError::InvalidFilter(FilterRefusal {
            field: None,
            message: detail.unwrap_or_else(|| "Azure AI Search refused the filter".into()),
        }),
        400 => RetrievalError::IndexUnavailable(with_detail(
            "Azure AI Search refused the request as configured (HTTP 400); check the azure_search_* field, semantic and vector settings".into(),
        )),
        401 | 403 => RetrievalError::Upstream(format!(
            "Azure AI Search refused the credentials (HTTP {status}); {}",
            match auth {
                Auth::ApiKey(_) => "check azure_search_api_key",
                Auth::Entra(_) =>
                    "the service must allow role-based access and the identity needs the Search Index Data Reader role on the index",
            }
        )),
        404 => RetrievalError::IndexUnavailable(with_detail(
            "Azure AI Search has no such index (HTTP 404); check azure_search_index".into(),
        )),
        // Throttling the caller can wait out, so it is told how long the service asked.
        429 => RetrievalError::RateLimited {
            retry_after_seconds: answer
                .retry_after
                .and_then(|text| retry_after::delay_ms(text, now_unix_ms))
                .map(retry_after::client_seconds),
        },
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

pub fn transport_error(failure: &TransportFailure) -> RetrievalError {
    match failure {
        TransportFailure::Denied => RetrievalError::IndexUnavailable(
            "the host denied the request; azure_search_origin must be an allowed outbound host of the component".into(),
        ),
        TransportFailure::TimedOut => {
            RetrievalError::Timeout("Azure AI Search did not answer in time".into())
        }
        TransportFailure::Unreachable(reason) => {
            RetrievalError::Upstream(format!("Azure AI Search is unreachable: {reason}"))
        }
    }
}

/// The error for a token from `source` that could not be had, `budget_ms` being what
/// the fetch was given. A refused identity, an unusable token file or a request the
/// host denies stays so until the configuration changes (`index-unavailable`); a
/// failing endpoint may recover.
pub fn token_error(failure: FetchFailure, budget_ms: u64, source: &TokenSource) -> RetrievalError {
    let endpoint = source.endpoint();
    let origin_variable = match source {
        TokenSource::Managed(_) => "azure_search_token_origin",
        TokenSource::Workload(_) => "azure_search_authority_host",
    };
    match failure {
        FetchFailure::Token(TokenFailure::Refused(message)) => {
            RetrievalError::IndexUnavailable(message)
        }
        FetchFailure::Token(TokenFailure::Unavailable(message)) => {
            RetrievalError::Upstream(message)
        }
        FetchFailure::Transport(TransportFailure::Denied) => {
            RetrievalError::IndexUnavailable(format!(
                "the host denied the token request; {origin_variable} must be an allowed outbound host of the component"
            ))
        }
        FetchFailure::TimedOut | FetchFailure::Transport(TransportFailure::TimedOut) => {
            RetrievalError::Timeout(format!("{endpoint} did not answer within {budget_ms} ms"))
        }
        FetchFailure::Transport(TransportFailure::Unreachable(reason)) => {
            RetrievalError::Upstream(format!("{endpoint} is unreachable: {reason}"))
        }
        FetchFailure::Unbuildable => {
            RetrievalError::IndexUnavailable("could not build the token request".into())
        }
        FetchFailure::Unreadable => {
            RetrievalError::Upstream(format!("{endpoint}'s answer could not be read"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;

    const KEY: &str = "admin-key-123";

    /// 2015-10-21T07:28:00Z, the date in the RFC 9110 example.
    const NOW_MS: u64 = 1_445_412_480_000;

    fn error_for_status(status: u16, body: &[u8], secret: &str) -> RetrievalError {
        throttled(status, None, body, secret)
    }

    fn throttled(
        status: u16,
        retry_after: Option<&str>,
        body: &[u8],
        secret: &str,
    ) -> RetrievalError {
        let answer = FailedAnswer {
            status,
            retry_after,
            body,
        };
        super::error_for_status(
            answer,
            NOW_MS,
            secret,
            &Auth::ApiKey(ApiKey::new(KEY.into())),
        )
    }

    fn azure_error(message: &str) -> Vec<u8> {
        serde_json::json!({"error": {"code": "", "message": message}})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_bad_filter_is_a_refused_filter_carrying_the_services_reason() {
        let error = error_for_status(
            400,
            &azure_error(
                "Invalid expression: Could not find a property named 'author'.\r\nParameter name: $filter",
            ),
            KEY,
        );
        assert_eq!(
            error,
            RetrievalError::InvalidFilter(FilterRefusal {
                field: None,
                message: "Invalid expression: Could not find a property named 'author'.  Parameter name: $filter".into()
            })
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
    fn server_errors_are_upstream_failures_with_the_key_redacted() {
        let error = error_for_status(503, &azure_error(&format!("overloaded, key {KEY}")), KEY);
        assert_eq!(
            error,
            RetrievalError::Upstream(
                "Azure AI Search answered HTTP 503: overloaded, key [redacted]".into()
            )
        );
        assert!(
            matches!(error_for_status(500, b"", KEY), RetrievalError::Upstream(m) if m == "Azure AI Search answered HTTP 500")
        );
    }

    #[test]
    fn long_service_messages_are_cut() {
        let long = format!("{}\r\nParameter name: $filter", "x".repeat(1000));
        let RetrievalError::InvalidFilter(FilterRefusal { message, .. }) =
            error_for_status(400, &azure_error(&long), KEY)
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
    fn throttling_is_rate_limited_with_the_delay_the_service_asked_for() {
        assert_eq!(
            throttled(429, Some("7"), &azure_error("Too many requests"), KEY),
            RetrievalError::RateLimited {
                retry_after_seconds: Some(7)
            }
        );
        assert_eq!(
            throttled(429, Some("Wed, 21 Oct 2015 07:28:02 GMT"), b"", KEY),
            RetrievalError::RateLimited {
                retry_after_seconds: Some(2)
            }
        );
        // "Retry now" is still told as a second, so that a client cannot spin.
        assert_eq!(
            throttled(429, Some("0"), b"", KEY),
            RetrievalError::RateLimited {
                retry_after_seconds: Some(1)
            }
        );
        for unusable in [None, Some("soon")] {
            assert_eq!(
                throttled(429, unusable, b"", KEY),
                RetrievalError::RateLimited {
                    retry_after_seconds: None
                }
            );
        }
        // A 503 with Retry-After is an outage, not throttling of this caller.
        assert!(matches!(
            throttled(503, Some("7"), b"", KEY),
            RetrievalError::Upstream(_)
        ));
    }

    #[test]
    fn transport_failures_name_their_cause() {
        assert!(
            matches!(transport_error(&TransportFailure::Denied), RetrievalError::IndexUnavailable(m) if m.contains("allowed outbound host"))
        );
        assert!(
            matches!(transport_error(&TransportFailure::TimedOut), RetrievalError::Timeout(m) if m.contains("in time"))
        );
    }

    #[test]
    fn refused_tokens_point_at_role_assignments_not_at_a_key() {
        let identity = Auth::Entra(chatgate_guest::entra_identity::EntraIdentity::Managed {
            token_origin: "http://169.254.169.254".into(),
            client_id: None,
        });
        let body = azure_error("Forbidden eyJ0.x.y");
        let answer = FailedAnswer {
            status: 403,
            retry_after: None,
            body: &body,
        };
        let RetrievalError::Upstream(message) =
            super::error_for_status(answer, NOW_MS, "eyJ0.x.y", &identity)
        else {
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
        let managed = TokenSource::Managed(chatgate_guest::identity::ManagedIdentity {
            token_origin: "http://169.254.169.254",
            client_id: None,
            resource: crate::config::TOKEN_RESOURCE,
            cache_owner: "retrieval-azure-search",
            client_id_variable: "azure_search_client_id",
        });
        let token_error = |failure, budget| super::token_error(failure, budget, &managed);
        assert_eq!(
            token_error(
                FetchFailure::Token(TokenFailure::Refused("identity not found".into())),
                10
            ),
            RetrievalError::IndexUnavailable("identity not found".into())
        );
        assert_eq!(
            token_error(
                FetchFailure::Token(TokenFailure::Unavailable("HTTP 503".into())),
                10
            ),
            RetrievalError::Upstream("HTTP 503".into())
        );
        assert!(matches!(
            token_error(FetchFailure::Transport(TransportFailure::Denied), 10),
            RetrievalError::IndexUnavailable(m) if m.contains("azure_search_token_origin")
        ));
        // The guest's timer and the host's timeout read the same.
        for timed_out in [
            FetchFailure::TimedOut,
            FetchFailure::Transport(TransportFailure::TimedOut),
        ] {
            assert_eq!(
                token_error(timed_out, 250),
                RetrievalError::Timeout(
                    "the managed identity endpoint did not answer within 250 ms".into()
                )
            );
        }
        assert!(matches!(
            token_error(
                FetchFailure::Transport(TransportFailure::Unreachable("connection refused".into())),
                10
            ),
            RetrievalError::Upstream(m) if m.ends_with("unreachable: connection refused")
        ));
        assert!(matches!(
            token_error(FetchFailure::Unbuildable, 10),
            RetrievalError::IndexUnavailable(_)
        ));
        assert!(matches!(
            token_error(FetchFailure::Unreadable, 10),
            RetrievalError::Upstream(m) if m.contains("could not be read")
        ));
    }

    #[test]
    fn workload_identity_failures_name_entra_and_its_variables() {
        use chatgate_guest::workload_identity::{WorkloadIdentity, WorkloadVariables};
        let identity = WorkloadIdentity {
            authority_host: "https://login.microsoftonline.com",
            tenant_id: "contoso.onmicrosoft.com",
            client_id: "client-a",
            token_file: "/var/run/secrets/azure/tokens/azure-identity-token",
            resource: crate::config::TOKEN_RESOURCE,
            cache_owner: "retrieval-azure-search",
            variables: WorkloadVariables {
                authority_host: "azure_search_authority_host",
                tenant_id: "azure_search_tenant_id",
                client_id: "azure_search_client_id",
                token_file: "azure_search_token_file",
            },
        };
        assert_eq!(identity.scope(), "https://search.azure.com/.default");
        let source = TokenSource::Workload(identity);
        assert!(matches!(
            token_error(FetchFailure::Token(identity.unreadable_file("no such file")), 10, &source),
            RetrievalError::IndexUnavailable(m) if m.contains("azure_search_token_file")
        ));
        assert_eq!(
            token_error(FetchFailure::TimedOut, 250, &source),
            RetrievalError::Timeout(
                "the Entra ID token endpoint did not answer within 250 ms".into()
            )
        );
        assert!(matches!(
            token_error(FetchFailure::Transport(TransportFailure::Denied), 10, &source),
            RetrievalError::IndexUnavailable(m) if m.contains("azure_search_authority_host")
        ));
    }
}
