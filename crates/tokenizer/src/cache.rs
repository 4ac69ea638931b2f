//! Token counts of texts already counted, for a component that counts the same texts
//! request after request (a corpus's passages in a grounded prompt): a look-up instead of
//! BPE. Bounded: past [`MAX_COUNTED_PARTS`] texts or [`MAX_COUNTED_BYTES`] bytes, all are
//! forgotten at once, so the memory held stays small whatever the requests send.

use crate::Encoding;
use std::collections::BTreeMap;

/// At most this many texts are remembered.
pub const MAX_COUNTED_PARTS: usize = 512;
/// At most this many bytes of texts are remembered; a longer text is counted, not kept.
pub const MAX_COUNTED_BYTES: usize = 1 << 20;

/// A text's length and its first and last eight bytes ([`edges`]).
type Edges = (usize, u64, u64);

/// A map from long texts that come back (a corpus's passages, their titles) to what was
/// made of them. A look-up that hits must read the whole text; as a `str` key that is
/// `memcmp`, byte by byte in Wasm's C library, which made most of a look-up's cost. Here
/// texts are found by their length and their first and last eight bytes (three integers
/// compared per step), and the candidates under one key are compared eight bytes at a
/// time.
#[derive(Debug)]
pub struct TextMap<V> {
    by_edges: BTreeMap<Edges, Vec<(Box<str>, V)>>,
    len: usize,
}

impl<V> Default for TextMap<V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<V> TextMap<V> {
    /// An empty map (`const`, for a `static`).
    pub const fn new() -> Self {
        TextMap {
            by_edges: BTreeMap::new(),
            len: 0,
        }
    }

    /// What `text` maps to, if it is here.
    pub fn get(&self, text: &str) -> Option<&V> {
        let texts = self.by_edges.get(&edges(text.as_bytes()))?;
        texts
            .iter()
            .find(|(known, _)| same_bytes(known.as_bytes(), text.as_bytes()))
            .map(|(_, value)| value)
    }

    /// Maps `text` to `value`; the caller has checked that `text` is not here yet.
    pub fn insert_new(&mut self, text: &str, value: V) {
        self.len += 1;
        self.by_edges
            .entry(edges(text.as_bytes()))
            .or_default()
            .push((text.into(), value));
    }

    /// How many texts are here.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no text is here.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets every text.
    pub fn clear(&mut self) {
        self.by_edges.clear();
        self.len = 0;
    }
}

/// Remembered token counts of one encoding's texts.
#[derive(Debug, Default)]
pub struct CountCache {
    by_text: TextMap<usize>,
    bytes: usize,
}

impl CountCache {
    /// An empty cache (`const`, for a `static`).
    pub const fn new() -> Self {
        CountCache {
            by_text: TextMap::new(),
            bytes: 0,
        }
    }

    /// `encoding.count(text)`, remembered. A cache holds the counts of one encoding: the
    /// caller keeps one per encoding it counts in.
    pub fn count(&mut self, encoding: Encoding, text: &str) -> usize {
        if let Some(&tokens) = self.by_text.get(text) {
            return tokens;
        }
        let tokens = encoding.count(text);
        if self.by_text.len() >= MAX_COUNTED_PARTS || self.bytes + text.len() > MAX_COUNTED_BYTES {
            self.by_text.clear();
            self.bytes = 0;
        }
        if text.len() <= MAX_COUNTED_BYTES {
            self.bytes += text.len();
            self.by_text.insert_new(text, tokens);
        }
        tokens
    }

    /// How many texts are remembered.
    pub fn len(&self) -> usize {
        self.by_text.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_text.is_empty()
    }
}

/// A text's length and its first and last eight bytes (zero-padded when shorter).
fn edges(bytes: &[u8]) -> Edges {
    let word = |part: &[u8]| {
        let mut word = [0; 8];
        word[..part.len()].copy_from_slice(part);
        u64::from_le_bytes(word)
    };
    let head = &bytes[..bytes.len().min(8)];
    let tail = &bytes[bytes.len().saturating_sub(8)..];
    (bytes.len(), word(head), word(tail))
}

/// `a == b`, eight bytes at a time.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    let word = |chunk: &[u8]| u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
    let (a_words, b_words) = (a.chunks_exact(8), b.chunks_exact(8));
    a.len() == b.len()
        && a_words.remainder() == b_words.remainder()
        && a_words.zip(b_words).all(|(x, y)| word(x) == word(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_count_is_the_encodings_count() {
        let mut cache = CountCache::new();
        let text = "[doc1] Title\nSome passage text, with punctuation.\n";
        for _ in 0..3 {
            assert_eq!(
                cache.count(Encoding::O200kBase, text),
                Encoding::O200kBase.count(text)
            );
        }
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn texts_alike_at_both_ends_keep_their_own_counts() {
        let mut cache = CountCache::new();
        let texts = [
            "[doc1] Title\nalpha beta gamma delta.\n",
            "[doc1] Title\nalpha.beta.gamma delta.\n",
            "[doc1] Title\nalphaXbetaYgamma delta.\n",
        ];
        assert!(
            texts
                .iter()
                .all(|t| edges(t.as_bytes()) == edges(texts[0].as_bytes()))
        );
        for _ in 0..2 {
            for text in texts {
                assert_eq!(
                    cache.count(Encoding::O200kBase, text),
                    Encoding::O200kBase.count(text),
                    "{text}"
                );
            }
        }
        assert_eq!(cache.len(), 3);
        for (a, b) in [("", ""), ("abc", "abc"), ("abcdefghi", "abcdefghi")] {
            assert!(same_bytes(a.as_bytes(), b.as_bytes()));
        }
        for (a, b) in [
            ("abc", "abd"),
            ("abcdefghi", "abcdefghj"),
            ("abcdefgh", "abcdefgh "),
        ] {
            assert!(!same_bytes(a.as_bytes(), b.as_bytes()), "{a} {b}");
        }
    }

    #[test]
    fn past_the_part_bound_everything_is_forgotten_at_once() {
        let mut cache = CountCache::new();
        for i in 0..MAX_COUNTED_PARTS {
            cache.count(Encoding::O200kBase, &format!("part {i}"));
        }
        assert_eq!(cache.len(), MAX_COUNTED_PARTS);
        let tokens = cache.count(Encoding::O200kBase, "one more");
        assert_eq!(tokens, Encoding::O200kBase.count("one more"));
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_text_longer_than_the_byte_bound_is_counted_but_not_kept() {
        let mut cache = CountCache::new();
        let long = "word ".repeat(MAX_COUNTED_BYTES / 5 + 1);
        assert_eq!(
            cache.count(Encoding::Cl100kBase, &long),
            Encoding::Cl100kBase.count(&long)
        );
        assert!(cache.is_empty());
    }
}
