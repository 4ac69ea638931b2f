//! A loaded application: one composed, pre-instantiated component per HTTP trigger,
//! and the dispatch of requests to fresh instances of them.

use crate::compose::{self, Dependency, Inherit, Part};
use crate::key_value::SqliteKeyValue;
use crate::manifest::{DependencySource, HttpTrigger, Manifest};
use crate::outbound::{AllowedHost, OutboundPolicy};
use crate::routes::{Route, Router};
use crate::runtime::{self, Grants, HostState};
use crate::variables::AppVariables;
use bytes::Bytes;
use http_body_util::BodyExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
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
    /// Longest wait for a component's response headers.
    pub response_timeout: Duration,
    /// Longest a response body (e.g. a token stream) may keep an instance alive.
    pub body_timeout: Duration,
    /// Variable overrides consulted before the process environment, as `SPIN_VARIABLE_<NAME>`.
    pub env_overrides: Vec<(String, String)>,
    /// Keep guests' stdout (e.g. request logs) in memory, readable with [`App::guest_stdout`].
    pub capture_guest_stdout: bool,
    /// Requests served at once; beyond them the answer is 503.
    pub max_concurrent_requests: u32,
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
            max_concurrent_requests: 1_000,
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
    Ok(compose::compose(primary, dependencies, middleware)?)
}

impl App {
    /// Loads, composes and pre-instantiates every HTTP trigger of `manifest`.
    pub fn load(manifest: &Manifest, options: &AppOptions) -> wasmtime::Result<Self> {
        let engine = runtime::engine(
            options.compile_cache.as_deref(),
            options.max_concurrent_requests,
        )?;
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
            let grants = Arc::new(Grants {
                variables: variables.component_view(&decl.variables)?,
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

    /// Handles one request end to end. Failures become OpenAI-style JSON errors.
    pub async fn handle(&self, mut request: http::Request<WasiBody>) -> http::Response<WasiBody> {
        let path = request.uri().path().to_string();
        let Some(trigger) = self.router.find(&path) else {
            return error_response(
                http::StatusCode::NOT_FOUND,
                "not_found",
                &format!("no route matches {path}"),
            );
        };
        set_spin_headers(&mut request, trigger);
        match trigger.handler.handle((), request).await {
            Ok(response) => response,
            Err(error) => {
                let (status, code, message) = if error.downcast_ref::<ExpirationError>().is_some() {
                    (
                        http::StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        "the component did not respond in time",
                    )
                } else if error.downcast_ref::<InstantiationError<()>>().is_some() {
                    (
                        http::StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "no capacity to run the component",
                    )
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
    let body = serde_json::json!({
        "error": { "message": message, "type": kind, "param": null, "code": code }
    });
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
        Ok(handler::Instance {
            store,
            proxy,
            view: <HostState as WasiHttpView>::http,
            expiration: Deadline::new(self.response_timeout, self.body_timeout),
            state: OneRequest {
                response_timeout: self.response_timeout,
            },
        })
    }
}

/// Each instance serves exactly one request, as in Spin: no state leaks between callers.
struct OneRequest {
    response_timeout: Duration,
}

impl WorkerState for OneRequest {
    type StoreData = HostState;
    type RequestData = ();

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
        _data: (),
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync + 'static>> {
        Box::pin(tokio::time::sleep(self.response_timeout))
    }

    fn drop(&self, _store: Store<HostState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            tracing::warn!(target: "chatgate::instance", "instance ended with an error: {error:?}");
        }
    }
}

/// Ends an instance once idle, or when a response or its body takes too long.
struct Deadline {
    response_timeout: Duration,
    body_timeout: Duration,
    armed_for: Option<(WorkerStatus, Instant)>,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(response_timeout: Duration, body_timeout: Duration) -> Self {
        Deadline {
            response_timeout,
            body_timeout,
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
        let limit = match state {
            WorkerStatus::Idle => return Poll::Ready(()),
            WorkerStatus::Requests => self.response_timeout,
            WorkerStatus::PostReturn => self.body_timeout,
        };
        if self.armed_for != Some((state, start)) {
            self.armed_for = Some((state, start));
            let deadline = tokio::time::Instant::from_std(start + limit);
            self.sleep.as_mut().reset(deadline);
        }
        self.sleep.as_mut().poll(cx)
    }
}
