//! `chatgate:rag/retriever` over the Markdown corpus in `data/`: documents are split into
//! heading-titled chunks and ranked with Okapi BM25.
//!
//! The corpus and its index are compiled into the component by `build.rs`: the component
//! is instantiated for every request, so the index is static data that a search reads in
//! place, with no per-instance construction work.

pub mod bm25;
pub mod chunk;
pub mod text;

pub use bm25::{ChunkRef, Filter, Hit, Index, IndexView, SearchError};

/// The index `build.rs` embeds: chunks and terms as string literals.
pub type EmbeddedIndex = IndexView<'static, ChunkRef<'static>, &'static str>;

mod corpus {
    include!(concat!(env!("OUT_DIR"), "/corpus.rs"));
}

/// `(corpus-relative path, Markdown text)` of every embedded document, sorted by path.
pub fn documents() -> &'static [(&'static str, &'static str)] {
    corpus::DOCUMENTS
}

/// The index of the embedded corpus, built at compile time.
pub fn corpus_index() -> &'static EmbeddedIndex {
    &corpus::INDEX
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    spin_sdk::wit_bindgen::generate!({
        path: "../../wit",
        world: "retrieval-provider",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });

    use exports::chatgate::rag::retriever::{Filter, Guest, Passage, RetrievalError};

    struct Retriever;

    impl Guest for Retriever {
        async fn search(
            query: String,
            top_k: u32,
            filters: Vec<Filter>,
        ) -> Result<Vec<Passage>, RetrievalError> {
            let filters: Vec<super::Filter> = filters
                .into_iter()
                .map(|filter| super::Filter {
                    field: filter.field,
                    value: filter.value,
                })
                .collect();
            let hits = super::corpus_index()
                .search(&query, top_k, &filters)
                .map_err(|error| match error {
                    super::SearchError::InvalidQuery(message) => {
                        RetrievalError::InvalidQuery(message)
                    }
                    super::SearchError::IndexUnavailable(message) => {
                        RetrievalError::IndexUnavailable(message)
                    }
                })?;
            Ok(hits
                .into_iter()
                .map(|hit| Passage {
                    id: hit.chunk.id.to_string(),
                    title: hit.chunk.title.to_string(),
                    content: hit.chunk.content.to_string(),
                    source: hit.chunk.source.to_string(),
                    score: hit.score,
                })
                .collect())
        }
    }

    export!(Retriever);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_embedded_with_data_relative_paths() {
        let documents = documents();
        assert!(documents.len() >= 30, "only {} documents", documents.len());
        assert!(documents.iter().all(|(path, text)| {
            path.starts_with("data/") && path.ends_with(".md") && text.starts_with("# ")
        }));
    }

    #[test]
    fn every_chunk_of_the_corpus_has_an_id_title_and_content() {
        let index = corpus_index();
        assert!(index.len() > documents().len());
        let hits = index.search("azure", 50, &[]).unwrap();
        assert!(!hits.is_empty());
        for hit in hits {
            assert!(hit.chunk.id.contains('#'));
            assert!(!hit.chunk.title.is_empty());
            assert!(!hit.chunk.content.trim().is_empty());
        }
    }

    fn top_source(question: &str) -> String {
        corpus_index().search(question, 3, &[]).unwrap()[0]
            .chunk
            .source
            .to_string()
    }

    #[test]
    fn the_waf_document_answers_what_the_firewall_blocks() {
        assert_eq!(
            top_source("What does the web application firewall block?"),
            "data/application-gateway-waf.md"
        );
    }

    #[test]
    fn real_questions_find_their_documents() {
        for (question, expected) in [
            (
                "How should a client handle a 429 with Retry-After?",
                "data/azure-openai-rate-limits.md",
            ),
            (
                "What is the format of the traceparent header?",
                "data/w3c-trace-context.md",
            ),
            (
                "Which claims must an API check in a JWT?",
                "data/jwt-validation.md",
            ),
            (
                "How does DNS resolution work for private endpoints?",
                "data/private-endpoints.md",
            ),
            (
                "What are the BM25 parameters k1 and b?",
                "data/bm25-ranking.md",
            ),
            (
                "What is indirect prompt injection?",
                "data/prompt-injection.md",
            ),
            (
                "How do I deploy Spin apps on AKS with SpinKube?",
                "data/spinkube-on-aks.md",
            ),
        ] {
            assert_eq!(top_source(question), expected, "for {question:?}");
        }
    }

    #[test]
    fn source_filter_restricts_the_real_corpus() {
        let filters = [Filter {
            field: "source".into(),
            value: "data/sql-injection.md".into(),
        }];
        let hits = corpus_index().search("firewall", 10, &filters).unwrap();
        assert!(!hits.is_empty());
        assert!(
            hits.iter()
                .all(|hit| hit.chunk.source == "data/sql-injection.md")
        );
    }

    #[test]
    fn the_embedded_index_ranks_exactly_like_one_built_at_run_time() {
        let built_now = Index::from_documents(documents());
        let embedded = corpus_index();
        assert_eq!(embedded.len(), built_now.len());
        for question in [
            "What does the web application firewall block?",
            "How should a client handle a 429 with Retry-After?",
            "What is the format of the traceparent header?",
            "Which claims must an API check in a JWT?",
            "How does DNS resolution work for private endpoints?",
            "What are the BM25 parameters k1 and b?",
            "What is indirect prompt injection?",
            "How do I deploy Spin apps on AKS with SpinKube?",
            "azure",
            "token tokens tokenization",
            "rs256 signature keys rotation",
            "Ünïcödé naïve café",
        ] {
            let expected = built_now
                .search(question, MAX_TOP_K_FOR_TESTS, &[])
                .unwrap();
            let actual = embedded.search(question, MAX_TOP_K_FOR_TESTS, &[]).unwrap();
            assert!(
                !expected.is_empty() || question.contains('Ü'),
                "{question:?}"
            );
            // Same chunks (all fields) in the same order with bit-identical scores.
            assert_eq!(actual, expected, "for {question:?}");
        }
    }

    const MAX_TOP_K_FOR_TESTS: u32 = bm25::MAX_TOP_K;
}
