//! A loaded application: one composed, pre-instantiated component per HTTP trigger,
//! and the dispatch of requests to its instances, reused as Spin reuses them
//! ([`crate::reuse`]).

use crate::admission::{Admission, BodyFault, InFlight, Limits, Refusal};
use crate::capabilities::{self, Holds, Inherit};
use crate::compose::{self, Dependency, Part};
use crate::key_value::{KeyValueStore, SqliteKeyValue};
use crate::manifest::{DependencySource, HttpTrigger, Manifest};
use crate::outbound::{AllowedHost, OutboundPolicy};
use crate::reuse::{InstanceReuse, Range};
use crate::routes::{Route, Router};
use crate::runtime::guest_stdout::{GuestStdout, StdoutWriter};
use crate::runtime::{self, Grants, HostState};
use crate::variables::AppVariables;
use bytes::Bytes;
use futures_util::task::AtomicWaker;
use http_body::Body as _;
use http_body_util::BodyExt;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
    /// Longest wait for a component's response headers (Spin's `--request-timeout`),
    /// drawn per instance from a range. Every `*_timeout_ms` variable of a component must
    /// be shorter than its smallest value (checked at load).
    pub response_timeout: Range<Duration>,
    /// How instances are reused across requests.
    pub reuse: InstanceReuse,
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
    /// Where guests' spans go (`wasi:otel/tracing`); `None` when trace export is off.
    pub span_sink: Option<crate::otel::SpanSink>,
}

impl Default for AppOptions {
    fn default() -> Self {
        AppOptions {
            key_value_path: None,
            compile_cache: None,
            response_timeout: Range::Value(Duration::from_secs(60)),
            reuse: InstanceReuse::default(),
            body_timeout: Duration::from_secs(600),
            env_overrides: Vec::new(),
            capture_guest_stdout: false,
            span_sink: None,
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
    /// Writes guests' stdout to the process's (unless captured); dropping it writes what
    /// is still queued.
    _stdout_writer: Option<StdoutWriter>,
    admission: Admission,
    instances: Arc<InstanceSlots>,
    probes: bool,
    /// Distinct compositions compiled for the routes (routes with the same one share it).
    compositions: usize,
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
    response_timeout: Range<Duration>,
    body_timeout: Duration,
    reuse: InstanceReuse,
    instances: Arc<InstanceSlots>,
}

/// How long a new instance may wait for an idle one to give up its pool slot.
const SLOT_WAIT: Duration = Duration::from_secs(2);

/// The instance pool's slots, shared by every trigger. Admission bounds the requests in
/// flight by the pool's size, but idle instances kept for reuse hold slots too: when a
/// new instance finds none free, idle instances (of any trigger) retire at once.
struct InstanceSlots {
    free: Arc<tokio::sync::Semaphore>,
    /// Notified when the pool is full: idle instances then give their slots up.
    reclaim: Arc<tokio::sync::Notify>,
    /// Set when the application is dropped: instances take no more requests and idle
    /// ones end at once, so that the engine (and its pool's address-space reservation)
    /// goes with the application rather than after the idle timeout.
    closing: AtomicBool,
    live: AtomicUsize,
    idle: AtomicUsize,
    created: AtomicUsize,
}

impl InstanceSlots {
    fn new(size: usize) -> Self {
        InstanceSlots {
            free: Arc::new(tokio::sync::Semaphore::new(size)),
            reclaim: Arc::new(tokio::sync::Notify::new()),
            closing: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            idle: AtomicUsize::new(0),
            created: AtomicUsize::new(0),
        }
    }

    async fn take(&self) -> wasmtime::Result<tokio::sync::OwnedSemaphorePermit> {
        if let Ok(slot) = self.free.clone().try_acquire_owned() {
            return Ok(slot);
        }
        self.reclaim.notify_waiters();
        match tokio::time::timeout(SLOT_WAIT, self.free.clone().acquire_owned()).await {
            Ok(Ok(slot)) => Ok(slot),
            _ => Err(NoFreeSlot.into()),
        }
    }
}

/// No instance slot was freed within [`SLOT_WAIT`]: the pool is full of instances at work.
#[derive(Debug, thiserror::Error)]
#[error("no instance slot was freed within {SLOT_WAIT:?}")]
struct NoFreeSlot;

/// Whether an instantiation failed for want of capacity (the pool's slots, or one of
/// wasmtime's pooled resources) rather than for another reason, such as the system
/// refusing memory or file descriptors.
fn for_want_of_capacity(error: &wasmtime::Error) -> bool {
    error.downcast_ref::<NoFreeSlot>().is_some()
        || error
            .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
            .is_some()
}

/// Live component instances, across all routes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instances {
    /// All of them.
    pub live: usize,
    /// Those kept without work for a next request (reclaimed when the pool is full).
    pub idle: usize,
    /// Instances created since the application was loaded.
    pub created: usize,
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
    let holds = Holds::from_flags([
        (capabilities::VARIABLES, !decl.variables.is_empty()),
        (
            capabilities::KEY_VALUE_STORES,
            !decl.key_value_stores.is_empty(),
        ),
        (
            capabilities::ALLOWED_OUTBOUND_HOSTS,
            !decl.allowed_outbound_hosts.is_empty(),
        ),
        (capabilities::ENVIRONMENT, !decl.environment.is_empty()),
        // As in Spin, only the primary's `files` are mounted (a dependency's own `files` are
        // ignored, `crates/manifest/src/schema/v2.rs`:211-214), and a dependency reaches them
        // only if it inherits `files`: otherwise a deny component answers its
        // `wasi:filesystem/preopens` with no directories (`crates/capabilities/src/lib.rs`:65-69).
        (capabilities::FILES, !decl.files.is_empty()),
    ]);
    Ok(compose::compose(primary, &holds, dependencies, middleware)?)
}

impl App {
    /// Loads, composes and pre-instantiates every HTTP trigger of `manifest`.
    pub fn load(manifest: &Manifest, options: &AppOptions) -> wasmtime::Result<Self> {
        let max_instances = u32::try_from(options.limits.max_in_flight)
            .map_err(|_| wasmtime::format_err!("max_in_flight is too large"))?;
        let engine = runtime::engine(options.compile_cache.as_deref(), max_instances)?;
        let instances = Arc::new(InstanceSlots::new(options.limits.max_in_flight));
        // `chatgate.instance.count` reads the pool's counts when metrics are collected;
        // through a weak reference, so that a replaced application stops being counted
        // once it is gone.
        if let Some(metrics) = options.span_sink.as_ref().and_then(|sink| sink.metrics()) {
            let slots = Arc::downgrade(&instances);
            metrics.count_instances(move || {
                slots.upgrade().map(|slots| {
                    (
                        slots.live.load(Ordering::Acquire),
                        slots.idle.load(Ordering::Acquire),
                    )
                })
            });
        }
        let variables = AppVariables::resolve(manifest, |k| options.env(k))?;
        let key_value: Arc<dyn KeyValueStore> = Arc::new(match &options.key_value_path {
            Some(path) => SqliteKeyValue::open(path)?,
            None => SqliteKeyValue::in_memory()?,
        });
        let guest_stdout = options
            .capture_guest_stdout
            .then(|| wasmtime_wasi::p2::pipe::MemoryOutputPipe::new(GUEST_STDOUT_CAPACITY));
        let (stdout_writer, guests_write_to) = match &guest_stdout {
            Some(buffer) => (None, GuestStdout::Captured(buffer.clone())),
            None => {
                let writer = StdoutWriter::start()?;
                let queue = GuestStdout::Queued(writer.queue());
                (Some(writer), queue)
            }
        };
        let mut routes = Vec::new();
        // Routes served by the same composition (the API's `/v1/...`, `/openai/...` and
        // `/healthz` behind one chain) share its compiled code: compiled once, mapped
        // once. Each route still has its own instances, grants and reuse pool.
        let mut compiled: HashMap<
            Vec<u8>,
            wasmtime_wasi_http::p3::bindings::ServicePre<HostState>,
        > = HashMap::new();
        for trigger in &manifest.http_triggers {
            let composed = compose_trigger(manifest, trigger)
                .with_context(|| format!("composing route `{}`", trigger.route))?;
            let pre = match compiled.get(&composed.bytes) {
                Some(pre) => pre.clone(),
                None => {
                    let component =
                        Component::new(&engine, &composed.bytes).with_context(|| {
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
                    compiled.insert(composed.bytes, pre.clone());
                    pre
                }
            };

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
            check_deadlines(
                primary_id,
                &component_variables,
                options.response_timeout.min(),
            )?;
            let files = manifest
                .file_mounts(primary_id)
                .map_err(|e| wasmtime::format_err!("{e}"))?;
            let grants = Arc::new(Grants {
                component_id: primary_id.as_str().into(),
                variables: component_variables,
                outbound,
                key_value_stores: decl.key_value_stores.iter().cloned().collect(),
                key_value: key_value.clone(),
                environment: decl
                    .environment
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                files,
                guest_stdout: guests_write_to.clone(),
                span_sink: options.span_sink.clone(),
            });
            let state = TriggerState {
                engine: engine.clone(),
                pre: ProxyPre::P3(pre),
                grants,
                response_timeout: options.response_timeout,
                body_timeout: options.body_timeout,
                reuse: options.reuse,
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
            _stdout_writer: stdout_writer,
            admission: Admission::new(options.limits.clone()),
            instances,
            probes: options.probes,
            compositions: compiled.len(),
        })
    }

    /// How many distinct compositions serve the routes: routes whose components,
    /// middleware and dependencies compose to the same bytes share one compilation.
    pub fn compositions(&self) -> usize {
        self.compositions
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
        self.instances().live
    }

    /// Live component instances, and how many of them are idle.
    pub fn instances(&self) -> Instances {
        Instances {
            live: self.instances.live.load(Ordering::Acquire),
            idle: self.instances.idle.load(Ordering::Acquire),
            created: self.instances.created.load(Ordering::Acquire),
        }
    }

    /// The admission budgets' current use.
    pub fn usage(&self) -> crate::admission::Usage {
        self.admission.usage()
    }

    /// The admission limits in force.
    pub fn limits(&self) -> &Limits {
        self.admission.limits()
    }

    /// The manifest route that serves `path` (OpenTelemetry's `http.route`).
    pub fn route_of(&self, path: &str) -> Option<&str> {
        self.router.find(path).map(|trigger| trigger.route.as_str())
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
        // A request whose body failed cannot be served: it is abandoned (see
        // `BodyWatch`), and the client gets the fault's status whatever the component
        // answers within the grace it has to answer.
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
            Ok(_) if body_watch.fault().is_some() => {
                let fault = body_watch.fault().unwrap_or(BodyFault::Incomplete);
                error_response(fault.status(), fault.code(), fault.message())
            }
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
                } else if let Some(failed) =
                    error.downcast_ref::<InstantiationError<Arc<RequestLife>>>()
                {
                    if for_want_of_capacity(&failed.error) {
                        tracing::warn!(target: "chatgate::request", route = %trigger.route, "{error:?}");
                        return refusal_response(Refusal::Saturated);
                    }
                    // Not a full pool: say so rather than "at capacity", and log it as
                    // the error it is. Retrying may help (the system may free what it
                    // refused), hence 503 with Retry-After.
                    tracing::error!(target: "chatgate::request", route = %trigger.route, "{error:?}");
                    let mut response = error_response(
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "instantiation_failed",
                        "the component could not be started; retry shortly",
                    );
                    response
                        .headers_mut()
                        .insert(http::header::RETRY_AFTER, http::HeaderValue::from(1));
                    return response;
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
                        "instances": self.instances().live,
                        "idle_instances": self.instances().idle,
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

impl Drop for App {
    fn drop(&mut self) {
        self.instances.closing.store(true, Ordering::Release);
        self.instances.reclaim.notify_waiters();
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
                "component `{component}`: variable `{name}` is {millis} ms, which is not shorter than the gateway's response timeout ({} ms); lower it or raise --request-timeout",
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
    /// out, or the instance failed. Its instance takes no more requests and is dropped
    /// as soon as no other request needs it, unless the request was abandoned before
    /// its response head and the instance answers it within [`ABANDONED_GRACE`].
    Abandoned = 3,
}

/// How long an instance has to answer a request abandoned before its response head (the
/// client went away, or its body broke off) before the instance is dropped. A component
/// that sees its request body fail answers at once (an abandoned upload: the headers of
/// a 1000-byte body, 6 bytes, close), and its instance can then serve the next request.
/// Dropping it instead (a new instance per upload: its copy-on-write pages, their
/// release) made `chatgate up` spend 467-559 µs of CPU per abandoned upload, against
/// 292-391 µs with the grace (`bench/cpu/abandoned-uploads.py`, 10,000 uploads a run,
/// docs/measurements/benchmarks.md). A request still working after the grace
/// (waiting on an upstream nobody will read) is ended by dropping its instance, which
/// also drops its outbound calls: the upstream sees its connection closed
/// (`a_client_gone_before_the_answer_gives_its_capacity_back_at_once` in
/// `tests/tests/capacity.rs`). The grace is short so that it stays under the 500 ms in
/// which a storm of abandoned requests must give its capacity back (the same file).
pub const ABANDONED_GRACE: Duration = Duration::from_millis(200);

/// What became of a request inside its instance, as the expiration future the
/// instance polls for it tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum InInstance {
    /// Still running.
    Running = 0,
    /// The component produced its response (whether anyone still wanted it).
    Answered = 1,
    /// The response timeout passed, or the grace after an early abandonment: the
    /// instance takes no more requests.
    Expired = 2,
}

/// Shared by a request's caller, its response body and the instance serving it. Holds
/// the request's in-flight slot until all three are gone.
pub struct RequestLife {
    phase: AtomicU8,
    /// Set when the request was abandoned while waiting for its response head.
    abandoned_early: AtomicBool,
    /// An [`InInstance`].
    in_instance: AtomicU8,
    /// When the phase last changed.
    since: Mutex<Instant>,
    /// The instance's expiration, woken when the phase changes.
    waker: AtomicWaker,
    /// Ends the request's wait for its response inside the instance when it is abandoned.
    abandoned: tokio::sync::Notify,
    _in_flight: InFlight,
}

impl RequestLife {
    fn new(in_flight: InFlight) -> Self {
        RequestLife {
            phase: AtomicU8::new(Phase::Waiting as u8),
            abandoned_early: AtomicBool::new(false),
            in_instance: AtomicU8::new(InInstance::Running as u8),
            since: Mutex::new(Instant::now()),
            waker: AtomicWaker::new(),
            abandoned: tokio::sync::Notify::new(),
            _in_flight: in_flight,
        }
    }

    fn since(&self) -> Instant {
        *self.since.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn touch(&self) {
        *self.since.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// Resolves once the request is abandoned, after [`ABANDONED_GRACE`] if that was
    /// before its response head.
    async fn until_abandoned(&self) {
        loop {
            let notified = self.abandoned.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.phase() == Phase::Abandoned {
                break;
            }
            notified.await;
        }
        if self.abandoned_early() {
            tokio::time::sleep_until((self.since() + ABANDONED_GRACE).into()).await;
        }
    }

    fn abandoned_early(&self) -> bool {
        self.abandoned_early.load(Ordering::Acquire)
    }

    fn in_instance(&self) -> InInstance {
        match self.in_instance.load(Ordering::Acquire) {
            0 => InInstance::Running,
            1 => InInstance::Answered,
            _ => InInstance::Expired,
        }
    }

    /// Records what became of the request inside its instance (once: the first word
    /// stands) and wakes the instance's expiration.
    fn set_in_instance(&self, outcome: InInstance) {
        if self
            .in_instance
            .compare_exchange(
                InInstance::Running as u8,
                outcome as u8,
                Ordering::AcqRel,
                Ordering::Acquire,
            )
            .is_ok()
        {
            self.waker.wake();
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
        self.touch();
        self.phase.store(phase as u8, Ordering::Release);
        self.waker.wake();
    }

    /// Abandons the request unless its response has been sent in full.
    fn abandon(&self) {
        let before = self
            .phase
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |phase| {
                (phase != Phase::Sent as u8 && phase != Phase::Abandoned as u8)
                    .then_some(Phase::Abandoned as u8)
            });
        if let Ok(before) = before {
            if before == Phase::Waiting as u8 {
                self.abandoned_early.store(true, Ordering::Release);
            }
            self.touch();
            self.waker.wake();
            self.abandoned.notify_waiters();
        }
    }
}

/// Records that the component answered when the request's expiration future is dropped
/// before it expired (wasmtime drops it once the response is produced).
struct AnsweredOnDrop(Option<Arc<RequestLife>>);

impl Drop for AnsweredOnDrop {
    fn drop(&mut self) {
        if let Some(life) = self.0.take() {
            life.set_in_instance(InInstance::Answered);
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

/// The host's own error answers, in the OpenAI shape clients parse ([`crate::openai_error`]).
pub fn error_response(
    status: http::StatusCode,
    code: &str,
    message: &str,
) -> http::Response<WasiBody> {
    json_response(status, &crate::openai_error::body(status, code, message))
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
    type WorkerState = Worker;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<handler::Instance<HostState, Deadline, Worker>> {
        let slot = self.instances.take().await?;
        let mut store = Store::new(&self.engine, HostState::new(self.grants.clone())?);
        // Yield to the executor on every epoch tick: a busy guest shares the thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let proxy = self.pre.instantiate_async(&mut store).await?;
        let live = LiveInstance::new(self.instances.clone(), slot);
        let served = Arc::new(Served::default());
        let response_timeout = self.response_timeout.draw();
        Ok(handler::Instance {
            store,
            proxy,
            view: <HostState as WasiHttpView>::http,
            expiration: Deadline {
                response_timeout,
                body_timeout: self.body_timeout,
                idle_timeout: self.reuse.idle_timeout.draw(),
                served: served.clone(),
                live: live.clone(),
                reclaim: None,
                sleep: Box::pin(tokio::time::sleep(response_timeout)),
            },
            state: Worker {
                max_requests: self.reuse.max_requests.draw(),
                max_concurrent: self.reuse.max_concurrent.draw(),
                response_timeout,
                served,
                live,
            },
        })
    }
}

/// An instance's pool slot and its place in the instance counts, given back when the
/// instance is dropped.
struct LiveInstance {
    slots: Arc<InstanceSlots>,
    idle: AtomicBool,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl LiveInstance {
    fn new(slots: Arc<InstanceSlots>, slot: tokio::sync::OwnedSemaphorePermit) -> Arc<Self> {
        slots.live.fetch_add(1, Ordering::AcqRel);
        slots.created.fetch_add(1, Ordering::AcqRel);
        Arc::new(LiveInstance {
            slots,
            idle: AtomicBool::new(false),
            _slot: slot,
        })
    }

    fn set_idle(&self, idle: bool) {
        if self.idle.swap(idle, Ordering::AcqRel) != idle {
            if idle {
                self.slots.idle.fetch_add(1, Ordering::AcqRel);
            } else {
                self.slots.idle.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }
}

impl Drop for LiveInstance {
    fn drop(&mut self) {
        self.set_idle(false);
        self.slots.live.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The requests an instance has accepted and not yet sent in full, shared by its
/// [`Worker`] and its [`Deadline`]. A request's in-flight slot is held here until its
/// response is sent, or, once abandoned, until the instance is dropped: an instance
/// still working for a request nobody waits for keeps counting against capacity.
#[derive(Default)]
struct Served {
    requests: Mutex<Vec<Arc<RequestLife>>>,
    /// Set once one of its requests was abandoned: the instance takes no more requests,
    /// since what it still does for that one cannot be stopped without dropping it.
    retired: AtomicBool,
}

/// One instance's reuse limits (see [`crate::reuse`]).
struct Worker {
    max_requests: usize,
    max_concurrent: usize,
    response_timeout: Duration,
    served: Arc<Served>,
    live: Arc<LiveInstance>,
}

impl WorkerState for Worker {
    type StoreData = HostState;
    type RequestData = Arc<RequestLife>;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if self.served.retired.load(Ordering::Acquire)
            || self.live.slots.closing.load(Ordering::Acquire)
            || total >= self.max_requests
        {
            ShouldAccept::Never
        } else if concurrent >= self.max_concurrent {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        _store: StoreContextMut<'_, HostState>,
        life: Arc<RequestLife>,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        self.live.set_idle(false);
        life.touch();
        self.served
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(life.clone());
        // The request expires (504) when it takes too long or is abandoned (early: when
        // the grace has passed too); the handler then takes no more requests on this
        // instance. wasmtime drops this future once the component has answered, which
        // is how the instance learns that an abandoned request needs nothing more.
        let timeout = self.response_timeout;
        Box::pin(async move {
            let mut answered = AnsweredOnDrop(Some(life.clone()));
            tokio::select! {
                () = tokio::time::sleep(timeout) => {}
                () = life.until_abandoned() => {}
            }
            answered.0 = None;
            life.set_in_instance(InInstance::Expired);
        })
    }

    fn drop(&self, store: Store<HostState>, result: wasmtime::Result<()>) {
        drop(store);
        let abandoned = self.served.retired.load(Ordering::Acquire);
        // wasmtime-wasi-http reports every worker it drops unfinished as "worker
        // panicked", also those the host ends on purpose when it shuts down.
        let closing = self.live.slots.closing.load(Ordering::Acquire);
        match result {
            Err(error) if abandoned => {
                tracing::debug!(target: "chatgate::instance", "dropped the instance of an abandoned request: {error}");
            }
            Err(error) if closing => {
                tracing::debug!(target: "chatgate::instance", "ended an instance at shutdown: {error}");
            }
            Err(error) => {
                tracing::warn!(target: "chatgate::instance", "instance ended with an error: {error:?}");
            }
            Ok(()) => {}
        }
    }
}

/// Ends an instance: at once when a request it serves was abandoned (the client went
/// away, the response timed out, the instance failed) and no other request needs it;
/// when a response or a response body takes too long; after a grace period for
/// post-return work once every response has been sent; and after its idle timeout, or
/// at once when idle and the pool needs its slot.
struct Deadline {
    response_timeout: Duration,
    body_timeout: Duration,
    idle_timeout: Duration,
    served: Arc<Served>,
    live: Arc<LiveInstance>,
    /// While idle: resolves when the pool asks idle instances for their slots.
    reclaim: Option<Pin<Box<tokio::sync::futures::OwnedNotified>>>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl WorkerExpiration for Deadline {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let (mut waiting, mut streaming_until, mut abandoned) = (0, None::<Instant>, false);
        let mut grace_until = None::<Instant>;
        {
            let mut requests = self
                .served
                .requests
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            // A request sent in full needs nothing more of the instance, nor does one
            // abandoned before its response head that the component then answered.
            requests.retain(|life| match life.phase() {
                Phase::Sent => false,
                Phase::Abandoned => {
                    !(life.abandoned_early() && life.in_instance() == InInstance::Answered)
                }
                Phase::Waiting | Phase::Streaming => true,
            });
            for life in requests.iter() {
                life.waker.register(cx.waker());
                match life.phase() {
                    Phase::Waiting => waiting += 1,
                    Phase::Streaming => {
                        let until = life.since() + self.body_timeout;
                        streaming_until = Some(streaming_until.map_or(until, |u| u.min(until)));
                    }
                    // Abandoned early and still running: the component has the grace to
                    // answer (its expiration future ends the wait), counted as waiting.
                    Phase::Abandoned
                        if life.abandoned_early()
                            && life.in_instance() == InInstance::Running
                            && life.since().elapsed() < ABANDONED_GRACE =>
                    {
                        waiting += 1;
                        let until = life.since() + ABANDONED_GRACE;
                        grace_until = Some(grace_until.map_or(until, |u: Instant| u.min(until)));
                    }
                    Phase::Abandoned => abandoned = true,
                    Phase::Sent => {}
                }
            }
        }
        if abandoned {
            self.served.retired.store(true, Ordering::Release);
            if waiting == 0 && streaming_until.is_none() {
                return Poll::Ready(());
            }
        }
        self.live.set_idle(status == WorkerStatus::Idle);
        let limit = match status {
            WorkerStatus::Idle => {
                if self.served.retired.load(Ordering::Acquire)
                    || self.live.slots.closing.load(Ordering::Acquire)
                {
                    return Poll::Ready(());
                }
                let slots = self.live.slots.reclaim.clone();
                let reclaim = self
                    .reclaim
                    .get_or_insert_with(|| Box::pin(slots.notified_owned()));
                reclaim.as_mut().enable();
                if reclaim.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(());
                }
                Some(self.idle_timeout)
            }
            WorkerStatus::Requests => Some(self.response_timeout),
            // Bodies still streaming are bounded by their own deadlines.
            WorkerStatus::PostReturn if waiting == 0 && streaming_until.is_some() => None,
            // The responses are out; what the guest still does (e.g. logging) is bounded
            // like a response.
            WorkerStatus::PostReturn => Some(self.response_timeout),
        };
        if status != WorkerStatus::Idle {
            self.reclaim = None;
        }
        let status_until = limit.and_then(|limit| start.checked_add(limit));
        let until = [status_until, streaming_until, grace_until]
            .into_iter()
            .flatten()
            .min();
        let Some(until) = until else {
            return Poll::Pending;
        };
        let until = tokio::time::Instant::from_std(until);
        if self.sleep.deadline() != until {
            self.sleep.as_mut().reset(until);
        }
        self.sleep.as_mut().poll(cx)
    }
}
