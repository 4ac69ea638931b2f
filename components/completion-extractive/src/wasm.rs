spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "completion-provider",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use chatgate_guest_otel::{ChatCall, Tracer, genai};
use exports::chatgate::completion::completion::{
    ChatCompletion, CompletionError, Delta, Guest, Message, Options, StreamEnd, StreamStart,
};
use spin_sdk::wit_bindgen::{FutureReader, StreamReader};
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

chatgate_rag::completion_conversions!(exports::chatgate::completion::completion);

struct Extractive;

/// Its spans and measurements (`wasi:otel`): the GenAI `chat {model}` span of each call,
/// whose provider is the offline model itself.
const TRACER: Tracer = Tracer::new("chatgate-completion-extractive", env!("CARGO_PKG_VERSION"));

fn answer(
    messages: Vec<Message>,
    options: Options,
) -> (
    Result<super::ChatCompletion, super::CompletionError>,
    ChatCall,
) {
    let options: super::Options = options.into();
    let call = ChatCall::start(
        &TRACER,
        options.traceparent.as_deref(),
        &genai::Request {
            provider: super::MODEL,
            model: options.model.as_deref().unwrap_or(super::MODEL),
            temperature: options.temperature,
            top_p: options.top_p,
            max_tokens: options.max_tokens,
        },
    );
    let messages: Vec<super::Message> = messages.into_iter().map(Into::into).collect();
    (super::complete(&messages, &options), call)
}

/// Ends `call` with how the answer ended.
fn answered(call: ChatCall, model: &str, finish_reason: super::FinishReason, usage: super::Usage) {
    call.answered(&genai::Response {
        id: None,
        model,
        finish_reason: finish_reason.as_openai(),
        usage: Some((usage.prompt_tokens, usage.completion_tokens)),
    });
}

impl Guest for Extractive {
    async fn complete(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<ChatCompletion, CompletionError> {
        match answer(messages, options) {
            (Ok(completion), call) => {
                answered(
                    call,
                    &completion.model,
                    completion.finish_reason,
                    completion.usage,
                );
                Ok(completion.into())
            }
            (Err(error), call) => {
                call.failed(error.kind());
                Err(error.into())
            }
        }
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
        let (completion, mut call) = answer(messages, options);
        let completion = match completion {
            Ok(completion) => completion,
            Err(error) => {
                call.failed(error.kind());
                return Err(error.into());
            }
        };
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
            // The whole answer exists already: its first token is ready now.
            call.first_token();
            // Anything unsent means the caller hung up; it still gets the outcome.
            let _unsent = deltas_tx.write_all(deltas).await;
            // Close the stream before resolving the future, as the interface promises.
            drop(deltas_tx);
            answered(
                call,
                &completion.model,
                completion.finish_reason,
                completion.usage,
            );
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
