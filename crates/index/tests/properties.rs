//! Property tests of the index artifact: what is built opens back equal, and bytes that
//! are not a well-formed artifact (random, truncated, bit-flipped, with counts and
//! offsets overwritten) are refused with a `FormatError` or open into an index that every
//! read and search accepts without panicking. A count that made `open` allocate before
//! checking it against the bytes would abort the test run.

use chatgate_index::search::unit_length;
use chatgate_index::{
    AnalyzerConfig, Chunk, ChunkingParams, Document, EmbeddingInfo, Filter, Index, IndexParams,
    RankingParams, SearchRequest, Stemming, Vectors, build,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// Text without the metadata record separators (`build` replaces them, so they would not
/// read back equal).
const TEXT: &str = "[a-zA-Z0-9 éß日\u{1F600}.,\n-]{0,24}";

fn document() -> impl Strategy<Value = Document> {
    (
        "[a-z/._]{1,12}",
        any::<[u8; 32]>(),
        TEXT,
        prop::collection::btree_map("[a-z_]{0,6}", TEXT, 0..3),
        prop::collection::vec((TEXT, TEXT), 0..4),
    )
        .prop_map(|(path, content_hash, title, metadata, chunks)| Document {
            path,
            content_hash,
            title,
            metadata,
            chunks: chunks
                .into_iter()
                .map(|(title, text)| Chunk { title, text })
                .collect(),
        })
}

fn params() -> impl Strategy<Value = IndexParams> {
    (
        (0.0f32..4.0, 0.0f32..1.0, 0.0f32..8.0),
        any::<bool>(),
        prop::collection::vec("[a-z]{1,6}", 0..4),
        any::<u8>(),
        any::<(u32, u32)>(),
    )
        .prop_map(
            |((k1, b, title_weight), stemming, stop_words, min_word_chars, chunking)| IndexParams {
                ranking: RankingParams {
                    k1,
                    b,
                    title_weight,
                },
                analyzer: AnalyzerConfig {
                    stemming: if stemming {
                        Stemming::English
                    } else {
                        Stemming::None
                    },
                    stop_words,
                    min_word_chars,
                },
                chunking: ChunkingParams {
                    max_words: chunking.0,
                    overlap_words: chunking.1,
                },
                embedding: None,
            },
        )
}

/// Documents, parameters, and optionally vectors (dimensions, one vector per chunk).
type Corpus = (Vec<Document>, IndexParams, Option<(u32, Vec<f32>)>);

fn corpus() -> impl Strategy<Value = Corpus> {
    (
        prop::collection::vec(document(), 0..5),
        params(),
        prop::option::of(0u32..4),
    )
        .prop_flat_map(|(documents, params, dimensions)| {
            let chunks: usize = documents.iter().map(|d| d.chunks.len()).sum();
            let vectors = match dimensions {
                None => Just(None).boxed(),
                Some(dimensions) => {
                    prop::collection::vec(-10.0f32..10.0, chunks * dimensions as usize)
                        .prop_map(move |values| Some((dimensions, values)))
                        .boxed()
                }
            };
            (Just(documents), Just(params), vectors)
        })
}

/// A valid artifact with every section, vectors included, for the mutation tests.
fn artifact() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let chunk = |title: &str, text: &str| Chunk {
            title: title.into(),
            text: text.into(),
        };
        let mut waf = Document {
            path: "docs/waf.md".into(),
            content_hash: [7; 32],
            title: "Firewall".into(),
            metadata: BTreeMap::from([("team".into(), "security".into())]),
            chunks: vec![
                chunk("Firewall", "The firewall blocks SQL injection."),
                chunk("Firewall > Modes", "Detection mode only logs requests."),
            ],
        };
        waf.metadata.insert("tags".into(), "[edge, network]".into());
        let dns = Document {
            path: "guides/dns.md".into(),
            content_hash: [9; 32],
            title: "DNS".into(),
            metadata: BTreeMap::new(),
            chunks: vec![chunk("Private DNS", "Private endpoints resolve names.")],
        };
        let params = IndexParams {
            ranking: RankingParams::default(),
            analyzer: AnalyzerConfig::default(),
            chunking: ChunkingParams::default(),
            embedding: None,
        };
        let values = [1.0, 0.0, 0.5, 0.5, 0.0, 1.0];
        let vectors = Vectors {
            info: EmbeddingInfo {
                model: "m".into(),
                dimensions: 2,
            },
            values: &values,
        };
        build(&[waf, dns], &params, Some(vectors)).unwrap()
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipBit(usize, u8),
    SetByte(usize, u8),
    /// Overwrites four bytes with a count or offset, biased towards the edge values.
    SetU32(usize, u32),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let edge = prop_oneof![
        Just(0u32),
        Just(1),
        Just(u32::MAX),
        Just(u32::MAX - 1),
        Just(i32::MAX as u32),
        0u32..64,
        any::<u32>(),
    ];
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit(at, bit)),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte(at, byte)),
        (any::<usize>(), edge).prop_map(|(at, value)| Mutation::SetU32(at, value)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match *mutation {
        Mutation::FlipBit(at, bit) => {
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
        }
        Mutation::SetByte(at, byte) => {
            let at = at % bytes.len();
            bytes[at] = byte;
        }
        Mutation::SetU32(at, value) => {
            // Any position: string blobs leave later counts unaligned.
            let at = at % bytes.len();
            let end = (at + 4).min(bytes.len());
            bytes[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
        }
        Mutation::Truncate(at) => bytes.truncate(at % bytes.len()),
    }
}

/// Every read an opened index offers, over all of it.
fn read_everything(index: &Index<'_>) {
    let mut chunks = 0;
    for d in 0..index.document_count() {
        chunks += index.document(d).chunks.len();
        let _ = index.document_vectors(d);
    }
    // Every chunk belongs to exactly one document: what `passage` relies on.
    assert_eq!(chunks, index.chunk_count());
    for c in 0..index.chunk_count() {
        let _ = index.passage(c);
        let _ = index.vector(c);
    }
    let dimensions = index
        .params()
        .embedding
        .as_ref()
        .map_or(0, |info| info.dimensions as usize)
        .min(4096);
    let query_vector = vec![0.5f32; dimensions];
    let analyzer = index.analyzer();
    for filters in [
        vec![],
        vec![Filter {
            field: "source".into(),
            value: "docs".into(),
        }],
        vec![Filter {
            field: "title".into(),
            value: "firewall".into(),
        }],
        vec![Filter {
            field: "team".into(),
            value: "security".into(),
        }],
    ] {
        let request = SearchRequest {
            query: "firewall blocks private requests names",
            top_k: 10,
            filters: &filters,
            min_score: 0.0,
            query_vector: Some(&query_vector),
            min_similarity: -1.0,
        };
        if let Ok(hits) = index.search(&analyzer, &request) {
            for hit in hits {
                let _ = index.passage(hit.chunk);
            }
        }
    }
}

proptest! {
    // Bounded so that the whole file runs in about a second in release.
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn what_is_built_opens_back_equal((documents, mut params, vectors) in corpus()) {
        let vectors = vectors.map(|(dimensions, values)| (EmbeddingInfo { model: "model".into(), dimensions }, values));
        let bytes = build(
            &documents,
            &params,
            vectors.as_ref().map(|(info, values)| Vectors { info: info.clone(), values }),
        )
        .unwrap();
        let index = Index::open(&bytes).unwrap();
        params.embedding = vectors.as_ref().map(|(info, _)| info.clone());
        prop_assert_eq!(index.params(), &params);
        prop_assert_eq!(index.document_count(), documents.len());
        prop_assert_eq!(
            index.chunk_count(),
            documents.iter().map(|d| d.chunks.len()).sum::<usize>()
        );
        for (d, document) in documents.iter().enumerate() {
            prop_assert_eq!(&index.document(d), document);
        }
        match &vectors {
            None => prop_assert!(index.vector(0).is_none()),
            Some((info, values)) => {
                let dimensions = info.dimensions as usize;
                for c in 0..index.chunk_count() {
                    let stored = index.vector(c).unwrap();
                    prop_assert_eq!(
                        stored,
                        unit_length(&values[c * dimensions..(c + 1) * dimensions])
                    );
                }
            }
        }
        read_everything(&index);
    }

    #[test]
    fn arbitrary_bytes_after_a_valid_header_never_panic(
        tail in prop::collection::vec(any::<u8>(), 0..256)
    ) {
        let mut bytes = chatgate_index::format::MAGIC.to_vec();
        bytes.extend_from_slice(&chatgate_index::format::FORMAT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&tail);
        if let Ok(index) = Index::open(&bytes) {
            read_everything(&index);
        }
    }

    #[test]
    fn corrupted_artifacts_are_refused_or_read_safely(
        mutations in prop::collection::vec(mutation(), 1..4)
    ) {
        let mut bytes = artifact().to_vec();
        for mutation in &mutations {
            mutate(&mut bytes, mutation);
        }
        if let Ok(index) = Index::open(&bytes) {
            read_everything(&index);
        }
    }
}

#[test]
fn every_truncation_is_refused() {
    let bytes = artifact();
    assert!(Index::open(bytes).is_ok());
    for length in 0..bytes.len() {
        assert!(
            Index::open(&bytes[..length]).is_err(),
            "truncated to {length} bytes"
        );
    }
}

/// Every count or offset of the artifact (every position) overwritten with each edge
/// value: exhaustive where the random mutations above only sample.
#[test]
fn every_overwritten_count_is_refused_or_read_safely() {
    let original = artifact();
    for at in 0..original.len() {
        for value in [0, 1, 2, 3, 5, 64, i32::MAX as u32, u32::MAX - 1, u32::MAX] {
            let mut bytes = original.to_vec();
            mutate(&mut bytes, &Mutation::SetU32(at, value));
            if let Ok(index) = Index::open(&bytes) {
                read_everything(&index);
            }
        }
    }
}
