//! Embeds the Markdown corpus in `../../data` into the component, so that the index
//! needs no file system access at run time (a component gets none unless granted), and
//! builds its BM25 index here, once, rather than in every component instance: Spin
//! instantiates the component for every request, so run-time construction (chunking,
//! tokenising and stemming the whole corpus) would be paid per request.
//!
//! The index is built by the crate's own chunker, analyser and [`bm25::Index::new`],
//! compiled into this script from the same files, so the embedded index is exactly what
//! `Index::from_documents` would build at run time.

// The script uses only the building half of these modules; ranking is for the crate.
#[allow(dead_code)]
#[path = "src/bm25.rs"]
mod bm25;
#[allow(dead_code)]
#[path = "src/chunk.rs"]
mod chunk;
#[allow(dead_code)]
#[path = "src/text.rs"]
mod text;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::{env, fs};

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let data_dir = manifest_dir.join("../../data");
    println!("cargo:rerun-if-changed={}", data_dir.display());
    for analyser_source in ["src/bm25.rs", "src/chunk.rs", "src/text.rs"] {
        println!("cargo:rerun-if-changed={analyser_source}");
    }

    let mut documents = Vec::new();
    if data_dir.is_dir() {
        collect_markdown(&data_dir, &mut documents);
    } else {
        println!(
            "cargo:warning=no corpus at {}; the retriever will report index-unavailable",
            data_dir.display()
        );
    }
    documents.sort();

    let mut generated = String::from("pub static DOCUMENTS: &[(&str, &str)] = &[\n");
    let mut texts = Vec::new();
    for path in &documents {
        println!("cargo:rerun-if-changed={}", path.display());
        let relative = path
            .strip_prefix(&data_dir)
            .expect("collected under data_dir")
            .components()
            .map(|part| part.as_os_str().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join("/");
        let absolute = fs::canonicalize(path).expect("collected paths exist");
        let text = fs::read_to_string(&absolute)
            .unwrap_or_else(|e| panic!("reading {}: {e}", absolute.display()));
        texts.push((format!("data/{relative}"), text));
        writeln!(
            generated,
            "    ({:?}, include_str!({:?})),",
            format!("data/{relative}"),
            absolute.to_string_lossy()
        )
        .expect("writing to a String cannot fail");
    }
    generated.push_str("];\n");

    let texts: Vec<(&str, &str)> = texts
        .iter()
        .map(|(path, text)| (path.as_str(), text.as_str()))
        .collect();
    let index = bm25::Index::from_documents(&texts);
    generated.push_str(&index_source(&index));

    let out = PathBuf::from(env::var_os("OUT_DIR").expect("set by cargo")).join("corpus.rs");
    fs::write(out, generated).expect("OUT_DIR is writable");
}

/// `INDEX`, a `bm25::IndexView` over static arrays holding `index`. Strings are written
/// with `{:?}` (a valid Rust literal) and floats with `{:?}` (the shortest text that
/// parses back to the same `f64`), so the embedded index is bit-for-bit `index`.
fn index_source(index: &bm25::Index) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(
        "pub static INDEX: crate::bm25::IndexView<'static, crate::bm25::ChunkRef<'static>, &str> = \
         crate::bm25::IndexView {"
            .into(),
    );
    line("    chunks: &[".into());
    for chunk in &index.chunks {
        line(format!(
            "        crate::bm25::ChunkRef {{ id: {:?}, title: {:?}, content: {:?}, source: {:?} }},",
            chunk.id, chunk.title, chunk.content, chunk.source
        ));
    }
    line("    ],".into());
    line(format!("    lengths: &{:?},", index.lengths));
    line(format!("    average_length: {:?},", index.average_length));
    line(format!("    terms: &{:?},", index.terms));
    line(format!("    posting_starts: &{:?},", index.posting_starts));
    line(format!("    postings: &{:?},", index.postings));
    line("};".into());
    out
}

fn collect_markdown(dir: &Path, documents: &mut Vec<PathBuf>) {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("readable directory entry").path();
        if path.is_dir() {
            println!("cargo:rerun-if-changed={}", path.display());
            collect_markdown(&path, documents);
        } else if path.extension().is_some_and(|ext| ext == "md") {
            documents.push(path);
        }
    }
}
