//! Token counts of short pieces this thread has counted, per encoding.
//!
//! Words come back: pieces (a word with the space before it, a run of punctuation) repeat
//! within a text and, on a reused instance, request after request (in the gateway bench's
//! RAG answer the cache took `completion-extractive` from 912.6 k to 782.5 k instructions;
//! how often real traffic repeats pieces is not measured here). Looking one up costs a hash of a few bytes; counting it again costs a
//! binary search of the static vocabulary per candidate token (hundreds of instructions
//! in Wasm, and a merge for a piece that is not one token). GPT-2's `encoder.py` and
//! `transformers`' Python BPE tokenizers keep such a word cache (`self.cache`) too.

use std::cell::RefCell;
use std::collections::HashMap;

/// Pieces up to this many bytes are remembered. Most words of prose and code are shorter,
/// and a fixed-size key needs no allocation.
pub(crate) const MAX_PIECE_BYTES: usize = 15;

/// At most this many pieces per encoding; past it, all of that encoding's are forgotten at
/// once, so the memory held stays bounded whatever the requests send: at most 8,192
/// buckets of 21 bytes (a 20-byte entry and its control byte) per encoding, about 170 KiB
/// (computed from `hashbrown`'s layout, not measured).
pub(crate) const MAX_PIECES: usize = 4096;

/// A piece's bytes, zero-padded, then its length.
type Key = [u8; MAX_PIECE_BYTES + 1];

thread_local! {
    /// One table per encoding, indexed by [`crate::Encoding::index`]. `std`'s hasher, keyed
    /// at random per thread, so that no request can choose pieces that collide.
    static COUNTS: RefCell<[HashMap<Key, u32>; 2]> = RefCell::new(Default::default());
}

/// `count(piece)`, remembered for pieces of 2 to [`MAX_PIECE_BYTES`] bytes (a single byte
/// is always one token, and counting it costs nothing).
pub(crate) fn count(encoding: usize, piece: &[u8], count: impl FnOnce() -> usize) -> usize {
    if piece.len() < 2 || piece.len() > MAX_PIECE_BYTES {
        return count();
    }
    let mut key = [0; MAX_PIECE_BYTES + 1];
    key[..piece.len()].copy_from_slice(piece);
    key[MAX_PIECE_BYTES] = piece.len() as u8;
    COUNTS.with_borrow_mut(|tables| {
        let table = &mut tables[encoding];
        if let Some(&tokens) = table.get(&key) {
            return tokens as usize;
        }
        let tokens = count();
        if table.len() >= MAX_PIECES {
            table.clear();
        }
        // A piece of at most 15 bytes is at most 15 tokens.
        table.insert(key, tokens as u32);
        tokens
    })
}

/// How many pieces this thread remembers for an encoding (for tests).
#[cfg(test)]
pub(crate) fn remembered(encoding: usize) -> usize {
    COUNTS.with_borrow(|tables| tables[encoding].len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Encoding;

    #[test]
    fn remembered_counts_are_each_encodings_own() {
        // Words whose token counts differ between the two vocabularies, counted twice in
        // each order: a count remembered for one must never answer for the other.
        let text = " Straßenbahnhaltestelle aufgehoben ßßßß überschüssig deutschsprachige";
        for _ in 0..2 {
            for encoding in [Encoding::Cl100kBase, Encoding::O200kBase] {
                assert_eq!(
                    encoding.count(text),
                    encoding.encode(text).len(),
                    "{encoding:?}"
                );
            }
        }
        assert_ne!(
            Encoding::Cl100kBase.count(text),
            Encoding::O200kBase.count(text),
            "the text should tell the encodings apart"
        );
    }

    #[test]
    fn pieces_are_remembered_up_to_the_bound_then_forgotten_at_once() {
        let encoding = Encoding::O200kBase;
        // Distinct words of letters (digits would be split into groups of three).
        let word = |mut i: usize| {
            let mut word = String::from(" q");
            while i > 0 {
                word.push(char::from(b'a' + (i % 26) as u8));
                i /= 26;
            }
            word
        };
        let words: String = (0..MAX_PIECES + 10).map(word).collect();
        assert_eq!(encoding.count(&words), encoding.encode(&words).len());
        let held = remembered(encoding.index());
        assert!(held > 0 && held <= MAX_PIECES, "{held}");
        assert!(held < 100, "cleared once full, then refilled: {held}");
        // Longer than a key holds: counted, not kept.
        let long = " abcdefghijklmnopqrstuvwxyz";
        let before = remembered(encoding.index());
        assert_eq!(encoding.count(long), encoding.encode(long).len());
        assert_eq!(remembered(encoding.index()), before);
    }
}
