//! The contract types `chat` works in, from `chatgate-rag` (their one owner), under
//! the names the rest of this crate uses for them: a completion is what `chat` asks
//! for, a failure is a dependency's error as `chat` receives it.

pub use chatgate_rag::completion::{
    ChatCompletion as Completion, CompletionError as CompletionFailure, FinishReason,
    Message as ChatMessage, Options as CompletionOptions, Role, Usage,
};
pub use chatgate_rag::retriever::{Filter, Passage, RetrievalError as RetrievalFailure};
