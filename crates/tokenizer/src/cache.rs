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

/// Remembered token counts of one encoding's texts.
#[derive(Debug, Default)]
pub struct CountCache {
    /// A `BTreeMap`: the texts a prompt is cut into differ early (`[docN] title`), so a
    /// look-up compares a few bytes per key, where hashing would read the whole text.
    by_text: BTreeMap<String, usize>,
    bytes: usize,
}

impl CountCache {
    /// An empty cache (`const`, for a `static`).
    pub const fn new() -> Self {
        CountCache {
            by_text: BTreeMap::new(),
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
            self.by_text.insert(text.to_owned(), tokens);
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
