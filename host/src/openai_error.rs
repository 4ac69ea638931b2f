//! The error body clients of the gateway read: OpenAI's shape,
//! `{"error": {"message", "type", "param", "code"}}`.
//!
//! The host answers some requests itself (refused by admission, a body too slow or too
//! large, a guest that failed), and OpenAI SDKs parse those answers as they parse the
//! components' own errors. The shape is an API contract rather than host machinery, so it
//! lives here, apart from the request dispatch that uses it.

/// The `type` of an error with `status`: OpenAI's `server_error` for 5xx, and
/// `invalid_request_error` otherwise.
pub fn kind(status: http::StatusCode) -> &'static str {
    if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    }
}

/// The JSON body of an error with `status`, machine-readable `code` and human `message`.
/// The host never blames a parameter, so `param` is always null.
pub fn body(status: http::StatusCode, code: &str, message: &str) -> serde_json::Value {
    serde_json::json!({
        "error": { "message": message, "type": kind(status), "param": null, "code": code }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_and_client_errors_have_openais_types() {
        let busy = body(http::StatusCode::SERVICE_UNAVAILABLE, "overloaded", "busy");
        assert_eq!(
            busy,
            serde_json::json!({"error": {
                "message": "busy", "type": "server_error", "param": null, "code": "overloaded"
            }})
        );
        let limited = body(http::StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow");
        assert_eq!(limited["error"]["type"], "invalid_request_error");
        assert_eq!(limited["error"]["code"], "rate_limited");
    }
}
