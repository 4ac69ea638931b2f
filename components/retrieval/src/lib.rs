//! `chatgate:retriever/retriever` over an index artifact built by `chatgate index`.
//!
//! New instances are made as requests need them (each then serves up to 128 requests,
//! as on Spin), so the component must not load its index when it starts. `chatgate
//! index` pre-initialises it instead: it calls `wizer-initialize` once with the artifact
//! readable at `/index/chatgate.idx`, which opens (validates) the artifact in memory, and
//! snapshots that memory into the component it writes. An instance starts with the
//! opened index, mapped copy-on-write, so its start-up does not grow with the index. A
//! search reads only the postings of its terms and the chunks it returns; it grows with
//! those postings, which grow with the collection.
//!
//! When the index holds vectors and `retrieval_embeddings_origin` is set, each query is
//! embedded by that endpoint ([`embeddings`]) and the search is hybrid: BM25 and exact
//! nearest neighbours fused by reciprocal rank. If the query cannot be embedded, the
//! search answers from BM25 alone and logs why.

pub mod config;
pub mod embeddings;

use chatgate_index::{Analyzer, FormatError, Index};

/// Where `chatgate index` makes the artifact readable during pre-initialisation.
pub const PRELOAD_PATH: &str = "/index/chatgate.idx";

/// An opened index and the analyser its queries need.
pub struct Loaded {
    pub index: Index<'static>,
    pub analyzer: Analyzer,
}

/// Opens `bytes` for the lifetime of the instance (and of every snapshot of it).
pub fn load(bytes: Vec<u8>) -> Result<Loaded, FormatError> {
    let bytes: &'static [u8] = Vec::leak(bytes);
    let index = Index::open(bytes)?;
    let analyzer = index.analyzer();
    Ok(Loaded { index, analyzer })
}

/// The index engine returns at most its own `MAX_TOP_K` hits; a search the contract
/// allows must never be cut shorter than asked for.
const _: () =
    assert!(chatgate_rag::retriever::MAX_TOP_K as usize <= chatgate_index::search::MAX_TOP_K);

/// What a retriever without an index answers.
pub const NOT_PRELOADED: &str = "this retrieval component holds no index: build it with `chatgate index <folder>` and deploy the component that writes";

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;
