//! chatgate's retrieval index.
//!
//! - [`ingest`] (feature `ingest`) turns a folder of Markdown, plain text and HTML into
//!   [`Document`]s split into overlapping [`Chunk`]s.
//! - [`analysis`] turns text into terms (Unicode words, case folding, stop words, stemming).
//! - [`format`] writes the versioned index artifact and opens one in place, without
//!   parsing it into owned structures.
//! - [`search`] ranks: BM25, exact vector search, reciprocal rank fusion, filters.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::collections::BTreeMap;

pub mod analysis;
pub mod format;
#[cfg(feature = "ingest")]
pub mod ingest;
pub mod search;

pub use analysis::{Analyzer, AnalyzerConfig, Stemming};
pub use format::{
    BuildError, ChunkingParams, EmbeddingInfo, FormatError, Index, IndexParams, RankingParams,
    Vectors, build,
};
pub use search::{Filter, Hit, Passage, SearchError};

/// One source file as ingestion produced it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// Path relative to the ingested folder, with `/` separators (e.g. `guides/waf.md`).
    pub path: String,
    /// SHA-256 of the file's bytes: re-indexing reuses a document whose hash is unchanged.
    pub content_hash: [u8; 32],
    /// The document's title: front-matter `title`, the first `#` heading / `<title>`, or the file stem.
    pub title: String,
    /// Front-matter fields (keys lowercased), usable as search filters.
    pub metadata: BTreeMap<String, String>,
    /// The document's chunks in reading order.
    pub chunks: Vec<Chunk>,
}

/// A passage of a document: what retrieval ranks and returns.
#[derive(Debug, Clone, PartialEq)]
pub struct Chunk {
    /// The heading path above the chunk, e.g. `Application Gateway > Custom rules`.
    pub title: String,
    /// The chunk's text, without the heading lines its title already holds.
    pub text: String,
}

/// One search: what `chatgate:retriever/retriever.search` asks, plus the deployment's floors.
#[derive(Debug, Clone, Copy, Default)]
pub struct SearchRequest<'q> {
    /// The user's words, analysed as the index was.
    pub query: &'q str,
    /// The most passages to return.
    pub top_k: usize,
    /// Every filter must hold for a passage to be returned.
    pub filters: &'q [Filter],
    /// BM25 scores below this are not returned (0 returns every matching chunk).
    pub min_score: f32,
    /// The query's embedding: with it, and vectors in the index, the search is hybrid.
    pub query_vector: Option<&'q [f32]>,
    /// Cosine similarities below this do not count as vector matches.
    pub min_similarity: f32,
}

impl Index<'_> {
    /// Ranks the chunks for `request`: BM25 alone, or, given a query vector and an index
    /// with vectors, BM25 and nearest neighbours fused by reciprocal rank. At most
    /// [`search::MAX_TOP_K`] hits.
    pub fn search(
        &self,
        analyzer: &Analyzer,
        request: &SearchRequest<'_>,
    ) -> Result<Vec<Hit>, SearchError> {
        if request.query.trim().is_empty() {
            return Err(SearchError::InvalidQuery("the query is empty".into()));
        }
        let allowed = self.allowed(request.filters)?;
        let top_k = request.top_k.min(search::MAX_TOP_K);
        match request.query_vector {
            Some(vector) if self.params.embedding.is_some() => {
                let depth = search::FUSION_DEPTH.max(top_k);
                let lexical =
                    self.bm25(analyzer, request.query, &allowed, depth, request.min_score);
                let semantic = self.nearest(vector, &allowed, depth, request.min_similarity);
                Ok(search::fuse(&[&lexical, &semantic], top_k))
            }
            _ => Ok(self.bm25(analyzer, request.query, &allowed, top_k, request.min_score)),
        }
    }
}
