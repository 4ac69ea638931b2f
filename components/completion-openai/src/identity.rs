//! Entra ID access tokens for Azure OpenAI from a managed-identity (IMDS-shaped)
//! endpoint: the shared [`chatgate_guest::identity`] with this component's audience,
//! cache key and error type.
//!
//! Tokens are cached (in the key-value store, by the adapter) until
//! [`REFRESH_MARGIN_SECONDS`] before they expire.

use crate::config::CLIENT_ID;
use chatgate_guest::identity::{self as shared, TokenFailure};
use chatgate_rag::completion::CompletionError;

pub use shared::{MAX_TOKEN_BODY_BYTES, REFRESH_MARGIN_SECONDS, TOKEN_REQUEST_HEADERS, Token};

/// The audience of Azure OpenAI (Azure AI services) tokens.
pub const RESOURCE: &str = "https://cognitiveservices.azure.com";

/// The URL of the token request. `client_id` selects a user-assigned identity.
pub fn token_url(token_origin: &str, client_id: Option<&str>) -> String {
    shared::token_url(token_origin, RESOURCE, client_id)
}

/// The key-value key a token is cached under: one per identity and endpoint.
pub fn cache_key(token_origin: &str, client_id: Option<&str>) -> String {
    shared::cache_key("completion-openai", token_origin, client_id)
}

/// Parses a 2xx token answer received at `now_unix`.
pub fn parse_token(body: &[u8], now_unix: u64) -> Result<Token, CompletionError> {
    shared::parse_token(body, now_unix).map_err(completion_error)
}

/// The error for a non-2xx token answer.
pub fn token_error(status: u16, body: &[u8]) -> CompletionError {
    completion_error(shared::token_error(status, body, CLIENT_ID))
}

/// A refused identity is a credential problem; a failing endpoint may recover.
fn completion_error(failure: TokenFailure) -> CompletionError {
    match failure {
        TokenFailure::Refused(message) => CompletionError::Unauthorized(message),
        TokenFailure::Unavailable(message) => CompletionError::UpstreamUnavailable(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_url_asks_for_the_cognitive_services_audience() {
        assert_eq!(
            token_url("http://169.254.169.254", None),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://cognitiveservices.azure.com"
        );
        assert!(
            token_url("http://169.254.169.254", Some("0f5e-11"))
                .ends_with("&resource=https://cognitiveservices.azure.com&client_id=0f5e-11")
        );
    }

    #[test]
    fn parses_an_imds_answer() {
        let body = br#"{"access_token":"eyJ0eXAi.abc.def","expires_on":"1700003600","resource":"https://cognitiveservices.azure.com","token_type":"Bearer"}"#;
        let token = parse_token(body, 1_700_000_000).unwrap();
        assert_eq!(token.expose(), "eyJ0eXAi.abc.def");
        assert_eq!(token.expires_on(), 1_700_003_600);
    }

    #[test]
    fn unusable_answers_are_unauthorized_without_echoing_them() {
        for body in [
            &b"<html>"[..],
            br#"{"expires_on":"1"}"#,
            br#"{"access_token":"secret-token","expires_on":"09/14/2017 00:00:00 PM +00:00"}"#,
        ] {
            match parse_token(body, 0) {
                Err(CompletionError::Unauthorized(message)) => {
                    assert!(!message.contains("secret-token"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn token_endpoint_failures_say_what_happened() {
        let body = br#"{"error":"invalid_request","error_description":"Identity not found"}"#;
        assert_eq!(
            token_error(400, body),
            CompletionError::Unauthorized(
                "the managed identity endpoint refused the token request (HTTP 400): Identity not found; check openai_client_id".into()
            )
        );
        assert!(matches!(
            token_error(503, b""),
            CompletionError::UpstreamUnavailable(m) if m.contains("503")
        ));
    }

    #[test]
    fn cache_keys_differ_per_identity() {
        assert_ne!(
            cache_key("http://imds", None),
            cache_key("http://imds", Some("client-a"))
        );
    }
}
