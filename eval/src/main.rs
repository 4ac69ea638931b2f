//! `chatgate-eval`: nDCG@10 and Recall@100 of chatgate's BM25 on a BEIR-format collection.
//!
//! Each corpus entry becomes one document of one chunk (title and text), indexed with
//! `chatgate_index::build` and searched with `Index::search`: the same code the
//! `retrieval` component runs. `eval/README.md` says where the data comes from and how
//! the reference implementations were run.

mod metrics;

use chatgate_index::{
    AnalyzerConfig, Chunk, Document, Index, IndexParams, RankingParams, SearchRequest, Stemming,
};
use clap::{Parser, ValueEnum};
use metrics::{Qrels, Run};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Parser)]
#[command(about = "Scores chatgate's BM25 on a BEIR-format collection (nDCG@10, Recall@100)")]
struct Options {
    /// A BEIR-format folder: corpus.jsonl, queries.jsonl, qrels/<split>.tsv.
    data: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    #[arg(long, default_value_t = RankingParams::default().k1)]
    k1: f32,
    #[arg(long, default_value_t = RankingParams::default().b)]
    b: f32,
    /// Weight of title terms relative to text terms (1 indexes `title + text` as one field, as BEIR does).
    #[arg(long, default_value_t = RankingParams::default().title_weight)]
    title_weight: f32,
    #[arg(long, value_enum, default_value = "english")]
    stemming: StemmingOption,
    /// `english` (Lucene's list) or `none`.
    #[arg(long, default_value = "english")]
    stop_words: String,
    #[arg(long, default_value_t = 1)]
    min_word_chars: u8,
    /// Also write the top-100 run in TREC format here.
    #[arg(long)]
    run_out: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum StemmingOption {
    English,
    None,
}

#[derive(serde::Deserialize)]
struct CorpusEntry {
    #[serde(rename = "_id")]
    id: String,
    #[serde(default)]
    title: String,
    text: String,
}

#[derive(serde::Deserialize)]
struct QueryEntry {
    #[serde(rename = "_id")]
    id: String,
    text: String,
}

fn main() -> std::process::ExitCode {
    match run(Options::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(options: Options) -> Result<(), Box<dyn std::error::Error>> {
    let corpus: Vec<CorpusEntry> = read_jsonl(&options.data.join("corpus.jsonl"))?;
    let queries: Vec<QueryEntry> = read_jsonl(&options.data.join("queries.jsonl"))?;
    let qrels = read_qrels(
        &options
            .data
            .join("qrels")
            .join(format!("{}.tsv", options.split)),
    )?;

    let stop_words = match options.stop_words.as_str() {
        "english" => AnalyzerConfig::default().stop_words,
        "none" => Vec::new(),
        other => {
            return Err(format!("--stop-words must be `english` or `none`, not `{other}`").into());
        }
    };
    let params = IndexParams {
        ranking: RankingParams {
            k1: options.k1,
            b: options.b,
            title_weight: options.title_weight,
        },
        analyzer: AnalyzerConfig {
            stemming: match options.stemming {
                StemmingOption::English => Stemming::English,
                StemmingOption::None => Stemming::None,
            },
            stop_words,
            min_word_chars: options.min_word_chars,
        },
        chunking: Default::default(),
        embedding: None,
    };
    let documents: Vec<Document> = corpus
        .into_iter()
        .map(|entry| Document {
            path: entry.id,
            content_hash: [0; 32],
            title: entry.title.clone(),
            metadata: Default::default(),
            chunks: vec![Chunk {
                title: entry.title,
                text: entry.text,
            }],
        })
        .collect();

    let started = Instant::now();
    let artifact = chatgate_index::build(&documents, &params, None)?;
    let build_time = started.elapsed();
    let index = Index::open(&artifact)?;
    let analyzer = index.analyzer();

    let started = Instant::now();
    let mut run = Run::new();
    for query in queries.iter().filter(|q| qrels.contains_key(&q.id)) {
        let hits = index.bm25(&analyzer, &query.text, &index.allowed(&[])?, 100, 0.0);
        let ranking = hits
            .iter()
            .map(|hit| index.passage(hit.chunk).source.to_string())
            .collect();
        run.insert(query.id.clone(), ranking);
        // The component's entry point must agree with the ranking used here.
        debug_assert!(
            index
                .search(
                    &analyzer,
                    &SearchRequest {
                        query: &query.text,
                        top_k: 10,
                        ..Default::default()
                    }
                )
                .map(|top| top.iter().zip(&hits).all(|(a, b)| a == b))
                .unwrap_or(true)
        );
    }
    let search_time = started.elapsed();

    if let Some(path) = &options.run_out {
        let mut out = String::new();
        for (query, ranking) in &run {
            for (rank, doc) in ranking.iter().enumerate() {
                out.push_str(&format!(
                    "{query} Q0 {doc} {} {} chatgate\n",
                    rank + 1,
                    100 - rank
                ));
            }
        }
        std::fs::write(path, out)?;
    }

    let scores = metrics::evaluate(&qrels, &run);
    let report = serde_json::json!({
        "system": "chatgate-index BM25",
        "ndcg@10": scores.ndcg_at_10,
        "recall@100": scores.recall_at_100,
        "queries": scores.queries,
        "documents": documents.len(),
        "k1": options.k1,
        "b": options.b,
        "title_weight": options.title_weight,
        "min_word_chars": options.min_word_chars,
        "index_bytes": artifact.len(),
        "build_seconds": build_time.as_secs_f64(),
        "search_ms_per_query": search_time.as_secs_f64() * 1000.0 / scores.queries.max(1) as f64,
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn read_jsonl<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<Vec<T>, Box<dyn std::error::Error>> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut entries = Vec::new();
    for (number, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        entries.push(
            serde_json::from_str(&line)
                .map_err(|e| format!("{}:{}: {e}", path.display(), number + 1))?,
        );
    }
    Ok(entries)
}

fn read_qrels(path: &Path) -> Result<Qrels, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut qrels = Qrels::new();
    for (number, line) in text.lines().enumerate().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [query, doc, grade] = fields[..] else {
            return Err(format!(
                "{}:{}: expected 3 tab-separated fields",
                path.display(),
                number + 1
            )
            .into());
        };
        qrels
            .entry(query.to_string())
            .or_default()
            .insert(doc.to_string(), grade.trim().parse()?);
    }
    Ok(qrels)
}
