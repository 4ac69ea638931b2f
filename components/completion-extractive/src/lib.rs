//! `chatgate:completion/completion` without a language model: the offline default.
//!
//! The answer is extractive. It quotes the sentences of the grounded prompt's sources
//! that share the most terms with the question and cites each with its `[docN]` marker,
//! or says that nothing was found. It never calls the network and never invents text.

pub mod extract;
pub mod prompt;
pub mod sentences;
pub mod tokens;

/// The model name reported in every answer. There is only one "model", so a requested
/// `options.model` (an Azure deployment name, say) is ignored rather than rejected:
/// `chat` can pass the same options to whichever completion component is plugged in.
pub const MODEL: &str = "chatgate-extractive";

/// The whole answer when the sources hold nothing relevant to the question.
pub const NOT_FOUND_ANSWER: &str = "I could not find anything about that in the indexed documents.";

pub use chatgate_rag::completion::{
    ChatCompletion, CompletionError, FinishReason, Message, Options, Role, StreamEnd, Usage,
};

/// Answers the last user message from the sources in the first system message. Of the
/// options, `model` is ignored (see [`MODEL`]) and so are the sampling ones (`top_p`,
/// `seed`) and `user`: extraction is deterministic. Out-of-range values are still
/// refused, as a real model would refuse them. Every failure is `invalid-request`.
pub fn complete(
    messages: &[Message],
    options: &Options,
) -> Result<ChatCompletion, CompletionError> {
    options.validate()?;
    validate_response_format(options)?;
    let question = messages
        .iter()
        .rev()
        .find(|message| message.role == Role::User)
        .ok_or_else(|| {
            CompletionError::invalid_parameter("messages", "the messages contain no user message")
        })?;
    if question.content.trim().is_empty() {
        return Err(CompletionError::invalid_parameter(
            "messages",
            "the last user message is empty",
        ));
    }
    let sources = messages
        .iter()
        .find(|message| message.role == Role::System)
        .map(|system| prompt::parse_sources(&system.content))
        .unwrap_or_default();
    let answer = extract::extract_answer(&sources, &question.content)
        .unwrap_or_else(|| NOT_FOUND_ANSWER.to_string());

    let (content, finish_reason) = apply_limits(&answer, options);
    let prompt_tokens = tokens::count_prompt(
        messages
            .iter()
            .map(|message| (message.role.as_openai(), message.content.as_str())),
    );
    Ok(ChatCompletion {
        model: MODEL.to_string(),
        usage: Usage {
            prompt_tokens,
            completion_tokens: tokens::count(&content),
        },
        content,
        finish_reason,
    })
}

/// Extracted sentences are prose, so only `{"type": "text"}` can be honoured.
fn validate_response_format(options: &Options) -> Result<(), CompletionError> {
    if let Some(format) = &options.response_format {
        let kind = serde_json::from_str::<serde_json::Value>(format)
            .ok()
            .and_then(|format| format.get("type")?.as_str().map(str::to_string));
        if kind.as_deref() != Some("text") {
            return Err(CompletionError::invalid_parameter(
                "response_format",
                format!(
                    "response_format {} is not supported by {MODEL}: it answers with extracted prose only",
                    kind.map_or_else(|| format.clone(), |kind| format!("'{kind}'"))
                ),
            ));
        }
    }
    Ok(())
}

/// Cuts `answer` as a generating model would have stopped: before the earliest stop
/// sequence, then after `max_tokens` tokens.
fn apply_limits(answer: &str, options: &Options) -> (String, FinishReason) {
    let cut = options
        .stop
        .iter()
        .filter_map(|stop| answer.find(stop.as_str()))
        .min()
        .unwrap_or(answer.len());
    let answer = &answer[..cut];
    match options
        .max_tokens
        .and_then(|max| tokens::truncate(answer, max))
    {
        Some(truncated) => (truncated.to_string(), FinishReason::Length),
        None => (answer.to_string(), FinishReason::Stop),
    }
}

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;

#[cfg(test)]
mod tests {
    use super::*;

    fn message(role: Role, content: &str) -> Message {
        Message {
            role,
            content: content.into(),
        }
    }

    fn grounded(sources: &str) -> Message {
        message(
            Role::System,
            &format!(
                "You are chatgate, an assistant that answers only from the sources below. Cite every fact with its source marker, like [doc1]. If the sources do not contain the answer, say that you could not find it in the documents.\n\nSources:\n{sources}"
            ),
        )
    }

    const WAF_SOURCES: &str = "[doc1] Application Gateway and Web Application Firewall > What the Web Application Firewall blocks (data/application-gateway-waf.md)\nThe Web Application Firewall (WAF) on Application Gateway inspects each request before it reaches the application and blocks common web attacks. An optional bot protection rule set blocks traffic from known malicious bots.\n\n[doc2] Key Vault (data/key-vault-secrets.md)\nKey Vault stores secrets, keys and certificates.\n";

    fn ask(question: &str, options: &Options) -> ChatCompletion {
        complete(
            &[grounded(WAF_SOURCES), message(Role::User, question)],
            options,
        )
        .unwrap()
    }

    #[test]
    fn answers_from_the_sources_with_citations() {
        let completion = ask(
            "What does the web application firewall block?",
            &Options::default(),
        );
        assert_eq!(
            completion.content,
            "The Web Application Firewall (WAF) on Application Gateway inspects each request before it reaches the application and blocks common web attacks. [doc1] An optional bot protection rule set blocks traffic from known malicious bots. [doc1]"
        );
        assert_eq!(completion.finish_reason, FinishReason::Stop);
        assert_eq!(
            completion.usage.completion_tokens,
            tokens::count(&completion.content)
        );
    }

    #[test]
    fn unanswerable_questions_get_the_not_found_answer() {
        let completion = ask("What is the capital of France?", &Options::default());
        assert_eq!(completion.content, NOT_FOUND_ANSWER);
        assert_eq!(completion.finish_reason, FinishReason::Stop);
    }

    #[test]
    fn no_sources_gets_the_not_found_answer() {
        for system in [grounded("(none)"), message(Role::System, "Be brief.")] {
            let completion = complete(
                &[system, message(Role::User, "What does the firewall block?")],
                &Options::default(),
            )
            .unwrap();
            assert_eq!(completion.content, NOT_FOUND_ANSWER);
        }
        let without_system =
            complete(&[message(Role::User, "firewall")], &Options::default()).unwrap();
        assert_eq!(without_system.content, NOT_FOUND_ANSWER);
    }

    #[test]
    fn the_last_user_message_is_the_question() {
        let completion = complete(
            &[
                grounded(WAF_SOURCES),
                message(Role::User, "What does the firewall block?"),
                message(Role::Assistant, "It blocks attacks."),
                message(Role::User, "Where are certificates stored?"),
            ],
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            completion.content,
            "Key Vault stores secrets, keys and certificates. [doc2]"
        );
    }

    #[test]
    fn max_tokens_truncates_with_finish_reason_length() {
        let options = Options {
            max_tokens: Some(3),
            ..Options::default()
        };
        let completion = ask("What does the web application firewall block?", &options);
        assert_eq!(completion.content, "The Web Application");
        assert_eq!(completion.finish_reason, FinishReason::Length);
        assert_eq!(completion.usage.completion_tokens, 3);
    }

    #[test]
    fn a_generous_max_tokens_changes_nothing() {
        let options = Options {
            max_tokens: Some(1000),
            ..Options::default()
        };
        let completion = ask("What does the web application firewall block?", &options);
        assert_eq!(completion.finish_reason, FinishReason::Stop);
        assert!(completion.content.ends_with("[doc1]"));
    }

    #[test]
    fn the_earliest_stop_sequence_cuts_the_answer() {
        let options = Options {
            stop: vec!["request".into(), " (WAF)".into()],
            ..Options::default()
        };
        let completion = ask("What does the web application firewall block?", &options);
        assert_eq!(completion.content, "The Web Application Firewall");
        assert_eq!(completion.finish_reason, FinishReason::Stop);
    }

    #[test]
    fn prompt_tokens_count_every_message() {
        let completion = complete(
            &[
                message(Role::System, "Be brief."),
                message(Role::User, "Retry-After?"),
            ],
            &Options::default(),
        )
        .unwrap();
        // Two messages of 3 framing + 1 role token each, the texts, and 3 for the reply.
        assert_eq!(
            completion.usage.prompt_tokens,
            2 * (3 + 1) + tokens::count("Be brief.") + tokens::count("Retry-After?") + 3
        );
    }

    #[test]
    fn requests_without_a_question_are_invalid() {
        let no_user = complete(&[grounded(WAF_SOURCES)], &Options::default());
        assert!(
            matches!(no_user, Err(CompletionError::InvalidRequest { param: Some(param), message }) if param == "messages" && message.contains("no user message"))
        );
        assert!(complete(&[], &Options::default()).is_err());
        let blank = complete(&[message(Role::User, "  \n")], &Options::default());
        assert!(
            matches!(blank, Err(CompletionError::InvalidRequest { param: Some(param), message }) if param == "messages" && message.contains("empty"))
        );
    }

    #[test]
    fn out_of_range_options_are_invalid() {
        let user = [message(Role::User, "firewall")];
        for options in [
            Options {
                temperature: Some(2.5),
                ..Options::default()
            },
            Options {
                temperature: Some(f32::NAN),
                ..Options::default()
            },
            Options {
                max_tokens: Some(0),
                ..Options::default()
            },
            Options {
                stop: vec!["a".into(); 5],
                ..Options::default()
            },
            Options {
                stop: vec![String::new()],
                ..Options::default()
            },
        ] {
            assert!(complete(&user, &options).is_err(), "{options:?} accepted");
        }
        let valid = Options {
            temperature: Some(0.0),
            max_tokens: Some(1),
            stop: vec!["x".into(); 4],
            response_format: Some(r#"{"type":"text"}"#.into()),
            ..Options::default()
        };
        assert!(complete(&user, &valid).is_ok());
    }

    #[test]
    fn structured_output_cannot_be_honoured() {
        let user = [message(Role::User, "firewall")];
        for format in [
            r#"{"type":"json_object"}"#,
            r#"{"type":"json_schema","json_schema":{"name":"a","schema":{}}}"#,
            "not json",
        ] {
            let options = Options {
                response_format: Some(format.into()),
                ..Options::default()
            };
            let Err(CompletionError::InvalidRequest { message, param }) = complete(&user, &options)
            else {
                panic!("{format} accepted");
            };
            assert_eq!(param.as_deref(), Some("response_format"));
            assert!(message.contains("not supported"), "{message}");
        }
    }

    #[test]
    fn streamed_pieces_rebuild_the_answer() {
        let completion = ask(
            "What does the web application firewall block?",
            &Options::default(),
        );
        let pieces = tokens::stream_pieces(&completion.content);
        assert!(pieces.len() > 10);
        assert_eq!(pieces.concat(), completion.content);
    }
}
