//! An OTLP/HTTP receiver as a process of its own, for `otel::export_cost`
//! (tests/tests/e2e/otel.rs): there the gateway's CPU time per request is measured from
//! the test process, so the receiver's work (reading and decoding the exports) must not
//! run in it. It answers every POST with 200 and an empty body, as a collector that
//! takes everything does, and counts the spans and log records it decodes.
//!
//! `otlp_sink`: prints `listening on <address>` once it accepts connections on a free
//! loopback port; each line read on standard input is answered with one line
//! `spans <n> logs <m>` (the totals so far); the process exits when standard input
//! closes, so it does not outlive the test that started it.

use chatgate_tests::double::serve_buffered;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use std::io::BufRead;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding a loopback port");
    let address = listener.local_addr().expect("the bound address");
    let spans = Arc::new(AtomicU64::new(0));
    let logs = Arc::new(AtomicU64::new(0));
    let (counted_spans, counted_logs) = (spans.clone(), logs.clone());
    serve_buffered(listener, move |parts, body| {
        let (spans, logs) = (counted_spans.clone(), counted_logs.clone());
        async move {
            match parts.uri.path() {
                "/v1/traces" => {
                    if let Ok(request) = ExportTraceServiceRequest::decode(body) {
                        let n = request
                            .resource_spans
                            .iter()
                            .flat_map(|r| &r.scope_spans)
                            .map(|s| s.spans.len() as u64)
                            .sum::<u64>();
                        spans.fetch_add(n, Ordering::Relaxed);
                    }
                }
                "/v1/logs" => {
                    if let Ok(request) = ExportLogsServiceRequest::decode(body) {
                        let n = request
                            .resource_logs
                            .iter()
                            .flat_map(|r| &r.scope_logs)
                            .map(|s| s.log_records.len() as u64)
                            .sum::<u64>();
                        logs.fetch_add(n, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
            let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::new()));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/x-protobuf"),
            );
            response
        }
    });
    println!("listening on {address}");
    let asked = tokio::task::spawn_blocking(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            println!(
                "spans {} logs {}",
                spans.load(Ordering::Relaxed),
                logs.load(Ordering::Relaxed)
            );
        }
    });
    asked.await.ok();
}
