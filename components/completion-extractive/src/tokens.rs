//! Token accounting with the o200k_base vocabulary of current OpenAI models,
//! so usage and `max-tokens` mean what they would for a real model.

use std::cell::RefCell;

use chatgate_tokenizer::{CountCache, Encoding};

/// The vocabulary the counts are in.
pub const ENCODING: Encoding = Encoding::O200kBase;

pub fn count(text: &str) -> u32 {
    u32::try_from(ENCODING.count(text)).unwrap_or(u32::MAX)
}

/// A chat prompt's tokens, message framing included, as OpenAI bills them.
///
/// Each content is counted part by part, cut after every line break that `[` follows:
/// the pre-tokenizer ends a piece there whatever comes before (no pattern carries a line
/// break on into `[`) and BPE works piece by piece, so the parts add up to the whole
/// content's count. Cut so, the grounded prompt's parts are its instructions and one
/// part per source, and those counts are remembered ([`COUNTS`]): a corpus's passages
/// come back request after request, and counting the whole prompt again was a third of
/// what this component ran per answer.
pub fn count_prompt<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> u32 {
    let tokens = COUNTS.with_borrow_mut(|counts| {
        messages
            .into_iter()
            .map(|(role, content)| {
                chatgate_tokenizer::TOKENS_PER_MESSAGE
                    + counts.count(ENCODING, role)
                    + parts(content)
                        .map(|part| counts.count(ENCODING, part))
                        .sum::<usize>()
            })
            .sum::<usize>()
            + chatgate_tokenizer::REPLY_PRIMING_TOKENS
    });
    u32::try_from(tokens).unwrap_or(u32::MAX)
}

/// `text` cut after each line break that `[` follows; the parts concatenate to `text`.
fn parts(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.find("\n[").map_or(rest.len(), |at| at + 1);
        let (part, after) = rest.split_at(end);
        rest = after;
        Some(part)
    })
}

thread_local! {
    /// Token counts of prompt parts this instance has counted (bounded: [`CountCache`]).
    static COUNTS: RefCell<CountCache> = const { RefCell::new(CountCache::new()) };
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
    fn prompt_parts_add_up_to_the_whole_count() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");
        let mut texts: Vec<String> = std::fs::read_dir(data)
            .unwrap()
            .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
            .collect();
        texts.extend(
            [
                "Sources:\n[doc1] A (a.md)\nx\n\n[doc2] B (b.md)\ny",
                "a\n[b",
                "]\n[",
                "\n\n\n[[[\n[",
                " \n[x\n [y\r\n[z",
                "日本\n[語 😀\n[1]\n[",
                "it's\n['s\n[\n",
                "\n[",
                "[",
                "",
            ]
            .map(str::to_string),
        );
        for text in &texts {
            assert_eq!(parts(text).collect::<String>(), *text);
            let whole = ENCODING.count_chat([("system", text.as_str())]);
            // Twice: counted, then remembered.
            for _ in 0..2 {
                assert_eq!(
                    count_prompt([("system", text.as_str())]) as usize,
                    whole,
                    "{text:?}"
                );
            }
        }
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
