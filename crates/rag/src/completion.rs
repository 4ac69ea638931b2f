//! `chatgate:completion/completion` (`wit/deps/chatgate-completion-0.3.0`) in plain Rust.

/// Most stop sequences a request may carry, as in the OpenAI API.
pub const MAX_STOP_SEQUENCES: usize = 4;
/// The temperature range of the OpenAI API.
pub const MAX_TEMPERATURE: f32 = 2.0;

/// Who wrote a message (`role`). OpenAI's `developer` role arrives here as `System`:
/// `chat` maps it when it parses the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Instructions to the model, including the grounding `chat` adds.
    System,
    /// The person asking.
    User,
    /// An earlier answer of the model, in a multi-turn conversation.
    Assistant,
}

impl Role {
    /// The spelling of the OpenAI API's `role`.
    pub fn as_openai(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of the conversation sent to the model (`message`): text only, since the
/// contract carries no images, audio or tool calls.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub content: String,
}

impl Message {
    /// A message from `role` saying `content`.
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Generation settings passed to the completion provider (`options`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Options {
    /// Model or Azure deployment name; the provider's default when `None`.
    pub model: Option<String>,
    /// Sampling temperature, 0 to [`MAX_TEMPERATURE`]; the provider's default when `None`.
    pub temperature: Option<f32>,
    /// Nucleus sampling, OpenAI's `top_p`.
    pub top_p: Option<f32>,
    /// Most tokens the answer may have (at least 1); the provider's default when `None`.
    pub max_tokens: Option<u32>,
    /// Texts that end the answer where they would appear, at most
    /// [`MAX_STOP_SEQUENCES`], none empty.
    pub stop: Vec<String>,
    /// Best-effort determinism, OpenAI's `seed`.
    pub seed: Option<i64>,
    /// OpenAI's `response_format` object as JSON text; `None` for plain text.
    pub response_format: Option<String>,
    /// A stable end-user id for the provider's abuse monitoring, OpenAI's `user`.
    pub user: Option<String>,
    /// The caller's span of this call (a W3C `traceparent`) when the caller traces it:
    /// the provider reports its own span as its child. Never sent upstream.
    pub traceparent: Option<String>,
}

impl Options {
    /// The ranges of the OpenAI API that `chat` enforces on clients, for a provider
    /// that answers without an upstream to enforce them (`completion-extractive`). A
    /// provider may refuse more (a model it lacks, a `response_format` it cannot honour).
    pub fn validate(&self) -> Result<(), CompletionError> {
        if let Some(temperature) = self.temperature
            && !(0.0..=MAX_TEMPERATURE).contains(&temperature)
        {
            return Err(CompletionError::invalid_parameter(
                "temperature",
                "temperature must be between 0 and 2",
            ));
        }
        if self.max_tokens == Some(0) {
            return Err(CompletionError::invalid_parameter(
                "max_tokens",
                "max-tokens must be at least 1",
            ));
        }
        if self.stop.len() > MAX_STOP_SEQUENCES {
            return Err(CompletionError::invalid_parameter(
                "stop",
                format!("at most {MAX_STOP_SEQUENCES} stop sequences are allowed"),
            ));
        }
        if self.stop.iter().any(String::is_empty) {
            return Err(CompletionError::invalid_parameter(
                "stop",
                "stop sequences must not be empty",
            ));
        }
        Ok(())
    }
}

/// Why an answer ended (`finish-reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model finished, or met a stop sequence.
    Stop,
    /// The answer reached `max_tokens` (or the model's limit) and is cut.
    Length,
    /// The provider's content filter withheld the rest.
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

    /// An OpenAI-compatible server's `finish_reason`. Tool calls and reasons invented
    /// by other servers still ended the text normally, so anything unknown is `Stop`.
    pub fn from_openai(reason: &str) -> FinishReason {
        match reason {
            "length" => FinishReason::Length,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Stop,
        }
    }
}

/// Tokens an answer cost, as the provider counted them (`usage`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Tokens of the messages sent.
    pub prompt_tokens: u32,
    /// Tokens of the answer.
    pub completion_tokens: u32,
}

/// A non-streamed answer (`chat-completion`). The WIT record's `message` is always
/// the assistant's, so only its text is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatCompletion {
    /// The model that actually answered.
    pub model: String,
    /// The assistant's text.
    pub content: String,
    /// Why it ended.
    pub finish_reason: FinishReason,
    /// What it cost.
    pub usage: Usage,
}

/// How a streamed answer began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    /// The model that is answering, as the provider names it.
    pub model: String,
}

/// One increment of a streamed answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The text that follows what the earlier deltas carried.
    pub content: String,
}

/// How a streamed answer ended.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEnd {
    /// The model that answered, as the provider names it.
    pub model: String,
    /// Why the answer ended.
    pub finish_reason: FinishReason,
    /// What it cost, when the provider reported it.
    pub usage: Option<Usage>,
}

/// Why the provider failed (`completion-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CompletionError {
    /// The provider asked us to slow down (`rate-limited(rate-limit)`).
    RateLimited {
        /// How long to wait before asking again.
        retry_after_seconds: u32,
        /// The provider's explanation.
        message: String,
    },
    /// The provider could not be reached or answered with a server error.
    UpstreamUnavailable(String),
    /// The provider did not answer in time.
    Timeout(String),
    /// The request can never succeed as given (`invalid-request(refusal)`); `param`
    /// names the OpenAI request parameter at fault, when one is.
    InvalidRequest {
        /// What is wrong, for the client.
        message: String,
        /// The parameter at fault, as OpenAI names it (`response_format`, `max_tokens`).
        param: Option<String>,
    },
    /// The provider refused the gateway's credentials (not the client's).
    Unauthorized(String),
    /// The provider's content filter rejected the prompt or the answer.
    ContentFiltered(String),
    /// Anything else, including a malformed provider answer.
    Internal(String),
}

impl CompletionError {
    /// An invalid request not pinned on one parameter.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        CompletionError::InvalidRequest {
            message: message.into(),
            param: None,
        }
    }

    /// An invalid request whose fault lies in the OpenAI parameter `param`.
    pub fn invalid_parameter(param: impl Into<String>, message: impl Into<String>) -> Self {
        CompletionError::InvalidRequest {
            message: message.into(),
            param: Some(param.into()),
        }
    }

    /// The variant's name, as telemetry's `error.type` records it (no message: it may
    /// quote the provider).
    pub fn kind(&self) -> &'static str {
        match self {
            CompletionError::RateLimited { .. } => "rate_limited",
            CompletionError::UpstreamUnavailable(_) => "upstream_unavailable",
            CompletionError::Timeout(_) => "timeout",
            CompletionError::InvalidRequest { .. } => "invalid_request",
            CompletionError::Unauthorized(_) => "unauthorized",
            CompletionError::ContentFiltered(_) => "content_filtered",
            CompletionError::Internal(_) => "internal",
        }
    }

    /// The description carried by any variant, for logs and error bodies.
    pub fn message(&self) -> &str {
        match self {
            CompletionError::RateLimited { message, .. }
            | CompletionError::UpstreamUnavailable(message)
            | CompletionError::Timeout(message)
            | CompletionError::InvalidRequest { message, .. }
            | CompletionError::Unauthorized(message)
            | CompletionError::ContentFiltered(message)
            | CompletionError::Internal(message) => message,
        }
    }
}

impl std::fmt::Display for CompletionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for CompletionError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused_param(options: Options) -> Option<String> {
        match options.validate() {
            Err(CompletionError::InvalidRequest { param, .. }) => param,
            Ok(()) => None,
            Err(other) => panic!("{other:?}"),
        }
    }

    #[test]
    fn out_of_range_options_are_refused_naming_the_openai_parameter() {
        let cases = [
            (
                Options {
                    temperature: Some(2.5),
                    ..Options::default()
                },
                "temperature",
            ),
            (
                Options {
                    temperature: Some(f32::NAN),
                    ..Options::default()
                },
                "temperature",
            ),
            (
                Options {
                    max_tokens: Some(0),
                    ..Options::default()
                },
                "max_tokens",
            ),
            (
                Options {
                    stop: vec!["a".into(); 5],
                    ..Options::default()
                },
                "stop",
            ),
            (
                Options {
                    stop: vec![String::new()],
                    ..Options::default()
                },
                "stop",
            ),
        ];
        for (options, param) in cases {
            assert_eq!(refused_param(options), Some(param.to_string()), "{param}");
        }
    }

    #[test]
    fn the_edges_of_the_ranges_are_accepted() {
        let options = Options {
            temperature: Some(2.0),
            max_tokens: Some(1),
            stop: vec!["x".into(); MAX_STOP_SEQUENCES],
            ..Options::default()
        };
        assert_eq!(options.validate(), Ok(()));
    }

    #[test]
    fn finish_reasons_round_trip_through_the_openai_spelling() {
        for reason in [
            FinishReason::Stop,
            FinishReason::Length,
            FinishReason::ContentFilter,
        ] {
            assert_eq!(FinishReason::from_openai(reason.as_openai()), reason);
        }
        assert_eq!(FinishReason::from_openai("tool_calls"), FinishReason::Stop);
    }

    #[test]
    fn every_error_shows_its_message() {
        let error = CompletionError::invalid_parameter("stop", "too many");
        assert_eq!(error.to_string(), "too many");
        assert_eq!(
            CompletionError::invalid_request("bad"),
            CompletionError::InvalidRequest {
                message: "bad".into(),
                param: None
            }
        );
    }
}
