//! The WASI side: the preloaded index, Spin variables, the query's embedding over
//! outbound HTTP (raced against `retrieval_embeddings_timeout_ms`), and the WIT
//! conversions.

use crate::config::{self, Config, EmbeddingsConfig};
use crate::embeddings::{self, EmbeddingFailure};
use crate::{Loaded, NOT_PRELOADED, PRELOAD_PATH};
use bytes::Bytes;
use chatgate_guest::TransportFailure;
use chatgate_guest::identity::{FetchFailure, Token};
use chatgate_guest_io::identity::{TokenWaits, fetch_token, forget_token};
use chatgate_guest_io::{BodyFailure, ReadBody, classify, read_body, request_options, within};
use chatgate_index::{EmbeddingInfo, Filter as IndexFilter, SearchError, SearchRequest};
use spin_sdk::http::FullBody;
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::clocks::monotonic_clock;
use std::sync::OnceLock;
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "preloaded-retrieval-provider",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use exports::chatgate::retriever::retriever::{Filter, FilterRefusal, Passage, RetrievalError};
chatgate_rag::retriever_conversions!(exports::chatgate::retriever::retriever);

/// Set once, by `wizer-initialize` at build time; every instance of the snapshot has it.
static PRELOADED: OnceLock<Loaded> = OnceLock::new();

struct Retriever;

impl Guest for Retriever {
    /// Runs under `chatgate index` only. A failure panics, which fails the build with
    /// the message, rather than deploying a component without its index.
    fn wizer_initialize() {
        // The snapshot keeps the index, not the blocks loading it freed.
        chatgate_guest_alloc::keeping_nothing_freed(|| {
            let bytes = std::fs::read(PRELOAD_PATH)
                .unwrap_or_else(|error| panic!("reading {PRELOAD_PATH}: {error}"));
            let loaded = crate::load(bytes)
                .unwrap_or_else(|error| panic!("opening {PRELOAD_PATH}: {error}"));
            let _ = PRELOADED.set(loaded);
        });
        // Reading the index made wasi-libc list the preopened directories of this
        // build-time run (`/index`), and the snapshot would keep that list: a deployed
        // instance would then look up every path (a workload identity's token file) among
        // handles of the build's store and find nothing. wasi-libc offers this reset to
        // pre-initialisers, so that the first lookup at run time lists the deployment's
        // directories. `tests/tests/e2e/hybrid.rs` (keyless embeddings) fails without it.
        #[allow(unsafe_code)]
        // SAFETY: takes no arguments; no descriptor from the table is in use (the index
        // file was read whole and closed).
        unsafe {
            __wasilibc_reset_preopens()
        };
    }
}

#[allow(unsafe_code)]
unsafe extern "C" {
    /// wasi-libc's: forgets the preopened directories it listed.
    fn __wasilibc_reset_preopens();
}

impl exports::chatgate::retriever::retriever::Guest for Retriever {
    async fn search(
        query: String,
        top_k: u32,
        filters: Vec<Filter>,
    ) -> Result<Vec<Passage>, RetrievalError> {
        let Some(loaded) = PRELOADED.get() else {
            return Err(RetrievalError::IndexUnavailable(NOT_PRELOADED.into()));
        };
        let variables = chatgate_guest_io::read_variables(config::VARIABLES).await;
        let config = Config::from_variables(&variables)
            .map_err(|error| RetrievalError::IndexUnavailable(error.0))?;
        let filters: Vec<chatgate_rag::retriever::Filter> =
            filters.into_iter().map(Into::into).collect();
        chatgate_rag::retriever::check_search(top_k, &filters)?;
        let filters: Vec<IndexFilter> = filters
            .into_iter()
            .map(|filter| IndexFilter {
                field: filter.field,
                value: filter.value,
            })
            .collect();
        let invalid = |SearchError::InvalidQuery(message)| RetrievalError::InvalidQuery(message);
        // A query the index refuses anyway is not worth an embedding request.
        if let Err(SearchError::InvalidQuery(message)) = loaded.index.allowed(&filters) {
            // The index refuses filters only; the first one it refuses alone is named.
            let refused = filters
                .iter()
                .find(|filter| loaded.index.allowed(std::slice::from_ref(filter)).is_err());
            return Err(RetrievalError::InvalidFilter(FilterRefusal {
                field: refused.map(|filter| filter.field.clone()),
                message,
            }));
        }
        let query_vector = match (&config.embeddings, &loaded.index.params().embedding) {
            (Some(endpoint), Some(info)) if top_k > 0 && !query.trim().is_empty() => {
                match embed(endpoint, info, &query).await {
                    Ok(vector) => Some(vector),
                    Err(failure) => {
                        eprintln!("{}", embeddings::fallback_line(&failure));
                        None
                    }
                }
            }
            _ => None,
        };
        let request = SearchRequest {
            query: &query,
            top_k: top_k as usize,
            filters: &filters,
            min_score: config.min_score,
            query_vector: query_vector.as_deref(),
            min_similarity: config.min_similarity,
        };
        let hits = loaded
            .index
            .search(&loaded.analyzer, &request)
            .map_err(invalid)?;
        Ok(hits
            .into_iter()
            .map(|hit| {
                let passage = loaded.index.passage(hit.chunk);
                chatgate_rag::retriever::Passage {
                    id: passage.id,
                    title: passage.title.to_string(),
                    content: passage.text.to_string(),
                    source: passage.source.to_string(),
                    score: hit.score,
                    // The index keeps document metadata for filtering only; it does not
                    // hand it out with a passage (`chatgate_index::Passage`).
                    metadata: Vec::new(),
                }
                .into()
            })
            .collect())
    }
}

export!(Retriever);

/// `query`'s embedding by `endpoint`, with the model the index was built with unless
/// the deployment names another, within the endpoint's timeout in all.
async fn embed(
    endpoint: &EmbeddingsConfig,
    info: &EmbeddingInfo,
    query: &str,
) -> Result<Vec<f32>, EmbeddingFailure> {
    let started_at = monotonic_clock::now();
    let remaining_ms = || {
        let elapsed_ms = monotonic_clock::now().saturating_sub(started_at) / 1_000_000;
        endpoint.timeout_ms.saturating_sub(elapsed_ms)
    };
    let timed_out = EmbeddingFailure::TimedOut {
        timeout_ms: endpoint.timeout_ms,
    };
    let model = endpoint.model.as_deref().unwrap_or(&info.model);
    let source = endpoint.identity.as_ref().map(|identity| {
        identity.token_source(
            config::TOKEN_RESOURCE,
            CACHE_OWNER,
            &config::IDENTITY_VARIABLES,
        )
    });
    // Without a store (`key_value_stores` not inherited, or failing) every query
    // fetches its own token.
    let store = match source {
        Some(_) => Store::open_default().await.ok(),
        None => None,
    };
    let token = match &source {
        Some(source) => {
            let budget_ms = remaining_ms();
            let waits = TokenWaits {
                options: request_options(budget_ms),
                answer_ms: budget_ms,
                read_ms: remaining_ms,
            };
            Some(
                fetch_token(source, store.as_ref(), waits)
                    .await
                    .map_err(|failure| token_failure(failure, endpoint.timeout_ms))?,
            )
        }
        None => None,
    };
    let planned = embeddings::request(endpoint, model, query, token.as_ref().map(Token::expose))?;
    let secret = match &token {
        Some(token) => Some(token.expose()),
        None => endpoint.api_key.as_ref().map(|key| key.expose()),
    };
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(&planned.url)
        .extension(request_options(remaining_ms()));
    for (name, value) in &planned.headers {
        builder = builder.header(*name, value);
    }
    // The configuration was validated, so only a header can fail here; its text is not
    // used because a header holds the key.
    let Ok(outbound) = builder.body(FullBody::new(Bytes::from(planned.body))) else {
        return Err(EmbeddingFailure::Unreachable(
            "the request could not be built (check retrieval_embeddings_api_key)".into(),
        ));
    };
    let response = match within(remaining_ms(), spin_sdk::http::send(outbound)).await {
        None => return Err(timed_out),
        Some(Err(code)) => return Err(transport_failure(classify(&code, secret))),
        Some(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let succeeded = (200..300).contains(&status);
    let limit = if succeeded {
        embeddings::MAX_BODY_BYTES
    } else {
        embeddings::MAX_ERROR_BODY_BYTES
    };
    let body = match read_body(response, limit, remaining_ms()).await {
        Ok(ReadBody::Complete(body)) => body,
        // A refusal still says enough by its status.
        _ if !succeeded => Vec::new(),
        Ok(ReadBody::Truncated) => {
            return Err(EmbeddingFailure::Malformed(format!(
                "the answer is larger than {} bytes",
                embeddings::MAX_BODY_BYTES
            )));
        }
        Err(BodyFailure::TimedOut) => return Err(timed_out),
        Err(BodyFailure::Broken) => {
            return Err(EmbeddingFailure::Unreachable("the answer broke off".into()));
        }
    };
    if !succeeded {
        // A refused token may have been revoked: the next query fetches a new one.
        if let (Some(source), 401) = (&source, status) {
            forget_token(source, store.as_ref()).await;
        }
        return Err(embeddings::status_failure(status, &body, secret));
    }
    embeddings::parse_vector(&body, info.dimensions as usize)
}

/// Names the component in the token cache's keys: components may share a store.
const CACHE_OWNER: &str = "retrieval";

/// Why no token could be had, without the assertion or any token.
fn token_failure(failure: FetchFailure, timeout_ms: u64) -> EmbeddingFailure {
    match failure {
        FetchFailure::Token(failure) => EmbeddingFailure::NoToken(failure.message().to_string()),
        FetchFailure::TimedOut | FetchFailure::Transport(TransportFailure::TimedOut) => {
            EmbeddingFailure::TimedOut { timeout_ms }
        }
        FetchFailure::Transport(TransportFailure::Denied) => EmbeddingFailure::NoToken(format!(
            "the host refused the token request: {} or {} must be in chat's allowed_outbound_hosts",
            config::IDENTITY_VARIABLES.token_origin,
            config::IDENTITY_VARIABLES.authority_host
        )),
        FetchFailure::Transport(TransportFailure::Unreachable(why)) => {
            EmbeddingFailure::NoToken(format!("the token endpoint could not be reached: {why}"))
        }
        FetchFailure::Unbuildable => {
            EmbeddingFailure::NoToken("the token request could not be built".into())
        }
        FetchFailure::Unreadable => {
            EmbeddingFailure::NoToken("the token endpoint's answer could not be read".into())
        }
    }
}

/// What a failed embeddings request means here: a timeout is reported as the
/// endpoint being unreachable, since the search goes on from BM25 alone either way.
fn transport_failure(failure: TransportFailure) -> EmbeddingFailure {
    match failure {
        TransportFailure::Denied => EmbeddingFailure::Denied,
        TransportFailure::TimedOut => {
            EmbeddingFailure::Unreachable("the connection timed out".into())
        }
        TransportFailure::Unreachable(why) => EmbeddingFailure::Unreachable(why),
    }
}
