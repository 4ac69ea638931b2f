//! The pure helpers chatgate's components share, built natively and for wasm32 with
//! no host calls: redaction of remote text ([`sanitize`]), origin parsing, credentials
//! that never print, variable values as read, `Retry-After` ([`retry_after`]), the
//! OpenAI error object ([`openai_error`]), what a failed outbound call was
//! ([`TransportFailure`]) and the pure parts of managed-identity tokens
//! ([`identity`], [`workload_identity`]), and W3C trace context ([`trace_context`]). Their wasm side (reading variables, sending, clocks) is
//! `chatgate-guest-io`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod entra_identity;
pub mod genai;
pub mod header_value;
pub mod identity;
pub mod openai_error;
pub mod retry_after;
pub mod token_source;
pub mod trace_context;
pub mod waf_family;
pub mod workload_identity;

/// What reading one variable gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableValue {
    /// The value as the host resolved it, not yet trimmed or parsed.
    Value(String),
    /// Not declared for the component: its default applies.
    Missing,
    /// Declared but the host could not resolve it.
    Unreadable,
}

/// The values of a fixed set of variables, read once per request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Variables(Vec<(&'static str, VariableValue)>);

impl Variables {
    /// The values as read, by variable name.
    pub fn new(values: Vec<(&'static str, VariableValue)>) -> Self {
        Self(values)
    }

    /// The value read for `name`; a name that was not read counts as missing.
    pub fn get(&self, name: &str) -> VariableValue {
        self.0
            .iter()
            .find(|(read, _)| *read == name)
            .map_or(VariableValue::Missing, |(_, value)| value.clone())
    }
}

/// `text` as an origin, `http(s)://host[:port]` with any trailing `/` removed: nothing
/// else (no path, query or credentials), so that the path is the caller's to append.
/// `None` if it is not one.
pub fn parse_origin(text: &str) -> Option<String> {
    let trimmed = text.trim_end_matches('/');
    let uri: http::Uri = trimmed.parse().ok()?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let bare = uri.path_and_query().is_none_or(|p| p.as_str() == "/")
        && uri.authority().is_some_and(|a| !a.as_str().contains('@'));
    (scheme_ok && bare).then(|| trimmed.to_string())
}

/// Longest text from a remote service that an error passes on: the part that
/// explains the failure comes first, and whole bodies are not ours to forward.
pub const MAX_MESSAGE_CHARS: usize = 300;

/// `text` from a remote service made safe to pass on: `secret` replaced by
/// `[redacted]`, control characters by spaces, and cut to [`MAX_MESSAGE_CHARS`].
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

/// A credential from a secret variable; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key read from a variable.
    pub fn new(key: String) -> Self {
        Self(key)
    }

    /// The key itself, for the one header that carries it and for redaction.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Why an outbound request got no answer at all; `chatgate-guest-io` classifies the
/// host's `wasi:http` error codes into it, each component says what it means for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// The host refused the request: the origin is not an allowed outbound host.
    Denied,
    /// The host's own timeout (connect, first byte, between bytes) ran out.
    TimedOut,
    /// Connection refused or reset, DNS, TLS, protocol errors: described for operators.
    Unreachable(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitized_text_hides_the_secret_and_stays_one_bounded_line() {
        let text = format!("bad key sk-123\nline two {}", "x".repeat(1000));
        let clean = sanitize(&text, Some("sk-123"));
        assert!(clean.starts_with("bad key [redacted] line two"));
        assert_eq!(clean.chars().count(), MAX_MESSAGE_CHARS);
        assert!(clean.ends_with('…'));
        assert_eq!(sanitize(" short \t", None), "short");
        assert_eq!(sanitize("empty secret", Some("")), "empty secret");
    }

    #[test]
    fn keys_never_show_in_debug_output() {
        let key = ApiKey::new("sk-live-abc".into());
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
        assert_eq!(key.expose(), "sk-live-abc");
    }

    #[test]
    fn unread_names_are_missing() {
        let variables = Variables::new(vec![
            ("a", VariableValue::Value("1".into())),
            ("b", VariableValue::Unreadable),
        ]);
        assert_eq!(variables.get("a"), VariableValue::Value("1".into()));
        assert_eq!(variables.get("b"), VariableValue::Unreadable);
        assert_eq!(variables.get("c"), VariableValue::Missing);
    }
}
