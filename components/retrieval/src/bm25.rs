//! Okapi BM25 over chunks, with title terms weighted above content terms.

use std::collections::HashMap;

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

#[derive(Debug, Clone, PartialEq)]
pub struct Hit<'a> {
    pub chunk: &'a Chunk,
    pub score: f32,
}

pub struct Index {
    chunks: Vec<Chunk>,
    /// Per chunk: weighted term frequencies and weighted length.
    postings: Vec<(HashMap<String, f64>, f64)>,
    document_frequency: HashMap<String, usize>,
    average_length: f64,
}

enum Rule {
    SourcePrefix(String),
    TitleEquals(String),
}

impl Rule {
    fn matches(&self, chunk: &Chunk) -> bool {
        match self {
            Rule::SourcePrefix(prefix) => chunk.source.starts_with(prefix.as_str()),
            Rule::TitleEquals(title) => chunk.title.to_lowercase() == *title,
        }
    }
}

impl Index {
    pub fn new(chunks: Vec<Chunk>) -> Self {
        let mut document_frequency: HashMap<String, usize> = HashMap::new();
        let postings: Vec<(HashMap<String, f64>, f64)> = chunks
            .iter()
            .map(|chunk| {
                let mut frequencies: HashMap<String, f64> = HashMap::new();
                let mut length = 0.0;
                for (field, weight) in [(&chunk.title, TITLE_WEIGHT), (&chunk.content, 1.0)] {
                    for term in text::terms(field) {
                        *frequencies.entry(term).or_default() += weight;
                        length += weight;
                    }
                }
                for term in frequencies.keys() {
                    *document_frequency.entry(term.clone()).or_default() += 1;
                }
                (frequencies, length)
            })
            .collect();
        let total_length: f64 = postings.iter().map(|(_, length)| length).sum();
        let average_length = if postings.is_empty() {
            0.0
        } else {
            total_length / postings.len() as f64
        };
        Index {
            chunks,
            postings,
            document_frequency,
            average_length,
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

    pub fn len(&self) -> usize {
        self.chunks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.chunks.is_empty()
    }

    /// Smoothed idf that stays positive even for terms found in every chunk.
    fn idf(&self, term: &str) -> f64 {
        let n = self.chunks.len() as f64;
        let df = self.document_frequency.get(term).copied().unwrap_or(0) as f64;
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln()
    }

    /// The best `top_k` (at most [`MAX_TOP_K`]) chunks for `query` that pass every
    /// filter, highest score first; chunks sharing no term with the query are left out.
    pub fn search(
        &self,
        query: &str,
        top_k: u32,
        filters: &[Filter],
    ) -> Result<Vec<Hit<'_>>, SearchError> {
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
        let weighted_terms: Vec<(&str, f64)> = query_terms
            .iter()
            .map(|term| (term.as_str(), self.idf(term)))
            .collect();

        let mut hits: Vec<(usize, f64)> = self
            .postings
            .iter()
            .enumerate()
            .filter(|(position, _)| {
                rules
                    .iter()
                    .all(|rule| rule.matches(&self.chunks[*position]))
            })
            .filter_map(|(position, (frequencies, length))| {
                let norm = K1 * (1.0 - B + B * length / self.average_length);
                let score: f64 = weighted_terms
                    .iter()
                    .filter_map(|(term, idf)| {
                        let tf = *frequencies.get(*term)?;
                        Some(idf * tf * (K1 + 1.0) / (tf + norm))
                    })
                    .sum();
                (score > 0.0).then_some((position, score))
            })
            .collect();
        // Ties keep corpus order so that results are reproducible.
        hits.sort_by(|(a_pos, a), (b_pos, b)| b.total_cmp(a).then(a_pos.cmp(b_pos)));
        hits.truncate(top_k.min(MAX_TOP_K) as usize);
        Ok(hits
            .into_iter()
            .map(|(position, score)| Hit {
                chunk: &self.chunks[position],
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
        hits.iter().map(|hit| hit.chunk.id.clone()).collect()
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
