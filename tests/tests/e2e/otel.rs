//! OpenTelemetry trace export (host/src/otel.rs): a real OTLP/HTTP receiver on loopback
//! decodes what the gateway exports with the protocol's own protobuf messages
//! (`opentelemetry-proto`), and the tests check the one SERVER span each request gets
//! and the spans the stages report under it (`wasi:otel/tracing`).
//! The settings go through the host's API, not the process environment, so that tests
//! running at once do not race on it.

use chatgate::app::{App, AppOptions};
use chatgate::manifest::Manifest;
use chatgate::otel::{Protocol, TraceSettings, Tracing};
use chatgate_tests::http_client::{Reply, get, post_json};
use chatgate_tests::{repo_root, single_route_manifest};
use http_body_util::BodyExt;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, Metric, metric};
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};
use prost::Message;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod grpc;
mod signals;

/// One POST the receiver got: path, content type, body.
type Received = Arc<Mutex<Vec<(String, String, bytes::Bytes)>>>;

/// An OTLP/HTTP receiver: accepts every POST and answers an empty
/// `ExportTraceServiceResponse`.
async fn receiver() -> (std::net::SocketAddr, Received) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let received: Received = Arc::default();
    let store = received.clone();
    chatgate_tests::double::serve_buffered(listener, move |parts, body| {
        let store = store.clone();
        async move {
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            store
                .lock()
                .unwrap()
                .push((parts.uri.path().to_string(), content_type, body));
            let mut response = hyper::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-protobuf"),
            );
            response
        }
    });
    (address, received)
}

/// A gateway served with (or, with `None`, without) trace export.
struct Traced {
    base: String,
    port: u16,
    app: Arc<App>,
    tracing: Option<Arc<Tracing>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<()>,
}

impl Traced {
    async fn start(manifest: &str, settings: Option<TraceSettings>) -> Traced {
        Traced::start_with(manifest, settings, &[]).await
    }

    /// Like [`Traced::start`], with the manifest's `variables` set (bare names).
    async fn start_with(
        manifest: &str,
        settings: Option<TraceSettings>,
        variables: &[(&str, &str)],
    ) -> Traced {
        Traced::start_configured(manifest, settings, variables, |_| {}).await
    }

    /// Like [`Traced::start_with`], with the application's options changed by `configure`.
    async fn start_configured(
        manifest: &str,
        settings: Option<TraceSettings>,
        variables: &[(&str, &str)],
        configure: impl FnOnce(&mut AppOptions),
    ) -> Traced {
        let manifest = Manifest::parse(manifest, repo_root()).unwrap();
        let tracing = settings.map(|s| Arc::new(Tracing::start(&s).unwrap()));
        let mut options = AppOptions {
            span_sink: tracing.as_ref().map(|t| t.span_sink()),
            compile_cache: Some(chatgate_tests::target_dir().join("chatgate-test-cache")),
            limits: chatgate::admission::Limits {
                max_in_flight: 200,
                overload_lag: Duration::ZERO,
                ..Default::default()
            },
            capture_guest_stdout: true,
            env_overrides: chatgate_tests::spin_variables(variables),
            ..AppOptions::default()
        };
        configure(&mut options);
        let app = Arc::new(App::load(&manifest, &options).unwrap());
        let listener = chatgate::server::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served = tokio::spawn(chatgate::server::serve_traced(
            app.clone(),
            listener,
            async {
                let _ = stop.await;
            },
            tracing.clone(),
        ));
        let served = tokio::spawn(async move { served.await.unwrap().unwrap() });
        Traced {
            base: format!("http://127.0.0.1:{port}"),
            port,
            app,
            tracing,
            shutdown: Some(shutdown),
            served,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Exports what is queued now (the SDK call blocks: run off the async threads).
    async fn flush(&self) -> Result<(), String> {
        let tracing = self.tracing.clone().expect("traced");
        tokio::time::timeout(
            Duration::from_secs(30),
            tokio::task::spawn_blocking(move || tracing.force_flush()),
        )
        .await
        .expect("flush within 30 s")
        .unwrap()
    }

    fn guest_log(&self) -> Vec<serde_json::Value> {
        chatgate_tests::guest_log(&self.app)
    }

    async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.served.await.unwrap();
        if let Some(tracing) = self.tracing.take() {
            let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
        }
    }
}

fn settings(endpoint: String) -> TraceSettings {
    TraceSettings {
        metrics_endpoint: Some(endpoint.replace("/v1/traces", "/v1/metrics")),
        logs_endpoint: Some(endpoint.replace("/v1/traces", "/v1/logs")),
        max_queue_size: None,
        max_log_queue_size: None,
        // Exported by the test's flush, not by the clock.
        metrics_interval: Some(Duration::from_secs(3600)),
        traces_endpoint: Some(endpoint),
        traces_protocol: Protocol::HttpProtobuf,
        metrics_protocol: Protocol::HttpProtobuf,
        logs_protocol: Protocol::HttpProtobuf,
        service_name: "chatgate-otel-test".into(),
        resource_attributes: vec![("deployment.environment".into(), "e2e".into())],
        scheduled_delay: Some(Duration::from_millis(100)),
        sampler_ratio: None,
    }
}

/// `hello` (which echoes the request) behind `telemetry` (which logs the trace it sees).
fn manifest() -> String {
    single_route_manifest("hello", &["telemetry"], "")
}

fn attribute<'a>(attributes: &'a [KeyValue], key: &str) -> Option<&'a any_value::Value> {
    attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v: &AnyValue| v.value.as_ref())
}

fn string(attributes: &[KeyValue], key: &str) -> String {
    match attribute(attributes, key) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        other => panic!("`{key}` is not a string attribute: {other:?}"),
    }
}

fn int(attributes: &[KeyValue], key: &str) -> i64 {
    match attribute(attributes, key) {
        Some(any_value::Value::IntValue(i)) => *i,
        other => panic!("`{key}` is not an int attribute: {other:?}"),
    }
}

/// The decoded export requests, once they hold at least `spans` spans (10 s at most).
async fn exported(received: &Received, spans: usize) -> Vec<ExportTraceServiceRequest> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let requests: Vec<ExportTraceServiceRequest> = received
            .lock()
            .unwrap()
            .iter()
            .filter(|(path, _, _)| path == "/v1/traces")
            .map(|(_, content_type, body)| {
                assert_eq!(content_type, "application/x-protobuf");
                ExportTraceServiceRequest::decode(body.clone()).expect("an OTLP trace export")
            })
            .collect();
        let count: usize = requests
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        if count >= spans || tokio::time::Instant::now() > deadline {
            return requests;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The metrics received so far, by name (the last export's data of each).
fn metrics_received(received: &Received) -> Vec<Metric> {
    let mut metrics: Vec<Metric> = Vec::new();
    for (_, content_type, body) in received
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _, _)| path == "/v1/metrics")
    {
        assert_eq!(content_type, "application/x-protobuf");
        let request =
            ExportMetricsServiceRequest::decode(body.clone()).expect("an OTLP metrics export");
        for metric in request
            .resource_metrics
            .into_iter()
            .flat_map(|r| r.scope_metrics)
            .flat_map(|s| s.metrics)
        {
            metrics.retain(|m| m.name != metric.name);
            metrics.push(metric);
        }
    }
    metrics
}

/// The log records received so far.
fn logs_received(received: &Received) -> Vec<LogRecord> {
    scoped_logs_received(received)
        .into_iter()
        .map(|(_, record)| record)
        .collect()
}

/// The log records received so far, each with its instrumentation scope's name.
fn scoped_logs_received(received: &Received) -> Vec<(String, LogRecord)> {
    received
        .lock()
        .unwrap()
        .iter()
        .filter(|(path, _, _)| path == "/v1/logs")
        .flat_map(|(_, content_type, body)| {
            assert_eq!(content_type, "application/x-protobuf");
            ExportLogsServiceRequest::decode(body.clone())
                .expect("an OTLP logs export")
                .resource_logs
        })
        .flat_map(|r| r.scope_logs)
        .flat_map(|s| {
            let scope = s.scope.map(|scope| scope.name).unwrap_or_default();
            s.log_records.into_iter().map(move |r| (scope.clone(), r))
        })
        .collect()
}

/// `telemetry`'s own records (`wasi:otel/logs`, body `request`), one per sampled request.
fn request_records(logs: &[LogRecord]) -> Vec<LogRecord> {
    logs.iter()
        .filter(|record| {
            record.body.as_ref().and_then(|b| b.value.as_ref())
                == Some(&any_value::Value::StringValue("request".into()))
        })
        .cloned()
        .collect()
}

/// The records of components' writes to stdout and stderr (attribute `component_id`),
/// each as JSON when it is `telemetry`'s request line.
fn output_records(logs: &[LogRecord]) -> Vec<(String, String)> {
    logs.iter()
        .filter(|record| attribute(&record.attributes, "component_id").is_some())
        .map(|record| {
            let body = match record.body.as_ref().and_then(|b| b.value.as_ref()) {
                Some(any_value::Value::StringValue(text)) => text.clone(),
                other => panic!("an output record's body is its text: {other:?}"),
            };
            (string(&record.attributes, "component_id"), body)
        })
        .collect()
}

/// The data points of the histogram `name`.
fn histogram(metrics: &[Metric], name: &str) -> (String, Vec<HistogramDataPoint>) {
    let metric = metrics.iter().find(|m| m.name == name).unwrap_or_else(|| {
        panic!(
            "no `{name}` among {:?}",
            metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
        )
    });
    match &metric.data {
        Some(metric::Data::Histogram(h)) => (metric.unit.clone(), h.data_points.clone()),
        other => panic!("`{name}` is not a histogram: {other:?}"),
    }
}

fn spans_of(requests: &[ExportTraceServiceRequest]) -> Vec<Span> {
    requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| s.spans.clone())
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";
const SECRET_BEARER: &str = "sk-otel-test-secret-bearer-7f3a";
const SECRET_API_KEY: &str = "otel-test-secret-api-key-91c2";
const SECRET_COOKIE: &str = "otel-test-secret-cookie-5d0e";

#[tokio::test(flavor = "multi_thread")]
async fn one_server_span_per_request_with_the_callers_trace() {
    let (collector, received) = receiver().await;
    let gateway = Traced::start(
        &manifest(),
        Some(settings(format!("http://{collector}/v1/traces"))),
    )
    .await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let authorization = format!("Bearer {SECRET_BEARER}");
    let cookie = format!("session={SECRET_COOKIE}");
    let with_parent = get(
        &gateway.url("/echo/with-parent?q=1"),
        &[
            ("traceparent", traceparent.as_str()),
            ("authorization", authorization.as_str()),
            ("api-key", SECRET_API_KEY),
            ("cookie", cookie.as_str()),
            ("user-agent", "otel-e2e/1.0"),
        ],
    )
    .await;
    assert_eq!(with_parent.status, 200, "{}", with_parent.text());
    let without_parent = get(&gateway.url("/echo/without-parent"), &[]).await;
    // `hello`'s counter has no key-value store here: a component's 5xx.
    let failing = get(&gateway.url("/counter"), &[]).await;
    assert!(
        failing.status >= 500,
        "{}: {}",
        failing.status,
        failing.text()
    );
    gateway.flush().await.expect("flush to a live collector");

    let requests = exported(&received, 6).await;
    let bytes: Vec<u8> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, _, body)| body.to_vec())
        .collect();
    for secret in [SECRET_BEARER, SECRET_API_KEY, SECRET_COOKIE] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "`{secret}` was exported"
        );
    }
    for request in &requests {
        for resource_spans in &request.resource_spans {
            let resource = &resource_spans.resource.as_ref().unwrap().attributes;
            assert_eq!(string(resource, "service.name"), "chatgate-otel-test");
            assert_eq!(string(resource, "deployment.environment"), "e2e");
            assert_eq!(string(resource, "telemetry.sdk.language"), "rust");
        }
    }
    let all = spans_of(&requests);
    // `telemetry` reports its own span (`wasi:otel`), a child of each SERVER span.
    let spans: Vec<Span> = all
        .iter()
        .filter(|s| s.kind == span::SpanKind::Server as i32)
        .cloned()
        .collect();
    assert_eq!(spans.len(), 3, "one SERVER span per request: {all:#?}");
    // And one log record per request (`wasi:otel/logs`), in telemetry's span; besides
    // the records of its request lines on stdout (`logs_alone_export_...`).
    let all_logs = logs_received(&received);
    let logs = request_records(&all_logs);
    assert_eq!(logs.len(), 3, "{all_logs:#?}");
    assert_eq!(output_records(&all_logs).len(), 3, "{all_logs:#?}");
    for server in &spans {
        let children: Vec<&Span> = all
            .iter()
            .filter(|s| s.parent_span_id == server.span_id)
            .collect();
        assert_eq!(children.len(), 1, "telemetry's span under {server:#?}");
        assert_eq!(children[0].name, "telemetry");
        assert_eq!(children[0].trace_id, server.trace_id);
        let record = logs
            .iter()
            .find(|r| r.span_id == children[0].span_id)
            .unwrap_or_else(|| panic!("the log record of {server:#?}: {logs:#?}"));
        assert_eq!(record.trace_id, server.trace_id);
        assert_eq!(
            string(&record.attributes, "url.path"),
            string(&server.attributes, "url.path")
        );
        let status = int(&server.attributes, "http.response.status_code");
        assert_eq!(int(&record.attributes, "http.response.status_code"), status);
        let expected = if status >= 500 {
            (17, "ERROR")
        } else {
            (9, "INFO")
        };
        assert_eq!(
            (record.severity_number, record.severity_text.as_str()),
            expected
        );
        assert_eq!(
            record.body.as_ref().and_then(|b| b.value.clone()),
            Some(any_value::Value::StringValue("request".into()))
        );
    }
    let by_path = |path: &str| {
        let found: Vec<&Span> = spans
            .iter()
            .filter(|s| string(&s.attributes, "url.path") == path)
            .collect();
        assert_eq!(found.len(), 1, "one span for {path}: {spans:#?}");
        found[0].clone()
    };

    // The caller's trace: same trace id, the caller's span as parent.
    let span = by_path("/echo/with-parent");
    assert_eq!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(hex(&span.parent_span_id), CALLER_SPAN);
    assert_eq!(span.name, "GET /...");
    let attributes = &span.attributes;
    assert_eq!(string(attributes, "http.request.method"), "GET");
    assert_eq!(string(attributes, "http.route"), "/...");
    assert_eq!(
        int(attributes, "http.response.status_code"),
        i64::from(with_parent.status)
    );
    assert_eq!(string(attributes, "client.address"), "127.0.0.1");
    assert_eq!(string(attributes, "user_agent.original"), "otel-e2e/1.0");
    assert_eq!(string(attributes, "server.address"), "127.0.0.1");
    assert_eq!(int(attributes, "server.port"), i64::from(gateway.port));
    assert_eq!(string(attributes, "url.scheme"), "http");
    assert!(attribute(attributes, "url.query").is_none());
    assert_ne!(
        span.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32)
    );

    // Downstream continues the host's span: `telemetry` logs it as its parent, and the
    // request that reached `hello` carries the same trace.
    let echoed = with_parent.json();
    let inward = echoed["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|pair| pair[0] == "traceparent")
        .map(|pair| pair[1].as_str().unwrap().to_string())
        .expect("traceparent reached hello");
    assert!(inward.starts_with(&format!("00-{TRACE_ID}-")), "{inward}");
    let log = gateway.guest_log();
    let line = log
        .iter()
        .find(|line| line["route"] == "/echo/with-parent")
        .unwrap_or_else(|| panic!("telemetry's log line: {log:#?}"));
    assert_eq!(line["trace_id"], TRACE_ID, "{line}");
    assert_eq!(line["parent_span_id"], hex(&span.span_id), "{line}");

    // No caller trace: a new trace, no parent; the guest's trace is the host's.
    let span = by_path("/echo/without-parent");
    assert!(span.parent_span_id.is_empty(), "{span:#?}");
    assert_ne!(hex(&span.trace_id), TRACE_ID);
    assert_eq!(
        int(&span.attributes, "http.response.status_code"),
        i64::from(without_parent.status)
    );
    assert!(attribute(&span.attributes, "user_agent.original").is_none());
    let line = log
        .iter()
        .find(|line| line["route"] == "/echo/without-parent")
        .unwrap_or_else(|| panic!("telemetry's log line: {log:#?}"));
    assert_eq!(line["trace_id"], hex(&span.trace_id), "{line}");

    // A 5xx: status Error, and its code.
    let span = by_path("/counter");
    assert_eq!(
        int(&span.attributes, "http.response.status_code"),
        i64::from(failing.status)
    );
    assert_eq!(
        span.status.as_ref().map(|s| s.code),
        Some(status::StatusCode::Error as i32)
    );
    assert_eq!(
        string(&span.attributes, "error.type"),
        failing.status.to_string()
    );
    gateway.stop().await;
}

/// The shipped chain, exporting to a receiver of its own.
async fn traced_shipped_chain() -> (Traced, Received) {
    let (collector, received) = receiver().await;
    let manifest = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let settings = settings(format!("http://{collector}/v1/traces"));
    (Traced::start(&manifest, Some(settings)).await, received)
}

/// A chat completion through the gateway with the development key.
async fn ask(gateway: &Traced, extra_headers: &[(&str, &str)], body: serde_json::Value) -> Reply {
    let mut headers = vec![("authorization", "Bearer chatgate-dev-key")];
    headers.extend_from_slice(extra_headers);
    post_json(&gateway.url("/v1/chat/completions"), &headers, &body).await
}

/// The one span named `name`.
/// The name of the completion component's model span under `call`.
fn completion_name<'a>(spans: &'a [Span], call: &Span) -> &'a str {
    spans
        .iter()
        .find(|s| s.parent_span_id == call.span_id)
        .map(|s| s.name.as_str())
        .unwrap_or_else(|| panic!("no span under `completion`: {spans:#?}"))
}

fn named<'a>(spans: &'a [Span], name: &str) -> &'a Span {
    let found: Vec<&Span> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span: {spans:#?}");
    found[0]
}

const PROMPT: &str = "How do I rotate the otel-e2e-private-prompt credentials?";

/// The stages draw span ids from a generator of each instance's own, seeded from
/// `wasi:random` (`chatgate_guest_otel::fill_random`): instances seeded alike, as a
/// generator seeded in a snapshot would be, would give the same ids in the same order.
#[tokio::test(flavor = "multi_thread")]
async fn span_ids_differ_across_instances_and_their_requests() {
    let (collector, received) = receiver().await;
    let manifest = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let gateway = Traced::start_configured(
        &manifest,
        Some(settings(format!("http://{collector}/v1/traces"))),
        &[],
        |options| {
            // An instance per request at a time, each serving a few requests.
            options.reuse.max_concurrent = chatgate::reuse::Range::Value(1);
            options.reuse.max_requests = chatgate::reuse::Range::Value(3);
        },
    )
    .await;
    const REQUESTS: usize = 24;
    for _wave in 0..REQUESTS / 8 {
        let url = gateway.url("/v1/models");
        let answers = (0..8).map(|_| get(&url, &[("authorization", "Bearer chatgate-dev-key")]));
        for answer in futures_util::future::join_all(answers).await {
            assert_eq!(answer.status, 200, "{}", answer.text());
        }
    }
    gateway.flush().await.expect("flush to a live collector");
    // SERVER, telemetry, waf, auth and chat for each request.
    let spans = spans_of(&exported(&received, 5 * REQUESTS).await);
    assert_eq!(spans.len(), 5 * REQUESTS);
    let ids: std::collections::HashSet<&[u8]> =
        spans.iter().map(|s| s.span_id.as_slice()).collect();
    assert_eq!(ids.len(), spans.len(), "a span id drawn twice");
    for span in spans
        .iter()
        .filter(|s| s.kind != span::SpanKind::Server as i32)
    {
        assert!(
            ids.contains(span.parent_span_id.as_slice()),
            "{}'s parent is not among the spans",
            span.name
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_stages_spans_nest_in_request_order_with_genai_attributes() {
    let (gateway, received) = traced_shipped_chain().await;
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let answered = ask(
        &gateway,
        &[("traceparent", traceparent.as_str())],
        serde_json::json!({
            "model": "chatgate-rag",
            "messages": [{"role": "user", "content": PROMPT}],
            "temperature": 0.25,
            "max_tokens": 200,
        }),
    )
    .await;
    assert_eq!(answered.status, 200, "{}", answered.text());
    let answer = answered.json();
    gateway.flush().await.expect("flush to a live collector");
    let requests = exported(&received, 8).await;
    let spans = spans_of(&requests);

    // SERVER -> telemetry -> waf -> auth -> chat -> {retrieval, completion -> chat <model>},
    // one trace; the last is the completion component's own.
    let server = spans
        .iter()
        .find(|s| s.kind == span::SpanKind::Server as i32)
        .expect("the SERVER span");
    let mut parent = server;
    for stage in ["telemetry", "waf", "auth", "chat"] {
        let span = named(&spans, stage);
        assert_eq!(hex(&span.trace_id), TRACE_ID, "{stage}");
        assert_eq!(span.parent_span_id, parent.span_id, "{stage}'s parent");
        assert!(
            span.start_time_unix_nano >= parent.start_time_unix_nano,
            "{stage} starts inside its parent"
        );
        parent = span;
    }
    let chat = parent;
    let retrieval = named(&spans, "retrieval");
    assert_eq!(retrieval.parent_span_id, chat.span_id);
    assert!(int(&retrieval.attributes, "chatgate.retrieval.passages") >= 1);
    // `chat`'s call of its completion dependency, with the id it gave the client and
    // nothing of the GenAI conventions: the model call is the span below, counted once.
    let call = named(&spans, "completion");
    assert_eq!(call.parent_span_id, chat.span_id);
    assert_eq!(call.kind, span::SpanKind::Internal as i32);
    assert_eq!(
        string(&call.attributes, "chatgate.response.id"),
        answer["id"].as_str().unwrap()
    );
    assert_eq!(string(&call.attributes, "chatgate.model"), "chatgate-rag");
    assert!(
        !call.attributes.iter().any(|a| a.key.starts_with("gen_ai.")),
        "{call:#?}"
    );
    // One model call, one span a GenAI-aware backend counts as one.
    assert_eq!(
        spans
            .iter()
            .filter(|s| attribute(&s.attributes, "gen_ai.operation.name").is_some())
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>(),
        vec![completion_name(&spans, call)],
        "only the model span is a GenAI operation"
    );
    // Inside it, the completion component's GenAI span of its model call.
    let completion = spans
        .iter()
        .find(|s| s.name.starts_with("chat ") && s.parent_span_id == call.span_id)
        .unwrap_or_else(|| panic!("the GenAI span under `completion`: {spans:#?}"));
    assert_eq!(hex(&completion.trace_id), TRACE_ID);
    assert_eq!(completion.kind, span::SpanKind::Client as i32);
    assert!(
        completion.start_time_unix_nano >= call.start_time_unix_nano
            && completion.end_time_unix_nano <= call.end_time_unix_nano,
        "the model call lies within chat's call"
    );
    assert_eq!(
        completion.name,
        format!(
            "chat {}",
            string(&completion.attributes, "gen_ai.request.model")
        )
    );
    let attributes = &completion.attributes;
    assert_eq!(string(attributes, "gen_ai.operation.name"), "chat");
    // The offline model is its own provider.
    assert_eq!(
        string(attributes, "gen_ai.provider.name"),
        "chatgate-extractive"
    );
    match attribute(attributes, "gen_ai.response.finish_reasons") {
        Some(any_value::Value::ArrayValue(reasons)) => assert_eq!(
            reasons.values[0].value,
            Some(any_value::Value::StringValue(
                answer["choices"][0]["finish_reason"]
                    .as_str()
                    .unwrap()
                    .into()
            ))
        ),
        other => panic!("finish reasons: {other:?}"),
    }
    assert_eq!(
        string(attributes, "gen_ai.response.model"),
        answer["model"].as_str().unwrap()
    );
    assert_eq!(
        int(attributes, "gen_ai.usage.input_tokens"),
        answer["usage"]["prompt_tokens"].as_i64().unwrap()
    );
    assert_eq!(
        int(attributes, "gen_ai.usage.output_tokens"),
        answer["usage"]["completion_tokens"].as_i64().unwrap()
    );
    assert_eq!(int(attributes, "gen_ai.request.max_tokens"), 200);
    match attribute(attributes, "gen_ai.request.temperature") {
        Some(any_value::Value::DoubleValue(t)) => assert_eq!(*t, 0.25),
        other => panic!("temperature: {other:?}"),
    }
    assert_eq!(
        string(&named(&spans, "auth").attributes, "chatgate.auth.method"),
        "api-key"
    );
    assert_eq!(
        string(&named(&spans, "waf").attributes, "chatgate.waf.outcome"),
        "pass"
    );
    for span in &spans {
        let scope_spans = requests
            .iter()
            .flat_map(|r| &r.resource_spans)
            .flat_map(|r| &r.scope_spans)
            .find(|s| s.spans.iter().any(|x| x.span_id == span.span_id))
            .unwrap();
        let scope = scope_spans.scope.as_ref().unwrap();
        if span.kind != span::SpanKind::Server as i32 {
            assert!(scope.name.starts_with("chatgate-"), "{}", scope.name);
        }
    }
    // Metrics: the request's duration by route and status, and the completion's tokens
    // by type, equal to the response's usage.
    let metrics = metrics_received(&received);
    let (unit, points) = histogram(&metrics, "http.server.request.duration");
    assert_eq!(unit, "s");
    let point = points
        .iter()
        .find(|p| int(&p.attributes, "http.response.status_code") == 200)
        .expect("a 200 data point");
    assert_eq!(point.count, 1);
    assert_eq!(string(&point.attributes, "http.request.method"), "POST");
    assert!(point.sum.unwrap() > 0.0);
    let (unit, points) = histogram(&metrics, "gen_ai.client.token.usage");
    assert_eq!(unit, "{token}");
    for (kind, field) in [("input", "prompt_tokens"), ("output", "completion_tokens")] {
        let point = points
            .iter()
            .find(|p| string(&p.attributes, "gen_ai.token.type") == kind)
            .unwrap_or_else(|| panic!("{kind} tokens: {points:#?}"));
        assert_eq!(point.count, 1);
        assert_eq!(
            point.sum,
            Some(answer["usage"][field].as_f64().unwrap()),
            "{kind}"
        );
        assert_eq!(string(&point.attributes, "gen_ai.operation.name"), "chat");
        assert_eq!(
            string(&point.attributes, "gen_ai.provider.name"),
            "chatgate-extractive"
        );
    }
    let (unit, points) = histogram(&metrics, "gen_ai.client.operation.duration");
    assert_eq!((unit.as_str(), points.len()), ("s", 1));

    // Neither the prompt, nor the answer, nor the key, anywhere in what was exported.
    let bytes: Vec<u8> = received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|(_, _, body)| body.to_vec())
        .collect();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    for secret in [
        "otel-e2e-private-prompt",
        "chatgate-dev-key",
        &content[..content.len().min(40)],
    ] {
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "`{secret}` was exported"
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_openai_completion_names_its_provider_and_reports_the_upstreams_usage() {
    const KEY: &str = "sk-otel-test-upstream-key-3b8e";
    for (flavor, provider, model) in [
        ("openai", "openai", "gpt-4o-mini"),
        ("azure", "azure.ai.openai", "chat-deployment"),
    ] {
        let upstream =
            chatgate_tests::upstream::Upstream::openai("The firewall blocks SQL injection [doc1].")
                .await;
        let (collector, received) = receiver().await;
        let gateway = Traced::start_with(
            &chatgate_tests::manifest_with_completion_line(chatgate_tests::OPENAI_COMPLETION_LINE),
            Some(settings(format!("http://{collector}/v1/traces"))),
            &[
                ("openai_origin", &upstream.origin),
                ("openai_api_flavor", flavor),
                ("openai_model", model),
                ("openai_api_key", KEY),
            ],
        )
        .await;
        let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
        let answered = ask(
            &gateway,
            &[("traceparent", traceparent.as_str())],
            serde_json::json!({"messages": [{"role": "user", "content": PROMPT}], "top_p": 0.5}),
        )
        .await;
        assert_eq!(answered.status, 200, "{flavor}: {}", answered.text());
        let usage = answered.json()["usage"].clone();
        gateway.flush().await.expect("flush to a live collector");
        let spans = spans_of(&exported(&received, 8).await);
        let call = named(&spans, "completion");
        let genai = named(&spans, &format!("chat {model}"));
        assert_eq!(genai.parent_span_id, call.span_id, "{flavor}");
        assert_eq!(genai.kind, span::SpanKind::Client as i32);
        let attributes = &genai.attributes;
        assert_eq!(string(attributes, "gen_ai.provider.name"), provider);
        assert_eq!(string(attributes, "gen_ai.request.model"), model);
        assert_eq!(string(attributes, "gen_ai.response.model"), model);
        // The upstream's own id of its answer (the double's), not the one chat gives.
        assert_eq!(
            string(attributes, "gen_ai.response.id"),
            "chatcmpl-upstream"
        );
        match attribute(attributes, "gen_ai.request.top_p") {
            Some(any_value::Value::DoubleValue(p)) => assert_eq!(*p, 0.5),
            other => panic!("top_p: {other:?}"),
        }
        assert_eq!(
            int(attributes, "gen_ai.usage.input_tokens"),
            usage["prompt_tokens"].as_i64().unwrap()
        );
        assert_eq!(
            int(attributes, "gen_ai.usage.output_tokens"),
            usage["completion_tokens"].as_i64().unwrap()
        );
        let metrics = metrics_received(&received);
        let (_, points) = histogram(&metrics, "gen_ai.client.token.usage");
        assert!(
            points
                .iter()
                .all(|p| string(&p.attributes, "gen_ai.provider.name") == provider),
            "{points:#?}"
        );
        let bytes: Vec<u8> = received
            .lock()
            .unwrap()
            .iter()
            .flat_map(|(_, _, body)| body.to_vec())
            .collect();
        for secret in [KEY, "otel-e2e-private-prompt", "blocks SQL injection"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "`{secret}` was exported"
            );
        }
        gateway.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_streamed_answer_records_when_its_first_token_came() {
    let (gateway, received) = traced_shipped_chain().await;
    let streamed = ask(
        &gateway,
        &[],
        serde_json::json!({
            "model": "chatgate-rag",
            "stream": true,
            "messages": [{"role": "user", "content": "How do I configure retrieval?"}],
        }),
    )
    .await;
    assert_eq!(streamed.status, 200, "{}", streamed.text());
    assert!(
        streamed.text().contains("data: [DONE]"),
        "{}",
        streamed.text()
    );
    gateway.flush().await.expect("flush to a live collector");
    let spans = spans_of(&exported(&received, 8).await);
    let completion = spans
        .iter()
        .find(|s| s.name.starts_with("chat ") && s.kind == span::SpanKind::Client as i32)
        .unwrap_or_else(|| panic!("the completion span: {spans:#?}"));
    let first = completion
        .events
        .iter()
        .find(|e| e.name == "gen_ai.first_token")
        .unwrap_or_else(|| panic!("the first-token event: {completion:#?}"));
    assert!(
        first.time_unix_nano >= completion.start_time_unix_nano
            && first.time_unix_nano <= completion.end_time_unix_nano
    );
    let metrics = metrics_received(&received);
    let (unit, points) = histogram(&metrics, "gen_ai.server.time_to_first_token");
    assert_eq!((unit.as_str(), points.len()), ("s", 1));
    assert_eq!(points[0].count, 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_waf_block_is_a_span_with_its_rules_and_nothing_inward() {
    let (gateway, received) = traced_shipped_chain().await;
    let blocked = ask(
        &gateway,
        &[],
        serde_json::json!({"model": "' UNION SELECT password FROM users --", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(blocked.status, 403, "{}", blocked.text());
    gateway.flush().await.expect("flush to a live collector");
    let spans = spans_of(&exported(&received, 3).await);
    let waf = named(&spans, "waf");
    assert_eq!(string(&waf.attributes, "chatgate.waf.outcome"), "refused");
    assert_eq!(int(&waf.attributes, "http.response.status_code"), 403);
    match attribute(&waf.attributes, "chatgate.waf.rule_ids") {
        Some(any_value::Value::ArrayValue(ids)) => assert!(!ids.values.is_empty()),
        other => panic!("rule ids: {other:?}"),
    }
    assert!(
        !spans.iter().any(|s| s.name == "auth" || s.name == "chat"),
        "no stage after the WAF ran: {spans:#?}"
    );
    let metrics = metrics_received(&received);
    let refusals = metrics
        .iter()
        .find(|m| m.name == "chatgate.waf.refusals")
        .expect("the WAF refusal counter");
    match &refusals.data {
        Some(metric::Data::Sum(sum)) => {
            assert_eq!(sum.data_points.len(), 1);
            let point = &sum.data_points[0];
            assert_eq!(
                point.value,
                Some(opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsInt(1))
            );
            assert_eq!(
                string(&point.attributes, "chatgate.waf.rejection"),
                string(&waf.attributes, "chatgate.waf.rejection")
            );
            // `UNION SELECT` is an SQL injection (CRS 942).
            assert_eq!(string(&point.attributes, "chatgate.waf.family"), "sqli");
        }
        other => panic!("a counter: {other:?}"),
    }
    gateway.stop().await;
}

/// The data points of the counter `name`: attributes and value.
fn counter(metrics: &[Metric], name: &str) -> Vec<(Vec<KeyValue>, i64)> {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    let metric = metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no `{name}`"));
    match &metric.data {
        Some(metric::Data::Sum(sum)) => {
            assert!(sum.is_monotonic, "{name} is a counter");
            sum.data_points
                .iter()
                .map(|p| match p.value {
                    Some(Value::AsInt(v)) => (p.attributes.clone(), v),
                    other => panic!("{name}: {other:?}"),
                })
                .collect()
        }
        other => panic!("`{name}` is not a sum: {other:?}"),
    }
}

/// `chatgate.instance.count`'s value by `chatgate.instance.state`: (used, idle).
fn instance_count(metrics: &[Metric]) -> (i64, i64) {
    use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
    let metric = metrics
        .iter()
        .find(|m| m.name == "chatgate.instance.count")
        .unwrap_or_else(|| panic!("no instance count: {metrics:#?}"));
    assert_eq!(metric.unit, "{instance}");
    let Some(metric::Data::Sum(sum)) = &metric.data else {
        panic!("not a sum: {metric:#?}")
    };
    assert!(!sum.is_monotonic, "an up-down counter");
    let state = |name: &str| {
        let points: Vec<i64> = sum
            .data_points
            .iter()
            .filter(|p| string(&p.attributes, "chatgate.instance.state") == name)
            .map(|p| match p.value {
                Some(Value::AsInt(v)) => v,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(points.len(), 1, "one `{name}` point: {sum:#?}");
        points[0]
    };
    assert_eq!(sum.data_points.len(), 2, "{sum:#?}");
    (state("used"), state("idle"))
}

/// Waits (10 s at most) until the application's instances are `live` and `idle`.
async fn instances_become(gateway: &Traced, live: usize, idle: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = gateway.app.instances();
        if (now.live, now.idle) == (live, idle) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "instances stayed {now:?}, not {live} live and {idle} idle"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_instance_count_follows_used_and_idle_instances() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (collector, received) = receiver().await;
    let gateway = Traced::start_configured(
        &manifest(),
        Some(settings(format!("http://{collector}/v1/traces"))),
        &[],
        |options| {
            // Kept idle for the whole test, not retired after Spin's 1 s.
            options.reuse.idle_timeout = chatgate::reuse::Range::Value(Duration::from_secs(600));
        },
    )
    .await;
    gateway.flush().await.unwrap();
    assert_eq!(instance_count(&metrics_received(&received)), (0, 0));

    // `hello` reads the whole body before it answers: a request whose body is still
    // coming keeps its instance used.
    let mut held = tokio::net::TcpStream::connect(("127.0.0.1", gateway.port))
        .await
        .unwrap();
    held.write_all(
        b"POST /echo/held HTTP/1.1
host: 127.0.0.1
content-length: 4
connection: close

ab",
    )
    .await
    .unwrap();
    instances_become(&gateway, 1, 0).await;
    gateway.flush().await.unwrap();
    assert_eq!(instance_count(&metrics_received(&received)), (1, 0));

    // Its body complete and answered, the instance is kept for a next request: idle.
    held.write_all(b"cd").await.unwrap();
    let mut response = String::new();
    held.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    instances_become(&gateway, 1, 1).await;
    gateway.flush().await.unwrap();
    assert_eq!(instance_count(&metrics_received(&received)), (0, 1));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_request_sampled_the_metrics_still_count_every_request() {
    let (collector, received) = receiver().await;
    let shipped = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
    let quota = r#"quota_requests_per_minute = { default = "600" }"#;
    assert!(shipped.contains(quota));
    let manifest = shipped.replace(quota, r#"quota_requests_per_minute = { default = "3" }"#);
    let mut settings = settings(format!("http://{collector}/v1/traces"));
    settings.sampler_ratio = Some(0.0);
    let gateway = Traced::start(&manifest, Some(settings)).await;

    // Answered until the quota refuses one (more than 3 if the minute turns meanwhile).
    let (mut answered, mut input, mut output) = (0, 0, 0);
    loop {
        let reply = ask(
            &gateway,
            &[],
            serde_json::json!({"messages": [{"role": "user", "content": "How do I configure retrieval?"}]}),
        )
        .await;
        if reply.status == 429 {
            break;
        }
        assert_eq!(reply.status, 200, "{}", reply.text());
        let usage = &reply.json()["usage"];
        input += usage["prompt_tokens"].as_i64().unwrap();
        output += usage["completion_tokens"].as_i64().unwrap();
        answered += 1;
        assert!(answered < 10, "the quota of 3 a minute never refused");
    }
    let blocked = ask(
        &gateway,
        &[],
        serde_json::json!({"model": "' UNION SELECT password FROM users --", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(blocked.status, 403, "{}", blocked.text());
    let wrong_key = post_json(
        &gateway.url("/v1/chat/completions"),
        &[("authorization", "Bearer not-a-key")],
        &serde_json::json!({"messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(wrong_key.status, 401, "{}", wrong_key.text());
    gateway.flush().await.expect("flush to a live collector");

    // Nothing traced: no span at all, not even the SERVER spans.
    assert_eq!(spans_of(&exported(&received, 0).await), Vec::<Span>::new());
    let metrics = metrics_received(&received);
    let (_, points) = histogram(&metrics, "http.server.request.duration");
    assert_eq!(
        points.iter().map(|p| p.count).sum::<u64>(),
        answered as u64 + 3
    );
    let (_, points) = histogram(&metrics, "gen_ai.client.token.usage");
    for (kind, tokens) in [("input", input), ("output", output)] {
        let of_kind: Vec<_> = points
            .iter()
            .filter(|p| string(&p.attributes, "gen_ai.token.type") == kind)
            .collect();
        assert_eq!(
            of_kind.iter().map(|p| p.count).sum::<u64>(),
            answered as u64,
            "{kind}"
        );
        assert_eq!(
            of_kind.iter().map(|p| p.sum.unwrap()).sum::<f64>(),
            tokens as f64,
            "{kind}"
        );
    }
    let (_, points) = histogram(&metrics, "gen_ai.client.operation.duration");
    assert_eq!(points.iter().map(|p| p.count).sum::<u64>(), answered as u64);
    for (name, key, value) in [
        ("chatgate.waf.refusals", "chatgate.waf.family", "sqli"),
        ("chatgate.auth.failures", "chatgate.auth.failure", ""),
        (
            "chatgate.quota.rejections",
            "chatgate.quota.limit",
            "requests",
        ),
    ] {
        let points = counter(&metrics, name);
        assert_eq!(points.len(), 1, "{name}: {points:?}");
        assert_eq!(points[0].1, 1, "{name}");
        let recorded = string(&points[0].0, key);
        assert!(
            value.is_empty() && !recorded.is_empty() || recorded == value,
            "{name}: {key} = {recorded}"
        );
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_failovers_and_breaker_changes_are_counted_untraced() {
    use chatgate_tests::upstream::{Behaviour, Upstream};
    let primary = Upstream::scripted("unused", vec![Behaviour::status(503); 8]).await;
    let failover = Upstream::openai("The failover answers [doc1].").await;
    let (collector, received) = receiver().await;
    let mut settings = settings(format!("http://{collector}/v1/traces"));
    settings.sampler_ratio = Some(0.0);
    let gateway = Traced::start_with(
        &chatgate_tests::manifest_with_completion_line(chatgate_tests::OPENAI_COMPLETION_LINE),
        Some(settings),
        &[
            ("openai_origin", &primary.origin),
            ("openai_failover_origin", &failover.origin),
            ("openai_api_key", "sk-otel-test"),
            ("openai_failover_api_key", "sk-otel-test"),
            ("openai_retry_base_ms", "1"),
            ("openai_breaker_failures", "1"),
        ],
    )
    .await;
    let answered = ask(
        &gateway,
        &[],
        serde_json::json!({"messages": [{"role": "user", "content": "How do I configure retrieval?"}]}),
    )
    .await;
    assert_eq!(answered.status, 200, "{}", answered.text());
    assert!(
        !primary.recorded().is_empty() && !failover.recorded().is_empty(),
        "primary {} failover {}",
        primary.recorded().len(),
        failover.recorded().len()
    );
    gateway.flush().await.expect("flush to a live collector");
    assert_eq!(spans_of(&exported(&received, 0).await), Vec::<Span>::new());
    let metrics = metrics_received(&received);
    let total = |name: &str| counter(&metrics, name).iter().map(|(_, v)| *v).sum::<i64>();
    // Every attempt after the first is a retry; at least the move to the failover.
    let attempts = (primary.recorded().len() + failover.recorded().len()) as i64;
    assert_eq!(total("chatgate.completion.retries"), attempts - 1);
    assert!(total("chatgate.completion.failovers") >= 1);
    let transitions = counter(&metrics, "chatgate.completion.breaker.transitions");
    assert!(
        transitions.iter().any(
            |(attributes, n)| string(attributes, "chatgate.breaker.state") == "open" && *n >= 1
        ),
        "{transitions:?}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_export_a_new_trace_is_not_sampled_so_stages_report_nothing() {
    let gateway = Traced::start(&manifest(), None).await;
    let reply = get(&gateway.url("/echo/untraced"), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let traceparent = reply.headers["traceparent"].to_str().unwrap().to_string();
    assert!(traceparent.ends_with("-00"), "{traceparent}");
    // A caller's sampled trace is continued as sampled, whoever records it.
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let reply = get(
        &gateway.url("/echo/traced"),
        &[("traceparent", caller.as_str())],
    )
    .await;
    let traceparent = reply.headers["traceparent"].to_str().unwrap().to_string();
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-")) && traceparent.ends_with("-01"),
        "{traceparent}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_never_answers_costs_a_bounded_queue_and_leaves_requests_untraced() {
    // Takes connections and never answers: each export waits out its timeout.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mut settings = settings(format!("http://{silent}/v1/traces"));
    settings.max_queue_size = Some(8);
    settings.max_log_queue_size = Some(8);
    settings.metrics_endpoint = None;
    let gateway = Traced::start(&manifest(), Some(settings)).await;
    let caller = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let mut last = None;
    for _ in 0..40 {
        let reply = get(&gateway.url("/hello"), &[("traceparent", caller.as_str())]).await;
        assert_eq!(reply.status, 200);
        last = Some(reply);
    }
    let tracing = gateway.tracing.as_ref().unwrap();
    // A traced request hands over two spans (the SERVER span and telemetry's), at most
    // the queue (8) and the one batch handed to the stalled exporter (8) get in, and a
    // request that comes in while the queue is full is not traced at all: so at most
    // about 12 of the 40 were traced, and the others' spans were never built.
    let untraced = tracing.untraced_requests();
    assert!(
        (24..=40).contains(&untraced),
        "{untraced} requests untraced"
    );
    let dropped = tracing.dropped_spans();
    assert!(dropped <= 2 * (40 - untraced), "{dropped} spans dropped");
    // An untraced request continues the caller's trace, unsampled, so that no stage
    // reports a span of it.
    let traceparent = last.unwrap().headers["traceparent"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        traceparent.starts_with(&format!("00-{TRACE_ID}-"))
            && !traceparent.contains(CALLER_SPAN)
            && traceparent.ends_with("-00"),
        "{traceparent}"
    );
    // The log records (telemetry's of each traced request, and the record of each
    // request's line on stdout) share one account, in a queue of 8 ahead of an export
    // that never ends: at least the 40 lines' records beyond the queue and one batch
    // were dropped.
    let dropped = tracing.dropped_log_records();
    assert!(
        (24..=80).contains(&dropped),
        "{dropped} log records dropped"
    );
    gateway.stop().await;
}

async fn statuses(gateway: &Traced) -> Vec<u16> {
    let mut statuses = Vec::new();
    for path in ["/hello", "/echo/x", "/counter", "/healthz"] {
        let reply: Reply = get(&gateway.url(path), &[("authorization", "Bearer x")]).await;
        statuses.push(reply.status);
    }
    statuses
}

#[tokio::test(flavor = "multi_thread")]
async fn a_collector_that_is_down_changes_no_response() {
    let down = nowhere();
    responses_unchanged_with(settings(format!("http://{down}/v1/traces"))).await;
}

/// `chatgate up` exporting spans with `protocol` to an address nothing listens on:
/// requests are answered, and the failure is told on stderr once (then at most once a
/// minute, host/src/otel_transport.rs), as `chatgate::otel`'s warning; only the signal
/// that is on is named at start-up.
async fn an_unreachable_collector_is_warned_about_once_on_stderr(protocol: &str) {
    use std::io::Read;
    use std::process::Command;
    let down = nowhere();
    let (mut child, mut stderr, address, start) = chatgate_up(
        &format!("{}-down", protocol.replace('/', "-")),
        &single_route_manifest("hello", &[], ""),
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("http://{down}"),
            ),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", protocol.into()),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
        ],
    );
    assert!(
        start.contains(&format!("exporting traces to http://{down} ")),
        "{start}"
    );
    assert!(
        !start.contains("exporting metrics") && !start.contains("exporting logs"),
        "{start}"
    );
    for _ in 0..3 {
        let reply = get(&format!("http://{address}/hello"), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    // The batch processor's 100 ms delay, then an export that fails at once.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.0.wait().unwrap();
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(status.success(), "exit status {status}: {rest}");
    let warnings: Vec<&str> = rest
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("exporting traces failed"))
        .collect();
    assert_eq!(warnings.len(), 1, "{rest}");
    assert!(warnings[0].contains("chatgate::otel"), "{rest}");
    // The collector's address is left out (its user-info could be a credential).
    assert!(!warnings[0].contains(&down.to_string()), "{rest}");
}

/// `chatgate up` serving `manifest` (written under `target/otel-test/<name>`) on a free
/// port, with `env` and no other `OTEL_` variable: the process, its stderr after the
/// start-up lines, its address and those lines.
fn chatgate_up(
    name: &str,
    manifest: &str,
    env: &[(&str, String)],
) -> (
    Running,
    std::io::BufReader<std::process::ChildStderr>,
    String,
    String,
) {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let dir = repo_root().join("target/otel-test").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, manifest).unwrap();
    let mut command = Command::new(chatgate_tests::chatgate_binary());
    for (name, _) in std::env::vars() {
        if name.starts_with("OTEL_") || name == "CHATGATE_LOG" {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(["up", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(&path)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut start = String::new();
    while !start.contains("serving") {
        let mut line = String::new();
        assert_ne!(stderr.read_line(&mut line).unwrap(), 0, "{start}");
        start.push_str(&line);
    }
    let address = start
        .split("serving")
        .nth(1)
        .and_then(|rest| rest.split("http://").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {start:?}"))
        .to_string();
    (Running(child), stderr, address, start)
}

/// A child process, killed when dropped: a failed assertion leaves no gateway running
/// (nor holding the test's stdout open).
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `chatgate up` sending spans where nothing listens and logs to a live collector: its
/// warning about the failed export arrives as a log record (WARN, its target
/// `chatgate::otel` as the scope, the message as the body), beside the records of
/// `telemetry`'s request lines, attributed to the trigger's component.
#[tokio::test(flavor = "multi_thread")]
async fn the_hosts_warnings_and_the_components_output_are_exported_as_log_records() {
    let down = nowhere();
    let (collector, received) = receiver().await;
    let (child, _stderr, address, _) = chatgate_up(
        "host-warnings",
        &manifest(),
        &[
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("http://{down}"),
            ),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                format!("http://{collector}/v1/logs"),
            ),
            ("OTEL_BSP_SCHEDULE_DELAY", "100".into()),
            ("OTEL_BLRP_SCHEDULE_DELAY", "100".into()),
        ],
    );
    for _ in 0..2 {
        let reply = get(&format!("http://{address}/echo/out"), &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let warning = loop {
        let records = scoped_logs_received(&received);
        let found = records.iter().find(|(_, record)| {
            matches!(
                record.body.as_ref().and_then(|b| b.value.as_ref()),
                Some(any_value::Value::StringValue(text)) if text.contains("exporting traces failed")
            )
        });
        if let Some(found) = found {
            break found.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no warning among {records:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(child);
    let (scope, record) = warning;
    assert_eq!(scope, "chatgate::otel");
    assert_eq!(
        (record.severity_number, record.severity_text.as_str()),
        (13, "WARN")
    );
    // As on stderr, the collector's address is left out.
    assert!(
        !format!("{record:?}").contains(&down.to_string()),
        "{record:?}"
    );
    let records = logs_received(&received);
    let lines = output_records(&records);
    assert_eq!(lines.len(), 2, "{records:#?}");
    for (component, body) in lines {
        assert_eq!(component, "hello");
        let line: serde_json::Value = serde_json::from_str(body.trim_end()).unwrap();
        assert_eq!(line["route"], "/echo/out", "{line}");
    }
}

/// The same over `http/protobuf`.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_http_collector_is_warned_about_once_on_stderr() {
    an_unreachable_collector_is_warned_about_once_on_stderr("http/protobuf").await;
}

/// An address nothing listens on.
fn nowhere() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Exporting with `settings` to a collector that is down: every response is what an
/// untraced gateway answers, and the failure is told to whoever flushes, not to requests.
async fn responses_unchanged_with(settings: TraceSettings) {
    let untraced = Traced::start(&manifest(), None).await;
    let expected = statuses(&untraced).await;
    untraced.stop().await;
    let traced = Traced::start(&manifest(), Some(settings)).await;
    for _ in 0..3 {
        assert_eq!(statuses(&traced).await, expected);
    }
    assert!(traced.flush().await.is_err());
    assert_eq!(statuses(&traced).await, expected);
    traced.stop().await;
}

/// What one load measured: requests per second, p50 in ms, and CPU time of this process
/// per request in µs.
struct Load {
    rps: f64,
    p50_ms: f64,
    cpu_us: f64,
    /// The receiver's CPU time per request in µs: another process, but on the same cores.
    receiver_cpu_us: f64,
}

/// CPU time this process has used (user and system, all threads), from
/// `/proc/self/stat` (in clock ticks, 100 per second on Linux).
fn cpu_seconds() -> f64 {
    process_cpu_seconds("/proc/self/stat")
}

/// CPU time of the process whose `/proc/<pid>/stat` is at `path`, as [`cpu_seconds`].
fn process_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).expect(path);
    // The fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').expect("a stat line") + 2..]
        .split(' ')
        .collect();
    // utime and stime are the 14th and 15th fields of the line, the 12th and 13th here.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// What `otel::export_cost` asks for (`OTEL_COST_SCENARIO`): the smallest traced app, in
/// which export weighs most (`hello`, the default), or the shipped chain's cheapest and
/// its ordinary request (`models`, `rag`).
#[derive(Clone, Copy)]
enum CostScenario {
    Hello,
    Models,
    Rag,
}

impl CostScenario {
    fn from_env() -> CostScenario {
        match std::env::var("OTEL_COST_SCENARIO").as_deref() {
            Err(_) | Ok("hello") => CostScenario::Hello,
            Ok("models") => CostScenario::Models,
            Ok("rag") => CostScenario::Rag,
            Ok(other) => panic!("OTEL_COST_SCENARIO={other}: hello, models or rag"),
        }
    }

    /// The shipped manifest with the quotas out of the way: at thousands of requests a
    /// second its 600 requests a minute would make the measurement one of 429s.
    fn manifest(self) -> String {
        if let CostScenario::Hello = self {
            return manifest();
        }
        let shipped = std::fs::read_to_string(repo_root().join("spin.toml")).unwrap();
        let quotas = [
            r#"quota_requests_per_minute = { default = "600" }"#,
            r#"quota_tokens_per_minute = { default = "200000" }"#,
        ];
        quotas.iter().fold(shipped, |manifest, quota| {
            assert!(manifest.contains(quota), "spin.toml no longer has {quota}");
            let name = quota.split(' ').next().unwrap();
            manifest.replace(quota, &format!(r#"{name} = {{ default = "1000000000" }}"#))
        })
    }

    fn request(self, address: &str) -> http::Request<http_body_util::Full<bytes::Bytes>> {
        const QUESTION: &str = r#"{"model":"chatgate-rag","messages":[{"role":"user","content":"What does the web application firewall block?"}]}"#;
        let (method, path, body) = match self {
            CostScenario::Hello => ("GET", "/hello", ""),
            CostScenario::Models => ("GET", "/v1/models", ""),
            CostScenario::Rag => ("POST", "/v1/chat/completions", QUESTION),
        };
        let mut request = http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", address);
        if !matches!(self, CostScenario::Hello) {
            request = request.header("authorization", "Bearer chatgate-dev-key");
        }
        if !body.is_empty() {
            request = request.header("content-type", "application/json");
        }
        request
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                body.as_bytes(),
            )))
            .unwrap()
    }
}

/// `scenario`'s request over 16 keep-alive connections for `secs`, on `gateway`. The CPU
/// time is the whole process's: the gateway and this load generator, whose share is the
/// same with export on and off.
async fn load(gateway: &Traced, scenario: CostScenario, secs: u64) -> Load {
    let cpu_before = cpu_seconds();
    let until = tokio::time::Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let address = format!("127.0.0.1:{}", gateway.port);
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&address).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                    .await
                    .unwrap();
            tokio::spawn(connection);
            let mut latencies = Vec::new();
            while tokio::time::Instant::now() < until {
                let request = scenario.request(&address);
                let started = std::time::Instant::now();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), 200);
                response.into_body().collect().await.unwrap();
                latencies.push(started.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let cpu = cpu_seconds() - cpu_before;
    latencies.sort();
    Load {
        rps: latencies.len() as f64 / secs as f64,
        p50_ms: latencies[latencies.len() / 2].as_secs_f64() * 1000.0,
        cpu_us: cpu * 1e6 / latencies.len() as f64,
        receiver_cpu_us: 0.0,
    }
}

/// The OTLP receiver of `otel::export_cost`, in a process of its own
/// (tests/src/bin/otlp_sink.rs) so that its work is not counted as the gateway's.
struct Sink {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    address: String,
}

impl Sink {
    fn start() -> Sink {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_otlp_sink"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("starting otlp_sink");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let first = lines.next().unwrap().unwrap();
        let address = first
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("otlp_sink said `{first}`"))
            .to_string();
        Sink {
            child,
            lines,
            address,
        }
    }

    /// The receiver's CPU time so far, in seconds.
    fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(&format!("/proc/{}/stat", self.child.id()))
    }

    /// The spans and log records received so far.
    fn counts(&mut self) -> String {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"?\n").unwrap();
        stdin.flush().unwrap();
        self.lines.next().unwrap().unwrap()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Closing its standard input ends it.
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}

/// The cost of export, on (to a receiver in another process) against off, in one run:
/// `cargo test --release -p chatgate-tests --test e2e otel::export_cost -- --ignored --nocapture`
/// (`OTEL_COST_SECS`, 10 by default, per measurement; `OTEL_COST_ROUNDS`, 2 by default,
/// rounds of the phases: off, on, `down` (exporting to an address that refuses
/// connections) and `stalled` (to a collector that never answers);
/// `OTEL_COST_ONLY=off`, `on`, `down` or `stalled` runs that phase alone, for a profiler
/// to see one phase at a time; `OTEL_COST_SCENARIO`, see [`CostScenario`]). Besides
/// requests per second and p50 it prints the CPU time of the test process per request
/// (the gateway and the load generator, not the receiver): on a machine shared with
/// other work, throughput moves with the neighbours' load, while CPU time per request
/// moves much less.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, not a check: run by hand"]
async fn export_cost() {
    let var = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let (secs, rounds) = (var("OTEL_COST_SECS", 10), var("OTEL_COST_ROUNDS", 2));
    let only = std::env::var("OTEL_COST_ONLY").ok();
    let scenario = CostScenario::from_env();
    let mut sink = Sink::start();
    // A collector that takes connections and never answers: each export waits out its
    // timeout while the queue fills and drops.
    let stalled = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stalled_at = stalled.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = stalled.accept().await {
            held.push(stream);
        }
    });
    // Export off; on, to the receiver; on, to an address that refuses connections; on,
    // to the stalled collector.
    let phases = [
        ("off", None),
        ("on", Some(sink.address.clone())),
        ("down", Some(nowhere().to_string())),
        ("stalled", Some(stalled_at.to_string())),
    ];
    let mut figures: Vec<Vec<Load>> = phases.iter().map(|_| Vec::new()).collect();
    for _round in 0..rounds {
        for (i, (name, collector)) in phases.iter().enumerate() {
            if only.as_deref().is_some_and(|only| only != *name) {
                continue;
            }
            let settings = collector.as_ref().map(|address| {
                let mut s = settings(format!("http://{address}/v1/traces"));
                s.scheduled_delay = None;
                s
            });
            let gateway = Traced::start(&scenario.manifest(), settings).await;
            load(&gateway, scenario, 1).await;
            let receiver_before = sink.cpu_seconds();
            let mut measured = load(&gateway, scenario, secs).await;
            measured.receiver_cpu_us =
                (sink.cpu_seconds() - receiver_before) * 1e6 / (measured.rps * secs as f64);
            if let Some(tracing) = &gateway.tracing {
                let requests = (measured.rps * secs as f64) as u64;
                println!(
                    "export {name}: of about {requests} requests, {} untraced; {} spans and {} log records dropped",
                    tracing.untraced_requests(),
                    tracing.dropped_spans(),
                    tracing.dropped_log_records()
                );
            }
            figures[i].push(measured);
            gateway.stop().await;
        }
    }
    for ((name, _), runs) in phases.iter().zip(&figures) {
        if runs.is_empty() {
            continue;
        }
        let list =
            |f: &dyn Fn(&Load) -> String| runs.iter().map(f).collect::<Vec<String>>().join(" / ");
        println!(
            "export {name}: req/s {} p50 ms {} CPU µs/request {} (receiver {})",
            list(&|l| format!("{:.0}", l.rps)),
            list(&|l| format!("{:.2}", l.p50_ms)),
            list(&|l| format!("{:.1}", l.cpu_us)),
            list(&|l| format!("{:.1}", l.receiver_cpu_us)),
        );
    }
    let mean = |runs: &[Load], f: &dyn Fn(&Load) -> f64| {
        runs.iter().map(f).sum::<f64>() / runs.len() as f64
    };
    let off = &figures[0];
    for ((name, _), runs) in phases.iter().zip(&figures).skip(1) {
        if off.is_empty() || runs.is_empty() {
            continue;
        }
        println!(
            "export {name} costs {:.1} % of throughput, {:+.1} % p50 and {:.1} % more CPU per request (means, against off)",
            100.0 * (1.0 - mean(runs, &|l| l.rps) / mean(off, &|l| l.rps)),
            100.0 * (mean(runs, &|l| l.p50_ms) / mean(off, &|l| l.p50_ms) - 1.0),
            100.0 * (mean(runs, &|l| l.cpu_us) / mean(off, &|l| l.cpu_us) - 1.0),
        );
    }
    println!("received by the collector: {}", sink.counts());
}
