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
//! - A middleware that needs a few headers by name (`telemetry`, `auth`) need not copy
//!   them all into an `http::HeaderMap`: [`Light`] asks for them by name or copies them
//!   without parsing, and makes its edits on the host's fields (`waf`, which inspects
//!   every header, keeps [`Incoming`]). Measured 2026-12-06 with the bench binary of
//!   7bd13d1, each figure one or two callgrind windows: `chat` behind `telemetry`
//!   648 k -> 509-513 k instructions per request (telemetry's own code 203 k -> 69 k;
//!   calls into the host 38 -> 40 per request, headers asked for by name instead of one
//!   `copy-all`; with the `copy-all` kept, 526 k), behind `auth` 515 k -> 422 k (auth's
//!   own code 159 k -> 68 k; host calls 25 both).
//!
//! Only headers are edited: method, scheme, authority and path go on as they came.

// The generated binding of `next` is unsafe glue; everything else is safe code.
#![deny(unsafe_code)]
#![deny(missing_docs)]
#![cfg(target_arch = "wasm32")]

use spin_sdk::wasip3::http::types::{self, ErrorCode, Fields};
use spin_sdk::wasip3::{wit_bindgen, wit_future, wit_stream};
use std::borrow::Cow;

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
    /// The original's headers as WASI holds them: an edited request's headers are a
    /// clone of them with the names set (a host call each), not a list built in the
    /// component and lifted whole.
    fields: Fields,
    body: Body,
    /// The names [`Incoming::set_header`] set, in the order first set: the request's
    /// only edits, so that forwarding it needs no comparison of every header with the
    /// original's (in `waf`, which sets `traceparent` on every traced request, that
    /// comparison cost about 35 k instructions per request, `bench/instructions`).
    edits: Vec<http::HeaderName>,
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
        let (method, uri) = target(&request)?;
        let fields = request.get_headers();
        let headers = header_map(&fields.copy_all())?;
        let (mut parts, ()) = http::Request::new(()).into_parts();
        parts.method = method;
        parts.uri = uri;
        parts.headers = headers;
        Ok(Self {
            parts,
            fields,
            body: Body::Unread(request),
            edits: Vec::new(),
        })
    }

    /// Method, target and headers as they came (or as edited so far).
    pub fn parts(&self) -> &http::request::Parts {
        &self.parts
    }

    /// Sets the header `name` to `value` alone, replacing what it had; the request then
    /// goes on as a new one with it. Not for `Host`: WASI carries the authority beside
    /// the headers, and wasmtime refuses the header, so [`Incoming::forward`] would fail.
    pub fn set_header(&mut self, name: http::HeaderName, value: http::HeaderValue) {
        if !self.edits.contains(&name) {
            self.edits.push(name.clone());
        }
        self.parts.headers.insert(name, value);
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
        if self.edits.is_empty()
            && let Body::Unread(original) = self.body
        {
            return Ok(original);
        }
        let headers = self.fields.clone();
        for name in &self.edits {
            let values: Vec<Vec<u8>> = self
                .parts
                .headers
                .get_all(name)
                .iter()
                .map(|value| value.as_bytes().to_vec())
                .collect();
            headers.set(name.as_str(), &values).map_err(internal)?;
        }
        drop(self.fields);
        let original = match self.body {
            Body::Unread(original) => original,
            Body::Read(read) => {
                // No trailers: the writer dropped unwritten sends the default, `Ok(None)`.
                let (_, trailers) = wit_future::new(|| Ok(None));
                if read.is_empty() {
                    return new_request(
                        &self.parts.method,
                        &self.parts.uri,
                        headers,
                        None,
                        trailers,
                        None,
                    )
                    .map(|(r, _)| r);
                }
                let (mut writer, contents) = wit_stream::new();
                let (forwarded, _) = new_request(
                    &self.parts.method,
                    &self.parts.uri,
                    headers,
                    Some(contents),
                    trailers,
                    None,
                )?;
                wit_bindgen::spawn(async move {
                    // A reader that went away (the next stage refused early) leaves the
                    // rest unwritten; nothing is waiting for it.
                    let _ = writer.write_all(read).await;
                });
                return Ok(forwarded);
            }
        };
        let no_body = has_no_body(&self.parts);
        forward_around(
            original,
            &self.parts.method,
            &self.parts.uri,
            headers,
            no_body,
        )
    }
}

/// A new request with `original`'s method, target and options, `headers`, and
/// `original`'s body, unread, unless `no_body` says it certainly has none.
fn forward_around(
    original: types::Request,
    method: &http::Method,
    uri: &http::Uri,
    headers: Fields,
    no_body: bool,
) -> Result<types::Request, ErrorCode> {
    let options = original.get_options();
    if no_body {
        drop(original);
        let (_, trailers) = wit_future::new(|| Ok(None));
        return new_request(method, uri, headers, None, trailers, options).map(|(r, _)| r);
    }
    let (report, reported) = wit_future::new(|| Ok(()));
    let (contents, trailers) = types::Request::consume_body(original, reported);
    let (forwarded, transmitted) =
        new_request(method, uri, headers, Some(contents), trailers, options)?;
    // `consume-body` asks for the transmission's outcome to be reported to the
    // original's sender.
    wit_bindgen::spawn(async move {
        let _ = report.write(transmitted.await).await;
    });
    Ok(forwarded)
}

/// An incoming request for a middleware that reads a few headers by name and edits a
/// few (`telemetry`, `auth`): method and target read as [`Incoming`] reads them, the
/// headers never parsed into an `http::HeaderMap` (a parsed name, a copied value and a
/// hash per header, most of them never looked at). The body is never read.
///
/// Headers are either asked for one by one ([`Light::get`], [`Light::has`]: a host call
/// each) or copied all at once ([`Light::copy_headers`]: one host call, and one call
/// into the component's allocator per name and per value, about 26 k instructions for
/// eight headers under wasmtime 48, `bench/instructions/run`). Edits are kept as a list;
/// when the request goes on, those that change something are made on a clone of the
/// original's fields (a host call each, the first also copying the whole map in the
/// host).
pub struct Light {
    request: types::Request,
    method: http::Method,
    uri: http::Uri,
    fields: Fields,
    copied: Option<Vec<(String, Vec<u8>)>>,
    /// Names set to one value (`Some`) or deleted (`None`), in the order first edited.
    edits: Vec<(Cow<'static, str>, Option<Vec<u8>>)>,
}

impl Light {
    /// Reads the method and target of `request` (five host calls with its headers'
    /// handle), checked as [`Incoming::read`] checks them.
    pub fn read(request: types::Request) -> Result<Self, ErrorCode> {
        let (method, uri) = target(&request)?;
        let fields = request.get_headers();
        Ok(Self {
            request,
            method,
            uri,
            fields,
            copied: None,
            edits: Vec::new(),
        })
    }

    /// The method as it came.
    pub fn method(&self) -> &http::Method {
        &self.method
    }

    /// The target as it came.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// The values of the header `name` (lowercase) as they came: one host call, or none
    /// once the headers are copied.
    pub fn get(&self, name: &str) -> Vec<Vec<u8>> {
        match &self.copied {
            Some(copied) => copied
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.clone())
                .collect(),
            None => self.fields.get(name),
        }
    }

    /// Whether the header `name` (lowercase) came: one host call, or none once the
    /// headers are copied.
    pub fn has(&self, name: &str) -> bool {
        match &self.copied {
            Some(copied) => copied.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)),
            None => self.fields.has(name),
        }
    }

    /// Every header as it came, in order (names lowercase, as WASI holds them), copied
    /// into the component once.
    pub fn copy_headers(&mut self) -> &[(String, Vec<u8>)] {
        self.copied.get_or_insert_with(|| self.fields.copy_all())
    }

    /// The headers [`Light::copy_headers`] copied, if it was called.
    pub fn copied(&self) -> Option<&[(String, Vec<u8>)]> {
        self.copied.as_deref()
    }

    /// Replaces the values of the header `name` (lowercase) with `value`.
    pub fn set(&mut self, name: impl Into<Cow<'static, str>>, value: Vec<u8>) {
        self.edit(name.into(), Some(value));
    }

    /// Deletes the header `name` (lowercase).
    pub fn delete(&mut self, name: impl Into<Cow<'static, str>>) {
        self.edit(name.into(), None);
    }

    fn edit(&mut self, name: Cow<'static, str>, value: Option<Vec<u8>>) {
        match self.edits.iter_mut().find(|(n, _)| *n == name) {
            Some(edit) => edit.1 = value,
            None => self.edits.push((name, value)),
        }
    }

    /// The request for the next handler: the original, untouched, when nothing was
    /// edited (or, headers copied, no edit changes them); otherwise a new request with
    /// the edited headers and the original's body, unread (or none, when it certainly
    /// has none).
    pub fn forward(mut self) -> Result<types::Request, ErrorCode> {
        // WASI carries the authority beside the headers, and wasmtime refuses `Host`.
        self.edits
            .retain(|(name, _)| !name.eq_ignore_ascii_case(http::header::HOST.as_str()));
        if let Some(copied) = &self.copied {
            self.edits.retain(|(name, value)| {
                let mut was = copied
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v);
                match value {
                    Some(value) => !(was.next() == Some(value) && was.next().is_none()),
                    None => was.next().is_some(),
                }
            });
        }
        if self.edits.is_empty() {
            return Ok(self.request);
        }
        let edited = |name: &str| {
            self.edits
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
        };
        let no_body = match &self.copied {
            Some(copied) => {
                let now = |name: &str| -> Vec<&[u8]> {
                    match edited(name) {
                        Some((_, value)) => value.as_deref().into_iter().collect(),
                        None => copied
                            .iter()
                            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
                            .map(|(_, v)| v.as_slice())
                            .collect(),
                    }
                };
                no_body(
                    &self.method,
                    &now(http::header::TRANSFER_ENCODING.as_str()),
                    &now(http::header::CONTENT_LENGTH.as_str()),
                )
            }
            None => {
                // Neither header is one the middlewares edit: asked for, the second only
                // when the first does not already say there is a body.
                let transfer_encoding = match edited(http::header::TRANSFER_ENCODING.as_str()) {
                    Some((_, value)) => value.is_some(),
                    None => self.fields.has(http::header::TRANSFER_ENCODING.as_str()),
                };
                if transfer_encoding {
                    false
                } else {
                    let content_length = match edited(http::header::CONTENT_LENGTH.as_str()) {
                        Some((_, value)) => value.iter().cloned().collect(),
                        None => self.fields.get(http::header::CONTENT_LENGTH.as_str()),
                    };
                    let content_length: Vec<&[u8]> =
                        content_length.iter().map(Vec::as_slice).collect();
                    no_body(&self.method, &[], &content_length)
                }
            }
        };
        // Edits on a clone, even with the headers copied: a new list built from the
        // edited copy (`from-list`, one host call) cost more, the host parsing every
        // header again and the component building the list (`chat` behind `auth`: 429.2 k
        // instructions per request against 422.6 k, `bench/instructions/run`).
        let headers = edit_clone(&self.fields, &self.edits)?;
        drop(self.fields);
        forward_around(self.request, &self.method, &self.uri, headers, no_body)
    }
}

/// A mutable clone of `fields` with `edits` made, a host call each.
fn edit_clone(
    fields: &Fields,
    edits: &[(Cow<'static, str>, Option<Vec<u8>>)],
) -> Result<Fields, ErrorCode> {
    let clone = fields.clone();
    for (name, value) in edits {
        match value {
            Some(value) => clone
                .set(name, std::slice::from_ref(value))
                .map_err(internal)?,
            None => clone.delete(name).map_err(internal)?,
        }
    }
    Ok(clone)
}

/// The method and target of `request` (four host calls), checked as `http` checks them.
fn target(request: &types::Request) -> Result<(http::Method, http::Uri), ErrorCode> {
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
    Ok((method, uri))
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
    let values = |name| -> Vec<&[u8]> {
        headers
            .get_all(name)
            .iter()
            .map(http::HeaderValue::as_bytes)
            .collect()
    };
    no_body(
        &parts.method,
        &values(http::header::TRANSFER_ENCODING),
        &values(http::header::CONTENT_LENGTH),
    )
}

/// [`has_no_body`] from the method and the values of `Transfer-Encoding` and
/// `Content-Length`.
fn no_body(method: &http::Method, transfer_encoding: &[&[u8]], content_length: &[&[u8]]) -> bool {
    if !transfer_encoding.is_empty() {
        return false;
    }
    match content_length {
        [length] => *length == b"0",
        [] => matches!(
            *method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS | http::Method::TRACE
        ),
        _ => false,
    }
}

/// A new WASI request with `method` and `uri`'s target, `headers`, `contents` and
/// `trailers`; also the future of its transmission.
fn new_request(
    method: &http::Method,
    uri: &http::Uri,
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
    if *method != http::Method::GET {
        request
            .set_method(&types::Method::from(method))
            .map_err(|()| ErrorCode::HttpRequestMethodInvalid)?;
    }
    if let Some(scheme) = uri.scheme() {
        request
            .set_scheme(Some(&types::Scheme::from(scheme)))
            .map_err(|()| ErrorCode::HttpProtocolError)?;
    }
    if let Some(authority) = uri.authority() {
        request
            .set_authority(Some(authority.as_str()))
            .map_err(|()| ErrorCode::HttpRequestUriInvalid)?;
    }
    if let Some(path) = uri.path_and_query() {
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
    // A new response is a 200: only another status costs a host call.
    if status != 200 {
        edited
            .set_status_code(status)
            .map_err(|()| ErrorCode::HttpProtocolError)?;
    }
    wit_bindgen::spawn(async move {
        let _ = report.write(transmitted.await).await;
    });
    Ok(edited)
}

fn internal(error: impl std::fmt::Display) -> ErrorCode {
    ErrorCode::InternalError(Some(error.to_string()))
}
