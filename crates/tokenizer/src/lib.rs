//! OpenAI's BPE tokenizers `o200k_base` and `cl100k_base`, producing the same token ids as
//! tiktoken, with nothing to build at run time.
//!
//! A chatgate instance serves a bounded number of requests (128 by default, as Spin), so a
//! tokenizer that decoded its vocabulary, filled a hash map of it or compiled a regex on
//! first use would pay that again and again. Here `build.rs` compiles the vocabularies into
//! compact sorted static tables (searched by binary search) and the split regexes are
//! hand-written scanners: the first call costs only its lookups. What an instance does keep
//! is small and filled as it goes: the token counts of short pieces it has counted (at most
//! 4,096 per encoding), which spare the binary searches for the words that come back.
//!
//! ```
//! use chatgate_tokenizer::{Encoding, REPLY_PRIMING_TOKENS};
//!
//! let encoding = Encoding::for_model("gpt-4o-mini").unwrap();
//! assert_eq!(encoding, Encoding::O200kBase);
//! assert_eq!(encoding.encode("Hello, world!"), [13225, 11, 2375, 0]);
//! assert_eq!(encoding.count("Hello, world!"), 4);
//!
//! // Budget a chat message by message, the way the OpenAI cookbook counts a prompt.
//! let messages = [("system", "Be brief."), ("user", "Hi!")];
//! let per_message: usize = messages
//!     .iter()
//!     .map(|(role, content)| encoding.count_message(role, content))
//!     .sum();
//! assert_eq!(encoding.count_chat(messages), per_message + REPLY_PRIMING_TOKENS);
//! ```
//!
//! Text is encoded as ordinary text (tiktoken's `encode_ordinary`): a special token such as
//! `<|endoftext|>` inside a message counts as the characters it is made of, which is how the
//! OpenAI API treats message content.
//!
//! The vocabularies are OpenAI's (`tiktoken`, MIT licence, Copyright (c) 2022 OpenAI, Shantanu
//! Jain; see `LICENSE-tiktoken`), read at build time from the `tiktoken-rs` crate.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod bpe;
mod cache;
mod piece_cache;
mod pretokenize;
mod vocab;

#[cfg(test)]
#[path = "../tests/support/mod.rs"]
mod test_support;

pub use cache::{CountCache, MAX_COUNTED_BYTES, MAX_COUNTED_PARTS, TextMap};
use vocab::Vocab;

/// Tokens the chat format adds around every message (`<|start|>{role}<|message|>...<|end|>`),
/// per the OpenAI cookbook's `num_tokens_from_messages` for gpt-3.5-turbo and later models.
pub const TOKENS_PER_MESSAGE: usize = 3;

/// Tokens a message's `name` field adds besides the name itself.
pub const TOKENS_PER_NAME: usize = 1;

/// Tokens that prime the reply (`<|start|>assistant<|message|>`), counted once per request.
pub const REPLY_PRIMING_TOKENS: usize = 3;

/// An OpenAI tokenizer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// gpt-4o, gpt-4.1, gpt-4.5, gpt-5 and the o1/o3/o4 reasoning models.
    O200kBase,
    /// gpt-4, gpt-3.5-turbo and the text-embedding-ada-002 / text-embedding-3 models.
    Cl100kBase,
}

/// Model prefixes in tiktoken's order (the first match wins).
const MODEL_PREFIXES: &[(&str, Encoding)] = &[
    ("o1-", Encoding::O200kBase),
    ("o3-", Encoding::O200kBase),
    ("o4-mini-", Encoding::O200kBase),
    ("gpt-5", Encoding::O200kBase),
    ("gpt-4.5-", Encoding::O200kBase),
    ("gpt-4.1-", Encoding::O200kBase),
    ("chatgpt-4o-", Encoding::O200kBase),
    ("gpt-4o-", Encoding::O200kBase),
    ("gpt-4-", Encoding::Cl100kBase),
    ("gpt-3.5-turbo-", Encoding::Cl100kBase),
    ("gpt-35-turbo-", Encoding::Cl100kBase),
    // tiktoken names gpt-oss's encoding o200k_harmony: the same vocabulary and split pattern as
    // o200k_base, with extra special tokens that ordinary text never produces.
    ("gpt-oss-", Encoding::O200kBase),
    ("codex-mini", Encoding::O200kBase),
];

impl Encoding {
    /// Both encodings.
    pub const ALL: [Encoding; 2] = [Encoding::O200kBase, Encoding::Cl100kBase];

    /// The encoding an OpenAI model name uses, following tiktoken's model map: exact names
    /// (`gpt-4o`, `gpt-4`, `text-embedding-3-small`, ...), then prefixes (`gpt-4o-`, `gpt-4-`,
    /// `gpt-5`, `o3-`, ...); fine-tuned names (`ft:gpt-4o-mini:org::id`) use their base model.
    /// Azure deployment names of the `gpt-35-turbo` form are recognised too. Models that use
    /// neither encoding, and unknown names, give `None`.
    pub fn for_model(model: &str) -> Option<Encoding> {
        if let Some(fine_tuned) = model.strip_prefix("ft:") {
            let base = fine_tuned.split(':').next().unwrap_or(fine_tuned);
            return Self::for_model_name(base);
        }
        Self::for_model_name(model)
    }

    fn for_model_name(model: &str) -> Option<Encoding> {
        match model {
            "o1" | "o3" | "o4-mini" | "gpt-5" | "gpt-4.1" | "gpt-4o" => Some(Encoding::O200kBase),
            "gpt-4"
            | "gpt-3.5-turbo"
            | "gpt-3.5"
            | "gpt-35-turbo"
            | "davinci-002"
            | "babbage-002"
            | "text-embedding-ada-002"
            | "text-embedding-3-small"
            | "text-embedding-3-large" => Some(Encoding::Cl100kBase),
            _ => MODEL_PREFIXES
                .iter()
                .find(|(prefix, _)| model.starts_with(prefix))
                .map(|&(_, encoding)| encoding),
        }
    }

    /// The encoding called `name` by tiktoken (`"o200k_base"` or `"cl100k_base"`).
    pub fn from_name(name: &str) -> Option<Encoding> {
        Self::ALL
            .into_iter()
            .find(|encoding| encoding.name() == name)
    }

    /// tiktoken's name for this encoding.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// The token ids of `text`.
    pub fn encode(self, text: &str) -> Vec<u32> {
        let vocab = self.vocab();
        let mut scratch = bpe::Scratch::default();
        let mut tokens = Vec::with_capacity(text.len() / 4 + 1);
        for piece in pretokenize::pieces(text, self.piece_end()) {
            bpe::encode_piece(vocab, piece.as_bytes(), &mut scratch, &mut tokens);
        }
        tokens
    }

    /// How many tokens `text` encodes to (`encode(text).len()`, without building the ids).
    pub fn count(self, text: &str) -> usize {
        let vocab = self.vocab();
        let mut scratch = bpe::Scratch::default();
        pretokenize::pieces(text, self.piece_end())
            .map(|piece| {
                let piece = piece.as_bytes();
                piece_cache::count(self.index(), piece, || {
                    bpe::count_piece(vocab, piece, &mut scratch)
                })
            })
            .sum()
    }

    /// Tokens one chat message takes in a prompt: its framing, its role and its content.
    pub fn count_message(self, role: &str, content: &str) -> usize {
        TOKENS_PER_MESSAGE + self.count(role) + self.count(content)
    }

    /// [`count_message`](Self::count_message) for a message that also carries a `name`.
    pub fn count_named_message(self, role: &str, name: &str, content: &str) -> usize {
        self.count_message(role, content) + self.count(name) + TOKENS_PER_NAME
    }

    /// Tokens a chat prompt made of `(role, content)` messages takes, including the reply
    /// priming: the OpenAI cookbook's `num_tokens_from_messages` for gpt-4 and later models.
    pub fn count_chat<'a>(self, messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> usize {
        messages
            .into_iter()
            .map(|(role, content)| self.count_message(role, content))
            .sum::<usize>()
            + REPLY_PRIMING_TOKENS
    }

    /// This encoding's place in [`Self::ALL`].
    fn index(self) -> usize {
        match self {
            Encoding::O200kBase => 0,
            Encoding::Cl100kBase => 1,
        }
    }

    fn vocab(self) -> &'static Vocab {
        match self {
            Encoding::O200kBase => &vocab::O200K_BASE,
            Encoding::Cl100kBase => &vocab::CL100K_BASE,
        }
    }

    fn piece_end(self) -> fn(&str, usize) -> usize {
        match self {
            Encoding::O200kBase => pretokenize::o200k_piece_end,
            Encoding::Cl100kBase => pretokenize::cl100k_piece_end,
        }
    }

    /// Bytes of static data this encoding's vocabulary adds to a binary that uses it (the
    /// Unicode class table, shared by both encodings, is [`UNICODE_TABLE_BYTES`]).
    pub fn vocabulary_bytes(self) -> usize {
        match self {
            Encoding::O200kBase => vocab::O200K_BASE_STATIC_BYTES,
            Encoding::Cl100kBase => vocab::CL100K_BASE_STATIC_BYTES,
        }
    }
}

/// Bytes of static data the Unicode class table of the scanners adds to a binary.
pub const UNICODE_TABLE_BYTES: usize = pretokenize::CLASS_TABLE_STATIC_BYTES;
