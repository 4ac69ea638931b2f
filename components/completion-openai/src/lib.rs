//! `chatgate:completion/completion` backed by an OpenAI-compatible `/v1/chat/completions`
//! API (OpenAI, local model servers) or Azure OpenAI. See README.md for configuration.
//!
//! The plain modules hold all decisions and are tested natively; the `wasm` module
//! only moves bytes between them, Spin variables, outbound HTTP and the WIT types.

pub mod breaker;
pub mod config;
pub mod errors;
pub mod identity;
pub mod request;
pub mod response;
pub mod retry;
pub mod sse;
pub mod stream;

/// A 2xx non-streamed answer larger than this is not a chat completion we can use.
pub const MAX_COMPLETION_BODY_BYTES: usize = 8 << 20;
/// Error bodies are only read this far: the message that matters is at the start.
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;
