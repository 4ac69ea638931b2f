//! Outermost middleware of the chain: continues or starts a W3C trace, assigns a request id,
//! times the inner chain (`Server-Timing`) and writes exactly one JSON log line per request.
//!
//! The header logic lives here and is tested natively; the `wasm` module only moves
//! requests and responses between WASI and these functions.

pub mod log;
pub mod request_id;
/// W3C trace context, shared with the stages that report spans.
pub use chatgate_guest::trace_context as trace;

use http::{HeaderMap, HeaderValue};
use std::time::Duration;
use trace::{SPAN_ENTROPY_LEN, Span, TraceParent};

/// Random bytes drawn per request: a possible new trace id, the span id, a possible request id.
pub const ENTROPY_LEN: usize = SPAN_ENTROPY_LEN + request_id::REQUEST_ID_ENTROPY_LEN;

const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";
const REQUEST_ID: &str = "x-request-id";
const SERVER_TIMING: &str = "server-timing";

/// What telemetry decided about one request.
#[derive(Debug, Clone)]
pub struct RequestTelemetry {
    pub span: Span,
    pub request_id: String,
}

/// Decides the span and request id, and rewrites the inward request headers to carry them.
///
/// `entropy` shorter than [`ENTROPY_LEN`] is padded with zeros (ids stay valid, just less random).
pub fn prepare_inward(headers: &mut HeaderMap, entropy: &[u8]) -> RequestTelemetry {
    let values = |name| -> Vec<&[u8]> {
        headers
            .get_all(name)
            .iter()
            .map(HeaderValue::as_bytes)
            .collect()
    };
    let inward = decide_inward(&values(TRACEPARENT), &values(REQUEST_ID), entropy);
    if !inward.keeps_tracestate {
        headers.remove(TRACESTATE);
    }
    set(headers, TRACEPARENT, &inward.traceparent);
    set(headers, REQUEST_ID, &inward.telemetry.request_id);
    inward.telemetry
}

/// What [`prepare_inward`] does to the inward headers, decided from the values of
/// `traceparent` and `x-request-id` as they came.
#[derive(Debug, Clone)]
pub struct Inward {
    pub telemetry: RequestTelemetry,
    /// The `traceparent` the request goes on with (the span's).
    pub traceparent: String,
    /// Whether `tracestate` goes on: only with the valid `traceparent` it came with.
    pub keeps_tracestate: bool,
}

/// Decides the span and request id from the request's `traceparent` and `x-request-id`
/// values; [`prepare_inward`] on headers that are not a map.
pub fn decide_inward(traceparents: &[&[u8]], request_ids: &[&[u8]], entropy: &[u8]) -> Inward {
    decide_inward_from(incoming(traceparents), request_ids, entropy)
}

/// The valid `traceparent` a request came with, if it came with exactly one: the trace
/// [`decide_inward`] continues.
pub fn incoming(traceparents: &[&[u8]]) -> Option<TraceParent> {
    match traceparents {
        // Read as `HeaderValue::to_str` reads a value, without its pass over the bytes
        // for visible ASCII: a value `TraceParent::parse` takes is hex digits and dashes
        // between spaces and tabs, all visible ASCII already.
        [value] => std::str::from_utf8(value).ok().and_then(TraceParent::parse),
        _ => None,
    }
}

/// [`decide_inward`] with the request's `traceparent` already read ([`incoming`]).
pub fn decide_inward_from(
    incoming: Option<TraceParent>,
    request_ids: &[&[u8]],
    entropy: &[u8],
) -> Inward {
    let mut span_entropy = [0u8; SPAN_ENTROPY_LEN];
    let mut id_entropy = [0u8; request_id::REQUEST_ID_ENTROPY_LEN];
    for (slot, byte) in span_entropy
        .iter_mut()
        .chain(id_entropy.iter_mut())
        .zip(entropy)
    {
        *slot = *byte;
    }

    // The spec ties tracestate to the traceparent it came with; a restarted trace drops it.
    let keeps_tracestate = incoming.is_some();
    let span = Span::start(incoming, &span_entropy);
    let request_id = request_id::choose(request_ids, &id_entropy);
    Inward {
        traceparent: span.traceparent(),
        telemetry: RequestTelemetry { span, request_id },
        keeps_tracestate,
    }
}

/// Stamps the response with the trace, the request id and the chain's total duration.
pub fn decorate_response(headers: &mut HeaderMap, telemetry: &RequestTelemetry, elapsed: Duration) {
    for edit in response_edits(telemetry, elapsed) {
        match edit {
            HeaderEdit::Set(name, value) => set(headers, name, &value),
            HeaderEdit::Append(name, value) => {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.append(name, value);
                }
            }
        }
    }
}

/// One change to a header: its values replaced by one, or one more value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Set(&'static str, String),
    Append(&'static str, String),
}

/// What [`decorate_response`] changes, as edits: the component applies them to the
/// next handler's response headers where they are (a host call each) instead of copying
/// them all in and out.
pub fn response_edits(telemetry: &RequestTelemetry, elapsed: Duration) -> [HeaderEdit; 3] {
    [
        HeaderEdit::Set(TRACEPARENT, telemetry.span.traceparent()),
        HeaderEdit::Set(REQUEST_ID, telemetry.request_id.clone()),
        // Appended as its own field value so an inner component's metrics survive.
        HeaderEdit::Append(SERVER_TIMING, log::server_timing(elapsed)),
    ]
}

/// The body of the 502 sent when the inner handler fails without a response.
pub fn bad_gateway_body() -> String {
    chatgate_guest::openai_error::error_json(
        "The request could not be completed because an inner component failed.",
        chatgate_guest::openai_error::SERVER_ERROR,
        None,
        "bad_gateway",
    )
    .to_string()
}

fn set(headers: &mut HeaderMap, name: &'static str, value: &str) {
    // Every value set here is built from hex, UUID or the request-id alphabet, so it is a valid header value.
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(test)]
mod tests {
    use super::*;

    const CALLER: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn entropy() -> Vec<u8> {
        (1..=ENTROPY_LEN as u8).collect()
    }

    #[test]
    fn continues_a_valid_caller_trace_inward() {
        let mut map = headers(&[("traceparent", CALLER), ("tracestate", "vendor=1")]);
        let telemetry = prepare_inward(&mut map, &entropy());
        let inward = map["traceparent"].to_str().unwrap();
        assert!(inward.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert_ne!(inward, CALLER, "a new span id replaces the caller's");
        assert_eq!(inward, telemetry.span.traceparent());
        assert_eq!(map["tracestate"], "vendor=1");
    }

    #[test]
    fn starts_a_new_trace_and_drops_tracestate_when_traceparent_is_invalid() {
        let mut map = headers(&[
            (
                "traceparent",
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            ),
            ("tracestate", "vendor=1"),
        ]);
        let telemetry = prepare_inward(&mut map, &entropy());
        assert_eq!(telemetry.span.parent_span_id, None);
        assert_eq!(
            map["traceparent"],
            "00-0102030405060708090a0b0c0d0e0f10-1112131415161718-00"
        );
        assert!(map.get("tracestate").is_none());
    }

    #[test]
    fn repeated_traceparent_headers_start_a_new_trace() {
        let mut map = headers(&[("traceparent", CALLER), ("traceparent", CALLER)]);
        let telemetry = prepare_inward(&mut map, &entropy());
        assert_eq!(telemetry.span.parent_span_id, None);
        assert_eq!(map.get_all("traceparent").iter().count(), 1);
    }

    #[test]
    fn incoming_reads_what_a_header_value_as_text_reads() {
        let valid = CALLER.as_bytes();
        let mut cases: Vec<Vec<u8>> = vec![
            valid.to_vec(),
            format!(" {CALLER}\t").into_bytes(),
            format!("{CALLER}\r").into_bytes(),
            format!("{CALLER}\u{7f}").into_bytes(),
            format!("{CALLER}é").into_bytes(),
            CALLER.replacen('4', "é", 1).into_bytes(),
            CALLER.to_uppercase().into_bytes(),
            vec![0xff; 55],
            Vec::new(),
        ];
        cases.push([b"\xc3".as_slice(), &valid[1..]].concat());
        for value in &cases {
            let values: [&[u8]; 1] = [value];
            assert_eq!(
                incoming(&values),
                chatgate_guest::header_value::visible_ascii(value).and_then(TraceParent::parse),
                "{value:?}"
            );
        }
        assert!(incoming(&[valid]).is_some());
        assert_eq!(incoming(&[valid, valid]), None);
        assert_eq!(incoming(&[]), None);
    }

    #[test]
    fn keeps_a_sane_client_request_id() {
        let mut map = headers(&[("x-request-id", "client-123")]);
        let telemetry = prepare_inward(&mut map, &entropy());
        assert_eq!(telemetry.request_id, "client-123");
        assert_eq!(map["x-request-id"], "client-123");
    }

    #[test]
    fn replaces_an_unsafe_client_request_id() {
        let mut map = headers(&[("x-request-id", "<script>")]);
        let telemetry = prepare_inward(&mut map, &entropy());
        assert_ne!(telemetry.request_id, "<script>");
        assert!(request_id::is_acceptable(&telemetry.request_id));
        assert_eq!(map["x-request-id"], telemetry.request_id.as_str());
        assert_eq!(map.get_all("x-request-id").iter().count(), 1);
    }

    #[test]
    fn short_entropy_still_gives_valid_ids() {
        let mut map = HeaderMap::new();
        let telemetry = prepare_inward(&mut map, &[]);
        assert!(TraceParent::parse(&telemetry.span.traceparent()).is_some());
        assert!(request_id::is_acceptable(&telemetry.request_id));
    }

    #[test]
    fn response_gets_trace_request_id_and_appended_server_timing() {
        let mut inward = headers(&[("x-request-id", "rid-7")]);
        let telemetry = prepare_inward(&mut inward, &entropy());
        let mut response = headers(&[
            ("server-timing", "retrieval;dur=3.0"),
            (
                "traceparent",
                "00-11111111111111111111111111111111-2222222222222222-01",
            ),
        ]);
        decorate_response(&mut response, &telemetry, Duration::from_micros(4_260));
        assert_eq!(
            response["traceparent"],
            telemetry.span.traceparent().as_str()
        );
        assert_eq!(response["x-request-id"], "rid-7");
        let timings: Vec<&str> = response
            .get_all("server-timing")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(timings, ["retrieval;dur=3.0", "total;dur=4.3"]);
    }

    #[test]
    fn bad_gateway_body_is_an_openai_error() {
        let value: serde_json::Value = serde_json::from_str(&bad_gateway_body()).unwrap();
        assert_eq!(value["error"]["code"], "bad_gateway");
        assert_eq!(value["error"]["type"], "server_error");
        assert!(value["error"]["param"].is_null());
        assert!(value["error"]["message"].as_str().unwrap().len() > 10);
    }
}
