//! The wasmtime side, one module per concern, as Spin splits its host into factors:
//!
//! - [`engine`](mod@engine): the engine and the pooling allocator's sizes;
//! - `grants`: what a trigger's component may use ([`Grants`]), shared by its instances;
//! - [`state`]: one request's store data ([`HostState`]) and the views taken of it;
//! - `outbound`: the `wasi:http` hook enforcing `allowed_outbound_hosts`;
//! - `http_client`: the pooled client that sends what `outbound` allows;
//! - `variables`: `spin:variables`;
//! - `key_value`: `spin:key-value` and `wasi:keyvalue` over a [`crate::key_value::KeyValueStore`];
//! - `guest_spans`, `guest_logs`, `guest_metrics`: `wasi:otel/tracing`, `/logs` and
//!   `/metrics`, guests' spans, log records and measurements handed to the host's exporters;
//! - `app_log`: guests' stdout and stderr, also exported as log records when logs are;
//! - `linker`: what the host provides, and the refusal of an app importing anything else.
//!
//! The WIT bindings are generated once here, for the `chatgate:host/spin-host` world, and
//! shared by the interface modules.

mod app_log;
pub mod engine;
mod grants;
mod guest_logs;
mod guest_metrics;
mod guest_spans;
pub mod guest_stdout;
mod http_client;
mod key_value;
mod linker;
mod outbound;
pub mod state;
mod variables;

pub use engine::{MAX_MEMORY_BYTES, configure_guest_code, engine};
pub use grants::Grants;
pub use key_value::{CasHandle, KeyValueHandle};
pub use linker::linker;
pub use state::{HostState, SpinView};

#[allow(missing_docs, clippy::all)]
mod bindings {
    wasmtime::component::bindgen!({
        // Dependencies first: `wit` refers to them and finds them already resolved
        // (`wasi:otel` uses `wasi:clocks@0.2.0`, which uses `wasi:io@0.2.0`).
        path: [
            "../wit/deps/io-0.2.0",
            "../wit/deps/clocks-0.2.0",
            "../wit/deps/otel-0.2.0-rc.2",
            "../wit/deps/keyvalue-2024-10-17",
            "wit",
        ],
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
