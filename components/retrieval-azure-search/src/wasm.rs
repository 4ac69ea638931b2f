//! The WASI side: Spin variables, the key-value store, clocks and outbound HTTP around
//! the plain modules, and the conversions to and from the WIT types.
//!
//! The deadline (`azure_search_timeout_ms`) is enforced here by racing every wait on
//! the network against a timer, whether or not the host honours the `wasi:http`
//! request options it is also given. It covers fetching a managed-identity token too.

use crate::config::{self, Auth, Config};
use crate::errors::{FailedAnswer, error_for_status, retry_delay_ms, token_error, transport_error};
use crate::request::{Credential, Plan, SearchRequest, headers, plan};
use crate::response::parse_results;
use crate::{MAX_ERROR_BODY_BYTES, MAX_RESULT_BODY_BYTES};
use bytes::Bytes;
use chatgate_guest::identity::Token;
use chatgate_guest::token_source::TokenSource;
use chatgate_guest_io::identity::{TokenWaits, fetch_token, forget_token};
use chatgate_guest_io::{
    BodyFailure, ReadBody, classify, read_body, request_options, sleep_ms, wall_clock_ms, within,
};
use spin_sdk::http::FullBody;
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::clocks::monotonic_clock;
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

spin_sdk::wit_bindgen::generate!({
    path: "../../wit",
    world: "retrieval-provider",
    runtime_path: "::spin_sdk::wit_bindgen::rt",
    generate_all,
});

use exports::chatgate::retriever::retriever::{Filter, Guest, Passage, RetrievalError};
chatgate_rag::retriever_conversions!(exports::chatgate::retriever::retriever);

struct AzureSearchRetriever;

impl Guest for AzureSearchRetriever {
    async fn search(
        query: String,
        top_k: u32,
        filters: Vec<Filter>,
    ) -> Result<Vec<Passage>, RetrievalError> {
        let filters: Vec<crate::Filter> = filters.into_iter().map(Into::into).collect();
        search(&query, top_k, &filters)
            .await
            .map(|passages| passages.into_iter().map(Into::into).collect())
            .map_err(Into::into)
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
    // Fetched only once the request is known to be worth sending.
    let source = token_source(&config.auth);
    // Without a store (not granted, or failing) every call fetches its own token.
    let store = match source {
        Some(_) => Store::open_default().await.ok(),
        None => None,
    };
    let fetch = async |source: &TokenSource<'_>| -> Result<Token, crate::RetrievalError> {
        // The whole fetch, like the search, lives within the one deadline.
        let budget_ms = remaining_ms();
        let waits = TokenWaits {
            options: request_options(budget_ms),
            answer_ms: budget_ms,
            read_ms: remaining_ms,
        };
        fetch_token(source, store.as_ref(), waits)
            .await
            .map_err(|failure| token_error(failure, budget_ms, source))
    };
    let mut token = match &source {
        Some(source) => Some(fetch(source).await?),
        None => None,
    };
    let mut retried = false;
    let mut token_renewed = false;
    loop {
        let credential = match (&token, &config.auth) {
            (Some(token), _) => Credential::Bearer(token.expose()),
            (None, Auth::ApiKey(key)) => Credential::ApiKey(key.expose()),
            // Not reached: an identity's token was fetched above, or the call ended.
            (None, _) => {
                return Err(crate::RetrievalError::IndexUnavailable(
                    "no credential for the search request".into(),
                ));
            }
        };
        match attempt(&config, &request, credential, remaining_ms).await {
            Attempt::Done(result) => return result,
            Attempt::Failed {
                status,
                retry_after,
                error,
            } => {
                if matches!(status, 401 | 403)
                    && let Some(source) = &source
                {
                    forget_token(source, store.as_ref()).await;
                    // A token refused as invalid (401: expired early, revoked) is
                    // replaced once; a 403 is about roles, which a new token does not change.
                    if status == 401 && !token_renewed {
                        token_renewed = true;
                        token = Some(fetch(source).await?);
                        continue;
                    }
                }
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

/// Where the token for `auth` comes from, if it uses one.
fn token_source(auth: &Auth) -> Option<TokenSource<'_>> {
    match auth {
        Auth::ApiKey(_) => None,
        Auth::Entra(identity) => Some(identity.token_source(
            config::TOKEN_RESOURCE,
            "retrieval-azure-search",
            &config::IDENTITY_VARIABLES,
        )),
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
    credential: Credential<'_>,
    remaining_ms: impl Fn() -> u64,
) -> Attempt {
    let timed_out = || {
        Attempt::Done(Err(crate::RetrievalError::Timeout(format!(
            "Azure AI Search did not answer within {} ms",
            config.timeout_ms
        ))))
    };
    let secret = credential.secret();
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri(&request.url)
        .extension(request_options(remaining_ms()));
    for (name, value) in headers(credential) {
        builder = builder.header(name, value);
    }
    // Only a header or the URI can make the builder fail, and the config module
    // validated both; its text is not used because a header holds the credential.
    let Ok(outbound) = builder.body(FullBody::new(Bytes::from(request.body.to_string()))) else {
        return Attempt::Done(Err(crate::RetrievalError::IndexUnavailable(
            "could not build the search request".into(),
        )));
    };
    let response = match within(remaining_ms(), spin_sdk::http::send(outbound)).await {
        None => return timed_out(),
        Some(Err(code)) => {
            return Attempt::Done(Err(transport_error(&classify(&code, Some(secret)))));
        }
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
    let error = error_for_status(
        FailedAnswer {
            status,
            retry_after: retry_after.as_deref(),
            body: &body,
        },
        wall_clock_ms(),
        secret,
        &config.auth,
    );
    Attempt::Failed {
        status,
        retry_after,
        error,
    }
}

async fn read_config() -> Result<Config, crate::RetrievalError> {
    let variables = chatgate_guest_io::read_variables(&config::VARIABLE_NAMES).await;
    Config::from_variables(|name| variables.get(name))
}
