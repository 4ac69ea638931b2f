//! Fitting the prompt into the operator's token budget.
//!
//! The model sees the grounded system prompt (with its sources) and the
//! client's conversation. When that is too long, the oldest history goes
//! first, then the lowest-ranked sources; the client's system messages and the
//! latest user turn are never cut. When even those do not fit, the request is
//! refused as OpenAI refuses an over-long prompt.

use crate::domain::{ChatMessage, Passage, Role};
use crate::error::ApiError;
use crate::prompt;

/// Counts the tokens one message costs in a chat prompt, framing included.
pub trait TokenCounter {
    fn message_tokens(&self, role: Role, content: &str) -> usize;
    /// Tokens every prompt pays once, for the start of the reply.
    fn reply_priming_tokens(&self) -> usize;
    /// Tokens of the grounded system prompt carrying `passages`, framing included.
    fn sources_tokens(&self, passages: &[Passage]) -> usize {
        self.message_tokens(Role::System, &prompt::grounded_system_prompt(passages))
    }
}

/// The prompt to send, and what was left out to make it fit.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedPrompt {
    pub conversation: Vec<ChatMessage>,
    /// The sources the prompt carries, in `[docN]` order.
    pub passages: Vec<Passage>,
    pub prompt_tokens: usize,
    pub dropped_messages: usize,
    pub dropped_passages: usize,
}

/// How the conversation is grounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounding {
    /// With a system prompt carrying the sources.
    Sources,
    /// The client's conversation as is.
    None,
}

/// Builds the prompt within `max_prompt_tokens`.
///
/// `passages` must be non-empty when grounding on sources: the caller answers
/// "nothing relevant" itself rather than prompting without sources.
pub fn fit(
    mut passages: Vec<Passage>,
    client_messages: &[ChatMessage],
    grounding: Grounding,
    max_prompt_tokens: usize,
    counter: &impl TokenCounter,
) -> Result<FittedPrompt, ApiError> {
    let message_tokens: Vec<usize> = client_messages
        .iter()
        .map(|message| counter.message_tokens(message.role, &message.content))
        .collect();
    let droppable = droppable_history(client_messages);
    let grounding_tokens = |passages: &[Passage]| match grounding {
        Grounding::Sources => counter.sources_tokens(passages),
        Grounding::None => 0,
    };

    let mut kept = vec![true; client_messages.len()];
    let mut history_tokens: usize = message_tokens.iter().sum();
    let mut sources_tokens = grounding_tokens(&passages);
    let total = |history: usize, sources: usize| counter.reply_priming_tokens() + history + sources;

    let mut dropped_messages = 0;
    for &index in &droppable {
        if total(history_tokens, sources_tokens) <= max_prompt_tokens {
            break;
        }
        kept[index] = false;
        history_tokens -= message_tokens[index];
        dropped_messages += 1;
    }

    let mut dropped_passages = 0;
    while total(history_tokens, sources_tokens) > max_prompt_tokens && passages.len() > 1 {
        passages.pop();
        dropped_passages += 1;
        sources_tokens = grounding_tokens(&passages);
    }

    let prompt_tokens = total(history_tokens, sources_tokens);
    if prompt_tokens > max_prompt_tokens {
        return Err(ApiError::invalid(
            "messages",
            "context_length_exceeded",
            format!(
                "The system messages, the latest user message and the best source need {prompt_tokens} tokens; this gateway's prompt budget is {max_prompt_tokens} tokens. Shorten them."
            ),
        ));
    }

    let client_kept: Vec<ChatMessage> = client_messages
        .iter()
        .zip(&kept)
        .filter(|(_, kept)| **kept)
        .map(|(message, _)| message.clone())
        .collect();
    let conversation = match grounding {
        Grounding::Sources => prompt::grounded_conversation(&passages, &client_kept),
        Grounding::None => client_kept,
    };
    Ok(FittedPrompt {
        conversation,
        passages,
        prompt_tokens,
        dropped_messages,
        dropped_passages,
    })
}

/// Indices of the messages that may be dropped, oldest first: every user or
/// assistant message before the latest user message.
fn droppable_history(messages: &[ChatMessage]) -> Vec<usize> {
    let latest_user = messages
        .iter()
        .rposition(|message| message.role == Role::User)
        .unwrap_or(0);
    (0..latest_user)
        .filter(|&index| messages[index].role != Role::System)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One token per whitespace-separated word, one per message of framing,
    /// none for priming: small numbers that are easy to follow.
    struct Words;

    impl TokenCounter for Words {
        fn message_tokens(&self, _role: Role, content: &str) -> usize {
            1 + content.split_whitespace().count()
        }
        fn reply_priming_tokens(&self) -> usize {
            0
        }
    }

    fn user(text: &str) -> ChatMessage {
        ChatMessage::new(Role::User, text)
    }

    fn assistant(text: &str) -> ChatMessage {
        ChatMessage::new(Role::Assistant, text)
    }

    fn system(text: &str) -> ChatMessage {
        ChatMessage::new(Role::System, text)
    }

    fn passage(n: usize, words: usize) -> Passage {
        Passage::new(&n.to_string(), "T", "s.md", &vec!["w"; words].join(" "))
    }

    fn tokens_of(messages: &[ChatMessage]) -> usize {
        messages
            .iter()
            .map(|m| Words.message_tokens(m.role, &m.content))
            .sum()
    }

    fn history() -> Vec<ChatMessage> {
        vec![
            system("be brief"),
            user("one two three"),
            assistant("four five six"),
            user("seven eight nine"),
            assistant("ten eleven twelve"),
            user("latest question"),
        ]
    }

    #[test]
    fn everything_is_kept_when_it_fits() {
        let messages = history();
        let fitted = fit(
            vec![passage(1, 5)],
            &messages,
            Grounding::Sources,
            10_000,
            &Words,
        )
        .unwrap();
        assert_eq!(fitted.conversation.len(), messages.len() + 1);
        assert_eq!(fitted.conversation[1..], messages[..]);
        assert_eq!((fitted.dropped_messages, fitted.dropped_passages), (0, 0));
        assert_eq!(fitted.prompt_tokens, tokens_of(&fitted.conversation));
    }

    #[test]
    fn oldest_history_goes_first_and_system_and_latest_user_stay() {
        let messages = history();
        let full = tokens_of(&messages);
        // Room for everything but the two oldest turns (4 tokens each).
        let fitted = fit(Vec::new(), &messages, Grounding::None, full - 8, &Words).unwrap();
        assert_eq!(fitted.dropped_messages, 2);
        assert_eq!(
            fitted.conversation,
            vec![
                system("be brief"),
                user("seven eight nine"),
                assistant("ten eleven twelve"),
                user("latest question"),
            ]
        );
        assert_eq!(fitted.prompt_tokens, full - 8);

        // The smallest budget that still works keeps only what may not be cut.
        let floor = tokens_of(&[system("be brief"), user("latest question")]);
        let fitted = fit(Vec::new(), &messages, Grounding::None, floor, &Words).unwrap();
        assert_eq!(fitted.dropped_messages, 4);
        assert_eq!(
            fitted.conversation,
            vec![system("be brief"), user("latest question")]
        );
    }

    #[test]
    fn history_goes_before_sources_and_sources_go_lowest_rank_first() {
        let messages = history();
        let passages = vec![passage(1, 20), passage(2, 20), passage(3, 20)];
        let with_one_source = fit(
            passages[..1].to_vec(),
            &[system("be brief"), user("latest question")],
            Grounding::Sources,
            usize::MAX,
            &Words,
        )
        .unwrap()
        .prompt_tokens;
        let fitted = fit(
            passages,
            &messages,
            Grounding::Sources,
            with_one_source,
            &Words,
        )
        .unwrap();
        assert_eq!((fitted.dropped_messages, fitted.dropped_passages), (4, 2));
        assert_eq!(fitted.passages, vec![passage(1, 20)]);
        assert_eq!(
            fitted.conversation[0].content,
            prompt::grounded_system_prompt(&[passage(1, 20)])
        );
    }

    #[test]
    fn a_prompt_that_cannot_fit_is_refused_like_openai_does() {
        let messages = [system("a long system prompt here"), user("question")];
        let error = fit(Vec::new(), &messages, Grounding::None, 5, &Words).unwrap_err();
        assert_eq!(error.status, 400);
        assert_eq!(error.code, "context_length_exceeded");
        assert!(
            error.message.contains("budget is 5 tokens"),
            "{}",
            error.message
        );

        // The best source is never dropped: without it the answer has no grounding.
        let error = fit(
            vec![passage(1, 50)],
            &[user("question")],
            Grounding::Sources,
            20,
            &Words,
        )
        .unwrap_err();
        assert_eq!(error.code, "context_length_exceeded");
    }

    #[test]
    fn messages_after_the_latest_user_turn_are_kept() {
        // An assistant prefill after the question is part of the latest turn.
        let messages = [user("old"), user("new question"), assistant("Answer:")];
        let budget = tokens_of(&messages[1..]);
        let fitted = fit(Vec::new(), &messages, Grounding::None, budget, &Words).unwrap();
        assert_eq!(fitted.conversation, messages[1..].to_vec());
    }
}
