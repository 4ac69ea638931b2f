spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "completion-provider",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use exports::chatgate::completion::completion::{
    ChatCompletion, CompletionError, Delta, Guest, Message, Options, StreamEnd, StreamStart,
};
use spin_sdk::wit_bindgen::{FutureReader, StreamReader};

chatgate_rag::completion_conversions!(exports::chatgate::completion::completion);

struct Extractive;

fn answer(
    messages: Vec<Message>,
    options: Options,
) -> Result<super::ChatCompletion, CompletionError> {
    let messages: Vec<super::Message> = messages.into_iter().map(Into::into).collect();
    Ok(super::complete(&messages, &options.into())?)
}

impl Guest for Extractive {
    async fn complete(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<ChatCompletion, CompletionError> {
        Ok(answer(messages, options)?.into())
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
            let end = super::StreamEnd {
                model: completion.model,
                finish_reason: completion.finish_reason,
                usage: Some(completion.usage),
            };
            // Fails only if the caller dropped the future, which then wants no answer.
            let _ = end_tx.write(Ok(end.into())).await;
        });
        let start = StreamStart {
            model: super::MODEL.to_string(),
        };
        Ok((start, deltas_rx, end_rx))
    }
}

export!(Extractive);
