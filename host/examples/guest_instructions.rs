//! Runs a `wasi:cli` command component on an engine that compiles guest code as the
//! gateway does (`chatgate::runtime::configure_guest_code`), so that callgrind can count
//! a component's own path, built for WebAssembly, next to the same path built natively.
//! `bench/instructions/guest-path` runs it; by hand:
//!
//! ```text
//! cargo build --profile profiling --target wasm32-wasip2 -p waf --example profile
//! cargo build --profile profiling -p chatgate --example guest_instructions
//! CASE=chain valgrind --tool=callgrind target/profiling/examples/guest_instructions \
//!     target/wasm32-wasip2/profiling/examples/profile.wasm [callgrind|no-epoch]
//! ```
//!
//! The second argument chooses the settings: `perfmap` (the default: the gateway's in
//! production, memories reserved whole so bounds checks are elided), `callgrind` (the
//! gateway's under valgrind: small reservations, explicit bounds checks) or `no-epoch`
//! (production's without the epoch checks that let the gateway preempt a busy guest, to
//! say what those cost). Either way the perf map names the guest's functions. The command gets
//! the process's environment and standard streams, and nothing else: imports other than
//! WASI 0.2's (a component's `wasi:http` or `wasi:otel`, which its `profile` example does
//! not call) trap if called.
//!
//! `crates/seclang/wasm-runner` (outside the workspace) runs the engine's own benchmark
//! on wasmtime's default settings, which leave out the gateway's epoch checks; this one
//! compiles as the gateway does and also runs a component's example, whose component
//! imports `wasi:http`.

use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, Linker, ResourceTable, ResourceType};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

struct Command {
    wasi: WasiCtx,
    table: ResourceTable,
}

impl WasiView for Command {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The WASI 0.2 packages `wasmtime_wasi` provides; any other import is stubbed.
const PROVIDED: &[&str] = &[
    "wasi:cli/",
    "wasi:io/",
    "wasi:random/",
    "wasi:clocks/",
    "wasi:filesystem/",
    "wasi:sockets/",
];

fn provided(import: &str) -> bool {
    PROVIDED.iter().any(|package| import.starts_with(package)) && import.contains("@0.2.")
}

/// Defines every import the linker does not provide as functions that trap and resources
/// without behaviour. (`Linker::define_unknown_imports_as_traps` would also shadow the
/// WASI 0.2 imports whose patch version differs from `wasmtime_wasi`'s.)
fn stub_the_rest(
    linker: &mut Linker<Command>,
    engine: &Engine,
    component: &Component,
) -> wasmtime::Result<()> {
    for (name, import) in component.component_type().imports(engine) {
        let ComponentItem::ComponentInstance(instance) = import.ty else {
            continue;
        };
        if provided(name) {
            continue;
        }
        let mut stubs = linker.instance(name)?;
        for (item, export) in instance.exports(engine) {
            match export.ty {
                ComponentItem::ComponentFunc(func) if func.async_() => {
                    stubs.func_new_concurrent(item, |_, _, _, _| {
                        Box::pin(async { wasmtime::bail!("not provided to this command") })
                    })?;
                }
                ComponentItem::ComponentFunc(_) => {
                    stubs.func_new(item, |_, _, _, _| {
                        wasmtime::bail!("not provided to this command")
                    })?;
                }
                ComponentItem::Resource(_) => {
                    stubs.resource(item, ResourceType::host::<()>(), |_, _| Ok(()))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> wasmtime::Result<()> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        wasmtime::bail!("usage: guest_instructions <command.wasm> [perfmap|callgrind|no-epoch]");
    };
    let settings = args.next().unwrap_or_else(|| "perfmap".into());
    let mut config = Config::new();
    if settings == "no-epoch" {
        chatgate::runtime::configure_guest_code(&mut config, "perfmap");
        config.epoch_interruption(false);
    } else {
        chatgate::runtime::configure_guest_code(&mut config, &settings);
    }
    // Compiling a large component under valgrind takes minutes: later runs reuse it.
    let mut cache = wasmtime::CacheConfig::new();
    cache.with_directory(chatgate_cache_dir());
    config.cache(Some(wasmtime::Cache::new(cache)?));
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, &path)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    stub_the_rest(&mut linker, &engine, &component)?;
    let wasi = WasiCtx::builder().inherit_stdio().inherit_env().build();
    let mut store = Store::new(
        &engine,
        Command {
            wasi,
            table: ResourceTable::new(),
        },
    );
    // Epoch checks are compiled in, as in the gateway; nothing advances the epoch here.
    store.set_epoch_deadline(u64::MAX);
    let command =
        wasmtime_wasi::p2::bindings::Command::instantiate_async(&mut store, &component, &linker)
            .await?;
    match command.wasi_cli_run().call_run(&mut store).await? {
        Ok(()) => Ok(()),
        Err(()) => wasmtime::bail!("the command failed"),
    }
}

fn chatgate_cache_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    target.join("guest-instructions-cache")
}
