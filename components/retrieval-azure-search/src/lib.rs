//! `chatgate:retriever/retriever` backed by the Azure AI Search REST API
//! (`POST /indexes/{index}/docs/search`). Swapped in for `retrieval` by one line of
//! `spin.toml`; see README.md for its variables.
//!
//! The plain modules hold every decision and are tested natively; the `wasm` module
//! only moves bytes between them, Spin variables, the key-value store (token cache),
//! outbound HTTP and the WIT types.

pub mod config;
pub mod errors;
pub mod odata;
pub mod request;
pub mod response;

/// The contract's types, from their one owner.
pub use chatgate_rag::retriever::{Filter, Passage, RetrievalError};

/// A 2xx search answer larger than this is not one we can use (top-k passages of text).
pub const MAX_RESULT_BODY_BYTES: usize = 16 << 20;
/// Error bodies are only read this far: the message that matters is at the start.
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;
