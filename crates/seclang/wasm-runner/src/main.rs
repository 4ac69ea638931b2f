//! `seclang-wasm-runner COMMAND.wasm [ARGS...]`: runs a WASI 0.2 command component with
//! wasmtime (Cranelift, default settings, as the host compiles components), stdio and
//! environment inherited, and Debian's CRS directories readable at their own paths.

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store};
use wasmtime_wasi::p2::bindings::sync::Command;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// The directories the CRS entry point and its includes live in.
const PREOPENS: &[&str] = &["/usr/share/modsecurity-crs", "/etc/modsecurity/crs"];

struct State {
    table: ResourceTable,
    wasi: WasiCtx,
}

impl WasiView for State {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

fn main() -> wasmtime::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(path) = args.first() else {
        wasmtime::bail!("usage: seclang-wasm-runner COMMAND.wasm [ARGS...]");
    };
    let engine = Engine::new(&Config::new())?;
    let component = Component::from_file(&engine, path)?;
    let mut linker = Linker::<State>::new(&engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    let mut wasi = WasiCtxBuilder::new();
    wasi.inherit_stdio().inherit_env().args(&args);
    for dir in PREOPENS {
        if std::path::Path::new(dir).exists() {
            wasi.preopened_dir(dir, dir, FsPerms::ReadOnly)?;
        }
    }
    let mut store = Store::new(
        &engine,
        State {
            table: ResourceTable::new(),
            wasi: wasi.build(),
        },
    );
    let command = Command::instantiate(&mut store, &component, &linker)?;
    command
        .wasi_cli_run()
        .call_run(&mut store)?
        .map_err(|()| wasmtime::format_err!("the command failed"))
}
