//! The index as the `retrieval` component and `chatgate index` use it: build an
//! artifact, open it in place, search it.

use chatgate_index::{
    AnalyzerConfig, Chunk, ChunkingParams, Document, EmbeddingInfo, Filter, FormatError, Index,
    IndexParams, RankingParams, SearchError, SearchRequest, Stemming, Vectors, build,
};
use std::collections::BTreeMap;

fn document(path: &str, chunks: &[(&str, &str)]) -> Document {
    Document {
        path: path.into(),
        content_hash: [path.len() as u8; 32],
        title: chunks.first().map_or("", |c| c.0).into(),
        metadata: BTreeMap::new(),
        chunks: chunks
            .iter()
            .map(|(title, text)| Chunk {
                title: title.to_string(),
                text: text.to_string(),
            })
            .collect(),
    }
}

fn params() -> IndexParams {
    IndexParams {
        ranking: RankingParams::default(),
        analyzer: AnalyzerConfig::default(),
        chunking: ChunkingParams {
            max_words: 200,
            overlap_words: 40,
        },
        embedding: None,
    }
}

fn corpus() -> Vec<Document> {
    let mut waf = document(
        "docs/waf.md",
        &[
            (
                "Web application firewall",
                "The firewall blocks SQL injection and cross-site scripting.",
            ),
            (
                "Web application firewall > Modes",
                "Detection mode only logs; prevention mode blocks requests.",
            ),
        ],
    );
    waf.metadata.insert("team".into(), "security".into());
    waf.metadata.insert("tags".into(), "[network, edge]".into());
    let mut tokens = document(
        "docs/tokens.md",
        &[(
            "Tokens",
            "A tokenizer splits text into tokens; models count tokens for their limits.",
        )],
    );
    tokens.metadata.insert("team".into(), "ai".into());
    let dns = document(
        "guides/dns.md",
        &[(
            "Private DNS",
            "Private endpoints resolve through a private DNS zone linked to the network.",
        )],
    );
    vec![waf, tokens, dns]
}

fn ids(index: &Index<'_>, request: &SearchRequest<'_>) -> Vec<String> {
    index
        .search(&index.analyzer(), request)
        .unwrap()
        .into_iter()
        .map(|hit| index.passage(hit.chunk).id)
        .collect()
}

fn query(text: &str) -> SearchRequest<'_> {
    SearchRequest {
        query: text,
        top_k: 10,
        ..SearchRequest::default()
    }
}

#[test]
fn an_artifact_reopens_with_every_document_and_parameter() {
    let documents = corpus();
    let bytes = build(&documents, &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    assert_eq!(index.params(), &params());
    assert_eq!(index.document_count(), 3);
    assert_eq!(index.chunk_count(), 4);
    for (d, document) in documents.iter().enumerate() {
        assert_eq!(&index.document(d), document);
    }
}

#[test]
fn passages_carry_their_document_path_title_and_position() {
    let bytes = build(&corpus(), &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    let passage = index.passage(1);
    assert_eq!(passage.id, "docs/waf.md#1");
    assert_eq!(passage.source, "docs/waf.md");
    assert_eq!(passage.title, "Web application firewall > Modes");
    assert!(passage.text.starts_with("Detection mode"));
}

#[test]
fn matching_chunks_rank_by_bm25_and_others_are_left_out() {
    let bytes = build(&corpus(), &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    assert_eq!(
        ids(&index, &query("What does the firewall block?")),
        ["docs/waf.md#0", "docs/waf.md#1"]
    );
    assert_eq!(ids(&index, &query("tokenization")), ["docs/tokens.md#0"]);
    assert!(ids(&index, &query("kubernetes")).is_empty());
    assert!(ids(&index, &query("the of and")).is_empty());
}

#[test]
fn bm25_scores_follow_the_formula() {
    let documents = vec![
        document("a", &[("", "apple apple banana")]),
        document("b", &[("", "banana cherry")]),
    ];
    let params = IndexParams {
        analyzer: AnalyzerConfig {
            stemming: Stemming::None,
            stop_words: vec![],
            min_word_chars: 1,
        },
        ..params()
    };
    let bytes = build(&documents, &params, None).unwrap();
    let index = Index::open(&bytes).unwrap();
    let hits = index.search(&index.analyzer(), &query("apple")).unwrap();
    let (k1, b) = (1.2f32, 0.75f32);
    let (n, df, tf, length, average) = (2.0f32, 1.0f32, 2.0f32, 3.0f32, 2.5f32);
    let idf = (1.0 + (n - df + 0.5) / (df + 0.5)).ln();
    let expected = idf * tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * length / average));
    assert_eq!(hits.len(), 1);
    assert!(
        (hits[0].score - expected).abs() < 1e-6,
        "{hits:?} vs {expected}"
    );
}

#[test]
fn a_title_match_outranks_the_same_word_in_text() {
    let documents = vec![
        document("text", &[("Overview", "Notes about quotas and limits.")]),
        document("title", &[("Quotas", "Notes about limits.")]),
    ];
    let bytes = build(&documents, &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    assert_eq!(ids(&index, &query("quotas")), ["title#0", "text#0"]);
}

#[test]
fn top_k_caps_results_and_ties_keep_corpus_order() {
    let documents: Vec<Document> = (0..60)
        .map(|i| document(&format!("d{i:02}"), &[("", "same words everywhere")]))
        .collect();
    let bytes = build(&documents, &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    let three = ids(
        &index,
        &SearchRequest {
            top_k: 3,
            ..query("words")
        },
    );
    assert_eq!(three, ["d00#0", "d01#0", "d02#0"]);
    let many = ids(
        &index,
        &SearchRequest {
            top_k: 500,
            ..query("words")
        },
    );
    assert_eq!(many.len(), chatgate_index::search::MAX_TOP_K);
    assert!(
        ids(
            &index,
            &SearchRequest {
                top_k: 0,
                ..query("words")
            }
        )
        .is_empty()
    );
}

#[test]
fn a_minimum_score_drops_weak_matches() {
    let bytes = build(&corpus(), &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    let all = index
        .search(&index.analyzer(), &query("firewall modes"))
        .unwrap();
    assert_eq!(all.len(), 2);
    let floor = (all[0].score + all[1].score) / 2.0;
    let strong = index
        .search(
            &index.analyzer(),
            &SearchRequest {
                min_score: floor,
                ..query("firewall modes")
            },
        )
        .unwrap();
    assert_eq!(strong, all[..1]);
    let none = index
        .search(
            &index.analyzer(),
            &SearchRequest {
                min_score: all[0].score * 2.0,
                ..query("firewall modes")
            },
        )
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn filters_restrict_by_source_prefix_title_and_metadata() {
    let bytes = build(&corpus(), &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    let filter = |field: &str, value: &str| Filter {
        field: field.into(),
        value: value.into(),
    };
    let everything = "firewall tokens private modes";
    let with = |filters: &[Filter]| {
        ids(
            &index,
            &SearchRequest {
                filters,
                ..query(everything)
            },
        )
    };
    assert_eq!(with(&[filter("source", "guides/")]), ["guides/dns.md#0"]);
    assert_eq!(
        with(&[filter("title", "web application firewall > MODES")]),
        ["docs/waf.md#1"]
    );
    assert_eq!(with(&[filter("team", "ai")]), ["docs/tokens.md#0"]);
    assert_eq!(with(&[filter("tags", "edge")]).len(), 2);
    assert!(with(&[filter("team", "ai"), filter("source", "guides/")]).is_empty());

    let unknown = index
        .search(
            &index.analyzer(),
            &SearchRequest {
                filters: &[filter("colour", "red")],
                ..query(everything)
            },
        )
        .unwrap_err();
    let SearchError::InvalidQuery(message) = unknown;
    assert!(message.contains("`colour`"), "{message}");
    assert!(
        message.contains("`team`") && message.contains("`source`"),
        "{message}"
    );
}

#[test]
fn an_empty_query_is_invalid() {
    let bytes = build(&corpus(), &params(), None).unwrap();
    let index = Index::open(&bytes).unwrap();
    assert!(matches!(
        index.search(&index.analyzer(), &query("  ")),
        Err(SearchError::InvalidQuery(_))
    ));
}

fn with_vectors() -> (Vec<Document>, Vec<f32>) {
    let documents = corpus();
    // Two dimensions: "security" and "language" topics.
    let values = vec![
        1.0, 0.0, // waf#0
        0.9, 0.1, // waf#1
        0.0, 1.0, // tokens
        0.5, 0.5, // dns
    ];
    (documents, values)
}

fn vector_params() -> IndexParams {
    IndexParams {
        embedding: Some(EmbeddingInfo {
            model: "test-embedding".into(),
            dimensions: 2,
        }),
        ..params()
    }
}

#[test]
fn vectors_are_stored_normalised_and_searched_by_cosine() {
    let (documents, values) = with_vectors();
    let info = vector_params().embedding.unwrap();
    let bytes = build(
        &documents,
        &vector_params(),
        Some(Vectors {
            info,
            values: &values,
        }),
    )
    .unwrap();
    let index = Index::open(&bytes).unwrap();
    assert_eq!(index.params(), &vector_params());
    let stored = index.vector(3).unwrap();
    assert!((stored[0] - std::f32::consts::FRAC_1_SQRT_2).abs() < 1e-6);
    assert_eq!(index.document_vectors(0).unwrap().len(), 4);

    let allowed = index.allowed(&[]).unwrap();
    let nearest = index.nearest(&[0.0, 3.0], &allowed, 2, 0.0);
    assert_eq!(nearest[0].chunk, 2);
    assert!((nearest[0].score - 1.0).abs() < 1e-6);
    assert_eq!(nearest[1].chunk, 3);
    assert!(index.nearest(&[0.0, 3.0], &allowed, 10, 0.9).len() == 1);
    assert!(
        index
            .nearest(&[1.0, 0.0, 0.0], &allowed, 10, 0.0)
            .is_empty()
    );
}

#[test]
fn hybrid_search_fuses_keyword_and_vector_rankings() {
    let (documents, values) = with_vectors();
    let bytes = build(
        &documents,
        &vector_params(),
        Some(Vectors {
            info: vector_params().embedding.unwrap(),
            values: &values,
        }),
    )
    .unwrap();
    let index = Index::open(&bytes).unwrap();
    // No keyword matches "vocabulary", but its vector is the "language" topic.
    let semantic_only = [0.0, 1.0];
    let hits = ids(
        &index,
        &SearchRequest {
            query_vector: Some(&semantic_only),
            ..query("vocabulary")
        },
    );
    assert_eq!(hits[0], "docs/tokens.md#0");
    // Found by both rankings beats found by one.
    let hits = ids(
        &index,
        &SearchRequest {
            query_vector: Some(&semantic_only),
            ..query("private network")
        },
    );
    assert_eq!(hits[0], "guides/dns.md#0");
    // Without a vector the same index ranks by BM25 alone.
    assert!(ids(&index, &query("vocabulary")).is_empty());
}

#[test]
fn vectors_must_match_the_chunks() {
    let error = build(
        &corpus(),
        &vector_params(),
        Some(Vectors {
            info: vector_params().embedding.unwrap(),
            values: &[1.0, 0.0],
        }),
    )
    .unwrap_err();
    assert_eq!(
        error,
        chatgate_index::BuildError::VectorMismatch {
            expected: 8,
            found: 2
        }
    );
}

#[test]
fn other_files_and_other_versions_are_refused() {
    assert_eq!(Index::open(b"").err(), Some(FormatError::NotAnIndex));
    assert_eq!(
        Index::open(b"PK\x03\x04 not an index at all").err(),
        Some(FormatError::NotAnIndex)
    );
    let mut bytes = build(&corpus(), &params(), None).unwrap();
    bytes[8..12].copy_from_slice(&7u32.to_le_bytes());
    assert_eq!(
        Index::open(&bytes).err(),
        Some(FormatError::UnsupportedVersion(7))
    );
}

#[test]
fn truncated_or_damaged_artifacts_fail_to_open_or_search_without_panicking() {
    let bytes = build(&corpus(), &params(), None).unwrap();
    for length in 0..bytes.len() {
        assert!(Index::open(&bytes[..length]).is_err(), "opened at {length}");
    }
    // Every single-byte change either is refused or yields an index that still searches.
    for at in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[at] ^= 0xa5;
        if let Ok(index) = Index::open(&damaged) {
            let hits = index
                .search(&index.analyzer(), &query("firewall tokens private"))
                .unwrap_or_default();
            for hit in hits {
                let _ = index.passage(hit.chunk);
            }
        }
    }
}
