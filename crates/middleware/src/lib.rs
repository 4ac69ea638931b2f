//! Forwarding with edited headers, for HTTP middleware components.
//!
//! spin-sdk (its `http_into_wasi_request` / `http_into_wasi_response`, wasip3 0.7.1) means
//! to hand an incoming message on untouched when its body has not been started, but looks
//! for the unstarted body on the message instead of on its body, so it never finds it:
//! every `next(request)` and every `next(..).await.into_response()` builds a new WASI
//! message whose body a spawned guest task copies chunk by chunk from the old one. Such a
//! pump costs roughly 50 µs per request even for a short body (inferred from the `gateway`
//! bench: a pass-through middleware written that way, with its two pumps, cost 125-138 µs
//! a hop against 20 µs for `tests/components/passthrough`, which has none).
//!
//! [`forward_request`] and [`forward_response`] build the new message around the
//! original's body stream and trailers future (`consume-body`), so the bytes flow between
//! host streams without entering the component; only the headers are new. The one task
//! each spawns waits for the new message's transmission result and reports it to the
//! original's sender, as `consume-body`'s `res` argument asks. [`forward_read`] sends on a
//! body the middleware read whole (`waf` inspects it) without spin-sdk's pump.
//! [`return_unedited`] hands the next handler's response back as it came, for a
//! middleware that does not edit it.
//!
//! Only headers are taken from the edited message: method, scheme, authority and path
//! are the original's, as spin-sdk read them into the message's parts (no chatgate
//! middleware rewrites them).
//!
//! Every host call counts: each goes through wasmtime's component-model-async runtime (a
//! host task, the call's lifting and lowering), which a `perf` profile of `chat` behind
//! `telemetry` put at about a quarter of a request's CPU, more than the guests' own code.
//! `cargo bench -p chatgate-tests --bench gateway` prints the bare hop and each stage.

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg(target_arch = "wasm32")]

use spin_sdk::http::{Request, Response};
use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields};
use spin_sdk::wasip3::http_compat::{
    RequestOptionsExtension, http_into_wasi_request, http_into_wasi_response,
};
use spin_sdk::wasip3::{wit_bindgen, wit_future, wit_stream};

/// `request` as a WASI request for `next`, with its (possibly edited) headers and the
/// original body, unread.
pub fn forward_request(request: Request) -> Result<types::Request, ErrorCode> {
    let (parts, mut body) = request.into_parts();
    let Some(original) = body.take_unstarted() else {
        // The body was read: spin-sdk's own conversion re-sends what is left of it.
        return http_into_wasi_request(Request::from_parts(parts, body));
    };
    let (report, reported) = wit_future::new(|| Ok(()));
    let (contents, trailers) = types::Request::consume_body(original, reported);
    let (forwarded, transmitted) = new_request(parts, Some(contents), trailers)?;
    wit_bindgen::spawn(async move {
        let _ = report.write(transmitted.await).await;
    });
    Ok(forwarded)
}

/// A WASI request for `next` with `request`'s headers and target and `body`, which the
/// middleware has read whole (to inspect it). An empty body is sent as none, without
/// a stream; a non-empty one is written by one task. spin-sdk's conversion of a
/// buffered body instead spawns its frame-by-frame pump, with a trailers task, for an
/// empty body too.
pub fn forward_read<B>(request: Request<B>, body: Vec<u8>) -> Result<types::Request, ErrorCode> {
    let (parts, _) = request.into_parts();
    // No trailers: the writer dropped unwritten sends the default, `Ok(None)`.
    let (_, trailers) = wit_future::new(|| Ok(None));
    if body.is_empty() {
        return new_request(parts, None, trailers).map(|(request, _)| request);
    }
    let (mut writer, contents) = wit_stream::new();
    let (forwarded, _) = new_request(parts, Some(contents), trailers)?;
    wit_bindgen::spawn(async move {
        // A reader that went away (the next stage refused early) leaves the rest
        // unwritten; nothing is waiting for it.
        let _ = writer.write_all(body).await;
    });
    Ok(forwarded)
}

/// A new WASI request with `parts`' headers and the method and target spin-sdk read
/// into them, around `contents` and `trailers`; also the future of its transmission.
fn new_request(
    mut parts: http::request::Parts,
    contents: Option<wit_bindgen::StreamReader<u8>>,
    trailers: wit_bindgen::FutureReader<Result<Option<types::Trailers>, ErrorCode>>,
) -> Result<
    (
        types::Request,
        wit_bindgen::FutureReader<Result<(), ErrorCode>>,
    ),
    ErrorCode,
> {
    // WASI carries the authority beside the headers, and wasmtime refuses a `Host` header.
    parts.headers.remove("host");
    let headers = Fields::try_from(parts.headers).map_err(internal)?;
    let options = parts
        .extensions
        .remove::<RequestOptionsExtension>()
        .map(|options| options.0);
    // The original's method and target, as spin-sdk read them from it into `parts`: asking
    // the original again would cost four host calls per request.
    let method = types::Method::from(&parts.method);
    let scheme = parts.uri.scheme().map(types::Scheme::from);
    let authority = parts.uri.authority().map(|authority| authority.as_str());
    let path = parts.uri.path_and_query().map(|path| path.as_str());

    let (request, transmitted) = types::Request::new(headers, contents, trailers, options);
    request
        .set_method(&method)
        .map_err(|()| ErrorCode::HttpRequestMethodInvalid)?;
    request
        .set_scheme(scheme.as_ref())
        .map_err(|()| ErrorCode::HttpProtocolError)?;
    request
        .set_authority(authority)
        .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    request
        .set_path_with_query(path)
        .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    Ok((request, transmitted))
}

/// `response` (as `next` returned it, headers possibly edited) as a WASI response, its
/// body unread.
pub fn forward_response(response: Response) -> Result<types::Response, ErrorCode> {
    let (parts, mut body) = response.into_parts();
    let Some(original) = body.take_unstarted() else {
        return http_into_wasi_response(Response::from_parts(parts, body));
    };
    let headers = Fields::try_from(parts.headers).map_err(internal)?;
    let (report, reported) = wit_future::new(|| Ok(()));
    let (contents, trailers) = types::Response::consume_body(original, reported);
    let (forwarded, transmitted) = types::Response::new(headers, Some(contents), trailers);
    forwarded
        .set_status_code(parts.status.as_u16())
        .map_err(|()| ErrorCode::HttpProtocolError)?;
    wit_bindgen::spawn(async move {
        let _ = report.write(transmitted.await).await;
    });
    Ok(forwarded)
}

/// `response` (as `next` returned it, unedited) handed back as the WASI response it was:
/// no new response, no relay task, none of [`forward_response`]'s host calls.
pub fn return_unedited(response: Response) -> Result<types::Response, ErrorCode> {
    let (parts, mut body) = response.into_parts();
    match body.take_unstarted() {
        Some(original) => Ok(original),
        None => http_into_wasi_response(Response::from_parts(parts, body)),
    }
}

fn internal(error: impl std::fmt::Display) -> ErrorCode {
    ErrorCode::InternalError(Some(error.to_string()))
}
