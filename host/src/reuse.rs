//! Instance reuse, with the settings and defaults of Spin 4.x's HTTP trigger for WASIp3
//! components (`crates/trigger-http/src/lib.rs` and `server.rs` in Spin's source, read
//! for this module, not run): an instance serves up to 128 requests in total, up to 16
//! at once, and is dropped after 1 s without work. Each setting is a value or a range
//! `a..b`, from which every new instance draws its own value uniformly in `[a, b)`, so
//! that instances created together do not all retire together.
//!
//! What reuse means for a component: module-level state (a `static`, a `OnceLock`) lives
//! as long as the instance, across requests of different clients, and several requests
//! may run in one instance at once. Anything that belongs to one request must be computed
//! from that request; a cache kept across requests must hold nothing one client may not
//! see of another's. `--max-instance-reuse-count 1` gives every request a fresh instance.

use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

/// A setting of one value, or a range `[start, end)` each instance draws its own from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range<T> {
    Value(T),
    Bounds(T, T),
}

impl<T: Copy> Range<T> {
    /// The smallest value an instance can draw.
    pub fn min(&self) -> T {
        match *self {
            Range::Value(v) | Range::Bounds(v, _) => v,
        }
    }
}

impl<T> From<T> for Range<T> {
    fn from(value: T) -> Self {
        Range::Value(value)
    }
}

impl Range<usize> {
    /// The value for a new instance.
    pub fn draw(&self) -> usize {
        match *self {
            Range::Value(v) => v,
            Range::Bounds(start, end) => fastrand::usize(start..end),
        }
    }
}

impl Range<Duration> {
    /// The value for a new instance.
    pub fn draw(&self) -> Duration {
        match *self {
            Range::Value(v) => v,
            Range::Bounds(start, end) => {
                let span = u64::try_from((end - start).as_nanos()).unwrap_or(u64::MAX);
                start + Duration::from_nanos(fastrand::u64(0..span))
            }
        }
    }
}

/// Why a setting does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}`: {reason}")]
pub struct RangeError {
    text: String,
    reason: String,
}

fn parse_range<T: PartialOrd>(
    text: &str,
    parse: impl Fn(&str) -> Result<T, String>,
) -> Result<Range<T>, RangeError> {
    let error = |reason: String| RangeError {
        text: text.to_owned(),
        reason,
    };
    match text.trim().split_once("..") {
        Some((start, end)) => {
            let (start, end) = (
                parse(start.trim()).map_err(error)?,
                parse(end.trim()).map_err(error)?,
            );
            // Spin's range is half-open (`rand`'s `a..b`): an empty one has no value to draw.
            if start >= end {
                return Err(error(
                    "the range is empty: its end must be above its start".into(),
                ));
            }
            Ok(Range::Bounds(start, end))
        }
        None => Ok(Range::Value(parse(text.trim()).map_err(error)?)),
    }
}

/// A count of at least one: `16` or `8..32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountRange(pub Range<usize>);

impl FromStr for CountRange {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, RangeError> {
        parse_range(text, |part| match part.parse::<usize>() {
            // Zero would leave a new instance unable to serve the request it was made for.
            Ok(0) => Err("must be at least 1".into()),
            Ok(n) => Ok(n),
            Err(e) => Err(format!("expected an integer or a range like 1..8 ({e})")),
        })
        .map(CountRange)
    }
}

/// A duration or a range of them, in Spin's syntax: a number alone is seconds, or it
/// carries `s`, `ms`, `us` / `μs` or `ns` (and, beyond Spin, `m` for minutes): `1s`,
/// `500ms`, `1..8s` (each end has its own unit; the bare `1` is seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DurationRange(pub Range<Duration>);

impl FromStr for DurationRange {
    type Err = RangeError;

    fn from_str(text: &str) -> Result<Self, RangeError> {
        parse_range(text, |part| match parse_duration(part) {
            Ok(d) if d.is_zero() => Err("must be longer than zero".into()),
            other => other,
        })
        .map(DurationRange)
    }
}

/// One duration in Spin's syntax (see [`DurationRange`]).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let number = |digits: &str| {
        digits.parse::<u64>().map_err(|e| {
            format!("expected a number suffixed by `s`, `ms`, `us`, `μs`, `ns` or `m` ({e})")
        })
    };
    if let Ok(seconds) = text.parse::<u64>() {
        return Ok(Duration::from_secs(seconds));
    }
    // Longest suffixes first: `ms` before `s` and `m`.
    for (suffix, unit) in [
        ("ms", Duration::from_millis as fn(u64) -> Duration),
        ("us", Duration::from_micros),
        ("μs", Duration::from_micros),
        ("ns", Duration::from_nanos),
        ("s", Duration::from_secs),
        ("m", |m: u64| Duration::from_secs(m.saturating_mul(60))),
    ] {
        if let Some(digits) = text.strip_suffix(suffix) {
            return number(digits).map(unit);
        }
    }
    Err(format!(
        "expected a number suffixed by `s`, `ms`, `us`, `μs`, `ns` or `m`, got `{text}`"
    ))
}

/// How instances of a trigger's component are reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceReuse {
    /// Requests one instance serves in total before it is retired
    /// (`--max-instance-reuse-count`).
    pub max_requests: Range<usize>,
    /// Requests one instance serves at once (`--max-instance-concurrent-reuse-count`).
    pub max_concurrent: Range<usize>,
    /// How long an instance without work is kept for the next request
    /// (`--idle-instance-timeout`).
    pub idle_timeout: Range<Duration>,
}

impl InstanceReuse {
    /// A fresh instance for every request.
    pub const SINGLE_USE: InstanceReuse = InstanceReuse {
        max_requests: Range::Value(1),
        max_concurrent: Range::Value(1),
        idle_timeout: Range::Value(Duration::from_secs(1)),
    };
}

impl Default for InstanceReuse {
    /// Spin 4.x's defaults for WASIp3 components.
    fn default() -> Self {
        InstanceReuse {
            max_requests: Range::Value(128),
            max_concurrent: Range::Value(16),
            idle_timeout: Range::Value(Duration::from_secs(1)),
        }
    }
}

impl<T: Display> Display for Range<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Range::Value(v) => write!(f, "{v}"),
            Range::Bounds(a, b) => write!(f, "{a}..{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_a_value_or_a_half_open_range_of_at_least_one() {
        assert_eq!("16".parse(), Ok(CountRange(Range::Value(16))));
        assert_eq!("1..8".parse(), Ok(CountRange(Range::Bounds(1, 8))));
        assert!("0".parse::<CountRange>().is_err());
        assert!("0..4".parse::<CountRange>().is_err());
        assert!("8..8".parse::<CountRange>().is_err(), "empty range");
        assert!("8..2".parse::<CountRange>().is_err(), "reversed range");
        assert!("many".parse::<CountRange>().is_err());
        assert!("-1".parse::<CountRange>().is_err());
    }

    #[test]
    fn a_duration_takes_spins_units_and_a_bare_number_is_seconds() {
        let d = |s: &str| s.parse::<DurationRange>().map(|r| r.0);
        assert_eq!(d("1"), Ok(Range::Value(Duration::from_secs(1))));
        assert_eq!(d("2s"), Ok(Range::Value(Duration::from_secs(2))));
        assert_eq!(d("250ms"), Ok(Range::Value(Duration::from_millis(250))));
        assert_eq!(d("10us"), Ok(Range::Value(Duration::from_micros(10))));
        assert_eq!(d("10μs"), Ok(Range::Value(Duration::from_micros(10))));
        assert_eq!(d("7ns"), Ok(Range::Value(Duration::from_nanos(7))));
        assert_eq!(d("10m"), Ok(Range::Value(Duration::from_secs(600))));
        assert_eq!(
            d("1s..8s"),
            Ok(Range::Bounds(
                Duration::from_secs(1),
                Duration::from_secs(8)
            ))
        );
        assert_eq!(
            d("500ms..2"),
            Ok(Range::Bounds(
                Duration::from_millis(500),
                Duration::from_secs(2)
            ))
        );
        for bad in ["", "s", "1h", "1.5s", "0", "0ms", "2s..1s", "1s..1s", "-1s"] {
            assert!(d(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn every_draw_lies_in_the_half_open_range() {
        let counts = Range::Bounds(3usize, 6);
        let drawn: std::collections::BTreeSet<usize> = (0..500).map(|_| counts.draw()).collect();
        assert_eq!(drawn, [3, 4, 5].into_iter().collect());
        let (start, end) = (Duration::from_millis(100), Duration::from_millis(200));
        for _ in 0..500 {
            let d = Range::Bounds(start, end).draw();
            assert!(start <= d && d < end, "{d:?}");
        }
        assert_eq!(Range::Value(9usize).draw(), 9);
    }

    #[test]
    fn the_defaults_are_spins() {
        let reuse = InstanceReuse::default();
        assert_eq!(reuse.max_requests, Range::Value(128));
        assert_eq!(reuse.max_concurrent, Range::Value(16));
        assert_eq!(reuse.idle_timeout, Range::Value(Duration::from_secs(1)));
    }
}
