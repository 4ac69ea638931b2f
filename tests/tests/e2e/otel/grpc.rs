//! OTLP over gRPC (`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`, host/src/otel_transport.rs): a
//! real gRPC collector on loopback, tonic's server with the OTLP collector services
//! generated from the protocol's own definitions (`opentelemetry-proto`'s `gen-tonic`),
//! receives what the gateway exports.

use super::{
    CALLER_SPAN, TRACE_ID, Traced, hex, int, manifest, nowhere, responses_unchanged_with, string,
};
use chatgate::otel::{Protocol, TraceSettings};
use chatgate_tests::http_client::get;
use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric;
use opentelemetry_proto::tonic::trace::v1::span;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tonic::codegen::{BoxFuture, Service};
use tonic::server::NamedService;

/// What the collector received, as the gRPC calls carried it.
#[derive(Default)]
struct Received {
    traces: Vec<ExportTraceServiceRequest>,
    metrics: Vec<ExportMetricsServiceRequest>,
    logs: Vec<ExportLogsServiceRequest>,
}

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Received>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().traces.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl MetricsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportMetricsServiceRequest>,
    ) -> Result<tonic::Response<ExportMetricsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().metrics.push(request.into_inner());
        Ok(tonic::Response::new(ExportMetricsServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl LogsService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().logs.push(request.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

/// The three collector services on one port, each call routed by its gRPC service name
/// (tonic's own router would bring axum into the build for this one use).
#[derive(Clone)]
struct Services {
    traces: TraceServiceServer<Collector>,
    metrics: MetricsServiceServer<Collector>,
    logs: LogsServiceServer<Collector>,
}

impl Service<http::Request<tonic::body::Body>> for Services {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let path = request.uri().path();
        let service = |name: &str| {
            path.strip_prefix('/')
                .and_then(|p| p.strip_prefix(name))
                .is_some_and(|p| p.starts_with('/'))
        };
        if service(TraceServiceServer::<Collector>::NAME) {
            self.traces.call(request)
        } else if service(MetricsServiceServer::<Collector>::NAME) {
            self.metrics.call(request)
        } else if service(LogsServiceServer::<Collector>::NAME) {
            self.logs.call(request)
        } else {
            Box::pin(async { Ok(tonic::Status::unimplemented("no such service").into_http()) })
        }
    }
}

/// A gRPC OTLP collector on 127.0.0.1, serving until the test ends.
async fn collector() -> (std::net::SocketAddr, Arc<Mutex<Received>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let collector = Collector::default();
    let received = collector.0.clone();
    let services = Services {
        traces: TraceServiceServer::new(collector.clone()),
        metrics: MetricsServiceServer::new(collector.clone()),
        logs: LogsServiceServer::new(collector),
    };
    tokio::spawn(tonic::transport::Server::builder().serve_with_incoming(
        services,
        tonic::transport::server::TcpIncoming::from(listener),
    ));
    (address, received)
}

/// The settings an operator's environment gives: the collector's gRPC address as the one
/// endpoint, `OTEL_EXPORTER_OTLP_PROTOCOL=grpc`.
fn grpc_settings(endpoint: &str) -> TraceSettings {
    let vars = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.to_string()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".to_string()),
        ("OTEL_SERVICE_NAME", "chatgate-grpc-test".to_string()),
    ];
    let mut settings = TraceSettings::from_env(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .unwrap()
    .expect("export on");
    // Exported by the test's flush, not by the clock.
    settings.scheduled_delay = Some(Duration::from_millis(100));
    settings.metrics_interval = Some(Duration::from_secs(3600));
    settings
}

#[tokio::test(flavor = "multi_thread")]
async fn spans_metrics_and_logs_reach_a_grpc_collector() {
    let (address, received) = collector().await;
    let endpoint = format!("http://{address}");
    let settings = grpc_settings(&endpoint);
    // gRPC takes the endpoint as it is: the method, not a path, names the signal.
    assert_eq!(settings.traces_endpoint.as_deref(), Some(endpoint.as_str()));
    assert_eq!(
        settings.metrics_endpoint.as_deref(),
        Some(endpoint.as_str())
    );
    assert_eq!(settings.logs_endpoint.as_deref(), Some(endpoint.as_str()));
    for protocol in [
        settings.traces_protocol,
        settings.metrics_protocol,
        settings.logs_protocol,
    ] {
        assert_eq!(protocol, Protocol::Grpc);
    }
    let gateway = Traced::start(&manifest(), Some(settings)).await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = get(
        &gateway.url("/echo/over-grpc"),
        &[("traceparent", traceparent.as_str())],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gateway
        .flush()
        .await
        .expect("flush to a live gRPC collector");

    let received = std::mem::take(&mut *received.lock().unwrap());
    let spans: Vec<_> = received
        .traces
        .iter()
        .flat_map(|r| &r.resource_spans)
        .inspect(|r| {
            let resource = &r.resource.as_ref().unwrap().attributes;
            assert_eq!(string(resource, "service.name"), "chatgate-grpc-test");
        })
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect();
    let server: Vec<_> = spans
        .iter()
        .filter(|s| s.kind == span::SpanKind::Server as i32)
        .collect();
    assert_eq!(server.len(), 1, "one SERVER span: {spans:#?}");
    let server = server[0];
    assert_eq!(hex(&server.trace_id), TRACE_ID);
    assert_eq!(hex(&server.parent_span_id), CALLER_SPAN);
    assert_eq!(string(&server.attributes, "url.path"), "/echo/over-grpc");
    assert_eq!(int(&server.attributes, "http.response.status_code"), 200);
    // The guest's span (`wasi:otel/tracing`) goes the same way, under the server span.
    assert!(
        spans
            .iter()
            .any(|s| s.name == "telemetry" && s.parent_span_id == server.span_id),
        "{spans:#?}"
    );

    let metrics: Vec<_> = received
        .metrics
        .iter()
        .flat_map(|r| &r.resource_metrics)
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .collect();
    let duration = metrics
        .iter()
        .find(|m| m.name == "http.server.request.duration")
        .unwrap_or_else(|| panic!("{metrics:#?}"));
    assert_eq!(duration.unit, "s");
    match &duration.data {
        Some(metric::Data::Histogram(h)) => {
            assert_eq!(h.data_points.iter().map(|p| p.count).sum::<u64>(), 1);
        }
        other => panic!("not a histogram: {other:?}"),
    }

    let all: Vec<_> = received
        .logs
        .iter()
        .flat_map(|r| &r.resource_logs)
        .flat_map(|r| &r.scope_logs)
        .flat_map(|s| s.log_records.clone())
        .collect();
    let logs = super::request_records(&all);
    assert_eq!(logs.len(), 1, "telemetry's record: {all:#?}");
    assert_eq!(hex(&logs[0].trace_id), TRACE_ID);
    assert_eq!(super::output_records(&all).len(), 1, "its line: {all:#?}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_collector_that_is_down_changes_no_response() {
    let down = nowhere();
    responses_unchanged_with(grpc_settings(&format!("http://{down}"))).await;
}

/// `chatgate up` exporting spans over gRPC to an address nothing listens on
/// ([`super::an_unreachable_collector_is_warned_about_once_on_stderr`]).
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_grpc_collector_is_warned_about_once_on_stderr() {
    super::an_unreachable_collector_is_warned_about_once_on_stderr("grpc").await;
}
