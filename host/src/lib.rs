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
