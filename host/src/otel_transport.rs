//! How each signal reaches the collector: OTLP over HTTP (protobuf bodies, through
//! reqwest) or over gRPC (tonic), chosen per signal as Spin 4 chooses it (read in Spin's
//! source, commit 94a8fc8a: `crates/telemetry/src/env.rs`, `traces.rs`, `metrics.rs`,
//! `logs.rs`; restated, not copied):
//!
//! - a signal's protocol is `OTEL_EXPORTER_OTLP_{TRACES,METRICS,LOGS}_PROTOCOL` when
//!   that variable is set (even empty), else `OTEL_EXPORTER_OTLP_PROTOCOL`, else
//!   `http/protobuf`; `grpc` and `http/protobuf` are taken, `http/json` refused (as Spin
//!   refuses it, at start-up), anything else is `http/protobuf` with a warning;
//! - over HTTP, `OTEL_EXPORTER_OTLP_ENDPOINT` gets the signal's path (`/v1/traces`,
//!   ...); over gRPC it is taken as it is (the exporter crate's rule, which Spin leaves
//!   the variables to): the gRPC method names the signal;
//! - gRPC is plaintext HTTP/2 (`http://` endpoints), as Spin builds it: no TLS feature
//!   of the exporter is compiled in, and an `https://` gRPC endpoint is refused at
//!   start-up. `OTEL_EXPORTER_OTLP_{,TRACES_,...}HEADERS` and `..._TIMEOUT` are read by
//!   the exporter crate itself, for both protocols.
//!
//! The SDK's batch processors and periodic reader run exports on threads of their own,
//! outside the host's tokio runtime, which tonic's channel (and the reqwest client) is
//! bound to. [`OnRuntime`] polls every export inside the runtime's context, so the
//! exporter's timers and retries run on the runtime, and it reports whether exports
//! reach the collector, which the SDK's own error logs (not built in) would not.

use crate::otel_proto::EncodedResource;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";

/// The default of `OTEL_EXPORTER_OTLP_TIMEOUT`: how long an export over HTTP may take,
/// retries included; the HTTP client's own bound on any one request too.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// A collector's answer beyond this is refused (the exporter crate's own clients' limit).
const MAX_RESPONSE_BODY_BYTES: usize = 4 << 20;

/// An OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `http/protobuf`: protobuf bodies POSTed to the signal's URL.
    HttpProtobuf,
    /// `grpc`: the OTLP collector services over plaintext HTTP/2.
    Grpc,
}

impl Protocol {
    /// The protocol of the signal whose own variable is `specific` (one of the
    /// `OTEL_EXPORTER_OTLP_*_PROTOCOL` constants), from the variables `var` returns.
    /// An unknown value is `http/protobuf`, with a warning naming the variable.
    pub fn from_env(
        specific: &str,
        var: &impl Fn(&str) -> Option<String>,
    ) -> Result<Protocol, String> {
        // As in Spin, a signal's own variable that is set wins even when empty (and then
        // is an unknown protocol).
        let (variable, value) = match var(specific) {
            Some(value) => (specific, value),
            None => match var(OTEL_EXPORTER_OTLP_PROTOCOL) {
                Some(value) => (OTEL_EXPORTER_OTLP_PROTOCOL, value),
                None => return Ok(Protocol::HttpProtobuf),
            },
        };
        match value.as_str() {
            "http/protobuf" => Ok(Protocol::HttpProtobuf),
            "grpc" => Ok(Protocol::Grpc),
            "http/json" => Err(format!(
                "{variable}=http/json: the http/json OTLP protocol is not supported (neither is it by Spin); use http/protobuf or grpc"
            )),
            other => {
                tracing::warn!(
                    target: "chatgate::otel",
                    "{variable}: `{other}` is not a valid OTLP protocol, using http/protobuf"
                );
                Ok(Protocol::HttpProtobuf)
            }
        }
    }

    /// The URL a signal is sent to when only the general `endpoint` is given: over
    /// HTTP, `endpoint` followed by the signal's `path` (without doubling the slash);
    /// over gRPC, `endpoint` itself.
    pub fn signal_url(self, endpoint: &str, path: &str) -> String {
        match self {
            Protocol::Grpc => endpoint.to_string(),
            Protocol::HttpProtobuf if endpoint.ends_with('/') => {
                format!("{endpoint}{}", &path[1..])
            }
            Protocol::HttpProtobuf => format!("{endpoint}{path}"),
        }
    }
}

/// The span exporter for `endpoint` over `protocol`. Must be called inside the tokio
/// runtime the exports are to run on. Over HTTP it is chatgate's own
/// ([`OtlpHttp`], bodies written by [`crate::otel_proto`]); over gRPC the crate's.
pub(crate) fn span_exporter(
    protocol: Protocol,
    endpoint: &str,
) -> wasmtime::Result<OnRuntime<SpanExport>> {
    let exporter = match protocol {
        Protocol::HttpProtobuf => SpanExport::Http(OtlpHttp::new("trace", "TRACES", endpoint)?),
        Protocol::Grpc => SpanExport::Grpc(
            opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.to_string())
                .build()
                .map_err(|e| wasmtime::format_err!("OpenTelemetry trace exporter: {e}"))?,
        ),
    };
    OnRuntime::new(exporter, protocol, "trace")
}

/// The metric exporter for `endpoint` over `protocol`; see [`span_exporter`]. The
/// crate's for both protocols: metrics are exported once a minute, not per request.
pub(crate) fn metric_exporter(
    protocol: Protocol,
    endpoint: &str,
) -> wasmtime::Result<OnRuntime<opentelemetry_otlp::MetricExporter>> {
    let failed = |e| wasmtime::format_err!("OpenTelemetry metric exporter: {e}");
    let exporter = match protocol {
        Protocol::HttpProtobuf => opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(ReqwestOnTokio::new("metric")?)
            .with_endpoint(endpoint.to_string())
            .build()
            .map_err(failed)?,
        Protocol::Grpc => opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.to_string())
            .build()
            .map_err(failed)?,
    };
    OnRuntime::new(exporter, protocol, "metric")
}

/// The log exporter for `endpoint` over `protocol`; see [`span_exporter`].
pub(crate) fn log_exporter(
    protocol: Protocol,
    endpoint: &str,
) -> wasmtime::Result<OnRuntime<LogExport>> {
    let exporter = match protocol {
        Protocol::HttpProtobuf => LogExport::Http(OtlpHttp::new("log", "LOGS", endpoint)?),
        Protocol::Grpc => LogExport::Grpc(
            opentelemetry_otlp::LogExporter::builder()
                .with_tonic()
                .with_endpoint(endpoint.to_string())
                .build()
                .map_err(|e| wasmtime::format_err!("OpenTelemetry log exporter: {e}"))?,
        ),
    };
    OnRuntime::new(exporter, protocol, "log")
}

/// A span exporter: chatgate's over HTTP, the crate's over gRPC.
#[derive(Debug)]
pub(crate) enum SpanExport {
    Http(OtlpHttp),
    Grpc(opentelemetry_otlp::SpanExporter),
}

impl SpanExporter for SpanExport {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        match self {
            SpanExport::Http(http) => {
                let body = crate::otel_proto::traces(&http.resource, &batch);
                // The spans' strings are freed before the wait for the collector.
                drop(batch);
                http.post(body).await
            }
            SpanExport::Grpc(grpc) => grpc.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            SpanExport::Http(http) => http.shutdown(),
            SpanExport::Grpc(grpc) => grpc.shutdown_with_timeout(timeout),
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        match self {
            // Nothing is buffered here: each export is sent as it comes.
            SpanExport::Http(_) => Ok(()),
            SpanExport::Grpc(grpc) => grpc.force_flush(),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            SpanExport::Http(http) => http.resource = EncodedResource::new(resource),
            SpanExport::Grpc(grpc) => grpc.set_resource(resource),
        }
    }
}

/// A log exporter: chatgate's over HTTP, the crate's over gRPC.
#[derive(Debug)]
pub(crate) enum LogExport {
    Http(OtlpHttp),
    Grpc(opentelemetry_otlp::LogExporter),
}

impl LogExporter for LogExport {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        match self {
            LogExport::Http(http) => {
                let body = crate::otel_proto::logs(&http.resource, &batch);
                http.post(body).await
            }
            LogExport::Grpc(grpc) => grpc.export(batch).await,
        }
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        match self {
            LogExport::Http(http) => http.shutdown(),
            LogExport::Grpc(grpc) => grpc.shutdown_with_timeout(timeout),
        }
    }

    fn set_resource(&mut self, resource: &Resource) {
        match self {
            LogExport::Http(http) => http.resource = EncodedResource::new(resource),
            LogExport::Grpc(grpc) => grpc.set_resource(resource),
        }
    }
}

/// The exporter crate's limit on a request body; a larger batch is dropped, not sent.
const MAX_REQUEST_BODY_BYTES: usize = 64 << 20;

/// What the exporter crate sends as `User-Agent` (`default_headers` in its
/// `exporter/mod.rs`), so that collectors see the same client.
const USER_AGENT: &str = "OTel-OTLP-Exporter-Rust/0.33.1";

/// OTLP over HTTP as the exporter crate's HTTP exporter does it (read in
/// `opentelemetry-otlp` 0.33.1, `src/exporter/http/mod.rs`, `exporter/mod.rs`,
/// `retry.rs`, `retry_policy.rs`, `retry_classification.rs`; restated, not copied), with
/// the body written by [`crate::otel_proto`] instead of the crate's message structs:
///
/// - a POST of `application/x-protobuf` to the signal's URL, with `User-Agent` and the
///   headers of `OTEL_EXPORTER_OTLP_{TRACES,LOGS}_HEADERS`, else
///   `OTEL_EXPORTER_OTLP_HEADERS` (`key=value` pairs separated by commas, trimmed, values
///   percent-decoded, pairs with an empty key or value or an invalid name skipped);
/// - up to 3 retries of a network error, 429, 502, 503 and 504, after 100 ms doubling up
///   to 1.6 s, plus up to 100 ms of jitter (or the collector's `Retry-After` in seconds,
///   at most 30 s, for 429 and 503), within `OTEL_EXPORTER_OTLP_{TRACES,LOGS}_TIMEOUT`,
///   else `OTEL_EXPORTER_OTLP_TIMEOUT` (milliseconds; 10 s by default);
/// - no compression: the crate's gzip and zstd features were never compiled in, so it
///   ignored `OTEL_EXPORTER_OTLP_*COMPRESSION` too (with a warning this host does not
///   build in);
/// - the collector's answer is not read: the crate only logged a partial success in its
///   own (not built in) logs.
#[derive(Debug)]
pub(crate) struct OtlpHttp {
    client: ReqwestOnTokio,
    endpoint: http::Uri,
    headers: http::HeaderMap,
    timeout: Duration,
    resource: EncodedResource,
    shut_down: AtomicBool,
}

impl OtlpHttp {
    /// The exporter of `signal` (`trace`, `log`) to `endpoint`, reading the variables of
    /// `variables` (`TRACES`, `LOGS`) from the process environment.
    fn new(signal: &'static str, variables: &str, endpoint: &str) -> wasmtime::Result<OtlpHttp> {
        let env = |name: &str| std::env::var(name).ok();
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        headers.insert(
            http::header::USER_AGENT,
            http::HeaderValue::from_static(USER_AGENT),
        );
        if let Some(configured) = env(&format!("OTEL_EXPORTER_OTLP_{variables}_HEADERS"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_HEADERS"))
        {
            for (name, value) in parse_headers(&configured) {
                headers.insert(name, value);
            }
        }
        let millis = |name: &str| env(name).and_then(|v| v.parse::<u64>().ok());
        let timeout = millis(&format!("OTEL_EXPORTER_OTLP_{variables}_TIMEOUT"))
            .or_else(|| millis("OTEL_EXPORTER_OTLP_TIMEOUT"))
            .map_or(EXPORT_TIMEOUT, Duration::from_millis);
        Ok(OtlpHttp {
            client: ReqwestOnTokio::new(signal)?,
            endpoint: endpoint.parse().map_err(|e| {
                wasmtime::format_err!("OpenTelemetry {signal} exporter: invalid endpoint: {e}")
            })?,
            headers,
            timeout,
            resource: EncodedResource::default(),
            shut_down: AtomicBool::new(false),
        })
    }

    fn shutdown(&self) -> OTelSdkResult {
        if self.shut_down.swap(true, Ordering::AcqRel) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        Ok(())
    }

    /// POSTs `body`, retrying as the crate does.
    async fn post(&self, body: Vec<u8>) -> OTelSdkResult {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(OTelSdkError::AlreadyShutdown);
        }
        if body.len() > MAX_REQUEST_BODY_BYTES {
            return Err(OTelSdkError::InternalFailure(format!(
                "OTLP HTTP request body is {} bytes, over the limit of {MAX_REQUEST_BODY_BYTES}; not sent",
                body.len()
            )));
        }
        let body = Bytes::from(body);
        let started = Instant::now();
        let (mut delay, mut delay_cap) = (RETRY_INITIAL_DELAY, RETRY_MAX_DELAY);
        let mut attempt = 0;
        loop {
            let mut request = Request::new(body.clone());
            *request.method_mut() = http::Method::POST;
            *request.uri_mut() = self.endpoint.clone();
            *request.headers_mut() = self.headers.clone();
            // A configured timeout below the client's own bounds each attempt too.
            let left = self.timeout.saturating_sub(started.elapsed());
            let sent = self.client.send(request, Some(left)).await;
            let (status, retry_after) = match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => (
                    response.status().as_u16(),
                    response
                        .headers()
                        .get(http::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(|secs| Duration::from_secs(secs.min(600))),
                ),
                // A network error (or the time left used up): what the crate calls
                // status 0, retried while time is left.
                Err(_) => (0, None),
            };
            let failed = || {
                Err(OTelSdkError::InternalFailure(if status == 0 {
                    "HTTP export failed: network error".to_string()
                } else {
                    format!("HTTP export failed with status code: {status}")
                }))
            };
            let retryable = matches!(status, 0 | 429 | 502 | 503 | 504);
            if !retryable || attempt >= RETRY_MAX || started.elapsed() >= self.timeout {
                return failed();
            }
            attempt += 1;
            if let Some(server) = retry_after.filter(|_| matches!(status, 429 | 503)) {
                let server = server.min(RETRY_MAX_THROTTLE);
                if server > delay_cap {
                    delay_cap = RETRY_MAX_THROTTLE;
                }
                delay = delay.max(server);
            }
            let jitter = Duration::from_millis(fastrand::u64(0..=RETRY_MAX_JITTER_MS));
            let sleep = (delay + jitter).min(delay_cap);
            if sleep >= self.timeout.saturating_sub(started.elapsed()) {
                return failed();
            }
            // On the runtime, as the request is ([`ReqwestOnTokio::send`]); a
            // runtime shutting down ends the export.
            if self
                .client
                .runtime
                .spawn(tokio::time::sleep(sleep))
                .await
                .is_err()
            {
                return failed();
            }
            delay = (delay * 2).min(delay_cap);
        }
    }
}

/// The crate's retry policy (`RetryPolicy::recommended`).
const RETRY_MAX: u32 = 3;
const RETRY_INITIAL_DELAY: Duration = Duration::from_millis(100);
const RETRY_MAX_DELAY: Duration = Duration::from_millis(1600);
const RETRY_MAX_JITTER_MS: u64 = 100;
const RETRY_MAX_THROTTLE: Duration = Duration::from_secs(30);

/// The headers of an `OTEL_EXPORTER_OTLP_*HEADERS` value, as the crate reads them.
fn parse_headers(value: &str) -> impl Iterator<Item = (http::HeaderName, http::HeaderValue)> + '_ {
    value
        .split_terminator(',')
        .map(str::trim)
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let (name, value) = (name.trim(), value.trim());
            let value = percent_decode(value).unwrap_or_else(|| value.to_string());
            if name.is_empty() || value.is_empty() {
                return None;
            }
            Some((
                http::HeaderName::from_bytes(name.as_bytes()).ok()?,
                http::HeaderValue::from_str(&value).ok()?,
            ))
        })
}

/// `%XX` sequences decoded (UTF-8 required); `None` when one is malformed.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An exporter whose exports are polled inside the host's tokio runtime's context, with
/// their outcome reported ([`Health`]) when the transport does not report it itself
/// (gRPC; the HTTP client, [`ReqwestOnTokio`], reports its own with more detail).
#[derive(Debug)]
pub(crate) struct OnRuntime<E> {
    inner: E,
    runtime: tokio::runtime::Handle,
    health: Option<Health>,
}

impl<E> OnRuntime<E> {
    fn new(inner: E, protocol: Protocol, signal: &'static str) -> wasmtime::Result<Self> {
        Ok(OnRuntime {
            inner,
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| wasmtime::format_err!("OpenTelemetry export needs a tokio runtime"))?,
            health: (protocol == Protocol::Grpc).then(|| Health::new(signal)),
        })
    }

    /// `export`, polled in the runtime's context, its outcome reported.
    async fn run<F: Future<Output = OTelSdkResult>>(&self, export: F) -> OTelSdkResult {
        let result = InContext {
            runtime: &self.runtime,
            future: std::pin::pin!(export),
        }
        .await;
        if let Some(health) = &self.health {
            health.report(result.as_ref().err().map(|e| e.to_string()));
        }
        result
    }
}

/// A future polled with `runtime` entered, so that what it creates on each poll (timers,
/// tasks) belongs to that runtime even on a thread of the SDK's.
struct InContext<'a, F> {
    runtime: &'a tokio::runtime::Handle,
    future: Pin<&'a mut F>,
}

impl<F: Future> Future for InContext<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _entered = self.runtime.enter();
        self.future.as_mut().poll(cx)
    }
}

impl<E: SpanExporter> SpanExporter for OnRuntime<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let export = {
            let _entered = self.runtime.enter();
            self.inner.export(batch)
        };
        self.run(export).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: LogExporter> LogExporter for OnRuntime<E> {
    async fn export(&self, batch: LogBatch<'_>) -> OTelSdkResult {
        let export = {
            let _entered = self.runtime.enter();
            self.inner.export(batch)
        };
        self.run(export).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<E: PushMetricExporter> PushMetricExporter for OnRuntime<E> {
    async fn export(&self, metrics: &ResourceMetrics) -> OTelSdkResult {
        let export = {
            let _entered = self.runtime.enter();
            self.inner.export(metrics)
        };
        self.run(export).await
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn temporality(&self) -> Temporality {
        self.inner.temporality()
    }
}

/// What the operator has been told about one signal's collector (the SDK's own error
/// logs are not built in, so a collector that is down would otherwise go unnoticed).
#[derive(Debug)]
struct Health {
    /// What is exported (`trace`, `metric`, `log`), for the log lines.
    signal: &'static str,
    state: Mutex<ExportHealth>,
}

impl Health {
    fn new(signal: &'static str) -> Health {
        Health {
            signal,
            state: Mutex::new(ExportHealth::default()),
        }
    }

    /// Records one export's outcome and logs what changed (`problem` names the failure;
    /// the collector's URL is left out, its user-info could be a credential).
    fn report(&self, problem: Option<String>) {
        let report = self
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .record(Instant::now(), problem.is_none());
        let signal = self.signal;
        match (report, problem) {
            (Some(HealthReport::Failing { failures }), Some(problem)) => {
                tracing::warn!(target: "chatgate::otel", "exporting {signal}s failed ({failures} export(s) since the last report; {signal}s in them are lost): {problem}");
            }
            (Some(HealthReport::Recovered), _) => {
                tracing::info!(target: "chatgate::otel", "exporting {signal}s works again");
            }
            _ => {}
        }
    }
}

/// How often a collector that keeps failing is reported again.
const EXPORT_FAILURE_REPORT_INTERVAL: Duration = Duration::from_secs(60);

/// Whether exports reach the collector, reported as it changes: the first failure at
/// once, further failures at most once per [`EXPORT_FAILURE_REPORT_INTERVAL`] with how
/// many there were, and the first success after failures.
#[derive(Debug, Default)]
struct ExportHealth {
    /// When failing: when the last report was made, and the failures since then.
    failing: Option<(Instant, u64)>,
}

/// What [`ExportHealth::record`] asks to tell the operator.
#[derive(Debug, PartialEq, Eq)]
enum HealthReport {
    /// Exports fail; `failures` since the previous report (1 for the first).
    Failing { failures: u64 },
    /// An export succeeded after failures.
    Recovered,
}

impl ExportHealth {
    fn record(&mut self, now: Instant, succeeded: bool) -> Option<HealthReport> {
        match (&mut self.failing, succeeded) {
            (None, true) => None,
            (Some(_), true) => {
                self.failing = None;
                Some(HealthReport::Recovered)
            }
            (None, false) => {
                self.failing = Some((now, 0));
                Some(HealthReport::Failing { failures: 1 })
            }
            (Some((reported, failures)), false) => {
                *failures += 1;
                if now.duration_since(*reported) < EXPORT_FAILURE_REPORT_INTERVAL {
                    return None;
                }
                let report = HealthReport::Failing {
                    failures: *failures,
                };
                *reported = now;
                *failures = 0;
                Some(report)
            }
        }
    }
}

/// reqwest 0.12 (rustls) as the exporter's HTTP client. The batch processor runs
/// exports on its own thread, outside any tokio runtime, so each request is spawned
/// onto the host's runtime and awaited from there.
#[derive(Debug)]
struct ReqwestOnTokio {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
    health: Health,
}

impl ReqwestOnTokio {
    /// A client for the exporter of `signal`; must be called inside a tokio runtime.
    fn new(signal: &'static str) -> wasmtime::Result<ReqwestOnTokio> {
        Ok(ReqwestOnTokio {
            client: reqwest::Client::builder()
                .timeout(EXPORT_TIMEOUT)
                .connect_timeout(EXPORT_TIMEOUT)
                .build()
                .map_err(|e| wasmtime::format_err!("building the OTLP HTTP client: {e}"))?,
            runtime: tokio::runtime::Handle::try_current()
                .map_err(|_| wasmtime::format_err!("OpenTelemetry export needs a tokio runtime"))?,
            health: Health::new(signal),
        })
    }
}

impl ReqwestOnTokio {
    /// [`HttpClient::send_bytes`], given at most `limit` if any. The request and its
    /// deadline both run as a task of the runtime, and this thread (the SDK's) only
    /// waits for the task: a tokio timer polled here would panic this thread when the
    /// runtime shuts down while a collector stalls (the host exiting; seen in
    /// `otel::export_cost`), where the task's end reports an error instead.
    async fn send(
        &self,
        request: Request<Bytes>,
        limit: Option<Duration>,
    ) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let exchange = async move {
            let mut response = client.execute(request).await?;
            let status = response.status();
            let headers = std::mem::take(response.headers_mut());
            let mut body = Vec::new();
            while let Some(chunk) = response.chunk().await? {
                if body.len() + chunk.len() > MAX_RESPONSE_BODY_BYTES {
                    return Err::<_, HttpError>("the collector's answer is over 4 MiB".into());
                }
                body.extend_from_slice(&chunk);
            }
            let mut answer = Response::new(Bytes::from(body));
            *answer.status_mut() = status;
            *answer.headers_mut() = headers;
            Ok(answer)
        };
        let answer = self
            .runtime
            .spawn(async move {
                match limit {
                    Some(limit) => tokio::time::timeout(limit, exchange)
                        .await
                        .unwrap_or_else(|_| Err("the collector did not answer in time".into())),
                    None => exchange.await,
                }
            })
            .await?;
        self.health.report(match &answer {
            Ok(response) if response.status().is_success() => None,
            Ok(response) => Some(format!("the collector answered {}", response.status())),
            Err(error) => Some(describe(error.as_ref())),
        });
        answer
    }
}

#[async_trait::async_trait]
impl HttpClient for ReqwestOnTokio {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        self.send(request, None).await
    }
}

/// `error` and its sources, without a URL (reqwest puts the collector's in its errors).
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = match error.downcast_ref::<reqwest::Error>() {
        Some(error) if error.is_connect() => "cannot connect to the collector".to_string(),
        Some(error) if error.is_timeout() => "the collector did not answer in time".to_string(),
        Some(_) => "the request to the collector failed".to_string(),
        None => error.to_string(),
    };
    let mut source = error.source();
    while let Some(cause) = source {
        if cause.downcast_ref::<reqwest::Error>().is_none() {
            text.push_str(": ");
            text.push_str(&cause.to_string());
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn protocol(specific: &str, vars: &[(&str, &str)]) -> Result<Protocol, String> {
        let var = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        };
        Protocol::from_env(specific, &var)
    }

    #[test]
    fn each_signal_takes_its_own_protocol_variable_else_the_general_one() {
        use Protocol::*;
        assert_eq!(
            protocol(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, &[]),
            Ok(HttpProtobuf)
        );
        let general = [(OTEL_EXPORTER_OTLP_PROTOCOL, "grpc")];
        for signal in [
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
            OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
            OTEL_EXPORTER_OTLP_LOGS_PROTOCOL,
        ] {
            assert_eq!(protocol(signal, &general), Ok(Grpc), "{signal}");
            // The signal's own variable wins, either way.
            let own = [
                (OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"),
                (signal, "http/protobuf"),
            ];
            assert_eq!(protocol(signal, &own), Ok(HttpProtobuf), "{signal}");
            let own = [
                (OTEL_EXPORTER_OTLP_PROTOCOL, "http/protobuf"),
                (signal, "grpc"),
            ];
            assert_eq!(protocol(signal, &own), Ok(Grpc), "{signal}");
            // Set but empty: unknown, so http/protobuf, not the general variable's.
            let empty = [(OTEL_EXPORTER_OTLP_PROTOCOL, "grpc"), (signal, "")];
            assert_eq!(protocol(signal, &empty), Ok(HttpProtobuf), "{signal}");
            let json = protocol(signal, &[(signal, "http/json")]).unwrap_err();
            assert!(json.contains(&format!("{signal}=http/json")), "{json}");
        }
        // Another signal's variable is not read.
        assert_eq!(
            protocol(
                OTEL_EXPORTER_OTLP_METRICS_PROTOCOL,
                &[(OTEL_EXPORTER_OTLP_TRACES_PROTOCOL, "grpc")]
            ),
            Ok(HttpProtobuf)
        );
        assert_eq!(
            protocol(
                OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
                &[(OTEL_EXPORTER_OTLP_PROTOCOL, "carrier-pigeon")]
            ),
            Ok(HttpProtobuf)
        );
    }

    #[test]
    fn the_general_endpoint_gets_the_signals_path_over_http_only() {
        let http = Protocol::HttpProtobuf;
        assert_eq!(
            http.signal_url("http://c:4318", "/v1/traces"),
            "http://c:4318/v1/traces"
        );
        assert_eq!(
            http.signal_url("http://c:4318/", "/v1/logs"),
            "http://c:4318/v1/logs"
        );
        assert_eq!(
            Protocol::Grpc.signal_url("http://c:4317", "/v1/traces"),
            "http://c:4317"
        );
    }

    /// `future` run to its end on this thread, parking between polls: as the SDK's batch
    /// processors run exports, on a thread of their own outside any tokio runtime.
    fn block_on<F: Future>(future: F) -> F::Output {
        struct Unpark(std::thread::Thread);
        impl std::task::Wake for Unpark {
            fn wake(self: std::sync::Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = std::task::Waker::from(std::sync::Arc::new(Unpark(std::thread::current())));
        let mut context = Context::from_waker(&waker);
        let mut future = std::pin::pin!(future);
        loop {
            if let Poll::Ready(output) = future.as_mut().poll(&mut context) {
                return output;
            }
            std::thread::park();
        }
    }

    #[test]
    fn an_export_in_flight_when_the_runtime_shuts_down_fails_without_a_panic() {
        // A collector that takes the connection and never answers.
        let stalled = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}/v1/traces", stalled.local_addr().unwrap());
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let exporter = {
            let _entered = runtime.enter();
            span_exporter(Protocol::HttpProtobuf, &endpoint).unwrap()
        };
        let export = std::thread::spawn(move || block_on(exporter.export(Vec::new())));
        let (_held, _) = stalled.accept().unwrap();
        // The host exiting while the export waits for the collector.
        drop(runtime);
        let outcome = export.join().expect("the exporting thread does not panic");
        assert!(outcome.is_err(), "{outcome:?}");
    }

    #[tokio::test]
    async fn an_https_grpc_endpoint_is_refused_at_start_up() {
        // No TLS is compiled in for gRPC (as in Spin): refused rather than sent in clear.
        let error = span_exporter(Protocol::Grpc, "https://c:4317").unwrap_err();
        assert!(error.to_string().contains("HTTPS"), "{error}");
        assert!(span_exporter(Protocol::Grpc, "http://c:4317").is_ok());
    }

    #[test]
    fn exporter_headers_are_read_as_the_exporter_crate_reads_them() {
        let headers: Vec<(String, String)> = parse_headers(
            " api-key = se%20cret ,x-tenant=a=b,, empty=,=novalue,bad name=1,x-raw=100%,x-last=z",
        )
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_string()))
        .collect();
        let expected = [
            ("api-key", "se cret"),
            ("x-tenant", "a=b"),
            // A malformed escape leaves the value as it was written.
            ("x-raw", "100%"),
            ("x-last", "z"),
        ];
        assert_eq!(
            headers,
            expected.map(|(n, v)| (n.to_string(), v.to_string()))
        );
    }

    #[test]
    fn a_failing_collector_is_reported_at_once_then_once_a_minute_and_its_recovery_once() {
        let mut health = ExportHealth::default();
        let start = Instant::now();
        assert_eq!(health.record(start, true), None);
        assert_eq!(
            health.record(start, false),
            Some(HealthReport::Failing { failures: 1 })
        );
        let soon = start + Duration::from_secs(5);
        assert_eq!(health.record(soon, false), None);
        assert_eq!(health.record(soon, false), None);
        let later = start + EXPORT_FAILURE_REPORT_INTERVAL;
        assert_eq!(
            health.record(later, false),
            Some(HealthReport::Failing { failures: 3 })
        );
        assert_eq!(health.record(later, false), None);
        assert_eq!(health.record(later, true), Some(HealthReport::Recovered));
        assert_eq!(health.record(later, true), None);
        assert_eq!(
            health.record(later, false),
            Some(HealthReport::Failing { failures: 1 })
        );
    }
}
