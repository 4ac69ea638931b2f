//! The WASI side: Spin variables, clocks and outbound HTTP around the plain modules,
//! and the conversions to and from the WIT types.
//!
//! The deadline (`azure_search_timeout_ms`) is enforced here by racing every wait on
//! the network against a timer, whether or not the host honours the `wasi:http`
//! request options it is also given.

use crate::config::{self, Config};
use crate::errors::{
    TransportFailure, error_for_status, retry_delay_ms, sanitize, transport_error,
};
use crate::request::{Plan, SearchRequest, plan};
use crate::response::parse_results;
use crate::{MAX_ERROR_BODY_BYTES, MAX_RESULT_BODY_BYTES};
use bytes::Bytes;
use chatgate_guest::{sleep_ms, wall_clock_ms, within};
use http_body_util::BodyExt;
use spin_sdk::http::{FullBody, Response};
use spin_sdk::wasip3::clocks::monotonic_clock;
use spin_sdk::wasip3::http::types::{ErrorCode, RequestOptions};
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "retrieval-provider",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use exports::chatgate::rag::retriever::{Filter, Guest, Passage, RetrievalError};

struct AzureSearchRetriever;

impl Guest for AzureSearchRetriever {
    async fn search(
        query: String,
        top_k: u32,
        filters: Vec<Filter>,
    ) -> Result<Vec<Passage>, RetrievalError> {
        let filters: Vec<crate::Filter> = filters
            .into_iter()
            .map(|f| crate::Filter {
                field: f.field,
                value: f.value,
            })
            .collect();
        search(&query, top_k, &filters)
            .await
            .map(|passages| passages.into_iter().map(to_wit_passage).collect())
            .map_err(to_wit_error)
    }
}

export!(AzureSearchRetriever);

async fn search(
    query: &str,
    top_k: u32,
    filters: &[crate::Filter],
) -> Result<Vec<crate::Passage>, crate::RetrievalError> {
    let started_at = monotonic_clock::now();
    let config = read_config().await?;
    let request = match plan(&config, query, top_k, filters)? {
        Plan::Nothing => return Ok(Vec::new()),
        Plan::Send(request) => request,
    };
    let remaining_ms = || {
        let elapsed_ms = monotonic_clock::now().saturating_sub(started_at) / 1_000_000;
        config.timeout_ms.saturating_sub(elapsed_ms)
    };
    let mut retried = false;
    loop {
        match attempt(&config, &request, remaining_ms).await {
            Attempt::Done(result) => return result,
            Attempt::Failed {
                status,
                retry_after,
                error,
            } => {
                let delay = retry_delay_ms(status, retry_after.as_deref(), wall_clock_ms());
                match delay {
                    // The retry must still have time to be answered after the pause.
                    Some(ms) if !retried && ms < remaining_ms() => {
                        retried = true;
                        sleep_ms(ms).await;
                    }
                    _ => return Err(error),
                }
            }
        }
    }
}

enum Attempt {
    Done(Result<Vec<crate::Passage>, crate::RetrievalError>),
    /// A non-2xx answer, which may be retried.
    Failed {
        status: u16,
        retry_after: Option<String>,
        error: crate::RetrievalError,
    },
}

async fn attempt(
    config: &Config,
    request: &SearchRequest,
    remaining_ms: impl Fn() -> u64,
) -> Attempt {
    let timed_out = || {
        Attempt::Done(Err(crate::RetrievalError::Upstream(format!(
            "Azure AI Search did not answer within {} ms",
            config.timeout_ms
        ))))
    };
    let secret = config.api_key.expose();
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(&request.url)
        .extension(request_options(remaining_ms()));
    for (name, value) in &request.headers {
        builder = builder.header(*name, value);
    }
    // Only a header or the URI can make the builder fail, and the config module
    // validated both; its text is not used because a header holds the key.
    let Ok(outbound) = builder.body(FullBody::new(Bytes::from(request.body.to_string()))) else {
        return Attempt::Done(Err(crate::RetrievalError::IndexUnavailable(
            "could not build the search request".into(),
        )));
    };
    let response = match within(remaining_ms(), spin_sdk::http::send(outbound)).await {
        None => return timed_out(),
        Some(Err(code)) => return Attempt::Done(Err(transport_error(&classify(&code, secret)))),
        Some(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    if (200..300).contains(&status) {
        return match read_body(response, MAX_RESULT_BODY_BYTES, remaining_ms()).await {
            Ok(ReadBody::Complete(body)) => {
                Attempt::Done(parse_results(&body, &config.fields, secret))
            }
            Ok(ReadBody::Truncated) => Attempt::Done(Err(crate::RetrievalError::Upstream(
                format!("the search answer is larger than {MAX_RESULT_BODY_BYTES} bytes"),
            ))),
            Err(BodyFailure::TimedOut) => timed_out(),
            Err(BodyFailure::Broken) => Attempt::Done(Err(crate::RetrievalError::Upstream(
                "the search answer broke off".into(),
            ))),
        };
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string);
    // A broken or stalled error body still leaves the status to go by.
    let body = match read_body(response, MAX_ERROR_BODY_BYTES, remaining_ms()).await {
        Ok(ReadBody::Complete(body)) => body,
        _ => Vec::new(),
    };
    Attempt::Failed {
        status,
        retry_after,
        error: error_for_status(status, &body, secret),
    }
}

enum ReadBody {
    Complete(Vec<u8>),
    /// Longer than the limit; the rest was not read.
    Truncated,
}

enum BodyFailure {
    TimedOut,
    Broken,
}

async fn read_body(
    response: Response,
    limit: usize,
    budget_ms: u64,
) -> Result<ReadBody, BodyFailure> {
    let started_at = monotonic_clock::now();
    let mut body = response.into_body();
    let mut bytes = Vec::new();
    loop {
        let elapsed_ms = monotonic_clock::now().saturating_sub(started_at) / 1_000_000;
        let frame = within(budget_ms.saturating_sub(elapsed_ms), body.frame())
            .await
            .ok_or(BodyFailure::TimedOut)?;
        match frame {
            None => return Ok(ReadBody::Complete(bytes)),
            Some(Err(_)) => return Err(BodyFailure::Broken),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    bytes.extend_from_slice(&data);
                    if bytes.len() > limit {
                        return Ok(ReadBody::Truncated);
                    }
                }
            }
        }
    }
}

fn request_options(budget_ms: u64) -> RequestOptionsExtension {
    let ns = budget_ms.saturating_mul(1_000_000);
    let options = RequestOptions::new();
    // A host without a timeout kind keeps its own default; the guest's timer bounds
    // the waits either way.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    RequestOptionsExtension(options)
}

fn classify(code: &ErrorCode, secret: &str) -> TransportFailure {
    match code {
        ErrorCode::HttpRequestDenied => TransportFailure::Denied,
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => TransportFailure::TimedOut,
        ErrorCode::ConnectionRefused => TransportFailure::Unreachable("connection refused".into()),
        ErrorCode::ConnectionTerminated => {
            TransportFailure::Unreachable("connection closed by the service".into())
        }
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            TransportFailure::Unreachable("the service host name did not resolve".into())
        }
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => {
            TransportFailure::Unreachable("the TLS handshake failed".into())
        }
        other => TransportFailure::Unreachable(sanitize(&format!("{other:?}"), Some(secret))),
    }
}

fn to_wit_passage(passage: crate::Passage) -> Passage {
    Passage {
        id: passage.id,
        title: passage.title,
        content: passage.content,
        source: passage.source,
        score: passage.score,
    }
}

fn to_wit_error(error: crate::RetrievalError) -> RetrievalError {
    match error {
        crate::RetrievalError::InvalidQuery(m) => RetrievalError::InvalidQuery(m),
        crate::RetrievalError::IndexUnavailable(m) => RetrievalError::IndexUnavailable(m),
        crate::RetrievalError::Upstream(m) => RetrievalError::Upstream(m),
    }
}

async fn read_config() -> Result<Config, crate::RetrievalError> {
    let variables = chatgate_guest::read_variables(&config::VARIABLE_NAMES).await;
    Config::from_variables(|name| variables.get(name))
}
