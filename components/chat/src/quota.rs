//! Per-identity quotas: requests and tokens per minute, counted in the
//! key-value store so that every instance (one per request) sees the same
//! counts.
//!
//! Windows are fixed calendar minutes. Requests are counted on admission with
//! an atomic increment, so concurrent requests can never all slip through;
//! tokens are known only once the answer is complete, so a window admits
//! requests while its recorded tokens are under the limit and the answer that
//! crosses it is the last one in that minute.

use crate::error::ApiError;

pub const WINDOW_SECONDS: u64 = 60;

/// Atomic counters shared by all instances.
pub trait Counters {
    type Error: std::fmt::Display;
    /// Adds `delta` to `key` (absent counts as 0) and returns the new value.
    fn increment(&self, key: &str, delta: i64) -> Result<i64, Self::Error>;
    fn delete(&self, key: &str) -> Result<(), Self::Error>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

impl Limits {
    pub fn is_unlimited(&self) -> bool {
        self.requests_per_minute.is_none() && self.tokens_per_minute.is_none()
    }
}

/// What the caller has left in the current window, for the
/// `x-ratelimit-*` headers OpenAI clients read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Allowance {
    pub headers: Vec<(&'static str, String)>,
}

fn window(now_seconds: u64) -> u64 {
    now_seconds / WINDOW_SECONDS
}

fn seconds_to_reset(now_seconds: u64) -> u64 {
    WINDOW_SECONDS - now_seconds % WINDOW_SECONDS
}

fn requests_key(subject: &str, window: u64) -> String {
    format!("quota/requests/{window}/{subject}")
}

fn tokens_key(subject: &str, window: u64) -> String {
    format!("quota/tokens/{window}/{subject}")
}

/// Counts one request for `subject` and decides whether it may go on.
///
/// A store failure admits the request: quotas protect capacity, and an
/// unavailable store must not take the whole service down with it.
pub fn admit<C: Counters>(
    limits: Limits,
    subject: &str,
    now_seconds: u64,
    counters: &C,
) -> Result<Allowance, ApiError> {
    let current = window(now_seconds);
    let reset = seconds_to_reset(now_seconds);
    let mut headers = Vec::new();

    if let Some(limit) = limits.requests_per_minute
        && let Ok(count) = counters.increment(&requests_key(subject, current), 1)
    {
        if count == 1 {
            forget_old_windows(subject, current, counters);
        }
        if count > i64::from(limit) {
            return Err(limited("requests", limit, reset));
        }
        headers.extend(rate_headers("requests", limit, count, reset));
    }

    if let Some(limit) = limits.tokens_per_minute
        && let Ok(used) = counters.increment(&tokens_key(subject, current), 0)
    {
        if used >= i64::from(limit) {
            return Err(limited("tokens", limit, reset));
        }
        headers.extend(rate_headers("tokens", limit, used, reset));
    }

    Ok(Allowance { headers })
}

/// Charges `tokens` used by an answer to `subject`'s current window.
pub fn record_tokens<C: Counters>(
    limits: Limits,
    subject: &str,
    now_seconds: u64,
    tokens: u32,
    counters: &C,
) {
    if limits.tokens_per_minute.is_some() && tokens > 0 {
        // Nothing to tell anyone if this fails: the answer has been given.
        let _ = counters.increment(&tokens_key(subject, window(now_seconds)), i64::from(tokens));
    }
}

/// The first request of a window clears the windows before the previous one,
/// so counters of active identities do not pile up.
fn forget_old_windows<C: Counters>(subject: &str, current: u64, counters: &C) {
    for old in current.saturating_sub(3)..current.saturating_sub(1) {
        let _ = counters.delete(&requests_key(subject, old));
        let _ = counters.delete(&tokens_key(subject, old));
    }
}

fn rate_headers(kind: &str, limit: u32, used: i64, reset: u64) -> [(&'static str, String); 3] {
    let remaining = (i64::from(limit) - used).max(0);
    let (limit_name, remaining_name, reset_name) = match kind {
        "requests" => (
            "x-ratelimit-limit-requests",
            "x-ratelimit-remaining-requests",
            "x-ratelimit-reset-requests",
        ),
        _ => (
            "x-ratelimit-limit-tokens",
            "x-ratelimit-remaining-tokens",
            "x-ratelimit-reset-tokens",
        ),
    };
    [
        (limit_name, limit.to_string()),
        (remaining_name, remaining.to_string()),
        (reset_name, format!("{reset}s")),
    ]
}

/// OpenAI's 429 for a quota, with the seconds until the window ends.
fn limited(kind: &'static str, limit: u32, retry_after_seconds: u64) -> ApiError {
    ApiError::new(
        429,
        kind,
        "rate_limit_exceeded",
        format!(
            "Rate limit reached: {limit} {kind} per minute for this identity. Please retry after {retry_after_seconds} seconds."
        ),
    )
    .with_header("retry-after", retry_after_seconds.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::HashMap;

    #[derive(Default)]
    struct Memory {
        values: RefCell<HashMap<String, i64>>,
        broken: bool,
    }

    impl Counters for Memory {
        type Error = &'static str;
        fn increment(&self, key: &str, delta: i64) -> Result<i64, &'static str> {
            if self.broken {
                return Err("store unavailable");
            }
            let mut values = self.values.borrow_mut();
            let value = values.entry(key.to_string()).or_default();
            *value += delta;
            Ok(*value)
        }
        fn delete(&self, key: &str) -> Result<(), &'static str> {
            self.values.borrow_mut().remove(key);
            Ok(())
        }
    }

    const REQUESTS: Limits = Limits {
        requests_per_minute: Some(2),
        tokens_per_minute: None,
    };
    const TOKENS: Limits = Limits {
        requests_per_minute: None,
        tokens_per_minute: Some(100),
    };
    /// 10 seconds into a minute.
    const NOW: u64 = 1_000 * 60 + 10;

    fn header<'a>(allowance: &'a Allowance, name: &str) -> Option<&'a str> {
        allowance
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn requests_over_the_limit_wait_for_the_next_minute() {
        let store = Memory::default();
        let first = admit(REQUESTS, "ann", NOW, &store).unwrap();
        assert_eq!(header(&first, "x-ratelimit-remaining-requests"), Some("1"));
        assert_eq!(header(&first, "x-ratelimit-reset-requests"), Some("50s"));
        admit(REQUESTS, "ann", NOW + 1, &store).unwrap();
        let error = admit(REQUESTS, "ann", NOW + 2, &store).unwrap_err();
        assert_eq!((error.status, error.code), (429, "rate_limit_exceeded"));
        assert_eq!(error.error_type, "requests");
        assert!(error.headers.contains(&("retry-after", "48".to_string())));
        // Another identity has its own count, and a new minute starts afresh.
        admit(REQUESTS, "bob", NOW + 2, &store).unwrap();
        admit(REQUESTS, "ann", NOW + 50, &store).unwrap();
    }

    #[test]
    fn tokens_are_charged_after_the_answer_and_stop_the_next_request() {
        let store = Memory::default();
        admit(TOKENS, "ann", NOW, &store).unwrap();
        record_tokens(TOKENS, "ann", NOW, 60, &store);
        let allowance = admit(TOKENS, "ann", NOW, &store).unwrap();
        assert_eq!(
            header(&allowance, "x-ratelimit-remaining-tokens"),
            Some("40")
        );
        record_tokens(TOKENS, "ann", NOW, 60, &store);
        let error = admit(TOKENS, "ann", NOW, &store).unwrap_err();
        assert_eq!((error.status, error.error_type), (429, "tokens"));
        admit(TOKENS, "ann", NOW + 60, &store).unwrap();
    }

    #[test]
    fn unlimited_counts_nothing() {
        let store = Memory::default();
        let limits = Limits {
            requests_per_minute: None,
            tokens_per_minute: None,
        };
        assert!(limits.is_unlimited());
        admit(limits, "ann", NOW, &store).unwrap();
        record_tokens(limits, "ann", NOW, 10, &store);
        assert!(store.values.borrow().is_empty());
    }

    #[test]
    fn an_unavailable_store_admits() {
        let store = Memory {
            broken: true,
            ..Memory::default()
        };
        let both = Limits {
            requests_per_minute: Some(1),
            tokens_per_minute: Some(1),
        };
        for _ in 0..3 {
            assert!(admit(both, "ann", NOW, &store).unwrap().headers.is_empty());
        }
    }

    #[test]
    fn old_windows_are_cleared_by_the_first_request_of_a_minute() {
        let store = Memory::default();
        admit(REQUESTS, "ann", NOW, &store).unwrap();
        admit(REQUESTS, "ann", NOW + 60, &store).unwrap();
        assert_eq!(store.values.borrow().len(), 2);
        admit(REQUESTS, "ann", NOW + 180, &store).unwrap();
        let keys: Vec<String> = store.values.borrow().keys().cloned().collect();
        assert_eq!(keys, vec![requests_key("ann", window(NOW + 180))]);
    }
}
