//! An OTLP/HTTP receiver as a process of its own, for `otel::export_cost`
//! (tests/tests/e2e/otel.rs): there the gateway's CPU time per request is measured from
//! the test process, so the receiver's work (reading and decoding the exports) must not
//! run in it. It answers every POST with 200 and an empty body, as a collector that
//! takes everything does, and counts the spans and log records it receives. It counts
//! them by walking the protobuf fields down to the spans and records, without decoding
//! them into messages: it shares the machine's cores with the gateway, and decoding every
//! export took 3 % of the samples of a perf profile of the test with export on.
//!
//! `otlp_sink`: prints `listening on <address>` once it accepts connections on a free
//! loopback port; each line read on standard input is answered with one line
//! `spans <n> logs <m>` (the totals so far); the process exits when standard input
//! closes, so it does not outlive the test that started it.

use chatgate_tests::double::serve_buffered;
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
                // ExportTraceServiceRequest.resource_spans (1) > ResourceSpans.scope_spans
                // (2) > ScopeSpans.spans (2); the same numbers for logs.
                "/v1/traces" => {
                    if let Some(n) = count_fields(&body, &[1, 2, 2]) {
                        spans.fetch_add(n, Ordering::Relaxed);
                    }
                }
                "/v1/logs" => {
                    if let Some(n) = count_fields(&body, &[1, 2, 2]) {
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

/// How many fields `path` names in the protobuf message `message`: the fields numbered
/// `path[0]` (each a message), and in each of those the fields numbered `path[1]`, and so
/// on; `None` when the bytes are not a well-formed message along the way.
fn count_fields(mut message: &[u8], path: &[u32]) -> Option<u64> {
    let Some((&wanted, rest)) = path.split_first() else {
        return Some(1);
    };
    let mut count = 0;
    while !message.is_empty() {
        let key = prost::encoding::decode_varint(&mut message).ok()?;
        let (field, wire_type) = (key >> 3, key & 7);
        match wire_type {
            0 => {
                prost::encoding::decode_varint(&mut message).ok()?;
            }
            1 => message = message.get(8..)?,
            5 => message = message.get(4..)?,
            2 => {
                let len =
                    usize::try_from(prost::encoding::decode_varint(&mut message).ok()?).ok()?;
                let inner = message.get(..len)?;
                message = &message[len..];
                if field == u64::from(wanted) {
                    count += count_fields(inner, rest)?;
                }
            }
            _ => return None,
        }
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::count_fields;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use prost::Message;

    #[test]
    fn counts_what_decoding_counts() {
        let attribute = KeyValue {
            key: "k".into(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue("v".repeat(300))),
            }),
            ..Default::default()
        };
        let span = Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /...".into(),
            start_time_unix_nano: 1_700_000_000_000_000_000,
            attributes: vec![attribute.clone()],
            ..Default::default()
        };
        let scope = |n| ScopeSpans {
            spans: vec![span.clone(); n],
            ..Default::default()
        };
        let traces = ExportTraceServiceRequest {
            resource_spans: vec![
                ResourceSpans {
                    scope_spans: vec![scope(3), scope(0), scope(200)],
                    ..Default::default()
                },
                ResourceSpans {
                    scope_spans: vec![scope(1)],
                    ..Default::default()
                },
            ],
        };
        assert_eq!(count_fields(&traces.encode_to_vec(), &[1, 2, 2]), Some(204));
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![ScopeLogs {
                    log_records: vec![
                        LogRecord {
                            time_unix_nano: 5,
                            severity_number: 9,
                            attributes: vec![attribute],
                            ..Default::default()
                        };
                        7
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(count_fields(&logs.encode_to_vec(), &[1, 2, 2]), Some(7));
        assert_eq!(count_fields(&[0x0a, 0x05, 0x01], &[1, 2, 2]), None);
    }
}
