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

use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, LogExporter};
use opentelemetry_sdk::metrics::Temporality;
use opentelemetry_sdk::metrics::data::ResourceMetrics;
use opentelemetry_sdk::metrics::exporter::PushMetricExporter;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

pub const OTEL_EXPORTER_OTLP_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL";
pub const OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: &str = "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL";

/// Longest wait for the collector per export request over HTTP (the exporter's
/// `OTEL_EXPORTER_OTLP_TIMEOUT` default), enforced by the HTTP client as well.
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

/// Builds one signal's exporter for `endpoint` over `protocol`: the three exporters'
/// builders are distinct types with no trait in common, so the one recipe is a macro.
macro_rules! exporter {
    ($exporter:ty, $signal:literal, $protocol:expr, $endpoint:expr) => {{
        let failed = |e| wasmtime::format_err!("OpenTelemetry {} exporter: {e}", $signal);
        let exporter = match $protocol {
            Protocol::HttpProtobuf => <$exporter>::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_http_client(ReqwestOnTokio::new($signal)?)
                .with_endpoint($endpoint.to_string())
                .build()
                .map_err(failed)?,
            Protocol::Grpc => <$exporter>::builder()
                .with_tonic()
                .with_endpoint($endpoint.to_string())
                .build()
                .map_err(failed)?,
        };
        OnRuntime::new(exporter, $protocol, $signal)
    }};
}

/// The span exporter for `endpoint` over `protocol`. Must be called inside the tokio
/// runtime the exports are to run on.
pub(crate) fn span_exporter(
    protocol: Protocol,
    endpoint: &str,
) -> wasmtime::Result<OnRuntime<opentelemetry_otlp::SpanExporter>> {
    exporter!(
        opentelemetry_otlp::SpanExporter,
        "trace",
        protocol,
        endpoint
    )
}

/// The metric exporter for `endpoint` over `protocol`; see [`span_exporter`].
pub(crate) fn metric_exporter(
    protocol: Protocol,
    endpoint: &str,
) -> wasmtime::Result<OnRuntime<opentelemetry_otlp::MetricExporter>> {
    exporter!(
        opentelemetry_otlp::MetricExporter,
        "metric",
        protocol,
        endpoint
    )
}

/// The log exporter for `endpoint` over `protocol`; see [`span_exporter`].
pub(crate) fn log_exporter(
    protocol: Protocol,
    endpoint: &str,
) -> wasmtime::Result<OnRuntime<opentelemetry_otlp::LogExporter>> {
    exporter!(opentelemetry_otlp::LogExporter, "log", protocol, endpoint)
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

#[async_trait::async_trait]
impl HttpClient for ReqwestOnTokio {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let request = reqwest::Request::try_from(request)?;
        let client = self.client.clone();
        let answer = self
            .runtime
            .spawn(async move {
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

    #[tokio::test]
    async fn an_https_grpc_endpoint_is_refused_at_start_up() {
        // No TLS is compiled in for gRPC (as in Spin): refused rather than sent in clear.
        let error = span_exporter(Protocol::Grpc, "https://c:4317").unwrap_err();
        assert!(error.to_string().contains("HTTPS"), "{error}");
        assert!(span_exporter(Protocol::Grpc, "http://c:4317").is_ok());
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
