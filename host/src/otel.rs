//! OpenTelemetry export over OTLP (HTTP or gRPC) of traces, metrics and logs, configured
//! from the environment the way Spin 4 configures its own (read in Spin's source, commit
//! 94a8fc8a: `crates/telemetry/src/env.rs` (`otel_tracing_enabled`,
//! `otel_metrics_enabled`, `otel_logs_enabled`, `otel_sdk_disabled`), `lib.rs` (`init`),
//! `traces.rs`, `metrics.rs`, `logs.rs`, `detector.rs`, `crates/factor-otel/src/lib.rs`
//! (`OtelFactor::new`), and the request span of `crates/trigger-http/src/instrument.rs`;
//! the rules are restated here, not copied):
//!
//! - Each signal is on by itself: traces when `OTEL_EXPORTER_OTLP_ENDPOINT` or
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set and not empty, metrics when the general
//!   one or `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` is, logs when the general one or
//!   `OTEL_EXPORTER_OTLP_LOGS_ENDPOINT` is. `OTEL_SDK_DISABLED` set and not empty (any
//!   value, as in Spin; the OpenTelemetry specification only names `true`) turns all
//!   three off. With none on nothing is set up ([`TraceSettings::from_env`] gives `None`)
//!   and the request path pays one `Option` check.
//! - A signal that is off costs nothing per request and builds no exporter. Traces off:
//!   no provider, no SERVER span, no `traceparent` extracted or injected (the caller's
//!   reaches the components as it came, and a request without one gets a trace that is
//!   not sampled, so the stages record no span), and a guest's finished span
//!   (`wasi:otel/tracing`) is dropped before it is converted. Metrics off: no
//!   measurement of the request, and a guest's `wasi:otel/metrics` report returns at
//!   once, successfully, as in Spin. Logs off: a guest's `wasi:otel/logs` record is
//!   dropped before it is converted. As in Spin's `OtelFactor`, guests' spans need trace
//!   export and guests' records log export. With logs on, guests' writes to stdout and
//!   stderr are records too, as Spin makes them ([`crate::runtime`]'s `app_log`), and
//!   so are the host's own warnings ([`crate::otel_logs::HostEvents`]).
//! - Each signal's protocol is `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_PROTOCOL`, else
//!   `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`; `grpc` is OTLP over gRPC, an
//!   unknown value falls back to `http/protobuf` with a warning, and `http/json` is
//!   refused at start-up, as Spin refuses it ([`crate::otel_transport`]).
//!   As in Spin, where only an enabled signal builds its exporter, a signal that is off
//!   has its protocol variable left unread: `http/json` there stops nothing.
//! - A signal's URL is its own endpoint variable as given, else
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` followed by `/v1/traces`, `/v1/metrics` or `/v1/logs`
//!   over HTTP and as it is over gRPC (the rule of the exporter crate Spin hands the
//!   variables to).
//! - `service.name` is `OTEL_SERVICE_NAME`, else `service.name` in
//!   `OTEL_RESOURCE_ATTRIBUTES`, else the host's own name (`chatgate`, where Spin says
//!   `spin`); `service.version` is the host's version; the other
//!   `OTEL_RESOURCE_ATTRIBUTES` pairs (`key=value,...`, trimmed, as the SDK parses them)
//!   are resource attributes too.
//! - Request headers and timeouts of the exporter (`OTEL_EXPORTER_OTLP_HEADERS`,
//!   `..._TIMEOUT`, `..._COMPRESSION`) and of the batch processor (`OTEL_BSP_*`) are
//!   read from the process environment, as in Spin: by the OpenTelemetry crates
//!   themselves, except for the `http/protobuf` span and log exporters, chatgate's own,
//!   which read the exporter's variables as the crate does ([`crate::otel_transport`]).
//!
//! Spans go through the SDK's batch span processor, which runs exports on its own
//! thread: a request only pushes its finished span into a bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 spans by default) and never waits for the
//! collector. With the collector down or slow, spans beyond the queue are dropped, counted
//! and reported ([`crate::otel_queue`]), so the number of spans held stays bounded by the
//! queue plus the one batch (512 spans) being exported. A request that comes in while the
//! queue is full is left untraced, counted and reported with the drops: no SERVER span,
//! and an unsampled `traceparent` (the caller's trace id kept), so that neither the host
//! nor the stages build spans that could only be dropped. The bound is in spans, not bytes:
//! a guest's attributes are limited in number, not in size.
//!
//! One SERVER span per request ([`Tracing::server_span`]) follows Spin's request span:
//! named `{method} {route}`, a child of the caller's W3C `traceparent`, with the HTTP
//! semantic-convention attributes listed at [`ServerSpan`]. No header value other than
//! `User-Agent` is recorded, and no body.

use crate::otel_logs::{GuestLog, Logs};
use crate::otel_metrics::{Metrics, method_attribute};
use crate::otel_queue::SpanQueue;
pub use crate::otel_transport::{
    OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
    OTEL_EXPORTER_OTLP_PROTOCOL, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, Protocol,
};
use crate::otel_transport::{log_exporter, metric_exporter, span_exporter};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, TraceFlags, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, IdGenerator as _, RandomIdGenerator, SdkTracerProvider, SpanData,
    SpanExporter as _, SpanProcessor,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const OTEL_EXPORTER_OTLP_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";
pub const OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT";
pub const OTEL_SERVICE_NAME: &str = "OTEL_SERVICE_NAME";
pub const OTEL_RESOURCE_ATTRIBUTES: &str = "OTEL_RESOURCE_ATTRIBUTES";
pub const OTEL_SDK_DISABLED: &str = "OTEL_SDK_DISABLED";
pub const OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT";
pub const OTEL_METRIC_EXPORT_INTERVAL: &str = "OTEL_METRIC_EXPORT_INTERVAL";
pub const OTEL_BSP_MAX_QUEUE_SIZE: &str = "OTEL_BSP_MAX_QUEUE_SIZE";
pub const OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: &str = "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT";
pub const OTEL_BLRP_MAX_QUEUE_SIZE: &str = "OTEL_BLRP_MAX_QUEUE_SIZE";

/// `service.name` when neither `OTEL_SERVICE_NAME` nor `OTEL_RESOURCE_ATTRIBUTES` names one.
pub const DEFAULT_SERVICE_NAME: &str = "chatgate";

/// The batch processors' queues, in spans or log records, unless `OTEL_BSP_MAX_QUEUE_SIZE`
/// or `OTEL_BLRP_MAX_QUEUE_SIZE` says otherwise (the SDK's and the specification's default).
pub const DEFAULT_MAX_QUEUE_SIZE: usize = 2048;

/// Export settings of the three signals (the name is older than metrics and logs), read
/// from the environment by [`TraceSettings::from_env`] (`chatgate up`) or built directly
/// (tests, which must not share process environment). At least one signal is on.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceSettings {
    /// Where spans are sent: a URL POSTed to (`http/protobuf`) or a gRPC server's;
    /// `None`: no spans (neither the host's nor the guests').
    pub traces_endpoint: Option<String>,
    /// How spans are sent.
    pub traces_protocol: Protocol,
    /// `service.name` of the resource.
    pub service_name: String,
    /// Further resource attributes, from `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource_attributes: Vec<(String, String)>,
    /// How long the batch processor gathers spans before an export (`None`: the SDK's
    /// default, 5 s, or `OTEL_BSP_SCHEDULE_DELAY`).
    pub scheduled_delay: Option<Duration>,
    /// Where metrics are sent ([`crate::otel_metrics`]); `None`: no metrics.
    pub metrics_endpoint: Option<String>,
    /// How metrics are sent.
    pub metrics_protocol: Protocol,
    /// How often metrics are exported (`None`: the SDK's default, 60 s).
    pub metrics_interval: Option<Duration>,
    /// Where guests' log records are sent ([`crate::otel_logs`]); `None`: none.
    pub logs_endpoint: Option<String>,
    /// How log records are sent.
    pub logs_protocol: Protocol,
    /// Spans the export queue holds (`OTEL_BSP_MAX_QUEUE_SIZE`; `None`: 2048).
    pub max_queue_size: Option<usize>,
    /// Log records the export queue holds (`OTEL_BLRP_MAX_QUEUE_SIZE`; `None`: 2048).
    pub max_log_queue_size: Option<usize>,
    /// The share of new traces recorded, with a caller's decision followed
    /// (`parentbased_traceidratio`); `None`: the SDK's sampler, which reads
    /// `OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG` itself. Set by tests, which
    /// must not share the process environment.
    pub sampler_ratio: Option<f64>,
}

impl TraceSettings {
    /// The settings the variables `var` returns describe: `Ok(None)` when every signal's
    /// export is off, an error when one is asked for in a form this host cannot honour.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<TraceSettings>, String> {
        let set = |name: &str| var(name).filter(|value| !value.is_empty());
        if set(OTEL_SDK_DISABLED).is_some() {
            return Ok(None);
        }
        let general = set(OTEL_EXPORTER_OTLP_ENDPOINT);
        // Each signal on its own: its endpoint variable or the general one. A signal that
        // is off has its protocol variable left unread, as in Spin (where only an enabled
        // signal builds an exporter), so `http/json` there stops nothing.
        let signal = |endpoint: &str, protocol: &str, path: &str| {
            let own = set(endpoint);
            if own.is_none() && general.is_none() {
                return Ok((None, Protocol::HttpProtobuf));
            }
            let protocol = Protocol::from_env(protocol, &var)?;
            let url = signal_endpoint(own, general.as_deref(), protocol, path)?;
            Ok::<_, String>((url, protocol))
        };
        let (traces_endpoint, traces_protocol) = signal(
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
            "/v1/traces",
        )?;
        let (metrics_endpoint, metrics_protocol) = signal(
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
            OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
            "/v1/metrics",
        )?;
        let (logs_endpoint, logs_protocol) = signal(
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
            OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
            "/v1/logs",
        )?;
        if traces_endpoint.is_none() && metrics_endpoint.is_none() && logs_endpoint.is_none() {
            return Ok(None);
        }
        // Read here, not only by the SDK, because chatgate keeps the queues' account.
        let queue_size = |variable: &str, what: &str| match set(variable) {
            None => Ok(None),
            Some(n) => match n.trim().parse::<usize>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(format!(
                    "{variable}=`{n}`: expected a positive number of {what}"
                )),
            },
        };
        let max_queue_size = queue_size(OTEL_BSP_MAX_QUEUE_SIZE, "spans")?;
        let max_log_queue_size = queue_size(OTEL_BLRP_MAX_QUEUE_SIZE, "log records")?;
        let metrics_interval = match set(OTEL_METRIC_EXPORT_INTERVAL) {
            None => None,
            Some(ms) => match ms.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
                _ => {
                    return Err(format!(
                        "{OTEL_METRIC_EXPORT_INTERVAL}=`{ms}`: expected a positive number of milliseconds"
                    ));
                }
            },
        };
        let resource_attributes =
            parse_resource_attributes(&var(OTEL_RESOURCE_ATTRIBUTES).unwrap_or_default());
        let service_name = set(OTEL_SERVICE_NAME)
            .or_else(|| {
                resource_attributes
                    .iter()
                    .find(|(k, _)| k == "service.name")
                    .map(|(_, v)| v.clone())
            })
            .unwrap_or_else(|| DEFAULT_SERVICE_NAME.to_string());
        Ok(Some(TraceSettings {
            traces_endpoint,
            traces_protocol,
            service_name,
            resource_attributes,
            scheduled_delay: None,
            metrics_endpoint,
            metrics_protocol,
            metrics_interval,
            logs_endpoint,
            logs_protocol,
            max_queue_size,
            max_log_queue_size,
            sampler_ratio: None,
        }))
    }
}

/// A signal's URL: its own variable's value as given, else the general endpoint
/// (followed by `path` over HTTP), else none; an error if it is not a URL.
fn signal_endpoint(
    own: Option<String>,
    general: Option<&str>,
    protocol: Protocol,
    path: &str,
) -> Result<Option<String>, String> {
    let endpoint = own.or_else(|| general.map(|general| protocol.signal_url(general, path)));
    if let Some(Err(e)) = endpoint.as_ref().map(|e| e.parse::<http::Uri>()) {
        let endpoint = endpoint.unwrap_or_default();
        return Err(format!(
            "the OTLP endpoint for {path} `{endpoint}` is not a URL: {e}"
        ));
    }
    Ok(endpoint)
}

/// `key=value` pairs separated by commas, each trimmed; entries without `=` are skipped.
fn parse_resource_attributes(value: &str) -> Vec<(String, String)> {
    value
        .split_terminator(',')
        .filter_map(|entry| {
            let (key, value) = entry.split_once('=')?;
            Some((key.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// The running export pipelines (the name is older than metrics and logs): the signals
/// that are on, each with its exporter, and none of the others.
#[derive(Debug)]
pub struct Tracing {
    /// The tracer that makes the request spans and the provider whose batch processor
    /// exports them; `None` when trace export is off.
    traces: Option<HostTraces>,
    /// Also holds the metrics and the logs pipeline, which the request path and the
    /// guests' spans and records share.
    sink: SpanSink,
}

#[derive(Debug)]
struct HostTraces {
    provider: SdkTracerProvider,
    tracer: opentelemetry_sdk::trace::SdkTracer,
    propagator: TraceContextPropagator,
    /// The queue the spans go to, asked for room before a request's trace is started.
    queue: Arc<SpanQueue>,
    /// The ids of untraced requests' contexts, which the SDK's tracer does not make.
    ids: RandomIdGenerator,
}

/// A handle on the batch processor that exports finished spans made elsewhere (the
/// guests'), with the ids, times and instrumentation scope they were made with.
#[derive(Debug, Clone)]
pub struct SpanSink {
    /// `None` when trace export is off: guests' spans are then dropped unconverted.
    processor: Option<Arc<SpanQueue>>,
    /// The metrics, which guests report to through `wasi:otel/metrics`
    /// ([`Metrics::record_guest`]).
    metrics: Option<Arc<Metrics>>,
    /// Where guests' log records go (`wasi:otel/logs`).
    logs: Option<Arc<Logs>>,
}

impl SpanSink {
    /// Whether spans are exported: when not, a guest's finished span need not be
    /// converted for [`SpanSink::export`], which would drop it.
    pub fn exports_spans(&self) -> bool {
        self.processor.is_some()
    }

    /// Queues `span` for export, if traces are exported; never waits (a full queue drops
    /// it, as it drops the host's own spans).
    pub fn export(&self, span: SpanData) {
        if let Some(processor) = &self.processor {
            processor.submit(span);
        }
    }

    /// The metrics pipeline, if metrics are exported.
    pub fn metrics(&self) -> Option<&Metrics> {
        self.metrics.as_deref()
    }

    /// The logs pipeline, if logs are exported: guests' records, their stdout and stderr
    /// ([`crate::runtime::app_log`]) and the host's warnings go there.
    pub fn logs(&self) -> Option<&Arc<Logs>> {
        self.logs.as_ref()
    }

    /// Queues a guest's log record for export, if logs are exported; never waits.
    pub fn log(&self, log: impl FnOnce() -> GuestLog) {
        // Built only when there is a logs pipeline: traces alone need no record.
        if let Some(logs) = &self.logs {
            logs.emit(log());
        }
    }
}

/// The provider's side of the shared batch processor.
#[derive(Debug)]
struct SharedProcessor(Arc<SpanQueue>);

impl SpanProcessor for SharedProcessor {
    fn on_start(&self, span: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.processor().on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        self.0.submit(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.0.processor().force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.0.processor().shutdown_with_timeout(timeout)
    }
}

impl Tracing {
    /// Starts the exporters and their batch processors. Must be called inside a tokio
    /// runtime: the exports (HTTP requests, gRPC calls) run on it, polled from the
    /// processors' threads ([`crate::otel_transport`]).
    pub fn start(settings: &TraceSettings) -> wasmtime::Result<Tracing> {
        let mut attributes: Vec<KeyValue> = settings
            .resource_attributes
            .iter()
            .filter(|(k, _)| k != "service.name" && k != "service.version")
            .map(|(k, v)| KeyValue::new(k.clone(), v.clone()))
            .collect();
        attributes.push(KeyValue::new("service.name", settings.service_name.clone()));
        attributes.push(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
        let resource = opentelemetry_sdk::Resource::builder_empty()
            .with_detector(Box::new(
                opentelemetry_sdk::resource::TelemetryResourceDetector,
            ))
            .with_attributes(attributes)
            .build();
        let metrics = match &settings.metrics_endpoint {
            Some(endpoint) => Some(Arc::new(Metrics::start(
                metric_exporter(settings.metrics_protocol, endpoint)?,
                settings.metrics_interval,
                resource.clone(),
            ))),
            None => None,
        };
        let logs = match &settings.logs_endpoint {
            Some(endpoint) => Some(Arc::new(Logs::start(
                log_exporter(settings.logs_protocol, endpoint)?,
                resource.clone(),
                settings
                    .max_log_queue_size
                    .unwrap_or(DEFAULT_MAX_QUEUE_SIZE),
            ))),
            None => None,
        };
        let (traces, processor) = match &settings.traces_endpoint {
            Some(endpoint) => {
                let (traces, processor) = HostTraces::start(settings, endpoint, resource)?;
                (Some(traces), Some(processor))
            }
            None => (None, None),
        };
        Ok(Tracing {
            traces,
            sink: SpanSink {
                processor,
                metrics,
                logs,
            },
        })
    }

    /// Spans dropped because the export queue was full (a slow or unreachable collector).
    pub fn dropped_spans(&self) -> u64 {
        self.sink
            .processor
            .as_ref()
            .map_or(0, |queue| queue.dropped())
    }

    /// Requests left untraced because the span export queue was full as they came in.
    pub fn untraced_requests(&self) -> u64 {
        self.sink
            .processor
            .as_ref()
            .map_or(0, |queue| queue.untraced())
    }

    /// Log records dropped because their export queue was full.
    pub fn dropped_log_records(&self) -> u64 {
        self.sink.logs.as_ref().map_or(0, |logs| logs.dropped())
    }

    /// Where guests' finished spans (`wasi:otel/tracing`) go: the batch processor of the
    /// host's own spans, so they share its queue, its exporter and its resource.
    pub fn span_sink(&self) -> SpanSink {
        self.sink.clone()
    }

    /// Starts the SERVER span of `request` (its URI absolute, as the host hands it to
    /// components), a child of the caller's `traceparent` if it sent a valid one.
    /// `route` is the manifest route that serves the path. With trace export off there
    /// is no span, only the request's measurement when metrics are on.
    pub fn server_span<B>(
        &self,
        request: &http::Request<B>,
        peer: SocketAddr,
        route: Option<&str>,
    ) -> ServerSpan {
        let route: Option<Arc<str>> = route.map(Arc::from);
        let measured = self.sink.metrics.clone().map(|metrics| MeasuredRequest {
            metrics,
            started: Instant::now(),
            method: method_attribute(request.method().as_str()),
            route: route.clone(),
        });
        ServerSpan {
            span: self
                .traces
                .as_ref()
                .map(|traces| traces.server_span(request, peer, route)),
            measured,
        }
    }

    /// Exports what the batch processor and the metrics hold now (blocks: call off the
    /// async threads).
    pub fn force_flush(&self) -> Result<(), String> {
        if let Some(traces) = &self.traces {
            traces.provider.force_flush().map_err(|e| e.to_string())?;
        }
        if let Some(logs) = &self.sink.logs {
            logs.force_flush()?;
        }
        match &self.sink.metrics {
            Some(metrics) => metrics.force_flush(),
            None => Ok(()),
        }
    }

    /// Exports what is left and stops (blocks: call off the async threads).
    pub fn shutdown(&self) -> Result<(), String> {
        let traces = match &self.traces {
            Some(traces) => traces.provider.shutdown().map_err(|e| e.to_string()),
            None => Ok(()),
        };
        let metrics = match &self.sink.metrics {
            Some(metrics) => metrics.shutdown(),
            None => Ok(()),
        };
        let logs = match &self.sink.logs {
            Some(logs) => logs.shutdown(),
            None => Ok(()),
        };
        traces.and(metrics).and(logs)
    }
}

impl HostTraces {
    /// The span exporter, the queue the guests' spans share, and the provider.
    fn start(
        settings: &TraceSettings,
        endpoint: &str,
        resource: opentelemetry_sdk::Resource,
    ) -> wasmtime::Result<(HostTraces, Arc<SpanQueue>)> {
        let mut exporter = span_exporter(settings.traces_protocol, endpoint)?;
        let queue_capacity = settings.max_queue_size.unwrap_or(DEFAULT_MAX_QUEUE_SIZE);
        let mut batch = BatchConfigBuilder::default().with_max_queue_size(queue_capacity);
        if let Some(delay) = settings.scheduled_delay {
            batch = batch.with_scheduled_delay(delay);
        }
        // The resource is given to the exporter here rather than through the provider:
        // the processor is shared with the guests' spans ([`SpanSink`]), and a shared
        // processor cannot take the provider's `set_resource(&mut self)`.
        exporter.set_resource(&resource);
        let processor = Arc::new(SpanQueue::new(exporter, batch.build(), queue_capacity));
        let mut provider = SdkTracerProvider::builder()
            .with_resource(resource)
            .with_span_processor(SharedProcessor(processor.clone()));
        if let Some(ratio) = settings.sampler_ratio {
            provider = provider.with_sampler(opentelemetry_sdk::trace::Sampler::ParentBased(
                Box::new(opentelemetry_sdk::trace::Sampler::TraceIdRatioBased(ratio)),
            ));
        }
        let provider = provider.build();
        let tracer = provider.tracer("chatgate");
        let traces = HostTraces {
            provider,
            tracer,
            propagator: TraceContextPropagator::new(),
            queue: processor.clone(),
            ids: RandomIdGenerator::default(),
        };
        Ok((traces, processor))
    }

    fn server_span<B>(
        &self,
        request: &http::Request<B>,
        peer: SocketAddr,
        route: Option<Arc<str>>,
    ) -> RequestTrace {
        // Without a `traceparent` the propagator would only clone the current context.
        let parent = if request.headers().contains_key(&TRACEPARENT_HEADER) {
            self.propagator
                .extract(&opentelemetry_http::HeaderExtractor(request.headers()))
        } else {
            opentelemetry::Context::current()
        };
        if !self.queue.has_room() {
            self.queue.leave_untraced();
            return RequestTrace::Untraced(self.untraced_context(&parent));
        }
        // Every value that can be a `'static` or shared string is one, to allocate less
        // per request (each owned string is allocated here and freed on the exporter's
        // thread). Measured: no change in the export's cost beyond this shared
        // machine's noise (docs/measurements/observability-cost.md).
        let method = request.method().as_str();
        let known_method = method_attribute(method);
        let method_value = if known_method == "_OTHER" {
            Value::from(method.to_string())
        } else {
            Value::from(known_method)
        };
        let uri = request.uri();
        let scheme = match uri.scheme_str() {
            Some("https") => "https",
            _ => "http",
        };
        let peer_address = ip_text(peer.ip());
        let mut attributes = Vec::with_capacity(14);
        attributes.extend([
            KeyValue::new("http.request.method", method_value),
            KeyValue::new("url.path", uri.path().to_string()),
            KeyValue::new("url.scheme", scheme),
            KeyValue::new("network.protocol.name", "http"),
            KeyValue::new(
                "network.protocol.version",
                protocol_version(request.version()),
            ),
            KeyValue::new("network.peer.address", peer_address.clone()),
            KeyValue::new("network.peer.port", i64::from(peer.port())),
            KeyValue::new("client.address", peer_address),
        ]);
        if let Some(host) = uri.host() {
            attributes.push(KeyValue::new("server.address", host.to_string()));
        }
        if let Some(port) = uri.port_u16() {
            attributes.push(KeyValue::new("server.port", i64::from(port)));
        }
        if let Some(agent) = request
            .headers()
            .get(http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
        {
            attributes.push(KeyValue::new("user_agent.original", agent.to_string()));
        }
        let name = match &route {
            Some(route) => {
                attributes.push(KeyValue::new("http.route", route.clone()));
                let mut name = String::with_capacity(method.len() + 1 + route.len());
                name.push_str(method);
                name.push(' ');
                name.push_str(route);
                name
            }
            None => method.to_string(),
        };
        RequestTrace::Recorded(
            self.tracer
                .span_builder(name)
                .with_kind(SpanKind::Server)
                .with_attributes(attributes)
                .start_with_context(&self.tracer, &parent),
        )
    }

    /// What the SDK's tracer gives a span its sampler drops: the caller's trace (or a new
    /// one) and its `tracestate`, a new span id, and the sampled flag off, which the
    /// stages read as "report no span".
    fn untraced_context(&self, parent: &opentelemetry::Context) -> SpanContext {
        let span = parent.span();
        let parent = span.span_context();
        let (trace_id, trace_state) = if parent.is_valid() {
            (parent.trace_id(), parent.trace_state().clone())
        } else {
            (self.ids.new_trace_id(), TraceState::default())
        };
        SpanContext::new(
            trace_id,
            self.ids.new_span_id(),
            TraceFlags::default(),
            false,
            trace_state,
        )
    }
}

/// A request's trace: its SERVER span, or, when the span queue was full as the request
/// came in, only the context the stages continue, unsampled. The span is kept inline,
/// as it was before untraced requests existed: boxing it would allocate once more per
/// traced request, to shrink a value that only moves a few times per request.
#[allow(clippy::large_enum_variant)]
enum RequestTrace {
    Recorded(opentelemetry_sdk::trace::Span),
    Untraced(SpanContext),
}

/// The W3C trace context headers.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The same names as `HeaderName`s, made once: a `&str` is parsed into a header name at
/// every lookup, and in `ServerSpan::inject` that parsing (`HdrName::from_static`, for
/// each insert and removal) was 1.4 k of its 3.1 k instructions per request
/// (callgrind, `otel::export_cost`).
static TRACEPARENT_HEADER: http::HeaderName = http::HeaderName::from_static(TRACEPARENT);
static TRACESTATE_HEADER: http::HeaderName = http::HeaderName::from_static(TRACESTATE);

/// An address as `Display` writes it; an IPv4 one without the formatting machinery, which
/// was a fifth of the SERVER span's start in a profile of `otel::export_cost`.
fn ip_text(ip: std::net::IpAddr) -> Arc<str> {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let mut text = String::with_capacity(15);
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text.push('.');
                }
                if octet >= 100 {
                    text.push(char::from(b'0' + octet / 100));
                }
                if octet >= 10 {
                    text.push(char::from(b'0' + octet / 10 % 10));
                }
                text.push(char::from(b'0' + octet % 10));
            }
            text.into()
        }
        std::net::IpAddr::V6(v6) => v6.to_string().into(),
    }
}

/// `traceparent` for `context` (version 00), byte for byte what the SDK's propagator
/// writes, without its `format!` and `Context`.
fn traceparent(context: &opentelemetry::trace::SpanContext) -> http::HeaderValue {
    fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        for b in bytes {
            out.push(DIGITS[usize::from(b >> 4)]);
            out.push(DIGITS[usize::from(b & 0xf)]);
        }
    }
    let mut value = Vec::with_capacity(55);
    value.extend_from_slice(b"00-");
    hex(&mut value, &context.trace_id().to_bytes());
    value.push(b'-');
    hex(&mut value, &context.span_id().to_bytes());
    value.push(b'-');
    hex(
        &mut value,
        &[(context.trace_flags() & opentelemetry::trace::TraceFlags::SAMPLED).to_u8()],
    );
    http::HeaderValue::from_maybe_shared(bytes::Bytes::from(value))
        .expect("hex digits and dashes are a valid header value")
}

fn protocol_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2",
        http::Version::HTTP_3 => "3",
        _ => "1.1",
    }
}

/// One request's SERVER span. Attributes: `http.request.method`, `url.path`,
/// `url.scheme`, `http.route`, `network.protocol.name`/`.version`,
/// `network.peer.address`/`.port`, `client.address` (the peer's address: unlike Spin,
/// which copies `X-Forwarded-For`, chatgate does not trust a header the client writes),
/// `server.address`/`.port` (from `Host`), `user_agent.original`, and at the end
/// `http.response.status_code`, with status Error and `error.type` for a 5xx.
/// `url.query` (which Spin records) is left out: a query may carry credentials.
/// Dropped without [`ServerSpan::end`] (the client went away), it ends without a status.
/// Without trace export it holds no span, only what the request's metric needs.
pub struct ServerSpan {
    span: Option<RequestTrace>,
    /// What `http.server.request.duration` needs, when metrics are exported.
    measured: Option<MeasuredRequest>,
}

struct MeasuredRequest {
    metrics: Arc<Metrics>,
    started: Instant,
    /// As the metric records it (one of HTTP's methods, or `_OTHER`).
    method: &'static str,
    route: Option<Arc<str>>,
}

impl ServerSpan {
    /// Replaces the request's `traceparent` (and `tracestate`) with this span's, so that
    /// what runs downstream (the `telemetry` component's log line, outbound calls it
    /// propagates) continues the host's trace as this span's child. Without a span (trace
    /// export off) the caller's headers are left as they came.
    pub fn inject(&self, headers: &mut http::HeaderMap) {
        let context = match &self.span {
            Some(RequestTrace::Recorded(span)) => span.span_context(),
            Some(RequestTrace::Untraced(context)) => context,
            None => return,
        };
        headers.remove(&TRACEPARENT_HEADER);
        headers.remove(&TRACESTATE_HEADER);
        // What the SDK's propagator writes (an empty `tracestate` included), written here
        // without its formatting: it was a sixth of the host's per-request span work.
        if context.is_valid() {
            headers.insert(TRACEPARENT_HEADER.clone(), traceparent(context));
            if let Ok(state) = http::HeaderValue::from_str(&context.trace_state().header()) {
                headers.insert(TRACESTATE_HEADER.clone(), state);
            }
        }
    }

    /// Ends the span when the response head is ready (as Spin's does; the time spent
    /// streaming the body is not part of it).
    pub fn end(self, status: http::StatusCode) {
        if let Some(RequestTrace::Recorded(mut span)) = self.span {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                Value::I64(i64::from(status.as_u16())),
            ));
            if status.is_server_error() {
                span.set_attribute(KeyValue::new("error.type", status.as_str().to_string()));
                span.set_status(Status::error(""));
            }
            span.end();
        }
        if let Some(measured) = self.measured {
            measured.metrics.record_request(
                measured.method,
                measured.route,
                status.as_u16(),
                measured.started.elapsed(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_and_tracestate_are_what_the_sdks_propagator_writes() {
        use opentelemetry::trace::TraceContextExt as _;
        use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
        for (flags, state) in [
            (TraceFlags::SAMPLED, TraceState::default()),
            (
                TraceFlags::default(),
                TraceState::from_key_value([("k", "v")]).unwrap(),
            ),
        ] {
            let context = SpanContext::new(
                TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
                SpanId::from_hex("00f067aa0ba902b7").unwrap(),
                flags,
                false,
                state,
            );
            let mut expected = http::HeaderMap::new();
            TraceContextPropagator::new().inject_context(
                &opentelemetry::Context::new().with_remote_span_context(context.clone()),
                &mut opentelemetry_http::HeaderInjector(&mut expected),
            );
            assert_eq!(expected[TRACEPARENT], traceparent(&context));
            assert_eq!(
                expected[TRACESTATE],
                http::HeaderValue::from_str(&context.trace_state().header()).unwrap()
            );
        }
    }

    #[test]
    fn ip_text_is_what_display_writes() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "192.168.100.9",
            "::1",
            "2001:db8::7",
        ] {
            let ip: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(&*ip_text(ip), ip.to_string());
        }
    }

    fn settings(vars: &[(&str, &str)]) -> Result<Option<TraceSettings>, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TraceSettings::from_env(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn off_without_an_endpoint_or_when_disabled() {
        assert_eq!(settings(&[]), Ok(None));
        assert_eq!(settings(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "")]), Ok(None));
        assert_eq!(settings(&[(OTEL_SERVICE_NAME, "x")]), Ok(None));
        // Spin: any non-empty value of OTEL_SDK_DISABLED disables, even "false".
        for value in ["true", "false", "1"] {
            assert_eq!(
                settings(&[
                    (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                    (OTEL_SDK_DISABLED, value)
                ]),
                Ok(None)
            );
        }
        assert!(
            settings(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                (OTEL_SDK_DISABLED, "")
            ])
            .unwrap()
            .is_some()
        );
    }

    #[test]
    fn endpoints() {
        let endpoint = |vars: &[(&str, &str)]| {
            settings(vars)
                .unwrap()
                .unwrap()
                .traces_endpoint
                .expect("traces on")
        };
        assert_eq!(
            endpoint(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318")]),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            endpoint(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318/")]),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            endpoint(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318/otlp")]),
            "http://c:4318/otlp/v1/traces"
        );
        // The signal's own endpoint is taken as it is, and wins.
        assert_eq!(
            endpoint(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://t:9999/traces")
            ]),
            "http://t:9999/traces"
        );
        assert_eq!(
            endpoint(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, ""),
                (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://t:9999")
            ]),
            "http://t:9999"
        );
        assert!(settings(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "not a url")]).is_err());
    }

    #[test]
    fn the_queue_size_is_read_here_so_that_drops_can_be_counted() {
        let queue = |value: &str| {
            settings(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                (OTEL_BSP_MAX_QUEUE_SIZE, value),
            ])
        };
        assert_eq!(queue("64").unwrap().unwrap().max_queue_size, Some(64));
        assert_eq!(queue("").unwrap().unwrap().max_queue_size, None);
        assert!(queue("0").is_err());
        assert!(queue("many").is_err());
        let logs = |value: &str| {
            settings(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                (OTEL_BLRP_MAX_QUEUE_SIZE, value),
            ])
        };
        assert_eq!(logs("16").unwrap().unwrap().max_log_queue_size, Some(16));
        assert_eq!(logs("").unwrap().unwrap().max_log_queue_size, None);
        assert!(logs("-1").is_err());
    }

    /// The three signals' endpoints, which say which signals are on.
    fn signals(vars: &[(&str, &str)]) -> Option<[Option<String>; 3]> {
        settings(vars)
            .unwrap()
            .map(|s| [s.traces_endpoint, s.metrics_endpoint, s.logs_endpoint])
    }

    #[test]
    fn each_signal_is_on_with_its_own_endpoint_or_the_general_one() {
        let s = |v: &str| Some(v.to_string());
        // None: off, whatever else is set.
        assert_eq!(signals(&[]), None);
        assert_eq!(
            signals(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, ""),
                (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, ""),
                (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, ""),
                (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, ""),
                (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
                (OTEL_METRIC_EXPORT_INTERVAL, "1000"),
            ]),
            None
        );
        // Each alone: that signal only, to its URL as given.
        assert_eq!(
            signals(&[(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://t:1/x")]),
            Some([s("http://t:1/x"), None, None])
        );
        assert_eq!(
            signals(&[(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:1/x")]),
            Some([None, s("http://m:1/x"), None])
        );
        assert_eq!(
            signals(&[(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, "http://l:1/x")]),
            Some([None, None, s("http://l:1/x")])
        );
        // Two of three.
        assert_eq!(
            signals(&[
                (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:1"),
                (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, "http://l:1"),
            ]),
            Some([None, s("http://m:1"), s("http://l:1")])
        );
        // The general endpoint: all three; a signal's own endpoint wins for it.
        assert_eq!(
            signals(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318")]),
            Some([
                s("http://c:4318/v1/traces"),
                s("http://c:4318/v1/metrics"),
                s("http://c:4318/v1/logs")
            ])
        );
        assert_eq!(
            signals(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:1"),
            ]),
            Some([
                s("http://c:4318/v1/traces"),
                s("http://m:1"),
                s("http://c:4318/v1/logs")
            ])
        );
        // OTEL_SDK_DISABLED (any non-empty value) turns every signal off.
        for only in [
            OTEL_EXPORTER_OTLP_ENDPOINT,
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
        ] {
            assert_eq!(
                signals(&[(only, "http://c:4318"), (OTEL_SDK_DISABLED, "false")]),
                None,
                "{only}"
            );
            assert!(
                signals(&[(only, "http://c:4318"), (OTEL_SDK_DISABLED, "")]).is_some(),
                "{only}"
            );
        }
    }

    /// Metrics alone: the request is measured, and nothing of a span is made.
    #[tokio::test(flavor = "multi_thread")]
    async fn without_traces_a_request_gets_no_span_and_keeps_its_traceparent() {
        // Nothing listens there; nothing is exported before the test ends.
        let settings = settings(&[
            (
                OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
                "http://127.0.0.1:9/v1/metrics",
            ),
            (OTEL_METRIC_EXPORT_INTERVAL, "3600000"),
        ])
        .unwrap()
        .unwrap();
        let otel = Tracing::start(&settings).unwrap();
        assert!(otel.traces.is_none());
        let sink = otel.span_sink();
        assert!(!sink.exports_spans() && sink.metrics().is_some());
        let caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut request = http::Request::new(());
        request
            .headers_mut()
            .insert("traceparent", http::HeaderValue::from_static(caller));
        let span = otel.server_span(&request, "127.0.0.1:1".parse().unwrap(), Some("/..."));
        assert!(span.span.is_none() && span.measured.is_some());
        span.inject(request.headers_mut());
        assert_eq!(request.headers()["traceparent"], caller);
        span.end(http::StatusCode::OK);
        assert_eq!(otel.dropped_spans(), 0);
        stop(otel).await;
        // Traces alone: a span, no measurement.
        let settings = settings_of_traces_alone();
        let otel = Tracing::start(&settings).unwrap();
        let span = otel.server_span(&request, "127.0.0.1:1".parse().unwrap(), None);
        assert!(span.span.is_some() && span.measured.is_none());
        span.inject(request.headers_mut());
        assert_ne!(request.headers()["traceparent"], caller);
        assert!(otel.span_sink().exports_spans() && otel.span_sink().metrics().is_none());
        span.end(http::StatusCode::OK);
        stop(otel).await;
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_request_that_finds_the_span_queue_full_continues_its_callers_trace_unsampled() {
        // A queue of no spans is always full.
        let mut settings = settings_of_traces_alone();
        settings.max_queue_size = Some(0);
        let otel = Tracing::start(&settings).unwrap();
        let caller_trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        let caller = format!("00-{caller_trace}-00f067aa0ba902b7-01");
        let mut request = http::Request::new(());
        let headers = request.headers_mut();
        headers.insert("traceparent", caller.parse().unwrap());
        headers.insert("tracestate", "vendor=value".parse().unwrap());
        let span = otel.server_span(&request, "127.0.0.1:1".parse().unwrap(), Some("/..."));
        assert!(matches!(span.span, Some(RequestTrace::Untraced(_))));
        span.inject(request.headers_mut());
        let traceparent = request.headers()["traceparent"].to_str().unwrap();
        let parts: Vec<&str> = traceparent.split('-').collect();
        assert_eq!(parts.len(), 4, "{traceparent}");
        assert_eq!((parts[0], parts[1], parts[3]), ("00", caller_trace, "00"));
        assert_ne!(parts[2], "00f067aa0ba902b7");
        assert_ne!(parts[2], "0000000000000000");
        assert_eq!(request.headers()["tracestate"], "vendor=value");
        span.end(http::StatusCode::OK);
        // Without a caller's trace, a new one.
        let bare = http::Request::new(());
        let span = otel.server_span(&bare, "127.0.0.1:1".parse().unwrap(), None);
        let mut headers = http::HeaderMap::new();
        span.inject(&mut headers);
        let traceparent = headers["traceparent"].to_str().unwrap().to_string();
        assert!(
            traceparent.len() == 55 && !traceparent.contains(caller_trace),
            "{traceparent}"
        );
        assert!(traceparent.ends_with("-00"), "{traceparent}");
        // Empty, as the SDK's propagator writes it for a traced request's new trace.
        assert_eq!(headers["tracestate"], "");
        span.end(http::StatusCode::OK);
        assert_eq!((otel.untraced_requests(), otel.dropped_spans()), (2, 0));
        stop(otel).await;
    }

    /// Shuts `otel` down off the async threads (its exports fail: nothing listens).
    async fn stop(otel: Tracing) {
        let _ = tokio::task::spawn_blocking(move || otel.shutdown()).await;
    }

    fn settings_of_traces_alone() -> TraceSettings {
        settings(&[(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://127.0.0.1:9")])
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_signal_that_is_off_has_its_protocol_left_unread() {
        // As in Spin, where only an enabled signal reads its protocol: http/json for
        // traces stops nothing when only metrics are on ...
        let metrics_only = settings(&[
            (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:4317"),
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "http/json"),
            (OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, "http/json"),
            (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, "grpc"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(metrics_only.traces_endpoint, None);
        assert_eq!(metrics_only.metrics_protocol, Protocol::Grpc);
        assert_eq!(
            metrics_only.metrics_endpoint.as_deref(),
            Some("http://m:4317")
        );
        // ... and stops start-up when the signal is on.
        let err = settings(&[
            (OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, "http://l:4318"),
            (OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, "http/json"),
        ])
        .unwrap_err();
        assert!(err.contains("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"), "{err}");
        // A signal's own endpoint that is not a URL is an error only for that signal.
        assert!(settings(&[(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "not a url")]).is_err());
    }

    #[test]
    fn metrics_go_with_traces_to_the_general_endpoint_or_their_own() {
        let metrics = |vars: &[(&str, &str)]| {
            let s = settings(vars).unwrap().unwrap();
            (s.metrics_endpoint, s.metrics_interval)
        };
        assert_eq!(
            metrics(&[(OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318/")]),
            (Some("http://c:4318/v1/metrics".into()), None)
        );
        assert_eq!(
            metrics(&[
                (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                (OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:9999/m"),
                (OTEL_METRIC_EXPORT_INTERVAL, "15000"),
            ]),
            (
                Some("http://m:9999/m".into()),
                Some(Duration::from_secs(15))
            )
        );
        // Only the traces endpoint: traces without metrics.
        assert_eq!(
            metrics(&[(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "http://t:9999")]),
            (None, None)
        );
        // Metrics alone: metrics without traces.
        let alone = settings(&[(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "http://m:9999")])
            .unwrap()
            .unwrap();
        assert_eq!(
            (alone.traces_endpoint, alone.metrics_endpoint.as_deref()),
            (None, Some("http://m:9999"))
        );
        for interval in ["0", "soon", "-5"] {
            assert!(
                settings(&[
                    (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318"),
                    (OTEL_METRIC_EXPORT_INTERVAL, interval)
                ])
                .is_err(),
                "{interval}"
            );
        }
    }

    #[test]
    fn protocols_and_the_endpoints_they_give_each_signal() {
        let on = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318");
        let get = |vars: &[(&str, &str)]| settings(vars).unwrap().unwrap();
        let http = get(&[on, (OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf")]);
        assert_eq!(http.traces_protocol, Protocol::HttpProtobuf);
        // Unknown: http/protobuf, as in Spin.
        let unknown = get(&[on, (OTEL_EXPORTER_OTLP_PROTOCOL, "carrier-pigeon")]);
        assert_eq!(unknown, http);
        // gRPC: the general endpoint as it is, for every signal.
        let grpc = get(&[
            (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4317"),
            (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
        ]);
        assert_eq!(
            (grpc.traces_protocol, grpc.traces_endpoint.as_deref()),
            (Protocol::Grpc, Some("http://c:4317"))
        );
        assert_eq!(grpc.metrics_protocol, Protocol::Grpc);
        assert_eq!(grpc.metrics_endpoint.as_deref(), Some("http://c:4317"));
        assert_eq!(grpc.logs_protocol, Protocol::Grpc);
        assert_eq!(grpc.logs_endpoint.as_deref(), Some("http://c:4317"));
        // Per signal: traces over gRPC, metrics and logs over HTTP with their paths.
        let mixed = get(&[
            on,
            (OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf"),
            (OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "grpc"),
        ]);
        assert_eq!(
            (mixed.traces_protocol, mixed.traces_endpoint.as_deref()),
            (Protocol::Grpc, Some("http://c:4318"))
        );
        assert_eq!(mixed.metrics_protocol, Protocol::HttpProtobuf);
        assert_eq!(
            mixed.metrics_endpoint.as_deref(),
            Some("http://c:4318/v1/metrics")
        );
        let logs_grpc = get(&[on, (OTEL_EXPORTER_OTLP_LOGS_PROTOCOL, "grpc")]);
        assert_eq!(
            (logs_grpc.logs_protocol, logs_grpc.logs_endpoint.as_deref()),
            (Protocol::Grpc, Some("http://c:4318"))
        );
        assert_eq!(
            logs_grpc.traces_endpoint.as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let json = settings(&[on, (OTEL_EXPORTER_OTLP_PROTOCOL, "http/json")]).unwrap_err();
        assert!(
            json.contains("OTEL_EXPORTER_OTLP_PROTOCOL=http/json"),
            "{json}"
        );
        let json = settings(&[on, (OTEL_EXPORTER_OTLP_METRICS_PROTOCOL, "http/json")]).unwrap_err();
        assert!(
            json.contains("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL=http/json"),
            "{json}"
        );
    }

    #[test]
    fn service_name_and_resource_attributes() {
        let on = (OTEL_EXPORTER_OTLP_ENDPOINT, "http://c:4318");
        let get = |vars: &[(&str, &str)]| settings(vars).unwrap().unwrap();
        assert_eq!(get(&[on]).service_name, "chatgate");
        let s = get(&[
            on,
            (
                OTEL_RESOURCE_ATTRIBUTES,
                " service.name = from-attrs ,deployment.environment=prod,bad,",
            ),
        ]);
        assert_eq!(s.service_name, "from-attrs");
        assert_eq!(
            s.resource_attributes,
            vec![
                ("service.name".to_string(), "from-attrs".to_string()),
                ("deployment.environment".to_string(), "prod".to_string()),
            ]
        );
        let s = get(&[
            on,
            (OTEL_RESOURCE_ATTRIBUTES, "service.name=from-attrs"),
            (OTEL_SERVICE_NAME, "from-name"),
        ]);
        assert_eq!(s.service_name, "from-name");
        let s = get(&[on, (OTEL_SERVICE_NAME, "")]);
        assert_eq!(s.service_name, "chatgate");
    }
}
