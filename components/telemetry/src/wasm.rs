use chatgate_guest_otel::Tracer;
use chatgate_middleware::{Light, edit_response, next};
use spin_sdk::http::{BoxBody, IntoResponse, Response, box_body};
use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::types::{ErrorCode, Request as WasiRequest, Response as WasiResponse};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

/// The span `telemetry` reports (`wasi:otel/tracing`): the request's span in the guests,
/// parent of every later stage's.
const TRACER: Tracer = Tracer::new("chatgate-telemetry", env!("CARGO_PKG_VERSION"));

/// Exported on WASI's own types rather than with `#[http_service]`: the request goes on
/// with its edited headers around its original body, and the response comes back with
/// edited headers around the next handler's body (`crates/middleware` says what that
/// saves).
struct Telemetry;

spin_sdk::wasip3::http::service::export!(Telemetry);

impl Guest for Telemetry {
    async fn handle(request: WasiRequest) -> Result<WasiResponse, ErrorCode> {
        handle(request).await
    }
}

async fn handle(request: WasiRequest) -> Result<WasiResponse, ErrorCode> {
    let started = Instant::now();
    let started_at = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    // Only `traceparent`, `tracestate` and `x-request-id` are read or edited: asked for
    // by name (a host call each), not all copied in and parsed into a map.
    let mut request = Light::read(request)?;
    let method = request.method().as_str().to_owned();
    let route = request.uri().path().to_owned();

    let entropy = spin_sdk::wasip3::random::random::get_random_bytes(super::ENTROPY_LEN as u64);
    let traceparents = request.get(super::TRACEPARENT);
    let request_ids = request.get(super::REQUEST_ID);
    let ids: Vec<&[u8]> = request_ids.iter().map(Vec::as_slice).collect();
    // One valid `traceparent` (what chatgate's host sets when it traces) is kept as it
    // is, which is all `adopt_host_span` would do with it: the map it works on (the
    // `traceparent` values alone) is built, and the value read again, only otherwise.
    let incoming = match traceparents.as_slice() {
        [value] => super::incoming(&[value.as_slice()]),
        _ => None,
    };
    let inward = match incoming {
        Some(incoming) => super::decide_inward_from(Some(incoming), &ids, &entropy),
        None => {
            let mut adopted = http::HeaderMap::new();
            for value in &traceparents {
                let value = http::HeaderValue::from_bytes(value)
                    .map_err(|error| ErrorCode::InternalError(Some(error.to_string())))?;
                adopted.append(super::TRACEPARENT, value);
            }
            chatgate_guest_otel::adopt_host_span(&mut adopted);
            let adopted: Vec<&[u8]> = adopted
                .get_all(super::TRACEPARENT)
                .iter()
                .map(http::HeaderValue::as_bytes)
                .collect();
            super::decide_inward(&adopted, &ids, &entropy)
        }
    };
    // Each header is edited only where it changes, as a copied map's edits would be.
    if !inward.keeps_tracestate && request.has(super::TRACESTATE) {
        request.delete(super::TRACESTATE);
    }
    // After a valid incoming one, the span's own `traceparent` (a new span id) differs
    // from it: set without comparing them.
    if incoming.is_some() || traceparents != [inward.traceparent.as_bytes()] {
        request.set(super::TRACEPARENT, inward.traceparent.clone().into_bytes());
    }
    if ids != [inward.telemetry.request_id.as_bytes()] {
        request.set(
            super::REQUEST_ID,
            inward.telemetry.request_id.clone().into_bytes(),
        );
    }
    let super::Inward {
        telemetry,
        traceparent,
        ..
    } = inward;
    // The span starts when the request came, the time the log line gives it.
    let mut stage = TRACER.adopt_since("telemetry", telemetry.span.clone(), started_at);

    // The edited headers travel with the original body, which never enters this component.
    let outcome = match request.forward() {
        Ok(forwarded) => next(forwarded).await,
        Err(code) => Err(code),
    };
    // The clock is read once for the response: `Server-Timing` and the log line say the same.
    let (status, response, error, elapsed) = match outcome {
        Ok(response) => {
            let mut status = 0;
            let mut elapsed = std::time::Duration::ZERO;
            let response = edit_response(response, |code, headers| {
                status = code;
                elapsed = started.elapsed();
                headers.set(super::TRACEPARENT, &[traceparent.into_bytes()])?;
                headers.set(
                    super::REQUEST_ID,
                    &[telemetry.request_id.as_bytes().to_vec()],
                )?;
                // Appended as its own field value so an inner component's metrics survive.
                headers.append(
                    super::SERVER_TIMING,
                    super::log::server_timing(elapsed).as_bytes(),
                )
            });
            (status, response, None, elapsed)
        }
        Err(code) => {
            let mut response = bad_gateway();
            let elapsed = started.elapsed();
            super::decorate_response(response.headers_mut(), &telemetry, elapsed);
            let error = Some(format!("{code:?}"));
            (
                response.status().as_u16(),
                response.into_response(),
                error,
                elapsed,
            )
        }
    };
    let log = super::log::RequestLog {
        started_at,
        method: &method,
        route: &route,
        status,
        elapsed,
        span: &telemetry.span,
        request_id: &telemetry.request_id,
        error: error.as_deref(),
    };
    let (mut line, record) = log.to_json_line_and_record();
    line.push('\n');
    // One write of the whole line (stdout is line-buffered: it goes out at once); a log
    // line that cannot be written must not fail the request.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), line.as_bytes());
    // The span ends, and its record is stamped, when the response's head was ready: the
    // time the line and `Server-Timing` give, without reading the clock again.
    stage.set_end_time(started_at + elapsed);
    if stage.recording() {
        stage.log_json(record.severity, "request", record.attributes(&line));
        // The span's attributes in the order they always had: the request id (as the
        // line wrote it, JSON text already), then the status.
        if let Some((key, json)) = record
            .attributes(&line)
            .find(|(key, _)| *key == "chatgate.request_id")
        {
            stage.set_json(key, json);
        }
    }
    stage.set_int("http.response.status_code", i64::from(status));
    match &error {
        Some(error) => stage.end_error(error.clone()),
        None if status >= 500 => stage.end_error(format!("answered {status}")),
        None => stage.end_unset(),
    }
    response
}

fn bad_gateway() -> Response<BoxBody> {
    let mut response = Response::new(box_body(super::bad_gateway_body()));
    *response.status_mut() = spin_sdk::http::StatusCode::BAD_GATEWAY;
    response.headers_mut().insert(
        "content-type",
        spin_sdk::http::HeaderValue::from_static("application/json"),
    );
    response
}
