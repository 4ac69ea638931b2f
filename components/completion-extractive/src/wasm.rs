spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "completion-provider",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use exports::chatgate::completion::completion::{
    ChatCompletion, CompletionError, Delta, FinishReason, Guest, Message, Options, Refusal, Role,
    StreamEnd, StreamStart, Usage,
};
use spin_sdk::wit_bindgen::{FutureReader, StreamReader};

struct Extractive;

fn answer(messages: Vec<Message>, options: Options) -> Result<super::Completion, CompletionError> {
    let messages: Vec<super::Message> = messages
        .into_iter()
        .map(|message| super::Message {
            role: match message.role {
                Role::System => super::Role::System,
                Role::User => super::Role::User,
                Role::Assistant => super::Role::Assistant,
            },
            content: message.content,
        })
        .collect();
    // `options.model` is deliberately unused: see `super::MODEL`.
    // Sampling options (`top-p`, `seed`) and `user` change nothing in a
    // deterministic extraction, so they are accepted and unused.
    let options = super::Options {
        temperature: options.temperature,
        max_tokens: options.max_tokens,
        stop: options.stop,
        response_format: options.response_format,
    };
    super::complete(&messages, &options).map_err(|refused| {
        CompletionError::InvalidRequest(Refusal {
            message: refused.message,
            param: Some(refused.param.to_string()),
        })
    })
}

fn finish_reason(reason: super::FinishReason) -> FinishReason {
    match reason {
        super::FinishReason::Stop => FinishReason::Stop,
        super::FinishReason::Length => FinishReason::Length,
    }
}

fn usage(completion: &super::Completion) -> Usage {
    Usage {
        prompt_tokens: completion.prompt_tokens,
        completion_tokens: completion.completion_tokens,
    }
}

impl Guest for Extractive {
    async fn complete(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<ChatCompletion, CompletionError> {
        let completion = answer(messages, options)?;
        Ok(ChatCompletion {
            model: super::MODEL.to_string(),
            finish_reason: finish_reason(completion.finish_reason),
            usage: usage(&completion),
            message: Message {
                role: Role::Assistant,
                content: completion.content,
            },
        })
    }

    async fn complete_stream(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<
        (
            StreamStart,
            StreamReader<Delta>,
            FutureReader<Result<StreamEnd, CompletionError>>,
        ),
        CompletionError,
    > {
        // Invalid requests fail the call itself, before any stream exists.
        let completion = answer(messages, options)?;
        let (mut deltas_tx, deltas_rx) = wit_stream::new::<Delta>();
        let (end_tx, end_rx) = wit_future::new::<Result<StreamEnd, CompletionError>>(|| {
            Err(CompletionError::Internal(
                "the answer stream ended without a result".into(),
            ))
        });
        // The readers go back to the caller first; this task then feeds them within
        // the same component-model task, after the call has returned.
        spin_sdk::wit_bindgen::spawn(async move {
            let deltas: Vec<Delta> = super::tokens::stream_pieces(&completion.content)
                .into_iter()
                .map(|piece| Delta {
                    content: piece.to_string(),
                })
                .collect();
            // Anything unsent means the caller hung up; it still gets the outcome.
            let _unsent = deltas_tx.write_all(deltas).await;
            // Close the stream before resolving the future, as the interface promises.
            drop(deltas_tx);
            let end = StreamEnd {
                model: super::MODEL.to_string(),
                finish_reason: finish_reason(completion.finish_reason),
                usage: Some(usage(&completion)),
            };
            // Fails only if the caller dropped the future, which then wants no answer.
            let _ = end_tx.write(Ok(end)).await;
        });
        let start = StreamStart {
            model: super::MODEL.to_string(),
        };
        Ok((start, deltas_rx, end_rx))
    }
}

export!(Extractive);
