//! The linker of one composed component: WASI 0.2 and 0.3, `wasi:http@0.3`, and the Spin
//! interfaces, on [`HostState`]. An app importing anything else is refused at load, by
//! name, rather than failing at instantiation with wasmtime's less direct message.
//!
//! Configuration a dependency does not inherit never reaches the host through here: the
//! composition plugs a deny component into those imports (see [`crate::deny`]).

use super::bindings::spin::key_value::key_value as kv;
use super::bindings::spin::variables::variables;
use super::bindings::wasi::keyvalue::{
    atomics as wasi_atomics, batch as wasi_batch, store as wasi_kv,
};
use super::bindings::wasi::otel::{
    logs as otel_logs, metrics as otel_metrics, tracing as otel_tracing, types as otel_types,
};
use super::state::{HostState, SpinInterfaces, spin_view};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

/// Interfaces the host provides, besides WASI p2/p3 and `wasi:http`.
const SPIN_INTERFACES: &[&str] = &[
    "spin:variables/variables@3.0.0",
    "spin:key-value/key-value@3.0.0",
    "wasi:keyvalue/store@0.2.0-draft2",
    "wasi:keyvalue/atomics@0.2.0-draft2",
    "wasi:keyvalue/batch@0.2.0-draft2",
    "wasi:otel/tracing@0.2.0-rc.2",
    "wasi:otel/types@0.2.0-rc.2",
    "wasi:otel/logs@0.2.0-rc.2",
    "wasi:otel/metrics@0.2.0-rc.2",
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

/// Whether the host provides the import `name`.
fn provided(name: &str) -> bool {
    SPIN_INTERFACES.contains(&name) || WASI_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Builds the linker for one composed component, refusing one that imports what the
/// host does not provide.
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
    otel_types::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    otel_tracing::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    otel_logs::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;
    otel_metrics::add_to_linker::<_, SpinInterfaces>(&mut linker, spin_view)?;

    for (name, _) in component.component_type().imports(engine) {
        if !provided(name) {
            wasmtime::bail!(
                "the app imports `{name}`, which chatgate does not provide (it provides WASI 0.2/0.3, wasi:http@0.3, {})",
                SPIN_INTERFACES.join(", ")
            );
        }
    }
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spin_interfaces_and_wasi_are_provided_and_nothing_else() {
        for name in [
            "spin:variables/variables@3.0.0",
            "wasi:keyvalue/batch@0.2.0-draft2",
            "wasi:cli/environment@0.2.6",
            "wasi:http/client@0.3.0",
        ] {
            assert!(provided(name), "{name}");
        }
        for name in [
            "spin:sqlite/sqlite@3.0.0",
            "wasi:config/store@0.2.0-draft",
            // Only the 0.3 HTTP interfaces: the app is WASIp3.
            "wasi:http/outgoing-handler@0.2.6",
        ] {
            assert!(!provided(name), "{name}");
        }
    }
}
