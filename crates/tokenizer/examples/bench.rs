//! Rough per-call cost: `cargo run --release -p chatgate-tokenizer --example bench`.
//!
//! The first call is timed on its own because a Wasm component pays it on every request; for
//! comparison the same is done with tiktoken-rs, which builds its tables on first use.

use std::hint::black_box;
use std::time::{Duration, Instant};

use chatgate_tokenizer::{Encoding, UNICODE_TABLE_BYTES};

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let start = Instant::now();
    let value = f();
    (value, start.elapsed())
}

/// Mean time of `f` over enough runs to take about 200 ms.
fn mean(mut f: impl FnMut()) -> Duration {
    let mut runs = 0u32;
    let start = Instant::now();
    while start.elapsed() < Duration::from_millis(200) {
        f();
        runs += 1;
    }
    start.elapsed() / runs
}

fn main() {
    let data_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");
    let mut documents: Vec<String> = std::fs::read_dir(data_dir)
        .expect("data directory")
        .map(|entry| std::fs::read_to_string(entry.expect("entry").path()).expect("utf-8"))
        .collect();
    documents.sort();
    let corpus = documents.concat();
    let message = "Summarise the baseline architecture's network isolation in two sentences, and cite the documents you use.";

    let (count, first) = time(|| Encoding::O200kBase.count(message));
    println!(
        "first call in this process: o200k count of a {}-byte message = {count} tokens in {first:?}",
        message.len()
    );
    let (count, first) = time(|| Encoding::Cl100kBase.count(message));
    println!(
        "first call in this process: cl100k count of the same message = {count} tokens in {first:?}"
    );

    for encoding in Encoding::ALL {
        println!(
            "\n{} (vocabulary {} bytes of static data, + {UNICODE_TABLE_BYTES} shared Unicode table)",
            encoding.name(),
            encoding.vocabulary_bytes()
        );
        for (what, text) in [
            ("message", message),
            ("document", documents[0].as_str()),
            ("whole data/ corpus", corpus.as_str()),
        ] {
            let tokens = encoding.count(text);
            let count = mean(|| {
                black_box(encoding.count(black_box(text)));
            });
            let encode = mean(|| {
                black_box(encoding.encode(black_box(text)));
            });
            let mb_per_s = text.len() as f64 / count.as_secs_f64() / 1e6;
            println!(
                "  {what:>18}: {:>7} bytes, {tokens:>6} tokens: count {count:>10.1?} ({mb_per_s:.1} MB/s), encode {encode:>10.1?}",
                text.len()
            );
        }
    }

    println!("\nadversarial inputs (one huge piece each):");
    for (what, text) in [
        ("1 MB of one letter", "x".repeat(1 << 20)),
        ("1 MB of letter pairs", "ab".repeat(1 << 19)),
        ("1 MB of spaces", " ".repeat(1 << 20)),
        ("1 MB of punctuation", "!?".repeat(1 << 19)),
        ("1 MB of CJK", "\u{4e00}".repeat((1 << 20) / 3)),
    ] {
        for encoding in Encoding::ALL {
            let (tokens, took) = time(|| encoding.count(&text));
            println!(
                "  {what:>22} {:>11}: {tokens:>7} tokens in {took:.1?}",
                encoding.name()
            );
        }
    }

    println!(
        "\ntiktoken-rs for comparison (builds hash maps and compiles its regex on first use):"
    );
    let (bpe, init) = time(|| tiktoken_rs::o200k_base().expect("o200k_base"));
    println!("  o200k_base() construction: {init:?}");
    let count = mean(|| {
        black_box(bpe.encode_ordinary(black_box(&corpus)).len());
    });
    println!(
        "  whole data/ corpus: {count:.1?} ({:.1} MB/s)",
        corpus.len() as f64 / count.as_secs_f64() / 1e6
    );
}
