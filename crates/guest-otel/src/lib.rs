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

use chatgate_guest::trace_context::{Span, TraceParent};
use std::time::{SystemTime, UNIX_EPOCH};

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
use bindings::wasi::otel::{logs, tracing, types};

const TRACEPARENT: &str = "traceparent";

/// The event a completion span records when the first token of a streamed answer
/// arrives; the host derives `gen_ai.server.time_to_first_token` from it.
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
    /// replaces with its own so the next stage becomes its child.
    pub fn inward(&self, name: &str, headers: &mut http::HeaderMap) -> StageSpan {
        let incoming = single(headers, TRACEPARENT).and_then(TraceParent::parse);
        let mut entropy = [0u8; chatgate_guest::trace_context::SPAN_ENTROPY_LEN];
        fill_random(&mut entropy);
        let span = Span::start(incoming, &entropy);
        if let Ok(value) = http::HeaderValue::from_str(&span.traceparent()) {
            headers.insert(TRACEPARENT, value);
        }
        StageSpan::begin(*self, span, name.to_owned(), Kind::Internal)
    }

    /// Records `span`, already decided (the `telemetry` middleware's request span), as
    /// the span of this stage.
    pub fn adopt(&self, name: &str, span: Span) -> StageSpan {
        StageSpan::begin(*self, span, name.to_owned(), Kind::Internal)
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
}

impl StageSpan {
    fn begin(tracer: Tracer, span: Span, name: String, kind: Kind) -> Self {
        // The clock is a host call: read only for a span that is reported.
        let start = if span.sampled() {
            now()
        } else {
            Datetime {
                seconds: 0,
                nanoseconds: 0,
            }
        };
        let this = Self {
            tracer,
            span,
            name,
            kind,
            start,
            attributes: Vec::new(),
            events: Vec::new(),
        };
        if this.recording() {
            tracing::on_start(&this.context());
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
                value: value.into().to_string(),
            });
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
        let time = now();
        logs::on_emit(&logs::LogRecord {
            timestamp: Some(time),
            observed_timestamp: Some(time),
            severity_text: None,
            severity_number: Some(severity),
            body: Some(serde_json::Value::from(body).to_string()),
            attributes: Some(
                attributes
                    .iter()
                    .map(|(key, value)| types::KeyValue {
                        key: (*key).to_owned(),
                        value: value.to_string(),
                    })
                    .collect(),
            ),
            event_name: None,
            resource: None,
            instrumentation_scope: Some(self.scope()),
            trace_id: Some(self.span.trace_id_hex()),
            span_id: Some(self.span.span_id_hex()),
            trace_flags: Some(tracing::TraceFlags::SAMPLED),
        });
    }

    fn scope(&self) -> types::InstrumentationScope {
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
        let context = self.context();
        let scope = self.scope();
        tracing::on_end(&tracing::SpanData {
            span_context: context,
            parent_span_id: self.span.parent_span_id_hex().unwrap_or_default(),
            span_kind: match self.kind {
                Kind::Internal => tracing::SpanKind::Internal,
                Kind::Client => tracing::SpanKind::Client,
            },
            name: self.name,
            start_time: self.start,
            end_time: now(),
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

fn fill_random(out: &mut [u8]) {
    let bytes = spin_sdk::wasip3::random::random::get_random_bytes(out.len() as u64);
    for (slot, byte) in out.iter_mut().zip(bytes) {
        *slot = byte;
    }
}

fn now() -> Datetime {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Datetime {
        seconds: since.as_secs(),
        nanoseconds: since.subsec_nanos(),
    }
}
