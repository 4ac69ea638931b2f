//! Okapi BM25 over chunks, with title terms weighted above content terms.
//!
//! The index is an inverted file: a sorted term list, each term owning a run of
//! `(chunk, weighted term frequency)` postings. [`Index`] owns one built at run time;
//! `build.rs` runs the same [`Index::new`] over the corpus and writes its arrays out as
//! Rust statics, and [`IndexView`] ranks over either through borrowed slices, so an
//! embedded index needs no construction work and there is one BM25 implementation.

use std::collections::{BTreeMap, HashMap};

use crate::chunk::Chunk;
use crate::text;

/// Term-frequency saturation; the common default (also Azure AI Search's).
pub const K1: f64 = 1.2;
/// Length normalisation; the common default (also Azure AI Search's).
pub const B: f64 = 0.75;
/// A title term counts as this many content terms, so a passage whose heading names the
/// topic beats one that mentions it in passing (a simple form of BM25F field weighting).
pub const TITLE_WEIGHT: f64 = 2.0;
/// Largest number of passages one search returns, whatever `top-k` asks for.
pub const MAX_TOP_K: u32 = 50;

#[derive(Debug, Clone, PartialEq)]
pub enum SearchError {
    InvalidQuery(String),
    IndexUnavailable(String),
}

/// A metadata filter as the retriever interface receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub field: String,
    pub value: String,
}

/// A chunk's fields, borrowed from wherever the index keeps them (owned [`Chunk`]s or
/// string literals compiled into the component).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChunkRef<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub content: &'a str,
    pub source: &'a str,
}

/// How an index stores a chunk; lets one ranking implementation serve both layouts.
pub trait ChunkFields {
    fn fields(&self) -> ChunkRef<'_>;
}

impl ChunkFields for Chunk {
    fn fields(&self) -> ChunkRef<'_> {
        ChunkRef {
            id: &self.id,
            title: &self.title,
            content: &self.content,
            source: &self.source,
        }
    }
}

impl ChunkFields for ChunkRef<'_> {
    fn fields(&self) -> ChunkRef<'_> {
        *self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    pub chunk: ChunkRef<'a>,
    pub score: f32,
}

/// A BM25 index built at run time, owning its chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct Index {
    pub(crate) chunks: Vec<Chunk>,
    /// Per chunk: weighted length (title terms count [`TITLE_WEIGHT`] times).
    pub(crate) lengths: Vec<f64>,
    pub(crate) average_length: f64,
    /// Every distinct term, sorted, so a query term is found by binary search.
    pub(crate) terms: Vec<String>,
    /// `terms.len() + 1` offsets: term `t`'s postings are
    /// `postings[posting_starts[t]..posting_starts[t + 1]]`, so its document frequency is
    /// the length of that run.
    pub(crate) posting_starts: Vec<u32>,
    /// `(chunk position, weighted term frequency)`, in chunk order within each term.
    pub(crate) postings: Vec<(u32, f64)>,
}

/// A BM25 index over borrowed arrays: a view of an [`Index`], or the statics `build.rs`
/// generates for the embedded corpus. `C` is how chunks are stored, `T` how terms are.
#[derive(Debug)]
pub struct IndexView<'a, C, T> {
    pub(crate) chunks: &'a [C],
    pub(crate) lengths: &'a [f64],
    pub(crate) average_length: f64,
    pub(crate) terms: &'a [T],
    pub(crate) posting_starts: &'a [u32],
    pub(crate) postings: &'a [(u32, f64)],
}

enum Rule {
    SourcePrefix(String),
    TitleEquals(String),
}

impl Rule {
    fn matches(&self, chunk: ChunkRef<'_>) -> bool {
        match self {
            Rule::SourcePrefix(prefix) => chunk.source.starts_with(prefix.as_str()),
            Rule::TitleEquals(title) => chunk.title.to_lowercase() == *title,
        }
    }
}

/// Index positions are stored as `u32` to keep the embedded arrays compact.
fn position(value: usize) -> u32 {
    u32::try_from(value).expect("the corpus has fewer than 2^32 chunks and postings")
}

impl Index {
    pub fn new(chunks: Vec<Chunk>) -> Self {
        let mut postings_by_term: BTreeMap<String, Vec<(u32, f64)>> = BTreeMap::new();
        let lengths: Vec<f64> = chunks
            .iter()
            .enumerate()
            .map(|(chunk_position, chunk)| {
                let mut frequencies: HashMap<String, f64> = HashMap::new();
                let mut length = 0.0;
                for (field, weight) in [(&chunk.title, TITLE_WEIGHT), (&chunk.content, 1.0)] {
                    for term in text::terms(field) {
                        *frequencies.entry(term).or_default() += weight;
                        length += weight;
                    }
                }
                for (term, frequency) in frequencies {
                    postings_by_term
                        .entry(term)
                        .or_default()
                        .push((position(chunk_position), frequency));
                }
                length
            })
            .collect();
        let total_length: f64 = lengths.iter().sum();
        let average_length = if lengths.is_empty() {
            0.0
        } else {
            total_length / lengths.len() as f64
        };
        let mut terms = Vec::with_capacity(postings_by_term.len());
        let mut posting_starts = Vec::with_capacity(postings_by_term.len() + 1);
        let mut postings = Vec::new();
        for (term, term_postings) in postings_by_term {
            terms.push(term);
            posting_starts.push(position(postings.len()));
            postings.extend(term_postings);
        }
        posting_starts.push(position(postings.len()));
        Index {
            chunks,
            lengths,
            average_length,
            terms,
            posting_starts,
            postings,
        }
    }

    /// Builds the index of every Markdown document in `documents` (path, text).
    pub fn from_documents(documents: &[(&str, &str)]) -> Self {
        let chunks = documents
            .iter()
            .flat_map(|(path, markdown)| crate::chunk::chunk_document(path, markdown))
            .collect();
        Index::new(chunks)
    }

    pub fn view(&self) -> IndexView<'_, Chunk, String> {
        IndexView {
            chunks: &self.chunks,
            lengths: &self.lengths,
            average_length: self.average_length,
            terms: &self.terms,
            posting_starts: &self.posting_starts,
            postings: &self.postings,
        }
    }

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// See [`IndexView::search`].
    pub fn search(
        &self,
        query: &str,
        top_k: u32,
        filters: &[Filter],
    ) -> Result<Vec<Hit<'_>>, SearchError> {
        self.view().search(query, top_k, filters)
    }
}

impl<'a, C: ChunkFields, T: AsRef<str>> IndexView<'a, C, T> {
    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// The postings of `term`; empty if no chunk contains it.
    fn postings_of(&self, term: &str) -> &'a [(u32, f64)] {
        let Ok(term_position) = self
            .terms
            .binary_search_by(|candidate| candidate.as_ref().cmp(term))
        else {
            return &[];
        };
        let range = self.posting_starts.get(term_position..=term_position + 1);
        range
            .and_then(|range| self.postings.get(range[0] as usize..range[1] as usize))
            .unwrap_or(&[])
    }

    /// Smoothed idf that stays positive even for terms found in every chunk.
    fn idf(&self, document_frequency: usize) -> f64 {
        let n = self.chunks.len() as f64;
        let df = document_frequency as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The best `top_k` (at most [`MAX_TOP_K`]) chunks for `query` that pass every
    /// filter, highest score first; chunks sharing no term with the query are left out.
    pub fn search(
        &self,
        query: &str,
        top_k: u32,
        filters: &[Filter],
    ) -> Result<Vec<Hit<'a>>, SearchError> {
        if query.trim().is_empty() {
            return Err(SearchError::InvalidQuery("the query is empty".into()));
        }
        let rules = filters
            .iter()
            .map(|filter| match filter.field.as_str() {
                "source" => Ok(Rule::SourcePrefix(filter.value.clone())),
                "title" => Ok(Rule::TitleEquals(filter.value.to_lowercase())),
                other => Err(SearchError::InvalidQuery(format!(
                    "unknown filter field `{other}`; supported fields are `source` and `title`"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if self.is_empty() {
            return Err(SearchError::IndexUnavailable(
                "the corpus contains no documents".into(),
            ));
        }
        if top_k == 0 {
            return Ok(Vec::new());
        }

        let mut query_terms = text::terms(query);
        query_terms.sort();
        query_terms.dedup();
        // Terms are added to each chunk's score in sorted order, so the floating-point
        // sums (and therefore ties) do not depend on how the query was phrased.
        let mut scores = vec![0.0_f64; self.chunks.len()];
        for term in &query_terms {
            let postings = self.postings_of(term);
            if postings.is_empty() {
                continue;
            }
            let idf = self.idf(postings.len());
            for &(chunk_position, tf) in postings {
                let chunk_position = chunk_position as usize;
                let (Some(length), Some(score)) = (
                    self.lengths.get(chunk_position),
                    scores.get_mut(chunk_position),
                ) else {
                    continue;
                };
                let norm = K1 * (1.0 - B + B * length / self.average_length);
                *score += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }

        let chunks: &'a [C] = self.chunks;
        let mut hits: Vec<(usize, f64)> = scores
            .into_iter()
            .enumerate()
            .filter(|&(chunk_position, score)| {
                score > 0.0
                    && rules
                        .iter()
                        .all(|rule| rule.matches(chunks[chunk_position].fields()))
            })
            .collect();
        // Ties keep corpus order so that results are reproducible.
        hits.sort_by(|(a_pos, a), (b_pos, b)| b.total_cmp(a).then(a_pos.cmp(b_pos)));
        hits.truncate(top_k.min(MAX_TOP_K) as usize);
        Ok(hits
            .into_iter()
            .map(|(chunk_position, score)| Hit {
                chunk: chunks[chunk_position].fields(),
                score: score as f32,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(id: &str, title: &str, content: &str, source: &str) -> Chunk {
        Chunk {
            id: id.into(),
            title: title.into(),
            content: content.into(),
            source: source.into(),
        }
    }

    fn ids(hits: &[Hit<'_>]) -> Vec<String> {
        hits.iter().map(|hit| hit.chunk.id.to_string()).collect()
    }

    fn tiny_index() -> Index {
        Index::new(vec![
            chunk(
                "cats#0",
                "Pets",
                "Cats sleep most of the day and purr.",
                "data/pets/cats.md",
            ),
            chunk(
                "dogs#0",
                "Pets",
                "Dogs bark at the mail carrier.",
                "data/pets/dogs.md",
            ),
            chunk(
                "tokens#0",
                "Model tokens",
                "A model counts tokens to bill usage.",
                "data/ai/tokens.md",
            ),
            chunk(
                "quota#0",
                "Quota",
                "Quota is measured per token and per minute.",
                "data/ai/quota.md",
            ),
            chunk(
                "noise#0",
                "Weather",
                "It rained on Tuesday.",
                "data/misc/noise.md",
            ),
        ])
    }

    #[test]
    fn a_passage_containing_the_query_terms_beats_one_that_does_not() {
        let index = tiny_index();
        let hits = index.search("why do dogs bark?", 5, &[]).unwrap();
        assert_eq!(ids(&hits), vec!["dogs#0"]);
        assert!(hits[0].score > 0.0);
    }

    #[test]
    fn passages_without_any_query_term_are_not_returned() {
        let index = tiny_index();
        assert!(index.search("kubernetes", 5, &[]).unwrap().is_empty());
        // Only stop words: nothing to match, but not an invalid query.
        assert!(index.search("what is the", 5, &[]).unwrap().is_empty());
    }

    #[test]
    fn stemming_matches_singular_and_plural() {
        let index = tiny_index();
        let hits = index.search("token", 5, &[]).unwrap();
        assert_eq!(ids(&hits), vec!["tokens#0", "quota#0"]);
    }

    #[test]
    fn a_title_match_outranks_the_same_match_in_content() {
        let index = Index::new(vec![
            chunk(
                "body#0",
                "General",
                "Notes about firewall rules.",
                "data/a.md",
            ),
            chunk(
                "title#0",
                "Firewall",
                "Notes about general rules.",
                "data/b.md",
            ),
        ]);
        let hits = index.search("firewall", 5, &[]).unwrap();
        assert_eq!(ids(&hits), vec!["title#0", "body#0"]);
        assert!(hits[0].score > hits[1].score);
    }

    #[test]
    fn rarer_terms_weigh_more_than_common_ones() {
        let index = Index::new(vec![
            chunk("a#0", "T", "gateway gateway shared", "data/a.md"),
            chunk("b#0", "T", "gateway rare shared", "data/b.md"),
            chunk("c#0", "T", "gateway shared", "data/c.md"),
        ]);
        let hits = index.search("gateway rare", 5, &[]).unwrap();
        assert_eq!(hits[0].chunk.id, "b#0");
    }

    #[test]
    fn repeating_a_term_saturates() {
        let index = Index::new(vec![
            chunk("once#0", "T", "waf", "data/a.md"),
            chunk(
                "many#0",
                "T",
                "waf waf waf waf waf waf waf waf",
                "data/b.md",
            ),
            chunk("other#0", "T", "unrelated", "data/c.md"),
        ]);
        let hits = index.search("waf", 5, &[]).unwrap();
        let ratio = hits[0].score / hits[1].score;
        assert!(
            ratio < (K1 + 1.0) as f32,
            "eight repeats scored {ratio}x one"
        );
    }

    #[test]
    fn top_k_limits_results_and_zero_returns_nothing() {
        let index = tiny_index();
        assert_eq!(index.search("pets", 1, &[]).unwrap().len(), 1);
        assert!(index.search("pets", 0, &[]).unwrap().is_empty());
        let many: Vec<Chunk> = (0..80)
            .map(|n| chunk(&format!("d#{n}"), "T", "same words", "data/d.md"))
            .collect();
        let index = Index::new(many);
        assert_eq!(
            index.search("words", 1000, &[]).unwrap().len(),
            MAX_TOP_K as usize
        );
    }

    #[test]
    fn equal_scores_keep_corpus_order() {
        let index = Index::new(vec![
            chunk("first#0", "T", "alpha beta", "data/z.md"),
            chunk("second#0", "T", "alpha gamma", "data/a.md"),
            chunk("third#0", "T", "delta", "data/m.md"),
        ]);
        let hits = index.search("alpha", 5, &[]).unwrap();
        assert_eq!(hits[0].score, hits[1].score);
        assert_eq!(ids(&hits), vec!["first#0", "second#0"]);
    }

    #[test]
    fn source_filter_is_a_prefix_match() {
        let index = tiny_index();
        let only_ai = [Filter {
            field: "source".into(),
            value: "data/ai/".into(),
        }];
        assert_eq!(
            ids(&index.search("token", 5, &only_ai).unwrap()),
            vec!["tokens#0", "quota#0"]
        );
        let exact = [Filter {
            field: "source".into(),
            value: "data/ai/quota.md".into(),
        }];
        assert_eq!(
            ids(&index.search("token", 5, &exact).unwrap()),
            vec!["quota#0"]
        );
    }

    #[test]
    fn title_filter_is_exact_but_ignores_case() {
        let index = tiny_index();
        let title = |value: &str| {
            [Filter {
                field: "title".into(),
                value: value.into(),
            }]
        };
        assert_eq!(
            ids(&index.search("token", 5, &title("model TOKENS")).unwrap()),
            vec!["tokens#0"]
        );
        assert!(
            index
                .search("token", 5, &title("model"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn every_filter_must_match() {
        let index = tiny_index();
        let filters = [
            Filter {
                field: "source".into(),
                value: "data/pets/".into(),
            },
            Filter {
                field: "title".into(),
                value: "quota".into(),
            },
        ];
        assert!(index.search("token pets", 5, &filters).unwrap().is_empty());
    }

    #[test]
    fn invalid_queries_are_rejected() {
        let index = tiny_index();
        assert!(matches!(
            index.search("  \n", 5, &[]),
            Err(SearchError::InvalidQuery(_))
        ));
        let unknown = [Filter {
            field: "author".into(),
            value: "x".into(),
        }];
        let Err(SearchError::InvalidQuery(message)) = index.search("cats", 5, &unknown) else {
            panic!("unknown filter field accepted");
        };
        assert!(message.contains("author"));
        // Invalid even when nothing would be returned anyway.
        assert!(index.search("cats", 0, &unknown).is_err());
    }

    #[test]
    fn an_empty_corpus_is_unavailable() {
        let index = Index::new(Vec::new());
        assert!(matches!(
            index.search("cats", 5, &[]),
            Err(SearchError::IndexUnavailable(_))
        ));
    }
}
