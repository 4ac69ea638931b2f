//! Guest-side helpers shared by chatgate components that call out of the
//! sandbox: reading their Spin variables, and deadlines and clocks for host
//! calls. The plain types build natively, so the components' configuration
//! logic stays testable with `cargo test`.

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
pub use wasm::{read_variables, sleep_ms, wall_clock_ms, within};

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
