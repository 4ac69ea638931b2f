//! Packs a section's paragraphs into overlapping chunks.
//!
//! Every paragraph is first cut into units no longer than `max_words`: its sentences
//! (a sentence ends at `.`, `!` or `?` followed by whitespace, or before a list item or
//! table row on the next line), and a sentence longer than that is cut between words.
//! A code block is one unit when it fits, else it is cut between lines.
//! Whole paragraphs are then packed into chunks; a paragraph too long for a chunk of its
//! own is packed unit by unit, its first units filling the chunk being packed. Each chunk
//! after the first starts with the last whole units of the previous one, up to
//! `overlap_words` words, but never all of that chunk (it would be redundant).

use std::ops::Range;

use super::ChunkingOptions;
use super::outline::{Block, BlockKind};

/// The texts of the chunks of one section, in reading order; paragraphs are separated by
/// a blank line.
pub(super) fn chunk_section(blocks: &[Block], options: &ChunkingOptions) -> Vec<String> {
    let max_words = options.max_words.max(1);
    let units: Vec<Vec<Unit>> = blocks
        .iter()
        .map(|block| block_units(block, max_words))
        .collect();
    let mut packer = Packer {
        blocks,
        units: &units,
        overlap_words: options.overlap_words,
        segments: Vec::new(),
        content_words: 0,
        chunks: Vec::new(),
    };
    for (index, block_units) in units.iter().enumerate() {
        let words: usize = block_units.iter().map(|unit| unit.words).sum();
        if words == 0 {
            continue;
        }
        if words <= max_words {
            if packer.content_words + words > max_words {
                packer.flush();
            }
            for unit in block_units {
                packer.push(index, unit);
            }
        } else {
            // Too long for any chunk: its first sentences fill the chunk being packed.
            for unit in block_units {
                if packer.content_words + unit.words > max_words {
                    packer.flush();
                }
                packer.push(index, unit);
            }
        }
    }
    packer.flush();
    packer.chunks
}

/// A piece of a block's text that never straddles two chunks.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Unit {
    range: Range<usize>,
    words: usize,
}

/// A contiguous part of one block in a chunk.
#[derive(Debug, Clone)]
struct Segment {
    block: usize,
    range: Range<usize>,
}

struct Packer<'a> {
    blocks: &'a [Block],
    units: &'a [Vec<Unit>],
    overlap_words: usize,
    /// The chunk being filled: the overlap carried from the previous chunk, then new text.
    segments: Vec<Segment>,
    /// Words of new text in `segments` (the overlap is not counted).
    content_words: usize,
    chunks: Vec<String>,
}

impl Packer<'_> {
    fn push(&mut self, block: usize, unit: &Unit) {
        push_segment(&mut self.segments, block, unit.range.clone());
        self.content_words += unit.words;
    }

    /// Emits the chunk being filled, if it has new text, and starts the next one with its
    /// trailing units.
    fn flush(&mut self) {
        if self.content_words == 0 {
            return;
        }
        let text = self
            .segments
            .iter()
            .filter_map(|segment| {
                self.blocks
                    .get(segment.block)?
                    .text
                    .get(segment.range.clone())
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        self.chunks.push(text);

        // The chunk's units in reading order; the overlap is taken from their end, but never
        // all of them, which would make the chunk just emitted a part of the next one.
        let chunk_units: Vec<(usize, &Unit)> = self
            .segments
            .iter()
            .flat_map(|segment| {
                let units = self.units.get(segment.block).map_or(&[][..], Vec::as_slice);
                // A block's units are in order and disjoint: find the segment's by bisection,
                // so long paragraphs cost no more per chunk than short ones.
                let first = units.partition_point(|unit| unit.range.start < segment.range.start);
                let last = units.partition_point(|unit| unit.range.end <= segment.range.end);
                units
                    .get(first..last.max(first))
                    .unwrap_or_default()
                    .iter()
                    .map(|unit| (segment.block, unit))
            })
            .collect();
        let mut overlap: Vec<(usize, Range<usize>)> = Vec::new();
        let mut overlap_words = 0;
        for &(block, unit) in chunk_units.iter().skip(1).rev() {
            if overlap_words + unit.words > self.overlap_words {
                break;
            }
            overlap_words += unit.words;
            overlap.push((block, unit.range.clone()));
        }
        self.segments.clear();
        for (block, range) in overlap.into_iter().rev() {
            push_segment(&mut self.segments, block, range);
        }
        self.content_words = 0;
    }
}

/// Appends `range` of `block`, extending the last segment when it is of the same block so
/// that the text between two units of a paragraph is kept as written.
fn push_segment(segments: &mut Vec<Segment>, block: usize, range: Range<usize>) {
    if let Some(last) = segments.last_mut()
        && last.block == block
        && last.range.end <= range.start
    {
        last.range.end = range.end;
        return;
    }
    segments.push(Segment { block, range });
}

fn block_units(block: &Block, max_words: usize) -> Vec<Unit> {
    let text = block.text.as_str();
    match block.kind {
        BlockKind::Prose => sentence_spans(text)
            .into_iter()
            .flat_map(|sentence| fit(text, sentence, max_words))
            .collect(),
        BlockKind::Code => {
            let words = text.split_whitespace().count();
            if words <= max_words {
                return vec![Unit {
                    range: 0..text.len(),
                    words,
                }];
            }
            let mut units = Vec::new();
            let mut current: Option<Unit> = None;
            for line in line_spans(text) {
                let line_words = count_words(text, &line);
                if line_words == 0 {
                    continue;
                }
                if let Some(unit) = current.as_mut()
                    && unit.words + line_words <= max_words
                {
                    unit.range.end = line.end;
                    unit.words += line_words;
                    continue;
                }
                units.extend(current.take());
                if line_words <= max_words {
                    current = Some(Unit {
                        range: line,
                        words: line_words,
                    });
                } else {
                    units.extend(fit(text, line, max_words));
                }
            }
            units.extend(current);
            units
        }
    }
}

/// `range` of `text` as one unit when it has at most `max_words` words, else cut between
/// words into units of `max_words` words.
fn fit(text: &str, range: Range<usize>, max_words: usize) -> Vec<Unit> {
    let words = word_spans(text, range);
    words
        .chunks(max_words)
        .filter_map(|piece| {
            Some(Unit {
                range: piece.first()?.start..piece.last()?.end,
                words: piece.len(),
            })
        })
        .collect()
}

fn count_words(text: &str, range: &Range<usize>) -> usize {
    text.get(range.clone())
        .map_or(0, |part| part.split_whitespace().count())
}

/// Byte ranges of the whitespace-separated words of `range` of `text`.
fn word_spans(text: &str, range: Range<usize>) -> Vec<Range<usize>> {
    let Some(part) = text.get(range.clone()) else {
        return Vec::new();
    };
    let mut words = Vec::new();
    let mut start = None;
    for (offset, character) in part.char_indices() {
        match (character.is_whitespace(), start) {
            (true, Some(word_start)) => {
                words.push(range.start + word_start..range.start + offset);
                start = None;
            }
            (false, None) => start = Some(offset),
            _ => {}
        }
    }
    if let Some(word_start) = start {
        words.push(range.start + word_start..range.end);
    }
    words
}

/// Byte ranges of the lines of `text`, without their line breaks.
fn line_spans(text: &str) -> Vec<Range<usize>> {
    let mut lines = Vec::new();
    let mut start = 0;
    for (offset, character) in text.char_indices() {
        if character == '\n' {
            lines.push(start..offset);
            start = offset + 1;
        }
    }
    lines.push(start..text.len());
    lines
}

/// Byte ranges of the sentences of `text`, without surrounding whitespace.
fn sentence_spans(text: &str) -> Vec<Range<usize>> {
    let mut sentences = Vec::new();
    let mut start: Option<usize> = None;
    let mut at = 0;
    while let Some(character) = text.get(at..).and_then(|rest| rest.chars().next()) {
        let after = at + character.len_utf8();
        let Some(sentence_start) = start else {
            if !character.is_whitespace() {
                start = Some(at);
            }
            at = after;
            continue;
        };
        let before = text.get(sentence_start..at).unwrap_or_default();
        // `1.` at the start of a sentence numbers a list item; it does not end a sentence.
        let numbers_item = character == '.' && before.bytes().all(|byte| byte.is_ascii_digit());
        let rest = text.get(after..).unwrap_or_default();
        if matches!(character, '.' | '!' | '?') && !numbers_item {
            let closing: usize = rest
                .chars()
                .take_while(|&next| is_closing_mark(next))
                .map(char::len_utf8)
                .sum();
            let end = after + closing;
            let followed_by_space = text
                .get(end..)
                .and_then(|rest| rest.chars().next())
                .is_none_or(char::is_whitespace);
            if followed_by_space {
                sentences.push(sentence_start..end);
                start = None;
                at = end;
                continue;
            }
        } else if character == '\n' && starts_list_item_or_row(rest) {
            sentences.push(sentence_start..sentence_start + before.trim_end().len());
            start = None;
        }
        at = after;
    }
    if let Some(sentence_start) = start {
        sentences.push(sentence_start..text.trim_end().len());
    }
    sentences
}

fn is_closing_mark(character: char) -> bool {
    matches!(
        character,
        '"' | '\'' | ')' | ']' | '}' | '*' | '_' | '`' | '’' | '”' | '»'
    )
}

/// Whether a line starts a Markdown-style list item (`- `, `* `, `+ `, `1. `, `1) `) or
/// table row (`|`): a line break there ends a sentence even without punctuation.
fn starts_list_item_or_row(line: &str) -> bool {
    let line = line.trim_start_matches([' ', '\t']);
    if line.starts_with('|') {
        return true;
    }
    let after_marker = if let Some(rest) = line.strip_prefix(['-', '*', '+']) {
        rest
    } else {
        let digits = line.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        match line[digits..].strip_prefix(['.', ')']) {
            Some(rest) => rest,
            None => return false,
        }
    };
    after_marker.starts_with([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prose(text: &str) -> Block {
        Block {
            text: text.into(),
            kind: BlockKind::Prose,
        }
    }

    fn code(text: &str) -> Block {
        Block {
            text: text.into(),
            kind: BlockKind::Code,
        }
    }

    fn options(max_words: usize, overlap_words: usize) -> ChunkingOptions {
        ChunkingOptions {
            max_words,
            overlap_words,
        }
    }

    fn words(text: &str) -> usize {
        text.split_whitespace().count()
    }

    /// `count` sentences of five words, numbered so every word is unique: `s1a s1b s1c s1d s1e.`
    fn numbered_sentences(first: usize, count: usize) -> String {
        (first..first + count)
            .map(|n| format!("s{n}a s{n}b s{n}c s{n}d s{n}e."))
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn sentences_of(text: &str) -> Vec<&str> {
        sentence_spans(text)
            .into_iter()
            .map(|range| &text[range])
            .collect()
    }

    #[test]
    fn sentences_end_at_terminal_punctuation_followed_by_whitespace() {
        assert_eq!(
            sentences_of("It works. Does it?  Yes!\nVersion 1.2 of file.txt ships (soon.) Done"),
            vec![
                "It works.",
                "Does it?",
                "Yes!",
                "Version 1.2 of file.txt ships (soon.)",
                "Done"
            ]
        );
    }

    #[test]
    fn list_items_and_table_rows_end_sentences_without_punctuation() {
        assert_eq!(
            sentences_of(
                "Steps:\n- build it\n- ship it\n1. first\n2) second\n| a | b |\n| c | d |"
            ),
            vec![
                "Steps:",
                "- build it",
                "- ship it",
                "1. first",
                "2) second",
                "| a | b |",
                "| c | d |"
            ]
        );
        assert_eq!(
            sentences_of("a line\nwrapped -not a list\n2024 was a year"),
            vec!["a line\nwrapped -not a list\n2024 was a year"]
        );
    }

    #[test]
    fn whole_paragraphs_are_packed_together_while_they_fit() {
        let blocks = [
            prose("one two three."),
            prose("four five."),
            prose("six seven eight."),
        ];
        assert_eq!(
            chunk_section(&blocks, &options(5, 0)),
            vec!["one two three.\n\nfour five.", "six seven eight."]
        );
    }

    #[test]
    fn a_paragraph_that_does_not_fit_starts_the_next_chunk_whole() {
        let blocks = [prose("a b c d."), prose("e f g h.")];
        assert_eq!(
            chunk_section(&blocks, &options(6, 0)),
            vec!["a b c d.", "e f g h."]
        );
    }

    #[test]
    fn a_long_paragraph_is_split_at_sentence_ends() {
        let paragraph = numbered_sentences(1, 5); // 25 words
        let chunks = chunk_section(&[prose(&paragraph)], &options(12, 0));
        assert_eq!(
            chunks,
            vec![
                numbered_sentences(1, 2),
                numbered_sentences(3, 2),
                numbered_sentences(5, 1)
            ]
        );
    }

    #[test]
    fn a_sentence_longer_than_a_chunk_is_split_between_words() {
        let sentence = (1..=7)
            .map(|n| format!("w{n}"))
            .collect::<Vec<_>>()
            .join(" ");
        let chunks = chunk_section(&[prose(&sentence)], &options(3, 0));
        assert_eq!(chunks, vec!["w1 w2 w3", "w4 w5 w6", "w7"]);
    }

    #[test]
    fn the_tail_of_a_long_paragraph_shares_a_chunk_with_the_next_paragraph() {
        let blocks = [prose(&numbered_sentences(1, 3)), prose("short one.")];
        let chunks = chunk_section(&blocks, &options(10, 0));
        assert_eq!(
            chunks,
            vec![
                numbered_sentences(1, 2),
                format!("{}\n\nshort one.", numbered_sentences(3, 1))
            ]
        );
    }

    #[test]
    fn each_chunk_after_the_first_repeats_the_last_whole_sentences_of_the_previous() {
        let paragraph = numbered_sentences(1, 8); // 40 words
        let chunks = chunk_section(&[prose(&paragraph)], &options(15, 12));
        assert_eq!(
            chunks,
            vec![
                numbered_sentences(1, 3),
                // Two sentences (10 words) fit in 12 words of overlap; three would not.
                numbered_sentences(2, 5),
                numbered_sentences(5, 4),
            ]
        );
        for pair in chunks.windows(2) {
            let previous: Vec<&str> = pair[0].split_whitespace().collect();
            let next: Vec<&str> = pair[1].split_whitespace().collect();
            let repeated = &previous[previous.len() - 10..];
            assert_eq!(
                &next[..10],
                repeated,
                "the overlap repeats the previous chunk's end"
            );
        }
        for chunk in &chunks {
            assert!(words(chunk) <= 15 + 12);
        }
    }

    #[test]
    fn overlap_spans_paragraphs_and_keeps_their_break() {
        let blocks = [prose("a b c."), prose("d e."), prose("f g h i j.")];
        let chunks = chunk_section(&blocks, &options(5, 5));
        assert_eq!(chunks, vec!["a b c.\n\nd e.", "d e.\n\nf g h i j."]);
    }

    #[test]
    fn overlap_never_repeats_a_whole_chunk() {
        // "a b." alone would fit in the overlap, but the next chunk would then contain it
        // entirely and the first chunk would be redundant.
        let blocks = [prose("a b."), prose("c d e f g.")];
        let chunks = chunk_section(&blocks, &options(5, 4));
        assert_eq!(chunks, vec!["a b.", "c d e f g."]);
    }

    #[test]
    fn a_long_paragraph_starts_in_the_chunk_being_packed() {
        let blocks = [prose("Intro here."), prose(&numbered_sentences(1, 3))];
        let chunks = chunk_section(&blocks, &options(12, 0));
        assert_eq!(
            chunks,
            vec![
                format!("Intro here.\n\n{}", numbered_sentences(1, 2)),
                numbered_sentences(3, 1)
            ]
        );
    }

    #[test]
    fn overlap_takes_only_whole_sentences() {
        let blocks = [prose("one two three four five six."), prose("seven.")];
        let chunks = chunk_section(&blocks, &options(6, 5));
        assert_eq!(chunks, vec!["one two three four five six.", "seven."]);
    }

    #[test]
    fn no_overlap_is_taken_when_disabled() {
        let chunks = chunk_section(&[prose(&numbered_sentences(1, 4))], &options(10, 0));
        assert_eq!(
            chunks,
            vec![numbered_sentences(1, 2), numbered_sentences(3, 2)]
        );
    }

    #[test]
    fn code_blocks_stay_whole_with_their_lines_when_they_fit() {
        let fenced = "```sh\n# a comment\n\ncargo build\n```";
        let blocks = [prose("Build it."), code(fenced)];
        assert_eq!(
            chunk_section(&blocks, &options(20, 0)),
            vec![format!("Build it.\n\n{fenced}")]
        );
    }

    #[test]
    fn code_blocks_longer_than_a_chunk_are_cut_between_lines() {
        let listing = "let a = 1;\nlet b = 2;\n\nlet c = 3;";
        let chunks = chunk_section(&[code(listing)], &options(8, 0));
        assert_eq!(chunks, vec!["let a = 1;\nlet b = 2;", "let c = 3;"]);
    }

    #[test]
    fn chunk_texts_keep_non_ascii_text_intact() {
        let chunks = chunk_section(&[prose("Café déjà vu. Ça marche? Oui.")], &options(5, 3));
        assert_eq!(chunks, vec!["Café déjà vu. Ça marche?", "Ça marche? Oui."]);
    }

    #[test]
    fn a_zero_chunk_size_is_one_word() {
        let chunks = chunk_section(&[prose("a b")], &options(0, 0));
        assert_eq!(chunks, vec!["a", "b"]);
    }

    #[test]
    fn no_blocks_no_chunks() {
        assert!(chunk_section(&[], &ChunkingOptions::default()).is_empty());
    }
}
