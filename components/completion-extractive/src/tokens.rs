//! Token accounting with the o200k_base vocabulary of current OpenAI models,
//! so usage and `max-tokens` mean what they would for a real model.

use chatgate_tokenizer::Encoding;

/// The vocabulary the counts are in.
pub const ENCODING: Encoding = Encoding::O200kBase;

pub fn count(text: &str) -> u32 {
    u32::try_from(ENCODING.count(text)).unwrap_or(u32::MAX)
}

/// A chat prompt's tokens, message framing included, as OpenAI bills them.
pub fn count_prompt<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u32 {
    u32::try_from(ENCODING.count_chat(messages)).unwrap_or(u32::MAX)
}

/// The longest run of whole words of `text` within `max` tokens, or `None` if
/// all of `text` is.
pub fn truncate(text: &str, max: u32) -> Option<&str> {
    if count(text) <= max {
        return None;
    }
    let mut end = 0;
    for piece in stream_pieces(text) {
        let longer = end + piece.len();
        if count(&text[..longer]) > max {
            break;
        }
        end = longer;
    }
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
    fn counts_are_o200k_tokens() {
        // tiktoken: "hello world" -> [24912, 2375]; "[doc1]" -> "[", "doc", "1", "]".
        assert_eq!(count("hello world"), 2);
        assert_eq!(count("[doc1]"), 4);
        assert_eq!(count(""), 0);
        assert_eq!(count_prompt([("user", "hello world")]), 3 + 1 + 2 + 3);
    }

    #[test]
    fn truncation_keeps_whole_words_within_the_limit() {
        assert_eq!(truncate("one two three", 2), Some("one two"));
        assert_eq!(truncate("one two", 2), None);
        assert_eq!(truncate("one two", 0), Some(""));
        let cut = truncate("The firewall blocks SQL injection [doc1].", 5).unwrap();
        assert!(count(cut) <= 5 && cut.len() > 10, "{cut:?}");
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
