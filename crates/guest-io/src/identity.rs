//! Fetching Entra ID tokens: the key-value cache and the request to the token endpoint,
//! for every component that authenticates with Entra ID, whether from a managed-identity
//! (IMDS-shaped) endpoint or by exchanging a projected service-account token (workload
//! identity federation, the token file read through the component's `files`). What a
//! token answer means is `chatgate_guest::identity`'s and `workload_identity`'s (pure,
//! tested natively); the waits and what a failure means for the caller stay with each
//! component.

use crate::{ReadBody, classify, read_body, wall_clock_ms, within};
use bytes::Bytes;
use chatgate_guest::identity::{
    FetchFailure, MAX_TOKEN_BODY_BYTES, TOKEN_REQUEST_HEADERS, Token, parse_token_from, token_error,
};
use chatgate_guest::token_source::TokenSource;
use chatgate_guest::workload_identity::{EXCHANGE_HEADERS, MAX_TOKEN_FILE_BYTES, WorkloadIdentity};
use spin_sdk::http::FullBody;
use spin_sdk::key_value::Store;
use spin_sdk::wasip3::http_compat::RequestOptionsExtension;

/// How long a token fetch may wait: the components bound it differently (one
/// deadline for everything, or connect, first-byte and idle timeouts).
pub struct TokenWaits<F: FnOnce() -> u64> {
    /// Passed to the host with the request.
    pub options: RequestOptionsExtension,
    /// For the answer's headers, by the guest's own timer.
    pub answer_ms: u64,
    /// For the body, asked once the headers are in, so it can be what is left of a
    /// deadline.
    pub read_ms: F,
}

/// `source`'s token: the one cached in `store` while it is still
/// [usable](Token::usable), else a new one from the token endpoint, which is then
/// cached. Without a store (not granted, or failing) every call fetches its own, and a
/// token that cannot be cached still serves this call. A workload identity's token file
/// is read only here, when a new token is needed: the kubelet's latest is what is sent.
pub async fn fetch_token(
    source: &TokenSource<'_>,
    store: Option<&Store>,
    waits: TokenWaits<impl FnOnce() -> u64>,
) -> Result<Token, FetchFailure> {
    let key = source.cache_key();
    let now_unix = wall_clock_ms() / 1000;
    if let Some(store) = store
        && let Ok(Some(bytes)) = store.get(&key).await
        && let Some(token) = Token::from_bytes(&bytes)
        && token.usable(now_unix)
    {
        return Ok(token);
    }
    // The assertion is the one secret sent; it is redacted from whatever comes back.
    let mut assertion = None;
    let builder = match source {
        TokenSource::Managed(identity) => {
            let mut builder = http::Request::builder()
                .method(http::Method::GET)
                .uri(identity.url());
            for (name, value) in TOKEN_REQUEST_HEADERS {
                builder = builder.header(name, value);
            }
            builder.body(FullBody::new(Bytes::new()))
        }
        TokenSource::Workload(identity) => {
            let jwt = read_assertion(identity)?;
            let body = identity.form_body(&jwt);
            assertion = Some(jwt);
            let mut builder = http::Request::builder()
                .method(http::Method::POST)
                .uri(identity.url());
            for (name, value) in EXCHANGE_HEADERS {
                builder = builder.header(name, value);
            }
            builder.body(FullBody::new(Bytes::from(body)))
        }
    };
    let mut request = builder.map_err(|_| FetchFailure::Unbuildable)?;
    request.extensions_mut().insert(waits.options);
    let response = match within(waits.answer_ms, spin_sdk::http::send(request)).await {
        None => return Err(FetchFailure::TimedOut),
        Some(Err(code)) => {
            return Err(FetchFailure::Transport(classify(
                &code,
                assertion.as_deref(),
            )));
        }
        Some(Ok(response)) => response,
    };
    let status = response.status().as_u16();
    let succeeded = (200..300).contains(&status);
    let body = match read_body(response, MAX_TOKEN_BODY_BYTES, (waits.read_ms)()).await {
        Ok(ReadBody::Complete(body)) => body,
        // A refusal still says enough by its status.
        _ if !succeeded => Vec::new(),
        _ => return Err(FetchFailure::Unreadable),
    };
    if !succeeded {
        return Err(FetchFailure::Token(match source {
            TokenSource::Managed(identity) => {
                token_error(status, &body, identity.client_id_variable)
            }
            TokenSource::Workload(identity) => {
                identity.exchange_error(status, &body, assertion.as_deref().unwrap_or_default())
            }
        }));
    }
    let token =
        parse_token_from(&body, now_unix, source.endpoint()).map_err(FetchFailure::Token)?;
    if let Some(store) = store {
        let _ = store.set(&key, &token.to_bytes()).await;
    }
    Ok(token)
}

/// The projected service-account token, read now (through the component's `files`):
/// a missing, unreadable or oversized file is a refusal naming the file, never quoting it.
fn read_assertion(identity: &WorkloadIdentity<'_>) -> Result<String, FetchFailure> {
    use std::io::{ErrorKind, Read};
    let refused = |why: &str| FetchFailure::Token(identity.unreadable_file(why));
    let describe = |error: std::io::Error| match error.kind() {
        ErrorKind::NotFound => refused("no such file (is its directory mounted?)"),
        ErrorKind::PermissionDenied => refused("permission denied"),
        _ => refused("it could not be read"),
    };
    let file = std::fs::File::open(identity.token_file).map_err(describe)?;
    let mut contents = Vec::new();
    file.take(MAX_TOKEN_FILE_BYTES + 1)
        .read_to_end(&mut contents)
        .map_err(describe)?;
    if contents.len() as u64 > MAX_TOKEN_FILE_BYTES {
        return Err(refused("it is too large to be a token"));
    }
    identity.assertion(&contents).map_err(FetchFailure::Token)
}

/// Drops `source`'s cached token, after a service refused it: it may have been
/// revoked, and the next call should not send it again.
pub async fn forget_token(source: &TokenSource<'_>, store: Option<&Store>) {
    if let Some(store) = store {
        let _ = store.delete(&source.cache_key()).await;
    }
}
