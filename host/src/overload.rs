//! Overload detection from scheduler lag: how late a periodic timer task runs.
//!
//! The in-flight limit bounds how many requests hold an instance, but not how much CPU
//! they want: a few hundred requests that each need a couple of milliseconds of guest
//! time can keep both cores busy for longer than the requests arrive apart. Past that
//! point every request waits behind all the others, latency grows with the backlog,
//! the backlog grows with latency, and the gateway stays overloaded long after the
//! surge that caused it (the 600 s soak of issue 9 tipped into that state after 370 s
//! and did not come back while the faults lasted).
//!
//! Latency of the scheduler itself is the signal that needs no tuning per workload: a
//! timer task that should run every [`TICK`] runs late by roughly the time the runnable
//! work ahead of it takes. Requests that only wait (on an upstream, on a client) cost
//! no lag, so slow upstreams do not trigger shedding; CPU-bound backlog does. While the
//! lag has stayed above [`LagDetector::target`] for [`LagDetector::interval`], new
//! requests are refused at once with 503 and `Retry-After` (the cheapest possible
//! answer), which lets the backlog drain; the first sample back under the target
//! admits again. This is CoDel's rule (act on a standing delay, not on a spike)
//! applied to the runtime rather than to one queue.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How often the lag is sampled.
pub const TICK: Duration = Duration::from_millis(10);

/// Decides from lag samples whether the gateway is overloaded.
pub struct LagDetector {
    target: Duration,
    interval: Duration,
    /// When the current run of samples above the target began (its first tick's due time).
    above_since: Mutex<Option<Instant>>,
    overloaded: AtomicBool,
    last_lag_micros: AtomicU64,
}

impl LagDetector {
    /// Overloaded once the lag has stayed above `target` for `interval`. A zero
    /// `target` turns detection off.
    pub fn new(target: Duration, interval: Duration) -> Self {
        LagDetector {
            target,
            interval,
            above_since: Mutex::new(None),
            overloaded: AtomicBool::new(false),
            last_lag_micros: AtomicU64::new(0),
        }
    }

    /// The lag above which the scheduler counts as behind.
    pub fn target(&self) -> Duration {
        self.target
    }

    /// How long the lag must stay above the target before requests are shed.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// Records that a tick due at `due` ran at `now`.
    pub fn record(&self, due: Instant, now: Instant) {
        let lag = now.saturating_duration_since(due);
        self.last_lag_micros.store(
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if self.target.is_zero() {
            return;
        }
        let mut above_since = self.above_since.lock().unwrap_or_else(|e| e.into_inner());
        if lag <= self.target {
            *above_since = None;
            self.overloaded.store(false, Ordering::Release);
            return;
        }
        // The scheduler has been behind since the tick was due, not since it ran.
        let since = *above_since.get_or_insert(due);
        if now.saturating_duration_since(since) >= self.interval {
            self.overloaded.store(true, Ordering::Release);
        }
    }

    /// Whether new requests should be shed.
    pub fn overloaded(&self) -> bool {
        self.overloaded.load(Ordering::Acquire)
    }

    /// The lag of the latest sample.
    pub fn last_lag(&self) -> Duration {
        Duration::from_micros(self.last_lag_micros.load(Ordering::Relaxed))
    }
}

/// Samples the lag of the current runtime every [`TICK`] into `detector`, until the
/// returned task is aborted.
pub fn watch(detector: std::sync::Arc<LagDetector>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(TICK);
        // A late tick is measured once; catching up with a burst of ticks would
        // report the backlog as gone while it is not.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let due = interval.tick().await;
            detector.record(due.into_std(), tokio::time::Instant::now().into_std());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TARGET: Duration = Duration::from_millis(50);
    const INTERVAL: Duration = Duration::from_millis(200);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_single_late_tick_under_the_interval_is_not_overload() {
        let detector = LagDetector::new(TARGET, INTERVAL);
        let start = Instant::now();
        detector.record(start, start + ms(120));
        assert!(!detector.overloaded());
        assert_eq!(detector.last_lag(), ms(120));
    }

    #[test]
    fn lag_that_stays_above_the_target_for_the_interval_is_overload() {
        let detector = LagDetector::new(TARGET, INTERVAL);
        let start = Instant::now();
        let mut due = start;
        for _ in 0..3 {
            detector.record(due, due + ms(60));
            assert!(!detector.overloaded());
            due += ms(50);
        }
        detector.record(due, due + ms(60));
        assert!(
            detector.overloaded(),
            "above the target since {start:?} for 210 ms"
        );
    }

    #[test]
    fn one_tick_late_by_more_than_the_interval_is_overload_at_once() {
        let detector = LagDetector::new(TARGET, INTERVAL);
        let due = Instant::now();
        detector.record(due, due + ms(400));
        assert!(detector.overloaded());
    }

    #[test]
    fn the_first_tick_back_under_the_target_ends_overload() {
        let detector = LagDetector::new(TARGET, INTERVAL);
        let due = Instant::now();
        detector.record(due, due + ms(400));
        assert!(detector.overloaded());
        detector.record(due + ms(410), due + ms(415));
        assert!(!detector.overloaded());
        // And the next run above the target needs the whole interval again.
        detector.record(due + ms(500), due + ms(560));
        assert!(!detector.overloaded());
    }

    #[test]
    fn a_zero_target_never_sheds() {
        let detector = LagDetector::new(Duration::ZERO, INTERVAL);
        let due = Instant::now();
        detector.record(due, due + Duration::from_secs(5));
        assert!(!detector.overloaded());
        assert_eq!(detector.last_lag(), Duration::from_secs(5));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_runtime_kept_busy_is_seen_as_overloaded_until_it_catches_up() {
        let detector = std::sync::Arc::new(LagDetector::new(TARGET, INTERVAL));
        let watcher = watch(detector.clone());
        tokio::time::sleep(ms(20)).await;
        // Blocking the only thread is what a backlog of guest work does to the ticker.
        std::thread::sleep(ms(300));
        tokio::task::yield_now().await;
        assert!(detector.overloaded(), "lag {:?}", detector.last_lag());
        // Bounded by the test harness, not asserted: a loaded machine may take longer.
        while detector.overloaded() {
            tokio::time::sleep(TICK).await;
        }
        assert!(detector.last_lag() <= TARGET);
        watcher.abort();
    }
}
