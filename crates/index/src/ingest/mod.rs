//! Ingestion: finding the documents in a folder and splitting each into overlapping chunks.
//!
//! [`discover`] lists the Markdown, plain-text and HTML files below a folder and reports
//! every other file it skips. [`parse_document`] turns one file's bytes into a
//! [`Document`] whose [`Chunk`]s follow the file's headings and paragraphs:
//!
//! - Markdown: optional `---` front matter (`key: value` lines) becomes metadata; ATX
//!   headings (`#` … `######`) start sections; fenced code blocks stay whole.
//! - Plain text: a short first line followed by a blank line is the title; blank lines
//!   separate paragraphs.
//! - HTML: `<title>` (else the first `<h1>`) is the title, `<h1>`–`<h6>` start sections,
//!   block elements end paragraphs, and scripts, styles and other non-text elements are
//!   skipped; `<meta name content>` becomes metadata.
//!
//! Every chunk is titled by its heading path below the document title, e.g.
//! `Application Gateway and Web Application Firewall > Custom rules`, and holds whole
//! paragraphs where they fit (see [`ChunkingOptions`]).

mod chunk;
mod discover;
mod html;
mod markdown;
mod outline;
mod text;

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use discover::discover;

use crate::{Chunk, Document};

/// How documents are cut into chunks.
///
/// The defaults, 200 words with 40 words of overlap, keep a chunk to one or two
/// paragraphs: about 260 model tokens of English, so a prompt can carry several retrieved
/// chunks, and short enough that BM25's length normalisation still rewards a passage for
/// being about the query rather than merely mentioning it. 40 words (a fifth of a chunk)
/// carries the last sentence or two of a chunk into the next one, so a statement cut by a
/// chunk boundary stays findable together with its context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkingOptions {
    /// The most words of new text in one chunk. Whole paragraphs are packed up to this;
    /// longer paragraphs are split at sentence ends, longer sentences between words.
    /// `0` is treated as `1`.
    pub max_words: usize,
    /// The most words a chunk repeats from the end of the previous chunk of the same
    /// section, in whole sentences (never the whole previous chunk). A chunk therefore
    /// holds at most `max_words + overlap_words` words. `0` turns overlap off.
    pub overlap_words: usize,
}

impl Default for ChunkingOptions {
    fn default() -> Self {
        Self {
            max_words: 200,
            overlap_words: 40,
        }
    }
}

/// The kinds of file ingestion reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKind {
    /// `.md`, `.markdown`
    Markdown,
    /// `.txt`, `.text`
    Text,
    /// `.html`, `.htm`
    Html,
}

/// The kind of document at `path`, judged by its extension (case-insensitive), or `None`
/// when ingestion does not read such files.
pub fn source_kind(path: &Path) -> Option<SourceKind> {
    let extension = path.extension()?.to_str()?.to_ascii_lowercase();
    match extension.as_str() {
        "md" | "markdown" => Some(SourceKind::Markdown),
        "txt" | "text" => Some(SourceKind::Text),
        "html" | "htm" => Some(SourceKind::Html),
        _ => None,
    }
}

/// A file or folder [`discover`] did not take, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Skipped {
    /// Path relative to the ingested folder, with `/` separators.
    pub path: String,
    /// Why it was skipped, e.g. ``unsupported file type `.pdf` ``.
    pub reason: String,
}

/// What [`discover`] found below a folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Discovered {
    /// The documents to ingest: paths relative to the folder, with `/` separators, sorted.
    pub files: Vec<String>,
    /// Everything else that is not hidden, sorted by path.
    pub skipped: Vec<Skipped>,
}

/// Why a folder or a document could not be ingested.
///
/// Document errors do not repeat the document's path: the caller, who passed it, reports
/// them next to it.
#[derive(Debug)]
#[non_exhaustive]
pub enum IngestError {
    /// The folder to ingest is missing or cannot be listed.
    UnreadableRoot {
        /// The folder as given.
        root: PathBuf,
        /// Why it could not be read.
        source: std::io::Error,
    },
    /// The folder to ingest is a file (or something else that is not a folder).
    RootNotDirectory {
        /// The path as given.
        root: PathBuf,
    },
    /// The document's extension is not one ingestion reads (see [`source_kind`]).
    UnsupportedType {
        /// The extension as spelled in the file name, without the dot.
        extension: Option<String>,
    },
    /// The document is not UTF-8 (ingestion reads no other encoding).
    NotUtf8 {
        /// Where the first invalid byte sequence starts, counted in bytes from 0.
        offset: usize,
    },
    /// The document has no text to index: it is empty, or holds only markup, headings,
    /// front matter or skipped elements.
    NoText,
}

impl fmt::Display for IngestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::UnreadableRoot { root, source } => {
                write!(f, "cannot read the folder `{}`: {source}", root.display())
            }
            Self::RootNotDirectory { root } => write!(f, "`{}` is not a folder", root.display()),
            Self::UnsupportedType {
                extension: Some(extension),
            } => write!(f, "unsupported file type `.{extension}`"),
            Self::UnsupportedType { extension: None } => {
                write!(f, "unsupported file type (no extension)")
            }
            Self::NotUtf8 { offset } => {
                write!(
                    f,
                    "not UTF-8 text: invalid byte sequence at byte offset {offset}"
                )
            }
            Self::NoText => write!(
                f,
                "no text to index (the file is empty or holds only markup, headings or front matter)"
            ),
        }
    }
}

// The I/O error is part of the message already, so it is not repeated as a source.
impl std::error::Error for IngestError {}

/// The SHA-256 of `bytes`: a document whose hash is unchanged need not be re-ingested.
pub fn content_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The document at `path` (relative to the ingested folder, `/` separators; its extension
/// picks the format) with content `bytes`, split into chunks.
///
/// A leading UTF-8 byte-order mark is ignored. A document that yields no chunk is an
/// error ([`IngestError::NoText`]), so every returned document has at least one.
pub fn parse_document(
    path: &str,
    bytes: &[u8],
    options: &ChunkingOptions,
) -> Result<Document, IngestError> {
    let kind = source_kind(Path::new(path)).ok_or_else(|| IngestError::UnsupportedType {
        extension: extension_of(Path::new(path)),
    })?;
    let text = std::str::from_utf8(bytes).map_err(|error| IngestError::NotUtf8 {
        offset: error.valid_up_to(),
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let outline = match kind {
        SourceKind::Markdown => markdown::parse(text),
        SourceKind::Text => text::parse(text),
        SourceKind::Html => html::parse(text),
    };
    let title = outline
        .title
        .filter(|title| !title.is_empty())
        .unwrap_or_else(|| file_stem(path));
    let mut chunks = Vec::new();
    for section in &outline.sections {
        let chunk_title = heading_path(&title, &section.headings);
        for text in chunk::chunk_section(&section.blocks, options) {
            chunks.push(Chunk {
                title: chunk_title.clone(),
                text,
            });
        }
    }
    if chunks.is_empty() {
        return Err(IngestError::NoText);
    }
    Ok(Document {
        path: path.to_string(),
        content_hash: content_hash(bytes),
        title,
        metadata: outline.metadata,
        chunks,
    })
}

/// The document title followed by the headings above a section, joined with ` > `. The
/// top heading is left out when it is the document title (the usual `# Title` line).
fn heading_path(title: &str, headings: &[String]) -> String {
    let below_title = match headings.split_first() {
        Some((top, rest)) if top == title => rest,
        _ => headings,
    };
    std::iter::once(title)
        .chain(below_title.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" > ")
}

fn file_stem(path: &str) -> String {
    Path::new(path)
        .file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.to_string())
}

fn extension_of(path: &Path) -> Option<String> {
    path.extension()
        .map(|extension| extension.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(path: &str, text: &str) -> Result<Document, IngestError> {
        parse_document(path, text.as_bytes(), &ChunkingOptions::default())
    }

    #[test]
    fn the_extension_picks_the_format_whatever_its_case() {
        let kind = |path: &str| source_kind(Path::new(path));
        assert_eq!(kind("a/notes.md"), Some(SourceKind::Markdown));
        assert_eq!(kind("README.Markdown"), Some(SourceKind::Markdown));
        assert_eq!(kind("notes.TXT"), Some(SourceKind::Text));
        assert_eq!(kind("notes.text"), Some(SourceKind::Text));
        assert_eq!(kind("page.html"), Some(SourceKind::Html));
        assert_eq!(kind("PAGE.HTM"), Some(SourceKind::Html));
        assert_eq!(kind("paper.pdf"), None);
        assert_eq!(kind("Makefile"), None);
        assert_eq!(kind("archive.md.gz"), None);
    }

    #[test]
    fn content_hash_is_sha256() {
        let hex: String = content_hash(b"abc")
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect();
        assert_eq!(
            hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn a_document_keeps_its_path_hash_and_title() {
        let bytes = b"# Key Vault\n\nSecrets live here.\n";
        let document =
            parse_document("guides/key-vault.md", bytes, &ChunkingOptions::default()).unwrap();
        assert_eq!(document.path, "guides/key-vault.md");
        assert_eq!(document.content_hash, content_hash(bytes));
        assert_eq!(document.title, "Key Vault");
        assert_eq!(
            document.chunks,
            vec![Chunk {
                title: "Key Vault".into(),
                text: "Secrets live here.".into()
            }]
        );
    }

    #[test]
    fn the_default_chunks_hold_200_words_and_repeat_40() {
        assert_eq!(
            ChunkingOptions::default(),
            ChunkingOptions {
                max_words: 200,
                overlap_words: 40
            }
        );
    }

    #[test]
    fn non_utf8_documents_are_rejected_with_the_offset_of_the_bad_byte() {
        let error = parse_document(
            "latin1.txt",
            b"caf\xe9 au lait",
            &ChunkingOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(error, IngestError::NotUtf8 { offset: 3 }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "not UTF-8 text: invalid byte sequence at byte offset 3"
        );
    }

    #[test]
    fn documents_without_text_are_rejected_not_returned_empty() {
        for (path, text) in [
            ("empty.md", ""),
            ("blank.txt", " \n\n\t\n"),
            ("headings-only.md", "# Title\n\n## Section\n"),
            ("front-matter-only.md", "---\ntitle: Nothing\n---\n"),
            ("script-only.html", "<script>alert(1)</script><!-- note -->"),
        ] {
            let error = parse(path, text).unwrap_err();
            assert!(matches!(error, IngestError::NoText), "{path}: {error:?}");
        }
    }

    #[test]
    fn unsupported_extensions_are_rejected() {
        let error = parse("paper.PDF", "text").unwrap_err();
        assert_eq!(error.to_string(), "unsupported file type `.PDF`");
        let error = parse("LICENSE", "text").unwrap_err();
        assert_eq!(error.to_string(), "unsupported file type (no extension)");
    }

    #[test]
    fn a_byte_order_mark_is_not_text() {
        let document = parse("bom.md", "\u{feff}# Title\n\nBody.\n").unwrap();
        assert_eq!(document.title, "Title");
        assert_eq!(document.chunks[0].text, "Body.");
    }

    #[test]
    fn heading_paths_start_at_the_document_title_without_repeating_it() {
        let headings = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(heading_path("Gateway", &[]), "Gateway");
        assert_eq!(heading_path("Gateway", &headings(&["Gateway"])), "Gateway");
        assert_eq!(
            heading_path("Gateway", &headings(&["Gateway", "Rules"])),
            "Gateway > Rules"
        );
        assert_eq!(
            heading_path("notes", &headings(&["Rules", "Detail"])),
            "notes > Rules > Detail"
        );
    }

    #[test]
    fn overlap_repeats_words_within_a_section_and_never_across_headings() {
        // Every word is unique, so a repeated word can only come from the overlap.
        let sentences = |prefix: &str| {
            (1..=6)
                .map(|n| format!("{prefix}{n}a {prefix}{n}b {prefix}{n}c {prefix}{n}d."))
                .collect::<Vec<_>>()
                .join(" ")
        };
        let doc = format!(
            "# Doc\n\n## One\n\n{}\n\n## Two\n\n{}\n",
            sentences("x"),
            sentences("y")
        );
        let options = ChunkingOptions {
            max_words: 10,
            overlap_words: 5,
        };
        let document = parse_document("doc.md", doc.as_bytes(), &options).unwrap();
        let words = |chunk: &Chunk| -> Vec<String> {
            chunk.text.split_whitespace().map(str::to_string).collect()
        };
        let titles: Vec<&str> = document.chunks.iter().map(|c| c.title.as_str()).collect();
        assert_eq!(
            titles,
            [
                "Doc > One",
                "Doc > One",
                "Doc > One",
                "Doc > Two",
                "Doc > Two",
                "Doc > Two"
            ]
        );
        for pair in document.chunks.windows(2) {
            let (previous, next) = (words(&pair[0]), words(&pair[1]));
            if pair[0].title == pair[1].title {
                // One 4-word sentence fits in 5 words of overlap.
                assert_eq!(next[..4], previous[previous.len() - 4..], "{next:?}");
            } else {
                assert!(
                    next.iter().all(|word| !previous.contains(word)),
                    "overlap crossed a heading: {next:?}"
                );
            }
        }
    }

    /// Every file of the repository's corpus ingests into bounded, non-empty chunks.
    #[test]
    fn the_corpus_in_data_ingests_cleanly() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data");
        let discovered = discover(&root).unwrap();
        assert!(
            discovered.skipped.is_empty(),
            "skipped: {:?}",
            discovered.skipped
        );
        assert!(discovered.files.len() >= 10, "{:?}", discovered.files);
        let options = ChunkingOptions::default();
        for path in &discovered.files {
            let bytes = std::fs::read(root.join(path)).unwrap();
            let document = parse_document(path, &bytes, &options)
                .unwrap_or_else(|error| panic!("{path}: {error}"));
            assert!(!document.chunks.is_empty(), "{path} has no chunks");
            assert_ne!(document.title, file_stem(path), "{path} has no title");
            for chunk in &document.chunks {
                let words = chunk.text.split_whitespace().count();
                assert!(words > 0, "{path}: empty chunk under {}", chunk.title);
                assert!(
                    words <= options.max_words + options.overlap_words,
                    "{path}: {words} words under {}",
                    chunk.title
                );
                assert!(
                    chunk.title.starts_with(&document.title),
                    "{path}: {}",
                    chunk.title
                );
            }
        }
    }
}
