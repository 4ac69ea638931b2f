//! A circuit breaker per upstream target (origin + model/deployment).
//!
//! Every request runs in a fresh Wasm instance, so the state lives in the key-value
//! store between requests; this module only decides, with the time passed in
//! (milliseconds of wall-clock time, the only clock instances share).
//!
//! Closed: requests pass; `failure_threshold` consecutive failures open it.
//! Open: requests are refused without touching the network until the cooldown is over.
//! Half-open: one request (the probe) is let through; its success closes the breaker,
//! its failure opens it for another cooldown. A probe whose instance died without
//! reporting does not block the target forever: after a further cooldown another
//! probe is admitted.
//!
//! Instances read and write the state without a lock, so two concurrent requests can
//! lose one another's update. That costs at most a failure count or an extra probe,
//! which a breaker tolerates; it never fails a request.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive failures that open the breaker; 0 disables it.
    pub failure_threshold: u32,
    pub cooldown_ms: u64,
}

impl BreakerPolicy {
    pub fn enabled(&self) -> bool {
        self.failure_threshold > 0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Breaker {
    Closed { failures: u32 },
    Open { until_ms: u64 },
    HalfOpen { probe_until_ms: u64 },
}

impl Default for Breaker {
    fn default() -> Self {
        Breaker::Closed { failures: 0 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// Allowed as the half-open probe; the new state must be stored before sending,
    /// so that other instances see the probe in flight.
    Probe,
    Refused,
}

impl Breaker {
    /// Whether a request may go to the target now, moving Open to HalfOpen for a probe.
    pub fn admit(&mut self, now_ms: u64, policy: &BreakerPolicy) -> Admission {
        if !policy.enabled() {
            return Admission::Allowed;
        }
        match *self {
            Breaker::Closed { .. } => Admission::Allowed,
            Breaker::Open { until_ms }
            | Breaker::HalfOpen {
                probe_until_ms: until_ms,
            } if now_ms < until_ms => Admission::Refused,
            Breaker::Open { .. } | Breaker::HalfOpen { .. } => {
                *self = Breaker::HalfOpen {
                    probe_until_ms: now_ms.saturating_add(policy.cooldown_ms),
                };
                Admission::Probe
            }
        }
    }

    pub fn record_success(&mut self) {
        *self = Breaker::default();
    }

    pub fn record_failure(&mut self, now_ms: u64, policy: &BreakerPolicy) {
        if !policy.enabled() {
            return;
        }
        let open = Breaker::Open {
            until_ms: now_ms.saturating_add(policy.cooldown_ms),
        };
        *self = match *self {
            Breaker::Closed { failures } => {
                let failures = failures.saturating_add(1);
                if failures >= policy.failure_threshold {
                    open
                } else {
                    Breaker::Closed { failures }
                }
            }
            // A failed probe, or a failure reported while another instance probes.
            Breaker::HalfOpen { .. } | Breaker::Open { .. } => open,
        };
    }

    /// Milliseconds until the breaker admits a probe; 0 when it admits requests now.
    pub fn refused_for_ms(&self, now_ms: u64, policy: &BreakerPolicy) -> u64 {
        match *self {
            _ if !policy.enabled() => 0,
            Breaker::Closed { .. } => 0,
            Breaker::Open { until_ms }
            | Breaker::HalfOpen {
                probe_until_ms: until_ms,
            } => until_ms.saturating_sub(now_ms),
        }
    }

    pub fn to_bytes(self) -> Vec<u8> {
        // Serializing a plain enum of integers cannot fail.
        serde_json::to_vec(&self).unwrap_or_default()
    }

    /// A stored state; anything unreadable (older format, corruption) counts as closed,
    /// because a breaker must never be the reason a request fails.
    pub fn from_bytes(bytes: &[u8]) -> Breaker {
        serde_json::from_slice(bytes).unwrap_or_default()
    }
}

/// The key-value key of a target's breaker. Long origin/model pairs are hashed so the
/// key stays within the key lengths stores accept.
pub fn storage_key(origin: &str, model: &str) -> String {
    const PREFIX: &str = "completion-openai/breaker/";
    let target = format!("{origin} {model}");
    if PREFIX.len() + target.len() <= 200 {
        format!("{PREFIX}{target}")
    } else {
        format!("{PREFIX}#{:016x}", fnv1a(target.as_bytes()))
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failure_threshold: 3,
        cooldown_ms: 30_000,
    };

    fn failed(times: u32, now_ms: u64) -> Breaker {
        let mut breaker = Breaker::default();
        for _ in 0..times {
            breaker.record_failure(now_ms, &POLICY);
        }
        breaker
    }

    #[test]
    fn a_closed_breaker_admits_and_counts_consecutive_failures() {
        let mut breaker = failed(2, 1_000);
        assert_eq!(breaker, Breaker::Closed { failures: 2 });
        assert_eq!(breaker.admit(1_000, &POLICY), Admission::Allowed);
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let mut breaker = failed(2, 1_000);
        breaker.record_success();
        breaker.record_failure(2_000, &POLICY);
        assert_eq!(breaker, Breaker::Closed { failures: 1 });
    }

    #[test]
    fn the_threshold_opens_the_breaker_for_the_cooldown() {
        let mut breaker = failed(3, 1_000);
        assert_eq!(breaker, Breaker::Open { until_ms: 31_000 });
        assert_eq!(breaker.admit(1_001, &POLICY), Admission::Refused);
        assert_eq!(breaker.admit(30_999, &POLICY), Admission::Refused);
        assert_eq!(breaker.refused_for_ms(21_000, &POLICY), 10_000);
    }

    #[test]
    fn after_the_cooldown_exactly_one_probe_is_admitted() {
        let mut breaker = failed(3, 1_000);
        assert_eq!(breaker.admit(31_000, &POLICY), Admission::Probe);
        assert_eq!(
            breaker,
            Breaker::HalfOpen {
                probe_until_ms: 61_000
            }
        );
        // Another request while the probe is in flight.
        assert_eq!(breaker.admit(31_500, &POLICY), Admission::Refused);
    }

    #[test]
    fn a_successful_probe_closes_the_breaker() {
        let mut breaker = failed(3, 1_000);
        breaker.admit(31_000, &POLICY);
        breaker.record_success();
        assert_eq!(breaker, Breaker::Closed { failures: 0 });
        assert_eq!(breaker.admit(31_001, &POLICY), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_opens_the_breaker_for_another_cooldown() {
        let mut breaker = failed(3, 1_000);
        breaker.admit(31_000, &POLICY);
        breaker.record_failure(32_000, &POLICY);
        assert_eq!(breaker, Breaker::Open { until_ms: 62_000 });
        assert_eq!(breaker.admit(40_000, &POLICY), Admission::Refused);
    }

    #[test]
    fn a_probe_that_never_reported_is_replaced_after_a_cooldown() {
        let mut breaker = failed(3, 1_000);
        breaker.admit(31_000, &POLICY);
        assert_eq!(breaker.admit(60_999, &POLICY), Admission::Refused);
        assert_eq!(breaker.admit(61_000, &POLICY), Admission::Probe);
    }

    #[test]
    fn a_zero_threshold_disables_the_breaker() {
        let off = BreakerPolicy {
            failure_threshold: 0,
            cooldown_ms: 30_000,
        };
        let mut breaker = Breaker::default();
        for _ in 0..100 {
            breaker.record_failure(1_000, &off);
        }
        assert_eq!(breaker.admit(1_000, &off), Admission::Allowed);
        // A state stored while it was enabled is ignored too.
        let mut open = Breaker::Open { until_ms: 99_000 };
        assert_eq!(open.admit(1_000, &off), Admission::Allowed);
    }

    #[test]
    fn state_round_trips_and_garbage_reads_as_closed() {
        for state in [
            Breaker::Closed { failures: 4 },
            Breaker::Open { until_ms: 9 },
            Breaker::HalfOpen { probe_until_ms: 7 },
        ] {
            assert_eq!(Breaker::from_bytes(&state.to_bytes()), state);
        }
        assert_eq!(Breaker::from_bytes(b"\xff not json"), Breaker::default());
        assert_eq!(
            Breaker::from_bytes(br#"{"state":"melted"}"#),
            Breaker::default()
        );
    }

    #[test]
    fn storage_keys_name_the_target_and_stay_short() {
        assert_eq!(
            storage_key("https://a.openai.azure.com", "gpt-4o"),
            "completion-openai/breaker/https://a.openai.azure.com gpt-4o"
        );
        let long = "m".repeat(500);
        let key = storage_key("https://a.example", &long);
        assert!(key.len() < 64, "{key}");
        assert_ne!(key, storage_key("https://b.example", &long));
    }
}
