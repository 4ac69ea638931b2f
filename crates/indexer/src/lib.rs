//! `chatgate index`: builds the retrieval index artifact from a folder of documents.
//! (The `chatgate` binary then preloads the `retrieval` component with it, with
//! wasmtime; this crate does not run Wasm.)
//!
//! Re-indexing is incremental: a document whose content hash and path are unchanged
//! keeps its chunks (and their embeddings) from the previous artifact in the output
//! folder, as long as that artifact was built with the same analysis, chunking and
//! embedding model. The BM25 statistics are always recomputed, since they are global.
//!
//! With an embeddings endpoint ([`IndexOptions::embeddings`]) the index also holds one
//! vector per chunk. Only the chunks of new or changed documents are sent to it: an
//! unchanged document keeps its stored vectors if they come from the same model (a
//! different model re-embeds every chunk, though the chunks themselves are reused).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod embeddings;

use chatgate_index::ingest::IngestError;
use chatgate_index::ingest::{self, ChunkingOptions, Skipped};
use chatgate_index::{
    BuildError, ChunkingParams, Document, EmbeddingInfo, FormatError, Index, IndexParams, Vectors,
};
use embeddings::{EmbeddingsClient, EmbeddingsError, EmbeddingsOptions};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The artifact's file name in the output folder (and, through `/index`, in the component).
pub const ARTIFACT_FILE: &str = "chatgate.idx";
/// The preloaded component's file name in the output folder (written by `chatgate index
/// --component`).
pub const COMPONENT_FILE: &str = "retrieval.wasm";

/// What to index and how: the flags of `chatgate index`.
pub struct IndexOptions {
    /// The folder of documents.
    pub folder: PathBuf,
    /// Where `chatgate.idx` is written.
    pub out_dir: PathBuf,
    /// Prepended to each document's path inside `folder` to make its `source`.
    pub source_prefix: String,
    /// Analysis, chunking and BM25 settings; stored in the index, and a change to them
    /// rebuilds it whole.
    pub params: IndexParams,
    /// Show a progress bar (on a terminal).
    pub progress: bool,
    /// Write nothing if any file had to be skipped.
    pub strict: bool,
    /// The endpoint that embeds chunks; `None` builds a BM25-only index.
    pub embeddings: Option<EmbeddingsOptions>,
}

/// What one run did.
#[derive(Debug, Default)]
pub struct IndexReport {
    /// Documents in the index written (when `strict` stopped the run: documents read).
    pub documents: usize,
    /// Documents whose chunks were taken from the previous index unchanged.
    pub reused: usize,
    /// Documents read and chunked anew.
    pub parsed: usize,
    /// Documents of the previous index that are gone.
    pub removed: usize,
    /// Chunks in the index written.
    pub chunks: usize,
    /// Distinct terms in its vocabulary.
    pub terms: usize,
    /// Files that were not indexed, and why.
    pub skipped: Vec<Skipped>,
    /// Why the previous index could not be reused, if there was one.
    pub full_rebuild_reason: Option<String>,
    /// Where the artifact is (or would have been) written.
    pub artifact: PathBuf,
    /// Its size.
    pub artifact_bytes: usize,
    /// False when `strict` stopped the run before anything was written.
    pub written: bool,
    /// The model whose vectors the index holds.
    pub embedding: Option<EmbeddingInfo>,
    /// Chunks sent to the embeddings endpoint in this run.
    pub embedded_chunks: usize,
    /// Chunks whose vectors were taken from the previous index.
    pub reused_vectors: usize,
    /// Why stored vectors were not reused, if there were some that could not be.
    pub reembed_reason: Option<String>,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The embeddings settings are unusable (nothing was read or sent).
    #[error(transparent)]
    EmbeddingsSettings(EmbeddingsError),
    /// The folder to index is missing, unreadable or not a folder.
    #[error(transparent)]
    Folder(#[from] IngestError),
    /// The endpoint did not embed the chunks.
    #[error("embedding chunks: {0}")]
    Embedding(EmbeddingsError),
    /// The vectors' size does not fit the index format's `u32`.
    #[error("embeddings of {0} dimensions are too large")]
    TooManyDimensions(usize),
    /// The artifact could not be built: the corpus is past the format's limits, or the
    /// vectors do not match the chunks.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// The artifact just built does not open: a bug in `chatgate_index`.
    #[error("the index just built is unreadable: {0}")]
    Unreadable(FormatError),
    // `reason`, not `source`: the message already says it, and a source would be
    // printed a second time by `{:#}`.
    #[error("cannot write {}: {reason}", path.display())]
    /// The output folder or a file in it could not be written.
    Write {
        /// The folder or file.
        path: PathBuf,
        /// What the file system said.
        reason: std::io::Error,
    },
}

/// Builds the index of `options.folder`; see the module documentation.
pub async fn run(options: &IndexOptions) -> Result<IndexReport, IndexError> {
    // Bad embeddings settings fail the run before any file is read.
    let embeddings = options
        .embeddings
        .clone()
        .map(EmbeddingsClient::new)
        .transpose()
        .map_err(IndexError::EmbeddingsSettings)?;
    let discovered = ingest::discover(&options.folder)?;
    let mut report = IndexReport {
        skipped: discovered.skipped,
        artifact: options.out_dir.join(ARTIFACT_FILE),
        ..IndexReport::default()
    };

    let previous_bytes = std::fs::read(&report.artifact).ok();
    let previous = match previous_bytes.as_deref().map(Index::open) {
        None => None,
        Some(Err(error)) => {
            report.full_rebuild_reason = Some(format!("the previous index is unusable: {error}"));
            None
        }
        Some(Ok(index)) => match incompatibility(index.params(), &options.params) {
            Some(reason) => {
                report.full_rebuild_reason = Some(reason);
                None
            }
            None => Some(index),
        },
    };
    let previous_documents: HashMap<String, usize> = previous
        .as_ref()
        .map(|index| {
            (0..index.document_count())
                .map(|d| (index.document(d).path, d))
                .collect()
        })
        .unwrap_or_default();

    let chunking = ChunkingOptions {
        max_words: options.params.chunking.max_words as usize,
        overlap_words: options.params.chunking.overlap_words as usize,
    };
    let progress = progress_bar(
        options.progress,
        discovered.files.len(),
        "indexing",
        "files",
    );
    let mut documents: Vec<Document> = Vec::with_capacity(discovered.files.len());
    // Per document, its number in the previous index if it was reused from there.
    let mut reused_from: Vec<Option<usize>> = Vec::with_capacity(discovered.files.len());
    for relative in &discovered.files {
        progress.set_message(relative.clone());
        let source = format!("{}{relative}", options.source_prefix);
        let bytes = match std::fs::read(options.folder.join(relative)) {
            Ok(bytes) => bytes,
            Err(error) => {
                report
                    .skipped
                    .push(skipped(relative, format!("cannot be read: {error}")));
                progress.inc(1);
                continue;
            }
        };
        let hash = ingest::content_hash(&bytes);
        let unchanged = previous_documents.get(&source).and_then(|&d| {
            let index = previous.as_ref()?;
            let document = index.document(d);
            (document.content_hash == hash).then_some((d, document))
        });
        match unchanged {
            Some((d, document)) => {
                report.reused += 1;
                documents.push(document);
                reused_from.push(Some(d));
            }
            None => match ingest::parse_document(&source, &bytes, &chunking) {
                Ok(document) => {
                    report.parsed += 1;
                    documents.push(document);
                    reused_from.push(None);
                }
                Err(error) => report.skipped.push(skipped(relative, error.to_string())),
            },
        }
        progress.inc(1);
    }
    progress.finish_and_clear();
    report.skipped.sort();
    report.removed = previous_documents
        .keys()
        .filter(|path| !documents.iter().any(|d| &d.path == *path))
        .count();
    if options.strict && !report.skipped.is_empty() {
        report.documents = documents.len();
        return Ok(report);
    }

    let vectors = match &embeddings {
        None => None,
        Some(client) => {
            embed(
                client,
                &documents,
                &reused_from,
                previous.as_ref(),
                options.progress,
                &mut report,
            )
            .await?
        }
    };
    let vectors = vectors.as_ref().map(|(info, values)| Vectors {
        info: info.clone(),
        values,
    });
    let mut params = options.params.clone();
    params.embedding = vectors.as_ref().map(|v| v.info.clone());
    report.embedding = params.embedding.clone();
    let artifact = chatgate_index::build(&documents, &params, vectors)?;
    let opened = Index::open(&artifact).map_err(IndexError::Unreadable)?;
    report.documents = opened.document_count();
    report.chunks = opened.chunk_count();
    report.terms = opened.term_count();
    report.artifact_bytes = artifact.len();
    std::fs::create_dir_all(&options.out_dir).map_err(|reason| IndexError::Write {
        path: options.out_dir.clone(),
        reason,
    })?;
    write_atomically(&report.artifact, &artifact)?;
    report.written = true;
    Ok(report)
}

/// What is sent to the embeddings endpoint for a chunk: its heading path, which often
/// names what the text is about, then its text.
pub fn embedding_input(chunk: &chatgate_index::Chunk) -> String {
    if chunk.title.is_empty() {
        chunk.text.clone()
    } else {
        format!("{}\n\n{}", chunk.title, chunk.text)
    }
}

/// The vectors of every chunk of `documents`, in order: stored ones for documents reused
/// from `previous` when it holds vectors of the same model and size, the rest from
/// `client`. `None` when there are no chunks (there is nothing to learn the size from).
async fn embed(
    client: &EmbeddingsClient,
    documents: &[Document],
    reused_from: &[Option<usize>],
    previous: Option<&Index<'_>>,
    progress: bool,
    report: &mut IndexReport,
) -> Result<Option<(EmbeddingInfo, Vec<f32>)>, IndexError> {
    let stored_info = previous.and_then(|index| index.params().embedding.clone());
    let reusable = match (&stored_info, previous) {
        (Some(info), _) if info.model == client.model() => true,
        (Some(info), _) => {
            report.reembed_reason = Some(format!(
                "the embedding model changed from `{}` to `{}`",
                info.model,
                client.model()
            ));
            false
        }
        (None, Some(_)) if reused_from.iter().any(Option::is_some) => {
            report.reembed_reason = Some("the previous index holds no vectors".into());
            false
        }
        (None, _) => false,
    };
    let mut stored: Vec<Option<Vec<f32>>> = documents
        .iter()
        .zip(reused_from)
        .map(|(_, from)| {
            let index = previous.filter(|_| reusable)?;
            index.document_vectors((*from)?)
        })
        .collect();

    let mut fresh = embed_missing(client, documents, &stored, progress).await?;
    report.embedded_chunks = fresh.as_ref().map_or(0, |(_, done)| done.len());
    if let (Some(info), Some((dimensions, _))) = (&stored_info, &fresh)
        && reusable
        && info.dimensions as usize != *dimensions
        && stored.iter().any(Option::is_some)
    {
        // Same model name, other size (a redeployment with `dimensions` set, say):
        // stored and new vectors cannot be compared, so everything is embedded anew.
        report.reembed_reason = Some(format!(
            "`{}` now answers {dimensions} dimensions where the index holds {}",
            info.model, info.dimensions
        ));
        stored.iter_mut().for_each(|vectors| *vectors = None);
        fresh = embed_missing(client, documents, &stored, progress).await?;
        report.embedded_chunks += fresh.as_ref().map_or(0, |(_, done)| done.len());
    }

    let dimensions = match (&fresh, &stored_info) {
        (Some((dimensions, _)), _) => *dimensions,
        (None, Some(info)) if stored.iter().any(Option::is_some) => info.dimensions as usize,
        _ => return Ok(None),
    };
    let mut fresh_vectors = fresh.map(|(_, done)| done).unwrap_or_default().into_iter();
    let mut values =
        Vec::with_capacity(documents.iter().map(|d| d.chunks.len()).sum::<usize>() * dimensions);
    for (document, stored) in documents.iter().zip(stored) {
        match stored {
            Some(vectors) => {
                report.reused_vectors += document.chunks.len();
                values.extend(vectors);
            }
            None => {
                for _ in &document.chunks {
                    // One fresh vector was made per chunk of every document without stored ones.
                    values.extend(fresh_vectors.next().unwrap_or_default());
                }
            }
        }
    }
    let info = EmbeddingInfo {
        model: client.model().to_string(),
        dimensions: u32::try_from(dimensions)
            .map_err(|_| IndexError::TooManyDimensions(dimensions))?,
    };
    Ok(Some((info, values)))
}

/// Embeds the chunks of the documents without `stored` vectors: their size and the
/// vectors, one per chunk in document order, or `None` if there were none to embed.
async fn embed_missing(
    client: &EmbeddingsClient,
    documents: &[Document],
    stored: &[Option<Vec<f32>>],
    progress: bool,
) -> Result<Option<(usize, Vec<Vec<f32>>)>, IndexError> {
    let inputs: Vec<String> = documents
        .iter()
        .zip(stored)
        .filter(|(_, stored)| stored.is_none())
        .flat_map(|(document, _)| document.chunks.iter().map(embedding_input))
        .collect();
    if inputs.is_empty() {
        return Ok(None);
    }
    let bar = progress_bar(progress, inputs.len(), "embedding", "chunks");
    bar.set_message(client.model().to_string());
    let embeddings = client
        .embed(&inputs, |done| bar.inc(done as u64))
        .await
        .map_err(IndexError::Embedding)?;
    bar.finish_and_clear();
    let dimensions = embeddings.dimensions;
    let vectors = embeddings
        .values
        .chunks(dimensions.max(1))
        .map(<[f32]>::to_vec)
        .collect();
    Ok(Some((dimensions, vectors)))
}

/// Why chunks of an index built with `old` cannot be reused under `new`, if they can't.
fn incompatibility(old: &IndexParams, new: &IndexParams) -> Option<String> {
    if old.analyzer != new.analyzer {
        return Some("the text analysis changed".into());
    }
    if old.chunking != new.chunking {
        return Some("the chunking changed".into());
    }
    None
}

fn skipped(path: &str, reason: String) -> Skipped {
    Skipped {
        path: path.to_string(),
        reason,
    }
}

/// Writes `bytes` so that a reader sees the old file or the new one, never a mix.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IndexError> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".partial");
    std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|reason| IndexError::Write {
            path: path.to_path_buf(),
            reason,
        })
}

fn progress_bar(enabled: bool, total: usize, doing: &str, unit: &str) -> indicatif::ProgressBar {
    if !enabled {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{{spinner}} {doing} [{{bar:30}}] {{pos}}/{{len}} {unit} {{per_sec}} eta {{eta}} {{wide_msg}}"
        ))
        .expect("a valid template")
        .progress_chars("=> "),
    );
    bar
}

/// The chunking `chatgate index` uses unless told otherwise.
pub fn default_chunking() -> ChunkingParams {
    let defaults = ChunkingOptions::default();
    ChunkingParams {
        max_words: defaults.max_words as u32,
        overlap_words: defaults.overlap_words as u32,
    }
}
