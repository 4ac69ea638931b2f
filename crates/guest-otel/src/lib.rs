//! Spans and log records of chatgate's stages, reported to the host through
//! `wasi:otel/tracing` and `wasi:otel/logs` (0.2.0-rc.2), so that a trace shows `waf`,
//! `auth`, `chat` and the calls `chat` makes under the host's SERVER span, with their
//! outcomes, and the request log lands in the same trace.
//!
//! A stage span continues the request's `traceparent` (which the host sets to its
//! SERVER span, and each stage replaces with its own before passing the request on),
//! so the spans nest in the order the request went through the stages. Spans are
//! reported only when the trace is sampled: the host drops the others anyway, and
//! building them costs host calls.
//!
//! On Spin 4 the interface exists only with `spin up --experimental-wasi-otel` (read in
//! Spin's source, commit 94a8fc8a; not run): a component using this crate does not
//! instantiate on Spin without that flag.

#![deny(missing_docs)]
#![cfg(target_arch = "wasm32")]

pub use chatgate_guest::genai;
use chatgate_guest::trace_context::{SAMPLED, Span, TraceParent};
pub use chatgate_guest::waf_family;
use std::cell::RefCell;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[allow(missing_docs, unsafe_code)]
mod bindings {
    spin_sdk::wit_bindgen::generate!({
        path: "../../wit",
        world: "chatgate:components/stage-tracing",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });
}

use bindings::wasi::clocks::wall_clock::Datetime;
use bindings::wasi::otel::{logs, metrics, tracing, types};

/// The W3C trace context header a stage reads its parent from and hands on.
pub const TRACEPARENT: &str = "traceparent";

/// The event a completion component's model span records when the first token of a
/// streamed answer arrives (it also reports `gen_ai.server.time_to_first_token` then).
pub const FIRST_TOKEN: &str = "gen_ai.first_token";

/// What a span's stage was to its caller (OpenTelemetry's span kinds that chatgate uses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Work inside the gateway: a middleware, `chat`'s own handling.
    Internal,
    /// A call out of the stage: to a dependency, to a model.
    Client,
}

/// The component reporting spans: the instrumentation scope every span carries.
#[derive(Debug, Clone, Copy)]
pub struct Tracer {
    scope: &'static str,
    version: &'static str,
}

impl Tracer {
    /// A tracer for the component `scope` (its crate name) at `version`.
    pub const fn new(scope: &'static str, version: &'static str) -> Self {
        Self { scope, version }
    }

    /// Starts the span of this stage for the request whose headers are `headers`: a child
    /// of its `traceparent` (a new trace when it has none, or an invalid one), which it
    /// replaces with its own when the next stage's span should be its child (see
    /// [`Tracer::inward_from`]).
    pub fn inward(&self, name: &str, headers: &mut http::HeaderMap) -> StageSpan {
        let (stage, traceparent) = self.inward_from(name, headers);
        if let Some(value) = traceparent {
            headers.insert(TRACEPARENT, value);
        }
        stage
    }

    /// Starts the span of this stage for the request whose headers are `headers`, and
    /// says which `traceparent` the next stage must see when it is not the one it came
    /// with: this span's, when the trace is sampled (so the next stage's span is reported
    /// as its child) or when the request had none (so the next stage joins this trace).
    /// An unsampled trace's header goes on as it came: none of its spans is reported, so
    /// the parent a later stage names changes nothing, and a middleware with nothing else
    /// to edit hands the request on untouched, without the new request (host calls) and
    /// the random bytes a new span id would cost.
    pub fn inward_from(
        &self,
        name: &str,
        headers: &http::HeaderMap,
    ) -> (StageSpan, Option<http::HeaderValue>) {
        let incoming = single(headers, TRACEPARENT).and_then(TraceParent::parse);
        if let Some(parent) = incoming.filter(|parent| parent.flags & SAMPLED == 0) {
            // Never reported nor handed on: no randomness needed for its ids.
            let span = Span::start(
                Some(parent),
                &[1; chatgate_guest::trace_context::SPAN_ENTROPY_LEN],
            );
            return (
                StageSpan::begin(*self, span, name.to_owned(), Kind::Internal),
                None,
            );
        }
        let mut entropy = [0u8; chatgate_guest::trace_context::SPAN_ENTROPY_LEN];
        fill_random(&mut entropy);
        let span = Span::start(incoming, &entropy);
        let traceparent = http::HeaderValue::from_str(&span.traceparent()).ok();
        (
            StageSpan::begin(*self, span, name.to_owned(), Kind::Internal),
            traceparent,
        )
    }

    /// Starts a span whose parent is the caller's span named by `traceparent` (a
    /// dependency's span under the call its caller made, e.g. `completion.wit`'s
    /// `options.traceparent`). Without a valid one the span is not recorded: the caller
    /// does not trace this call.
    pub fn child_of(
        &self,
        name: impl Into<String>,
        traceparent: Option<&str>,
        kind: Kind,
    ) -> StageSpan {
        let span = match traceparent.and_then(TraceParent::parse) {
            Some(parent) => {
                let mut entropy = [0u8; chatgate_guest::trace_context::SPAN_ENTROPY_LEN];
                fill_random(&mut entropy);
                Span::start(Some(parent), &entropy)
            }
            // Never reported nor handed on: no randomness needed for its ids.
            None => Span::start(None, &[1; chatgate_guest::trace_context::SPAN_ENTROPY_LEN]),
        };
        StageSpan::begin(*self, span, name.into(), kind)
    }

    /// Records `span`, already decided (the `telemetry` middleware's request span), as
    /// the span of this stage.
    pub fn adopt(&self, name: &str, span: Span) -> StageSpan {
        StageSpan::begin(*self, span, name.to_owned(), Kind::Internal)
    }

    /// [`Tracer::adopt`] for a stage that has already read the clock when it began
    /// (`started`, since the Unix epoch): the span starts then, and the clock, a host
    /// call, is not read again for it.
    pub fn adopt_since(&self, name: &str, span: Span, started: Duration) -> StageSpan {
        StageSpan::begin_at(
            *self,
            span,
            name.to_owned(),
            Kind::Internal,
            Some(datetime(started)),
        )
    }
}

/// Gives the request a `traceparent` from the host's own span when it has none (or an
/// invalid one): the request span Spin returns from `outer-span-context` when its
/// tracing is on. chatgate's host returns an invalid context (it sets the header
/// itself when it traces), and so does a host that does not trace; the headers are then
/// left as they are, and the first stage starts a trace that is not sampled.
pub fn adopt_host_span(headers: &mut http::HeaderMap) {
    if single(headers, TRACEPARENT)
        .and_then(TraceParent::parse)
        .is_some()
    {
        return;
    }
    let host = tracing::outer_span_context();
    let sampled = host.trace_flags.contains(tracing::TraceFlags::SAMPLED);
    let candidate = format!(
        "00-{:0>32}-{:0>16}-{}",
        host.trace_id,
        host.span_id,
        if sampled { "01" } else { "00" }
    );
    // Parsing refuses all-zero and malformed ids: an invalid host context changes nothing.
    if TraceParent::parse(&candidate).is_some()
        && let Ok(value) = http::HeaderValue::from_str(&candidate)
    {
        headers.insert(TRACEPARENT, value);
    }
}

/// A request's measurements, reported through `wasi:otel/metrics` in one host call
/// ([`Measurements::export`]) whether or not the request is traced: metrics count every
/// request, and a sampled-out one costs this call, not a span.
///
/// Each measurement is a delta of one (a sum's increment, a histogram of one value), so
/// that a host may merge it into its own aggregation (chatgate's does,
/// `host/src/runtime/guest_metrics.rs`) or hand it on as it is: Spin 4 exports each call
/// to the collector as it comes (`crates/factor-otel/src/host.rs`, `metrics::Host::export`
/// at commit 94a8fc8a, read, not run), where a delta sum or histogram adds up.
#[derive(Debug)]
pub struct Measurements {
    scope: types::InstrumentationScope,
    time: Datetime,
    metrics: Vec<metrics::Metric>,
}

/// A measurement's attributes: keys and values (strings, numbers, booleans).
pub type Attributes<'a> = &'a [(&'a str, serde_json::Value)];

impl Tracer {
    /// Starts collecting this component's measurements of one request.
    pub fn measurements(&self) -> Measurements {
        Measurements {
            scope: types::InstrumentationScope {
                name: self.scope.to_owned(),
                version: Some(self.version.to_owned()),
                schema_url: None,
                attributes: Vec::new(),
            },
            time: now(),
            metrics: Vec::new(),
        }
    }
}

impl Measurements {
    /// Adds `value` to the counter `name` (a monotonic sum).
    pub fn add(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        value: u64,
        attributes: Attributes,
    ) {
        let point = metrics::SumDataPoint {
            attributes: key_values(attributes),
            value: metrics::MetricNumber::U64(value),
            exemplars: Vec::new(),
        };
        let data = metrics::MetricData::U64Sum(metrics::Sum {
            data_points: vec![point],
            start_time: self.time,
            time: self.time,
            temporality: metrics::Temporality::Delta,
            is_monotonic: true,
        });
        self.push(name, unit, description, data);
    }

    /// Records `value` in the histogram `name`, whose buckets end at `bounds`.
    pub fn record_u64(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        bounds: &[f64],
        value: u64,
        attributes: Attributes,
    ) {
        // Token counts are far below 2^53: exact as f64.
        let data = metrics::MetricData::U64Histogram(self.histogram(
            bounds,
            value as f64,
            metrics::MetricNumber::U64(value),
            attributes,
        ));
        self.push(name, unit, description, data);
    }

    /// Records `value` in the histogram `name`, whose buckets end at `bounds`.
    pub fn record_f64(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        bounds: &[f64],
        value: f64,
        attributes: Attributes,
    ) {
        let data = metrics::MetricData::F64Histogram(self.histogram(
            bounds,
            value,
            metrics::MetricNumber::F64(value),
            attributes,
        ));
        self.push(name, unit, description, data);
    }

    fn histogram(
        &self,
        bounds: &[f64],
        value: f64,
        number: metrics::MetricNumber,
        attributes: Attributes,
    ) -> metrics::Histogram {
        // OpenTelemetry's buckets include their upper bound.
        let bucket = bounds
            .iter()
            .position(|b| value <= *b)
            .unwrap_or(bounds.len());
        let mut bucket_counts = vec![0; bounds.len() + 1];
        bucket_counts[bucket] = 1;
        metrics::Histogram {
            data_points: vec![metrics::HistogramDataPoint {
                attributes: key_values(attributes),
                count: 1,
                bounds: bounds.to_vec(),
                bucket_counts,
                min: Some(number),
                max: Some(number),
                sum: number,
                exemplars: Vec::new(),
            }],
            start_time: self.time,
            time: self.time,
            temporality: metrics::Temporality::Delta,
        }
    }

    fn push(&mut self, name: &str, unit: &str, description: &str, data: metrics::MetricData) {
        self.metrics.push(metrics::Metric {
            name: name.to_owned(),
            description: description.to_owned(),
            unit: unit.to_owned(),
            data,
        });
    }

    /// Reports the measurements to the host, in one call; nothing when there are none.
    /// A host that cannot take them answers an error, which changes nothing here.
    pub fn export(self) {
        if self.metrics.is_empty() {
            return;
        }
        let _ = metrics::export(&metrics::ResourceMetrics {
            resource: types::Resource {
                attributes: Vec::new(),
                schema_url: None,
            },
            scope_metrics: vec![metrics::ScopeMetrics {
                scope: self.scope,
                metrics: self.metrics,
            }],
        });
    }
}

fn key_values(attributes: Attributes) -> Vec<types::KeyValue> {
    attributes
        .iter()
        .map(|(key, value)| types::KeyValue {
            key: (*key).to_owned(),
            value: json(value),
        })
        .collect()
}

/// `value` as JSON text, what `value.to_string()` writes: a string needing no escape
/// (serde_json escapes only `"`, `\` and control characters) is quoted directly, without
/// serde_json's formatter (in a perf profile of `otel::export_cost`, its escaping and
/// `Formatter::write_str` were about a sixth of `StageSpan::log`'s samples).
fn json(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => json_string(s),
        serde_json::Value::Bool(true) => "true".to_owned(),
        serde_json::Value::Bool(false) => "false".to_owned(),
        other => other.to_string(),
    }
}

/// `text` as a JSON string, what serde_json writes for it, directly when it needs no
/// escape (serde_json escapes only `"`, `\` and control characters), without a
/// `serde_json::Value` holding a copy of it.
fn json_string(text: &str) -> String {
    if text.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20) {
        return serde_json::to_string(text).unwrap_or_default();
    }
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    out.push_str(text);
    out.push('"');
    out
}

/// One span being recorded; reported to the host when it ends.
#[derive(Debug)]
pub struct StageSpan {
    tracer: Tracer,
    span: Span,
    name: String,
    kind: Kind,
    start: Datetime,
    attributes: Vec<types::KeyValue>,
    events: Vec<tracing::Event>,
    /// The context `on-start` was given, kept for `on-end` and the span's log records:
    /// its ids are written in hex once, not at each call. A log record is given its ids
    /// and they are taken back after `on-emit` (the bindings own their strings): in a
    /// `RefCell` because [`StageSpan::log`] takes `&self`.
    context: RefCell<Option<tracing::SpanContext>>,
    /// The instrumentation scope, once a log record has been given it: kept for the
    /// span's next record and `on-end`, which would otherwise copy its strings again.
    scope: RefCell<Option<types::InstrumentationScope>>,
    /// When the span ends, if the stage said so ([`StageSpan::set_end_time`]): its log
    /// records are stamped with it too, and the clock is not read for either.
    end: Option<Datetime>,
}

impl StageSpan {
    fn begin(tracer: Tracer, span: Span, name: String, kind: Kind) -> Self {
        Self::begin_at(tracer, span, name, kind, None)
    }

    fn begin_at(
        tracer: Tracer,
        span: Span,
        name: String,
        kind: Kind,
        started: Option<Datetime>,
    ) -> Self {
        // The clock is a host call: read only for a span that is reported.
        let start = if span.sampled() {
            started.unwrap_or_else(now)
        } else {
            Datetime {
                seconds: 0,
                nanoseconds: 0,
            }
        };
        let mut this = Self {
            tracer,
            span,
            name,
            kind,
            start,
            attributes: Vec::new(),
            events: Vec::new(),
            context: RefCell::new(None),
            scope: RefCell::new(None),
            end: None,
        };
        if this.recording() {
            let context = this.context();
            tracing::on_start(&context);
            this.context = RefCell::new(Some(context));
        }
        this
    }

    /// A span inside this one: a call this stage makes.
    pub fn child(&self, name: impl Into<String>, kind: Kind) -> StageSpan {
        let mut entropy = [0u8; 8];
        fill_random(&mut entropy);
        Self::begin(self.tracer, self.span.child(&entropy), name.into(), kind)
    }

    /// Whether the span is recorded (the trace is sampled). Attributes that cost
    /// something to compute are worth computing only then.
    pub fn recording(&self) -> bool {
        self.span.sampled()
    }

    /// The `traceparent` naming this span, for a call made inside it.
    pub fn traceparent(&self) -> String {
        self.span.traceparent()
    }

    /// Records an attribute (a string, boolean, number, or list of one of those).
    /// Never pass a secret or a prompt's text.
    pub fn set(&mut self, key: &str, value: impl Into<serde_json::Value>) {
        if self.recording() {
            self.attributes.push(types::KeyValue {
                key: key.to_owned(),
                value: json(&value.into()),
            });
        }
    }

    /// Ends the span at `since_unix_epoch` rather than when it is ended, and stamps its
    /// later log records with that time: for a stage that has already measured when its
    /// work ended, which spares reading the clock (a host call) for each.
    pub fn set_end_time(&mut self, since_unix_epoch: Duration) {
        if self.recording() {
            self.end = Some(datetime(since_unix_epoch));
        }
    }

    /// Records that `name` happened now (e.g. [`FIRST_TOKEN`]).
    pub fn event(&mut self, name: &str) {
        if self.recording() {
            self.events.push(tracing::Event {
                name: name.to_owned(),
                time: now(),
                attributes: Vec::new(),
            });
        }
    }

    /// [`StageSpan::set`] with the value already JSON text (what serde_json writes for
    /// it, as `wasi:otel` carries it), e.g. copied from a JSON document that holds it.
    pub fn set_json(&mut self, key: &str, json: &str) {
        if self.recording() {
            self.attributes.push(types::KeyValue {
                key: key.to_owned(),
                value: json.to_owned(),
            });
        }
    }

    /// [`StageSpan::set`] for an integer: written in decimal by `itoa` (what serde_json
    /// itself writes integers with), without a `serde_json::Value`.
    pub fn set_int(&mut self, key: &str, value: i64) {
        if self.recording() {
            self.attributes.push(types::KeyValue {
                key: key.to_owned(),
                value: itoa::Buffer::new().format(value).to_owned(),
            });
        }
    }

    /// Records the attributes `attributes` builds, building them only if the span is
    /// recorded: most requests are not sampled, and the attributes cost allocations.
    pub fn set_all<K, V, I>(&mut self, attributes: impl FnOnce() -> I)
    where
        K: AsRef<str>,
        V: Into<serde_json::Value>,
        I: IntoIterator<Item = (K, V)>,
    {
        if self.recording() {
            for (key, value) in attributes() {
                self.set(key.as_ref(), value);
            }
        }
    }

    /// Emits a log record in this span (`wasi:otel/logs`), if the span is recorded:
    /// `severity` is OpenTelemetry's number (9 info, 13 warn, 17 error), `body` the
    /// message, `attributes` as for [`StageSpan::set`]. Never a secret or a prompt.
    pub fn log(&self, severity: u8, body: &str, attributes: &[(&str, serde_json::Value)]) {
        if !self.recording() {
            return;
        }
        self.log_json(
            severity,
            body,
            attributes.iter().map(|(key, value)| (*key, json(value))),
        );
    }

    /// [`StageSpan::log`] with the attributes' values already JSON text (what
    /// `serde_json::Value::to_string` writes for them, as `wasi:otel` carries them):
    /// moved (a `String`) or copied (a `&str`) into the record, not written again from a
    /// `serde_json::Value`.
    pub fn log_json<'a, V: Into<String>>(
        &self,
        severity: u8,
        body: &str,
        attributes: impl IntoIterator<Item = (&'a str, V)>,
    ) {
        if !self.recording() {
            return;
        }
        self.emit(
            severity,
            body,
            attributes
                .into_iter()
                .map(|(key, value)| types::KeyValue {
                    key: key.to_owned(),
                    value: value.into(),
                })
                .collect(),
        );
    }

    fn emit(&self, severity: u8, body: &str, attributes: Vec<types::KeyValue>) {
        let time = self.end.unwrap_or_else(now);
        let (trace_id, span_id) = match self.context.borrow_mut().as_mut() {
            Some(context) => (
                std::mem::take(&mut context.trace_id),
                std::mem::take(&mut context.span_id),
            ),
            None => (self.span.trace_id_hex(), self.span.span_id_hex()),
        };
        let scope = self.scope.take().unwrap_or_else(|| self.new_scope());
        let record = logs::LogRecord {
            timestamp: Some(time),
            observed_timestamp: Some(time),
            severity_text: None,
            severity_number: Some(severity),
            body: Some(json_string(body)),
            attributes: Some(attributes),
            event_name: None,
            resource: None,
            instrumentation_scope: Some(scope),
            trace_id: Some(trace_id),
            span_id: Some(span_id),
            trace_flags: Some(tracing::TraceFlags::SAMPLED),
        };
        logs::on_emit(&record);
        // The strings lent to the record, back where they came from.
        self.scope.replace(record.instrumentation_scope);
        if let Some(context) = self.context.borrow_mut().as_mut() {
            context.trace_id = record.trace_id.unwrap_or_default();
            context.span_id = record.span_id.unwrap_or_default();
        }
    }

    fn new_scope(&self) -> types::InstrumentationScope {
        types::InstrumentationScope {
            name: self.tracer.scope.to_owned(),
            version: Some(self.tracer.version.to_owned()),
            schema_url: None,
            attributes: Vec::new(),
        }
    }

    /// Ends a middleware's span with what it answered: the status code of its response
    /// (status unset: a refusal is the stage doing its job), or the error it failed with.
    pub fn end_with<T>(mut self, outcome: &Result<spin_sdk::wasip3::http::types::Response, T>)
    where
        T: std::fmt::Debug,
    {
        match outcome {
            Ok(response) => {
                self.set("http.response.status_code", response.get_status_code());
                self.end_unset();
            }
            Err(error) => self.end_error(format!("{error:?}")),
        }
    }

    /// Ends the span as having done its work.
    pub fn end_ok(self) {
        self.end(tracing::Status::Ok);
    }

    /// Ends the span as failed, with a description that holds no secret.
    pub fn end_error(self, description: impl Into<String>) {
        self.end(tracing::Status::Error(description.into()));
    }

    /// Ends the span without saying whether it succeeded (its attributes say what
    /// happened, e.g. a refusal that is the stage doing its job).
    pub fn end_unset(self) {
        self.end(tracing::Status::Unset);
    }

    fn end(self, status: tracing::Status) {
        if !self.recording() {
            return;
        }
        let context = match self.context.take() {
            Some(context) => context,
            None => self.context(),
        };
        let scope = match self.scope.take() {
            Some(scope) => scope,
            None => self.new_scope(),
        };
        tracing::on_end(&tracing::SpanData {
            span_context: context,
            parent_span_id: self.span.parent_span_id_hex().unwrap_or_default(),
            span_kind: match self.kind {
                Kind::Internal => tracing::SpanKind::Internal,
                Kind::Client => tracing::SpanKind::Client,
            },
            name: self.name,
            start_time: self.start,
            end_time: self.end.unwrap_or_else(now),
            attributes: self.attributes,
            events: self.events,
            links: Vec::new(),
            status,
            instrumentation_scope: scope,
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        });
    }

    fn context(&self) -> tracing::SpanContext {
        tracing::SpanContext {
            trace_id: self.span.trace_id_hex(),
            span_id: self.span.span_id_hex(),
            trace_flags: if self.span.sampled() {
                tracing::TraceFlags::SAMPLED
            } else {
                tracing::TraceFlags::empty()
            },
            is_remote: false,
            trace_state: Vec::new(),
        }
    }
}

fn single<'h>(headers: &'h http::HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return None;
    }
    first.to_str().ok()
}

/// Fills `out` with random bytes for span ids (and the trace id of a trace a stage
/// starts) from a generator of the instance's own, seeded once from `wasi:random`: ids
/// must be unique, not secret, and OpenTelemetry's SDKs draw them the same way (a fast
/// generator per thread, seeded from the system). Drawn from `wasi:random` each time,
/// they cost a host call per span (about 4 k instructions under wasmtime 48).
///
/// Never call it from a Wizer initializer: every instance of the snapshot would start
/// from the same seed and draw the same ids.
pub fn fill_random(out: &mut [u8]) {
    thread_local! {
        static IDS: RefCell<Option<fastrand::Rng>> = const { RefCell::new(None) };
    }
    IDS.with_borrow_mut(|ids| {
        ids.get_or_insert_with(|| {
            let mut seed = [0u8; 8];
            let bytes = spin_sdk::wasip3::random::random::get_random_bytes(8);
            for (slot, byte) in seed.iter_mut().zip(bytes) {
                *slot = byte;
            }
            fastrand::Rng::with_seed(u64::from_le_bytes(seed))
        })
        .fill(out)
    });
}

fn now() -> Datetime {
    datetime(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

fn datetime(since_unix_epoch: Duration) -> Datetime {
    Datetime {
        seconds: since_unix_epoch.as_secs(),
        nanoseconds: since_unix_epoch.subsec_nanos(),
    }
}

/// A completion component's upstream chat call, as the GenAI semantic conventions
/// describe it: the CLIENT span `chat {gen_ai.request.model}` (recorded when the caller
/// traces the call) and the `gen_ai.client.token.usage`, `gen_ai.client.operation.duration`
/// and `gen_ai.server.time_to_first_token` measurements (reported for every call).
#[derive(Debug)]
pub struct ChatCall {
    span: StageSpan,
    measurements: Measurements,
    started: std::time::Instant,
    provider: String,
    model: String,
}

impl ChatCall {
    /// Starts the call's span, a child of the caller's `traceparent`.
    pub fn start(tracer: &Tracer, traceparent: Option<&str>, request: &genai::Request) -> Self {
        let mut span = tracer.child_of(genai::span_name(request), traceparent, Kind::Client);
        span.set_all(|| genai::request_attributes(request));
        Self {
            span,
            measurements: tracer.measurements(),
            started: std::time::Instant::now(),
            provider: request.provider.to_owned(),
            model: request.model.to_owned(),
        }
    }

    fn request(&self) -> genai::Request<'_> {
        genai::Request {
            provider: &self.provider,
            model: &self.model,
            temperature: None,
            top_p: None,
            max_tokens: None,
        }
    }

    /// Adds `value` to the counter `name` (in `unit`), reported with the call's other
    /// measurements in its one host call.
    pub fn count(
        &mut self,
        name: &str,
        unit: &str,
        description: &str,
        value: u64,
        attributes: Attributes,
    ) {
        self.measurements
            .add(name, unit, description, value, attributes);
    }

    /// Whether the call's span is recorded: what only the span needs is worth
    /// computing only then.
    pub fn recording(&self) -> bool {
        self.span.recording()
    }

    /// The first token of a streamed answer arrived.
    pub fn first_token(&mut self) {
        self.span.event(FIRST_TOKEN);
        let waited = self.started.elapsed().as_secs_f64();
        let attributes = genai::metric_attributes(&self.request(), None, None);
        self.measurements.record_f64(
            "gen_ai.server.time_to_first_token",
            "s",
            "Time to the first token of a streamed answer, as the completion component received it.",
            &genai::TIME_TO_FIRST_TOKEN_BUCKETS,
            waited,
            &attributes,
        );
    }

    /// The provider answered: the span gets the answer's attributes, and the tokens and
    /// the duration are measured.
    pub fn answered(mut self, response: &genai::Response) {
        self.duration(Some(response.model), None);
        if let Some((input, output)) = response.usage {
            let mut attributes =
                genai::metric_attributes(&self.request(), Some(response.model), None);
            for (kind, tokens) in [("input", input), ("output", output)] {
                attributes.push(("gen_ai.token.type", kind.into()));
                self.measurements.record_u64(
                    "gen_ai.client.token.usage",
                    "{token}",
                    "Number of input and output tokens used.",
                    &genai::TOKEN_BUCKETS,
                    u64::from(tokens),
                    &attributes,
                );
                attributes.pop();
            }
        }
        self.span.set_all(|| genai::response_attributes(response));
        self.measurements.export();
        self.span.end_ok();
    }

    /// The call failed with an error of type `error_type` (the WIT variant's name). Its
    /// message is not recorded: a provider's message may quote the request.
    pub fn failed(mut self, error_type: &str) {
        self.duration(None, Some(error_type));
        self.span.set("error.type", error_type);
        self.measurements.export();
        self.span.end_error(error_type);
    }

    fn duration(&mut self, response_model: Option<&str>, error_type: Option<&str>) {
        let elapsed = self.started.elapsed().as_secs_f64();
        let attributes = genai::metric_attributes(&self.request(), response_model, error_type);
        self.measurements.record_f64(
            "gen_ai.client.operation.duration",
            "s",
            "GenAI operation duration.",
            &genai::OPERATION_DURATION_BUCKETS,
            elapsed,
            &attributes,
        );
    }
}

/// Counts one request in the counter `name` ({request}) with `attributes`, reported at
/// once through `wasi:otel/metrics` whether or not the request is traced: for refusals
/// (WAF blocks, authentication failures, quota rejections), which every request must
/// count and which are rare enough that one host call each costs nothing to the others.
pub fn count(tracer: &Tracer, name: &str, description: &str, attributes: Attributes) {
    let mut measurements = tracer.measurements();
    measurements.add(name, "{request}", description, 1, attributes);
    measurements.export();
}
