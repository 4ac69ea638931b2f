//! Spans and log records written straight into OTLP protobuf bytes (the bodies of
//! `http/protobuf` exports, [`crate::otel_transport`]), in one pass over the SDK's
//! `SpanData` and `SdkLogRecord`, with the field numbers of the OTLP definitions
//! (`opentelemetry/proto/{trace,logs,common,resource}/v1/*.proto`, as generated in
//! `opentelemetry-proto` 0.33.1, `src/proto/tonic/`).
//!
//! Why not the exporter crate's own encoding: cost, measured. `opentelemetry-otlp`
//! converts each batch into `opentelemetry-proto`'s message structs (a copy of every
//! string, a string attribute formatted through `Display`, a `Vec` per id) and prost then
//! walks the nested messages again for their lengths before writing them. Counted by
//! callgrind in `otel::export_cost` (docs/measurements/observability-cost.md; inclusive instructions per
//! request, export on, 2026-12-06), the trace batch processor's thread cost 36.6 k
//! (the crate's conversion 14.4 k, prost's encoding 18.6 k with the log thread's; a
//! string attribute's `Display` 5.6 k) and the log processor's 17.2 k. With this
//! module: 9.1 k and 3.5 k (the encoding itself 5.4 k and 2.2 k), and the whole test
//! process 682.5 k -> 640.2 k instructions per request, against 526.8 k with export off.
//! Here nothing is copied but into the body: each nested message reserves one byte for its
//! length, and the rare one of 128 bytes or more moves its bytes along to make room for
//! a longer length, so the output is prost's canonical encoding, byte for byte (the unit
//! tests compare it with the crate's conversion encoded by prost). gRPC exports keep the
//! crate's exporter, whose tonic client needs the message structs.
//!
//! What the crate writes is what is written here: fields in tag order, default scalars
//! (0, empty strings and ids) left out, the one `ResourceSpans` / `ResourceLogs` of the
//! batch with the exporter's resource, spans grouped by instrumentation scope in order of
//! first appearance, log records by scope (the record's target, else the scope's name,
//! with the scope's version, schema URL and attributes); a span's `flags` carry its trace
//! flags and whether its parent is remote, a link's those of the linked context.

use opentelemetry::logs::{AnyValue, Severity};
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::logs::{LogBatch, SdkLogRecord};
use opentelemetry_sdk::trace::SpanData;
use std::time::{SystemTime, UNIX_EPOCH};

/// Protobuf wire types.
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

/// `SpanFlags` of the OTLP definitions: whether the parent's remoteness is known, and
/// whether it is remote.
const CONTEXT_HAS_IS_REMOTE: u32 = 0x100;
const CONTEXT_IS_REMOTE: u32 = 0x200;

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn key(out: &mut Vec<u8>, field: u64, wire: u64) {
    varint(out, (field << 3) | wire);
}

/// A length-delimited field, written even when empty (a oneof member, or bytes known
/// not to be empty).
fn bytes(out: &mut Vec<u8>, field: u64, value: &[u8]) {
    key(out, field, LEN);
    varint(out, value.len() as u64);
    out.extend_from_slice(value);
}

/// A string field, left out when empty (proto3's default).
fn string(out: &mut Vec<u8>, field: u64, value: &str) {
    if !value.is_empty() {
        bytes(out, field, value.as_bytes());
    }
}

/// A `uint32`, `int32` enum or `int64` field (negative numbers in ten bytes, as
/// protobuf's `int64`), left out when 0.
fn number(out: &mut Vec<u8>, field: u64, value: u64) {
    if value != 0 {
        key(out, field, VARINT);
        varint(out, value);
    }
}

fn fixed64(out: &mut Vec<u8>, field: u64, value: u64) {
    if value != 0 {
        key(out, field, FIXED64);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

fn fixed32(out: &mut Vec<u8>, field: u64, value: u32) {
    if value != 0 {
        key(out, field, FIXED32);
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// A nested message in `field`: what `body` writes, preceded by its length. One byte is
/// reserved for the length, enough for most of the messages here (attributes, values,
/// scopes); see [`sized_message`].
fn message(out: &mut Vec<u8>, field: u64, body: impl FnOnce(&mut Vec<u8>)) {
    sized_message(out, field, 1, body);
}

/// [`message`] with `reserved` bytes kept for the length's varint (one per seven bits of
/// it): a message its length does not fit moves along by the bytes it needs beyond them,
/// and one that needs fewer moves back. Moving back copies forwards; moving along copies
/// backwards, which musl's `memmove` does a byte at a time (`std; rep movsb`): a span
/// (hundreds of bytes) and the batch around it (up to hundreds of kilobytes) reserve what
/// they usually need, so that they move back by a byte or two if at all.
fn sized_message(out: &mut Vec<u8>, field: u64, reserved: usize, body: impl FnOnce(&mut Vec<u8>)) {
    key(out, field, LEN);
    let at = out.len();
    out.resize(at + reserved, 0);
    body(out);
    let len = out.len() - at - reserved;
    if reserved == 1 && len < 0x80 {
        out[at] = len as u8;
        return;
    }
    // The length's varint, written on the stack (a span is a message this long, and a
    // `Vec` here was an allocation for each).
    let (mut prefix, mut n, mut rest) = ([0u8; 10], 0, len as u64);
    while rest >= 0x80 {
        prefix[n] = rest as u8 | 0x80;
        rest >>= 7;
        n += 1;
    }
    prefix[n] = rest as u8;
    n += 1;
    if n != reserved {
        if n > reserved {
            out.resize(out.len() + n - reserved, 0);
        }
        out.copy_within(at + reserved..at + reserved + len, at + n);
        out.truncate(at + n + len);
    }
    out[at..at + n].copy_from_slice(&prefix[..n]);
}

fn nanos(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos() as u64)
}

/// The body of an `AnyValue` holding a span attribute's value.
fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Bool(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::I64(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        Value::F64(f) => {
            key(out, 4, FIXED64);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        Value::String(s) => bytes(out, 1, s.as_str().as_bytes()),
        Value::Array(array) => message(out, 5, |out| match array {
            Array::Bool(values) => {
                for b in values {
                    message(out, 1, |out| value(out, &Value::Bool(*b)));
                }
            }
            Array::I64(values) => {
                for i in values {
                    message(out, 1, |out| value(out, &Value::I64(*i)));
                }
            }
            Array::F64(values) => {
                for f in values {
                    message(out, 1, |out| value(out, &Value::F64(*f)));
                }
            }
            Array::String(values) => {
                for s in values {
                    message(out, 1, |out| string_value(out, s));
                }
            }
            // A kind of array added to the API later: written as an empty array (the
            // crate's conversion panics on one).
            _ => {}
        }),
        // Likewise a kind of value added later: an `AnyValue` without a value.
        _ => {}
    }
}

fn string_value(out: &mut Vec<u8>, s: &StringValue) {
    bytes(out, 1, s.as_str().as_bytes());
}

/// A `KeyValue` message in `field`.
fn attribute(out: &mut Vec<u8>, field: u64, attribute: &KeyValue) {
    if short_attribute(out, field, attribute) {
        return;
    }
    message(out, field, |out| {
        string(out, 1, attribute.key.as_str());
        message(out, 2, |out| value(out, &attribute.value));
    });
}

/// [`attribute`] for the usual one, a string or integer whose message is shorter than
/// 128 bytes, with every length known before it is written: the same bytes, without the
/// nested messages' reserved lengths and closures (most of a span's encoding is its
/// attributes). `false`, with nothing written, for any other.
fn short_attribute(out: &mut Vec<u8>, field: u64, attribute: &KeyValue) -> bool {
    let key = attribute.key.as_str().as_bytes();
    // The `AnyValue`'s one field: a string's key, length and bytes, or an integer's key
    // and varint (ten bytes for a negative one).
    let mut number = [0u8; 10];
    let (tag, length, value): (u8, Option<u8>, &[u8]) = match &attribute.value {
        Value::String(text) if text.as_str().len() < 0x80 => {
            let text = text.as_str().as_bytes();
            ((1 << 3) | LEN as u8, Some(text.len() as u8), text)
        }
        Value::I64(i) => {
            let (mut rest, mut n) = (*i as u64, 0);
            while rest >= 0x80 {
                number[n] = rest as u8 | 0x80;
                rest >>= 7;
                n += 1;
            }
            number[n] = rest as u8;
            ((3 << 3) | VARINT as u8, None, &number[..n + 1])
        }
        _ => return false,
    };
    let any = 1 + usize::from(length.is_some()) + value.len();
    let body = if key.is_empty() { 0 } else { 2 + key.len() } + 2 + any;
    if field >= 16 || key.len() >= 0x80 || body >= 0x80 {
        return false;
    }
    out.reserve(2 + body);
    out.extend_from_slice(&[((field << 3) | LEN) as u8, body as u8]);
    if !key.is_empty() {
        out.extend_from_slice(&[(1 << 3) | LEN as u8, key.len() as u8]);
        out.extend_from_slice(key);
    }
    out.extend_from_slice(&[(2 << 3) | LEN as u8, any as u8, tag]);
    if let Some(length) = length {
        out.push(length);
    }
    out.extend_from_slice(value);
    true
}

/// The body of an `AnyValue` holding a log record's body or attribute.
fn log_value(out: &mut Vec<u8>, value: &AnyValue) {
    match value {
        AnyValue::Double(f) => {
            key(out, 4, FIXED64);
            out.extend_from_slice(&f.to_bits().to_le_bytes());
        }
        AnyValue::Int(i) => {
            key(out, 3, VARINT);
            varint(out, *i as u64);
        }
        AnyValue::String(s) => string_value(out, s),
        AnyValue::Boolean(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        AnyValue::ListAny(values) => message(out, 5, |out| {
            for v in values.iter() {
                message(out, 1, |out| log_value(out, v));
            }
        }),
        AnyValue::Map(map) => message(out, 6, |out| {
            for (k, v) in map.iter() {
                message(out, 1, |out| {
                    string(out, 1, k.as_str());
                    message(out, 2, |out| log_value(out, v));
                });
            }
        }),
        AnyValue::Bytes(b) => bytes(out, 7, b),
        // A kind of value added to the API later: an `AnyValue` without a value.
        _ => {}
    }
}

/// The `Resource` message's body and schema URL of an exporter's resource, written
/// once when the exporter is given its resource and copied into every export.
#[derive(Debug, Default, Clone)]
pub(crate) struct EncodedResource {
    body: Vec<u8>,
    schema_url: String,
}

impl EncodedResource {
    pub(crate) fn new(resource: &Resource) -> EncodedResource {
        let mut body = Vec::new();
        for (k, v) in resource.iter() {
            message(&mut body, 1, |out| {
                string(out, 1, k.as_str());
                message(out, 2, |out| value(out, v));
            });
        }
        EncodedResource {
            body,
            schema_url: resource.schema_url().unwrap_or_default().to_string(),
        }
    }
}

/// An `InstrumentationScope` message's body, named `name`.
fn scope(out: &mut Vec<u8>, name: &str, scope: &InstrumentationScope) {
    string(out, 1, name);
    string(out, 2, scope.version().unwrap_or_default());
    for kv in scope.attributes() {
        attribute(out, 3, kv);
    }
}

/// An `ExportTraceServiceRequest` of `batch` from `resource`.
pub(crate) fn traces(resource: &EncodedResource, batch: &[SpanData]) -> Vec<u8> {
    // Scopes in order of first appearance, each with its spans' indices. A batch has few
    // scopes (the host's and a handful of guests'), so a linear search is enough.
    let mut scopes: Vec<(&InstrumentationScope, Vec<usize>)> = Vec::new();
    for (i, span) in batch.iter().enumerate() {
        match scopes
            .iter_mut()
            .find(|(scope, _)| **scope == span.instrumentation_scope)
        {
            Some((_, spans)) => spans.push(i),
            None => scopes.push((&span.instrumentation_scope, vec![i])),
        }
    }
    let mut out = Vec::with_capacity(64 + resource.body.len() + 512 * batch.len());
    // Lengths up to 2 MiB for the batch and its scopes, 16 KiB for a span: see
    // `sized_message`.
    sized_message(&mut out, 1, 3, |out| {
        message(out, 1, |out| out.extend_from_slice(&resource.body));
        for (instrumentation, spans) in &scopes {
            sized_message(out, 2, 3, |out| {
                message(out, 1, |out| {
                    scope(out, instrumentation.name(), instrumentation)
                });
                for &i in spans {
                    sized_message(out, 2, 2, |out| span(out, &batch[i]));
                }
                string(out, 3, instrumentation.schema_url().unwrap_or_default());
            });
        }
        string(out, 3, &resource.schema_url);
    });
    out
}

/// A `Span` message's body.
fn span(out: &mut Vec<u8>, span: &SpanData) {
    let context = &span.span_context;
    bytes(out, 1, &context.trace_id().to_bytes());
    bytes(out, 2, &context.span_id().to_bytes());
    string(out, 3, &context.trace_state().header());
    if span.parent_span_id != SpanId::INVALID {
        bytes(out, 4, &span.parent_span_id.to_bytes());
    }
    string(out, 5, &span.name);
    number(out, 6, span_kind(&span.span_kind));
    fixed64(out, 7, nanos(span.start_time));
    fixed64(out, 8, nanos(span.end_time));
    for kv in &span.attributes {
        attribute(out, 9, kv);
    }
    number(out, 10, u64::from(span.dropped_attributes_count));
    for event in span.events.iter() {
        message(out, 11, |out| {
            fixed64(out, 1, nanos(event.timestamp));
            string(out, 2, &event.name);
            for kv in &event.attributes {
                attribute(out, 3, kv);
            }
            number(out, 4, u64::from(event.dropped_attributes_count));
        });
    }
    number(out, 12, u64::from(span.events.dropped_count));
    for link in span.links.iter() {
        let linked = &link.span_context;
        message(out, 13, |out| {
            bytes(out, 1, &linked.trace_id().to_bytes());
            bytes(out, 2, &linked.span_id().to_bytes());
            string(out, 3, &linked.trace_state().header());
            for kv in &link.attributes {
                attribute(out, 4, kv);
            }
            number(out, 5, u64::from(link.dropped_attributes_count));
            fixed32(
                out,
                6,
                span_flags(linked.is_remote(), linked.trace_flags().to_u8()),
            );
        });
    }
    number(out, 14, u64::from(span.links.dropped_count));
    message(out, 15, |out| {
        let code = match &span.status {
            Status::Unset => 0,
            Status::Ok => 1,
            Status::Error { description } => {
                string(out, 2, description);
                2
            }
        };
        number(out, 3, code);
    });
    fixed32(
        out,
        16,
        span_flags(span.parent_span_is_remote, context.trace_flags().to_u8()),
    );
}

fn span_kind(kind: &SpanKind) -> u64 {
    match kind {
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

fn span_flags(parent_is_remote: bool, trace_flags: u8) -> u32 {
    let remote = if parent_is_remote {
        CONTEXT_IS_REMOTE
    } else {
        0
    };
    u32::from(trace_flags) | CONTEXT_HAS_IS_REMOTE | remote
}

/// An `ExportLogsServiceRequest` of `batch` from `resource`.
pub(crate) fn logs(resource: &EncodedResource, batch: &LogBatch<'_>) -> Vec<u8> {
    // Scopes as the crate groups them: the record's target (else the scope's name) with
    // the scope's version, schema URL and attributes; in order of first appearance.
    type Group<'a> = (&'a str, &'a InstrumentationScope, Vec<&'a SdkLogRecord>);
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut records = 0;
    for (record, instrumentation) in batch.iter() {
        records += 1;
        let name = record
            .target()
            .map_or(instrumentation.name(), |target| target.as_ref());
        let same = |(n, s, _): &&mut Group<'_>| {
            *n == name
                && s.version() == instrumentation.version()
                && s.schema_url() == instrumentation.schema_url()
                && s.attributes().eq(instrumentation.attributes())
        };
        match groups.iter_mut().find(same) {
            Some((_, _, group)) => group.push(record),
            None => groups.push((name, instrumentation, vec![record])),
        }
    }
    let mut out = Vec::with_capacity(64 + resource.body.len() + 512 * records);
    // As for spans: lengths up to 2 MiB for the batch and its scopes, 16 KiB for a record.
    sized_message(&mut out, 1, 3, |out| {
        message(out, 1, |out| out.extend_from_slice(&resource.body));
        for (name, instrumentation, records) in &groups {
            sized_message(out, 2, 3, |out| {
                message(out, 1, |out| scope(out, name, instrumentation));
                for record in records {
                    sized_message(out, 2, 2, |out| log_record(out, record));
                }
                string(out, 3, instrumentation.schema_url().unwrap_or_default());
            });
        }
        string(out, 3, &resource.schema_url);
    });
    out
}

/// A `LogRecord` message's body.
fn log_record(out: &mut Vec<u8>, record: &SdkLogRecord) {
    fixed64(out, 1, record.timestamp().map_or(0, nanos));
    number(out, 2, record.severity_number().map_or(0, severity_number));
    string(out, 3, record.severity_text().unwrap_or_default());
    if let Some(body) = record.body() {
        message(out, 5, |out| log_value(out, body));
    }
    for (k, v) in record.attributes_iter() {
        message(out, 6, |out| {
            string(out, 1, k.as_str());
            message(out, 2, |out| log_value(out, v));
        });
    }
    let context = record.trace_context();
    fixed32(
        out,
        8,
        context
            .and_then(|context| context.trace_flags)
            .map_or(0, |flags| u32::from(flags.to_u8())),
    );
    if let Some(context) = context {
        bytes(out, 9, &context.trace_id.to_bytes());
        bytes(out, 10, &context.span_id.to_bytes());
    }
    fixed64(out, 11, record.observed_timestamp().map_or(0, nanos));
    string(out, 12, record.event_name().unwrap_or_default());
}

/// OTLP's `SeverityNumber`, which numbers the API's severities the same way.
fn severity_number(severity: Severity) -> u64 {
    severity as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::logs::{LogRecord as _, Logger as _, LoggerProvider as _};
    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceId, TraceState};
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
    use opentelemetry_proto::transform::logs::tonic::group_logs_by_resource_and_scope;
    use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use prost::Message as _;
    use std::borrow::Cow;
    use std::collections::HashMap;
    use std::time::Duration;

    #[test]
    fn a_message_is_its_key_its_length_and_its_body_whatever_it_reserved() {
        for len in [0, 1, 127, 128, 300, 16_383, 16_384, (1 << 21) - 1, 1 << 21] {
            let body: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut expected = vec![0xAA];
            key(&mut expected, 2, LEN);
            prost::encoding::encode_varint(len as u64, &mut expected);
            expected.extend_from_slice(&body);
            for reserved in 1..=4 {
                let mut out = vec![0xAA];
                sized_message(&mut out, 2, reserved, |out| out.extend_from_slice(&body));
                assert!(out == expected, "{len} bytes, {reserved} reserved");
            }
        }
    }

    fn resource() -> Resource {
        Resource::builder_empty()
            .with_schema_url(
                [
                    KeyValue::new("service.name", "chatgate"),
                    KeyValue::new("service.version", "0.1.0"),
                    KeyValue::new("deployment.environment", "test"),
                    KeyValue::new("host.cores", 2),
                ],
                "https://opentelemetry.io/schemas/1.30.0",
            )
            .build()
    }

    fn time(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn context(trace: u128, span: u64, flags: TraceFlags, remote: bool) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            flags,
            remote,
            TraceState::default(),
        )
    }

    /// Spans with every kind of field and value, in two scopes interleaved.
    fn spans() -> Vec<SpanData> {
        let host = InstrumentationScope::builder("chatgate").build();
        let guest = InstrumentationScope::builder("telemetry")
            .with_version("1.2.3")
            .with_schema_url("https://example.com/schema")
            .with_attributes([KeyValue::new("component", "telemetry")])
            .build();
        let every_value = vec![
            KeyValue::new("s", "text"),
            KeyValue::new("empty", ""),
            KeyValue::new("owned", String::from("ünïcödé ✓")),
            KeyValue::new("i", -42),
            KeyValue::new("", "no key"),
            KeyValue::new("max", i64::MAX),
            KeyValue::new("min", i64::MIN),
            KeyValue::new("k".repeat(127), "long key"),
            KeyValue::new("zero", 0),
            KeyValue::new("f", 1.5),
            KeyValue::new("b", true),
            KeyValue::new("no", false),
            KeyValue::new("long", "x".repeat(300)),
            KeyValue::new("bools", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("ints", Value::Array(Array::I64(vec![1, -1, 1 << 40]))),
            KeyValue::new("floats", Value::Array(Array::F64(vec![0.0, -2.25]))),
            KeyValue::new(
                "strings",
                Value::Array(Array::String(vec!["a".into(), "".into()])),
            ),
        ];
        let server = SpanData {
            span_context: context(
                0x4bf92f3577b34da6a3ce929d0e0e4736,
                0x00f067aa0ba902b7,
                TraceFlags::SAMPLED,
                false,
            ),
            parent_span_id: SpanId::from(0x1111),
            parent_span_is_remote: true,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("GET /hello"),
            start_time: time(1_765_000_000, 123_456_789),
            end_time: time(1_765_000_000, 987_654_321),
            attributes: every_value.clone(),
            dropped_attributes_count: 2,
            events: {
                let mut events = SpanEvents::default();
                events.events.push(Event::new(
                    "exception",
                    time(1_765_000_000, 500),
                    vec![KeyValue::new("exception.message", "boom")],
                    1,
                ));
                events.dropped_count = 3;
                events
            },
            links: {
                let mut links = SpanLinks::default();
                links.links.push(Link::new(
                    SpanContext::new(
                        TraceId::from(7),
                        SpanId::from(8),
                        TraceFlags::default(),
                        true,
                        TraceState::from_key_value([("vendor", "v1")]).unwrap(),
                    ),
                    vec![KeyValue::new("link.kind", "follows")],
                    4,
                ));
                links.dropped_count = 5;
                links
            },
            status: Status::error("failed upstream"),
            instrumentation_scope: host.clone(),
        };
        let mut big = server.clone();
        big.attributes = (0..200)
            .map(|i| KeyValue::new(format!("attribute.{i}"), "v".repeat(i)))
            .collect();
        big.status = Status::Ok;
        let stage = SpanData {
            span_context: SpanContext::new(
                TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
                SpanId::from(u64::MAX),
                TraceFlags::default(),
                false,
                TraceState::from_key_value([("k", "v"), ("x", "y")]).unwrap(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Internal,
            name: Cow::Owned(String::new()),
            start_time: UNIX_EPOCH,
            end_time: time(1, 0),
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: SpanEvents::default(),
            links: SpanLinks::default(),
            status: Status::Unset,
            instrumentation_scope: guest.clone(),
        };
        let mut client = stage.clone();
        client.span_kind = SpanKind::Client;
        client.attributes = every_value;
        let mut producer = stage.clone();
        producer.span_kind = SpanKind::Producer;
        producer.instrumentation_scope = host;
        let mut consumer = stage.clone();
        consumer.span_kind = SpanKind::Consumer;
        vec![server, stage, big, client, producer, consumer]
    }

    #[test]
    fn spans_are_the_bytes_the_exporter_crate_would_send() {
        let resource = resource();
        let ours = traces(&EncodedResource::new(&resource), &spans());
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        // Decoded with the OTLP definitions, field by field; then byte for byte.
        let decoded = ExportTraceServiceRequest::decode(ours.as_slice()).unwrap();
        assert_eq!(decoded, theirs);
        assert_eq!(decoded.resource_spans[0].scope_spans.len(), 2);
        assert_eq!(ours, theirs.encode_to_vec());
        // An empty batch, as a flush may export.
        let empty = traces(&EncodedResource::new(&resource), &[]);
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                Vec::new(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(empty, theirs.encode_to_vec());
    }

    #[test]
    fn a_resource_without_attributes_or_schema() {
        let resource = Resource::builder_empty().build();
        let ours = traces(&EncodedResource::new(&resource), &spans()[..1]);
        let theirs = ExportTraceServiceRequest {
            resource_spans: group_spans_by_resource_and_scope(
                spans()[..1].to_vec(),
                &ResourceAttributesWithSchema::from(&resource),
            ),
        };
        assert_eq!(ours, theirs.encode_to_vec());
    }

    #[test]
    fn log_records_are_the_bytes_the_exporter_crate_would_send() {
        use opentelemetry_sdk::logs::SdkLoggerProvider;
        let provider = SdkLoggerProvider::builder().build();
        let telemetry = InstrumentationScope::builder("telemetry")
            .with_version("0.1.0")
            .build();
        let other = InstrumentationScope::builder("auth")
            .with_schema_url("https://example.com/s")
            .with_attributes([KeyValue::new("a", 1)])
            .build();
        let logger = provider.logger_with_scope(telemetry.clone());
        let mut full = logger.create_log_record();
        full.set_timestamp(time(1_765_000_000, 1));
        full.set_observed_timestamp(time(1_765_000_000, 2));
        full.set_severity_number(Severity::Warn);
        full.set_severity_text("WARN");
        full.set_event_name("request");
        full.set_body(AnyValue::String("GET /hello 200".into()));
        let map: HashMap<opentelemetry::Key, AnyValue> = [
            ("k".into(), AnyValue::Int(1)),
            (
                "l".into(),
                AnyValue::ListAny(Box::new(vec![AnyValue::Boolean(true)])),
            ),
        ]
        .into_iter()
        .collect();
        full.add_attributes([
            ("http.request.method", AnyValue::String("GET".into())),
            ("http.response.status_code", AnyValue::Int(200)),
            ("negative", AnyValue::Int(-7)),
            ("chatgate.duration_ms", AnyValue::Double(0.25)),
            ("flag", AnyValue::Boolean(false)),
            ("bytes", AnyValue::Bytes(Box::new(vec![0, 1, 255]))),
            ("empty bytes", AnyValue::Bytes(Box::default())),
            ("empty", AnyValue::String("".into())),
            (
                "list",
                AnyValue::ListAny(Box::new(vec![
                    AnyValue::Int(1),
                    AnyValue::String("two".into()),
                ])),
            ),
            ("map", AnyValue::Map(Box::new(map))),
            ("long", AnyValue::String("y".repeat(200).into())),
        ]);
        full.set_trace_context(
            TraceId::from(0x4bf92f3577b34da6a3ce929d0e0e4736),
            SpanId::from(0x00f067aa0ba902b7),
            Some(TraceFlags::SAMPLED),
        );
        let mut bare = logger.create_log_record();
        bare.set_observed_timestamp(time(5, 0));
        let mut unsampled = logger.create_log_record();
        unsampled.set_observed_timestamp(time(6, 0));
        unsampled.set_severity_number(Severity::Fatal4);
        unsampled.set_trace_context(TraceId::from(1), SpanId::from(2), None);
        let mut targeted = logger.create_log_record();
        targeted.set_observed_timestamp(time(7, 0));
        targeted.set_target("chatgate::otel");
        let resource = resource();
        let encoded = EncodedResource::new(&resource);
        let crate_resource = ResourceAttributesWithSchema::from(&resource);
        // One scope: the crate's grouping is deterministic, so the bytes can be compared.
        let one_scope = [
            (&full, &telemetry),
            (&bare, &telemetry),
            (&unsampled, &telemetry),
        ];
        let batch = LogBatch::new(&one_scope);
        let ours = logs(&encoded, &batch);
        let theirs = ExportLogsServiceRequest {
            resource_logs: group_logs_by_resource_and_scope(&batch, &crate_resource),
        };
        assert_eq!(
            ExportLogsServiceRequest::decode(ours.as_slice()).unwrap(),
            theirs
        );
        assert_eq!(ours, theirs.encode_to_vec());
        // Several scopes (a target is a scope of its own): the crate orders them as a
        // HashMap does, so the decoded requests are compared with scopes sorted.
        let several = [
            (&full, &telemetry),
            (&targeted, &telemetry),
            (&bare, &other),
            (&unsampled, &telemetry),
        ];
        let batch = LogBatch::new(&several);
        let sorted = |mut request: ExportLogsServiceRequest| {
            for resource in &mut request.resource_logs {
                resource.scope_logs.sort_by(|a, b| {
                    a.scope
                        .as_ref()
                        .unwrap()
                        .name
                        .cmp(&b.scope.as_ref().unwrap().name)
                });
            }
            request
        };
        let ours = ExportLogsServiceRequest::decode(logs(&encoded, &batch).as_slice()).unwrap();
        assert_eq!(ours.resource_logs[0].scope_logs.len(), 3);
        assert_eq!(
            sorted(ours),
            sorted(ExportLogsServiceRequest {
                resource_logs: group_logs_by_resource_and_scope(&batch, &crate_resource),
            })
        );
    }

    #[test]
    fn lengths_of_every_size_are_canonical() {
        // Around each boundary of a length's varint: 1, 2 and 3 bytes.
        for len in [0, 1, 127, 128, 129, 16_383, 16_384, 70_000] {
            let mut ours = Vec::new();
            message(&mut ours, 1, |out| {
                out.extend(std::iter::repeat_n(b'a', len))
            });
            let mut theirs = Vec::new();
            prost::encoding::bytes::encode(1, &vec![b'a'; len], &mut theirs);
            assert_eq!(ours, theirs, "{len}");
        }
    }
}
