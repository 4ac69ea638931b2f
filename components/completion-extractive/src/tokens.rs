//! Token accounting for an extractive answerer, which has no model tokenizer.
//!
//! A "token" here is a run of letters and digits, or a single other non-space character:
//! `Retry-After: 30s.` is `Retry`, `-`, `After`, `:`, `30s`, `.` = 6 tokens. This is an
//! approximation for usage reporting and `max-tokens`, not a BPE count: real model
//! tokenizers split rare words into several tokens and merge common punctuation.

/// Byte ranges of the tokens of `text`.
fn token_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut word_start: Option<usize> = None;
    for (offset, c) in text.char_indices() {
        if c.is_alphanumeric() {
            word_start.get_or_insert(offset);
            continue;
        }
        if let Some(start) = word_start.take() {
            spans.push((start, offset));
        }
        if !c.is_whitespace() {
            spans.push((offset, offset + c.len_utf8()));
        }
    }
    if let Some(start) = word_start {
        spans.push((start, text.len()));
    }
    spans
}

pub fn count(text: &str) -> u32 {
    u32::try_from(token_spans(text).len()).unwrap_or(u32::MAX)
}

/// The first `max` tokens of `text`, or `None` if it has no more than `max` tokens.
pub fn truncate(text: &str, max: u32) -> Option<&str> {
    let spans = token_spans(text);
    let max = usize::try_from(max).unwrap_or(usize::MAX);
    if spans.len() <= max {
        return None;
    }
    let end = max.checked_sub(1).map_or(0, |last| spans[last].1);
    Some(&text[..end])
}

/// `text` cut into word-sized pieces (each word with the whitespace before it) for
/// streaming; the pieces concatenate back to `text`.
pub fn stream_pieces(text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut start = 0;
    let mut in_word = false;
    for (offset, c) in text.char_indices() {
        if c.is_whitespace() {
            if in_word {
                pieces.push(&text[start..offset]);
                start = offset;
                in_word = false;
            }
        } else {
            in_word = true;
        }
    }
    if start < text.len() {
        pieces.push(&text[start..]);
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_punctuation_are_tokens_whitespace_is_not() {
        assert_eq!(count("Retry-After: 30s."), 6);
        assert_eq!(count("  "), 0);
        assert_eq!(count("[doc1]"), 3);
        assert_eq!(count("Grüße, Welt"), 3);
    }

    #[test]
    fn truncation_keeps_whole_tokens() {
        assert_eq!(truncate("one two three", 2), Some("one two"));
        assert_eq!(truncate("a-b c", 2), Some("a-"));
        assert_eq!(truncate("one two", 2), None);
        assert_eq!(truncate("one two", 0), Some(""));
    }

    #[test]
    fn stream_pieces_are_words_that_rebuild_the_text() {
        let text = "The WAF  blocks\nattacks. [doc1]";
        let pieces = stream_pieces(text);
        assert_eq!(
            pieces,
            vec!["The", " WAF", "  blocks", "\nattacks.", " [doc1]"]
        );
        assert_eq!(pieces.concat(), text);
        assert!(stream_pieces("").is_empty());
    }
}
