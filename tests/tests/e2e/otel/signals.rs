//! Each signal on its own (host/src/otel.rs, after Spin's `crates/telemetry/src/env.rs`):
//! traces, metrics and logs are each on when their own endpoint variable or the general
//! one is set. The settings come from [`TraceSettings::from_env`] given only one
//! signal's variable, as an operator's environment would give them, and the gateway
//! exports to the OTLP/HTTP receiver of `otel.rs`.

use super::{
    CALLER_SPAN, Received, TRACE_ID, Traced, hex, histogram, logs_received, manifest,
    metrics_received, output_records, receiver, request_records, spans_of, string,
};
use chatgate::otel::{
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_METRIC_EXPORT_INTERVAL, OTEL_SERVICE_NAME,
    TraceSettings,
};
use chatgate_tests::http_client::get;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::time::Duration;

/// The settings from `vars` alone (a signal is on in them).
fn from_env(vars: &[(&str, String)]) -> TraceSettings {
    let mut settings = TraceSettings::from_env(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
    .expect("a signal on");
    settings.scheduled_delay = Some(Duration::from_millis(100));
    settings
}

/// The gateway exporting with only `variable` set to the receiver's `path`: three
/// requests (one in a caller's sampled trace, one in no trace, one a 5xx), then a
/// flush. Returns the settings, the receiver's store and the responses' `traceparent`s
/// (the caller's trace's, then the untraced request's).
async fn only(variable: &str, path: &str) -> (TraceSettings, Received, [String; 2]) {
    let (collector, received) = receiver().await;
    let settings = from_env(&[
        (variable, format!("http://{collector}{path}")),
        (OTEL_SERVICE_NAME, "chatgate-one-signal".into()),
        // Exported by the test's flush, not by the clock.
        (OTEL_METRIC_EXPORT_INTERVAL, "3600000".into()),
    ]);
    let gateway = Traced::start(&manifest(), Some(settings.clone())).await;
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let traced = get(
        &gateway.url("/echo/in-a-trace"),
        &[("traceparent", caller.as_str())],
    )
    .await;
    assert_eq!(traced.status, 200, "{}", traced.text());
    let untraced = get(&gateway.url("/echo/in-none"), &[]).await;
    assert_eq!(untraced.status, 200, "{}", untraced.text());
    let failing = get(&gateway.url("/counter"), &[]).await;
    assert!(failing.status >= 500, "{}", failing.status);
    gateway.flush().await.expect("flush to a live collector");
    let traceparent = |reply: &chatgate_tests::http_client::Reply| {
        reply.headers["traceparent"].to_str().unwrap().to_string()
    };
    let traceparents = [traceparent(&traced), traceparent(&untraced)];
    gateway.stop().await;
    (settings, received, traceparents)
}

/// The paths the receiver was sent to, each once.
fn paths(received: &Received) -> Vec<String> {
    let mut paths: Vec<String> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(path, _, _)| path.clone())
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

/// Without trace export the host starts no span and leaves the caller's `traceparent`
/// as it came: a caller's trace goes on (as `telemetry` continues it), and a request in
/// none gets a trace that is not sampled, so that no stage records a span.
fn untraced_by_the_host(traceparents: &[String; 2]) {
    let [in_caller, in_none] = traceparents;
    assert!(
        in_caller.starts_with(&format!("00-{TRACE_ID}-")) && in_caller.ends_with("-01"),
        "{in_caller}"
    );
    assert!(in_none.ends_with("-00"), "{in_none}");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_alone_export_every_request_and_no_span_or_log() {
    let (settings, received, traceparents) =
        only(OTEL_EXPORTER_OTLP_METRICS_ENDPOINT, "/v1/metrics").await;
    assert_eq!(
        (&settings.traces_endpoint, &settings.logs_endpoint),
        (&None, &None)
    );
    assert_eq!(paths(&received), ["/v1/metrics"]);
    let metrics = metrics_received(&received);
    let (unit, points) = histogram(&metrics, "http.server.request.duration");
    assert_eq!(unit, "s");
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), 3);
    let mut statuses: Vec<i64> = points
        .iter()
        .map(|p| super::int(&p.attributes, "http.response.status_code"))
        .collect();
    statuses.sort();
    assert_eq!(statuses[0], 200);
    assert!(statuses[statuses.len() - 1] >= 500, "{statuses:?}");
    untraced_by_the_host(&traceparents);
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_alone_export_the_stages_records_and_no_span_or_metric() {
    let (settings, received, traceparents) =
        only(OTEL_EXPORTER_OTLP_LOGS_ENDPOINT, "/v1/logs").await;
    assert_eq!(
        (&settings.traces_endpoint, &settings.metrics_endpoint),
        (&None, &None)
    );
    assert_eq!(paths(&received), ["/v1/logs"]);
    // `telemetry` logs the requests it records: the one in the caller's sampled trace
    // (the host, not tracing, starts no sampled trace for the others).
    let all = logs_received(&received);
    let logs = request_records(&all);
    assert_eq!(logs.len(), 1, "{all:#?}");
    assert_eq!(hex(&logs[0].trace_id), TRACE_ID);
    assert_eq!(string(&logs[0].attributes, "url.path"), "/echo/in-a-trace");
    // Every request's line on stdout is a record too, as Spin exports components'
    // output: the requests outside a sampled trace reach the collector that way, their
    // trace id in the line.
    let lines = output_records(&all);
    let mut routes: Vec<String> = lines
        .iter()
        .map(|(component, body)| {
            assert_eq!(component, "hello", "the trigger's component");
            let line: serde_json::Value =
                serde_json::from_str(body.trim_end()).unwrap_or_else(|e| panic!("{e}: {body:?}"));
            assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
            line["route"].as_str().unwrap().to_string()
        })
        .collect();
    routes.sort();
    assert_eq!(routes, ["/counter", "/echo/in-a-trace", "/echo/in-none"]);
    untraced_by_the_host(&traceparents);
}

#[tokio::test(flavor = "multi_thread")]
async fn traces_alone_export_spans_and_no_metric_or_log() {
    let (settings, received, traceparents) =
        only(OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, "/v1/traces").await;
    assert_eq!(
        (&settings.metrics_endpoint, &settings.logs_endpoint),
        (&None, &None)
    );
    assert_eq!(paths(&received), ["/v1/traces"]);
    let requests: Vec<ExportTraceServiceRequest> = received
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, body)| ExportTraceServiceRequest::decode(body.clone()).unwrap())
        .collect();
    let spans = spans_of(&requests);
    let servers = spans
        .iter()
        .filter(|s| s.kind == opentelemetry_proto::tonic::trace::v1::span::SpanKind::Server as i32)
        .count();
    assert_eq!(servers, 3, "{spans:#?}");
    // The host's span replaces the caller's parent, and it samples a new trace.
    let [in_caller, in_none] = traceparents;
    assert!(
        in_caller.starts_with(&format!("00-{TRACE_ID}-")),
        "{in_caller}"
    );
    assert!(in_none.ends_with("-01"), "{in_none}");
}
