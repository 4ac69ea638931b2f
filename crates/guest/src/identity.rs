//! Entra ID access tokens from a managed-identity endpoint shaped like the Azure
//! Instance Metadata Service (IMDS):
//! `GET {origin}/metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`
//! with `Metadata: true`, answering `{access_token, expires_on, resource, token_type}`.
//!
//! Only the pure parts live here (URL, headers, cache key, parsing, the meaning of a
//! failed answer); `chatgate-guest-io`'s `fetch_token` sends the request within the
//! waits its component gives it and caches the token in the key-value store until
//! [`REFRESH_MARGIN_SECONDS`] before it expires, so that a token is never sent in its
//! last minutes, when clock skew or a long request could outlive it. Each component
//! keeps what differs between them explicit: its [`ManagedIdentity`] (audience, cache
//! owner, the variable to check) and how a [`FetchFailure`] reads as its own error.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The IMDS API version whose answer [`parse_token`] reads.
pub const IMDS_API_VERSION: &str = "2018-02-01";
/// How long before its expiry a token stops being sent (see the module comment).
pub const REFRESH_MARGIN_SECONDS: u64 = 300;
/// A token answer larger than this is not one.
pub const MAX_TOKEN_BODY_BYTES: usize = 64 << 10;

/// How failures name an IMDS-shaped endpoint.
pub const MANAGED_IDENTITY_ENDPOINT: &str = "the managed identity endpoint";
/// How failures name Entra ID's token endpoint (workload identity federation).
pub const ENTRA_TOKEN_ENDPOINT: &str = "the Entra ID token endpoint";

/// The headers of the token request; `Metadata: true` is IMDS's SSRF guard.
pub const TOKEN_REQUEST_HEADERS: [(&str, &str); 2] =
    [("metadata", "true"), ("accept", "application/json")];

/// The URL of a token request for `resource` (the audience, e.g.
/// `https://search.azure.com`). `client_id` selects a user-assigned identity.
pub fn token_url(token_origin: &str, resource: &str, client_id: Option<&str>) -> String {
    let mut url = format!(
        "{token_origin}/metadata/identity/oauth2/token?api-version={IMDS_API_VERSION}&resource={resource}"
    );
    if let Some(client_id) = client_id {
        url.push_str("&client_id=");
        url.push_str(client_id);
    }
    url
}

/// The key-value key a token is cached under: one per component (so per audience),
/// identity and endpoint, since components may share a store.
pub fn cache_key(component: &str, token_origin: &str, client_id: Option<&str>) -> String {
    format!(
        "{component}/entra-token/{}/{token_origin}",
        client_id.unwrap_or("system-assigned")
    )
}

/// Whose token a component asks for, and what it is known by: the parts that differ
/// between components, so that each states them and `fetch_token` holds the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagedIdentity<'a> {
    /// `scheme://host[:port]` of the token endpoint, as [`crate::parse_origin`] gives it.
    pub token_origin: &'a str,
    /// A user-assigned identity ([`is_client_id`]); `None` is the system-assigned one.
    pub client_id: Option<&'a str>,
    /// The audience the token is for, e.g. `https://search.azure.com`.
    pub resource: &'a str,
    /// The component, in the cache key: components may share a store, not an audience.
    pub cache_owner: &'a str,
    /// The variable an operator checks when the endpoint refuses the identity.
    pub client_id_variable: &'a str,
}

impl ManagedIdentity<'_> {
    /// The URL of the token request ([`token_url`]).
    pub fn url(&self) -> String {
        token_url(self.token_origin, self.resource, self.client_id)
    }

    /// The key-value key the token is cached under ([`cache_key`]).
    pub fn cache_key(&self) -> String {
        cache_key(self.cache_owner, self.token_origin, self.client_id)
    }
}

/// Entra client ids are GUIDs; this keeps the value safe in a query string.
pub fn is_client_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
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
    /// The token itself, for the `Authorization` header and for redaction.
    pub fn expose(&self) -> &str {
        &self.access_token
    }

    /// When the token expires, in Unix seconds.
    pub fn expires_on(&self) -> u64 {
        self.expires_on
    }

    /// Whether the token may still be sent at `now_unix` (seconds).
    pub fn usable(&self, now_unix: u64) -> bool {
        now_unix.saturating_add(REFRESH_MARGIN_SECONDS) < self.expires_on
    }

    /// The token as it is cached in the key-value store ([`Token::from_bytes`] reads it).
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

/// Why no token was had. Components map these onto their own error types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenFailure {
    /// The endpoint refused the request or answered without a usable token: asking
    /// again will not help until the configuration or the identity changes.
    Refused(String),
    /// The endpoint failed (throttled, server error); it may answer later.
    Unavailable(String),
}

impl TokenFailure {
    /// The description, for an operator, whichever kind of failure it is.
    pub fn message(&self) -> &str {
        match self {
            TokenFailure::Refused(message) | TokenFailure::Unavailable(message) => message,
        }
    }
}

/// Why fetching a token failed, for the component to turn into its own error: the
/// same event means different things to a retriever and to a completion provider.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchFailure {
    /// No answer within the component's budget (the guest's own timer ran out).
    TimedOut,
    /// No answer: the host's `wasi:http` error, classified.
    Transport(crate::TransportFailure),
    /// The request could not be built from the configured origin and client id.
    Unbuildable,
    /// A 2xx answer whose body broke off, stalled or was over [`MAX_TOKEN_BODY_BYTES`].
    Unreadable,
    /// An answer without a usable token ([`parse_token`], [`token_error`]).
    Token(TokenFailure),
}

/// Parses a 2xx token answer received at `now_unix`. `expires_on` is unix seconds as
/// a string (IMDS) or a number; `expires_in` (seconds from now) is accepted instead.
/// The answer is never quoted in the failure: it may hold a token.
pub fn parse_token(body: &[u8], now_unix: u64) -> Result<Token, TokenFailure> {
    parse_token_from(body, now_unix, MANAGED_IDENTITY_ENDPOINT)
}

/// [`parse_token`] for a token from `endpoint` (its name in the failure): Entra's v2.0
/// token endpoint answers `expires_in` as a number, which is understood too.
pub fn parse_token_from(body: &[u8], now_unix: u64, endpoint: &str) -> Result<Token, TokenFailure> {
    let unusable = |why: &str| {
        TokenFailure::Refused(format!("{endpoint} answered without a usable token: {why}"))
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

/// The failure for a non-2xx token answer. IMDS explains refusals in
/// `error_description` (e.g. "Identity not found"); tokens never appear there.
/// `client_id_variable` names the setting to check when the identity is refused.
pub fn token_error(status: u16, body: &[u8], client_id_variable: &str) -> TokenFailure {
    let description = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error_description")?.as_str().map(str::to_string))
        .map(|d| crate::sanitize(&d, None))
        .filter(|d| !d.is_empty());
    let detail = description.map(|d| format!(": {d}")).unwrap_or_default();
    match status {
        429 | 500..=599 => TokenFailure::Unavailable(format!(
            "the managed identity endpoint failed (HTTP {status}){detail}"
        )),
        _ => TokenFailure::Refused(format!(
            "the managed identity endpoint refused the token request (HTTP {status}){detail}; check {client_id_variable}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls_name_the_audience_and_an_optional_user_assigned_identity() {
        assert_eq!(
            token_url("http://169.254.169.254", "https://search.azure.com", None),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://search.azure.com"
        );
        assert!(
            token_url("http://imds", "https://x", Some("0f5e-11"))
                .ends_with("&resource=https://x&client_id=0f5e-11")
        );
    }

    #[test]
    fn client_ids_cannot_add_query_parameters() {
        assert!(is_client_id("6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d"));
        for bad in ["", "a&resource=evil", "a b", "a#b", &"a".repeat(65)] {
            assert!(!is_client_id(bad), "{bad}");
        }
    }

    #[test]
    fn parses_an_imds_answer() {
        let body = br#"{"access_token":"eyJ0eXAi.abc.def","client_id":"x","expires_in":"86399","expires_on":"1700003600","ext_expires_in":"86399","not_before":"1700000000","resource":"https://search.azure.com","token_type":"Bearer"}"#;
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
    fn unusable_answers_are_refusals_that_never_echo_them() {
        for body in [
            &b"<html>"[..],
            br#"{"expires_on":"1"}"#,
            br#"{"access_token":"","expires_on":"1"}"#,
            br#"{"access_token":"bad token\r\nX: y","expires_on":"1"}"#,
            br#"{"access_token":"secret-token","expires_on":"09/14/2017 00:00:00 PM +00:00"}"#,
        ] {
            match parse_token(body, 0) {
                Err(TokenFailure::Refused(message)) => {
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
    fn refusals_name_the_setting_and_server_failures_are_unavailable() {
        let body = br#"{"error":"invalid_request","error_description":"Identity not found"}"#;
        assert_eq!(
            token_error(400, body, "x_client_id"),
            TokenFailure::Refused(
                "the managed identity endpoint refused the token request (HTTP 400): Identity not found; check x_client_id".into()
            )
        );
        assert_eq!(
            token_error(503, b"", "x_client_id"),
            TokenFailure::Unavailable("the managed identity endpoint failed (HTTP 503)".into())
        );
        assert!(matches!(
            token_error(429, b"", "x"),
            TokenFailure::Unavailable(_)
        ));
    }

    #[test]
    fn a_managed_identity_is_its_url_and_its_cache_key() {
        let identity = ManagedIdentity {
            token_origin: "http://imds",
            client_id: Some("client-a"),
            resource: "https://search.azure.com",
            cache_owner: "retrieval-azure-search",
            client_id_variable: "azure_search_client_id",
        };
        assert_eq!(
            identity.url(),
            token_url("http://imds", "https://search.azure.com", Some("client-a"))
        );
        assert_eq!(
            identity.cache_key(),
            cache_key("retrieval-azure-search", "http://imds", Some("client-a"))
        );
    }

    #[test]
    fn cache_keys_differ_per_component_identity_and_endpoint() {
        let keys = [
            cache_key("a", "http://imds", None),
            cache_key("a", "http://imds", Some("client-a")),
            cache_key("b", "http://imds", None),
            cache_key("a", "http://other", None),
        ];
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
    }
}
