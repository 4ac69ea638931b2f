//! The index artifact: one versioned binary file that a search reads in place.
//!
//! Nothing in it is parsed into owned structures when an index is opened: sections are
//! checked once (bounds, UTF-8, monotonic offsets) and then read through little-endian
//! views, so opening a 100k-chunk index costs a validation pass, and a search touches
//! only the postings of its terms, the per-chunk lengths and the chunks it returns.
//!
//! ```text
//! magic "CHGIDX\r\n" | version u32 | section count u32 | (tag [u8; 4], offset u64, length u64)*
//! META  parameters: BM25 k1/b, title weight, analyser, chunking, embedding model and size
//! DOCS  per document: path, title, metadata, SHA-256, first chunk (n + 1 entries)
//! CHNK  per chunk: title, text, document, weighted length
//! TERM  sorted terms and, per term, where its postings start (t + 1 entries)
//! POST  postings: chunk numbers, then the matching weighted term frequencies
//! VECT  (optional) one unit-length f32 vector per chunk
//! ```
//! All integers and floats are little-endian. A string table is a count, `count + 1`
//! offsets into a UTF-8 blob, and the blob.

use crate::analysis::{AnalyzerConfig, Stemming};
use std::collections::BTreeMap;
use std::fmt;

/// The first bytes of every index file (with CR LF, so that a text-mode copy is detected).
pub const MAGIC: &[u8; 8] = b"CHGIDX\r\n";
/// Bumped on any change of layout or meaning; an index of another version is refused.
pub const FORMAT_VERSION: u32 = 1;

/// Why bytes are not a usable index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormatError {
    /// The bytes do not start with [`MAGIC`].
    NotAnIndex,
    /// Written in another [`FORMAT_VERSION`] (the one found).
    UnsupportedVersion(u32),
    /// A section every index has is absent (its name).
    MissingSection(&'static str),
    /// A section's contents are inconsistent: out of range, truncated or overflowing.
    Corrupt(String),
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::NotAnIndex => write!(f, "not a chatgate index (bad magic bytes)"),
            FormatError::UnsupportedVersion(version) => write!(
                f,
                "index format version {version} is not supported (this build reads version {FORMAT_VERSION}); rebuild it with `chatgate index`"
            ),
            FormatError::MissingSection(tag) => write!(f, "the index has no {tag} section"),
            FormatError::Corrupt(why) => write!(f, "the index is corrupt: {why}"),
        }
    }
}

impl std::error::Error for FormatError {}

fn corrupt(why: impl Into<String>) -> FormatError {
    FormatError::Corrupt(why.into())
}

/// A size computed from counts read in the file: overflow means the counts are corrupt
/// (the bytes could never hold that much), never a wrapped size or a panic.
fn checked_mul(count: usize, size: usize) -> Result<usize, FormatError> {
    count
        .checked_mul(size)
        .ok_or_else(|| corrupt("a count overflows"))
}

fn checked_add(count: usize, extra: usize) -> Result<usize, FormatError> {
    count
        .checked_add(extra)
        .ok_or_else(|| corrupt("a count overflows"))
}

/// BM25 and field weighting parameters, fixed when the index is built.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RankingParams {
    /// BM25's term-frequency saturation.
    pub k1: f32,
    /// BM25's length normalisation (0: none, 1: full).
    pub b: f32,
    /// How much a term in a chunk's title (its heading path) counts, relative to one in its text.
    pub title_weight: f32,
}

impl Default for RankingParams {
    fn default() -> Self {
        RankingParams {
            k1: 1.2,
            b: 0.75,
            title_weight: 2.0,
        }
    }
}

/// How documents were chunked: re-indexing reuses a document's chunks only if unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChunkingParams {
    /// The most words in one chunk.
    pub max_words: u32,
    /// Words a chunk repeats from the end of the one before it.
    pub overlap_words: u32,
}

/// The embedding model whose vectors the index holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddingInfo {
    /// The model (or Azure OpenAI deployment) name the vectors came from.
    pub model: String,
    /// Components per vector.
    pub dimensions: u32,
}

/// Everything about how an index was built.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexParams {
    /// How chunks are scored.
    pub ranking: RankingParams,
    /// How text became terms; queries must be analysed the same way.
    pub analyzer: AnalyzerConfig,
    /// How documents were cut into chunks.
    pub chunking: ChunkingParams,
    /// The embedding model, when the index holds vectors.
    pub embedding: Option<EmbeddingInfo>,
}

// ---------------------------------------------------------------------------------------
// Little-endian views.

/// A view of little-endian `u32`s.
#[derive(Clone, Copy)]
pub(crate) struct U32s<'a>(&'a [u8]);

impl<'a> U32s<'a> {
    fn new(bytes: &'a [u8], count: usize, what: &str) -> Result<Self, FormatError> {
        if count.checked_mul(4) != Some(bytes.len()) {
            return Err(corrupt(format!("{what}: expected {count} entries")));
        }
        Ok(U32s(bytes))
    }
    pub(crate) fn len(&self) -> usize {
        self.0.len() / 4
    }
    /// `i` must be below `len()`: `Index::open` checked every index it derives from the
    /// file, so a product like `i * 4` cannot overflow here.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u32 {
        let at = i * 4;
        u32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }
}

/// A view of little-endian `f32`s.
#[derive(Clone, Copy)]
pub(crate) struct F32s<'a>(&'a [u8]);

impl<'a> F32s<'a> {
    fn new(bytes: &'a [u8], count: usize, what: &str) -> Result<Self, FormatError> {
        if count.checked_mul(4) != Some(bytes.len()) {
            return Err(corrupt(format!("{what}: expected {count} entries")));
        }
        Ok(F32s(bytes))
    }
    #[inline]
    pub(crate) fn get(&self, i: usize) -> f32 {
        let at = i * 4;
        f32::from_le_bytes([self.0[at], self.0[at + 1], self.0[at + 2], self.0[at + 3]])
    }
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.0
    }
}

/// A table of strings: offsets into one UTF-8 blob, validated when opened.
#[derive(Clone, Copy)]
pub(crate) struct Strings<'a> {
    offsets: U32s<'a>,
    blob: &'a str,
}

impl<'a> Strings<'a> {
    pub(crate) fn len(&self) -> usize {
        self.offsets.len() - 1
    }
    pub(crate) fn get(&self, i: usize) -> &'a str {
        let (start, end) = (
            self.offsets.get(i) as usize,
            self.offsets.get(i + 1) as usize,
        );
        // Offsets were checked to be ordered char boundaries within the blob when opened.
        &self.blob[start..end]
    }
    /// Binary search of a sorted table.
    pub(crate) fn find(&self, wanted: &str) -> Option<usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            match self.get(middle).cmp(wanted) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return Some(middle),
            }
        }
        None
    }
}

// ---------------------------------------------------------------------------------------
// Reading.

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, at: 0, what }
    }
    fn take(&mut self, length: usize) -> Result<&'a [u8], FormatError> {
        let end = self
            .at
            .checked_add(length)
            .filter(|&end| end <= self.bytes.len())
            .ok_or_else(|| corrupt(format!("{} section is truncated", self.what)))?;
        let taken = &self.bytes[self.at..end];
        self.at = end;
        Ok(taken)
    }
    fn u8(&mut self) -> Result<u8, FormatError> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, FormatError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, FormatError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    /// A u64 offset or length, which must fit the address space: on wasm32 an `as usize`
    /// cast would silently drop the high bits.
    fn u64_size(&mut self) -> Result<usize, FormatError> {
        usize::try_from(self.u64()?).map_err(|_| corrupt("a section lies outside the file"))
    }
    fn f32(&mut self) -> Result<f32, FormatError> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn count(&mut self) -> Result<usize, FormatError> {
        Ok(self.u32()? as usize)
    }
    fn str(&mut self) -> Result<&'a str, FormatError> {
        let length = self.count()?;
        std::str::from_utf8(self.take(length)?)
            .map_err(|_| corrupt(format!("{} section holds invalid UTF-8", self.what)))
    }
    fn u32s(&mut self, count: usize) -> Result<U32s<'a>, FormatError> {
        let length = checked_mul(count, 4)?;
        U32s::new(self.take(length)?, count, self.what)
    }
    fn f32s(&mut self, count: usize) -> Result<F32s<'a>, FormatError> {
        let length = checked_mul(count, 4)?;
        F32s::new(self.take(length)?, count, self.what)
    }
    fn strings(&mut self, expected: Option<usize>) -> Result<Strings<'a>, FormatError> {
        let count = self.count()?;
        if expected.is_some_and(|expected| expected != count) {
            return Err(corrupt(format!(
                "{} section: table size mismatch",
                self.what
            )));
        }
        // `count + 1` overflows a 32-bit usize (wasm32) when the count is u32::MAX.
        let offsets = self.u32s(checked_add(count, 1)?)?;
        let blob_length = self.count()?;
        let blob = std::str::from_utf8(self.take(blob_length)?)
            .map_err(|_| corrupt(format!("{} section holds invalid UTF-8", self.what)))?;
        let mut previous = 0;
        for i in 0..=count {
            let offset = offsets.get(i) as usize;
            if offset < previous || offset > blob.len() || !blob.is_char_boundary(offset) {
                return Err(corrupt(format!("{} section: bad string offset", self.what)));
            }
            previous = offset;
        }
        if offsets.get(0) != 0 {
            return Err(corrupt(format!("{} section: bad string offset", self.what)));
        }
        Ok(Strings { offsets, blob })
    }
    fn finish(&self) -> Result<(), FormatError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(corrupt(format!("{} section has trailing bytes", self.what)))
        }
    }
}

/// An opened index: validated views into the artifact's bytes.
pub struct Index<'a> {
    pub(crate) params: IndexParams,
    pub(crate) doc_paths: Strings<'a>,
    pub(crate) doc_titles: Strings<'a>,
    pub(crate) doc_metadata: Strings<'a>,
    pub(crate) doc_hashes: &'a [u8],
    pub(crate) doc_first_chunk: U32s<'a>,
    pub(crate) chunk_titles: Strings<'a>,
    pub(crate) chunk_texts: Strings<'a>,
    pub(crate) chunk_docs: U32s<'a>,
    pub(crate) chunk_lengths: F32s<'a>,
    pub(crate) average_length: f32,
    pub(crate) terms: Strings<'a>,
    pub(crate) term_postings: U32s<'a>,
    pub(crate) posting_chunks: U32s<'a>,
    pub(crate) posting_weights: F32s<'a>,
    pub(crate) vectors: Option<F32s<'a>>,
    /// Metadata field names any document has, sorted.
    pub(crate) metadata_fields: Vec<&'a str>,
}

impl<'a> Index<'a> {
    /// Validates `bytes` as an index artifact and opens it in place.
    pub fn open(bytes: &'a [u8]) -> Result<Self, FormatError> {
        if bytes.len() < 16 || &bytes[..8] != MAGIC {
            return Err(FormatError::NotAnIndex);
        }
        let mut header = Reader::new(&bytes[8..], "header");
        let version = header.u32()?;
        if version != FORMAT_VERSION {
            return Err(FormatError::UnsupportedVersion(version));
        }
        let mut sections = BTreeMap::new();
        for _ in 0..header.count()? {
            let tag: [u8; 4] = header.take(4)?.try_into().expect("4 bytes");
            let (offset, length) = (header.u64_size()?, header.u64_size()?);
            let section = offset
                .checked_add(length)
                .and_then(|end| bytes.get(offset..end))
                .ok_or_else(|| corrupt("a section lies outside the file"))?;
            sections.insert(tag, section);
        }
        let section = |tag: &'static str| {
            let key: [u8; 4] = tag.as_bytes().try_into().expect("4-letter tag");
            sections
                .get(&key)
                .map(|bytes| Reader::new(bytes, tag))
                .ok_or(FormatError::MissingSection(tag))
        };

        let mut meta = section("META")?;
        let ranking = RankingParams {
            k1: meta.f32()?,
            b: meta.f32()?,
            title_weight: meta.f32()?,
        };
        let stemming = match meta.u8()? {
            0 => Stemming::None,
            1 => Stemming::English,
            other => return Err(corrupt(format!("unknown stemmer {other}"))),
        };
        let min_word_chars = meta.u8()?;
        let stop_word_count = meta.count()?;
        let mut stop_words = Vec::with_capacity(stop_word_count.min(4096));
        for _ in 0..stop_word_count {
            stop_words.push(meta.str()?.to_string());
        }
        let chunking = ChunkingParams {
            max_words: meta.u32()?,
            overlap_words: meta.u32()?,
        };
        let embedding = match meta.u8()? {
            0 => None,
            _ => Some(EmbeddingInfo {
                model: meta.str()?.to_string(),
                dimensions: meta.u32()?,
            }),
        };
        let average_length = meta.f32()?;
        meta.finish()?;

        let mut docs = section("DOCS")?;
        let doc_count = docs.count()?;
        let doc_paths = docs.strings(Some(doc_count))?;
        let doc_titles = docs.strings(Some(doc_count))?;
        let doc_metadata = docs.strings(Some(doc_count))?;
        let doc_hashes = docs.take(checked_mul(doc_count, 32)?)?;
        let doc_first_chunk = docs.u32s(checked_add(doc_count, 1)?)?;
        docs.finish()?;

        let mut chunks = section("CHNK")?;
        let chunk_count = chunks.count()?;
        let chunk_titles = chunks.strings(Some(chunk_count))?;
        let chunk_texts = chunks.strings(Some(chunk_count))?;
        let chunk_docs = chunks.u32s(chunk_count)?;
        let chunk_lengths = chunks.f32s(chunk_count)?;
        chunks.finish()?;

        let mut term_section = section("TERM")?;
        let terms = term_section.strings(None)?;
        let term_postings = term_section.u32s(checked_add(terms.len(), 1)?)?;
        term_section.finish()?;

        let mut postings = section("POST")?;
        let posting_count = postings.count()?;
        let posting_chunks = postings.u32s(posting_count)?;
        let posting_weights = postings.f32s(posting_count)?;
        postings.finish()?;

        let vectors = match &embedding {
            None => None,
            Some(info) => {
                let mut section = section("VECT")?;
                let dimensions = usize::try_from(info.dimensions)
                    .map_err(|_| corrupt("vector dimensions overflow"))?;
                let vectors = section.f32s(checked_mul(chunk_count, dimensions)?)?;
                section.finish()?;
                Some(vectors)
            }
        };

        // Cross-references are checked once here so that searches can index freely.
        // Document ranges start at chunk 0 and are contiguous, so every chunk has exactly
        // one document: `passage` subtracts its document's first chunk from its number.
        if doc_first_chunk.get(0) != 0 {
            return Err(corrupt("document chunk ranges do not cover the chunks"));
        }
        let mut previous = 0;
        for d in 0..=doc_count {
            let first = doc_first_chunk.get(d);
            if first < previous || first as usize > chunk_count {
                return Err(corrupt("document chunk ranges are out of order"));
            }
            previous = first;
        }
        if doc_first_chunk.get(doc_count) as usize != chunk_count {
            return Err(corrupt("document chunk ranges do not cover the chunks"));
        }
        for d in 0..doc_count {
            let chunks = doc_first_chunk.get(d) as usize..doc_first_chunk.get(d + 1) as usize;
            if chunks.into_iter().any(|c| chunk_docs.get(c) as usize != d) {
                return Err(corrupt("a chunk names the wrong document"));
            }
        }
        let mut previous = 0;
        for t in 0..=terms.len() {
            let start = term_postings.get(t);
            if start < previous || start as usize > posting_count {
                return Err(corrupt("term postings are out of order"));
            }
            previous = start;
        }
        if (0..posting_count).any(|p| posting_chunks.get(p) as usize >= chunk_count) {
            return Err(corrupt("a posting names a missing chunk"));
        }

        let mut metadata_fields: Vec<&'a str> = (0..doc_count)
            .flat_map(|d| metadata_pairs(doc_metadata.get(d)).map(|(key, _)| key))
            .collect();
        metadata_fields.sort_unstable();
        metadata_fields.dedup();

        Ok(Index {
            params: IndexParams {
                ranking,
                analyzer: AnalyzerConfig {
                    stemming,
                    stop_words,
                    min_word_chars,
                },
                chunking,
                embedding,
            },
            doc_paths,
            doc_titles,
            doc_metadata,
            doc_hashes,
            doc_first_chunk,
            chunk_titles,
            chunk_texts,
            chunk_docs,
            chunk_lengths,
            average_length,
            terms,
            term_postings,
            posting_chunks,
            posting_weights,
            vectors,
            metadata_fields,
        })
    }

    /// How this index was built.
    pub fn params(&self) -> &IndexParams {
        &self.params
    }

    /// Documents indexed.
    pub fn document_count(&self) -> usize {
        self.doc_paths.len()
    }

    /// Chunks indexed (the unit a search returns).
    pub fn chunk_count(&self) -> usize {
        self.chunk_docs.len()
    }

    /// Distinct terms in the vocabulary.
    pub fn term_count(&self) -> usize {
        self.terms.len()
    }

    /// Document `d`'s path, title, metadata, content hash and chunks, as stored.
    pub fn document(&self, d: usize) -> crate::Document {
        let chunks = self.chunk_range(d).map(|c| crate::Chunk {
            title: self.chunk_titles.get(c).to_string(),
            text: self.chunk_texts.get(c).to_string(),
        });
        crate::Document {
            path: self.doc_paths.get(d).to_string(),
            content_hash: self.doc_hashes[d * 32..d * 32 + 32]
                .try_into()
                .expect("32 bytes"),
            title: self.doc_titles.get(d).to_string(),
            metadata: metadata_pairs(self.doc_metadata.get(d))
                .map(|(key, value)| (key.to_string(), value.to_string()))
                .collect(),
            chunks: chunks.collect(),
        }
    }

    pub(crate) fn chunk_range(&self, d: usize) -> std::ops::Range<usize> {
        self.doc_first_chunk.get(d) as usize..self.doc_first_chunk.get(d + 1) as usize
    }

    /// The stored vectors of document `d`'s chunks, one after the other, if the index
    /// holds vectors (re-indexing reuses them for an unchanged document).
    pub fn document_vectors(&self, d: usize) -> Option<Vec<f32>> {
        let mut values = Vec::new();
        for c in self.chunk_range(d) {
            values.extend(self.vector(c)?);
        }
        Some(values)
    }

    /// Chunk `c`'s stored vector, if the index holds vectors.
    pub fn vector(&self, c: usize) -> Option<Vec<f32>> {
        let vectors = self.vectors?;
        let dimensions = self.params.embedding.as_ref()?.dimensions as usize;
        Some(
            (0..dimensions)
                .map(|i| vectors.get(c * dimensions + i))
                .collect(),
        )
    }
}

/// Document metadata is stored as `key \x1f value \x1e` records.
pub(crate) fn metadata_pairs(encoded: &str) -> impl Iterator<Item = (&str, &str)> {
    encoded
        .split('\u{1e}')
        .filter_map(|record| record.split_once('\u{1f}'))
}

// ---------------------------------------------------------------------------------------
// Writing.

#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn u8(&mut self, value: u8) {
        self.bytes.push(value);
    }
    fn u32(&mut self, value: u32) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    fn u64(&mut self, value: u64) {
        self.bytes.extend_from_slice(&value.to_le_bytes());
    }
    fn f32(&mut self, value: f32) {
        self.u32(value.to_bits());
    }
    fn count(&mut self, value: usize) -> Result<(), BuildError> {
        self.u32(u32::try_from(value).map_err(|_| BuildError::TooLarge)?);
        Ok(())
    }
    fn str(&mut self, value: &str) -> Result<(), BuildError> {
        self.count(value.len())?;
        self.bytes.extend_from_slice(value.as_bytes());
        Ok(())
    }
    fn strings<'s>(
        &mut self,
        values: impl ExactSizeIterator<Item = &'s str> + Clone,
    ) -> Result<(), BuildError> {
        self.count(values.len())?;
        let mut offset = 0usize;
        self.count(offset)?;
        for value in values.clone() {
            offset += value.len();
            self.count(offset)?;
        }
        self.count(offset)?;
        for value in values {
            self.bytes.extend_from_slice(value.as_bytes());
        }
        Ok(())
    }
}

/// Why an index could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
/// Why an index could not be written.
pub enum BuildError {
    /// More than 4 GiB of text, or more than 2^32 chunks or postings.
    TooLarge,
    /// The vectors given do not match the chunks or the declared dimensions.
    VectorMismatch {
        /// Chunks times dimensions.
        expected: usize,
        /// Components given.
        found: usize,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::TooLarge => write!(f, "the corpus is too large for one index (4 GiB)"),
            BuildError::VectorMismatch { expected, found } => write!(
                f,
                "expected {expected} vector components (chunks x dimensions), found {found}"
            ),
        }
    }
}

impl std::error::Error for BuildError {}

/// Chunk vectors to store: `values` holds one vector of `info.dimensions` per chunk, in
/// the order of the documents' chunks. They are stored normalised to unit length.
pub struct Vectors<'v> {
    /// The model and dimensions of every vector.
    pub info: EmbeddingInfo,
    /// All vectors, one after another.
    pub values: &'v [f32],
}

/// Builds an index artifact from ingested documents.
pub fn build(
    documents: &[crate::Document],
    params: &IndexParams,
    vectors: Option<Vectors<'_>>,
) -> Result<Vec<u8>, BuildError> {
    let analyzer = crate::analysis::Analyzer::new(params.analyzer.clone());
    let title_weight = params.ranking.title_weight;

    let chunks: Vec<(usize, &crate::Chunk)> = documents
        .iter()
        .enumerate()
        .flat_map(|(d, document)| document.chunks.iter().map(move |chunk| (d, chunk)))
        .collect();
    if let Some(vectors) = &vectors {
        let expected = chunks
            .len()
            .checked_mul(vectors.info.dimensions as usize)
            .ok_or(BuildError::TooLarge)?;
        if vectors.values.len() != expected {
            return Err(BuildError::VectorMismatch {
                expected,
                found: vectors.values.len(),
            });
        }
    }

    let mut postings: BTreeMap<String, Vec<(u32, f32)>> = BTreeMap::new();
    let mut lengths = Vec::with_capacity(chunks.len());
    for (c, (_, chunk)) in chunks.iter().enumerate() {
        let c = u32::try_from(c).map_err(|_| BuildError::TooLarge)?;
        let mut weights: BTreeMap<String, f32> = BTreeMap::new();
        let mut length = 0.0;
        analyzer.for_each_term(&chunk.text, |term| {
            *weights.entry(term).or_default() += 1.0;
            length += 1.0;
        });
        analyzer.for_each_term(&chunk.title, |term| {
            *weights.entry(term).or_default() += title_weight;
            length += title_weight;
        });
        lengths.push(length);
        for (term, weight) in weights {
            postings.entry(term).or_default().push((c, weight));
        }
    }
    let average_length = if lengths.is_empty() {
        0.0
    } else {
        (lengths.iter().map(|&l| f64::from(l)).sum::<f64>() / lengths.len() as f64) as f32
    };

    let mut meta = Writer::default();
    meta.f32(params.ranking.k1);
    meta.f32(params.ranking.b);
    meta.f32(title_weight);
    meta.u8(match params.analyzer.stemming {
        Stemming::None => 0,
        Stemming::English => 1,
    });
    meta.u8(params.analyzer.min_word_chars);
    meta.count(params.analyzer.stop_words.len())?;
    for word in &params.analyzer.stop_words {
        meta.str(word)?;
    }
    meta.u32(params.chunking.max_words);
    meta.u32(params.chunking.overlap_words);
    match &vectors {
        None => meta.u8(0),
        Some(vectors) => {
            meta.u8(1);
            meta.str(&vectors.info.model)?;
            meta.u32(vectors.info.dimensions);
        }
    }
    meta.f32(average_length);

    let mut docs = Writer::default();
    docs.count(documents.len())?;
    docs.strings(documents.iter().map(|d| d.path.as_str()))?;
    docs.strings(documents.iter().map(|d| d.title.as_str()))?;
    let metadata: Vec<String> = documents
        .iter()
        .map(|d| {
            d.metadata
                .iter()
                .map(|(key, value)| format!("{}\u{1f}{}\u{1e}", clean(key), clean(value)))
                .collect()
        })
        .collect();
    docs.strings(metadata.iter().map(String::as_str))?;
    for document in documents {
        docs.bytes.extend_from_slice(&document.content_hash);
    }
    let mut first_chunk = 0;
    docs.count(first_chunk)?;
    for document in documents {
        first_chunk += document.chunks.len();
        docs.count(first_chunk)?;
    }

    let mut chunk_section = Writer::default();
    chunk_section.count(chunks.len())?;
    chunk_section.strings(chunks.iter().map(|(_, chunk)| chunk.title.as_str()))?;
    chunk_section.strings(chunks.iter().map(|(_, chunk)| chunk.text.as_str()))?;
    for (d, _) in &chunks {
        chunk_section.count(*d)?;
    }
    for length in &lengths {
        chunk_section.f32(*length);
    }

    let mut term_section = Writer::default();
    term_section.strings(postings.keys().map(String::as_str))?;
    let mut start = 0;
    term_section.count(start)?;
    for list in postings.values() {
        start += list.len();
        term_section.count(start)?;
    }

    let mut posting_section = Writer::default();
    posting_section.count(start)?;
    for list in postings.values() {
        for (chunk, _) in list {
            posting_section.u32(*chunk);
        }
    }
    for list in postings.values() {
        for (_, weight) in list {
            posting_section.f32(*weight);
        }
    }

    let mut sections: Vec<(&[u8; 4], Vec<u8>)> = vec![
        (b"META", meta.bytes),
        (b"DOCS", docs.bytes),
        (b"CHNK", chunk_section.bytes),
        (b"TERM", term_section.bytes),
        (b"POST", posting_section.bytes),
    ];
    if let Some(vectors) = &vectors {
        let dimensions = vectors.info.dimensions as usize;
        let mut section = Writer::default();
        for vector in vectors.values.chunks(dimensions.max(1)) {
            for value in unit_length(vector) {
                section.f32(value);
            }
        }
        sections.push((b"VECT", section.bytes));
    }

    let mut out = Writer::default();
    out.bytes.extend_from_slice(MAGIC);
    out.u32(FORMAT_VERSION);
    out.count(sections.len())?;
    let header_length = 16 + sections.len() * 20;
    let mut offset = header_length;
    for (tag, bytes) in &sections {
        // Sections start 8-byte aligned, so that a reader could map them as arrays.
        offset = offset.next_multiple_of(8);
        out.bytes.extend_from_slice(*tag);
        out.u64(offset as u64);
        out.u64(bytes.len() as u64);
        offset += bytes.len();
    }
    for (_, bytes) in &sections {
        let aligned = out.bytes.len().next_multiple_of(8);
        out.bytes.resize(aligned, 0);
        out.bytes.extend_from_slice(bytes);
    }
    Ok(out.bytes)
}

/// Metadata keys and values may not contain the record separators.
fn clean(text: &str) -> String {
    text.replace(['\u{1e}', '\u{1f}'], " ")
}

/// `vector` scaled to unit length (unchanged if all zero): the form vectors are stored
/// in, so that a dot product is their cosine; search scales queries the same way.
pub fn unit_length(vector: &[f32]) -> Vec<f32> {
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter().map(|v| v / norm).collect()
    } else {
        vector.to_vec()
    }
}
