//! Entra ID access tokens for Azure OpenAI from a managed-identity endpoint shaped like
//! the Azure Instance Metadata Service (IMDS):
//! `GET {origin}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`
//! with `Metadata: true`, answering `{access_token, expires_on, resource, token_type}`.
//!
//! Tokens are cached (in the key-value store, by the adapter) until
//! [`REFRESH_MARGIN_SECONDS`] before they expire, so that a token is never sent in its
//! last minutes, when clock skew or a long request could outlive it.

use crate::errors::sanitize;
use crate::types::CompletionError;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The audience of Azure OpenAI (Azure AI services) tokens.
pub const RESOURCE: &str = "https://cognitiveservices.azure.com";
pub const REFRESH_MARGIN_SECONDS: u64 = 300;
/// A token answer larger than this is not one.
pub const MAX_TOKEN_BODY_BYTES: usize = 64 << 10;

/// The URL of the token request. `client_id` selects a user-assigned identity.
pub fn token_url(token_origin: &str, client_id: Option<&str>) -> String {
    let mut url = format!(
        "{token_origin}/metadata/identity/oauth2/token?api-version=2018-02-01&resource={RESOURCE}"
    );
    if let Some(client_id) = client_id {
        url.push_str("&client_id=");
        url.push_str(client_id);
    }
    url
}

/// The headers of the token request; `Metadata: true` is IMDS's SSRF guard.
pub const TOKEN_REQUEST_HEADERS: [(&str, &str); 2] =
    [("metadata", "true"), ("accept", "application/json")];

/// The key-value key a token is cached under: one per identity and endpoint.
pub fn cache_key(token_origin: &str, client_id: Option<&str>) -> String {
    format!(
        "completion-openai/entra-token/{}/{token_origin}",
        client_id.unwrap_or("system-assigned")
    )
}

/// An access token; `Debug` never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    access_token: String,
    /// Unix seconds.
    expires_on: u64,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .finish()
    }
}

impl Token {
    pub fn expose(&self) -> &str {
        &self.access_token
    }

    pub fn expires_on(&self) -> u64 {
        self.expires_on
    }

    /// Whether the token may still be sent at `now_unix` (seconds).
    pub fn usable(&self, now_unix: u64) -> bool {
        now_unix.saturating_add(REFRESH_MARGIN_SECONDS) < self.expires_on
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A cached token, if the bytes hold one (anything else is fetched anew).
    pub fn from_bytes(bytes: &[u8]) -> Option<Token> {
        let token: Token = serde_json::from_slice(bytes).ok()?;
        is_header_safe(&token.access_token).then_some(token)
    }
}

fn is_header_safe(token: &str) -> bool {
    !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic())
}

/// Parses a 2xx token answer received at `now_unix`. `expires_on` is unix seconds as
/// a string (IMDS) or a number; `expires_in` (seconds from now) is accepted instead.
pub fn parse_token(body: &[u8], now_unix: u64) -> Result<Token, CompletionError> {
    let unusable = |why: &str| {
        CompletionError::Unauthorized(format!(
            "the managed identity endpoint answered without a usable token: {why}"
        ))
    };
    let value: Value = serde_json::from_slice(body).map_err(|_| unusable("not JSON"))?;
    let access_token = value
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|t| is_header_safe(t))
        .ok_or_else(|| unusable("no access_token"))?;
    let seconds = |field: &str| match value.get(field)? {
        Value::String(text) => text.trim().parse::<u64>().ok(),
        Value::Number(number) => number.as_u64(),
        _ => None,
    };
    let expires_on = seconds("expires_on")
        .or_else(|| seconds("expires_in").map(|s| now_unix.saturating_add(s)))
        .ok_or_else(|| unusable("no expires_on"))?;
    Ok(Token {
        access_token: access_token.to_string(),
        expires_on,
    })
}

/// The error for a non-2xx token answer. IMDS explains refusals in
/// `error_description` (e.g. "Identity not found"); tokens never appear there.
pub fn token_error(status: u16, body: &[u8]) -> CompletionError {
    let description = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error_description")?.as_str().map(str::to_string))
        .map(|d| sanitize(&d, None))
        .filter(|d| !d.is_empty());
    let detail = description.map(|d| format!(": {d}")).unwrap_or_default();
    match status {
        429 | 500..=599 => CompletionError::UpstreamUnavailable(format!(
            "the managed identity endpoint failed (HTTP {status}){detail}"
        )),
        _ => CompletionError::Unauthorized(format!(
            "the managed identity endpoint refused the token request (HTTP {status}){detail}; check openai_client_id"
        )),
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
        let body = br#"{"access_token":"eyJ0eXAi.abc.def","client_id":"x","expires_in":"86399","expires_on":"1700003600","ext_expires_in":"86399","not_before":"1700000000","resource":"https://cognitiveservices.azure.com","token_type":"Bearer"}"#;
        let token = parse_token(body, 1_700_000_000).unwrap();
        assert_eq!(token.expose(), "eyJ0eXAi.abc.def");
        assert_eq!(token.expires_on(), 1_700_003_600);
    }

    #[test]
    fn numeric_expiry_and_expires_in_are_understood() {
        let token = parse_token(br#"{"access_token":"t","expires_on":1700003600}"#, 0).unwrap();
        assert_eq!(token.expires_on(), 1_700_003_600);
        let token = parse_token(br#"{"access_token":"t","expires_in":"3600"}"#, 1_000).unwrap();
        assert_eq!(token.expires_on(), 4_600);
    }

    #[test]
    fn unusable_answers_are_unauthorized_without_echoing_them() {
        for body in [
            &b"<html>"[..],
            br#"{"expires_on":"1"}"#,
            br#"{"access_token":"","expires_on":"1"}"#,
            br#"{"access_token":"bad token\r\nX: y","expires_on":"1"}"#,
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
    fn a_token_is_refreshed_five_minutes_before_it_expires() {
        let token = parse_token(br#"{"access_token":"t","expires_on":"10000"}"#, 0).unwrap();
        assert!(token.usable(9_699));
        assert!(!token.usable(9_700));
        assert!(!token.usable(20_000));
    }

    #[test]
    fn cached_tokens_round_trip_and_are_not_debug_printed() {
        let token = parse_token(br#"{"access_token":"s3cr3t","expires_on":"99"}"#, 0).unwrap();
        assert_eq!(Token::from_bytes(&token.to_bytes()), Some(token.clone()));
        assert!(!format!("{token:?}").contains("s3cr3t"));
        assert_eq!(Token::from_bytes(b"garbage"), None);
        assert_eq!(
            Token::from_bytes(br#"{"access_token":"a b","expires_on":99}"#),
            None
        );
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
