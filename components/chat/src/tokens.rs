//! Prompt token counts with the OpenAI BPE vocabulary of the model family.

use chatgate_tokenizer::Encoding;

use crate::budget::TokenCounter;
use crate::domain::Role;

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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::TOKENIZERS;

    #[test]
    fn every_configurable_tokenizer_exists() {
        for name in TOKENIZERS {
            assert_eq!(Encoding::from_name(name).map(Encoding::name), Some(name));
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
