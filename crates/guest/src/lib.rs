//! Guest-side helpers shared by chatgate components that call out of the
//! sandbox: reading their Spin variables, deadlines and clocks for host
//! calls, and bounded reads of outbound responses. The plain types build
//! natively, so the components' configuration logic stays testable with
//! `cargo test`. [`identity`] holds the pure parts of
//! fetching Entra ID tokens from a managed-identity endpoint.

pub mod identity;
pub mod retry_after;

/// What reading one variable gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableValue {
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
    pub fn new(key: String) -> Self {
        Self(key)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{VariableValue, Variables};
    use futures_util::future::{Either, select};
    use spin_sdk::wasip3::clocks::{monotonic_clock, system_clock};
    use std::pin::pin;

    /// Reads every variable in `names` from Spin.
    pub async fn read_variables(names: &[&'static str]) -> Variables {
        let mut values = Vec::with_capacity(names.len());
        for &name in names {
            let value = match spin_sdk::variables::get(name).await {
                Ok(value) => VariableValue::Value(value),
                Err(spin_sdk::variables::Error::Undefined(_)) => VariableValue::Missing,
                Err(_) => VariableValue::Unreadable,
            };
            values.push((name, value));
        }
        Variables::new(values)
    }

    /// `future`'s output, or `None` if `ms` milliseconds pass first (the future is
    /// then dropped, which cancels the host call behind it).
    pub async fn within<F: Future>(ms: u64, future: F) -> Option<F::Output> {
        let future = pin!(future);
        let timer = pin!(sleep_ms(ms));
        match select(future, timer).await {
            Either::Left((output, _)) => Some(output),
            Either::Right(_) => None,
        }
    }

    /// A response body as far as it was read.
    pub enum ReadBody {
        Complete(Vec<u8>),
        /// Longer than the limit; the rest was not read.
        Truncated,
    }

    /// Why a response body could not be read.
    pub enum BodyFailure {
        /// The budget ran out first.
        TimedOut,
        /// The body broke off.
        Broken,
    }

    /// Reads `response`'s body, at most `limit` bytes of it, within `budget_ms`
    /// milliseconds in all: a stalled or endless body cannot hold the caller.
    pub async fn read_body(
        response: spin_sdk::http::Response,
        limit: usize,
        budget_ms: u64,
    ) -> Result<ReadBody, BodyFailure> {
        use http_body_util::BodyExt;
        let started_at = monotonic_clock::now();
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        loop {
            let elapsed_ms = monotonic_clock::now().saturating_sub(started_at) / 1_000_000;
            let frame = within(budget_ms.saturating_sub(elapsed_ms), body.frame())
                .await
                .ok_or(BodyFailure::TimedOut)?;
            match frame {
                None => return Ok(ReadBody::Complete(bytes)),
                Some(Err(_)) => return Err(BodyFailure::Broken),
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        bytes.extend_from_slice(&data);
                        if bytes.len() > limit {
                            return Ok(ReadBody::Truncated);
                        }
                    }
                }
            }
        }
    }

    /// `wasi:http` request options that ask the host to give up after `budget_ms`
    /// (connecting, waiting for the first byte, between bytes).
    pub fn request_options(
        budget_ms: u64,
    ) -> spin_sdk::wasip3::http_compat::RequestOptionsExtension {
        let ns = budget_ms.saturating_mul(1_000_000);
        let options = spin_sdk::wasip3::http::types::RequestOptions::new();
        // A host without a timeout kind keeps its own default; the guest's timer bounds
        // the waits either way.
        let _ = options.set_connect_timeout(Some(ns));
        let _ = options.set_first_byte_timeout(Some(ns));
        let _ = options.set_between_bytes_timeout(Some(ns));
        spin_sdk::wasip3::http_compat::RequestOptionsExtension(options)
    }

    pub async fn sleep_ms(ms: u64) {
        monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
    }

    /// Milliseconds since the Unix epoch.
    pub fn wall_clock_ms() -> u64 {
        let now = system_clock::now();
        u64::try_from(now.seconds)
            .unwrap_or(0)
            .saturating_mul(1000)
            .saturating_add(u64::from(now.nanoseconds) / 1_000_000)
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::{
    BodyFailure, ReadBody, read_body, read_variables, request_options, sleep_ms, wall_clock_ms,
    within,
};

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
