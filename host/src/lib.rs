//! `chatgate`: runs a Spin application of WASIp3 components on wasmtime.
//!
//! The host reads `spin.toml` ([`manifest`]), resolves variables ([`variables`]),
//! composes each HTTP trigger's component with its dependencies and middleware
//! ([`compose`]), and serves HTTP ([`server`]), giving every request a fresh
//! instance with only the configuration its component was granted ([`runtime`]).
//! Requests are admitted within global and per-client budgets ([`admission`]), and an
//! instance is dropped as soon as its request is over ([`app`]).

pub mod admission;
pub mod app;
pub mod build;
pub mod compose;
pub mod deny;
pub mod embeddings;
pub mod index;
pub mod key_value;
pub mod manifest;
pub mod outbound;
pub mod overload;
pub mod preload;
pub mod routes;
pub mod runtime;
pub mod server;
pub mod variables;
pub mod waf_build;
