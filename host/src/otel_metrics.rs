//! OpenTelemetry metrics over OTLP (HTTP or gRPC, [`crate::otel_transport`]), exported
//! when metrics export is on, with or without traces (Spin's rule, [`crate::otel`]): at
//! `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as given, else `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (followed by `/v1/metrics` over HTTP: the exporter crate's rule, as for traces);
//! every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (60 s by default, the
//! specification's).
//!
//! What is measured:
//! - `http.server.request.duration` (s): every request the host serves, from its
//!   arrival to its response head, by method (a method outside HTTP's own as `_OTHER`),
//!   route and status (OpenTelemetry's HTTP
//!   semantic conventions, with their recommended bucket boundaries);
//! - `chatgate.instance.count` (`{instance}`): the component instances alive when the
//!   metrics are collected, by `chatgate.instance.state`: `used` (serving requests or
//!   finishing their work) or `idle` (kept for a next request, reclaimed when the pool
//!   is full); the two add up to every live instance. Shaped like the semantic
//!   conventions' `db.client.connection.count` (an asynchronous up-down counter with an
//!   `idle`/`used` state), since an instance pool is a pool of the same kind. Read from
//!   the application's own counts ([`Metrics::count_instances`]) at each collection, so
//!   the request path pays nothing for it;
//! - what the components measure and report through `wasi:otel/metrics`
//!   ([`Metrics::record_guest`]), for every request, traced or not: the completion
//!   components' `gen_ai.client.token.usage`, `gen_ai.client.operation.duration` and
//!   `gen_ai.server.time_to_first_token` (the GenAI semantic conventions, by provider,
//!   operation, request and response model), and the stages' refusal counters.
//!
//! A guest's measurement is merged into an instrument of the same name in the guest's
//! own instrumentation scope, created at its first measurement (at most
//! [`MAX_GUEST_INSTRUMENTS`]): a delta sum adds, a gauge sets, a delta histogram point of
//! one measurement records it (`chatgate-guest-otel` reports every measurement so).
//! Cumulative data, histogram points of several measurements and exponential
//! histograms cannot be merged into the host's aggregation: they are dropped and
//! counted ([`Metrics::dropped_guest_points`]), with a warning at the first. Spin 4
//! instead exports each `export` call to the collector as it is
//! (`crates/factor-otel/src/host.rs` at commit 94a8fc8a, read, not run), one OTLP
//! request per call; both add up the same deltas at the collector.

use opentelemetry::metrics::{
    Counter, Gauge, Histogram, Meter, MeterProvider as _, ObservableUpDownCounter, UpDownCounter,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Instruments the guests may create, all scopes together: a guest making up metric
/// names cannot grow the host's memory without bound. Measurements of further ones are
/// dropped and counted.
pub const MAX_GUEST_INSTRUMENTS: usize = 256;

// The bucket boundaries below are the semantic conventions' advisory ones, written from
// their documentation as remembered; not checked against a pinned copy of the text. The
// GenAI ones are the guests' (`chatgate_guest::genai`), which report them with each point.

/// The bucket boundaries the HTTP semantic conventions recommend for
/// `http.server.request.duration`, in seconds.
const REQUEST_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The method as `http.request.method` records it on a metric: one of HTTP's methods, or
/// `_OTHER` (the HTTP semantic conventions' rule), so that clients sending made-up
/// methods cannot grow the number of series without bound.
pub fn method_attribute(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("_OTHER")
}

/// A running metrics pipeline and its instruments.
#[derive(Debug)]
pub struct Metrics {
    provider: SdkMeterProvider,
    request_duration: Histogram<f64>,
    /// Where `chatgate.instance.count` reads the instances at each collection.
    instance_sources: Arc<InstanceSources>,
    /// Kept with the pipeline: the instrument whose callback reads `instance_sources`.
    _instance_count: ObservableUpDownCounter<i64>,
    guests: Mutex<GuestInstruments>,
    dropped_guest_points: AtomicU64,
}

/// A loaded application's instance counts: live and idle instances, or `None` once the
/// application is gone (then the source is forgotten).
type InstanceSource = Box<dyn Fn() -> Option<(usize, usize)> + Send + Sync>;

/// The applications whose instances are counted: usually one, two while a replaced
/// application's last instances finish.
#[derive(Default)]
struct InstanceSources(Mutex<Vec<InstanceSource>>);

impl std::fmt::Debug for InstanceSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InstanceSources")
    }
}

impl InstanceSources {
    /// Used and idle instances, all applications together.
    fn count(&self) -> (usize, usize) {
        let (mut live, mut idle) = (0, 0);
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|source| match source() {
                Some((l, i)) => {
                    live += l;
                    idle += i;
                    true
                }
                None => false,
            });
        // The two counters are read one after the other, not together: an instance
        // turning idle between the reads must not make `used` negative.
        (live.saturating_sub(idle), idle.min(live))
    }
}

/// The guests' instruments, by scope name, then metric name.
#[derive(Debug, Default)]
struct GuestInstruments {
    scopes: HashMap<String, (Meter, HashMap<String, Instrument>)>,
    count: usize,
}

/// One guest instrument; its kind is fixed by its first measurement.
#[derive(Debug)]
enum Instrument {
    CounterU64(Counter<u64>),
    CounterF64(Counter<f64>),
    UpDownI64(UpDownCounter<i64>),
    UpDownF64(UpDownCounter<f64>),
    GaugeU64(Gauge<u64>),
    GaugeI64(Gauge<i64>),
    GaugeF64(Gauge<f64>),
    HistogramU64(Histogram<u64>),
    HistogramF64(Histogram<f64>),
}

/// A guest's number (`wasi:otel/metrics`'s `metric-number`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    F64(f64),
    I64(i64),
    U64(u64),
}

/// One metric of a guest's `export`, in the host's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct GuestMetric {
    pub name: String,
    pub unit: String,
    pub description: String,
    pub data: GuestData,
}

/// A guest metric's data points, by kind.
#[derive(Debug, Clone, PartialEq)]
pub enum GuestData {
    Sum {
        monotonic: bool,
        delta: bool,
        points: Vec<(Vec<KeyValue>, Number)>,
    },
    Gauge {
        points: Vec<(Vec<KeyValue>, Number)>,
    },
    Histogram {
        delta: bool,
        /// Whether the instrument counts integers (`u64-histogram`).
        integer: bool,
        bounds: Vec<f64>,
        /// Each point's attributes, number of measurements and their sum.
        points: Vec<(Vec<KeyValue>, u64, Number)>,
    },
    /// Kinds the host does not merge (exponential histograms), with their point count.
    Unmerged { points: usize },
}

/// The kind of instrument a guest metric needs, and its boundaries for a histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    CounterU64,
    CounterF64,
    UpDownI64,
    UpDownF64,
    GaugeU64,
    GaugeI64,
    GaugeF64,
    HistogramU64,
    HistogramF64,
}

impl Instrument {
    fn kind(&self) -> Kind {
        match self {
            Instrument::CounterU64(_) => Kind::CounterU64,
            Instrument::CounterF64(_) => Kind::CounterF64,
            Instrument::UpDownI64(_) => Kind::UpDownI64,
            Instrument::UpDownF64(_) => Kind::UpDownF64,
            Instrument::GaugeU64(_) => Kind::GaugeU64,
            Instrument::GaugeI64(_) => Kind::GaugeI64,
            Instrument::GaugeF64(_) => Kind::GaugeF64,
            Instrument::HistogramU64(_) => Kind::HistogramU64,
            Instrument::HistogramF64(_) => Kind::HistogramF64,
        }
    }

    fn create(meter: &Meter, kind: Kind, metric: &GuestMetric, bounds: &[f64]) -> Instrument {
        let name = metric.name.clone();
        let unit = metric.unit.clone();
        let description = metric.description.clone();
        macro_rules! build {
            ($builder:ident, $variant:ident) => {
                Instrument::$variant(
                    meter
                        .$builder(name)
                        .with_unit(unit)
                        .with_description(description)
                        .build(),
                )
            };
        }
        macro_rules! histogram {
            ($builder:ident, $variant:ident) => {
                Instrument::$variant(
                    meter
                        .$builder(name)
                        .with_unit(unit)
                        .with_description(description)
                        .with_boundaries(bounds.to_vec())
                        .build(),
                )
            };
        }
        match kind {
            Kind::CounterU64 => build!(u64_counter, CounterU64),
            Kind::CounterF64 => build!(f64_counter, CounterF64),
            Kind::UpDownI64 => build!(i64_up_down_counter, UpDownI64),
            Kind::UpDownF64 => build!(f64_up_down_counter, UpDownF64),
            Kind::GaugeU64 => build!(u64_gauge, GaugeU64),
            Kind::GaugeI64 => build!(i64_gauge, GaugeI64),
            Kind::GaugeF64 => build!(f64_gauge, GaugeF64),
            Kind::HistogramU64 => histogram!(u64_histogram, HistogramU64),
            Kind::HistogramF64 => histogram!(f64_histogram, HistogramF64),
        }
    }

    /// Records `value`; false when it does not fit the instrument (a negative count).
    fn record(&self, value: Number, attributes: &[KeyValue]) -> bool {
        let as_f64 = match value {
            Number::F64(v) => v,
            Number::I64(v) => v as f64,
            Number::U64(v) => v as f64,
        };
        let as_u64 = match value {
            Number::U64(v) => Some(v),
            Number::I64(v) => u64::try_from(v).ok(),
            Number::F64(_) => None,
        };
        let as_i64 = match value {
            Number::I64(v) => Some(v),
            Number::U64(v) => i64::try_from(v).ok(),
            Number::F64(_) => None,
        };
        match (self, as_u64, as_i64) {
            (Instrument::CounterU64(c), Some(v), _) => c.add(v, attributes),
            (Instrument::CounterF64(c), _, _) if as_f64 >= 0.0 => c.add(as_f64, attributes),
            (Instrument::UpDownI64(c), _, Some(v)) => c.add(v, attributes),
            (Instrument::UpDownF64(c), _, _) => c.add(as_f64, attributes),
            (Instrument::GaugeU64(g), Some(v), _) => g.record(v, attributes),
            (Instrument::GaugeI64(g), _, Some(v)) => g.record(v, attributes),
            (Instrument::GaugeF64(g), _, _) => g.record(as_f64, attributes),
            (Instrument::HistogramU64(h), Some(v), _) => h.record(v, attributes),
            (Instrument::HistogramF64(h), _, _) if as_f64 >= 0.0 => h.record(as_f64, attributes),
            _ => return false,
        }
        true
    }
}

/// The instrument kind of a number of a sum, gauge or histogram.
fn kind_of(data: &GuestData, number: Number) -> Kind {
    match (data, number) {
        (
            GuestData::Sum {
                monotonic: true, ..
            },
            Number::F64(_),
        ) => Kind::CounterF64,
        (
            GuestData::Sum {
                monotonic: true, ..
            },
            _,
        ) => Kind::CounterU64,
        (GuestData::Sum { .. }, Number::F64(_)) => Kind::UpDownF64,
        (GuestData::Sum { .. }, _) => Kind::UpDownI64,
        (GuestData::Gauge { .. }, Number::F64(_)) => Kind::GaugeF64,
        (GuestData::Gauge { .. }, Number::U64(_)) => Kind::GaugeU64,
        (GuestData::Gauge { .. }, Number::I64(_)) => Kind::GaugeI64,
        (GuestData::Histogram { integer: true, .. }, _) => Kind::HistogramU64,
        (_, _) => Kind::HistogramF64,
    }
}

impl Metrics {
    /// Starts the periodic export through `exporter` every `interval` (`None`:
    /// `OTEL_METRIC_EXPORT_INTERVAL`, else 60 s), with `resource`.
    pub(crate) fn start(
        exporter: impl opentelemetry_sdk::metrics::exporter::PushMetricExporter,
        interval: Option<Duration>,
        resource: Resource,
    ) -> Metrics {
        let mut reader = PeriodicReader::builder(exporter);
        if let Some(interval) = interval {
            reader = reader.with_interval(interval);
        }
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader.build())
            .build();
        Metrics::with_provider(provider)
    }

    /// The instruments of `provider`, which exports them.
    fn with_provider(provider: SdkMeterProvider) -> Metrics {
        let meter = provider.meter("chatgate");
        let instance_sources = Arc::new(InstanceSources::default());
        let sources = instance_sources.clone();
        let instance_count = meter
            .i64_observable_up_down_counter("chatgate.instance.count")
            .with_unit("{instance}")
            .with_description(
                "Live component instances, by state: used (serving requests or finishing their work) or idle (kept for a next request).",
            )
            .with_callback(move |observer| {
                let (used, idle) = sources.count();
                let count = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
                observer.observe(
                    count(used),
                    &[KeyValue::new("chatgate.instance.state", "used")],
                );
                observer.observe(
                    count(idle),
                    &[KeyValue::new("chatgate.instance.state", "idle")],
                );
            })
            .build();
        Metrics {
            instance_sources,
            _instance_count: instance_count,
            request_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(REQUEST_DURATION_BUCKETS.to_vec())
                .build(),
            guests: Mutex::default(),
            dropped_guest_points: AtomicU64::new(0),
            provider,
        }
    }

    /// Counts the instances `source` reports (live, idle) in `chatgate.instance.count`
    /// until it returns `None`. Called by each application as it loads.
    pub fn count_instances(
        &self,
        source: impl Fn() -> Option<(usize, usize)> + Send + Sync + 'static,
    ) {
        self.instance_sources
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(source));
    }

    /// Records one request served: `elapsed` from its arrival to its response head.
    /// `method` is already an attribute value: the caller maps it with [`method_attribute`].
    pub fn record_request(
        &self,
        method: &'static str,
        route: Option<Arc<str>>,
        status: u16,
        elapsed: Duration,
    ) {
        let mut attributes = Vec::with_capacity(4);
        attributes.push(KeyValue::new("http.request.method", method));
        attributes.push(KeyValue::new(
            "http.response.status_code",
            i64::from(status),
        ));
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route));
        }
        if status >= 500 {
            attributes.push(KeyValue::new("error.type", status.to_string()));
        }
        self.request_duration
            .record(elapsed.as_secs_f64(), &attributes);
    }

    /// Merges a guest's `export` of the scope `scope` into the host's instruments;
    /// returns how many data points were dropped (also counted, see the module's doc).
    pub fn record_guest(&self, scope: &InstrumentationScope, metrics: Vec<GuestMetric>) -> u64 {
        let mut dropped = 0u64;
        let mut guests = self.guests.lock().unwrap_or_else(|e| e.into_inner());
        let GuestInstruments { scopes, count } = &mut *guests;
        if !scopes.contains_key(scope.name()) {
            if *count >= MAX_GUEST_INSTRUMENTS {
                drop(guests);
                let points = metrics.iter().map(|m| points_of(&m.data)).sum::<usize>() as u64;
                self.dropped(points);
                return points;
            }
            scopes.insert(
                scope.name().to_string(),
                (
                    self.provider.meter_with_scope(scope.clone()),
                    HashMap::new(),
                ),
            );
        }
        let Some((meter, instruments)) = scopes.get_mut(scope.name()) else {
            unreachable!("inserted above")
        };
        for metric in &metrics {
            let (points, bounds): (Vec<(&[KeyValue], Number)>, &[f64]) = match &metric.data {
                GuestData::Sum {
                    delta: true,
                    points,
                    ..
                }
                | GuestData::Gauge { points } => (
                    points.iter().map(|(a, v)| (a.as_slice(), *v)).collect(),
                    &[],
                ),
                GuestData::Histogram {
                    delta: true,
                    bounds,
                    points,
                    ..
                } => {
                    let mut single = Vec::with_capacity(points.len());
                    for (attributes, count, sum) in points {
                        match count {
                            0 => {}
                            1 => single.push((attributes.as_slice(), *sum)),
                            _ => dropped += 1,
                        }
                    }
                    (single, bounds.as_slice())
                }
                other => {
                    dropped += points_of(other) as u64;
                    continue;
                }
            };
            for (attributes, value) in points {
                let kind = kind_of(&metric.data, value);
                let instrument = match instruments.get(metric.name.as_str()) {
                    Some(instrument) => instrument,
                    None if *count < MAX_GUEST_INSTRUMENTS => {
                        *count += 1;
                        instruments
                            .entry(metric.name.clone())
                            .or_insert_with(|| Instrument::create(meter, kind, metric, bounds))
                    }
                    None => {
                        dropped += 1;
                        continue;
                    }
                };
                if instrument.kind() != kind || !instrument.record(value, attributes) {
                    dropped += 1;
                }
            }
        }
        drop(guests);
        self.dropped(dropped);
        dropped
    }

    fn dropped(&self, points: u64) {
        if points > 0
            && self
                .dropped_guest_points
                .fetch_add(points, Ordering::Relaxed)
                == 0
        {
            tracing::warn!(
                "a component reported metric data chatgate cannot merge (cumulative, several \
                 measurements in one histogram point, exponential histograms, a kind or \
                 number type other than its first, or past {MAX_GUEST_INSTRUMENTS} \
                 instruments): dropped and counted; this is not repeated"
            );
        }
    }

    /// Guest data points dropped so far (see the module's doc).
    pub fn dropped_guest_points(&self) -> u64 {
        self.dropped_guest_points.load(Ordering::Relaxed)
    }

    /// Exports what has been recorded now (blocks: call off the async threads).
    pub fn force_flush(&self) -> Result<(), String> {
        self.provider.force_flush().map_err(|e| e.to_string())
    }

    /// Exports a last time and stops (blocks: call off the async threads).
    pub fn shutdown(&self) -> Result<(), String> {
        self.provider.shutdown().map_err(|e| e.to_string())
    }
}

/// How many data points `data` carries.
fn points_of(data: &GuestData) -> usize {
    match data {
        GuestData::Sum { points, .. } | GuestData::Gauge { points } => points.len(),
        GuestData::Histogram { points, .. } => points.len(),
        GuestData::Unmerged { points } => *points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_are_counted_over_every_live_application_as_used_and_idle() {
        let sources = InstanceSources::default();
        assert_eq!(sources.count(), (0, 0));
        let first = Arc::new(Mutex::new(Some((3usize, 1usize))));
        let read = first.clone();
        sources
            .0
            .lock()
            .unwrap()
            .push(Box::new(move || *read.lock().unwrap()));
        sources.0.lock().unwrap().push(Box::new(|| Some((2, 2))));
        assert_eq!(sources.count(), (2, 3));
        // Read mid-change (idle counted before a live instance went): never negative.
        *first.lock().unwrap() = Some((0, 1));
        assert_eq!(sources.count(), (0, 2));
        // A replaced application is forgotten once gone.
        *first.lock().unwrap() = None;
        assert_eq!(sources.count(), (0, 2));
        assert_eq!(sources.0.lock().unwrap().len(), 1);
    }

    fn point(value: Number) -> Vec<(Vec<KeyValue>, Number)> {
        vec![(vec![KeyValue::new("k", "v")], value)]
    }

    fn metric(name: &str, data: GuestData) -> GuestMetric {
        GuestMetric {
            name: name.into(),
            unit: "{request}".into(),
            description: String::new(),
            data,
        }
    }

    #[test]
    fn deltas_of_single_measurements_merge_and_the_rest_is_dropped_and_counted() {
        let metrics = Metrics::with_provider(SdkMeterProvider::builder().build());
        let scope = InstrumentationScope::builder("chatgate-test").build();
        let counter = |delta: bool, value: Number| {
            metric(
                "c",
                GuestData::Sum {
                    monotonic: true,
                    delta,
                    points: point(value),
                },
            )
        };
        let histogram = |count: u64| {
            metric(
                "h",
                GuestData::Histogram {
                    delta: true,
                    integer: false,
                    bounds: vec![1.0, 2.0],
                    points: vec![(Vec::new(), count, Number::F64(1.5))],
                },
            )
        };
        // A delta count and a histogram of one measurement merge; an empty point is nothing.
        let merged = vec![counter(true, Number::U64(2)), histogram(1), histogram(0)];
        assert_eq!(metrics.record_guest(&scope, merged), 0);
        // A cumulative sum, a histogram point of several measurements, an exponential
        // histogram's points, a negative count and a kind other than the name's first.
        let refused = vec![
            counter(false, Number::U64(2)),
            histogram(3),
            metric("e", GuestData::Unmerged { points: 2 }),
            counter(true, Number::I64(-1)),
            metric(
                "h",
                GuestData::Gauge {
                    points: point(Number::F64(1.0)),
                },
            ),
        ];
        assert_eq!(metrics.record_guest(&scope, refused), 6);
        assert_eq!(metrics.dropped_guest_points(), 6);
    }

    #[test]
    fn guests_cannot_make_more_than_the_bound_of_instruments() {
        let metrics = Metrics::with_provider(SdkMeterProvider::builder().build());
        let scope = InstrumentationScope::builder("chatgate-test").build();
        let many: Vec<GuestMetric> = (0..MAX_GUEST_INSTRUMENTS + 3)
            .map(|i| {
                metric(
                    &format!("m{i}"),
                    GuestData::Sum {
                        monotonic: true,
                        delta: true,
                        points: point(Number::U64(1)),
                    },
                )
            })
            .collect();
        assert_eq!(metrics.record_guest(&scope, many), 3);
        // Known instruments still take measurements; a new scope is refused whole.
        let known = vec![metric(
            "m0",
            GuestData::Sum {
                monotonic: true,
                delta: true,
                points: point(Number::U64(1)),
            },
        )];
        assert_eq!(metrics.record_guest(&scope, known.clone()), 0);
        let other = InstrumentationScope::builder("chatgate-other").build();
        assert_eq!(metrics.record_guest(&other, known), 1);
    }

    #[test]
    fn made_up_methods_share_one_series() {
        assert_eq!(method_attribute("POST"), "POST");
        assert_eq!(method_attribute("PATCH"), "PATCH");
        assert_eq!(method_attribute("FOO1"), "_OTHER");
        assert_eq!(method_attribute("get"), "_OTHER");
    }
}
