//! Ranking over an opened [`Index`]: BM25 over the terms, exact nearest neighbours over
//! the vectors, reciprocal rank fusion of the two, metadata filters and score floors.

use crate::analysis::Analyzer;
/// Queries are scaled like the stored vectors: the format owns the normalisation.
pub use crate::format::unit_length;
use crate::format::{Index, metadata_pairs};
use std::fmt;

/// The most passages one search returns.
pub const MAX_TOP_K: usize = 50;

/// The constant of reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009), also
/// Azure AI Search's.
pub const RRF_K: f32 = 60.0;

/// How far down each ranking hybrid search looks before fusing.
pub const FUSION_DEPTH: usize = 100;

/// A restriction on which chunks a search may return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `source`, `title` or a metadata field the index holds.
    pub field: String,
    /// The value the field must have (for `source`, a prefix of the document's path).
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
/// Why a search was refused.
pub enum SearchError {
    /// The request cannot be answered as asked (e.g. an unknown filter field); the message
    /// says why and is safe to show the client.
    InvalidQuery(String),
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SearchError::InvalidQuery(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for SearchError {}

/// A ranked chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The chunk's number in the index.
    pub chunk: usize,
    /// Its relevance (higher is better; the scale depends on the ranking).
    pub score: f32,
}

/// A chunk's fields as a search returns them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passage<'a> {
    /// `<document path>#<chunk number within the document>`.
    pub id: String,
    /// The chunk's heading path.
    pub title: &'a str,
    /// The chunk's text.
    pub text: &'a str,
    /// The document's path.
    pub source: &'a str,
}

/// Which chunks the filters of one search allow.
pub struct Allowed {
    documents: Option<Vec<bool>>,
    title: Option<String>,
}

impl Allowed {
    fn admits(&self, index: &Index<'_>, chunk: usize) -> bool {
        if let Some(documents) = &self.documents
            && !documents[index.chunk_docs.get(chunk) as usize]
        {
            return false;
        }
        match &self.title {
            Some(title) => index.chunk_titles.get(chunk).to_lowercase() == *title,
            None => true,
        }
    }
}

impl<'a> Index<'a> {
    /// Checks `filters` against this index: `source` is a path prefix, `title` an exact
    /// heading path (ignoring case), and any metadata field of the documents an exact
    /// value or a member of a `[a, b]` list. All must hold.
    pub fn allowed(&self, filters: &[Filter]) -> Result<Allowed, SearchError> {
        let mut allowed = Allowed {
            documents: None,
            title: None,
        };
        for filter in filters {
            let field = filter.field.as_str();
            if field == "title" {
                allowed.title = Some(filter.value.to_lowercase());
                continue;
            }
            let matches: Box<dyn Fn(usize) -> bool> = if field == "source" {
                Box::new(|d| self.doc_paths.get(d).starts_with(filter.value.as_str()))
            } else if self.metadata_fields.binary_search(&field).is_ok() {
                Box::new(|d| {
                    metadata_pairs(self.doc_metadata.get(d))
                        .any(|(key, value)| key == field && metadata_matches(value, &filter.value))
                })
            } else {
                let mut fields = vec!["source", "title"];
                fields.extend(self.metadata_fields.iter().copied());
                return Err(SearchError::InvalidQuery(format!(
                    "unknown filter field `{field}`; this index supports {}",
                    fields
                        .iter()
                        .map(|f| format!("`{f}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            };
            let documents = allowed
                .documents
                .get_or_insert_with(|| vec![true; self.document_count()]);
            for (d, admitted) in documents.iter_mut().enumerate() {
                *admitted = *admitted && matches(d);
            }
        }
        Ok(allowed)
    }

    /// The analyser the index was built with; queries must use it.
    pub fn analyzer(&self) -> Analyzer {
        Analyzer::new(self.params.analyzer.clone())
    }

    /// Okapi BM25 (Lucene's idf), best first, ties in corpus order; only chunks sharing
    /// a term with the query and scoring at least `min_score`.
    pub fn bm25(
        &self,
        analyzer: &Analyzer,
        query: &str,
        allowed: &Allowed,
        limit: usize,
        min_score: f32,
    ) -> Vec<Hit> {
        let chunk_count = self.chunk_count();
        if chunk_count == 0 || limit == 0 {
            return Vec::new();
        }
        let mut query_terms = analyzer.terms(query);
        query_terms.sort_unstable();

        let k1 = self.params.ranking.k1;
        let b = self.params.ranking.b;
        let average_length = self.average_length.max(f32::MIN_POSITIVE);
        let n = chunk_count as f32;
        let mut scores = vec![0f32; chunk_count];
        let mut touched = Vec::new();
        // A repeated query term counts once per repetition, as in Lucene and bm25s.
        for run in query_terms.chunk_by(|a, b| a == b) {
            let Some(t) = self.terms.find(&run[0]) else {
                continue;
            };
            let (start, end) = (
                self.term_postings.get(t) as usize,
                self.term_postings.get(t + 1) as usize,
            );
            let frequency = (end - start) as f32;
            let idf = (1.0 + (n - frequency + 0.5) / (frequency + 0.5)).ln() * run.len() as f32;
            for p in start..end {
                let chunk = self.posting_chunks.get(p) as usize;
                let tf = self.posting_weights.get(p);
                let norm = k1 * (1.0 - b + b * self.chunk_lengths.get(chunk) / average_length);
                if scores[chunk] == 0.0 {
                    touched.push(chunk);
                }
                scores[chunk] += idf * tf * (k1 + 1.0) / (tf + norm);
            }
        }
        let hits = touched
            .into_iter()
            .filter(|&chunk| scores[chunk] > 0.0 && scores[chunk] >= min_score)
            .filter(|&chunk| allowed.admits(self, chunk))
            .map(|chunk| Hit {
                chunk,
                score: scores[chunk],
            })
            .collect();
        best(hits, limit)
    }

    /// Exact nearest neighbours by cosine similarity to `query` (any length; it is
    /// normalised), at least `min_similarity`, best first. Empty if the index holds no
    /// vectors or `query` has the wrong number of dimensions.
    pub fn nearest(
        &self,
        query: &[f32],
        allowed: &Allowed,
        limit: usize,
        min_similarity: f32,
    ) -> Vec<Hit> {
        let (Some(vectors), Some(info)) = (self.vectors, &self.params.embedding) else {
            return Vec::new();
        };
        let dimensions = info.dimensions as usize;
        if query.len() != dimensions || dimensions == 0 || limit == 0 {
            return Vec::new();
        }
        let query = unit_length(query);
        let bytes = vectors.bytes();
        let hits = (0..self.chunk_count())
            .filter_map(|chunk| {
                let row = &bytes[chunk * dimensions * 4..(chunk + 1) * dimensions * 4];
                let similarity: f32 = row
                    .chunks_exact(4)
                    .zip(&query)
                    .map(|(v, q)| f32::from_le_bytes([v[0], v[1], v[2], v[3]]) * q)
                    .sum();
                (similarity >= min_similarity && allowed.admits(self, chunk)).then_some(Hit {
                    chunk,
                    score: similarity,
                })
            })
            .collect();
        best(hits, limit)
    }

    /// The fields of chunk `c`.
    pub fn passage(&self, c: usize) -> Passage<'a> {
        let d = self.chunk_docs.get(c) as usize;
        let source = self.doc_paths.get(d);
        Passage {
            id: format!("{source}#{}", c - self.doc_first_chunk.get(d) as usize),
            title: self.chunk_titles.get(c),
            text: self.chunk_texts.get(c),
            source,
        }
    }
}

/// Reciprocal rank fusion: each ranking adds `1 / (RRF_K + rank)` to its chunks' scores.
/// Best first; ties keep corpus order.
pub fn fuse(rankings: &[&[Hit]], limit: usize) -> Vec<Hit> {
    let mut fused: Vec<Hit> = Vec::new();
    for ranking in rankings {
        for (rank, hit) in ranking.iter().enumerate() {
            let score = 1.0 / (RRF_K + rank as f32 + 1.0);
            match fused.iter_mut().find(|h| h.chunk == hit.chunk) {
                Some(existing) => existing.score += score,
                None => fused.push(Hit {
                    chunk: hit.chunk,
                    score,
                }),
            }
        }
    }
    best(fused, limit)
}

/// The `limit` best hits, best first, ties in corpus order.
fn best(mut hits: Vec<Hit>, limit: usize) -> Vec<Hit> {
    let order = |a: &Hit, b: &Hit| b.score.total_cmp(&a.score).then(a.chunk.cmp(&b.chunk));
    if hits.len() > limit {
        hits.select_nth_unstable_by(limit, order);
        hits.truncate(limit);
    }
    hits.sort_unstable_by(order);
    hits
}

fn metadata_matches(stored: &str, wanted: &str) -> bool {
    let wanted = wanted.trim();
    if stored.eq_ignore_ascii_case(wanted) {
        return true;
    }
    stored
        .strip_prefix('[')
        .and_then(|list| list.strip_suffix(']'))
        .is_some_and(|list| {
            list.split(',').any(|item| {
                item.trim()
                    .trim_matches(['"', '\''])
                    .eq_ignore_ascii_case(wanted)
            })
        })
}
