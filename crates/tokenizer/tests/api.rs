//! Choosing an encoding for a model, and counting a chat prompt the way the OpenAI cookbook does.

mod support;

use chatgate_tokenizer::{Encoding, REPLY_PRIMING_TOKENS, TOKENS_PER_MESSAGE, TOKENS_PER_NAME};
use tiktoken_rs::ChatCompletionRequestMessage;
use tiktoken_rs::tokenizer::{Tokenizer, get_tokenizer};

const O200K_MODELS: &[&str] = &[
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-4o-2024-08-06",
    "chatgpt-4o-latest",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano-2025-04-14",
    "gpt-4.5-preview",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "gpt-5.1",
    "gpt-5.2-codex",
    "o1",
    "o1-mini",
    "o1-preview-2024-09-12",
    "o3",
    "o3-mini",
    "o3-pro",
    "o4-mini",
    "o4-mini-2025-04-16",
    "gpt-oss-120b",
    "codex-mini-latest",
    "ft:gpt-4o-mini-2024-07-18:my-org::9abc",
    "ft:gpt-4.1:org:custom:id",
];

const CL100K_MODELS: &[&str] = &[
    "gpt-4",
    "gpt-4-0613",
    "gpt-4-32k",
    "gpt-4-turbo",
    "gpt-4-turbo-2024-04-09",
    "gpt-3.5-turbo",
    "gpt-3.5-turbo-0125",
    "gpt-3.5-turbo-16k",
    "gpt-3.5",
    "gpt-35-turbo",
    "gpt-35-turbo-16k",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "text-embedding-ada-002",
    "davinci-002",
    "babbage-002",
    "ft:gpt-3.5-turbo-0613:org::8xyz",
    "ft:gpt-4-0613:org::1",
    "ft:davinci-002:org::2",
];

/// Unknown names, and models whose encoding is neither of ours (p50k, r50k, gpt2).
const OTHER_MODELS: &[&str] = &[
    "",
    "gpt",
    "gpt-3",
    "gpt-6",
    "o2",
    "o4",
    "GPT-4O",
    " gpt-4o",
    "text-davinci-003",
    "code-davinci-002",
    "davinci",
    "gpt2",
    "claude-3-opus",
    "my-chat-deployment",
    "ft:",
    "ft:unknown-model:org::1",
];

#[test]
fn models_map_to_their_encoding() {
    for model in O200K_MODELS {
        assert_eq!(
            Encoding::for_model(model),
            Some(Encoding::O200kBase),
            "{model}"
        );
    }
    for model in CL100K_MODELS {
        assert_eq!(
            Encoding::for_model(model),
            Some(Encoding::Cl100kBase),
            "{model}"
        );
    }
    for model in OTHER_MODELS {
        assert_eq!(Encoding::for_model(model), None, "{model:?}");
    }
}

#[test]
fn model_map_agrees_with_tiktoken() {
    for model in O200K_MODELS.iter().chain(CL100K_MODELS).chain(OTHER_MODELS) {
        let expected = match get_tokenizer(model) {
            // Same vocabulary and split pattern; only special tokens differ.
            Some(Tokenizer::O200kBase | Tokenizer::O200kHarmony) => Some(Encoding::O200kBase),
            Some(Tokenizer::Cl100kBase) => Some(Encoding::Cl100kBase),
            Some(_) | None => None,
        };
        assert_eq!(Encoding::for_model(model), expected, "{model:?}");
    }
}

#[test]
fn encodings_are_found_by_their_tiktoken_name() {
    assert_eq!(Encoding::from_name("o200k_base"), Some(Encoding::O200kBase));
    assert_eq!(
        Encoding::from_name("cl100k_base"),
        Some(Encoding::Cl100kBase)
    );
    for unknown in ["", "o200k_harmony", "p50k_base", "O200K_BASE", "cl100k"] {
        assert_eq!(Encoding::from_name(unknown), None, "{unknown:?}");
    }
    for encoding in Encoding::ALL {
        assert_eq!(Encoding::from_name(encoding.name()), Some(encoding));
    }
}

/// The example prompt of the OpenAI cookbook's "How to count tokens with tiktoken", as
/// `(role, name, content)`.
const COOKBOOK_MESSAGES: &[(&str, Option<&str>, &str)] = &[
    (
        "system",
        None,
        "You are a helpful, pattern-following assistant that translates corporate jargon into plain English.",
    ),
    (
        "system",
        Some("example_user"),
        "New synergies will help drive top-line growth.",
    ),
    (
        "system",
        Some("example_assistant"),
        "Things working well together will increase revenue.",
    ),
    (
        "system",
        Some("example_user"),
        "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
    ),
    (
        "system",
        Some("example_assistant"),
        "Let's talk later when we're less busy about how to do better.",
    ),
    (
        "user",
        None,
        "This late pivot means we don't have time to boil the ocean for the client deliverable.",
    ),
];

fn cookbook_prompt_tokens(encoding: Encoding) -> usize {
    COOKBOOK_MESSAGES
        .iter()
        .map(|&(role, name, content)| match name {
            Some(name) => encoding.count_named_message(role, name, content),
            None => encoding.count_message(role, content),
        })
        .sum::<usize>()
        + REPLY_PRIMING_TOKENS
}

#[test]
fn cookbook_example_prompt_counts_as_the_cookbook_and_the_api_report() {
    // The cookbook prints 129 for gpt-3.5-turbo and gpt-4 and 124 for gpt-4o and gpt-4o-mini,
    // matching the prompt_tokens the API reported.
    assert_eq!(cookbook_prompt_tokens(Encoding::Cl100kBase), 129);
    assert_eq!(cookbook_prompt_tokens(Encoding::O200kBase), 124);
}

#[test]
fn a_chat_is_its_messages_plus_the_reply_priming() {
    assert_eq!(TOKENS_PER_MESSAGE, 3);
    assert_eq!(TOKENS_PER_NAME, 1);
    assert_eq!(REPLY_PRIMING_TOKENS, 3);
    for encoding in Encoding::ALL {
        assert_eq!(encoding.count_chat([]), 3);
        // "user" is a single token in both encodings.
        assert_eq!(encoding.count_message("user", ""), 4);
        assert_eq!(encoding.count_message("user", "Hello, world!"), 4 + 4);
        assert_eq!(encoding.count_chat([("user", "Hello, world!")]), 8 + 3);
        assert_eq!(
            encoding.count_named_message("user", "bob", "hi"),
            3 + 1 + 1 + 1 + 1
        );
        let messages = [
            ("system", "Be brief."),
            ("user", "What is RAG?"),
            ("assistant", "Retrieval."),
        ];
        let by_message: usize = messages
            .iter()
            .map(|(role, content)| encoding.count_message(role, content))
            .sum();
        assert_eq!(
            encoding.count_chat(messages),
            by_message + REPLY_PRIMING_TOKENS
        );
    }
}

#[test]
fn chat_counts_agree_with_tiktoken_rs() {
    let message = |role: &str, content: &str| ChatCompletionRequestMessage {
        role: role.to_string(),
        content: Some(content.to_string()),
        ..Default::default()
    };
    let mut rng = support::Rng::new(0x5eed_3001);
    let roles = ["system", "developer", "user", "assistant", "tool"];
    for (model, encoding) in [
        ("gpt-4o", Encoding::O200kBase),
        ("gpt-4", Encoding::Cl100kBase),
    ] {
        for _ in 0..200 {
            let messages: Vec<(&str, String)> = (0..rng.below(6))
                .map(|_| (roles[rng.below(roles.len())], rng.text(16)))
                .collect();
            let reference: Vec<ChatCompletionRequestMessage> = messages
                .iter()
                .map(|(role, content)| message(role, content))
                .collect();
            let expected = tiktoken_rs::num_tokens_from_messages(model, &reference).unwrap();
            let ours = encoding.count_chat(
                messages
                    .iter()
                    .map(|(role, content)| (*role, content.as_str())),
            );
            assert_eq!(ours, expected, "{model} {messages:?}");
        }
    }
}
