//! `chatgate`: runs a Spin application of WASIp3 components on wasmtime.
//!
//! The host reads `spin.toml` ([`manifest`]), resolves variables ([`variables`]),
//! composes each HTTP trigger's component with its dependencies and middleware
//! ([`compose`]), and serves HTTP ([`server`]) from instances that hold only the
//! configuration their component was granted ([`runtime`], by capability: which
//! interfaces each configuration set covers is [`capabilities`]) and are reused across
//! requests as Spin reuses them ([`reuse`]). Requests are admitted within global and
//! per-client budgets ([`admission`]), and an instance working for a request nobody
//! waits for is retired and dropped ([`app`]).

/// The global allocator the `chatgate` binary declares, and the benches and tests that run
/// the host in-process with it, so that they measure what the binary does: mimalloc rather
/// than the C library's. The binary the image ships and `make test` runs is static, on
/// musl, whose `malloc` and `free` (a global lock, about 320 instructions a pair) took
/// about 180 k instructions of each `GET /v1/models` through the chain, 564 allocations.
/// With mimalloc the chain's request took 1,253.2 k instructions instead of 1,406.3 k
/// (callgrind, `bench/instructions/run`, 2026-12-07; `docs/measurements/benchmarks.md`).
pub use mimalloc::MiMalloc as Allocator;

// For the same reason, musl's `memcmp` (one byte at a time) is replaced by one that compares
// eight at a time, in every binary that links the host (`crates/memcmp`).
use chatgate_memcmp as _;

pub mod admission;
pub mod app;
pub mod capabilities;
pub mod compose;
pub mod deny;
pub mod dependency_name;
pub mod key_value;
pub mod manifest;
pub mod openai_error;
pub mod otel;
pub mod otel_logs;
pub mod otel_metrics;
pub mod otel_proto;
pub mod otel_queue;
pub mod otel_transport;
pub mod outbound;
pub mod overload;
pub mod preload;
pub mod reuse;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod spin_oci;
pub mod variables;
pub mod waf_build;
