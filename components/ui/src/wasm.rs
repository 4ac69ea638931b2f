//! The Spin adapter: reads the method, path, two request headers and the sign-in
//! variables, and writes the [`crate::respond`] answer. Nothing is decided here.

use bytes::Bytes;
use chatgate_guest::VariableValue;
use spin_sdk::http::{BoxBody, FullBody, HeaderValue, Request, Response, StatusCode, box_body};
use spin_sdk::http_service;
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

#[http_service]
async fn handle(request: Request) -> Response<BoxBody> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
    };
    let values = chatgate_guest_io::read_variables(&crate::VARIABLES).await;
    let settings = crate::Settings::read(|name| match values.get(name) {
        VariableValue::Value(value) => Some(value),
        VariableValue::Missing | VariableValue::Unreadable => None,
    });
    let reply = crate::respond(
        request.method().as_str(),
        request.uri().path(),
        crate::RequestHeaders {
            accept_encoding: header("accept-encoding"),
            if_none_match: header("if-none-match"),
        },
        &settings,
    );
    let body = match reply.body {
        crate::Body::Static(bytes) => Bytes::from_static(bytes),
        crate::Body::Owned(text) => Bytes::from(text),
    };
    let mut response = Response::new(box_body(FullBody::new(body)));
    *response.status_mut() =
        StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(name, value);
        }
    }
    response
}
