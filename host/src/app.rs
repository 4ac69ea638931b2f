//! A loaded application: one composed, pre-instantiated component per HTTP trigger,
//! and the dispatch of requests to fresh instances of them.

use crate::admission::{Admission, BodyFault, InFlight, Limits, Refusal};
use crate::compose::{self, Dependency, Inherit, Part};
use crate::key_value::SqliteKeyValue;
use crate::manifest::{DependencySource, HttpTrigger, Manifest};
use crate::outbound::{AllowedHost, OutboundPolicy};
use crate::routes::{Route, Router};
use crate::runtime::{self, Grants, HostState};
use crate::variables::AppVariables;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::Body as _;
use http_body_util::BodyExt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmtime::component::{Component, GuestTaskId};
use wasmtime::error::Context as _;
use wasmtime::{Engine, Store, StoreContextMut};
use wasmtime_wasi_http::handler::{
    self, ExpirationError, HandlerState, InstantiationError, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::{WasiBody, WasiHttpView};

/// Captured guest output beyond this fails the guest's writes; only tests capture.
const GUEST_STDOUT_CAPACITY: usize = 64 << 20;

/// How an application is loaded.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// SQLite file behind `spin:key-value`; `None` keeps the data in memory.
    pub key_value_path: Option<PathBuf>,
    /// Directory for compiled code reused across loads; `None` compiles every time.
    pub compile_cache: Option<PathBuf>,
    /// Longest wait for a component's response headers. Every `*_timeout_ms` variable
    /// of a component must be shorter (checked at load).
    pub response_timeout: Duration,
    /// Longest a response body (e.g. a token stream) may keep an instance alive.
    pub body_timeout: Duration,
    /// What the gateway admits before any component runs.
    pub limits: Limits,
    /// Answer `GET /healthz` and `GET /readyz` from the host, without a component.
    pub probes: bool,
    /// Variable overrides consulted before the process environment, as `SPIN_VARIABLE_<NAME>`.
    pub env_overrides: Vec<(String, String)>,
    /// Keep guests' stdout (e.g. request logs) in memory, readable with [`App::guest_stdout`].
    pub capture_guest_stdout: bool,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            key_value_path: None,
            compile_cache: None,
            response_timeout: Duration::from_secs(60),
            body_timeout: Duration::from_secs(600),
            env_overrides: Vec::new(),
            capture_guest_stdout: false,
            limits: Limits::default(),
            probes: true,
        }
    }
}

impl AppOptions {
    fn env(&self, name: &str) -> Option<String> {
        self.env_overrides
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var(name).ok())
    }
}

/// A running application's request handlers.
pub struct App {
    engine: Engine,
    router: Router<Arc<Trigger>>,
    guest_stdout: Option<wasmtime_wasi::p2::pipe::MemoryOutputPipe>,
    admission: Admission,
    instances: Arc<AtomicUsize>,
    probes: bool,
}

struct Trigger {
    route: String,
    parsed_route: Route,
    handler: ProxyHandler<TriggerState>,
}

struct TriggerState {
    engine: Engine,
    pre: ProxyPre<HostState>,
    grants: Arc<Grants>,
    response_timeout: Duration,
    body_timeout: Duration,
    instances: Arc<AtomicUsize>,
}

fn read_wasm(path: &Path, what: &str) -> wasmtime::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        wasmtime::format_err!(
            "cannot read {what} from {}: {e}. Build the components first: `make build`",
            path.display()
        )
    })
}

/// Reads one trigger's primary component, dependencies and middleware, and composes them.
pub fn compose_trigger(
    manifest: &Manifest,
    trigger: &HttpTrigger,
) -> wasmtime::Result<compose::Composed> {
    let component_part = |id: &str, inherit: Inherit| -> wasmtime::Result<Part> {
        let path = manifest
            .component_source(id)
            .ok_or_else(|| wasmtime::format_err!("component `{id}` has no local source"))?;
        Ok(Part {
            name: id.to_string(),
            bytes: read_wasm(&path, &format!("component `{id}`"))?,
            inherit,
        })
    };
    let source_part = |source: &DependencySource| -> wasmtime::Result<Part> {
        let inherit = Inherit::from_manifest(source.inherit_configuration());
        match source {
            DependencySource::AppComponent { component, .. } => component_part(component, inherit),
            DependencySource::Local { path, .. } => Ok(Part {
                name: path.clone(),
                bytes: read_wasm(&manifest.resolve_path(path), &format!("`{path}`"))?,
                inherit,
            }),
            DependencySource::Registry { .. } => {
                wasmtime::bail!("registry dependencies are not supported")
            }
        }
    };
    let decl = &manifest.components[&trigger.component];
    let primary = component_part(&trigger.component, Inherit::All)?;
    // `dependencies_inherit_configuration = true` grants every dependency everything;
    // the manifest refuses it together with per-dependency `inherit_configuration`.
    let inherit_all = decl.dependencies_inherit_configuration == Some(true);
    let dependencies = decl
        .dependencies
        .iter()
        .map(|(import, source)| {
            let mut part = source_part(source)?;
            if inherit_all {
                part.inherit = Inherit::All;
            }
            Ok(Dependency {
                import: import.clone(),
                export: source.export().map(str::to_string),
                part,
            })
        })
        .collect::<wasmtime::Result<Vec<_>>>()?;
    let middleware = trigger
        .dependencies
        .middleware
        .iter()
        .map(source_part)
        .collect::<wasmtime::Result<Vec<_>>>()?;
    // What a dependency could reach through the host: the sets `chat` has something in.
    let mut holds = compose::Holds::default();
    for (set, held) in [
        ("variables", !decl.variables.is_empty()),
        ("key_value_stores", !decl.key_value_stores.is_empty()),
        (
            "allowed_outbound_hosts",
            !decl.allowed_outbound_hosts.is_empty(),
        ),
        ("environment", !decl.environment.is_empty()),
    ] {
        if held {
            holds.0.insert(set);
        }
    }
    Ok(compose::compose(primary, &holds, dependencies, middleware)?)
}

impl App {
    /// Loads, composes and pre-instantiates every HTTP trigger of `manifest`.
    pub fn load(manifest: &Manifest, options: &AppOptions) -> wasmtime::Result<Self> {
        let max_instances = u32::try_from(options.limits.max_in_flight)
            .map_err(|_| wasmtime::format_err!("max_in_flight is too large"))?;
        let engine = runtime::engine(options.compile_cache.as_deref(), max_instances)?;
        let instances = Arc::new(AtomicUsize::new(0));
        let variables = AppVariables::resolve(manifest, |k| options.env(k))?;
        let key_value = Arc::new(match &options.key_value_path {
            Some(path) => SqliteKeyValue::open(path)?,
            None => SqliteKeyValue::in_memory()?,
        });
        let guest_stdout = options
            .capture_guest_stdout
            .then(|| wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(GUEST_STDOUT_CAPACITY));
        let mut routes = Vec::new();
        for trigger in &manifest.http_triggers {
            let composed = compose_trigger(manifest, trigger)
                .with_context(|| format!("composing route `{}`", trigger.route))?;
            let component = Component::new(&engine, &composed.bytes).with_context(|| {
                format!(
                    "compiling the composed component of route `{}`",
                    trigger.route
                )
            })?;
            let linker = runtime::linker(&engine, &component)
                .with_context(|| format!("linking route `{}`", trigger.route))?;
            let pre = linker
                .instantiate_pre(&component)
                .and_then(wasmtime_wasi_http::p3::bindings::ServicePre::new)
                .with_context(|| format!("route `{}`", trigger.route))?;

            let primary_id = &trigger.component;
            let decl = &manifest.components[primary_id];
            let outbound = decl
                .allowed_outbound_hosts
                .iter()
                .map(|template| {
                    let entry = variables.expand(template)?;
                    AllowedHost::parse_or_skip(template, &entry).map_err(|e| {
                        wasmtime::format_err!(
                            "component `{primary_id}`: allowed_outbound_hosts entry `{template}`: {e}"
                        )
                    })
                })
                // An optional endpoint left empty adds no host.
                .filter_map(Result::transpose)
                .collect::<wasmtime::Result<OutboundPolicy>>()?;
            let component_variables = variables.component_view(&decl.variables)?;
            check_deadlines(primary_id, &component_variables, options.response_timeout)?;
            let grants = Arc::new(Grants {
                variables: component_variables,
                outbound,
                key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                key_value: key_value.clone(),
                environment: decl
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                guest_stdout: guest_stdout.clone(),
            });
            let state = TriggerState {
                engine: engine.clone(),
                pre: ProxyPre::P3(pre),
                grants,
                response_timeout: options.response_timeout,
                body_timeout: options.body_timeout,
                instances: instances.clone(),
            };
            let route = Route::parse(&trigger.route).map_err(|e| wasmtime::format_err!(e))?;
            routes.push((
                route.clone(),
                Arc::new(Trigger {
                    route: trigger.route.clone(),
                    parsed_route: route,
                    handler: ProxyHandler::new(state),
                }),
            ));
        }
        Ok(App {
            engine,
            router: Router::new(routes),
            guest_stdout,
            admission: Admission::new(options.limits.clone()),
            instances,
            probes: options.probes,
        })
    }

    /// Everything guests wrote to stdout, when loaded with `capture_guest_stdout`.
    pub fn guest_stdout(&self) -> Option<String> {
        self.guest_stdout
            .as_ref()
            .map(|pipe| String::from_utf8_lossy(&pipe.contents()).into_owned())
    }

    /// The engine, whose epoch must advance (see [`App::tick_epochs`]) for guests to be preempted.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Samples the scheduler lag that decides load shedding until the task is aborted.
    pub fn watch_load(&self) -> tokio::task::JoinHandle<()> {
        self.admission.watch_load()
    }

    /// Advances the engine epoch every 10 ms until the returned task is dropped or aborted.
    pub fn tick_epochs(&self) -> tokio::task::JoinHandle<()> {
        let engine = self.engine.clone();
        tokio::spawn(async move {
            let mut interval = tokio::time::interval(Duration::from_millis(10));
            loop {
                interval.tick().await;
                engine.increment_epoch();
            }
        })
    }

    /// Live component instances, across all routes.
    pub fn live_instances(&self) -> usize {
        self.instances.load(Ordering::Acquire)
    }

    /// The admission budgets' current use.
    pub fn usage(&self) -> crate::admission::Usage {
        self.admission.usage()
    }

    /// The admission limits in force.
    pub fn limits(&self) -> &Limits {
        self.admission.limits()
    }

    /// Handles one request from `client` end to end. Failures become OpenAI-style JSON errors.
    pub async fn handle(
        &self,
        mut request: http::Request<WasiBody>,
        client: IpAddr,
    ) -> http::Response<WasiBody> {
        if self.probes
            && let Some(response) = self.probe(&request)
        {
            return response;
        }
        let path = request.uri().path().to_string();
        let Some(trigger) = self.router.find(&path) else {
            return error_response(
                http::StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route matches {path}"),
            );
        };
        // The body first: its checks need no waiting, and an oversized declared body is
        // refused before hyper sends `100 Continue` (it does so when the body is polled).
        let body_watch;
        (request, body_watch) = match self.admission.admit_body(client, request) {
            Ok(admitted) => admitted,
            Err(refusal) => return refusal_response(refusal),
        };
        let in_flight = match self.admission.admit(client).await {
            Ok(in_flight) => in_flight,
            Err(refusal) => return refusal_response(refusal),
        };
        set_spin_headers(&mut request, trigger);
        let life = Arc::new(RequestLife::new(in_flight));
        // A request whose body failed cannot be served: end it now (see `BodyWatch`).
        body_watch.on_fault({
            let life = life.clone();
            move || life.abandon()
        });
        // Marks the request abandoned if this future is dropped (the client went away)
        // before the component answered, so its instance is dropped at once.
        let caller = CallerGuard(Some(life.clone()));
        let outcome = trigger.handler.handle(life.clone(), request).await;
        caller.answered();
        match outcome {
            Ok(response) => {
                life.set(Phase::Streaming);
                response.map(|body| ResponseBody::watching(body, life))
            }
            Err(_) if body_watch.fault().is_some() => {
                let fault = body_watch.fault().unwrap_or(BodyFault::Incomplete);
                error_response(fault.status(), fault.code(), fault.message())
            }
            Err(error) => {
                life.abandon();
                let (status, code, message) = if error.downcast_ref::<ExpirationError>().is_some() {
                    (
                        http::StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        "the component did not respond in time",
                    )
                } else if error
                    .downcast_ref::<InstantiationError<Arc<RequestLife>>>()
                    .is_some()
                {
                    tracing::warn!(target: "chatgate::request", route = %trigger.route, "{error:?}");
                    return refusal_response(Refusal::Saturated);
                } else {
                    (
                        http::StatusCode::INTERNAL_SERVER_ERROR,
                        "component_failed",
                        "the component failed",
                    )
                };
                tracing::error!(target: "chatgate::request", route = %trigger.route, "{error:?}");
                error_response(status, code, message)
            }
        }
    }

    /// Liveness (`/healthz`: the process serves) and readiness (`/readyz`: it has
    /// capacity for another request), answered without instantiating a component.
    fn probe(&self, request: &http::Request<WasiBody>) -> Option<http::Response<WasiBody>> {
        if !matches!(*request.method(), http::Method::GET | http::Method::HEAD) {
            return None;
        }
        match request.uri().path() {
            "/healthz" => Some(json_response(
                http::StatusCode::OK,
                &serde_json::json!({"status": "ok"}),
            )),
            "/readyz" => {
                let usage = self.admission.usage();
                let status = if usage.overloaded {
                    "overloaded"
                } else if usage.in_flight >= usage.max_in_flight {
                    "saturated"
                } else {
                    "ready"
                };
                let ready = status == "ready";
                let mut response = json_response(
                    if ready {
                        http::StatusCode::OK
                    } else {
                        http::StatusCode::SERVICE_UNAVAILABLE
                    },
                    &serde_json::json!({
                        "status": status,
                        "in_flight": usage.in_flight,
                        "max_in_flight": usage.max_in_flight,
                        "queued": usage.queued,
                        "uploads": usage.uploads,
                        "max_uploads": usage.max_uploads,
                        "scheduler_lag_ms": usage.scheduler_lag_ms,
                        "instances": self.live_instances(),
                    }),
                );
                if !ready {
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1));
                }
                Some(response)
            }
            _ => None,
        }
    }
}

/// Refuses to load a component whose own deadlines (variables named `*_timeout_ms`, a
/// convention of this app's components) are not shorter than the host's response
/// timeout: the host would cut the request off before the component could answer
/// with its own, clearer, timeout error.
fn check_deadlines(
    component: &str,
    variables: &crate::variables::ComponentVariables,
    response_timeout: Duration,
) -> wasmtime::Result<()> {
    for (name, value) in variables.iter() {
        if !name.ends_with("_timeout_ms") {
            continue;
        }
        let Ok(millis) = value.trim().parse::<u64>() else {
            continue;
        };
        if Duration::from_millis(millis) >= response_timeout {
            wasmtime::bail!(
                "component `{component}`: variable `{name}` is {millis} ms, which is not shorter than the gateway's response timeout ({} ms); lower it or raise --response-timeout",
                response_timeout.as_millis()
            );
        }
    }
    Ok(())
}

/// Where a request is in its life, as the instance serving it needs to know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Phase {
    /// Waiting for the component's response headers.
    Waiting = 0,
    /// The response body is being sent.
    Streaming = 1,
    /// The response has been sent in full.
    Sent = 2,
    /// Nobody wants the response any more: the client went away, the response timed
    /// out, or the instance failed. Its instance is dropped at once.
    Abandoned = 3,
}

/// Shared by a request's caller, its response body and the instance serving it. Holds
/// the request's in-flight slot until all three are gone.
pub struct RequestLife {
    phase: AtomicU8,
    /// The instance's expiration, woken when the phase changes.
    waker: AtomicWaker,
    _in_flight: InFlight,
}

impl RequestLife {
    fn new(in_flight: InFlight) -> Self {
        RequestLife {
            phase: AtomicU8::new(Phase::Waiting as u8),
            waker: AtomicWaker::new(),
            _in_flight: in_flight,
        }
    }

    fn phase(&self) -> Phase {
        match self.phase.load(Ordering::Acquire) {
            0 => Phase::Waiting,
            1 => Phase::Streaming,
            2 => Phase::Sent,
            _ => Phase::Abandoned,
        }
    }

    fn set(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::Release);
        self.waker.wake();
    }

    /// Abandons the request unless its response has been sent in full.
    fn abandon(&self) {
        let unfinished = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |phase| {
                (phase != Phase::Sent as u8).then_some(Phase::Abandoned as u8)
            })
            .is_ok();
        if unfinished {
            self.waker.wake();
        }
    }
}

/// Abandons the request when the caller's future is dropped before an answer.
struct CallerGuard(Option<Arc<RequestLife>>);

impl CallerGuard {
    fn answered(mut self) {
        self.0 = None;
    }
}

impl Drop for CallerGuard {
    fn drop(&mut self) {
        if let Some(life) = self.0.take() {
            life.abandon();
        }
    }
}

/// A component's response body: reports its end, or its being dropped unfinished (the
/// client went away), to the instance producing it.
struct ResponseBody {
    inner: WasiBody,
    life: Option<Arc<RequestLife>>,
    /// The body's exact length, when known: a body dropped once this much has been sent
    /// is complete (hyper stops polling a body at its `Content-Length`).
    expected: Option<u64>,
    sent: u64,
}

impl ResponseBody {
    fn watching(inner: WasiBody, life: Arc<RequestLife>) -> WasiBody {
        let expected = inner.size_hint().exact();
        http_body_util::BodyExt::boxed_unsync(ResponseBody {
            inner,
            life: Some(life),
            expected,
            sent: 0,
        })
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = wasmtime_wasi_http::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.sent += frame.data_ref().map_or(0, |data| data.len() as u64);
            }
            Poll::Ready(None) => {
                if let Some(life) = self.life.take() {
                    life.set(Phase::Sent);
                }
            }
            Poll::Ready(Some(Err(_))) => {
                if let Some(life) = self.life.take() {
                    life.abandon();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ResponseBody {
    fn drop(&mut self) {
        if let Some(life) = self.life.take() {
            if self.expected == Some(self.sent) || self.inner.is_end_stream() {
                life.set(Phase::Sent);
            } else {
                life.abandon();
            }
        }
    }
}

fn refusal_response(refusal: Refusal) -> http::Response<WasiBody> {
    let mut response = error_response(refusal.status(), refusal.code(), &refusal.to_string());
    if let Some(seconds) = refusal.retry_after() {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, http::HeaderValue::from(seconds));
    }
    response
}

/// Sets the request headers Spin gives every HTTP component, replacing any value the
/// client sent so components can trust them, and drops the hop-by-hop `Connection`.
fn set_spin_headers(request: &mut http::Request<WasiBody>, trigger: &Trigger) {
    let uri = request.uri().clone();
    let path = uri.path();
    let (component_route, path_info) = match &trigger.parsed_route {
        Route::Exact(route) => (route.as_str(), ""),
        Route::Wildcard(prefix) => (prefix.as_str(), path.get(prefix.len()..).unwrap_or("")),
    };
    let headers = request.headers_mut();
    headers.remove(http::header::CONNECTION);
    for (name, value) in [
        ("spin-full-url", uri.to_string().as_str()),
        ("spin-path-info", path_info),
        ("spin-matched-route", trigger.route.as_str()),
        ("spin-base-path", "/"),
        ("spin-raw-component-route", trigger.route.as_str()),
        ("spin-component-route", component_route),
    ] {
        if let Ok(value) = http::HeaderValue::from_str(value) {
            headers.insert(name, value);
        } else {
            headers.remove(name);
        }
    }
}

/// An OpenAI-style error body: `{"error": {"message", "type", "param", "code"}}`.
pub fn error_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
) -> http::Response<WasiBody> {
    let kind = if status.is_server_error() {
        "server_error"
    } else {
        "invalid_request_error"
    };
    json_response(
        status,
        &serde_json::json!({
            "error": { "message": message, "type": kind, "param": null, "code": code }
        }),
    )
}

fn json_response(status: http::StatusCode, body: &serde_json::Value) -> http::Response<WasiBody> {
    let mut response = http::Response::new(
        http_body_util::Full::new(Bytes::from(body.to_string()))
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl HandlerState for TriggerState {
    type StoreData = HostState;
    type WorkerExpiration = Deadline;
    type WorkerState = OneRequest;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<handler::Instance<HostState, Deadline, OneRequest>> {
        let mut store = Store::new(&self.engine, HostState::new(self.grants.clone()));
        // Yield to the executor on every epoch tick: a busy guest shares the thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        self.instances.fetch_add(1, Ordering::AcqRel);
        let request = Arc::new(OnceLock::new());
        Ok(handler::Instance {
            store,
            proxy,
            view: <HostState as WasiHttpView>::http,
            expiration: Deadline::new(self.response_timeout, self.body_timeout, request.clone()),
            state: OneRequest {
                response_timeout: self.response_timeout,
                request,
                instances: self.instances.clone(),
            },
        })
    }
}

/// Each instance serves exactly one request: no state leaks between callers.
struct OneRequest {
    response_timeout: Duration,
    /// The request this instance serves, shared with its [`Deadline`].
    request: Arc<OnceLock<Arc<RequestLife>>>,
    instances: Arc<AtomicUsize>,
}

impl WorkerState for OneRequest {
    type StoreData = HostState;
    type RequestData = Arc<RequestLife>;

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total == 0 {
            ShouldAccept::Yes
        } else {
            ShouldAccept::Never
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HostState>,
        life: Arc<RequestLife>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        // The Deadline is woken by the phase changes from here on.
        _ = self.request.set(life);
        Box::pin(tokio::time::sleep(self.response_timeout))
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        drop(store);
        self.instances.fetch_sub(1, Ordering::AcqRel);
        let abandoned = self
            .request
            .get()
            .is_some_and(|life| life.phase() == Phase::Abandoned);
        match result {
            Err(error) if abandoned => {
                tracing::debug!(target: "chatgate::instance", "dropped the instance of an abandoned request: {error}");
            }
            Err(error) => {
                tracing::warn!(target: "chatgate::instance", "instance ended with an error: {error:?}");
            }
            Ok(()) => {}
        }
    }
}

/// Ends an instance as soon as its request is over: at once when it is abandoned (the
/// client went away, the response timed out, the instance failed), after a grace period
/// for post-return work once the response has been sent, and otherwise when the
/// response or its body takes too long.
struct Deadline {
    response_timeout: Duration,
    body_timeout: Duration,
    request: Arc<OnceLock<Arc<RequestLife>>>,
    armed_for: Option<(WorkerStatus, Instant, Phase)>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(
        response_timeout: Duration,
        body_timeout: Duration,
        request: Arc<OnceLock<Arc<RequestLife>>>,
    ) -> Self {
        Deadline {
            response_timeout,
            body_timeout,
            request,
            armed_for: None,
            sleep: Box::pin(tokio::time::sleep(response_timeout)),
        }
    }
}

impl WorkerExpiration for Deadline {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        state: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let phase = match self.request.get() {
            Some(life) => {
                life.waker.register(cx.waker());
                life.phase()
            }
            None => Phase::Waiting,
        };
        let limit = match (state, phase) {
            (WorkerStatus::Idle, _) | (_, Phase::Abandoned) => return Poll::Ready(()),
            (WorkerStatus::Requests, _) => self.response_timeout,
            (WorkerStatus::PostReturn, Phase::Waiting | Phase::Streaming) => self.body_timeout,
            // The response is out; what the guest still does (e.g. logging) is bounded
            // like a response.
            (WorkerStatus::PostReturn, Phase::Sent) => self.response_timeout,
        };
        if self.armed_for != Some((state, start, phase)) {
            // A phase change restarts the clock from now; a status change from its start.
            let from = match self.armed_for {
                Some((s, t, _)) if (s, t) == (state, start) => Instant::now(),
                _ => start,
            };
            self.armed_for = Some((state, start, phase));
            let deadline = tokio::time::Instant::from_std(from + limit);
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}
