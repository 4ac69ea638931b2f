//! Admission control: what the gateway lets in before any component runs, so that one
//! client — abandoning uploads, trickling bodies, or simply sending too much at once —
//! cannot take the capacity other clients need.
//!
//! Three budgets, each global and per client address:
//!
//! * **in flight**: requests holding a component instance, from admission until the
//!   instance is gone (which includes streaming the response body). Beyond the global
//!   limit a request waits in a bounded queue for [`Limits::queue_timeout`]; a full
//!   queue, or a wait that times out, is answered 503 with `Retry-After` at once.
//! * **uploads**: request bodies still being received. Uploads happen before `auth`
//!   has run, so they are what an unauthenticated client can hold; a client over its
//!   share gets 429 before its body is read.
//! * **time**: a body that sends nothing for [`Limits::body_read_timeout`] fails (the
//!   component reading it sees a body error), and so does one longer than
//!   [`Limits::max_body_bytes`] or shorter than its `Content-Length`.
//!
//! And one signal: while the scheduler has been running late for a while (see
//! [`crate::overload`]), new requests are answered 503 at once, whatever the budgets say.

use crate::overload::LagDetector;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use wasmtime_wasi_http::{Error as HttpError, WasiBody};

/// The gateway's admission limits.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Requests holding an instance at once, across all clients.
    pub max_in_flight: usize,
    /// Of those, how many one client address may hold.
    pub max_in_flight_per_client: usize,
    /// Requests waiting for an in-flight slot; beyond them the answer is 503 at once.
    pub max_queued: usize,
    /// Longest a request waits in the queue before it is answered 503.
    pub queue_timeout: Duration,
    /// Request bodies being received at once, across all clients.
    pub max_uploads: usize,
    /// Of those, how many one client address may send.
    pub max_uploads_per_client: usize,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Longest wait for a request's complete header section.
    pub header_read_timeout: Duration,
    /// Largest request body the gateway accepts; a larger declared `Content-Length` is
    /// answered 413 before any of the body is read (and before `100 Continue`).
    pub max_body_bytes: u64,
    /// Smoothed scheduler lag above which new requests are shed; zero turns shedding off.
    pub overload_lag: Duration,
    /// The time over which the scheduler lag is smoothed.
    pub overload_interval: Duration,
}

impl Default for Limits {
    /// Sized so that one address abandoning thousands of uploads, or keeping dozens of
    /// slow requests open, leaves most of the capacity to everyone else.
    fn default() -> Self {
        Limits {
            max_in_flight: 1_000,
            max_in_flight_per_client: 250,
            max_queued: 1_000,
            queue_timeout: Duration::from_secs(2),
            max_uploads: 500,
            max_uploads_per_client: 32,
            body_read_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: 4 << 20,
            overload_lag: Duration::from_millis(50),
            overload_interval: Duration::from_millis(500),
        }
    }
}

/// Why a request was not admitted; each maps to one status and OpenAI error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the gateway is at capacity; retry shortly")]
    Saturated,
    #[error("the gateway is overloaded and is shedding requests; retry shortly")]
    Overloaded,
    #[error(
        "too many requests from this client address are in progress; retry when some have finished"
    )]
    ClientInFlight,
    #[error("too many request bodies from this client address are being received at once")]
    ClientUploads,
    #[error("too many request bodies are being received at once; retry shortly")]
    Uploads,
    #[error("the request body is larger than the gateway accepts")]
    BodyTooLarge,
}

impl Refusal {
    pub fn status(self) -> http::StatusCode {
        match self {
            Refusal::Saturated | Refusal::Overloaded | Refusal::Uploads => {
                http::StatusCode::SERVICE_UNAVAILABLE
            }
            Refusal::ClientInFlight | Refusal::ClientUploads => http::StatusCode::TOO_MANY_REQUESTS,
            Refusal::BodyTooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Refusal::Saturated | Refusal::Overloaded | Refusal::Uploads => "overloaded",
            Refusal::ClientInFlight | Refusal::ClientUploads => "rate_limit_exceeded",
            Refusal::BodyTooLarge => "request_too_large",
        }
    }

    /// Seconds a client should wait before retrying, when retrying can help.
    pub fn retry_after(self) -> Option<u32> {
        match self {
            Refusal::BodyTooLarge => None,
            _ => Some(1),
        }
    }
}

/// Counts per client address, entries removed when they reach zero.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

impl PerClient {
    fn try_take(self: &Arc<Self>, client: IpAddr, limit: usize) -> Option<ClientSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(client).or_insert(0);
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            counts: self.clone(),
            client,
        })
    }
}

/// One unit of a client's budget, given back on drop.
struct ClientSlot {
    counts: Arc<PerClient>,
    client: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
    }
}

/// The gateway's budgets and their current use.
pub struct Admission {
    limits: Limits,
    in_flight: Arc<Semaphore>,
    queued: AtomicUsize,
    uploads: Arc<Semaphore>,
    client_in_flight: Arc<PerClient>,
    client_uploads: Arc<PerClient>,
    load: Arc<LagDetector>,
}

/// A snapshot of the budgets' use, for `/readyz`.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Usage {
    pub in_flight: usize,
    pub max_in_flight: usize,
    pub queued: usize,
    pub uploads: usize,
    pub max_uploads: usize,
    /// Whether new requests are being shed because the scheduler runs late.
    pub overloaded: bool,
    /// How late the latest scheduler tick ran, in milliseconds.
    pub scheduler_lag_ms: u64,
}

/// An admitted request's hold on the in-flight budget, released on drop.
pub struct InFlight {
    _global: OwnedSemaphorePermit,
    _client: ClientSlot,
}

/// A request body's hold on the upload budget, released when the body ends or is dropped.
pub struct Upload {
    _global: OwnedSemaphorePermit,
    _client: ClientSlot,
}

impl Admission {
    pub fn new(limits: Limits) -> Self {
        Admission {
            in_flight: Arc::new(Semaphore::new(limits.max_in_flight)),
            uploads: Arc::new(Semaphore::new(limits.max_uploads)),
            queued: AtomicUsize::new(0),
            client_in_flight: Arc::default(),
            client_uploads: Arc::default(),
            load: Arc::new(LagDetector::new(
                limits.overload_lag,
                limits.overload_interval,
            )),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    pub fn usage(&self) -> Usage {
        Usage {
            in_flight: self.limits.max_in_flight - self.in_flight.available_permits(),
            max_in_flight: self.limits.max_in_flight,
            queued: self.queued.load(Ordering::Relaxed),
            uploads: self.limits.max_uploads - self.uploads.available_permits(),
            max_uploads: self.limits.max_uploads,
            overloaded: self.load.overloaded(),
            scheduler_lag_ms: u64::try_from(self.load.last_lag().as_millis()).unwrap_or(u64::MAX),
        }
    }

    /// Samples the scheduler lag that decides shedding, until the task is aborted.
    pub fn watch_load(&self) -> tokio::task::JoinHandle<()> {
        crate::overload::watch(self.load.clone())
    }

    /// Admits a request from `client`: a client over its share is refused at once; when
    /// the gateway is full the request waits in the bounded queue.
    pub async fn admit(&self, client: IpAddr) -> Result<InFlight, Refusal> {
        if self.load.overloaded() {
            return Err(Refusal::Overloaded);
        }
        let client_slot = self
            .client_in_flight
            .try_take(client, self.limits.max_in_flight_per_client)
            .ok_or(Refusal::ClientInFlight)?;
        let global = match self.in_flight.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Count before checking, so that concurrent arrivals cannot overfill the queue.
                if self.queued.fetch_add(1, Ordering::AcqRel) >= self.limits.max_queued {
                    self.queued.fetch_sub(1, Ordering::AcqRel);
                    return Err(Refusal::Saturated);
                }
                let waited = tokio::time::timeout(
                    self.limits.queue_timeout,
                    self.in_flight.clone().acquire_owned(),
                )
                .await;
                self.queued.fetch_sub(1, Ordering::AcqRel);
                match waited {
                    Ok(Ok(permit)) => permit,
                    _ => return Err(Refusal::Saturated),
                }
            }
        };
        Ok(InFlight {
            _global: global,
            _client: client_slot,
        })
    }

    /// Checks a request's head against the body limits and, when it has a body, takes
    /// an upload slot and wraps the body so that it is timed, bounded and checked
    /// against its declared length; the returned watch tells when it failed.
    pub fn admit_body(
        &self,
        client: IpAddr,
        request: http::Request<WasiBody>,
    ) -> Result<(http::Request<WasiBody>, Arc<BodyWatch>), Refusal> {
        let declared = declared_length(request.headers());
        if declared.is_some_and(|length| length > self.limits.max_body_bytes) {
            return Err(Refusal::BodyTooLarge);
        }
        let watch = Arc::new(BodyWatch::default());
        if request.body().is_end_stream() || declared == Some(0) {
            return Ok((request, watch));
        }
        let client_slot = self
            .client_uploads
            .try_take(client, self.limits.max_uploads_per_client)
            .ok_or(Refusal::ClientUploads)?;
        let global = self
            .uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Uploads)?;
        let upload = Upload {
            _global: global,
            _client: client_slot,
        };
        let (parts, body) = request.into_parts();
        let body = GuardedBody {
            inner: body,
            watch: watch.clone(),
            upload: Some(upload),
            declared,
            received: 0,
            limit: self.limits.max_body_bytes,
            read_timeout: self.limits.body_read_timeout,
            stall: None,
            done: false,
        };
        Ok((
            http::Request::from_parts(parts, http_body_util::BodyExt::boxed_unsync(body)),
            watch,
        ))
    }
}

/// The `Content-Length` a request declares, if it declares exactly one valid value.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// How a request body failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFault {
    /// Nothing arrived for the body read timeout.
    Stalled,
    /// It grew past the gateway's limit.
    TooLarge,
    /// It ended before its `Content-Length`, or the client went away mid-body.
    Incomplete,
}

impl BodyFault {
    pub fn status(self) -> http::StatusCode {
        match self {
            BodyFault::Stalled => http::StatusCode::REQUEST_TIMEOUT,
            BodyFault::TooLarge => http::StatusCode::PAYLOAD_TOO_LARGE,
            BodyFault::Incomplete => http::StatusCode::BAD_REQUEST,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            BodyFault::Stalled => "body_timeout",
            BodyFault::TooLarge => "request_too_large",
            BodyFault::Incomplete => "incomplete_body",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            BodyFault::Stalled => "the request body stopped arriving",
            BodyFault::TooLarge => "the request body is larger than the gateway accepts",
            BodyFault::Incomplete => "the request body ended before its declared length",
        }
    }
}

type OnFault = Box<dyn FnOnce() + Send>;

/// Tells whoever serves a request that its body failed: the request cannot be served, so
/// it is ended at once rather than left to components that may not notice (wasip3's
/// `http_compat` body forwarding, 0.7.1, waits forever when the body it forwards fails).
#[derive(Default)]
pub struct BodyWatch(Mutex<WatchState>);

#[derive(Default)]
enum WatchState {
    #[default]
    Unwatched,
    Watched(OnFault),
    Failed(BodyFault),
}

impl BodyWatch {
    /// Runs `on_fault` when the body fails (at once, if it has already).
    pub fn on_fault(&self, on_fault: impl FnOnce() + Send + 'static) {
        let mut state = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if matches!(*state, WatchState::Failed(_)) {
            drop(state);
            on_fault();
        } else {
            *state = WatchState::Watched(Box::new(on_fault));
        }
    }

    /// How the body failed, if it did.
    pub fn fault(&self) -> Option<BodyFault> {
        match *self.0.lock().unwrap_or_else(|e| e.into_inner()) {
            WatchState::Failed(fault) => Some(fault),
            _ => None,
        }
    }

    fn fail(&self, fault: BodyFault) {
        let previous = std::mem::replace(
            &mut *self.0.lock().unwrap_or_else(|e| e.into_inner()),
            WatchState::Failed(fault),
        );
        if let WatchState::Watched(on_fault) = previous {
            on_fault();
        }
    }
}

/// A request body that fails — so the component reading it sees an error and the chain
/// ends — when it stalls, grows past the limit, or ends short of its `Content-Length`,
/// and that gives its upload slot back as soon as it is complete.
struct GuardedBody {
    inner: WasiBody,
    watch: Arc<BodyWatch>,
    upload: Option<Upload>,
    declared: Option<u64>,
    received: u64,
    limit: u64,
    read_timeout: Duration,
    /// Armed while a read is pending: when it fires, the body has stalled.
    stall: Option<Pin<Box<tokio::time::Sleep>>>,
    done: bool,
}

impl GuardedBody {
    fn finish(&mut self) {
        self.done = true;
        self.stall = None;
        self.upload = None;
    }

    fn fail(&mut self, error: HttpError) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        self.finish();
        self.watch.fail(match &error {
            HttpError::ConnectionReadTimeout => BodyFault::Stalled,
            HttpError::HttpRequestBodySize(Some(received)) if *received > self.limit => {
                BodyFault::TooLarge
            }
            _ => BodyFault::Incomplete,
        });
        Poll::Ready(Some(Err(error)))
    }
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Pending => {
                let read_timeout = this.read_timeout;
                let stall = this
                    .stall
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(read_timeout)));
                if stall.as_mut().poll(cx).is_ready() {
                    return this.fail(HttpError::ConnectionReadTimeout);
                }
                Poll::Pending
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.stall = None;
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    if this.received > this.limit
                        || this.declared.is_some_and(|d| this.received > d)
                    {
                        return this.fail(HttpError::HttpRequestBodySize(Some(this.received)));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => this.fail(error),
            Poll::Ready(None) => {
                if this.declared.is_some_and(|d| this.received < d) {
                    return this.fail(HttpError::HttpRequestBodySize(Some(this.received)));
                }
                this.finish();
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::net::Ipv4Addr;

    const ALICE: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    const BOB: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

    fn limits() -> Limits {
        Limits {
            max_in_flight: 2,
            max_in_flight_per_client: 1,
            max_queued: 1,
            queue_timeout: Duration::from_millis(50),
            max_uploads: 2,
            max_uploads_per_client: 1,
            body_read_timeout: Duration::from_millis(50),
            header_read_timeout: Duration::from_secs(1),
            max_body_bytes: 10,
            overload_lag: Duration::from_millis(50),
            overload_interval: Duration::from_millis(500),
        }
    }

    #[tokio::test]
    async fn an_overloaded_scheduler_sheds_new_requests_until_it_catches_up() {
        let admission = Admission::new(limits());
        let due = std::time::Instant::now();
        admission.load.record(due, due + Duration::from_millis(600));
        assert_eq!(
            admission.admit(ALICE).await.err(),
            Some(Refusal::Overloaded)
        );
        assert!(admission.usage().overloaded);
        assert_eq!(
            admission.usage().in_flight,
            0,
            "a shed request holds nothing"
        );
        admission.load.record(
            due + Duration::from_millis(1610),
            due + Duration::from_millis(1611),
        );
        assert!(admission.admit(ALICE).await.is_ok());
    }

    /// A body that yields `chunks`, then stays open (never ends) if `hang`.
    fn body(chunks: &[&'static [u8]], hang: bool) -> WasiBody {
        let frames = chunks
            .iter()
            .map(|c| Ok::<_, HttpError>(Frame::data(Bytes::from_static(c))))
            .collect::<Vec<_>>();
        let stream = futures_util::stream::iter(frames);
        if hang {
            StreamBody::new(futures_util::StreamExt::chain(
                stream,
                futures_util::stream::pending(),
            ))
            .boxed_unsync()
        } else {
            StreamBody::new(stream).boxed_unsync()
        }
    }

    fn request(length: Option<u64>, body: WasiBody) -> http::Request<WasiBody> {
        let mut request = http::Request::new(body);
        if let Some(length) = length {
            request
                .headers_mut()
                .insert(http::header::CONTENT_LENGTH, length.into());
        }
        request
    }

    #[tokio::test]
    async fn a_client_over_its_share_is_refused_while_others_are_admitted() {
        let admission = Admission::new(limits());
        let held = admission.admit(ALICE).await.unwrap();
        assert_eq!(
            admission.admit(ALICE).await.err(),
            Some(Refusal::ClientInFlight)
        );
        let bob = admission.admit(BOB).await.unwrap();
        assert_eq!(admission.usage().in_flight, 2);
        drop((held, bob));
        assert_eq!(admission.usage().in_flight, 0);
        admission.admit(ALICE).await.unwrap();
    }

    #[tokio::test]
    async fn a_full_gateway_queues_briefly_then_answers_saturated() {
        let mut limits = limits();
        limits.max_in_flight_per_client = 10;
        let admission = Arc::new(Admission::new(limits));
        let _a = admission.admit(ALICE).await.unwrap();
        let _b = admission.admit(ALICE).await.unwrap();
        // One may wait; the next finds the queue full and is refused without waiting.
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(ALICE).await.err() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(admission.usage().queued, 1);
        assert_eq!(admission.admit(BOB).await.err(), Some(Refusal::Saturated));
        assert_eq!(waiting.await.unwrap(), Some(Refusal::Saturated));
        assert_eq!(admission.usage().queued, 0);
    }

    #[tokio::test]
    async fn a_queued_request_gets_the_slot_that_frees() {
        let mut limits = limits();
        limits.max_in_flight_per_client = 10;
        limits.queue_timeout = Duration::from_secs(5);
        let admission = Arc::new(Admission::new(limits));
        let a = admission.admit(ALICE).await.unwrap();
        let _b = admission.admit(ALICE).await.unwrap();
        let waiting = tokio::spawn({
            let admission = admission.clone();
            async move { admission.admit(BOB).await.is_ok() }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        drop(a);
        assert!(waiting.await.unwrap());
    }

    #[tokio::test]
    async fn a_declared_body_over_the_limit_is_refused_before_reading() {
        let admission = Admission::new(limits());
        let refused = admission.admit_body(ALICE, request(Some(11), body(&[], true)));
        assert!(matches!(refused, Err(Refusal::BodyTooLarge)));
        assert_eq!(admission.usage().uploads, 0);
    }

    #[tokio::test]
    async fn uploads_are_limited_per_client_and_released_when_the_body_ends() {
        let admission = Admission::new(limits());
        let (first, _) = admission
            .admit_body(ALICE, request(Some(3), body(&[b"abc"], false)))
            .unwrap();
        assert_eq!(admission.usage().uploads, 1);
        let second = admission.admit_body(ALICE, request(Some(3), body(&[b"abc"], false)));
        assert!(matches!(second, Err(Refusal::ClientUploads)));
        let collected = first.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&collected[..], b"abc");
        assert_eq!(admission.usage().uploads, 0);
        admission
            .admit_body(ALICE, request(Some(3), body(&[b"abc"], false)))
            .unwrap();
    }

    #[tokio::test]
    async fn a_body_without_content_needs_no_upload_slot() {
        let admission = Admission::new(limits());
        let request = http::Request::new(
            http_body_util::Empty::new()
                .map_err(|n| match n {})
                .boxed_unsync(),
        );
        admission.admit_body(ALICE, request).unwrap();
        assert_eq!(admission.usage().uploads, 0);
    }

    async fn body_error(request: http::Request<WasiBody>) -> HttpError {
        match request.into_body().collect().await {
            Ok(_) => panic!("the body should fail"),
            Err(error) => error,
        }
    }

    #[tokio::test]
    async fn a_stalled_body_fails_and_frees_its_slot() {
        let admission = Admission::new(limits());
        let (request, watch) = admission
            .admit_body(ALICE, request(Some(5), body(&[b"ab"], true)))
            .unwrap();
        let told = Arc::new(std::sync::atomic::AtomicBool::new(false));
        watch.on_fault({
            let told = told.clone();
            move || told.store(true, Ordering::SeqCst)
        });
        assert!(matches!(
            body_error(request).await,
            HttpError::ConnectionReadTimeout
        ));
        assert_eq!(admission.usage().uploads, 0);
        assert!(told.load(Ordering::SeqCst));
        assert_eq!(watch.fault(), Some(BodyFault::Stalled));
    }

    #[tokio::test]
    async fn a_body_shorter_than_declared_fails() {
        let admission = Admission::new(limits());
        let (request, watch) = admission
            .admit_body(ALICE, request(Some(5), body(&[b"ab"], false)))
            .unwrap();
        assert!(matches!(
            body_error(request).await,
            HttpError::HttpRequestBodySize(Some(2))
        ));
        assert_eq!(watch.fault(), Some(BodyFault::Incomplete));
    }

    #[tokio::test]
    async fn a_streamed_body_past_the_limit_fails() {
        let admission = Admission::new(limits());
        let (request, watch) = admission
            .admit_body(ALICE, request(None, body(&[b"012345", b"6789ab"], false)))
            .unwrap();
        assert!(matches!(
            body_error(request).await,
            HttpError::HttpRequestBodySize(Some(12))
        ));
        assert_eq!(watch.fault(), Some(BodyFault::TooLarge));
    }

    #[tokio::test]
    async fn a_dropped_body_frees_its_slot() {
        let admission = Admission::new(limits());
        let (request, _) = admission
            .admit_body(ALICE, request(Some(5), body(&[b"ab"], true)))
            .unwrap();
        assert_eq!(admission.usage().uploads, 1);
        drop(request);
        assert_eq!(admission.usage().uploads, 0);
    }
}
