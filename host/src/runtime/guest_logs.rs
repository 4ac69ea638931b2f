//! `wasi:otel/logs@0.2.0-rc.2`: log records the guests emit, exported with the host's
//! logs ([`crate::otel_logs`]) when log export is on, and otherwise dropped.
//!
//! As in Spin (read in its source, commit 94a8fc8a, `crates/factor-otel/src/host.rs`),
//! a record goes to the batch processor of the host's logs. Unlike Spin, the guest's
//! severity text, event name and resource are not used (the SDK keeps only static
//! text; Spin leaks a copy of each), the severity text is the number's name, and a
//! record whose trace or span id is not valid hex keeps no trace context rather than
//! stopping the host.

use super::bindings::wasi::otel::{logs, tracing};
use super::guest_spans::{span_id, system_time, trace_id, value};
use super::state::SpinView;
use crate::otel_logs::GuestLog;
use opentelemetry::logs::AnyValue;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry::{Array, Key, Value};

/// Attributes kept per record, as for spans.
const MAX_ATTRIBUTES: usize = super::guest_spans::MAX_PER_SPAN;

impl logs::Host for SpinView<'_> {
    fn on_emit(&mut self, data: logs::LogRecord) -> wasmtime::Result<()> {
        if let Some(sink) = &self.grants.span_sink {
            sink.log(|| guest_log(data));
        }
        Ok(())
    }
}

/// The host's form of a guest's record.
pub fn guest_log(data: logs::LogRecord) -> GuestLog {
    let trace = match (&data.trace_id, &data.span_id) {
        (Some(trace), Some(span)) => match (trace_id(trace), span_id(span)) {
            (Some(trace), Some(span)) if trace != TraceId::INVALID && span != SpanId::INVALID => {
                let sampled = data
                    .trace_flags
                    .is_some_and(|f| f.contains(tracing::TraceFlags::SAMPLED));
                Some((trace, span, sampled))
            }
            _ => None,
        },
        _ => None,
    };
    GuestLog {
        timestamp: data.timestamp.map(system_time),
        observed_timestamp: data.observed_timestamp.map(system_time),
        severity: data.severity_number,
        body: data.body.as_deref().and_then(value).map(any_value),
        attributes: data
            .attributes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|kv| Some((key(kv.key), any_value(value(&kv.value)?))))
            .take(MAX_ATTRIBUTES)
            .collect(),
        scope: data
            .instrumentation_scope
            .map(|scope| (scope.name, scope.version)),
        trace,
    }
}

/// The attribute names `telemetry`'s request record uses, kept `'static`: the batch
/// processor clones every record into its queue, and a static name clones without
/// allocating.
const KNOWN_KEYS: [&str; 6] = [
    "http.request.method",
    "url.path",
    "http.response.status_code",
    "chatgate.request_id",
    "chatgate.duration_ms",
    "error.type",
];

fn key(name: String) -> Key {
    match KNOWN_KEYS.into_iter().find(|known| *known == name) {
        Some(known) => Key::from_static_str(known),
        None => Key::from(name),
    }
}

fn any_value(value: Value) -> AnyValue {
    match value {
        Value::Bool(b) => AnyValue::Boolean(b),
        Value::I64(i) => AnyValue::Int(i),
        Value::F64(f) => AnyValue::Double(f),
        Value::String(s) => AnyValue::String(s),
        Value::Array(array) => AnyValue::ListAny(Box::new(match array {
            Array::Bool(items) => items.into_iter().map(AnyValue::Boolean).collect(),
            Array::I64(items) => items.into_iter().map(AnyValue::Int).collect(),
            Array::F64(items) => items.into_iter().map(AnyValue::Double).collect(),
            Array::String(items) => items.into_iter().map(AnyValue::String).collect(),
            _ => Vec::new(),
        })),
        _ => AnyValue::String(value.as_str().into_owned().into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::bindings::wasi::otel::types;

    #[test]
    fn a_record_keeps_its_ids_severity_body_and_json_attributes() {
        let log = guest_log(logs::LogRecord {
            timestamp: None,
            observed_timestamp: None,
            severity_text: Some("whatever the guest says".into()),
            severity_number: Some(9),
            body: Some(r#""request""#.into()),
            attributes: Some(vec![
                types::KeyValue {
                    key: "http.response.status_code".into(),
                    value: "200".into(),
                },
                types::KeyValue {
                    key: "broken".into(),
                    value: "not json".into(),
                },
            ]),
            event_name: None,
            resource: None,
            instrumentation_scope: None,
            trace_id: Some("4bf92f3577b34da6a3ce929d0e0e4736".into()),
            span_id: Some("00f067aa0ba902b7".into()),
            trace_flags: Some(tracing::TraceFlags::SAMPLED),
        });
        assert_eq!(log.severity, Some(9));
        assert_eq!(log.body, Some(AnyValue::String("request".into())));
        assert_eq!(
            log.attributes,
            vec![(Key::from("http.response.status_code"), AnyValue::Int(200))]
        );
        let (trace, span, sampled) = log.trace.unwrap();
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!(sampled);
    }

    #[test]
    fn invalid_ids_leave_the_record_without_trace_context() {
        let mut record = logs::LogRecord {
            timestamp: None,
            observed_timestamp: None,
            severity_text: None,
            severity_number: None,
            body: None,
            attributes: None,
            event_name: None,
            resource: None,
            instrumentation_scope: None,
            trace_id: Some("zz".into()),
            span_id: Some("00f067aa0ba902b7".into()),
            trace_flags: None,
        };
        assert!(guest_log(record.clone()).trace.is_none());
        record.trace_id = Some("00000000000000000000000000000000".into());
        assert!(guest_log(record).trace.is_none());
    }
}
