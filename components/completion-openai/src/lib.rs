//! `chatgate:rag/completion` backed by an OpenAI-compatible `/v1/chat/completions`
//! API (OpenAI, local model servers) or Azure OpenAI. See README.md for configuration.
//!
//! The plain modules hold all decisions and are tested natively; the `wasm` module
//! only moves bytes between them, Spin variables, outbound HTTP and the WIT types.

pub mod config;
pub mod errors;
pub mod request;
pub mod response;
pub mod sse;
pub mod stream;
pub mod types;

/// A 2xx non-streamed answer larger than this is not a chat completion we can use.
pub const MAX_COMPLETION_BODY_BYTES: usize = 8 << 20;
/// Error bodies are only read this far: the message that matters is at the start.
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

#[cfg(target_arch = "wasm32")]
mod wasm {
    use crate::config::{self, Config, VariableValue};
    use crate::errors::{
        RetryHeaders, TransportFailure, error_for_status, sanitize, transport_error,
    };
    use crate::request::{UpstreamRequest, build_request};
    use crate::response::{self, has_media_type, parse_completion, wrong_content_type};
    use crate::stream::StreamDecoder;
    use crate::types;
    use crate::{MAX_COMPLETION_BODY_BYTES, MAX_ERROR_BODY_BYTES};
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use spin_sdk::http::{FullBody, Response};
    use spin_sdk::wasip3::http::types::{ErrorCode, RequestOptions};
    use spin_sdk::wasip3::http_compat::RequestOptionsExtension;
    use spin_sdk::wit_bindgen;

    spin_sdk::wit_bindgen::generate!({
        path: "../../wit",
        world: "completion-provider",
        runtime_path: "::spin_sdk::wit_bindgen::rt",
        generate_all,
    });

    use exports::chatgate::rag::completion::{
        ChatCompletion, CompletionError, Delta, FinishReason, Guest, Message, Options, RateLimit,
        Role, StreamEnd, Usage,
    };

    struct OpenAiCompletion;

    impl Guest for OpenAiCompletion {
        async fn complete(
            messages: Vec<Message>,
            options: Options,
        ) -> Result<ChatCompletion, CompletionError> {
            complete(messages, options).await.map_err(to_wit_error)
        }

        async fn complete_stream(
            messages: Vec<Message>,
            options: Options,
        ) -> Result<
            (
                wit_bindgen::StreamReader<Delta>,
                wit_bindgen::FutureReader<Result<StreamEnd, CompletionError>>,
            ),
            CompletionError,
        > {
            complete_stream(messages, options)
                .await
                .map_err(to_wit_error)
        }
    }

    export!(OpenAiCompletion);

    async fn complete(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<ChatCompletion, types::CompletionError> {
        let config = read_config().await?;
        let request = build_request(
            &config,
            &from_wit_messages(messages),
            &from_wit_options(options),
            false,
        )?;
        let secret = secret(&config);
        let requested_model = request.model.clone();
        let response = send(request, config.timeout_ms).await?;
        let response = check_status(response, secret).await?;
        let content_type = header(&response, "content-type");
        if !has_media_type(content_type.as_deref(), response::JSON) {
            return Err(wrong_content_type(content_type.as_deref(), response::JSON));
        }
        let body = match read_body(response, MAX_COMPLETION_BODY_BYTES).await {
            Ok(ReadBody::Complete(body)) => body,
            Ok(ReadBody::Truncated(_)) => {
                return Err(types::CompletionError::Internal(format!(
                    "the upstream answer is larger than {MAX_COMPLETION_BODY_BYTES} bytes"
                )));
            }
            Err(code) => return Err(transport_error(&classify(&code))),
        };
        let completion = parse_completion(&body, &requested_model, secret)?;
        Ok(ChatCompletion {
            model: completion.model,
            message: Message {
                role: Role::Assistant,
                content: completion.content,
            },
            finish_reason: to_wit_finish(completion.finish_reason),
            usage: to_wit_usage(completion.usage),
        })
    }

    type StreamResult = Result<StreamEnd, CompletionError>;

    async fn complete_stream(
        messages: Vec<Message>,
        options: Options,
    ) -> Result<
        (
            wit_bindgen::StreamReader<Delta>,
            wit_bindgen::FutureReader<StreamResult>,
        ),
        types::CompletionError,
    > {
        let config = read_config().await?;
        let request = build_request(
            &config,
            &from_wit_messages(messages),
            &from_wit_options(options),
            true,
        )?;
        let secret = secret(&config);
        let decoder = StreamDecoder::new(&request.model, secret);
        let response = send(request, config.timeout_ms).await?;
        let response = check_status(response, secret).await?;
        let content_type = header(&response, "content-type");
        if !has_media_type(content_type.as_deref(), response::EVENT_STREAM) {
            return Err(wrong_content_type(
                content_type.as_deref(),
                response::EVENT_STREAM,
            ));
        }

        let (mut deltas, deltas_reader) = wit_stream::new::<Delta>();
        let (end, end_reader) = wit_future::new::<StreamResult>(|| {
            Err(CompletionError::Internal(
                "the completion stream task ended without a result".into(),
            ))
        });
        // The export's task keeps running spawned work after `complete-stream` has
        // returned the stream, so the upstream body is pumped as the caller reads.
        spin_sdk::wit_bindgen::spawn(async move {
            let outcome = pump(response, decoder, &mut deltas).await;
            // The WIT contract: the future is resolved once the stream has closed.
            drop(deltas);
            let _ = end
                .write(outcome.map(to_wit_end).map_err(to_wit_error))
                .await;
        });
        Ok((deltas_reader, end_reader))
    }

    /// Forwards deltas as upstream frames arrive, until the decoder reaches an outcome
    /// or the body ends.
    async fn pump(
        response: Response,
        mut decoder: StreamDecoder,
        deltas: &mut wit_bindgen::StreamWriter<Delta>,
    ) -> Result<types::StreamEnd, types::CompletionError> {
        let mut body = response.into_body();
        loop {
            let frame = match body.frame().await {
                None => return decoder.finish(),
                Some(Err(code)) => return Err(transport_error(&classify(&code))),
                Some(Ok(frame)) => frame,
            };
            // Trailers carry nothing for us.
            let Ok(data) = frame.into_data() else {
                continue;
            };
            let progress = decoder.feed(&data);
            if !progress.deltas.is_empty() {
                let batch = progress
                    .deltas
                    .into_iter()
                    .map(|content| Delta { content })
                    .collect();
                if !deltas.write_all(batch).await.is_empty() {
                    // Dropping `body` on return tells the upstream to stop generating.
                    return Err(types::CompletionError::Internal(
                        "the caller closed the delta stream before the answer ended".into(),
                    ));
                }
            }
            if let Some(outcome) = progress.outcome {
                return outcome;
            }
        }
    }

    async fn read_config() -> Result<Config, types::CompletionError> {
        let mut values = Vec::with_capacity(config::VARIABLE_NAMES.len());
        for name in config::VARIABLE_NAMES {
            let value = match spin_sdk::variables::get(name).await {
                Ok(value) => VariableValue::Value(value),
                Err(spin_sdk::variables::Error::Undefined(_)) => VariableValue::Missing,
                Err(_) => VariableValue::Unreadable,
            };
            values.push((name, value));
        }
        Config::from_variables(|name| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or(VariableValue::Missing)
        })
    }

    fn secret(config: &Config) -> Option<&str> {
        config.api_key.as_ref().map(|key| key.expose())
    }

    async fn send(
        request: UpstreamRequest,
        timeout_ms: u64,
    ) -> Result<Response, types::CompletionError> {
        let timeout_ns = timeout_ms.saturating_mul(1_000_000);
        let options = RequestOptions::new();
        // A host that does not support a timeout kind keeps its own default for it.
        let _ = options.set_connect_timeout(Some(timeout_ns));
        let _ = options.set_first_byte_timeout(Some(timeout_ns));
        let _ = options.set_between_bytes_timeout(Some(timeout_ns));

        let mut builder = http::Request::builder()
            .method(http::Method::POST)
            .uri(&request.url)
            .extension(RequestOptionsExtension(options));
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        // The builder's error could only come from a header or URI, and the config
        // module validated those; its text is not used because a header may hold the key.
        let outbound = builder
            .body(FullBody::new(Bytes::from(request.body)))
            .map_err(|_| {
                types::CompletionError::Internal("could not build the upstream request".into())
            })?;
        spin_sdk::http::send(outbound)
            .await
            .map_err(|code| transport_error(&classify(&code)))
    }

    /// Passes 2xx answers through; turns any other into its `completion-error`.
    async fn check_status(
        response: Response,
        secret: Option<&str>,
    ) -> Result<Response, types::CompletionError> {
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            return Ok(response);
        }
        let retry_after_ms = header(&response, "retry-after-ms");
        let retry_after = header(&response, "retry-after");
        // A broken error body still leaves the status to go by.
        let body = match read_body(response, MAX_ERROR_BODY_BYTES).await {
            Ok(ReadBody::Complete(body) | ReadBody::Truncated(body)) => body,
            Err(_) => Vec::new(),
        };
        let retry = RetryHeaders {
            retry_after_ms: retry_after_ms.as_deref(),
            retry_after: retry_after.as_deref(),
        };
        Err(error_for_status(status, retry, &body, secret))
    }

    enum ReadBody {
        Complete(Vec<u8>),
        /// The first `limit` bytes or more; the rest was not read.
        Truncated(Vec<u8>),
    }

    async fn read_body(response: Response, limit: usize) -> Result<ReadBody, ErrorCode> {
        let mut body = response.into_body();
        let mut bytes = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                bytes.extend_from_slice(&data);
                if bytes.len() > limit {
                    return Ok(ReadBody::Truncated(bytes));
                }
            }
        }
        Ok(ReadBody::Complete(bytes))
    }

    fn header(response: &Response, name: &str) -> Option<String> {
        response
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
    }

    fn classify(code: &ErrorCode) -> TransportFailure {
        match code {
            ErrorCode::HttpRequestDenied => TransportFailure::Denied,
            ErrorCode::DnsTimeout
            | ErrorCode::ConnectionTimeout
            | ErrorCode::ConnectionReadTimeout
            | ErrorCode::ConnectionWriteTimeout
            | ErrorCode::HttpResponseTimeout => TransportFailure::TimedOut,
            ErrorCode::ConnectionRefused => {
                TransportFailure::Unreachable("connection refused".into())
            }
            ErrorCode::ConnectionTerminated => {
                TransportFailure::Unreachable("connection closed by the upstream".into())
            }
            ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
                TransportFailure::Unreachable("the upstream host name did not resolve".into())
            }
            ErrorCode::TlsProtocolError
            | ErrorCode::TlsCertificateError
            | ErrorCode::TlsAlertReceived(_) => {
                TransportFailure::Unreachable("the TLS handshake failed".into())
            }
            other => TransportFailure::Unreachable(sanitize(&format!("{other:?}"), None)),
        }
    }

    fn from_wit_messages(messages: Vec<Message>) -> Vec<types::Message> {
        messages
            .into_iter()
            .map(|m| types::Message {
                role: match m.role {
                    Role::System => types::Role::System,
                    Role::User => types::Role::User,
                    Role::Assistant => types::Role::Assistant,
                },
                content: m.content,
            })
            .collect()
    }

    fn from_wit_options(options: Options) -> types::Options {
        types::Options {
            model: options.model,
            temperature: options.temperature,
            max_tokens: options.max_tokens,
            stop: options.stop,
        }
    }

    fn to_wit_finish(reason: types::FinishReason) -> FinishReason {
        match reason {
            types::FinishReason::Stop => FinishReason::Stop,
            types::FinishReason::Length => FinishReason::Length,
            types::FinishReason::ContentFilter => FinishReason::ContentFilter,
        }
    }

    fn to_wit_usage(usage: types::Usage) -> Usage {
        Usage {
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
        }
    }

    fn to_wit_end(end: types::StreamEnd) -> StreamEnd {
        StreamEnd {
            model: end.model,
            finish_reason: to_wit_finish(end.finish_reason),
            usage: end.usage.map(to_wit_usage),
        }
    }

    fn to_wit_error(error: types::CompletionError) -> CompletionError {
        match error {
            types::CompletionError::RateLimited {
                retry_after_seconds,
                message,
            } => CompletionError::RateLimited(RateLimit {
                retry_after_seconds,
                message,
            }),
            types::CompletionError::UpstreamUnavailable(m) => {
                CompletionError::UpstreamUnavailable(m)
            }
            types::CompletionError::InvalidRequest(m) => CompletionError::InvalidRequest(m),
            types::CompletionError::Unauthorized(m) => CompletionError::Unauthorized(m),
            types::CompletionError::ContentFiltered(m) => CompletionError::ContentFiltered(m),
            types::CompletionError::Internal(m) => CompletionError::Internal(m),
        }
    }
}
