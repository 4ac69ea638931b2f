//! The OpenAI error object, the one shape of every error answer chatgate's components
//! make themselves (the host's own answers have it too, in `host/src/openai_error.rs`):
//! `{"error": {"message", "type", "param", "code"}}`, which OpenAI's SDKs parse.

/// `type` of an error the client can fix.
pub const INVALID_REQUEST: &str = "invalid_request_error";
/// `type` of an error on the service's side.
pub const SERVER_ERROR: &str = "server_error";
/// `type` of a refusal to go faster.
pub const RATE_LIMIT: &str = "rate_limit_error";

/// The error object; `param` names the request parameter at fault, when one is.
pub fn error_json(
    message: &str,
    error_type: &str,
    param: Option<&str>,
    code: &str,
) -> serde_json::Value {
    serde_json::json!({
        "error": {"message": message, "type": error_type, "param": param, "code": code}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_has_the_four_openai_fields() {
        assert_eq!(
            error_json(
                "too hot",
                INVALID_REQUEST,
                Some("temperature"),
                "invalid_value"
            ),
            serde_json::json!({"error": {
                "message": "too hot", "type": "invalid_request_error",
                "param": "temperature", "code": "invalid_value"
            }})
        );
        assert_eq!(
            error_json("busy", SERVER_ERROR, None, "overloaded")["error"]["param"],
            serde_json::Value::Null
        );
    }
}
