//! The wasmtime side: engine, linker, per-request store state, and the Spin host
//! interfaces (`spin:variables`, `spin:key-value`, `wasi:keyvalue`) plus outbound HTTP policy.

use crate::key_value::{KeyValueError, SqliteKeyValue};
use crate::outbound::OutboundPolicy;
use crate::variables::ComponentVariables;
use std::collections::BTreeSet;
use std::sync::Arc;
use wasmtime::component::{Accessor, Component, HasData, Linker, Resource, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpHooks, WasiHttpView};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        // `wasi:keyvalue` first: `wit` refers to it and finds it already resolved.
        path: ["../wit/deps/keyvalue-2024-10-17", "wit"],
        world: "chatgate:host/spin-host",
        imports: {
            // Its functions are synchronous to the guest; the host awaits the database.
            "wasi:keyvalue": async | trappable,
            default: trappable,
        },
        with: {
            "spin:key-value/key-value.store": super::KeyValueHandle,
            "wasi:keyvalue/store.bucket": super::KeyValueHandle,
            "wasi:keyvalue/atomics.cas": super::CasHandle,
        },
    });
}

use bindings::spin::key_value::key_value as kv;
use bindings::spin::variables::variables;
use bindings::wasi::keyvalue::{atomics as wasi_atomics, batch as wasi_batch, store as wasi_kv};

/// Fiber stacks the pool holds per instance (see [`engine`]).
const STACKS_PER_INSTANCE: u32 = 4;
/// Core instances per composed instance: the shipped chain (five components, their
/// dependencies, the adapters and deny components between them) needed more than 20
/// when measured with a deny component per dependency (a pool of 20 per instance ran out
/// before admission did); not re-measured since.
const CORE_INSTANCES_PER_INSTANCE: u32 = 64;
/// Linear memories per composed instance (the shipped chain has 7, as wasmtime reports when
/// this share is set lower; 11 with a deny component per dependency). Each reserves over
/// 4 GiB of address space, so this share bounds the pool: 1,000 instances with 16
/// memories reserve about 65 TiB of the 128 TiB a process has.
const MEMORIES_PER_INSTANCE: u32 = 16;
/// Tables per composed instance (cheap: a table slot reserves its elements only).
const TABLES_PER_INSTANCE: u32 = 64;

/// Memory one component instance may grow to; the pooling allocator reserves this per memory.
pub const MAX_MEMORY_BYTES: usize = 1 << 30;

/// Builds the engine every app component runs on: async component model (WASIp3),
/// the pooling allocator for cheap per-request instantiation, and epoch-based
/// preemption so a spinning guest cannot monopolise a host thread.
///
/// With `compile_cache`, compiled code is kept in that directory and reused when the
/// same composed component is loaded again. `max_instances` sizes the pool: the
/// most requests served at once.
pub fn engine(
    compile_cache: Option<&std::path::Path>,
    max_instances: u32,
) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    if let Some(dir) = compile_cache {
        let mut cache = wasmtime::CacheConfig::new();
        cache.with_directory(dir);
        config.cache(Some(wasmtime::Cache::new(cache)?));
    }
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    config.epoch_interruption(true);
    // `CHATGATE_PROFILER=perfmap` writes /tmp/perf-<pid>.map so that `perf report`
    // names the guests' compiled functions (how the per-stage costs in the gateway
    // benchmark were found).
    if std::env::var("CHATGATE_PROFILER").is_ok_and(|p| p == "perfmap") {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    // Every admitted request gets its instance's worth of each pooled resource, so that
    // the pool never runs out before admission does. The per-component maxima equal the
    // per-instance shares, so wasmtime refuses to compile a composition that needs more.
    let mut pool = PoolingAllocationConfig::default();
    pool.total_component_instances(max_instances);
    pool.total_core_instances(max_instances.saturating_mul(CORE_INSTANCES_PER_INSTANCE));
    pool.total_memories(max_instances.saturating_mul(MEMORIES_PER_INSTANCE));
    pool.total_tables(max_instances.saturating_mul(TABLES_PER_INSTANCE));
    pool.max_memories_per_component(MEMORIES_PER_INSTANCE);
    pool.max_tables_per_component(TABLES_PER_INSTANCE);
    pool.max_core_instances_per_component(CORE_INSTANCES_PER_INSTANCE);
    pool.max_memory_size(MAX_MEMORY_BYTES);
    // Each concurrently running guest task takes a fiber stack: a request through the
    // middleware chain held about two at once when issue 9 was measured (a pool of 1,000
    // stacks ran out at ~500 requests).
    pool.total_stacks(max_instances.saturating_mul(STACKS_PER_INSTANCE));
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// A handle to an opened key-value store: the resource behind `spin:key-value/store`
/// and `wasi:keyvalue/store.bucket`.
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

/// Runs a database operation on tokio's blocking pool: SQLite calls are short, but one
/// may wait for the file's write lock, and must not hold up the requests sharing a worker.
async fn run_blocking<R: Send + 'static>(
    database: Arc<SqliteKeyValue>,
    op: impl FnOnce(&SqliteKeyValue) -> Result<R, KeyValueError> + Send + 'static,
) -> Result<R, KeyValueError> {
    tokio::task::spawn_blocking(move || op(&database))
        .await
        .unwrap_or_else(|e| Err(KeyValueError::Worker(e.to_string())))
}

/// What a guest is told about a failed operation: its own mistakes in full, host
/// failures only as a pointer to the host log (they may name paths).
fn guest_message(e: KeyValueError) -> String {
    if e.is_caller_error() {
        e.to_string()
    } else {
        tracing::error!(target: "chatgate::key_value", "{e}");
        "key-value store failure (see host log)".into()
    }
}

impl kv::Host for SpinView<'_> {}

fn kv_error(e: KeyValueError) -> kv::Error {
    kv::Error::Other(guest_message(e))
}

/// Runs a key-value operation on the store behind `handle`.
async fn with_store<U, R: Send + 'static>(
    accessor: &Accessor<U, SpinInterfaces>,
    handle: &Resource<KeyValueHandle>,
    op: impl FnOnce(&SqliteKeyValue, &str) -> Result<R, KeyValueError> + Send + 'static,
) -> wasmtime::Result<Result<R, kv::Error>> {
    let (label, database) = accessor.with(|mut access| {
        let view = access.get();
        let label = view.table.get(handle)?.label.clone();
        Ok::<_, wasmtime::Error>((label, view.grants.key_value.clone()))
    })?;
    Ok(run_blocking(database, move |db| op(db, &label))
        .await
        .map_err(kv_error))
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
        with_store(accessor, &store, move |db, label| db.get(label, &key)).await
    }

    async fn set(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, move |db, label| {
            db.set(label, &key, &value)
        })
        .await
    }

    async fn delete(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), kv::Error>> {
        with_store(accessor, &store, move |db, label| db.delete(label, &key)).await
    }

    async fn exists(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, kv::Error>> {
        with_store(accessor, &store, move |db, label| db.exists(label, &key)).await
    }

    async fn get_keys(
        accessor: &Accessor<U, Self>,
        store: Resource<KeyValueHandle>,
    ) -> wasmtime::Result<(
        wasmtime::component::StreamReader<String>,
        wasmtime::component::FutureReader<Result<(), kv::Error>>,
    )> {
        let listed = with_store(accessor, &store, |db, label| db.keys(label)).await?;
        let (keys, outcome) = match listed {
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

// `wasi:keyvalue@0.2.0-draft2` over the same stores and the same grants as
// `spin:key-value`, with the semantics of Spin's SQLite backend.

/// A compare-and-swap in progress: the value the key held when last read (`None`: absent,
/// or not read yet), which `swap` requires the key still to hold.
pub struct CasHandle {
    label: String,
    key: String,
    expected: Option<Vec<u8>>,
}

fn wasi_kv_error(e: KeyValueError) -> wasi_kv::Error {
    wasi_kv::Error::Other(guest_message(e))
}

impl SpinView<'_> {
    /// The label and database behind a bucket handle.
    fn bucket(
        &self,
        bucket: &Resource<KeyValueHandle>,
    ) -> wasmtime::Result<(String, Arc<SqliteKeyValue>)> {
        let label = self.table.get(bucket)?.label.clone();
        Ok((label, self.grants.key_value.clone()))
    }
}

/// Runs `op` on a bucket's store (from [`SpinView::bucket`]). Takes no view: the view is
/// not `Sync`, and the future must be `Send`.
async fn on_bucket<R: Send + 'static>(
    (label, database): (String, Arc<SqliteKeyValue>),
    op: impl FnOnce(&SqliteKeyValue, &str) -> Result<R, KeyValueError> + Send + 'static,
) -> wasmtime::Result<Result<R, wasi_kv::Error>> {
    Ok(run_blocking(database, move |db| op(db, &label))
        .await
        .map_err(wasi_kv_error))
}

impl wasi_kv::Host for SpinView<'_> {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<KeyValueHandle>, wasi_kv::Error>> {
        // As in Spin, a label outside `key_value_stores` is denied whether or not a store
        // by that name exists; every granted label is a store of the app's database.
        if !self.grants.key_value_stores.contains(&identifier) {
            return Ok(Err(wasi_kv::Error::AccessDenied));
        }
        Ok(Ok(self.table.push(KeyValueHandle { label: identifier })?))
    }
}

impl wasi_kv::HostBucket for SpinView<'_> {
    async fn get(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| db.get(label, &key)).await
    }

    async fn set(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.set(label, &key, &value)
        })
        .await
    }

    async fn delete(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.delete(label, &key)
        })
        .await
    }

    async fn exists(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<bool, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.exists(label, &key)
        })
        .await
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        cursor: Option<String>,
    ) -> wasmtime::Result<Result<wasi_kv::KeyResponse, wasi_kv::Error>> {
        // Spin answers every key in one response and so never hands out a cursor.
        if cursor.is_some() {
            return Ok(Err(wasi_kv::Error::Other(
                "list-keys: cursors are not supported (all keys come in the first response)".into(),
            )));
        }
        Ok(on_bucket(self.bucket(&bucket)?, |db, label| db.keys(label))
            .await?
            .map(|keys| wasi_kv::KeyResponse { keys, cursor: None }))
    }

    async fn drop(&mut self, bucket: Resource<KeyValueHandle>) -> wasmtime::Result<()> {
        self.table.delete(bucket)?;
        Ok(())
    }
}

impl wasi_atomics::Host for SpinView<'_> {
    async fn increment(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
        delta: i64,
    ) -> wasmtime::Result<Result<i64, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.increment(label, &key, delta)
        })
        .await
    }

    async fn swap(
        &mut self,
        cas: Resource<CasHandle>,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wasi_atomics::CasError>> {
        let CasHandle {
            label,
            key,
            expected,
        } = self.table.delete(cas)?;
        let database = self.grants.key_value.clone();
        let attempt = {
            let (label, key) = (label.clone(), key.clone());
            run_blocking(database.clone(), move |db| {
                db.compare_and_swap(&label, &key, expected.as_deref(), &value)
            })
            .await
        };
        match attempt {
            Ok(true) => Ok(Ok(())),
            Ok(false) => {
                // The spec asks for a handle at the latest version, ready for the retry.
                let latest = {
                    let (label, key) = (label.clone(), key.clone());
                    run_blocking(database, move |db| db.get(&label, &key)).await
                };
                Ok(Err(match latest {
                    Ok(expected) => {
                        let retry = self.table.push(CasHandle {
                            label,
                            key,
                            expected,
                        })?;
                        wasi_atomics::CasError::CasFailed(retry)
                    }
                    Err(e) => wasi_atomics::CasError::StoreError(wasi_kv_error(e)),
                }))
            }
            Err(e) => Ok(Err(wasi_atomics::CasError::StoreError(wasi_kv_error(e)))),
        }
    }
}

impl wasi_atomics::HostCas for SpinView<'_> {
    async fn new(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key: String,
    ) -> wasmtime::Result<Result<Resource<CasHandle>, wasi_kv::Error>> {
        // Like Spin, nothing is read yet: until `current` is called, the swap expects
        // the key to be absent.
        let (label, _) = self.bucket(&bucket)?;
        Ok(Ok(self.table.push(CasHandle {
            label,
            key,
            expected: None,
        })?))
    }

    async fn current(
        &mut self,
        cas: Resource<CasHandle>,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, wasi_kv::Error>> {
        let (label, key) = {
            let handle = self.table.get(&cas)?;
            (handle.label.clone(), handle.key.clone())
        };
        let database = self.grants.key_value.clone();
        let read = run_blocking(database, move |db| db.get(&label, &key)).await;
        Ok(match read {
            Ok(value) => {
                self.table.get_mut(&cas)?.expected.clone_from(&value);
                Ok(value)
            }
            Err(e) => Err(wasi_kv_error(e)),
        })
    }

    async fn drop(&mut self, cas: Resource<CasHandle>) -> wasmtime::Result<()> {
        self.table.delete(cas)?;
        Ok(())
    }
}

impl wasi_batch::Host for SpinView<'_> {
    async fn get_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<Vec<(String, Option<Vec<u8>>)>, wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.get_many(label, keys)
        })
        .await
    }

    async fn set_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        key_values: Vec<(String, Vec<u8>)>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.set_many(label, &key_values)
        })
        .await
    }

    async fn delete_many(
        &mut self,
        bucket: Resource<KeyValueHandle>,
        keys: Vec<String>,
    ) -> wasmtime::Result<Result<(), wasi_kv::Error>> {
        on_bucket(self.bucket(&bucket)?, move |db, label| {
            db.delete_many(label, &keys)
        })
        .await
    }
}

/// Interfaces the host provides, besides WASI p2/p3 and `wasi:http`.
const SPIN_INTERFACES: &[&str] = &[
    "spin:variables/variables@3.0.0",
    "spin:key-value/key-value@3.0.0",
    "wasi:keyvalue/store@0.2.0-draft2",
    "wasi:keyvalue/atomics@0.2.0-draft2",
    "wasi:keyvalue/batch@0.2.0-draft2",
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

/// Builds the linker for one composed component: the host interfaces. Configuration a
/// dependency does not inherit never reaches it: the composition plugs a deny component
/// into those imports (see [`crate::deny`]).
pub fn linker(engine: &Engine, component: &Component) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    wasmtime_wasi::p3::add_to_linker(&mut linker)?;
    wasmtime_wasi_http::p3::add_to_linker(&mut linker)?;
    variables::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    kv::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    wasi_kv::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    wasi_atomics::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    wasi_batch::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;

    for (name, _) in component.component_type().imports(engine) {
        let provided =
            SPIN_INTERFACES.contains(&name) || WASI_PREFIXES.iter().any(|p| name.starts_with(p));
        if !provided {
            wasmtime::bail!(
                "the app imports `{name}`, which chatgate does not provide (it provides WASI 0.2/0.3, wasi:http@0.3, {})",
                SPIN_INTERFACES.join(", ")
            );
        }
    }
    Ok(linker)
}
