//! Which failures are retried, which target the next attempt goes to, and how long
//! to wait before it.
//!
//! The targets (origin + model/deployment) are tried in rounds: each round tries every
//! target once, in order, so a transient failure (a 429, a 5xx, a timeout) moves on to
//! the next target at once, and only a round that failed everywhere is followed by a
//! backoff. Backoff is "full jitter": random in `[0, min(cap, base * 2^(round-1))]`,
//! but never earlier than a delay the upstream asked for (`retry-after-ms`,
//! `Retry-After`), which holds back only the target that asked. Nothing waits past
//! the deadline: a wait that would end after it ends the call instead, with the last
//! error (a rate limit then carries the time the upstream asked us to wait).
//!
//! Time is milliseconds since the call started; randomness and the circuit breaker
//! are passed in, so all of this is tested natively.

use chatgate_rag::completion::CompletionError;

/// The longest backoff between rounds, however many retries are configured.
pub const MAX_BACKOFF_MS: u64 = 30_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Rounds over the targets after the first one.
    pub max_retries: u32,
    /// The backoff cap of the first retry round; it doubles every round.
    pub base_delay_ms: u64,
    /// No attempt starts, and no wait ends, this long after the call started.
    pub deadline_ms: u64,
}

/// Where a failed attempt leaves the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disposition {
    /// Transient: go on to the other targets, and to this one again after a backoff.
    Retry,
    /// This target cannot serve the request (credentials, a missing deployment, broken
    /// answers), another may: go on to the next target, never back to this one.
    NextTarget,
    /// No target can serve the request as given: the call ends with this error.
    Stop,
}

/// What a failed attempt says about the target's health, for its circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Failing,
    /// The target works and refused this request (rate limit, client error).
    Neutral,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: CompletionError,
    pub disposition: Disposition,
    pub health: Health,
    /// The delay the upstream asked for before the next attempt.
    pub retry_after_ms: Option<u64>,
}

impl Failure {
    /// A non-2xx answer, `error` being its mapping (see `errors::error_for_status`).
    pub fn status(status: u16, error: CompletionError, retry_after_ms: Option<u64>) -> Failure {
        use Disposition::*;
        use Health::*;
        let (disposition, health) = match status {
            _ if matches!(error, CompletionError::ContentFiltered(_)) => (Stop, Neutral),
            429 => (Retry, Neutral),
            500 | 502 | 503 | 504 => (Retry, Failing),
            // Our credentials or the deployment of this target; the next target has its own.
            401 | 403 | 404 => (NextTarget, Neutral),
            // The request itself: every target would refuse it.
            400 | 413 | 422 => (Stop, Neutral),
            408 | 500..=599 => (NextTarget, Failing),
            _ => (NextTarget, Neutral),
        };
        Failure {
            error,
            disposition,
            health,
            retry_after_ms,
        }
    }

    /// The HTTP exchange broke or stalled: connection refused or reset, timeouts, a
    /// body cut short.
    pub fn transport(error: CompletionError) -> Failure {
        Failure {
            error,
            disposition: Disposition::Retry,
            health: Health::Failing,
            retry_after_ms: None,
        }
    }

    /// A 2xx answer that is unusable (`internal`: wrong content type, malformed JSON)
    /// or carries an error object (an error event before the first delta, a proxy's
    /// error body), mapped by `errors::error_for_error_object`.
    pub fn answer(error: CompletionError) -> Failure {
        use Disposition::*;
        use Health::*;
        let (disposition, health) = match &error {
            CompletionError::Internal(_) => (NextTarget, Failing),
            CompletionError::UpstreamUnavailable(_) | CompletionError::Timeout(_) => {
                (Retry, Failing)
            }
            CompletionError::RateLimited { .. } => (Retry, Neutral),
            CompletionError::Unauthorized(_) => (NextTarget, Neutral),
            CompletionError::InvalidRequest { .. } | CompletionError::ContentFiltered(_) => {
                (Stop, Neutral)
            }
        };
        Failure {
            error,
            disposition,
            health,
            retry_after_ms: None,
        }
    }

    /// Nothing was sent: the request or the configuration is at fault (outbound host
    /// not allowed, no credential).
    pub fn local(error: CompletionError) -> Failure {
        Failure {
            error,
            disposition: Disposition::Stop,
            health: Health::Neutral,
            retry_after_ms: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send the request to the target with this index.
    Attempt(usize),
    /// Sleep this many milliseconds, then ask again.
    Wait(u64),
    GiveUp(CompletionError),
}

#[derive(Debug, Clone, Copy, Default)]
struct TargetState {
    excluded: bool,
    /// Not before this time: set from a delay the upstream asked for.
    ready_at_ms: u64,
}

#[derive(Debug)]
pub struct Planner {
    policy: RetryPolicy,
    targets: Vec<TargetState>,
    round: u32,
    position: usize,
    attempted_in_round: bool,
    deferred_in_round: bool,
    attempts: u32,
    last_error: Option<CompletionError>,
    stopped: Option<CompletionError>,
}

impl Planner {
    pub fn new(policy: RetryPolicy, target_count: usize) -> Planner {
        Planner {
            policy,
            targets: vec![TargetState::default(); target_count],
            round: 0,
            position: 0,
            attempted_in_round: false,
            deferred_in_round: false,
            attempts: 0,
            last_error: None,
            stopped: None,
        }
    }

    /// Attempts started so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The next step at `now_ms`. `admit` asks the target's circuit breaker (and may
    /// change its state, so it is only asked for the target about to be tried);
    /// `random` feeds the jitter.
    pub fn next(
        &mut self,
        now_ms: u64,
        mut random: impl FnMut() -> u64,
        mut admit: impl FnMut(usize) -> bool,
    ) -> Step {
        if let Some(error) = &self.stopped {
            return Step::GiveUp(error.clone());
        }
        if now_ms >= self.policy.deadline_ms {
            return Step::GiveUp(self.final_error(now_ms));
        }
        loop {
            while self.position < self.targets.len() {
                let index = self.position;
                self.position += 1;
                let target = self.targets[index];
                if target.excluded {
                    continue;
                }
                if target.ready_at_ms > now_ms {
                    self.deferred_in_round = true;
                    continue;
                }
                if !admit(index) {
                    continue;
                }
                self.attempted_in_round = true;
                self.attempts += 1;
                return Step::Attempt(index);
            }

            // The round is over.
            let nothing_to_wait_for = !self.attempted_in_round && !self.deferred_in_round;
            let earliest_ready = self
                .targets
                .iter()
                .filter(|t| !t.excluded)
                .map(|t| t.ready_at_ms)
                .min();
            let Some(earliest_ready) = earliest_ready else {
                return Step::GiveUp(self.final_error(now_ms));
            };
            // Every remaining target was refused by its breaker: fail fast.
            if nothing_to_wait_for || self.round >= self.policy.max_retries {
                return Step::GiveUp(self.final_error(now_ms));
            }
            self.round += 1;
            self.position = 0;
            self.attempted_in_round = false;
            self.deferred_in_round = false;
            let backoff = full_jitter(self.round, self.policy.base_delay_ms, random());
            let wake_ms = earliest_ready.max(now_ms.saturating_add(backoff));
            if wake_ms >= self.policy.deadline_ms {
                return Step::GiveUp(self.final_error(now_ms));
            }
            if wake_ms > now_ms {
                return Step::Wait(wake_ms - now_ms);
            }
        }
    }

    /// Records the failure of the attempt on `target` that ended at `now_ms`.
    pub fn failed(&mut self, target: usize, now_ms: u64, failure: &Failure) {
        self.last_error = Some(failure.error.clone());
        let Some(state) = self.targets.get_mut(target) else {
            return;
        };
        match failure.disposition {
            Disposition::Stop => self.stopped = Some(failure.error.clone()),
            Disposition::NextTarget => state.excluded = true,
            Disposition::Retry => {
                if let Some(delay) = failure.retry_after_ms {
                    state.ready_at_ms = now_ms.saturating_add(delay);
                }
            }
        }
    }

    /// The error the call ends with: the last failure, a rate limit carrying how long
    /// the upstream still wants us to wait; or, if nothing was tried, why.
    fn final_error(&self, now_ms: u64) -> CompletionError {
        match &self.last_error {
            Some(CompletionError::RateLimited {
                retry_after_seconds,
                message,
            }) => {
                let requested_wait_ms = self
                    .targets
                    .iter()
                    .filter(|t| !t.excluded)
                    .map(|t| t.ready_at_ms.saturating_sub(now_ms))
                    .min()
                    .unwrap_or(0);
                let requested_seconds =
                    u32::try_from(requested_wait_ms.div_ceil(1000)).unwrap_or(u32::MAX);
                CompletionError::RateLimited {
                    retry_after_seconds: if requested_seconds > 0 {
                        requested_seconds
                    } else {
                        *retry_after_seconds
                    },
                    message: message.clone(),
                }
            }
            Some(error) => error.clone(),
            None if self.attempts == 0 && now_ms < self.policy.deadline_ms => {
                CompletionError::UpstreamUnavailable(
                    "the upstream is failing: the circuit breaker of every target is open".into(),
                )
            }
            None => CompletionError::Timeout(
                "the upstream could not be tried within openai_timeout_ms".into(),
            ),
        }
    }
}

/// A backoff in `[0, min(MAX_BACKOFF_MS, base * 2^(round-1))]`, scaled by `random`
/// (uniform over all `u64`: 0 gives no wait, `u64::MAX` the whole cap).
pub fn full_jitter(round: u32, base_delay_ms: u64, random: u64) -> u64 {
    let factor = 1u64
        .checked_shl(round.saturating_sub(1))
        .unwrap_or(u64::MAX);
    let cap = base_delay_ms.saturating_mul(factor).min(MAX_BACKOFF_MS);
    let scaled = u128::from(cap) * u128::from(random) / u128::from(u64::MAX);
    // `scaled` <= `cap`, so it fits.
    u64::try_from(scaled).unwrap_or(cap)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 2,
        base_delay_ms: 100,
        deadline_ms: 10_000,
    };

    fn unavailable() -> Failure {
        Failure::status(
            503,
            CompletionError::UpstreamUnavailable("503".into()),
            None,
        )
    }

    fn rate_limited(retry_after_ms: Option<u64>) -> Failure {
        Failure::status(
            429,
            CompletionError::RateLimited {
                retry_after_seconds: 1,
                message: "slow down".into(),
            },
            retry_after_ms,
        )
    }

    /// The steps of a call whose attempts fail as `outcome` says (by target and
    /// attempt number), with the maximal jitter, every target admitted.
    fn run(
        policy: RetryPolicy,
        targets: usize,
        mut outcome: impl FnMut(usize, u32) -> Option<Failure>,
    ) -> (Vec<Step>, Result<usize, CompletionError>) {
        let mut planner = Planner::new(policy, targets);
        let mut now = 0;
        let mut steps = Vec::new();
        loop {
            let step = planner.next(now, || u64::MAX, |_| true);
            steps.push(step.clone());
            match step {
                Step::Attempt(target) => match outcome(target, planner.attempts()) {
                    None => return (steps, Ok(target)),
                    Some(failure) => planner.failed(target, now, &failure),
                },
                Step::Wait(ms) => now += ms,
                Step::GiveUp(error) => return (steps, Err(error)),
            }
        }
    }

    #[test]
    fn success_needs_one_attempt() {
        let (steps, result) = run(POLICY, 2, |_, _| None);
        assert_eq!(steps, [Step::Attempt(0)]);
        assert_eq!(result, Ok(0));
    }

    #[test]
    fn a_server_error_is_retried_after_a_backoff() {
        let (steps, result) = run(POLICY, 1, |_, attempt| (attempt == 1).then(unavailable));
        assert_eq!(steps, [Step::Attempt(0), Step::Wait(100), Step::Attempt(0)]);
        assert_eq!(result, Ok(0));
    }

    #[test]
    fn backoff_doubles_each_round_and_retries_are_bounded() {
        let (steps, result) = run(POLICY, 1, |_, _| Some(unavailable()));
        assert_eq!(
            steps,
            [
                Step::Attempt(0),
                Step::Wait(100),
                Step::Attempt(0),
                Step::Wait(200),
                Step::Attempt(0),
                Step::GiveUp(CompletionError::UpstreamUnavailable("503".into())),
            ]
        );
        assert_eq!(
            result,
            Err(CompletionError::UpstreamUnavailable("503".into()))
        );
    }

    #[test]
    fn full_jitter_is_bounded_by_the_doubling_cap() {
        assert_eq!(full_jitter(1, 100, 0), 0);
        assert_eq!(full_jitter(1, 100, u64::MAX / 2), 49);
        assert_eq!(full_jitter(1, 100, u64::MAX), 100);
        assert_eq!(full_jitter(3, 100, u64::MAX), 400);
        assert_eq!(full_jitter(40, 1000, u64::MAX), MAX_BACKOFF_MS);
        assert_eq!(full_jitter(200, u64::MAX, u64::MAX), MAX_BACKOFF_MS);
    }

    #[test]
    fn a_transient_failure_fails_over_to_the_next_target_before_backing_off() {
        let (steps, result) = run(POLICY, 3, |target, _| (target == 0).then(unavailable));
        assert_eq!(steps, [Step::Attempt(0), Step::Attempt(1)]);
        assert_eq!(result, Ok(1));
    }

    #[test]
    fn a_rate_limit_fails_over_at_once_even_when_it_asks_for_a_wait() {
        let (steps, result) = run(POLICY, 2, |target, _| {
            (target == 0).then(|| rate_limited(Some(5_000)))
        });
        assert_eq!(steps, [Step::Attempt(0), Step::Attempt(1)]);
        assert_eq!(result, Ok(1));
    }

    #[test]
    fn retry_after_is_honoured_instead_of_a_shorter_backoff() {
        let (steps, result) = run(POLICY, 1, |_, attempt| {
            (attempt == 1).then(|| rate_limited(Some(1_500)))
        });
        assert_eq!(
            steps,
            [Step::Attempt(0), Step::Wait(1_500), Step::Attempt(0)]
        );
        assert_eq!(result, Ok(0));
    }

    #[test]
    fn a_requested_delay_holds_back_only_the_target_that_asked() {
        // Target 0 asks for 5 s, target 1 just fails: the next round goes to target 1
        // after the backoff, skipping target 0.
        let (steps, _) = run(POLICY, 2, |target, attempt| match (target, attempt) {
            (0, _) => Some(rate_limited(Some(5_000))),
            (1, 2) => Some(unavailable()),
            _ => None,
        });
        assert_eq!(
            steps,
            [
                Step::Attempt(0),
                Step::Attempt(1),
                Step::Wait(100),
                Step::Attempt(1)
            ]
        );
    }

    #[test]
    fn a_requested_delay_past_the_deadline_gives_up_with_the_rate_limit_at_once() {
        let (steps, result) = run(POLICY, 1, |_, _| Some(rate_limited(Some(42_500))));
        assert_eq!(steps.len(), 2, "{steps:?}");
        assert_eq!(
            result,
            Err(CompletionError::RateLimited {
                retry_after_seconds: 43,
                message: "slow down".into()
            })
        );
    }

    #[test]
    fn no_wait_ends_after_the_deadline() {
        let policy = RetryPolicy {
            deadline_ms: 150,
            ..POLICY
        };
        let (steps, result) = run(policy, 1, |_, _| Some(unavailable()));
        // The first backoff (100) fits, the second (200) would end after 150.
        assert_eq!(steps.len(), 4, "{steps:?}");
        assert!(result.is_err());
        let mut planner = Planner::new(policy, 1);
        assert!(matches!(
            planner.next(150, || 0, |_| true),
            Step::GiveUp(CompletionError::Timeout(_))
        ));
    }

    #[test]
    fn client_errors_are_never_retried() {
        for status in [400, 413, 422] {
            let failure = Failure::status(status, CompletionError::invalid_request("bad"), None);
            let (steps, result) = run(POLICY, 3, |_, _| Some(failure.clone()));
            assert_eq!(steps.len(), 2, "{status}: {steps:?}");
            assert_eq!(result, Err(CompletionError::invalid_request("bad")));
        }
        let filtered = Failure::status(
            404,
            CompletionError::ContentFiltered("filtered".into()),
            None,
        );
        let (steps, _) = run(POLICY, 3, |_, _| Some(filtered.clone()));
        assert_eq!(steps.len(), 2, "{steps:?}");
    }

    #[test]
    fn credential_and_not_found_failures_move_on_but_never_come_back() {
        for status in [401, 403, 404] {
            let failure = Failure::status(status, CompletionError::Unauthorized("no".into()), None);
            let (steps, result) = run(POLICY, 2, |_, _| Some(failure.clone()));
            assert_eq!(
                steps,
                [
                    Step::Attempt(0),
                    Step::Attempt(1),
                    Step::GiveUp(CompletionError::Unauthorized("no".into()))
                ],
                "{status}"
            );
            assert!(result.is_err());
        }
    }

    #[test]
    fn a_malformed_answer_moves_on_without_retrying_that_target() {
        let broken = Failure::answer(CompletionError::Internal("text/html".into()));
        let (steps, result) = run(POLICY, 2, |target, _| (target == 0).then(|| broken.clone()));
        assert_eq!(steps, [Step::Attempt(0), Step::Attempt(1)]);
        assert_eq!(result, Ok(1));
        let (steps, _) = run(POLICY, 1, |_, _| Some(broken.clone()));
        assert_eq!(steps.len(), 2, "{steps:?}");
    }

    #[test]
    fn targets_refused_by_their_breaker_are_skipped() {
        let mut planner = Planner::new(POLICY, 3);
        assert_eq!(planner.next(0, || 0, |i| i == 2), Step::Attempt(2));
    }

    #[test]
    fn every_breaker_open_fails_fast_without_an_attempt() {
        let mut planner = Planner::new(POLICY, 2);
        match planner.next(0, || 0, |_| false) {
            Step::GiveUp(CompletionError::UpstreamUnavailable(message)) => {
                assert!(message.contains("circuit breaker"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(planner.attempts(), 0);
    }

    #[test]
    fn a_breaker_that_opens_during_the_call_ends_it_with_the_last_error() {
        let mut planner = Planner::new(POLICY, 1);
        assert_eq!(planner.next(0, || 0, |_| true), Step::Attempt(0));
        planner.failed(0, 0, &unavailable());
        assert_eq!(
            planner.next(0, || 0, |_| false),
            Step::GiveUp(CompletionError::UpstreamUnavailable("503".into()))
        );
    }

    #[test]
    fn failures_are_classified() {
        use Disposition::*;
        use Health::*;
        let of = |f: Failure| (f.disposition, f.health);
        let down = || CompletionError::UpstreamUnavailable("x".into());
        for status in [500, 502, 503, 504] {
            assert_eq!(of(Failure::status(status, down(), None)), (Retry, Failing));
        }
        assert_eq!(
            of(rate_limited(None)),
            (Retry, Neutral),
            "a throttling target is healthy"
        );
        assert_eq!(
            of(Failure::status(501, down(), None)),
            (NextTarget, Failing)
        );
        assert_eq!(
            of(Failure::transport(CompletionError::Timeout("t".into()))),
            (Retry, Failing)
        );
        assert_eq!(of(Failure::answer(down())), (Retry, Failing));
        assert_eq!(
            of(Failure::answer(CompletionError::invalid_request("x"))),
            (Stop, Neutral)
        );
        assert_eq!(
            of(Failure::local(CompletionError::Internal("denied".into()))),
            (Stop, Neutral)
        );
    }
}
