//! Plain mirrors of the `chatgate:retriever` and `chatgate:completion` WIT types, so that everything but the
//! wasm adapter can be built and tested natively.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// One retrieved passage; `source` is a URL or a corpus-relative path.
#[derive(Debug, Clone, PartialEq)]
pub struct Passage {
    pub id: String,
    pub title: String,
    pub content: String,
    pub source: String,
}

impl Passage {
    /// A passage for tests, with arguments in the order they appear in the prompt.
    #[cfg(test)]
    pub fn new(id: &str, title: &str, source: &str, content: &str) -> Passage {
        Passage {
            id: id.into(),
            title: title.into(),
            content: content.into(),
            source: source.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
    ContentFilter,
}

impl FinishReason {
    /// The spelling OpenAI clients expect in `finish_reason`.
    pub fn as_openai(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ContentFilter => "content_filter",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
}

/// What the completion provider answered for a non-streamed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub model: String,
    pub content: String,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// Why the completion provider failed (mirror of `completion-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionFailure {
    RateLimited {
        retry_after_seconds: u32,
        message: String,
    },
    UpstreamUnavailable(String),
    Timeout(String),
    InvalidRequest {
        message: String,
        param: Option<String>,
    },
    Unauthorized(String),
    ContentFiltered(String),
    Internal(String),
}

/// Why retrieval failed (mirror of `retrieval-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetrievalFailure {
    InvalidQuery(String),
    IndexUnavailable(String),
    Upstream(String),
}

/// Generation settings passed to the completion provider.
#[derive(Debug, Clone, PartialEq)]
pub struct CompletionOptions {
    pub model: Option<String>,
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub seed: Option<i64>,
    /// `response_format` as JSON text; `None` for plain text.
    pub response_format: Option<String>,
    pub user: Option<String>,
}
