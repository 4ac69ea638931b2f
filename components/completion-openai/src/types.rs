//! Plain-Rust mirrors of the `chatgate:completion/completion` types, so that the domain logic
//! can be tested natively; the wasm adapter converts them to and from the WIT bindings.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_openai(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// OpenAI's `response_format` object as JSON text.
    pub response_format: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
}

impl FinishReason {
    /// Tool calls and reasons invented by other servers still ended the text normally,
    /// so anything unknown counts as `stop`.
    pub fn from_openai(reason: &str) -> FinishReason {
        match reason {
            "length" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    pub model: String,
    pub content: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StreamEnd {
    pub model: String,
    pub finish_reason: FinishReason,
    pub usage: Option<Usage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionError {
    RateLimited {
        retry_after_seconds: u32,
        message: String,
    },
    UpstreamUnavailable(String),
    Timeout(String),
    InvalidRequest(String),
    /// An invalid request whose fault lies in one named parameter (`response_format`, ...).
    InvalidParameter {
        param: String,
        message: String,
    },
    Unauthorized(String),
    ContentFiltered(String),
    Internal(String),
}

impl CompletionError {
    pub fn message(&self) -> &str {
        match self {
            CompletionError::RateLimited { message, .. }
            | CompletionError::UpstreamUnavailable(message)
            | CompletionError::Timeout(message)
            | CompletionError::InvalidRequest(message)
            | CompletionError::InvalidParameter { message, .. }
            | CompletionError::Unauthorized(message)
            | CompletionError::ContentFiltered(message)
            | CompletionError::Internal(message) => message,
        }
    }
}
