//! The wasmtime side: engine, linker, per-request store state, and the Spin host
//! interfaces (`spin:variables`, `spin:key-value`) plus outbound HTTP policy.

use crate::compose::DENY_PREFIX;
use crate::key_value::SqliteKeyValue;
use crate::outbound::OutboundPolicy;
use crate::variables::ComponentVariables;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use wasmtime::component::{Accessor, Component, HasData, Linker, Resource, ResourceTable, Val};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "chatgate:host/spin-host",
        imports: {
            default: trappable,
        },
        with: {
            "spin:key-value/key-value.store": super::KeyValueHandle,
        },
    });
}

use bindings::spin::key_value::key_value as kv;
use bindings::spin::variables::variables;

/// Memory one component instance may grow to; the pooling allocator reserves this per memory.
pub const MAX_MEMORY_BYTES: usize = 256 << 20;

/// Builds the engine every app component runs on: async component model (WASIp3),
/// the pooling allocator for cheap per-request instantiation, and epoch-based
/// preemption so a spinning guest cannot monopolise a host thread.
///
/// With `compile_cache`, compiled code is kept in that directory and reused when the
/// same composed component is loaded again.
pub fn engine(compile_cache: Option<&std::path::Path>) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    if let Some(dir) = compile_cache {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(wasmtime::Cache::new(cache)?));
    }
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(1_000);
    pool.total_core_instances(20_000);
    pool.total_memories(10_000);
    pool.total_tables(10_000);
    pool.max_memories_per_component(64);
    pool.max_tables_per_component(64);
    pool.max_core_instances_per_component(200);
    pool.max_memory_size(MAX_MEMORY_BYTES);
    pool.total_stacks(1_000);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// A handle to an opened key-value store: the resource behind `spin:key-value/store`.
pub struct KeyValueHandle {
    label: String,
}

/// What one trigger's composed component may use, shared by all of its instances.
pub struct Grants {
    pub variables: ComponentVariables,
    pub outbound: OutboundPolicy,
    pub key_value_stores: BTreeSet<String>,
    pub key_value: Arc<SqliteKeyValue>,
    /// The component's `environment`, as WASI environment variables.
    pub environment: Vec<(String, String)>,
    /// Where guests' stdout goes: the process's stdout, or a buffer tests read.
    pub guest_stdout: Option<wasmtime_wasi::p2::pipe::MemoryOutputPipe>,
}

/// The data of one store: one request's instance of a composed component.
pub struct HostState {
    table: ResourceTable,
    wasi: WasiCtx,
    http: WasiHttpCtx,
    hooks: OutboundHooks,
    grants: Arc<Grants>,
}

impl HostState {
    pub fn new(grants: Arc<Grants>) -> Self {
        let mut wasi = WasiCtxBuilder::new();
        wasi.inherit_stderr().envs(&grants.environment);
        match &grants.guest_stdout {
            Some(buffer) => wasi.stdout(buffer.clone()),
            None => wasi.inherit_stdout(),
        };
        let wasi = wasi.build();
        HostState {
            table: ResourceTable::new(),
            wasi,
            http: WasiHttpCtx::new(),
            hooks: OutboundHooks {
                grants: grants.clone(),
            },
            grants,
        }
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for HostState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.hooks,
        }
    }
}

/// Enforces `allowed_outbound_hosts` on every `wasi:http/client#send`.
struct OutboundHooks {
    grants: Arc<Grants>,
}

impl WasiHttpHooks for OutboundHooks {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<wasmtime_wasi_http::RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
    ) -> Box<
        dyn Future<
                Output = Result<
                    (
                        http::Response<wasmtime_wasi_http::WasiBody>,
                        Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>,
                    ),
                    wasmtime_wasi_http::Error,
                >,
            > + Send,
    > {
        if let Err(denied) = self.grants.outbound.check(request.uri()) {
            tracing::warn!(target: "chatgate::outbound", "{denied}");
            return Box::new(async { Err(wasmtime_wasi_http::Error::HttpRequestDenied) });
        }
        _ = fut;
        Box::new(async move {
            use http_body_util::BodyExt;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

/// The view of the store the Spin interfaces are implemented on.
pub struct SpinView<'a> {
    table: &'a mut ResourceTable,
    grants: &'a Arc<Grants>,
}

struct SpinInterfaces;

impl HasData for SpinInterfaces {
    type Data<'a> = SpinView<'a>;
}

fn spin_view(state: &mut HostState) -> SpinView<'_> {
    SpinView {
        table: &mut state.table,
        grants: &state.grants,
    }
}

impl variables::Host for SpinView<'_> {}

impl<U> variables::HostWithStore<U> for SpinInterfaces {
    async fn get(
        accessor: &Accessor<U, Self>,
        name: String,
    ) -> wasmtime::Result<Result<String, variables::Error>> {
        if crate::manifest::check_variable_name(&name).is_err() {
            return Ok(Err(variables::Error::InvalidName(name)));
        }
        Ok(accessor.with(
            |mut access| match access.get().grants.variables.get(&name) {
                Some(value) => Ok(value.to_string()),
                None => Err(variables::Error::Undefined(format!(
                    "no variable `{name}` is declared for this component"
                ))),
            },
        ))
    }
}

impl kv::Host for SpinView<'_> {}

fn kv_error(e: crate::key_value::KeyValueError) -> kv::Error {
    tracing::error!(target: "chatgate::key_value", "{e}");
    kv::Error::Other("key-value store failure (see host log)".into())
}

/// Runs a key-value operation on the store behind `handle`, outside the guest's memory.
fn with_store<U, R>(
    accessor: &Accessor<U, SpinInterfaces>,
    handle: &Resource<KeyValueHandle>,
    op: impl FnOnce(&SqliteKeyValue, &str) -> Result<R, crate::key_value::KeyValueError>,
) -> wasmtime::Result<Result<R, kv::Error>> {
    let (label, database) = accessor.with(|mut access| {
        let view = access.get();
        let label = view.table.get(handle)?.label.clone();
        Ok::<_, wasmtime::Error>((label, view.grants.key_value.clone()))
    })?;
    Ok(op(&database, &label).map_err(kv_error))
}

impl kv::HostStore for SpinView<'_> {
    fn drop(&mut self, store: Resource<KeyValueHandle>) -> wasmtime::Result<()> {
        self.table.delete(store)?;
        Ok(())
    }
}

impl<U> kv::HostStoreWithStore<U> for SpinInterfaces {
    async fn open(
        accessor: &Accessor<U, Self>,
        label: String,
    ) -> wasmtime::Result<Result<Resource<KeyValueHandle>, kv::Error>> {
        accessor.with(|mut access| {
            let view = access.get();
            if !view.grants.key_value_stores.contains(&label) {
                return Ok(Err(kv::Error::AccessDenied));
            }
            Ok(Ok(view.table.push(KeyValueHandle { label })?))
        })
    }

    async fn get(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, kv::Error>> {
        with_store(accessor, &store, |db, label| db.get(label, &key))
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, |db, label| db.set(label, &key, &value))
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, |db, label| db.delete(label, &key))
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        with_store(accessor, &store, |db, label| db.exists(label, &key))
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
    ) -> wasmtime::Result<(
        wasmtime::component::StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), kv::Error>>,
    )> {
        let (keys, outcome) = match with_store(accessor, &store, |db, label| db.keys(label))? {
            Ok(keys) => (keys, Ok(())),
            Err(e) => (Vec::new(), Err(e)),
        };
        accessor.with(|mut access| {
            let keys = wasmtime::component::StreamReader::new(&mut access, keys)?;
            let outcome = wasmtime::component::FutureReader::new(&mut access, async move {
                Ok::<_, wasmtime::Error>(outcome)
            })?;
            Ok((keys, outcome))
        })
    }
}

/// Interfaces the host provides, besides WASI p2/p3 and `wasi:http`.
const SPIN_INTERFACES: &[&str] = &[
    "spin:variables/variables@3.0.0",
    "spin:key-value/key-value@3.0.0",
];

/// WASI packages the host provides (through wasmtime-wasi and wasmtime-wasi-http).
const WASI_PREFIXES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:random/",
    "wasi:filesystem/",
    "wasi:sockets/",
    "wasi:io/",
    "wasi:http/types@0.3",
    "wasi:http/client@0.3",
];

/// Builds the linker for one composed component: real host interfaces, and refusing
/// stand-ins for every configuration-bearing import a dependency was not granted.
pub fn linker(
    engine: &Engine,
    component: &Component,
    denied: &BTreeMap<String, String>,
) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    variables::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    kv::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;

    for (name, _) in component.component_type().imports(engine) {
        let provided = SPIN_INTERFACES.contains(&name)
            || WASI_PREFIXES.iter().any(|p| name.starts_with(p))
            || (name.starts_with(DENY_PREFIX) && denied.contains_key(name));
        if !provided {
            wasmtime::bail!(
                "the app imports `{name}`, which chatgate does not provide (it provides WASI 0.2/0.3, wasi:http@0.3, {})",
                SPIN_INTERFACES.join(", ")
            );
        }
    }
    for (name, original) in denied {
        deny(&mut linker, engine, component, name, original)?;
    }
    Ok(linker)
}

/// Stands in for a resource of an interface a dependency was not granted; never constructed.
struct DeniedResource;

/// Satisfies the deny import `name` (standing for `original`) as Spin's deny adapter
/// does: calls that have a natural refusal get it (a variable is undefined, a store is
/// access-denied, an outbound request fails, the environment is empty); any other call traps.
fn deny(
    linker: &mut Linker<HostState>,
    engine: &Engine,
    component: &Component,
    name: &str,
    original: &str,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    let import = component
        .component_type()
        .imports(engine)
        .find(|(import, _)| *import == name)
        .map(|(_, item)| item.ty);
    let Some(ComponentItem::ComponentInstance(instance)) = import else {
        return Ok(());
    };
    let interface = original.split('@').next().unwrap_or(original).to_string();
    // Resources `use`d from another interface (e.g. `request` in `wasi:http/client`) are
    // satisfied by that interface; only key-value interfaces define their own.
    let defines_resources = crate::compose::capability_set_of(original) == Some("key_value_stores");
    let mut linker = linker.instance(name)?;
    for (export, item) in instance.exports(engine) {
        let context = Arc::new(Refusal {
            interface: interface.clone(),
            function: export.to_string(),
        });
        match item.ty {
            ComponentItem::ComponentFunc(func) if func.async_() => {
                linker.func_new_concurrent(export, move |_, _, params, results| {
                    let outcome = context.answer(params, results);
                    Box::pin(async move { outcome })
                })?;
            }
            ComponentItem::ComponentFunc(_) => {
                linker.func_new(export, move |_, _, params, results| {
                    context.answer(params, results)
                })?;
            }
            ComponentItem::Resource(_) if defines_resources => {
                linker.resource(
                    export,
                    wasmtime::component::ResourceType::host::<DeniedResource>(),
                    |_, _| Ok(()),
                )?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// A function of an interface a dependency was not granted.
struct Refusal {
    interface: String,
    function: String,
}

impl Refusal {
    fn answer(&self, params: &[Val], results: &mut [Val]) -> wasmtime::Result<()> {
        let not_granted = format!(
            "`{}` is not granted to this dependency (see inherit_configuration in spin.toml)",
            self.interface
        );
        let err = |payload: Val| Val::Result(Err(Some(Box::new(payload))));
        let refusal = match (self.interface.as_str(), self.function.as_str()) {
            ("spin:variables/variables", "get") => {
                let variable = match params.first() {
                    Some(Val::String(name)) => name.clone(),
                    _ => String::new(),
                };
                err(Val::Variant(
                    "undefined".into(),
                    Some(Box::new(Val::String(variable))),
                ))
            }
            ("spin:key-value/key-value", "[static]store.open") => {
                err(Val::Variant("access-denied".into(), None))
            }
            ("wasi:http/client", "send") | ("wasi:http/outgoing-handler", "handle") => {
                err(Val::Variant(
                    "internal-error".into(),
                    Some(Box::new(Val::Option(Some(Box::new(Val::String(
                        not_granted,
                    )))))),
                ))
            }
            ("wasi:cli/environment", "get-environment" | "get-arguments")
            | ("wasi:filesystem/preopens", "get-directories") => Val::List(Vec::new()),
            ("wasi:cli/environment", "initial-cwd" | "get-initial-cwd") => Val::Option(None),
            _ => {
                return Err(wasmtime::format_err!(
                    "`{}#{}` was called by a dependency it is not granted to (see inherit_configuration in spin.toml)",
                    self.interface,
                    self.function
                ));
            }
        };
        match results.first_mut() {
            Some(slot) => {
                *slot = refusal;
                Ok(())
            }
            None => Err(wasmtime::format_err!(
                "`{}#{}` has no result to refuse with",
                self.interface,
                self.function
            )),
        }
    }
}
