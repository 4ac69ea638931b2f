//! Forwarding with edited headers, for HTTP middleware components.
//!
//! spin-sdk forwards an incoming request untouched only when its body has not been
//! started, and then drops any header edits; otherwise (`request.map(box_body)`) it
//! builds a new WASI request whose body a spawned guest task copies chunk by chunk from
//! the old one, and does the same for a response re-boxed on the way back. In the shipped
//! chain that was four body pumps per request (telemetry both ways, auth's request,
//! waf's buffered request), each a task and a copy of every byte through guest memory;
//! with these helpers only waf's remains, because it must read the body anyway.
//!
//! [`forward_request`] and [`forward_response`] instead build the new message around the
//! original's body stream and trailers future (`consume-body`), so the bytes flow between
//! host streams without entering the component; only the headers are new. The one task
//! each spawns waits for the new message's transmission result and reports it to the
//! original's sender, as `consume-body`'s `res` argument asks.
//!
//! Only headers are taken from the edited message: method, scheme, authority and path
//! come from the original (no chatgate middleware rewrites them).

#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg(target_arch = "wasm32")]

use spin_sdk::http::{Request, Response};
use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields};
use spin_sdk::wasip3::http_compat::{
    RequestOptionsExtension, http_into_wasi_request, http_into_wasi_response,
};
use spin_sdk::wasip3::{wit_bindgen, wit_future};

/// `request` as a WASI request for `next`, with its (possibly edited) headers and the
/// original body, unread.
pub fn forward_request(request: Request) -> Result<types::Request, ErrorCode> {
    let (mut parts, mut body) = request.into_parts();
    let Some(original) = body.take_unstarted() else {
        // The body was read: spin-sdk's own conversion re-sends what is left of it.
        return http_into_wasi_request(Request::from_parts(parts, body));
    };
    // WASI carries the authority beside the headers, and wasmtime refuses a `Host` header.
    parts.headers.remove("host");
    let headers = Fields::try_from(parts.headers).map_err(internal)?;
    let options = parts
        .extensions
        .remove::<RequestOptionsExtension>()
        .map(|options| options.0);
    let method = original.get_method();
    let scheme = original.get_scheme();
    let authority = original.get_authority();
    let path = original.get_path_with_query();

    let (report, reported) = wit_future::new(|| Ok(()));
    let (contents, trailers) = types::Request::consume_body(original, reported);
    let (forwarded, transmitted) = types::Request::new(headers, Some(contents), trailers, options);
    forwarded
        .set_method(&method)
        .map_err(|()| ErrorCode::HttpRequestMethodInvalid)?;
    forwarded
        .set_scheme(scheme.as_ref())
        .map_err(|()| ErrorCode::HttpProtocolError)?;
    forwarded
        .set_authority(authority.as_deref())
        .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    forwarded
        .set_path_with_query(path.as_deref())
        .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    wit_bindgen::spawn(async move {
        let _ = report.write(transmitted.await).await;
    });
    Ok(forwarded)
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

fn internal(error: impl std::fmt::Display) -> ErrorCode {
    ErrorCode::InternalError(Some(error.to_string()))
}
