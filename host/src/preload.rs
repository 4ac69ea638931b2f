//! Pre-initialising a component with its data loaded, using wasmtime's wizer.
//!
//! A Spin component is instantiated for every request, so whatever it loads at start-up
//! it loads per request. [`preload`] instead runs the component's `wizer-initialize`
//! export once, at build time, with a folder readable at `/index`, and snapshots the
//! memory that initialisation left into a new component: its data segments hold the
//! loaded state. Wasmtime maps data segments copy-on-write, so instantiating the result
//! costs the same whatever their size; a request touches only the pages it reads.
//!
//! During initialisation the component may use WASI 0.2 (to read the folder, print to
//! stderr); any other import traps, so initialisation cannot depend on variables,
//! networks or stores that differ between build and deployment.

use std::path::Path;
use wasmtime::component::{Component, Instance, Linker, ResourceTable, WasmList};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

/// The export a pre-loadable component initialises itself with (wizer's default name).
pub const INIT_EXPORT: &str = "wizer-initialize";

/// Where the preloaded folder appears inside the component during initialisation.
pub const GUEST_DIR: &str = "/index";

/// A store's state that provides WASI 0.2 and nothing else: the component's while it is
/// pre-initialised, and `examples/guest_instructions.rs`'s command's.
pub struct WasiOnly {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiOnly {
    /// The state around `wasi`, with an empty resource table.
    pub fn new(wasi: WasiCtx) -> WasiOnly {
        WasiOnly {
            table: ResourceTable::new(),
            wasi,
        }
    }
}

impl WasiView for WasiOnly {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Returns `component` (a Wasm component's bytes) pre-initialised by calling its
/// `wizer-initialize` export with `dir` readable at `/index`.
pub async fn preload(component: &[u8], dir: &Path) -> wasmtime::Result<Vec<u8>> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.wasm_component_model_async(true);
    let engine = Engine::new(&config)?;

    let mut wasi = WasiCtxBuilder::new();
    wasi.inherit_stderr()
        .preopened_dir(dir, GUEST_DIR, FsPerms::ReadOnly)?;
    let mut store = Store::new(&engine, WasiOnly::new(wasi.build()));

    // Wizer reads the initialised memory back as one `list<u8>`: more than the default
    // 128 MiB a guest may hand the host in one call once the index is large. The
    // component is the build's own input, not an untrusted guest.
    store.set_hostcall_fuel(usize::MAX);

    let wizer = {
        let mut wizer = Wizer::new();
        wizer.init_func(INIT_EXPORT);
        // Removing the core export would leave the component's lift of it dangling
        // (wizer 48 does not rewrite component-level exports).
        wizer.keep_init_func(true);
        wizer
    };
    let (context, instrumented) = wizer.instrument_component(component)?;
    let instrumented = Component::new(&engine, &instrumented)?;
    let mut linker = Linker::<WasiOnly>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    trap_imports_beyond_wasi_p2(&engine, &mut linker, &instrumented, unavailable)?;
    let instance = linker.instantiate_async(&mut store, &instrumented).await?;

    let init = instance
        .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
        .map_err(|error| {
            wasmtime::format_err!("the component has no `{INIT_EXPORT}: func()` export: {error}")
        })?;
    init.call_async(&mut store, ())
        .await
        .map_err(|error| wasmtime::format_err!("`{INIT_EXPORT}` failed: {error:?}"))?;

    wizer
        .snapshot_component(
            &context,
            &mut Snapshotter {
                store: &mut store,
                instance,
            },
        )
        .await
}

/// The WASI 0.2 packages `wasmtime_wasi::p2::add_to_linker_async` defines (not
/// `wasi:http`, nor proposals at 0.2 versions such as `wasi:otel@0.2.0-rc.2`).
const WASI_P2_PACKAGES: &[&str] = &[
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:io/",
    "wasi:random/",
    "wasi:sockets/",
];

/// Makes every import other than WASI 0.2 trap when called, with the error `unavailable`
/// makes of the import's name (`interface#function`). (wasmtime's
/// `define_unknown_imports_as_traps` would also shadow WASI 0.2 interfaces that the
/// component imports at an older patch version than the linker defines.)
pub fn trap_imports_beyond_wasi_p2<T: 'static>(
    engine: &Engine,
    linker: &mut Linker<T>,
    component: &Component,
    unavailable: fn(&str) -> wasmtime::Error,
) -> wasmtime::Result<()> {
    use wasmtime::component::types::ComponentItem;
    for (name, item) in component.component_type().imports(engine) {
        if WASI_P2_PACKAGES.iter().any(|p| name.starts_with(p)) && name.contains("@0.2.") {
            continue;
        }
        let ComponentItem::ComponentInstance(instance) = item.ty else {
            wasmtime::bail!("the component imports `{name}`, which is not an interface");
        };
        let mut stubs = linker.instance(name)?;
        for (function, export) in instance.exports(engine) {
            let qualified = format!("{name}#{function}");
            match export.ty {
                ComponentItem::ComponentFunc(ty) if ty.async_() => {
                    stubs.func_new_concurrent(function, move |_, _, _, _| {
                        let qualified = qualified.clone();
                        Box::pin(async move { Err(unavailable(&qualified)) })
                    })?
                }
                ComponentItem::ComponentFunc(_) => {
                    stubs.func_new(function, move |_, _, _, _| Err(unavailable(&qualified)))?
                }
                ComponentItem::Resource(_) => stubs.resource(
                    function,
                    wasmtime::component::ResourceType::host::<()>(),
                    |_, _| Ok(()),
                )?,
                _ => {}
            }
        }
    }
    Ok(())
}

fn unavailable(import: &str) -> wasmtime::Error {
    wasmtime::format_err!(
        "`{INIT_EXPORT}` called `{import}`: only WASI 0.2 is available while pre-initialising"
    )
}

/// Reads the instrumented component's state for wizer through the accessor exports
/// its instrumentation added.
struct Snapshotter<'a> {
    store: &'a mut Store<WasiOnly>,
    instance: Instance,
}

impl Snapshotter<'_> {
    async fn call<R>(&mut self, instance: &str, func: &str) -> R
    where
        R: wasmtime::component::ComponentType + wasmtime::component::Lift + Send + Sync + 'static,
    {
        // Wizer's own instrumentation defines these exports and their types, so a
        // failure here is a wizer bug, not something the user's component can cause.
        let (_, parent) = self
            .instance
            .get_export(&mut *self.store, None, instance)
            .expect("wizer's accessor instance");
        let (_, export) = self
            .instance
            .get_export(&mut *self.store, Some(&parent), func)
            .expect("wizer's accessor function");
        let typed = self
            .instance
            .get_typed_func::<(), (R,)>(&mut *self.store, export)
            .expect("wizer's accessor type");
        let (value,) = typed
            .call_async(&mut *self.store, ())
            .await
            .expect("calling wizer's accessor");
        value
    }
}

impl ComponentInstanceState for Snapshotter<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        let list: WasmList<u8> = self.call(instance, func).await;
        contents(list.as_le_slice(&*self.store));
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).await.to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).await.to_bits()
    }
}
