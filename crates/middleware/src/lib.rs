//! The request path of chatgate's HTTP middleware components on raw WASI types, with as
//! few host calls as the middleware's work allows.
//!
//! Every host call counts: under wasmtime 48 each one goes through the component-model
//! async runtime (a host task, the lifting and lowering, often a fiber switch), about
//! 4 k instructions, and so does each fiber switch; a header list copied into the
//! component costs one more call into the guest (its allocator) per name and per value.
//! Measured with `bench/instructions/run` (callgrind, instructions per request of the
//! whole process): `chat` alone serving `GET /v1/models` 353 k, behind `auth` written
//! with spin-sdk's `#[http_service]`, `next` and conversions 723 k; a raw pass-through hop
//! adds 50 k (`hello` alone 248 k, behind one pass-through 298 k).
//!
//! What spin-sdk's conversions do that a middleware does not need:
//! - `#[http_service]` reads the request's options and its `Content-Length` apart from
//!   the headers it copies; `next` copies the next handler's response status and headers
//!   into an `http::Response`, which a middleware that hands the response back untouched
//!   never reads. [`next`] here answers the WASI response as it is.
//! - Forwarding an incoming request means a new WASI request (fields cannot be edited in
//!   place), and spin-sdk (wasip3 0.7.1) never finds the original's body unstarted, so
//!   its conversion copies the body through a task of the component. [`Incoming`] hands
//!   the original on untouched when nothing was edited, and otherwise builds the new
//!   request around the original's body stream (`consume-body`), or without a body when
//!   the request has none.
//!
//! Only headers are edited: method, scheme, authority and path go on as they came.

// The generated binding of `next` is unsafe glue; everything else is safe code.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg(target_arch = "wasm32")]

use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields};
use spin_sdk::wasip3::{wit_bindgen, wit_future, wit_stream};

#[allow(missing_docs, unsafe_code)]
mod bindings {
    spin_sdk::wit_bindgen::generate!({
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        world: "chatgate:middleware/next",
        path: "wit",
        with: {
            "wasi:http/types@0.3.0": spin_sdk::wasip3::http::types,
        },
        generate_all,
    });
}

/// Sends `request` to the next handler in the chain and answers its response as it is.
pub async fn next(request: types::Request) -> Result<types::Response, ErrorCode> {
    bindings::wasi::http::handler::handle(request).await
}

/// Why an incoming request's body could not be read whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// More than the limit arrived; reading stopped one byte past it.
    TooLarge,
    /// The body's transmission failed (the client went away, a malformed chunk).
    Unreadable,
}

/// An incoming request as a middleware sees it: method, target and headers read once
/// (six host calls), the body left unread in the original until asked for.
pub struct Incoming {
    parts: http::request::Parts,
    /// The original's headers as WASI holds them, and as copied: an edited request's
    /// headers are a clone of them with the changed names deleted or set (a few host
    /// calls), not a list built in the component and lifted whole.
    fields: Fields,
    original: Vec<(String, Vec<u8>)>,
    body: Body,
    edited: bool,
}

enum Body {
    /// Still in the original request, which goes on untouched if nothing is edited.
    Unread(types::Request),
    /// Read whole by the middleware; the original request is gone.
    Read(Vec<u8>),
}

impl Incoming {
    /// Reads the method, target and headers of `request`.
    pub fn read(request: types::Request) -> Result<Self, ErrorCode> {
        let mut uri = http::Uri::builder();
        if let Some(scheme) = request.get_scheme() {
            uri = uri.scheme(match scheme {
                types::Scheme::Http => http::uri::Scheme::HTTP,
                types::Scheme::Https => http::uri::Scheme::HTTPS,
                types::Scheme::Other(other) => other
                    .parse()
                    .map_err(|_| ErrorCode::HttpRequestUriInvalid)?,
            });
        }
        if let Some(authority) = request.get_authority() {
            uri = uri.authority(authority);
        }
        if let Some(path) = request.get_path_with_query() {
            uri = uri.path_and_query(path);
        }
        let uri = uri.build().map_err(|_| ErrorCode::HttpRequestUriInvalid)?;
        let method = match request.get_method() {
            types::Method::Get => http::Method::GET,
            types::Method::Head => http::Method::HEAD,
            types::Method::Post => http::Method::POST,
            types::Method::Put => http::Method::PUT,
            types::Method::Delete => http::Method::DELETE,
            types::Method::Connect => http::Method::CONNECT,
            types::Method::Options => http::Method::OPTIONS,
            types::Method::Trace => http::Method::TRACE,
            types::Method::Patch => http::Method::PATCH,
            types::Method::Other(other) => http::Method::from_bytes(other.as_bytes())
                .map_err(|_| ErrorCode::HttpRequestMethodInvalid)?,
        };
        let fields = request.get_headers();
        let original = fields.copy_all();
        let headers = header_map(&original)?;
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.headers = headers;
        Ok(Self {
            parts,
            fields,
            original,
            body: Body::Unread(request),
            edited: false,
        })
    }

    /// Method, target and headers as they came (or as edited so far).
    pub fn parts(&self) -> &http::request::Parts {
        &self.parts
    }

    /// The headers to edit; the request then goes on as a new one with them.
    pub fn headers_mut(&mut self) -> &mut http::HeaderMap {
        self.edited = true;
        &mut self.parts.headers
    }

    /// Reads the whole body, at most `limit` bytes; [`Incoming::forward`] then sends it on.
    pub async fn read_body(&mut self, limit: u64) -> Result<&[u8], BodyError> {
        if let Body::Unread(_) = self.body {
            let Body::Unread(request) = std::mem::replace(&mut self.body, Body::Read(Vec::new()))
            else {
                unreachable!("matched above")
            };
            self.body = Body::Read(read_whole(request, limit).await?);
        }
        let Body::Read(read) = &self.body else {
            unreachable!("read above")
        };
        Ok(read)
    }

    /// The request for the next handler: the original, untouched, when neither its
    /// headers were edited nor its body read; otherwise a new request with the (edited)
    /// headers and the original's body, unread, or the body read.
    pub fn forward(self) -> Result<types::Request, ErrorCode> {
        if !self.edited
            && let Body::Unread(original) = self.body
        {
            return Ok(original);
        }
        let headers = if self.edited {
            edited_fields(&self.fields, &self.original, &self.parts.headers)?
        } else {
            self.fields.clone()
        };
        drop(self.fields);
        let original = match self.body {
            Body::Unread(original) => original,
            Body::Read(read) => {
                // No trailers: the writer dropped unwritten sends the default, `Ok(None)`.
                let (_, trailers) = wit_future::new(|| Ok(None));
                if read.is_empty() {
                    return new_request(&self.parts, headers, None, trailers, None).map(|(r, _)| r);
                }
                let (mut writer, contents) = wit_stream::new();
                let (forwarded, _) =
                    new_request(&self.parts, headers, Some(contents), trailers, None)?;
                wit_bindgen::spawn(async move {
                    // A reader that went away (the next stage refused early) leaves the
                    // rest unwritten; nothing is waiting for it.
                    let _ = writer.write_all(read).await;
                });
                return Ok(forwarded);
            }
        };
        let options = original.get_options();
        if has_no_body(&self.parts) {
            drop(original);
            let (_, trailers) = wit_future::new(|| Ok(None));
            return new_request(&self.parts, headers, None, trailers, options).map(|(r, _)| r);
        }
        let (report, reported) = wit_future::new(|| Ok(()));
        let (contents, trailers) = types::Request::consume_body(original, reported);
        let (forwarded, transmitted) =
            new_request(&self.parts, headers, Some(contents), trailers, options)?;
        // `consume-body` asks for the transmission's outcome to be reported to the
        // original's sender.
        wit_bindgen::spawn(async move {
            let _ = report.write(transmitted.await).await;
        });
        Ok(forwarded)
    }
}

/// `request`'s body, at most `limit` bytes: one byte past it is never held.
async fn read_whole(request: types::Request, limit: u64) -> Result<Vec<u8>, BodyError> {
    // The original's sender learns nothing more than "received" (the default).
    let (_, received) = wit_future::new(|| Ok(()));
    let (mut contents, trailers) = types::Request::consume_body(request, received);
    let most = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut read = Vec::new();
    loop {
        if read.len() == read.capacity() {
            read.reserve((most - read.len()).clamp(1, 16 * 1024));
        }
        let (status, buffer) = contents.read(read).await;
        read = buffer;
        if read.len() as u64 > limit {
            return Err(BodyError::TooLarge);
        }
        if !matches!(status, wit_bindgen::StreamResult::Complete(_)) {
            break;
        }
    }
    drop(contents);
    match trailers.await {
        Ok(_) => Ok(read),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// Whether the request certainly has no body, so that a new request for it needs no
/// body stream (a stream and the task reporting its transmission cost about 36 k
/// instructions per request, `bench/instructions/run`). `Content-Length: 0` says so for
/// any method; without `Content-Length` and `Transfer-Encoding` HTTP/1.1 has no body
/// (RFC 9112 §6.3), but over HTTP/2 a body needs neither, so only for methods whose
/// requests carry none in practice (GET, HEAD, OPTIONS, TRACE). Any other request keeps
/// its body, read or not.
fn has_no_body(parts: &http::request::Parts) -> bool {
    let headers = &parts.headers;
    if headers.contains_key(http::header::TRANSFER_ENCODING) {
        return false;
    }
    let lengths: Vec<_> = headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .collect();
    match lengths[..] {
        [length] => length.as_bytes() == b"0",
        [] => matches!(
            parts.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
        ),
        _ => false,
    }
}

/// A new WASI request with `parts`' method and target, `headers`, `contents` and
/// `trailers`; also the future of its transmission.
fn new_request(
    parts: &http::request::Parts,
    headers: Fields,
    contents: Option<wit_bindgen::StreamReader<u8>>,
    trailers: wit_bindgen::FutureReader<Result<Option<types::Trailers>, ErrorCode>>,
    options: Option<types::RequestOptions>,
) -> Result<
    (
        types::Request,
        wit_bindgen::FutureReader<Result<(), ErrorCode>>,
    ),
    ErrorCode,
> {
    let (request, transmitted) = types::Request::new(headers, contents, trailers, options);
    // A new request is a GET without scheme, authority or path: only what differs is set.
    if parts.method != http::Method::GET {
        request
            .set_method(&types::Method::from(&parts.method))
            .map_err(|()| ErrorCode::HttpRequestMethodInvalid)?;
    }
    if let Some(scheme) = parts.uri.scheme() {
        request
            .set_scheme(Some(&types::Scheme::from(scheme)))
            .map_err(|()| ErrorCode::HttpProtocolError)?;
    }
    if let Some(authority) = parts.uri.authority() {
        request
            .set_authority(Some(authority.as_str()))
            .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    }
    if let Some(path) = parts.uri.path_and_query() {
        request
            .set_path_with_query(Some(path.as_str()))
            .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    }
    Ok((request, transmitted))
}

/// `all` (a `copy-all`) as a header map.
fn header_map(all: &[(String, Vec<u8>)]) -> Result<http::HeaderMap, ErrorCode> {
    let mut headers = http::HeaderMap::with_capacity(all.len());
    for (name, value) in all {
        let name = http::HeaderName::from_bytes(name.as_bytes()).map_err(internal)?;
        let value = http::HeaderValue::from_bytes(value).map_err(internal)?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// A mutable clone of `fields` (whose copy is `original`) changed into `edited`: each name
/// whose values differ is deleted or set, the others stay as they were.
fn edited_fields(
    fields: &Fields,
    original: &[(String, Vec<u8>)],
    edited: &http::HeaderMap,
) -> Result<Fields, ErrorCode> {
    let values_of = |name: &str| -> Vec<&[u8]> {
        original
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    };
    let clone = fields.clone();
    for name in edited.keys() {
        // WASI carries the authority beside the headers, and wasmtime refuses `Host`.
        if name == http::header::HOST {
            continue;
        }
        let now: Vec<&[u8]> = edited.get_all(name).iter().map(|v| v.as_bytes()).collect();
        if now != values_of(name.as_str()) {
            let values: Vec<Vec<u8>> = now.iter().map(|v| v.to_vec()).collect();
            clone.set(name.as_str(), &values).map_err(internal)?;
        }
    }
    for (name, _) in original {
        if !edited.contains_key(name.as_str()) {
            clone.delete(name).map_err(internal)?;
        }
    }
    Ok(clone)
}

/// `response` with its headers edited by `edit` (on a mutable clone of them: each `set`
/// or `append` one host call) and its body, unread, as it came. `edit` also gets the
/// status code.
pub fn edit_response(
    response: types::Response,
    edit: impl FnOnce(u16, &Fields) -> Result<(), types::HeaderError>,
) -> Result<types::Response, ErrorCode> {
    let status = response.get_status_code();
    let headers = response.get_headers().clone();
    edit(status, &headers).map_err(internal)?;
    let (report, reported) = wit_future::new(|| Ok(()));
    let (contents, trailers) = types::Response::consume_body(response, reported);
    let (edited, transmitted) = types::Response::new(headers, Some(contents), trailers);
    edited
        .set_status_code(status)
        .map_err(|()| ErrorCode::HttpProtocolError)?;
    wit_bindgen::spawn(async move {
        let _ = report.write(transmitted.await).await;
    });
    Ok(edited)
}

fn internal(error: impl std::fmt::Display) -> ErrorCode {
    ErrorCode::InternalError(Some(error.to_string()))
}
