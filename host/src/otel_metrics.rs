//! OpenTelemetry metrics over OTLP/HTTP, exported next to the traces of
//! [`crate::otel`] when trace export is on: at `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` as
//! given, else `OTEL_EXPORTER_OTLP_ENDPOINT` followed by `/v1/metrics` (the exporter
//! crate's rule, as for traces); every `OTEL_METRIC_EXPORT_INTERVAL` milliseconds (60 s
//! by default, the specification's). Metrics alone, without trace export, are not
//! offered.
//!
//! What is measured:
//! - `http.server.request.duration` (s): every request the host serves, from its
//!   arrival to its response head, by method (a method outside HTTP's own as `_OTHER`),
//!   route and status (OpenTelemetry's HTTP
//!   semantic conventions, with their recommended bucket boundaries);
//! - from the spans the stages report ([`crate::otel::SpanSink`]), so for sampled
//!   requests only: `gen_ai.client.token.usage` ({token}, by `gen_ai.token.type`,
//!   operation, request and response model) and `gen_ai.client.operation.duration` (s)
//!   of `chat`'s completion calls and, for streamed answers,
//!   `gen_ai.server.time_to_first_token` (s, from the span's first-token event; measured
//!   where `chat` receives the token, so the provider's and the completion component's
//!   time) (the GenAI semantic conventions), WAF refusals by
//!   refusal code (`chatgate.waf.refusals`) and authentication failures by failure code
//!   (`chatgate.auth.failures`).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram, MeterProvider as _};
use opentelemetry::trace::Status;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SpanData;
use std::sync::Arc;
use std::time::Duration;

// The bucket boundaries below are the semantic conventions' advisory ones, written from
// their documentation as remembered; not checked against a pinned copy of the text.

/// The bucket boundaries the HTTP semantic conventions recommend for
/// `http.server.request.duration`, in seconds.
const REQUEST_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// The bucket boundaries the GenAI semantic conventions recommend for
/// `gen_ai.client.token.usage`.
const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];

/// The bucket boundaries the GenAI semantic conventions recommend for
/// `gen_ai.client.operation.duration`, in seconds.
const OPERATION_DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];

/// The bucket boundaries the GenAI semantic conventions recommend for
/// `gen_ai.server.time_to_first_token`, in seconds.
const TIME_TO_FIRST_TOKEN_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
];

/// The event `chat`'s completion span records at a stream's first token
/// (`chatgate_guest_otel::FIRST_TOKEN`).
const FIRST_TOKEN: &str = "gen_ai.first_token";

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
    token_usage: Histogram<u64>,
    operation_duration: Histogram<f64>,
    time_to_first_token: Histogram<f64>,
    waf_refusals: Counter<u64>,
    auth_failures: Counter<u64>,
}

impl Metrics {
    /// Starts the exporter, posting to `endpoint` through `client` every `interval`
    /// (`None`: `OTEL_METRIC_EXPORT_INTERVAL`, else 60 s), with `resource`.
    pub(crate) fn start<C>(
        endpoint: &str,
        interval: Option<Duration>,
        resource: Resource,
        client: C,
    ) -> wasmtime::Result<Metrics>
    where
        C: opentelemetry_http::HttpClient + 'static,
    {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_http_client(client)
            .with_endpoint(endpoint.to_string())
            .build()
            .map_err(|e| wasmtime::format_err!("OpenTelemetry metric exporter: {e}"))?;
        let mut reader = PeriodicReader::builder(exporter);
        if let Some(interval) = interval {
            reader = reader.with_interval(interval);
        }
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader.build())
            .build();
        let meter = provider.meter("chatgate");
        Ok(Metrics {
            request_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(REQUEST_DURATION_BUCKETS.to_vec())
                .build(),
            token_usage: meter
                .u64_histogram("gen_ai.client.token.usage")
                .with_unit("{token}")
                .with_description("Number of input and output tokens used.")
                .with_boundaries(TOKEN_BUCKETS.to_vec())
                .build(),
            operation_duration: meter
                .f64_histogram("gen_ai.client.operation.duration")
                .with_unit("s")
                .with_description("GenAI operation duration.")
                .with_boundaries(OPERATION_DURATION_BUCKETS.to_vec())
                .build(),
            time_to_first_token: meter
                .f64_histogram("gen_ai.server.time_to_first_token")
                .with_unit("s")
                .with_description("Time to the first token of a streamed answer, as chat sees it.")
                .with_boundaries(TIME_TO_FIRST_TOKEN_BUCKETS.to_vec())
                .build(),
            waf_refusals: meter
                .u64_counter("chatgate.waf.refusals")
                .with_unit("{request}")
                .with_description("Requests the WAF refused, by refusal code.")
                .build(),
            auth_failures: meter
                .u64_counter("chatgate.auth.failures")
                .with_unit("{request}")
                .with_description("Requests refused for their credentials, by failure code.")
                .build(),
            provider,
        })
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

    /// Records what a stage's span says: a completion call's tokens and duration, a
    /// WAF refusal, an authentication failure. Other spans record nothing.
    pub fn record_stage_span(&self, span: &SpanData) {
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| &kv.value)
        };
        let text = |key: &str| attribute(key).map(|v| v.as_str().into_owned());
        if text("gen_ai.operation.name").is_some() {
            let mut common: Vec<KeyValue> = [
                "gen_ai.operation.name",
                "gen_ai.request.model",
                "gen_ai.response.model",
            ]
            .into_iter()
            .filter_map(|key| Some(KeyValue::new(key, text(key)?)))
            .collect();
            if let Status::Error { description } = &span.status {
                common.push(KeyValue::new("error.type", description.to_string()));
            }
            let elapsed = span
                .end_time
                .duration_since(span.start_time)
                .unwrap_or_default();
            self.operation_duration
                .record(elapsed.as_secs_f64(), &common);
            if let Some(first) = span
                .events
                .events
                .iter()
                .find(|event| event.name == FIRST_TOKEN)
            {
                let waited = first
                    .timestamp
                    .duration_since(span.start_time)
                    .unwrap_or_default();
                self.time_to_first_token
                    .record(waited.as_secs_f64(), &common);
            }
            for (key, kind) in [
                ("gen_ai.usage.input_tokens", "input"),
                ("gen_ai.usage.output_tokens", "output"),
            ] {
                if let Some(opentelemetry::Value::I64(tokens)) = attribute(key)
                    && let Ok(tokens) = u64::try_from(*tokens)
                {
                    let mut attributes = common.clone();
                    attributes.push(KeyValue::new("gen_ai.token.type", kind));
                    self.token_usage.record(tokens, &attributes);
                }
            }
        }
        // A refusal counts once, by the code its stage gave.
        for (outcome, code, counter) in [
            (
                "chatgate.waf.outcome",
                "chatgate.waf.rejection",
                &self.waf_refusals,
            ),
            (
                "chatgate.auth.outcome",
                "chatgate.auth.failure",
                &self.auth_failures,
            ),
        ] {
            if text(outcome).as_deref() == Some("refused") {
                counter.add(1, &[KeyValue::new(code, text(code).unwrap_or_default())]);
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_up_methods_share_one_series() {
        assert_eq!(method_attribute("POST"), "POST");
        assert_eq!(method_attribute("PATCH"), "PATCH");
        assert_eq!(method_attribute("FOO1"), "_OTHER");
        assert_eq!(method_attribute("get"), "_OTHER");
    }
}
