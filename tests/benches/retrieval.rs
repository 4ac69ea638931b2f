//! Retrieval inside Wasm at scale: top-10 search latency over 10k and 100k chunks, and
//! what a preloaded index costs each request's instantiation.
//!
//! `cargo bench -p chatgate-tests --bench retrieval` (after `make build`).
//! Environment: `BENCH_SIZES` (chunks per index, default `10000,100000`),
//! `BENCH_QUERIES` (default 1000), `BENCH_REQUESTS` (instantiation samples, default 500).
//!
//! For each size a synthetic corpus is generated (documents of 10 chunks of ~120 words
//! drawn from a Zipf distribution over the English words of `data/` plus generated
//! ones, so postings lengths look like a real collection's), built with
//! `chatgate_index::build` and preloaded into the `retrieval` component with
//! `chatgate::preload::preload`, exactly as `chatgate index` does. The route is
//! `retrieval-probe` with that retriever as its dependency, on the chatgate host:
//!
//! - **search**: `GET /search` makes the probe call `retriever.search(q, 10, [])` and
//!   time the call with the monotonic clock inside Wasm (`x-search-ns`);
//! - **instantiation**: `GET /noop` answers without searching, so its latency is the
//!   per-request cost of instantiating probe + retriever (with its whole index in
//!   memory) plus loopback HTTP, compared with the bare `hello` component and with the
//!   probe over the small index of `data/` (`target/chatgate-index/retrieval.wasm`).
//!   Each request is a fresh connection, the same for every variant.

chatgate_tests::host_allocator!();

use chatgate_index::{AnalyzerConfig, Chunk, Document, Index, IndexParams, RankingParams};
use chatgate_tests::http_client::get;
use chatgate_tests::stats::percentile_ms;
use chatgate_tests::{Gateway, repo_root, single_route_manifest, wasm};
use rand::distributions::{Distribution, WeightedIndex};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const CHUNKS_PER_DOCUMENT: usize = 10;
const WORDS_PER_CHUNK: usize = 120;
const VOCABULARY: usize = 50_000;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// English words of `data/`, then generated ones, most frequent first.
fn vocabulary() -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_root().join("data"))
        .expect("data/")
        .map(|entry| entry.expect("entry").path())
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(file).expect("a data file");
        for word in text.split(|c: char| !c.is_alphabetic()) {
            let word = word.to_lowercase();
            if word.len() > 2 && seen.insert(word.clone()) {
                words.push(word);
            }
        }
    }
    let mut generated = 0;
    while words.len() < VOCABULARY {
        words.push(format!("term{generated}x"));
        generated += 1;
    }
    words
}

struct Corpus {
    documents: Vec<Document>,
    queries: Vec<String>,
}

fn corpus(chunks: usize, seed: u64) -> Corpus {
    let words = vocabulary();
    // Zipf's law with exponent 1: the word of rank r has weight 1/r.
    let zipf = WeightedIndex::new((1..=words.len()).map(|rank| 1.0 / rank as f64)).unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sentence = |rng: &mut rand::rngs::StdRng, length: usize| {
        (0..length)
            .map(|_| words[zipf.sample(rng)].as_str())
            .collect::<Vec<_>>()
            .join(" ")
    };
    let documents = (0..chunks.div_ceil(CHUNKS_PER_DOCUMENT))
        .map(|d| {
            let title = sentence(&mut rng, 4);
            Document {
                path: format!("synthetic/{d:06}.md"),
                content_hash: [0; 32],
                title: title.clone(),
                metadata: Default::default(),
                chunks: (0..CHUNKS_PER_DOCUMENT)
                    .map(|_| Chunk {
                        title: format!("{title} > {}", sentence(&mut rng, 3)),
                        text: sentence(&mut rng, WORDS_PER_CHUNK),
                    })
                    .collect(),
            }
        })
        .collect();
    // Questions of 3 to 8 words from the same distribution: mostly common words, as
    // real questions are, with the occasional rare one.
    let queries = (0..1000)
        .map(|_| {
            let length = rng.gen_range(3..=8);
            sentence(&mut rng, length)
        })
        .collect();
    Corpus { documents, queries }
}

struct Preloaded {
    component: PathBuf,
    artifact_bytes: usize,
    component_bytes: usize,
    chunks: usize,
    terms: usize,
    build_time: Duration,
    preload_time: Duration,
}

async fn preload(chunks: usize) -> Preloaded {
    let corpus = corpus(chunks, 7);
    let params = IndexParams {
        ranking: RankingParams::default(),
        analyzer: AnalyzerConfig::default(),
        chunking: chatgate_indexer::default_chunking(),
        embedding: None,
    };
    let started = Instant::now();
    let artifact = chatgate_index::build(&corpus.documents, &params, None).expect("building");
    let build_time = started.elapsed();
    let index = Index::open(&artifact).expect("opening");
    let (chunk_count, terms) = (index.chunk_count(), index.term_count());
    let dir = repo_root().join(format!("target/bench-retrieval/{chunks}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(chatgate_indexer::ARTIFACT_FILE), &artifact).unwrap();
    let retrieval = std::fs::read(wasm("retrieval")).unwrap();
    let started = Instant::now();
    let preloaded = chatgate::preload::preload(&retrieval, &dir)
        .await
        .expect("preloading");
    let preload_time = started.elapsed();
    let component = dir.join(chatgate_indexer::COMPONENT_FILE);
    std::fs::write(&component, &preloaded).unwrap();
    std::fs::write(dir.join("queries.txt"), corpus.queries.join("\n")).unwrap();
    Preloaded {
        component,
        artifact_bytes: artifact.len(),
        component_bytes: preloaded.len(),
        chunks: chunk_count,
        terms,
        build_time,
        preload_time,
    }
}

fn probe_manifest(retriever: &Path) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"bench\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"retrieval-probe\"\n\
         [component.retrieval-probe]\nsource = \"{}\"\n\
         [component.retrieval-probe.dependencies]\n\
         \"chatgate:retriever/retriever\" = {{ path = \"{}\" }}\n",
        wasm("retrieval-probe").display(),
        retriever.display()
    )
}

fn encode(query: &str) -> String {
    query.replace(' ', "+")
}

/// Latencies of `requests` sequential `GET path` requests, after a warm-up.
async fn request_latencies(gateway: &Gateway, path: &str, requests: usize) -> Vec<Duration> {
    for _ in 0..20 {
        get(&gateway.url(path), &[]).await;
    }
    let mut latencies = Vec::with_capacity(requests);
    for _ in 0..requests {
        let started = Instant::now();
        let reply = get(&gateway.url(path), &[]).await;
        latencies.push(started.elapsed());
        assert!(reply.status < 300, "{}: {}", reply.status, reply.text());
    }
    latencies.sort();
    latencies
}

fn summary(latencies: &[Duration]) -> String {
    format!(
        "p50 {:.3} ms  p99 {:.3} ms",
        percentile_ms(latencies, 0.5),
        percentile_ms(latencies, 0.99)
    )
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes: Vec<usize> = env_or("BENCH_SIZES", "10000,100000")
        .split(',')
        .map(|n| n.trim().parse().expect("BENCH_SIZES: numbers"))
        .collect();
    let queries: usize = env_or("BENCH_QUERIES", "1000").parse().unwrap();
    let requests: usize = env_or("BENCH_REQUESTS", "500").parse().unwrap();

    let bare = Gateway::start(&single_route_manifest("hello", &[], ""), &[])
        .await
        .expect("hello");
    let bare_latencies = request_latencies(&bare, "/hello", requests).await;
    bare.stop().await;
    println!(
        "instantiation, bare `hello` component:            {}",
        summary(&bare_latencies)
    );

    let small = repo_root().join("target/chatgate-index/retrieval.wasm");
    let gateway = Gateway::start(&probe_manifest(&small), &[])
        .await
        .expect("probe over data/");
    let small_latencies = request_latencies(&gateway, "/noop", requests).await;
    gateway.stop().await;
    println!(
        "instantiation, probe + retrieval (data/, 201 chunks): {}",
        summary(&small_latencies)
    );

    for chunks in sizes {
        let preloaded = preload(chunks).await;
        println!(
            "\n{} chunks, {} terms: artifact {:.1} MB built in {:.1?}; component {:.1} MB preloaded in {:.1?}",
            preloaded.chunks,
            preloaded.terms,
            preloaded.artifact_bytes as f64 / 1e6,
            preloaded.build_time,
            preloaded.component_bytes as f64 / 1e6,
            preloaded.preload_time
        );
        let started = Instant::now();
        let gateway = Gateway::start(&probe_manifest(&preloaded.component), &[])
            .await
            .expect("probe");
        println!(
            "  loaded (compiled or from cache) in {:.1?}",
            started.elapsed()
        );

        let noop = request_latencies(&gateway, "/noop", requests).await;
        println!("  instantiation, probe + retrieval:   {}", summary(&noop));

        let query_file =
            std::fs::read_to_string(preloaded.component.with_file_name("queries.txt")).unwrap();
        let mut inside = Vec::with_capacity(queries);
        let mut end_to_end = Vec::with_capacity(queries);
        let mut empty = 0;
        for query in query_file.lines().cycle().take(queries) {
            let path = format!("/search?k=10&q={}", encode(query));
            let started = Instant::now();
            let reply = get(&gateway.url(&path), &[]).await;
            end_to_end.push(started.elapsed());
            assert_eq!(reply.status, 200, "{}", reply.text());
            let ns: u64 = reply.header("x-search-ns").unwrap().parse().unwrap();
            inside.push(Duration::from_nanos(ns));
            empty += usize::from(reply.text().starts_with("0 "));
        }
        inside.sort();
        end_to_end.sort();
        println!("  top-10 search inside Wasm:          {}", summary(&inside));
        println!(
            "  top-10 search request end to end:   {}",
            summary(&end_to_end)
        );
        println!("  ({queries} queries, {empty} with no match)");
        gateway.stop().await;
    }
}
