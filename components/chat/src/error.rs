//! OpenAI-style error responses and the mapping from dependency failures to HTTP.

use crate::domain::{CompletionFailure, RetrievalFailure};

pub use chatgate_guest::openai_error::{INVALID_REQUEST, RATE_LIMIT, SERVER_ERROR};

/// Longest provider-supplied text we pass on to clients; provider messages can
/// embed whole upstream bodies, which are not ours to forward.
const MAX_FORWARDED_MESSAGE_CHARS: usize = 200;

/// An error answer: HTTP status, extra headers and the OpenAI error object.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    pub status: u16,
    pub message: String,
    pub error_type: &'static str,
    pub param: Option<String>,
    pub code: &'static str,
    pub headers: Vec<(&'static str, String)>,
}

impl ApiError {
    pub fn new(
        status: u16,
        error_type: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            message: message.into(),
            error_type,
            param: None,
            code,
            headers: Vec::new(),
        }
    }

    /// A 400 about one request field.
    pub fn invalid(
        param: impl Into<String>,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self::new(400, INVALID_REQUEST, code, message).with_param(param)
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn not_found(path: &str) -> Self {
        Self::new(
            404,
            INVALID_REQUEST,
            "not_found",
            format!("Unknown path '{}'.", clip(path)),
        )
    }

    pub fn method_not_allowed(method: &str, allow: &'static str) -> Self {
        Self::new(
            405,
            INVALID_REQUEST,
            "method_not_allowed",
            format!("Method {} is not allowed here; use {allow}.", clip(method)),
        )
        .with_header("allow", allow)
    }

    pub fn model_not_found(model: &str) -> Self {
        Self::new(
            404,
            INVALID_REQUEST,
            "model_not_found",
            format!("The model '{}' does not exist.", clip(model)),
        )
        .with_param("model")
    }

    /// Azure OpenAI's answer for a deployment that does not exist.
    pub fn deployment_not_found(deployment: &str) -> Self {
        Self::new(
            404,
            INVALID_REQUEST,
            "DeploymentNotFound",
            format!(
                "The API deployment for this resource does not exist: '{}'.",
                clip(deployment)
            ),
        )
    }

    pub fn body_too_large(limit_bytes: usize) -> Self {
        Self::new(
            413,
            INVALID_REQUEST,
            "request_too_large",
            format!("The request body exceeds {limit_bytes} bytes."),
        )
    }

    /// The operator set a variable to something unusable; the client cannot fix that.
    pub fn misconfigured(variable: &str, problem: &str) -> Self {
        Self::new(
            500,
            SERVER_ERROR,
            "configuration_error",
            format!("The chat service is misconfigured: variable '{variable}' {problem}."),
        )
    }

    /// The JSON error object (`{"error":{...}}`).
    pub fn to_json(&self) -> serde_json::Value {
        chatgate_guest::openai_error::error_json(
            &self.message,
            self.error_type,
            self.param.as_deref(),
            self.code,
        )
    }

    pub fn body(&self) -> String {
        self.to_json().to_string()
    }
}

impl From<CompletionFailure> for ApiError {
    fn from(failure: CompletionFailure) -> Self {
        match failure {
            CompletionFailure::RateLimited {
                retry_after_seconds,
                ..
            } => ApiError::new(
                429,
                RATE_LIMIT,
                "rate_limit_exceeded",
                format!(
                    "The language model is rate limited; retry after {retry_after_seconds} seconds."
                ),
            )
            .with_header("retry-after", retry_after_seconds.to_string()),
            CompletionFailure::UpstreamUnavailable(_) => ApiError::new(
                503,
                SERVER_ERROR,
                "upstream_unavailable",
                "The language model is unavailable; retry later.",
            ),
            CompletionFailure::Timeout(_) => ApiError::new(
                504,
                SERVER_ERROR,
                "upstream_timeout",
                "The language model did not answer in time; retry later.",
            ),
            CompletionFailure::InvalidRequest { message, param } => {
                let error = ApiError::new(
                    400,
                    INVALID_REQUEST,
                    "invalid_request",
                    format!(
                        "The language model rejected the request: {}",
                        clip(&message)
                    ),
                );
                match param {
                    Some(param) => error.with_param(clip(&param)),
                    None => error,
                }
            }
            // Our own credential for the provider is wrong: a gateway fault, and the
            // provider's text may quote part of the key, so none of it is forwarded.
            CompletionFailure::Unauthorized(_) => ApiError::new(
                502,
                SERVER_ERROR,
                "upstream_unauthorized",
                "The chat service could not authenticate with the language model.",
            ),
            CompletionFailure::ContentFiltered(reason) => ApiError::new(
                400,
                INVALID_REQUEST,
                "content_filter",
                format!("The content filter rejected the request: {}", clip(&reason)),
            ),
            CompletionFailure::Internal(_) => ApiError::new(
                502,
                SERVER_ERROR,
                "upstream_error",
                "The language model returned an unusable answer.",
            ),
        }
    }
}

impl From<RetrievalFailure> for ApiError {
    fn from(failure: RetrievalFailure) -> Self {
        match failure {
            RetrievalFailure::InvalidQuery(reason) => ApiError::invalid(
                "messages",
                "invalid_query",
                format!(
                    "The latest user message cannot be used as a search query: {}",
                    clip(&reason)
                ),
            ),
            RetrievalFailure::InvalidFilter(refusal) => ApiError::invalid(
                "chatgate.filters",
                "invalid_filter",
                format!(
                    "'chatgate.filters' cannot be applied: {}",
                    clip(&refusal.message)
                ),
            ),
            // The retriever's reason goes to the gateway log (see `wasm::retrieve`), not
            // to clients: it describes the deployment, not the request.
            RetrievalFailure::IndexUnavailable(_) => ApiError::new(
                503,
                SERVER_ERROR,
                "retrieval_unavailable",
                "The document index is unavailable; the gateway log says why.",
            ),
            RetrievalFailure::Upstream(_) => ApiError::new(
                503,
                SERVER_ERROR,
                "retrieval_unavailable",
                "The document index is unavailable; retry later.",
            ),
            RetrievalFailure::RateLimited {
                retry_after_seconds: Some(seconds),
            } => ApiError::new(
                429,
                RATE_LIMIT,
                "rate_limit_exceeded",
                format!("The document index is rate limited; retry after {seconds} seconds."),
            )
            .with_header("retry-after", seconds.to_string()),
            RetrievalFailure::RateLimited {
                retry_after_seconds: None,
            } => ApiError::new(
                429,
                RATE_LIMIT,
                "rate_limit_exceeded",
                "The document index is rate limited; retry later.",
            ),
            RetrievalFailure::Timeout(_) => ApiError::new(
                504,
                SERVER_ERROR,
                "retrieval_timeout",
                "The document index did not answer in time; retry later.",
            ),
        }
    }
}

/// `text` made safe to echo: control characters become spaces and it is cut to a
/// bounded length.
pub fn clip(text: &str) -> String {
    let mut clipped: String = text
        .trim()
        .chars()
        .take(MAX_FORWARDED_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.trim().chars().count() > MAX_FORWARDED_MESSAGE_CHARS {
        clipped.push('…');
    }
    clipped
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_rag::retriever::FilterRefusal;

    fn header<'a>(error: &'a ApiError, name: &str) -> Option<&'a str> {
        error
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn error_body_has_the_openai_shape() {
        let error = ApiError::invalid("temperature", "invalid_value", "too hot");
        let body: serde_json::Value = serde_json::from_str(&error.body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {
                "message": "too hot",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": "invalid_value"
            }})
        );
    }

    #[test]
    fn rate_limit_becomes_429_with_retry_after() {
        let error = ApiError::from(CompletionFailure::RateLimited {
            retry_after_seconds: 17,
            message: "slow down".into(),
        });
        assert_eq!(error.status, 429);
        assert_eq!(error.code, "rate_limit_exceeded");
        assert_eq!(header(&error, "retry-after"), Some("17"));
    }

    #[test]
    fn provider_outage_is_503() {
        let error = ApiError::from(CompletionFailure::UpstreamUnavailable(
            "connect refused".into(),
        ));
        assert_eq!(error.status, 503);
        assert!(!error.message.contains("connect refused"));
    }

    #[test]
    fn provider_timeout_is_504() {
        let error = ApiError::from(CompletionFailure::Timeout("no first byte in 30 s".into()));
        assert_eq!((error.status, error.code), (504, "upstream_timeout"));
        assert!(!error.message.contains("30 s"));
    }

    #[test]
    fn provider_rejecting_the_request_is_the_clients_400() {
        let error = ApiError::from(CompletionFailure::InvalidRequest {
            message: "context too long".into(),
            param: None,
        });
        assert_eq!(error.status, 400);
        assert_eq!(error.error_type, INVALID_REQUEST);
        assert!(error.message.contains("context too long"));
        assert_eq!(error.param, None);
    }

    #[test]
    fn the_parameter_the_provider_refused_is_named() {
        let error = ApiError::from(CompletionFailure::InvalidRequest {
            message: "json_object is not supported".into(),
            param: Some("response_format".into()),
        });
        assert_eq!(error.param.as_deref(), Some("response_format"));
    }

    #[test]
    fn bad_provider_credential_is_502_and_not_forwarded() {
        let error = ApiError::from(CompletionFailure::Unauthorized(
            "Incorrect API key provided: sk-abc***xyz".into(),
        ));
        assert_eq!(error.status, 502);
        assert_eq!(error.error_type, SERVER_ERROR);
        assert!(!error.message.contains("sk-"));
    }

    #[test]
    fn content_filter_is_400_content_filter() {
        let error = ApiError::from(CompletionFailure::ContentFiltered("hate: high".into()));
        assert_eq!(error.status, 400);
        assert_eq!(error.code, "content_filter");
    }

    #[test]
    fn provider_internal_failure_is_502_without_details() {
        let error = ApiError::from(CompletionFailure::Internal(
            "<html>stack trace</html>".into(),
        ));
        assert_eq!(error.status, 502);
        assert!(!error.message.contains("stack trace"));
    }

    #[test]
    fn retrieval_failures_map_to_400_or_503() {
        let invalid = ApiError::from(RetrievalFailure::InvalidQuery("empty".into()));
        assert_eq!(
            (invalid.status, invalid.param.as_deref()),
            (400, Some("messages"))
        );
        for failure in [
            RetrievalFailure::IndexUnavailable("missing file".into()),
            RetrievalFailure::Upstream("search 500".into()),
        ] {
            let error = ApiError::from(failure);
            assert_eq!(error.status, 503);
            assert_eq!(error.code, "retrieval_unavailable");
        }
    }

    #[test]
    fn a_refused_filter_is_the_clients_400_on_chatgate_filters() {
        let error = ApiError::from(RetrievalFailure::InvalidFilter(FilterRefusal {
            field: Some("colour".into()),
            message: "unknown filter field `colour`".into(),
        }));
        let body = error.to_json();
        assert_eq!(error.status, 400);
        assert_eq!(body["error"]["param"], "chatgate.filters");
        assert_eq!(body["error"]["type"], INVALID_REQUEST);
        assert_eq!(body["error"]["code"], "invalid_filter");
        assert!(error.message.contains("`colour`"), "{}", error.message);
    }

    #[test]
    fn a_throttled_index_is_429_with_the_delay_it_asked_for() {
        let error = ApiError::from(RetrievalFailure::RateLimited {
            retry_after_seconds: Some(12),
        });
        assert_eq!((error.status, error.error_type), (429, RATE_LIMIT));
        assert_eq!(error.code, "rate_limit_exceeded");
        assert_eq!(header(&error, "retry-after"), Some("12"));
        let untold = ApiError::from(RetrievalFailure::RateLimited {
            retry_after_seconds: None,
        });
        assert_eq!(untold.status, 429);
        assert_eq!(header(&untold, "retry-after"), None);
    }

    #[test]
    fn an_index_past_its_deadline_is_504_without_the_reason() {
        let error = ApiError::from(RetrievalFailure::Timeout(
            "Azure AI Search did not answer within 300 ms".into(),
        ));
        assert_eq!((error.status, error.code), (504, "retrieval_timeout"));
        assert_eq!(error.error_type, SERVER_ERROR);
        assert!(!error.message.contains("300 ms"), "{}", error.message);
    }

    #[test]
    fn forwarded_provider_text_is_bounded_and_single_line() {
        let long = format!("line one\nline two {}", "x".repeat(1000));
        let error = ApiError::from(CompletionFailure::InvalidRequest {
            message: long,
            param: None,
        });
        assert!(!error.message.contains('\n'));
        assert!(error.message.chars().count() < 300);
    }

    #[test]
    fn oversized_body_is_413() {
        let error = ApiError::body_too_large(1024);
        assert_eq!((error.status, error.code), (413, "request_too_large"));
        assert!(error.message.contains("1024"));
    }

    #[test]
    fn method_not_allowed_names_the_allowed_method() {
        let error = ApiError::method_not_allowed("DELETE", "POST");
        assert_eq!(error.status, 405);
        assert_eq!(header(&error, "allow"), Some("POST"));
    }
}
