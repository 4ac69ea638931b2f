//! `wasi:otel/tracing@0.2.0-rc.2`: spans the guests make, exported with the host's own.
//!
//! What Spin 4 does with this interface (read in Spin's source, commit 94a8fc8a,
//! `crates/factor-otel/src/host.rs` and `crates/world/src/wasi_otel/`; not run):
//! `on-end` hands the guest's span to the batch processor of the host's spans, with
//! the trace id, span id, parent and instrumentation scope the guest gave; `on-start`
//! only records the span; nothing is exported when OTel export is off. chatgate does the
//! same, with three differences, all for guests that misbehave:
//!
//! - a span whose ids are not valid hex, or whose attribute is not the JSON value the
//!   interface specifies, is dropped (ids) or loses that attribute (counted as dropped);
//!   Spin panics the host thread on a bad attribute;
//! - a span ended without having been started is exported all the same; Spin traps the
//!   guest ("Trying to end a span that was not started");
//! - `outer-span-context` returns an invalid (all-zero) context: one instance may serve
//!   several requests at once, so the store does not know "the" request. Components
//!   find their parent in the request's `traceparent` header instead, which the host
//!   sets to its SERVER span.
//!
//! Attributes, events and links beyond [`MAX_PER_SPAN`] each are dropped and counted,
//! as the SDK's span limits do for the host's own spans.

use super::bindings::wasi::clocks::wall_clock::Datetime;
use super::bindings::wasi::otel::{tracing, types};
use super::state::SpinView;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue, Value};
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use std::borrow::Cow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Attributes, events and links kept per span (each): the SDK's default span limit.
pub const MAX_PER_SPAN: usize = 128;

impl types::Host for SpinView<'_> {}

impl tracing::Host for SpinView<'_> {
    fn on_start(&mut self, _context: tracing::SpanContext) -> wasmtime::Result<()> {
        Ok(())
    }

    fn on_end(&mut self, span: tracing::SpanData) -> wasmtime::Result<()> {
        if let Some(sink) = &self.grants.span_sink
            && sink.exports_spans()
            && let Some(span) = span_data(span)
        {
            sink.export(span);
        }
        Ok(())
    }

    fn outer_span_context(&mut self) -> wasmtime::Result<tracing::SpanContext> {
        Ok(tracing::SpanContext {
            trace_id: TraceId::INVALID.to_string(),
            span_id: SpanId::INVALID.to_string(),
            trace_flags: tracing::TraceFlags::empty(),
            is_remote: false,
            trace_state: Vec::new(),
        })
    }
}

/// The SDK's form of a guest's finished span; `None` when its ids are not valid or it is
/// not sampled (the batch processor would drop it).
pub fn span_data(span: tracing::SpanData) -> Option<SpanData> {
    let context = span_context(span.span_context)?;
    if !context.is_sampled() {
        return None;
    }
    let parent_span_id = if span.parent_span_id.is_empty() {
        SpanId::INVALID
    } else {
        span_id(&span.parent_span_id)?
    };
    let (attributes, dropped_attributes) = key_values(span.attributes);
    let mut events = SpanEvents::default();
    for event in span.events {
        if events.events.len() == MAX_PER_SPAN {
            events.dropped_count += 1;
            continue;
        }
        let (attributes, dropped) = key_values(event.attributes);
        events.events.push(opentelemetry::trace::Event::new(
            event.name,
            system_time(event.time),
            attributes,
            dropped,
        ));
    }
    events.dropped_count = events.dropped_count.saturating_add(span.dropped_events);
    let mut links = SpanLinks::default();
    for link in span.links {
        let Some(context) = span_context(link.span_context) else {
            links.dropped_count += 1;
            continue;
        };
        if links.links.len() == MAX_PER_SPAN {
            links.dropped_count += 1;
            continue;
        }
        let (attributes, dropped) = key_values(link.attributes);
        links.links.push(opentelemetry::trace::Link::new(
            context, attributes, dropped,
        ));
    }
    links.dropped_count = links.dropped_count.saturating_add(span.dropped_links);
    Some(SpanData {
        span_context: context,
        parent_span_id,
        // A guest's parent is a span of the same process (the host's or another
        // component's) only when the guest says so; the interface does not say.
        parent_span_is_remote: false,
        span_kind: match span.span_kind {
            tracing::SpanKind::Client => SpanKind::Client,
            tracing::SpanKind::Server => SpanKind::Server,
            tracing::SpanKind::Producer => SpanKind::Producer,
            tracing::SpanKind::Consumer => SpanKind::Consumer,
            tracing::SpanKind::Internal => SpanKind::Internal,
        },
        name: Cow::Owned(span.name),
        start_time: system_time(span.start_time),
        end_time: system_time(span.end_time),
        attributes,
        dropped_attributes_count: dropped_attributes.saturating_add(span.dropped_attributes),
        events,
        links,
        status: match span.status {
            tracing::Status::Unset => Status::Unset,
            tracing::Status::Ok => Status::Ok,
            tracing::Status::Error(message) => Status::error(message),
        },
        instrumentation_scope: scope(span.instrumentation_scope),
    })
}

fn span_context(context: tracing::SpanContext) -> Option<SpanContext> {
    let trace_id = trace_id(&context.trace_id)?;
    let span_id = span_id(&context.span_id)?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = if context.trace_flags.contains(tracing::TraceFlags::SAMPLED) {
        TraceFlags::SAMPLED
    } else {
        TraceFlags::default()
    };
    // The interface: invalid keys or values make the whole list empty. Guests send none
    // (chatgate's never do), which needs no walk.
    let state = if context.trace_state.is_empty() {
        TraceState::NONE
    } else {
        TraceState::from_key_value(context.trace_state).unwrap_or_default()
    };
    Some(SpanContext::new(
        trace_id,
        span_id,
        flags,
        context.is_remote,
        state,
    ))
}

/// The value of 32 lowercase hex digits (what guests write), else what
/// `TraceId::from_hex` reads: that parses through `u128::from_str_radix`, 1.2 k
/// instructions per traced request for the two ids it read (callgrind, `otel::export_cost`).
pub(super) fn trace_id(hex: &str) -> Option<TraceId> {
    match lower_hex::<16>(hex) {
        Some(bytes) => Some(TraceId::from_bytes(bytes)),
        None => TraceId::from_hex(hex).ok(),
    }
}

/// [`trace_id`] for a span id (16 digits).
pub(super) fn span_id(hex: &str) -> Option<SpanId> {
    match lower_hex::<8>(hex) {
        Some(bytes) => Some(SpanId::from_bytes(bytes)),
        None => SpanId::from_hex(hex).ok(),
    }
}

/// `N` bytes written as exactly `2 * N` lowercase hex digits; `None` for anything else.
fn lower_hex<const N: usize>(hex: &str) -> Option<[u8; N]> {
    let digits = hex.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let digit = |d: u8| match d {
        b'0'..=b'9' => Some(d - b'0'),
        b'a'..=b'f' => Some(d - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

fn scope(scope: types::InstrumentationScope) -> InstrumentationScope {
    let (attributes, _) = key_values(scope.attributes);
    let mut builder = InstrumentationScope::builder(scope.name).with_attributes(attributes);
    if let Some(version) = scope.version {
        builder = builder.with_version(version);
    }
    if let Some(url) = scope.schema_url {
        builder = builder.with_schema_url(url);
    }
    builder.build()
}

pub(super) fn system_time(time: Datetime) -> SystemTime {
    UNIX_EPOCH + Duration::new(time.seconds, time.nanoseconds.min(999_999_999))
}

/// The attributes whose value is the JSON the interface specifies, at most
/// [`MAX_PER_SPAN`], and how many were dropped.
fn key_values(list: Vec<types::KeyValue>) -> (Vec<KeyValue>, u32) {
    let mut kept = Vec::with_capacity(list.len().min(MAX_PER_SPAN));
    let mut dropped = 0u32;
    for kv in list {
        match value(&kv.value) {
            Some(v) if kept.len() < MAX_PER_SPAN => kept.push(KeyValue::new(kv.key, v)),
            _ => dropped = dropped.saturating_add(1),
        }
    }
    (kept, dropped)
}

/// An attribute value: a JSON string, boolean, number, or array of one of those kinds
/// (`wasi:otel`'s `types.value`, as Spin reads it). Integers beyond `i64` and mixed or
/// nested arrays are refused.
pub(super) fn value(json: &str) -> Option<Value> {
    use serde_json::Value as Json;
    // Most values are strings that need no escape or small integers: read directly, with
    // what serde_json reads for them (a copy of the string, the integer), instead of
    // through a `serde_json::Value`.
    if let Some(plain) = plain_string(json) {
        return Some(Value::from(plain.to_owned()));
    }
    if let Some(i) = small_integer(json) {
        return Some(Value::I64(i));
    }
    Some(match serde_json::from_str::<Json>(json).ok()? {
        Json::String(s) => Value::from(s),
        Json::Bool(b) => Value::Bool(b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::I64(i),
            None if n.is_u64() => return None,
            None => Value::F64(n.as_f64()?),
        },
        Json::Array(items) => match items.first() {
            None => Value::Array(opentelemetry::Array::Bool(Vec::new())),
            Some(Json::String(_)) => Value::Array(opentelemetry::Array::String(
                items
                    .into_iter()
                    .map(|i| match i {
                        Json::String(s) => Some(s.into()),
                        _ => None,
                    })
                    .collect::<Option<_>>()?,
            )),
            Some(Json::Bool(_)) => Value::Array(opentelemetry::Array::Bool(
                items.iter().map(Json::as_bool).collect::<Option<_>>()?,
            )),
            Some(Json::Number(n)) if n.is_i64() => Value::Array(opentelemetry::Array::I64(
                items.iter().map(Json::as_i64).collect::<Option<_>>()?,
            )),
            Some(Json::Number(_)) => Value::Array(opentelemetry::Array::F64(
                items.iter().map(Json::as_f64).collect::<Option<_>>()?,
            )),
            Some(_) => return None,
        },
        Json::Null | Json::Object(_) => return None,
    })
}

/// The text of a JSON string with nothing to unescape: quotes around no `"`, `\` or
/// control character (serde_json refuses those raw, and reads escapes).
fn plain_string(json: &str) -> Option<&str> {
    let inner = json.strip_prefix('"')?.strip_suffix('"')?;
    (!inner.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)).then_some(inner)
}

/// A JSON integer of at most 18 digits (so within `i64`), without a leading zero, and not
/// `-0` (which serde_json reads as the float -0.0).
fn small_integer(json: &str) -> Option<i64> {
    let (negative, digits) = match json.strip_prefix('-') {
        Some(digits) => (true, digits),
        None => (false, json),
    };
    if digits.is_empty()
        || digits.len() > 18
        || !digits.bytes().all(|b| b.is_ascii_digit())
        || (digits.len() > 1 && digits.starts_with('0'))
        || (negative && digits == "0")
    {
        return None;
    }
    let magnitude = digits
        .bytes()
        .fold(0i64, |n, b| n * 10 + i64::from(b - b'0'));
    Some(if negative { -magnitude } else { magnitude })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(trace: &str, span: &str, sampled: bool) -> tracing::SpanContext {
        tracing::SpanContext {
            trace_id: trace.into(),
            span_id: span.into(),
            trace_flags: if sampled {
                tracing::TraceFlags::SAMPLED
            } else {
                tracing::TraceFlags::empty()
            },
            is_remote: false,
            trace_state: Vec::new(),
        }
    }

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn span(context: tracing::SpanContext, attributes: &[(&str, &str)]) -> tracing::SpanData {
        tracing::SpanData {
            span_context: context,
            parent_span_id: "00f067aa0ba902b7".into(),
            span_kind: tracing::SpanKind::Client,
            name: "chat gpt-4o-mini".into(),
            start_time: Datetime {
                seconds: 1_700_000_000,
                nanoseconds: 5,
            },
            end_time: Datetime {
                seconds: 1_700_000_001,
                nanoseconds: 0,
            },
            attributes: attributes
                .iter()
                .map(|(k, v)| types::KeyValue {
                    key: (*k).into(),
                    value: (*v).into(),
                })
                .collect(),
            events: Vec::new(),
            links: Vec::new(),
            status: tracing::Status::Error("upstream 503".into()),
            instrumentation_scope: types::InstrumentationScope {
                name: "chatgate-chat".into(),
                version: Some("0.1.0".into()),
                schema_url: None,
                attributes: Vec::new(),
            },
            dropped_attributes: 0,
            dropped_events: 0,
            dropped_links: 0,
        }
    }

    #[test]
    fn a_sampled_span_keeps_the_guests_ids_times_kind_status_and_scope() {
        let data = span_data(span(context(TRACE, "b7ad6b7169203331", true), &[])).unwrap();
        assert_eq!(data.span_context.trace_id().to_string(), TRACE);
        assert_eq!(data.span_context.span_id().to_string(), "b7ad6b7169203331");
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(data.span_kind, SpanKind::Client);
        assert_eq!(data.name, "chat gpt-4o-mini");
        assert_eq!(
            data.start_time,
            UNIX_EPOCH + Duration::new(1_700_000_000, 5)
        );
        assert_eq!(data.status, Status::error("upstream 503"));
        assert_eq!(data.instrumentation_scope.name(), "chatgate-chat");
        assert_eq!(data.instrumentation_scope.version(), Some("0.1.0"));
    }

    #[test]
    fn unsampled_spans_and_invalid_ids_are_not_exported() {
        assert!(span_data(span(context(TRACE, "b7ad6b7169203331", false), &[])).is_none());
        for (trace, id) in [
            ("not hex", "b7ad6b7169203331"),
            (TRACE, "zz"),
            ("00000000000000000000000000000000", "b7ad6b7169203331"),
            (TRACE, "0000000000000000"),
        ] {
            assert!(
                span_data(span(context(trace, id, true), &[])).is_none(),
                "{trace} {id}"
            );
        }
        let mut bad_parent = span(context(TRACE, "b7ad6b7169203331", true), &[]);
        bad_parent.parent_span_id = "parent?".into();
        assert!(span_data(bad_parent).is_none());
    }

    #[test]
    fn attribute_values_are_json_and_the_rest_is_dropped_and_counted() {
        let data = span_data(span(
            context(TRACE, "b7ad6b7169203331", true),
            &[
                ("s", r#""text""#),
                ("i", "42"),
                ("f", "0.5"),
                ("b", "true"),
                ("strings", r#"["stop","length"]"#),
                ("ints", "[1,2]"),
                ("mixed", r#"[1,"a"]"#),
                ("object", r#"{"a":1}"#),
                ("null", "null"),
                ("huge", "18446744073709551615"),
                ("not json", "text"),
            ],
        ))
        .unwrap();
        let get = |key: &str| {
            data.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.clone())
        };
        assert_eq!(get("s"), Some(Value::from("text")));
        assert_eq!(get("i"), Some(Value::I64(42)));
        assert_eq!(get("f"), Some(Value::F64(0.5)));
        assert_eq!(get("b"), Some(Value::Bool(true)));
        assert_eq!(
            get("strings"),
            Some(Value::Array(opentelemetry::Array::String(vec![
                "stop".into(),
                "length".into()
            ])))
        );
        assert_eq!(
            get("ints"),
            Some(Value::Array(opentelemetry::Array::I64(vec![1, 2])))
        );
        assert_eq!(data.attributes.len(), 6);
        assert_eq!(data.dropped_attributes_count, 5);
    }

    #[test]
    fn the_short_cut_for_strings_and_integers_reads_what_serde_json_reads() {
        for json in [
            r#""text""#,
            r#""""#,
            r#""caf\u00e9""#,
            r#""a\"b""#,
            "\"tab\there\"",
            "42",
            "-7",
            "0",
            "-0",
            "007",
            "123456789012345678",
            "9223372036854775807",
            "-9223372036854775808",
            "1e3",
            "-",
            "",
            "-12",
            "-1234567890123456789",
            "1234567890123456789",
            "99999999999999999999",
            "1.5",
            " 1",
            r#""a/b\u00e9""#,
            "\"\"\"",
            "\"",
            "\"caf\u{e9} \u{1f600}\"",
        ] {
            let slow = serde_json::from_str::<serde_json::Value>(json)
                .ok()
                .and_then(|v| match v {
                    serde_json::Value::String(s) => Some(Value::from(s)),
                    serde_json::Value::Number(n) => n
                        .as_i64()
                        .map(Value::I64)
                        .or_else(|| n.as_f64().map(Value::F64)),
                    _ => None,
                });
            assert_eq!(value(json), slow, "{json}");
        }
    }

    #[test]
    fn ids_read_as_the_sdk_reads_them() {
        for hex in [
            TRACE,
            "00000000000000000000000000000000",
            "4BF92F3577B34DA6A3CE929D0E0E4736",
            "4bf92f3577b34da6a3ce929d0e0e473",
            "+bf92f3577b34da6a3ce929d0e0e4736",
            "4bf92f3577b34da6a3ce929d0e0e473g",
            "b7ad6b7169203331",
            "B7AD6B7169203331",
            "+7ad6b7169203331",
            "b7ad6b716920333",
            "",
        ] {
            assert_eq!(trace_id(hex), TraceId::from_hex(hex).ok(), "{hex}");
            assert_eq!(span_id(hex), SpanId::from_hex(hex).ok(), "{hex}");
        }
    }

    #[test]
    fn attributes_beyond_the_limit_are_dropped_and_counted() {
        let many: Vec<(String, String)> = (0..MAX_PER_SPAN + 3)
            .map(|i| (format!("k{i}"), i.to_string()))
            .collect();
        let refs: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let data = span_data(span(context(TRACE, "b7ad6b7169203331", true), &refs)).unwrap();
        assert_eq!(data.attributes.len(), MAX_PER_SPAN);
        assert_eq!(data.dropped_attributes_count, 3);
    }
}
