//! Prompt token counts with the OpenAI BPE vocabulary of the model family.

use std::sync::{Mutex, PoisonError};

use chatgate_tokenizer::{CountCache, Encoding};

use crate::budget::TokenCounter;
use crate::domain::{Passage, Role};
use crate::prompt;

pub struct Counter(Encoding);

impl Counter {
    /// The counter for a vocabulary in [`crate::settings::TOKENIZERS`]; any
    /// other name falls back to o200k_base, the vocabulary of current models.
    pub fn named(name: &str) -> Counter {
        Counter(Encoding::from_name(name).unwrap_or(Encoding::O200kBase))
    }
}

impl TokenCounter for Counter {
    fn message_tokens(&self, role: Role, content: &str) -> usize {
        let role = match role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        };
        self.0.count_message(role, content)
    }

    fn reply_priming_tokens(&self) -> usize {
        chatgate_tokenizer::REPLY_PRIMING_TOKENS
    }

    /// The grounded prompt counted part by part: its instructions and heading, then each
    /// source with the separator after it. The pre-tokenizer of both vocabularies ends a
    /// piece at a line break followed by `[` (no pattern carries a line break on into
    /// `[`), which is where every part but the first begins, and BPE works piece by
    /// piece: the parts' counts add up to the whole prompt's (a property test holds
    /// them to it). Counted so, a source's count is remembered ([`COUNTS`]): the
    /// passages of a corpus come back request after request, and counting the sources
    /// was two thirds of what `chat` itself ran for a RAG answer (about 2 M instructions
    /// for five passages).
    fn sources_tokens(&self, passages: &[Passage]) -> usize {
        if passages.is_empty() {
            return self.message_tokens(Role::System, &prompt::grounded_system_prompt(passages));
        }
        let mut counts = COUNTS.lock().unwrap_or_else(PoisonError::into_inner);
        let counts = &mut counts[usize::from(self.0 == Encoding::Cl100kBase)];
        let mut tokens = self.0.count_message("system", "")
            + counts.count(
                self.0,
                &[prompt::GROUNDING_INSTRUCTIONS, prompt::SOURCES_HEADING].concat(),
            );
        for (index, passage) in passages.iter().enumerate() {
            let mut part = prompt::source_block(index, passage);
            if index + 1 < passages.len() {
                part.push_str(prompt::SOURCE_SEPARATOR);
            }
            tokens += counts.count(self.0, &part);
        }
        tokens
    }
}

/// Token counts of prompt parts already counted, by vocabulary (o200k_base, cl100k_base),
/// for the instance's later requests (bounded: [`CountCache`]).
static COUNTS: Mutex<[CountCache; 2]> = Mutex::new([CountCache::new(), CountCache::new()]);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TOKENIZERS;
    use proptest::prelude::*;

    #[test]
    fn every_configurable_tokenizer_exists() {
        for name in TOKENIZERS {
            assert_eq!(Encoding::from_name(name).map(Encoding::name), Some(name));
        }
    }

    fn whole_prompt(counter: &Counter, passages: &[Passage]) -> usize {
        counter.message_tokens(Role::System, &prompt::grounded_system_prompt(passages))
    }

    /// Titles, sources and contents mixing what the pre-tokenizers treat apart: letters
    /// of both cases, digits, punctuation (`/`, `[`, apostrophes), spaces, line breaks,
    /// and characters outside ASCII.
    fn text() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[a-zA-Z0-9 .,:;/'\\[\\]()\n\r\t-é日本語😀]{0,60}").unwrap()
    }

    fn passages() -> impl Strategy<Value = Vec<Passage>> {
        proptest::collection::vec(
            (text(), text(), text())
                .prop_map(|(title, source, content)| Passage::new("id", &title, &source, &content)),
            0..5,
        )
    }

    proptest! {
        #[test]
        fn sources_counted_by_parts_add_up_to_the_whole_prompt(passages in passages()) {
            for name in TOKENIZERS {
                let counter = Counter::named(name);
                let whole = whole_prompt(&counter, &passages);
                // Twice: counted, then remembered.
                prop_assert_eq!(counter.sources_tokens(&passages), whole);
                prop_assert_eq!(counter.sources_tokens(&passages), whole);
            }
        }
    }

    #[test]
    fn sources_of_the_shipped_corpus_add_up() {
        let data = concat!(env!("CARGO_MANIFEST_DIR"), "/../../data");
        for file in std::fs::read_dir(data).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let paragraphs: Vec<&str> = text.split("\n\n").collect();
            for window in paragraphs.chunks(5) {
                let passages: Vec<Passage> = window
                    .iter()
                    .map(|text| Passage::new("id", "Title", "data/doc.md", text))
                    .collect();
                for name in TOKENIZERS {
                    let counter = Counter::named(name);
                    assert_eq!(
                        counter.sources_tokens(&passages),
                        whole_prompt(&counter, &passages),
                        "{}",
                        path.display()
                    );
                }
            }
        }
    }

    #[test]
    fn counts_follow_openais_chat_format() {
        // "hello world" is two tokens in both vocabularies; a message adds 3
        // tokens of framing and its role, here one token.
        for name in TOKENIZERS {
            assert_eq!(
                Counter::named(name).message_tokens(Role::User, "hello world"),
                3 + 1 + 2
            );
        }
    }
}
