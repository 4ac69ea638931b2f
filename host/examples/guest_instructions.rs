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
//! not call) trap if called, as while pre-initialising (`chatgate::preload`).
//!
//! `crates/seclang/wasm-runner` (outside the workspace) runs the engine's own benchmark
//! on wasmtime's default settings, which leave out the gateway's epoch checks; this one
//! compiles as the gateway does and also runs a component's example, whose component
//! imports `wasi:http`.

use chatgate::preload::{WasiOnly, trap_imports_beyond_wasi_p2};
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::WasiCtx;

fn unavailable(import: &str) -> wasmtime::Error {
    wasmtime::format_err!("the command called `{import}`, which is not provided to it")
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
    cache.with_directory(compile_cache_dir());
    config.cache(Some(wasmtime::Cache::new(cache)?));
    let engine = Engine::new(&config)?;
    let component = Component::from_file(&engine, &path)?;
    let mut linker = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    trap_imports_beyond_wasi_p2(&engine, &mut linker, &component, unavailable)?;
    let wasi = WasiCtx::builder().inherit_stdio().inherit_env().build();
    let mut store = Store::new(&engine, WasiOnly::new(wasi));
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

fn compile_cache_dir() -> std::path::PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        std::path::PathBuf::from,
    );
    target.join("guest-instructions-cache")
}
