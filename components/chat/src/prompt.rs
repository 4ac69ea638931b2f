//! The grounded system prompt. Its format is a contract with the offline
//! `completion-extractive` component, which parses the sources back out of it;
//! PROMPT.md states it, and the tests below pin it.

use crate::domain::{ChatMessage, Passage, Role};

pub const GROUNDING_INSTRUCTIONS: &str = "You are chatgate, an assistant that answers only from the sources below. Cite every fact with its source marker, like [doc1]. If the sources do not contain the answer, say that you could not find it in the documents.";

/// The answer when retrieval finds nothing to ground on.
pub const NOTHING_RELEVANT: &str =
    "I could not find anything relevant to your question in the documents.";

/// Passages that can ground an answer (those with text), in retrieval order.
/// The prompt and the citations are both built from this list, so `[docN]`
/// in an answer is the N-th citation.
pub fn usable_passages(passages: Vec<Passage>) -> Vec<Passage> {
    passages
        .into_iter()
        .filter(|p| !p.content.trim().is_empty())
        .collect()
}

/// Between [`GROUNDING_INSTRUCTIONS`] and the sources.
pub const SOURCES_HEADING: &str = "\n\nSources:\n";

/// Between two sources: the only blank line after `Sources:`.
pub const SOURCE_SEPARATOR: &str = "\n\n";

/// The system prompt that carries `passages` as numbered sources:
/// [`GROUNDING_INSTRUCTIONS`], [`SOURCES_HEADING`], then the [`source_block`]s joined
/// by [`SOURCE_SEPARATOR`].
pub fn grounded_system_prompt(passages: &[Passage]) -> String {
    let mut prompt = String::from(GROUNDING_INSTRUCTIONS);
    prompt.push_str(SOURCES_HEADING);
    if passages.is_empty() {
        prompt.push_str("(none)");
        return prompt;
    }
    for (index, passage) in passages.iter().enumerate() {
        if index > 0 {
            prompt.push_str(SOURCE_SEPARATOR);
        }
        prompt.push_str(&source_block(index, passage));
    }
    prompt
}

/// The `index`-th (from 0) source of the grounded system prompt.
pub fn source_block(index: usize, passage: &Passage) -> String {
    format!(
        "[doc{}] {} ({})\n{}",
        index + 1,
        single_line(&passage.title).unwrap_or_else(|| "Untitled".to_string()),
        single_line(&passage.source).unwrap_or_else(|| "unknown".to_string()),
        without_blank_lines(&passage.content),
    )
}

/// The conversation sent to the model: the grounded prompt first, then the
/// client's messages (its own system messages included) in their order.
pub fn grounded_conversation(
    passages: &[Passage],
    client_messages: &[ChatMessage],
) -> Vec<ChatMessage> {
    let mut conversation = Vec::with_capacity(client_messages.len() + 1);
    conversation.push(ChatMessage::new(
        Role::System,
        grounded_system_prompt(passages),
    ));
    conversation.extend_from_slice(client_messages);
    conversation
}

/// Whitespace runs (line breaks included) collapsed to one space; `None` if blank.
/// Runs of other characters are copied whole; an ASCII byte is classed without decoding
/// (`split_whitespace` and `join` decoded every character and built a `Vec` of the words,
/// about 45 k instructions per RAG answer in Wasm for five passages' titles and sources).
fn single_line(text: &str) -> Option<String> {
    let mut line = String::with_capacity(text.len());
    let mut word_start = None;
    for (at, c) in text.char_indices() {
        let space = if c.is_ascii() {
            matches!(c, ' ' | '\t'..='\r')
        } else {
            c.is_whitespace()
        };
        match (space, word_start) {
            (true, Some(start)) => {
                if !line.is_empty() {
                    line.push(' ');
                }
                line.push_str(&text[start..at]);
                word_start = None;
            }
            (false, None) => word_start = Some(at),
            _ => {}
        }
    }
    if let Some(start) = word_start {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&text[start..]);
    }
    (!line.is_empty()).then_some(line)
}

/// Keeps a source's text free of blank lines, so that the blank line between
/// sources is the only one after `Sources:` and parsers can split on it.
fn without_blank_lines(text: &str) -> String {
    text.lines()
        .map(str::trim_end)
        .filter(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Passage;

    proptest::proptest! {
        #[test]
        fn single_line_is_split_whitespace_joined(
            text in proptest::string::string_regex("(?s)[ \t\n\x0b\x0c\r\u{85}\u{a0}\u{2028}\u{3000}a-zé日😀.]{0,60}").unwrap()
        ) {
            let expected = text.split_whitespace().collect::<Vec<_>>().join(" ");
            proptest::prop_assert_eq!(single_line(&text), (!expected.is_empty()).then_some(expected));
        }
    }

    #[test]
    fn single_line_collapses_whitespace_as_split_whitespace_does() {
        let texts = [
            "",
            " \t\n ",
            "one",
            "  two  words ",
            "a\x0bb\x0cc\rd\te\nf",
            "no\u{a0}break\u{2003}em\u{3000}ideographic\u{85}next",
            "é  ü\n\n日本 語",
        ];
        for text in texts {
            let expected = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert_eq!(
                single_line(text),
                (!expected.is_empty()).then_some(expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn prompt_lists_sources_in_the_contract_format() {
        let prompt = grounded_system_prompt(&[
            Passage::new("a#0", "Spin", "docs/spin.md", "Spin runs WebAssembly."),
            Passage::new(
                "b#3",
                "Azure",
                "https://learn.microsoft.com/azure",
                "Azure hosts it.",
            ),
        ]);
        assert_eq!(
            prompt,
            "You are chatgate, an assistant that answers only from the sources below. Cite every fact with its source marker, like [doc1]. If the sources do not contain the answer, say that you could not find it in the documents.\n\
             \n\
             Sources:\n\
             [doc1] Spin (docs/spin.md)\n\
             Spin runs WebAssembly.\n\
             \n\
             [doc2] Azure (https://learn.microsoft.com/azure)\n\
             Azure hosts it."
        );
    }

    #[test]
    fn prompt_md_example_holds() {
        let prompt = grounded_system_prompt(&[
            Passage::new(
                "1",
                "Spin",
                "docs/spin.md",
                "Spin runs WebAssembly.\n\nIt is fast.",
            ),
            Passage::new(
                "2",
                "Azure",
                "https://learn.microsoft.com/azure",
                "Azure hosts it.",
            ),
        ]);
        let expected = format!(
            "{GROUNDING_INSTRUCTIONS}\n\nSources:\n[doc1] Spin (docs/spin.md)\nSpin runs WebAssembly.\nIt is fast.\n\n[doc2] Azure (https://learn.microsoft.com/azure)\nAzure hosts it."
        );
        assert_eq!(prompt, expected);
        let example = include_str!("../PROMPT.md")
            .split("## Example")
            .nth(1)
            .and_then(|section| section.split("```\n").nth(1))
            .expect("PROMPT.md has an example block");
        assert_eq!(example.trim_end_matches('\n'), expected);
    }

    #[test]
    fn prompt_without_passages_says_none() {
        let prompt = grounded_system_prompt(&[]);
        assert_eq!(
            prompt,
            format!("{GROUNDING_INSTRUCTIONS}\n\nSources:\n(none)")
        );
    }

    #[test]
    fn source_text_keeps_its_lines_but_loses_blank_ones() {
        let prompt = grounded_system_prompt(&[Passage::new(
            "x",
            "Guide",
            "guide.md",
            "\n# Setup  \n\n\nRun `make`.\n   \nThen test.\n\n",
        )]);
        assert!(
            prompt.ends_with("Sources:\n[doc1] Guide (guide.md)\n# Setup\nRun `make`.\nThen test.")
        );
    }

    #[test]
    fn only_the_blank_lines_between_sources_split_the_sources_section() {
        let passages = vec![
            Passage::new("1", "One", "one.md", "a\n\nb"),
            Passage::new("2", "Two", "two.md", "c\n\n\nd"),
            Passage::new("3", "Three", "three.md", "e"),
        ];
        let prompt = grounded_system_prompt(&passages);
        let sources = prompt.split_once("\nSources:\n").unwrap().1;
        let blocks: Vec<&str> = sources.split("\n\n").collect();
        assert_eq!(
            blocks,
            vec![
                "[doc1] One (one.md)\na\nb",
                "[doc2] Two (two.md)\nc\nd",
                "[doc3] Three (three.md)\ne"
            ]
        );
    }

    #[test]
    fn header_fields_are_single_line_with_fallbacks() {
        let prompt =
            grounded_system_prompt(&[Passage::new("x", " Multi\nline  title ", "  ", "text")]);
        assert!(prompt.contains("\n[doc1] Multi line title (unknown)\ntext"));
        let prompt = grounded_system_prompt(&[Passage::new("x", "", "a.md", "text")]);
        assert!(prompt.contains("\n[doc1] Untitled (a.md)\ntext"));
    }

    #[test]
    fn passages_without_text_are_not_used() {
        let usable = usable_passages(vec![
            Passage::new("1", "Empty", "e.md", " \n "),
            Passage::new("2", "Full", "f.md", "words"),
        ]);
        assert_eq!(
            usable.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(),
            vec!["2"]
        );
    }

    #[test]
    fn conversation_starts_with_the_grounded_prompt_and_keeps_client_order() {
        let client = vec![
            ChatMessage::new(Role::System, "Answer in French."),
            ChatMessage::new(Role::User, "What is Spin?"),
        ];
        let passages = vec![Passage::new("1", "Spin", "spin.md", "Spin runs Wasm.")];
        let conversation = grounded_conversation(&passages, &client);
        assert_eq!(conversation.len(), 3);
        assert_eq!(conversation[0].role, Role::System);
        assert_eq!(conversation[0].content, grounded_system_prompt(&passages));
        assert_eq!(&conversation[1..], &client[..]);
    }
}
