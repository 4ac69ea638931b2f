//! A client of an embeddings endpoint, for `chatgate index`: it embeds chunks in
//! batches so that the index can hold their vectors (hybrid search).
//!
//! The wire format (OpenAI-compatible or Azure OpenAI) is [`chatgate_embeddings`]'s,
//! which the `retrieval` component speaks too. Vectors are put back in input order by
//! `index`. Throttling (429), server errors (5xx), 408, 409, timeouts and broken
//! connections are retried with exponential backoff, or after the delay the service
//! asks for (`retry-after-ms`, then `Retry-After`), a bounded number of times. Other
//! refusals fail at once with the status and the service's own message. The key never
//! appears in an error: the service's text is redacted before it is shown.
//!
//! HTTP/1.1 by `reqwest`, with TLS by rustls and the Mozilla root certificates
//! (`webpki-roots`); its pool keeps the connection open across batches. Redirects are
//! not followed and proxies are not used, so the key goes to the origin given and
//! nowhere else.

use chatgate_embeddings::AnswerError;
pub use chatgate_embeddings::{DEFAULT_AZURE_API_VERSION, DEFAULT_PATH_PREFIX, Flavor};
use reqwest::header::{self, HeaderMap, HeaderValue};
use std::time::Duration;

/// Inputs per request unless told otherwise (OpenAI allows 2048; smaller batches keep a
/// retried request cheap).
pub const DEFAULT_BATCH_INPUTS: usize = 64;
/// Characters per request: about 100k tokens, well under OpenAI's 300k per request.
pub const DEFAULT_BATCH_CHARS: usize = 400_000;
/// The environment variable the API key is read from (never a flag: flags show in
/// process listings and shell history).
pub const API_KEY_ENV: &str = "CHATGATE_EMBEDDINGS_API_KEY";
/// An answer larger than this is refused (2048 inputs of 3072 dimensions take ~130 MB).
pub const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// When and how often a failed request is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// The pause before the first retry; it doubles with each further one.
    pub base_delay: Duration,
    /// No pause is longer, whatever the service asks for.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(60),
        }
    }
}

/// How to reach the endpoint.
#[derive(Clone)]
pub struct EmbeddingsOptions {
    /// `http(s)://host[:port]`.
    pub origin: String,
    /// For the OpenAI flavour, the path prefix as given (`/v1`, `/api/v2/`): it is
    /// checked and normalised by [`EmbeddingsClient::new`].
    pub flavor: Flavor,
    /// The model; for Azure, the deployment.
    pub model: String,
    /// From [`API_KEY_ENV`]; `None` for a local server that needs none.
    pub api_key: Option<String>,
    /// Most inputs per request (at least 1; [`DEFAULT_BATCH_INPUTS`]).
    pub batch_inputs: usize,
    /// Most characters per request; a single longer input is still sent, alone
    /// ([`DEFAULT_BATCH_CHARS`]).
    pub batch_chars: usize,
    /// How throttled and failed requests are retried.
    pub retry: RetryPolicy,
    /// One attempt's limit, connecting and reading the answer included.
    pub request_timeout: Duration,
}

impl std::fmt::Debug for EmbeddingsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddingsOptions")
            .field("origin", &self.origin)
            .field("flavor", &self.flavor)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("batch_inputs", &self.batch_inputs)
            .field("batch_chars", &self.batch_chars)
            .field("retry", &self.retry)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

impl EmbeddingsOptions {
    /// Options with the default batching, retries and timeout.
    pub fn new(origin: &str, flavor: Flavor, model: &str, api_key: Option<String>) -> Self {
        EmbeddingsOptions {
            origin: origin.to_string(),
            flavor,
            model: model.to_string(),
            api_key,
            batch_inputs: DEFAULT_BATCH_INPUTS,
            batch_chars: DEFAULT_BATCH_CHARS,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(120),
        }
    }
}

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddingsError {
    /// The options are unusable; nothing was sent.
    #[error("{0}")]
    Config(String),
    #[error(
        "the embeddings endpoint answered HTTP {status}{hint}{}",
        detail(message)
    )]
    /// A non-2xx answer that retrying did not (or could not) change.
    Status {
        /// The HTTP status.
        status: u16,
        /// The service's message, redacted.
        message: Option<String>,
        /// Which flag or variable to check, for the statuses that point at one.
        hint: &'static str,
    },
    #[error("the embeddings endpoint {origin} could not be reached: {reason}")]
    /// No complete answer, after every attempt.
    Unreachable {
        /// The endpoint, as configured.
        origin: String,
        /// What went wrong on the last attempt.
        reason: TransportFailure,
    },
    /// A 2xx answer without usable vectors.
    #[error("the embeddings endpoint's answer is unusable: {0}")]
    InvalidResponse(AnswerError),
    #[error(
        "the embeddings endpoint answered vectors of {found} dimensions after vectors of {expected}"
    )]
    /// Vectors of different sizes in one run: the index holds one size, and cosine
    /// similarity needs it.
    InconsistentDimensions {
        /// The size of the first vectors.
        expected: usize,
        /// The size that differs.
        found: usize,
    },
}

fn detail(message: &Option<String>) -> String {
    message
        .as_ref()
        .map(|message| format!(": {message}"))
        .unwrap_or_default()
}

/// Why an attempt got no complete answer (it is retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportFailure {
    /// The attempt's `request_timeout` ran out.
    #[error("no answer within {0:.0?}")]
    TimedOut(Duration),
    /// The TLS handshake failed (an untrusted certificate, a protocol mismatch): the cause.
    #[error("the TLS handshake failed: {0}")]
    Tls(String),
    /// Connecting or sending failed: the causes, outermost first.
    #[error("{0}")]
    Connection(String),
    /// The answer passed [`MAX_RESPONSE_BYTES`] and was not read further.
    #[error("the answer is larger than {MAX_RESPONSE_BYTES} bytes")]
    TooLarge,
    /// The answer's body stopped before its end: the cause.
    #[error("the answer broke off: {0}")]
    BrokeOff(String),
}

/// The vectors of a list of inputs, one after the other, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    /// The size of every vector.
    pub dimensions: usize,
    /// The vectors end to end: `dimensions` values per input, so one allocation
    /// rather than one per chunk.
    pub values: Vec<f32>,
}

/// An answer, whatever its status.
struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// An embeddings client; see the module documentation.
pub struct EmbeddingsClient {
    options: EmbeddingsOptions,
    http: reqwest::Client,
    url: reqwest::Url,
}

impl EmbeddingsClient {
    /// A client for `options`, checked here so that bad settings fail before any file
    /// is read or request sent.
    pub fn new(options: EmbeddingsOptions) -> Result<Self, EmbeddingsError> {
        let config = |message: String| EmbeddingsError::Config(message);
        let invalid_origin = || {
            config(format!(
                "--embeddings-origin must be scheme://host[:port], e.g. https://api.openai.com, not `{}`",
                options.origin
            ))
        };
        let origin = chatgate_guest::parse_origin(&options.origin).ok_or_else(invalid_origin)?;
        if options.model.trim().is_empty() {
            return Err(config("--embeddings-model is empty".into()));
        }
        let flavor = match &options.flavor {
            Flavor::OpenAi { path_prefix } => Flavor::OpenAi {
                path_prefix: chatgate_embeddings::path_prefix(path_prefix).ok_or_else(|| {
                    config(format!(
                        "--embeddings-path-prefix must be a URL path such as {DEFAULT_PATH_PREFIX}, not `{path_prefix}`"
                    ))
                })?,
            },
            Flavor::Azure { api_version } => {
                if !chatgate_embeddings::valid_deployment(&options.model) {
                    return Err(config(format!(
                        "--embeddings-model must be an Azure OpenAI deployment name (letters, digits, `-`, `_`, `.`), not `{}`",
                        options.model
                    )));
                }
                if !chatgate_embeddings::valid_api_version(api_version) {
                    return Err(config(format!(
                        "--embeddings-api-version must look like {DEFAULT_AZURE_API_VERSION}, not `{api_version}`"
                    )));
                }
                options.flavor.clone()
            }
        };
        let url = reqwest::Url::parse(&format!(
            "{origin}{}",
            flavor.path_and_query(&options.model)
        ))
        .map_err(|_| invalid_origin())?;

        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        if let Some(key) = &options.api_key {
            let (name, value) = flavor.credential_header(key);
            let value = HeaderValue::from_str(&value)
                .ok()
                .filter(|_| !key.is_empty() && key.bytes().all(|b| b.is_ascii_graphic()))
                .map(|mut value| {
                    value.set_sensitive(true);
                    value
                })
                // The value is not shown: it is a secret.
                .ok_or_else(|| {
                    config(format!(
                        "{API_KEY_ENV} holds characters an HTTP header cannot carry"
                    ))
                })?;
            headers.insert(name, value);
        }
        if options.batch_inputs == 0 {
            return Err(config("--embeddings-batch must be at least 1".into()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("chatgate/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|error| config(format!("the HTTP client cannot be set up: {error}")))?;
        Ok(EmbeddingsClient {
            http,
            url,
            options: EmbeddingsOptions {
                origin,
                flavor,
                ..options
            },
        })
    }

    /// The model (for Azure, the deployment) the vectors come from.
    pub fn model(&self) -> &str {
        &self.options.model
    }

    /// Embeds `inputs`, in batches, calling `progress` with the number of inputs each
    /// finished batch held.
    pub async fn embed(
        &self,
        inputs: &[String],
        mut progress: impl FnMut(usize),
    ) -> Result<Embeddings, EmbeddingsError> {
        let mut embeddings = Embeddings {
            dimensions: 0,
            values: Vec::new(),
        };
        for batch in batches(inputs, self.options.batch_inputs, self.options.batch_chars) {
            let vectors = self.embed_batch(batch).await?;
            for vector in vectors {
                if embeddings.dimensions == 0 {
                    embeddings.dimensions = vector.len();
                } else if vector.len() != embeddings.dimensions {
                    return Err(EmbeddingsError::InconsistentDimensions {
                        expected: embeddings.dimensions,
                        found: vector.len(),
                    });
                }
                embeddings.values.extend(vector);
            }
            progress(batch.len());
        }
        Ok(embeddings)
    }

    /// One batch, retried as the policy allows.
    async fn embed_batch(&self, batch: &[String]) -> Result<Vec<Vec<f32>>, EmbeddingsError> {
        let body = self.options.flavor.request_body(&self.options.model, batch);
        let retry = self.options.retry;
        let mut attempt = 1;
        loop {
            let (retryable, asked, error) = match self.attempt(&body).await {
                Ok(answer) if (200..300).contains(&answer.status) => {
                    return chatgate_embeddings::parse_vectors(&answer.body, batch.len())
                        .map_err(EmbeddingsError::InvalidResponse);
                }
                Ok(answer) => {
                    let retryable = matches!(answer.status, 408 | 409 | 429 | 500..=599);
                    let error = self.status_error(answer.status, &answer.body);
                    let asked = retryable
                        .then(|| requested_delay(&answer.headers))
                        .flatten();
                    (retryable, asked, error)
                }
                Err(reason) => (
                    true,
                    None,
                    EmbeddingsError::Unreachable {
                        origin: self.options.origin.clone(),
                        reason,
                    },
                ),
            };
            if !retryable || attempt >= retry.max_attempts.max(1) {
                return Err(error);
            }
            let backoff = retry.base_delay.saturating_mul(1 << (attempt - 1).min(16));
            let delay = asked.unwrap_or(backoff).min(retry.max_delay);
            tracing::warn!(
                "{error}; retrying in {delay:.1?} (attempt {} of {})",
                attempt + 1,
                retry.max_attempts
            );
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }

    fn status_error(&self, status: u16, body: &[u8]) -> EmbeddingsError {
        let message = chatgate_embeddings::error_message(body)
            .map(|message| chatgate_guest::sanitize(&message, self.options.api_key.as_deref()))
            .filter(|message| !message.is_empty());
        let hint = match status {
            401 | 403 => " (check CHATGATE_EMBEDDINGS_API_KEY)",
            404 => {
                " (check --embeddings-origin, --embeddings-model and the path prefix or API version)"
            }
            _ => "",
        };
        EmbeddingsError::Status {
            status,
            message,
            hint,
        }
    }

    /// One request, its answer read whole (within the client's timeout).
    async fn attempt(&self, body: &str) -> Result<Answer, TransportFailure> {
        let failure = |error: reqwest::Error, reading: bool| {
            if error.is_timeout() {
                TransportFailure::TimedOut(self.options.request_timeout)
            } else if let Some(tls) = tls_failure(&error) {
                TransportFailure::Tls(tls)
            } else if reading {
                TransportFailure::BrokeOff(causes(&error))
            } else {
                TransportFailure::Connection(causes(&error))
            }
        };
        let mut response = self
            .http
            .post(self.url.clone())
            .body(body.to_string())
            .send()
            .await
            .map_err(|error| failure(error, false))?;
        if response
            .content_length()
            .is_some_and(|length| length > MAX_RESPONSE_BYTES as u64)
        {
            return Err(TransportFailure::TooLarge);
        }
        let mut answer = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| failure(error, true))?
        {
            if answer.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(TransportFailure::TooLarge);
            }
            answer.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status: response.status().as_u16(),
            headers: std::mem::take(response.headers_mut()),
            body: answer,
        })
    }
}

/// The causes of a `reqwest` error, outermost first: its own text only names the URL.
fn causes(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        error.to_string()
    } else {
        causes.join(": ")
    }
}

/// What rustls said, if the error is a failed TLS handshake. (rustls's error reaches
/// reqwest wrapped in `io::Error`s, whose `source` skips what they wrap.)
fn tls_failure(error: &reqwest::Error) -> Option<String> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let mut unwrapped: &(dyn std::error::Error + 'static) = cause;
        loop {
            if let Some(tls) = unwrapped.downcast_ref::<rustls::Error>() {
                return Some(tls.to_string());
            }
            match unwrapped
                .downcast_ref::<std::io::Error>()
                .and_then(std::io::Error::get_ref)
            {
                Some(inner) => unwrapped = inner,
                None => break,
            }
        }
        source = cause.source();
    }
    None
}

/// Consecutive slices of `inputs`, each at most `max_inputs` long and, unless a single
/// input is longer, at most `max_chars` characters.
fn batches(inputs: &[String], max_inputs: usize, max_chars: usize) -> Vec<&[String]> {
    let mut batches = Vec::new();
    let mut start = 0;
    while start < inputs.len() {
        let mut end = start;
        let mut chars = 0;
        while end < inputs.len() && end - start < max_inputs.max(1) {
            let length = inputs[end].chars().count();
            if end > start && chars + length > max_chars {
                break;
            }
            chars += length;
            end += 1;
        }
        batches.push(&inputs[start..end]);
        start = end;
    }
    batches
}

/// The delay a 429/5xx answer asks for: `retry-after-ms` (OpenAI, Azure OpenAI), else
/// `Retry-After` in seconds or as an HTTP date.
fn requested_delay(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
    }
    let now_unix_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
        });
    chatgate_guest::retry_after::delay_ms(header("retry-after")?, now_unix_ms)
        .map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::sync::Mutex;

    /// One request the local server received.
    #[derive(Debug, Clone)]
    struct Received {
        path_and_query: String,
        headers: HeaderMap,
        body: serde_json::Value,
    }

    /// One scripted answer: status, extra headers, body. Once the script runs out, the
    /// server embeds: input `i` of a batch gets `[len, first byte, 1]`.
    type Scripted = (u16, Vec<(&'static str, &'static str)>, String);

    struct Server {
        origin: String,
        received: Arc<Mutex<Vec<Received>>>,
        connections: Arc<std::sync::atomic::AtomicUsize>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    /// The vector the server gives `input`.
    fn vector_of(input: &str) -> Vec<f32> {
        vec![
            input.len() as f32,
            f32::from(input.bytes().next().unwrap_or(0)),
            1.0,
        ]
    }

    /// Answers in reverse order, so that putting vectors back by `index` is tested.
    fn embeddings_answer(body: &serde_json::Value) -> String {
        let inputs: Vec<String> = body["input"]
            .as_array()
            .map(|inputs| {
                inputs
                    .iter()
                    .map(|i| i.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let data: Vec<serde_json::Value> = inputs
            .iter()
            .enumerate()
            .rev()
            .map(|(i, input)| {
                serde_json::json!({"object": "embedding", "index": i, "embedding": vector_of(input)})
            })
            .collect();
        serde_json::json!({"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1, "total_tokens": 1}})
            .to_string()
    }

    async fn serve(script: Vec<Scripted>) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        let (recorded, counted) = (received.clone(), connections.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (recorded, script) = (recorded.clone(), script.clone());
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let (recorded, script) = (recorded.clone(), script.clone());
                        async move {
                            let (parts, body) = request.into_parts();
                            let body = body.collect().await.unwrap().to_bytes();
                            let body: serde_json::Value =
                                serde_json::from_slice(&body).unwrap_or_default();
                            let (status, headers, text) = script
                                .lock()
                                .unwrap()
                                .pop_front()
                                .unwrap_or_else(|| (200, Vec::new(), embeddings_answer(&body)));
                            recorded.lock().unwrap().push(Received {
                                path_and_query: parts.uri.to_string(),
                                headers: parts.headers,
                                body,
                            });
                            let mut response = hyper::Response::builder()
                                .status(status)
                                .header("content-type", "application/json");
                            for (name, value) in headers {
                                response = response.header(name, value);
                            }
                            Ok::<_, std::convert::Infallible>(
                                response.body(Full::new(Bytes::from(text))).unwrap(),
                            )
                        }
                    },
                );
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        Server {
            origin,
            received,
            connections,
            task,
        }
    }

    impl Server {
        fn received(&self) -> Vec<Received> {
            self.received.lock().unwrap().clone()
        }
    }

    fn openai(origin: &str, key: Option<&str>) -> EmbeddingsOptions {
        let mut options = EmbeddingsOptions::new(
            origin,
            Flavor::OpenAi {
                path_prefix: "/v1".into(),
            },
            "text-embedding-3-small",
            key.map(str::to_string),
        );
        // Retries must not make the tests slow; the delays they take are asserted
        // through `requested_delay` instead.
        options.retry = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
        };
        options
    }

    fn inputs(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    fn error_body(message: &str) -> String {
        serde_json::json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": null}})
            .to_string()
    }

    #[tokio::test]
    async fn openai_batches_are_posted_with_the_model_and_a_bearer_key_and_come_back_in_order() {
        let server = serve(Vec::new()).await;
        let mut options = openai(&server.origin, Some("sk-test-1"));
        options.batch_inputs = 2;
        let client = EmbeddingsClient::new(options).unwrap();
        let texts = inputs(&["alpha", "be", "gamma ray", "d"]);
        let mut progress = Vec::new();
        let embeddings = client.embed(&texts, |n| progress.push(n)).await.unwrap();

        assert_eq!(embeddings.dimensions, 3);
        let expected: Vec<f32> = texts.iter().flat_map(|t| vector_of(t)).collect();
        assert_eq!(embeddings.values, expected);
        assert_eq!(progress, vec![2, 2]);

        let received = server.received();
        assert_eq!(received.len(), 2);
        assert_eq!(received[0].path_and_query, "/v1/embeddings");
        assert_eq!(
            received[0].headers["authorization"].to_str().unwrap(),
            "Bearer sk-test-1"
        );
        assert_eq!(
            received[0].body,
            serde_json::json!({"model": "text-embedding-3-small", "input": ["alpha", "be"], "encoding_format": "float"})
        );
        assert_eq!(
            received[1].body["input"],
            serde_json::json!(["gamma ray", "d"])
        );
        assert_eq!(
            server.connections.load(std::sync::atomic::Ordering::SeqCst),
            1,
            "one connection serves every batch"
        );
    }

    #[tokio::test]
    async fn azure_names_the_deployment_and_api_version_in_the_url_and_sends_an_api_key() {
        let server = serve(Vec::new()).await;
        let options = EmbeddingsOptions::new(
            &format!("{}/", server.origin),
            Flavor::Azure {
                api_version: "2024-10-21".into(),
            },
            "embed-deployment",
            Some("azure-key".into()),
        );
        let client = EmbeddingsClient::new(options).unwrap();
        client.embed(&inputs(&["x"]), |_| {}).await.unwrap();
        let received = server.received();
        assert_eq!(
            received[0].path_and_query,
            "/openai/deployments/embed-deployment/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            received[0].headers["api-key"].to_str().unwrap(),
            "azure-key"
        );
        assert!(received[0].headers.get("authorization").is_none());
        assert_eq!(
            received[0].body,
            serde_json::json!({"input": ["x"], "encoding_format": "float"})
        );
    }

    #[tokio::test]
    async fn without_a_key_no_credential_is_sent_and_the_path_prefix_is_configurable() {
        let server = serve(Vec::new()).await;
        let mut options = openai(&server.origin, None);
        options.flavor = Flavor::OpenAi {
            path_prefix: "/api/v2/".into(),
        };
        EmbeddingsClient::new(options)
            .unwrap()
            .embed(&inputs(&["x"]), |_| {})
            .await
            .unwrap();
        let received = server.received();
        assert_eq!(received[0].path_and_query, "/api/v2/embeddings");
        assert!(received[0].headers.get("authorization").is_none());
    }

    #[tokio::test]
    async fn throttling_and_server_errors_are_retried_until_an_answer() {
        let server = serve(vec![
            (
                429,
                vec![("retry-after-ms", "1")],
                error_body("Rate limit reached"),
            ),
            (503, Vec::new(), error_body("overloaded")),
        ])
        .await;
        let client = EmbeddingsClient::new(openai(&server.origin, None)).unwrap();
        let embeddings = client.embed(&inputs(&["abc"]), |_| {}).await.unwrap();
        assert_eq!(embeddings.values, vector_of("abc"));
        assert_eq!(server.received().len(), 3);
    }

    #[tokio::test]
    async fn attempts_are_bounded_and_the_last_failure_is_reported() {
        let failures = (0..5)
            .map(|_| (500, Vec::new(), error_body("The server had an error")))
            .collect();
        let server = serve(failures).await;
        let client = EmbeddingsClient::new(openai(&server.origin, None)).unwrap();
        let error = client.embed(&inputs(&["a"]), |_| {}).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the embeddings endpoint answered HTTP 500: The server had an error"
        );
        assert_eq!(server.received().len(), 3, "max_attempts");
    }

    #[tokio::test]
    async fn refusals_fail_at_once_with_the_status_and_message_but_never_the_key() {
        let server = serve(vec![(
            401,
            Vec::new(),
            error_body("Incorrect API key provided: sk-secret-9. You can find your API key at https://platform.openai.com."),
        )])
        .await;
        let client = EmbeddingsClient::new(openai(&server.origin, Some("sk-secret-9"))).unwrap();
        let error = client.embed(&inputs(&["a"]), |_| {}).await.unwrap_err();
        assert!(matches!(error, EmbeddingsError::Status { status: 401, .. }));
        let text = error.to_string();
        assert!(
            text.starts_with("the embeddings endpoint answered HTTP 401 (check CHATGATE_EMBEDDINGS_API_KEY): Incorrect API key provided: [redacted]."),
            "{text}"
        );
        assert!(!format!("{error:?}").contains("sk-secret-9"));
        assert_eq!(server.received().len(), 1, "a refusal is not retried");

        let server = serve(vec![(
            400,
            Vec::new(),
            error_body("This model's maximum context length is 8192 tokens"),
        )])
        .await;
        let client = EmbeddingsClient::new(openai(&server.origin, None)).unwrap();
        let error = client.embed(&inputs(&["a"]), |_| {}).await.unwrap_err();
        assert_eq!(
            error.to_string(),
            "the embeddings endpoint answered HTTP 400: This model's maximum context length is 8192 tokens"
        );
    }

    #[tokio::test]
    async fn an_unreachable_endpoint_is_retried_then_named() {
        // A port that was just free: nothing listens there.
        let origin = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}", listener.local_addr().unwrap())
        };
        let client = EmbeddingsClient::new(openai(&origin, None)).unwrap();
        let error = client.embed(&inputs(&["a"]), |_| {}).await.unwrap_err();
        match &error {
            EmbeddingsError::Unreachable { origin: named, .. } => assert_eq!(named, &origin),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn https_to_a_server_without_tls_fails_in_the_handshake() {
        let server = serve(Vec::new()).await;
        let origin = server.origin.replace("http://", "https://");
        let mut options = openai(&origin, None);
        options.retry.max_attempts = 1;
        let error = EmbeddingsClient::new(options)
            .unwrap()
            .embed(&inputs(&["a"]), |_| {})
            .await
            .unwrap_err();
        assert!(
            error.to_string().contains("TLS handshake failed"),
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_endpoint_that_never_answers_is_retried_then_reported_as_timed_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = accepted.clone();
        let silent = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                held.push(stream);
            }
        });
        let mut options = openai(&origin, None);
        options.request_timeout = Duration::from_millis(50);
        let error = EmbeddingsClient::new(options)
            .unwrap()
            .embed(&inputs(&["a"]), |_| {})
            .await
            .unwrap_err();
        silent.abort();
        assert!(
            matches!(
                &error,
                EmbeddingsError::Unreachable {
                    reason: TransportFailure::TimedOut(_),
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().ends_with("no answer within 50ms"),
            "{error}"
        );
        // A connection left mid-request is not reused: every attempt opens its own.
        assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn redirects_are_not_followed_so_the_key_goes_nowhere_else() {
        let server = serve(vec![(
            307,
            vec![("location", "http://127.0.0.1:1/v1/embeddings")],
            String::new(),
        )])
        .await;
        let client = EmbeddingsClient::new(openai(&server.origin, Some("sk-1"))).unwrap();
        let error = client.embed(&inputs(&["a"]), |_| {}).await.unwrap_err();
        assert!(
            matches!(error, EmbeddingsError::Status { status: 307, .. }),
            "{error:?}"
        );
        assert_eq!(server.received().len(), 1);
    }

    #[tokio::test]
    async fn answers_that_do_not_fit_the_inputs_are_refused() {
        let cases = [
            (r#"{"data":[]}"#, "0 embeddings for 1 inputs"),
            (r#"{"data":[{"index":3,"embedding":[1]}]}"#, "index 3"),
            (
                r#"{"data":[{"index":0,"embedding":"AAAA"}]}"#,
                "encoding_format",
            ),
            ("<html>", "not JSON"),
        ];
        for (body, expected) in cases {
            let server = serve(vec![(200, Vec::new(), body.to_string())]).await;
            let client = EmbeddingsClient::new(openai(&server.origin, None)).unwrap();
            let error = client.embed(&inputs(&["a"]), |_| {}).await.unwrap_err();
            assert!(
                matches!(error, EmbeddingsError::InvalidResponse(_))
                    && error.to_string().contains(expected),
                "{body}: {error}"
            );
        }
        let server = serve(vec![
            (
                200,
                Vec::new(),
                r#"{"data":[{"index":0,"embedding":[1,2]}]}"#.into(),
            ),
            (
                200,
                Vec::new(),
                r#"{"data":[{"index":0,"embedding":[1,2,3]}]}"#.into(),
            ),
        ])
        .await;
        let mut options = openai(&server.origin, None);
        options.batch_inputs = 1;
        let error = EmbeddingsClient::new(options)
            .unwrap()
            .embed(&inputs(&["a", "b"]), |_| {})
            .await
            .unwrap_err();
        assert!(matches!(
            error,
            EmbeddingsError::InconsistentDimensions {
                expected: 2,
                found: 3
            }
        ));
    }

    #[test]
    fn batches_are_cut_by_count_and_by_characters() {
        let texts = inputs(&["aaaa", "bbbb", "cc", "d", "eeeeeeeeee"]);
        let lengths = |batches: Vec<&[String]>| batches.iter().map(|b| b.len()).collect::<Vec<_>>();
        assert_eq!(lengths(batches(&texts, 2, 1000)), vec![2, 2, 1]);
        assert_eq!(lengths(batches(&texts, 10, 8)), vec![2, 2, 1]);
        // An input longer than the limit still goes, alone.
        assert_eq!(lengths(batches(&texts, 10, 3)), vec![1, 1, 2, 1]);
        assert!(batches(&[], 2, 10).is_empty());
    }

    #[test]
    fn the_delay_asked_for_is_read_from_retry_after_ms_then_retry_after() {
        let headers = |pairs: &[(&'static str, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, value.parse().unwrap());
            }
            map
        };
        assert_eq!(
            requested_delay(&headers(&[
                ("retry-after-ms", "1500"),
                ("retry-after", "9")
            ])),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(
            requested_delay(&headers(&[("retry-after", "7")])),
            Some(Duration::from_secs(7))
        );
        assert_eq!(
            requested_delay(&headers(&[(
                "retry-after",
                "Wed, 21 Oct 2015 07:28:00 GMT"
            )])),
            Some(Duration::ZERO),
            "a date in the past asks for no delay"
        );
        assert_eq!(requested_delay(&headers(&[("retry-after", "soon")])), None);
        assert_eq!(requested_delay(&HeaderMap::new()), None);
    }

    #[test]
    fn bad_settings_are_refused_before_any_request_without_showing_the_key() {
        let flavor = Flavor::OpenAi {
            path_prefix: "/v1".into(),
        };
        for origin in ["api.openai.com", "ftp://x", "https://x/v1", "https://u@x"] {
            let options = EmbeddingsOptions::new(origin, flavor.clone(), "m", None);
            let error = EmbeddingsClient::new(options).err().unwrap();
            assert!(error.to_string().contains("--embeddings-origin"), "{error}");
        }
        let azure = Flavor::Azure {
            api_version: "2024-10-21".into(),
        };
        let options = EmbeddingsOptions::new("https://x", azure, "../m", None);
        assert!(EmbeddingsClient::new(options).is_err());
        let options = EmbeddingsOptions::new("https://x", flavor, "m", Some("sk-1\nx".into()));
        let error = EmbeddingsClient::new(options).err().unwrap().to_string();
        assert!(
            error.contains(API_KEY_ENV) && !error.contains("sk-1"),
            "{error}"
        );
    }

    #[test]
    fn options_never_debug_print_the_key() {
        let options = openai("http://127.0.0.1:1", Some("sk-hidden"));
        assert!(!format!("{options:?}").contains("sk-hidden"));
    }
}
