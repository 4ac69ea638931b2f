//! Fetching managed-identity tokens: the key-value cache and the request to the
//! token endpoint, for every component that authenticates with Entra ID. What a token
//! answer means is `chatgate_guest::identity`'s (pure, tested natively); the waits and
//! what a failure means for the caller stay with each component.

use crate::{ReadBody, classify, read_body, wall_clock_ms, within};
use bytes::Bytes;
use chatgate_guest::identity::{
    FetchFailure, MAX_TOKEN_BODY_BYTES, ManagedIdentity, TOKEN_REQUEST_HEADERS, Token, parse_token,
    token_error,
};
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

/// `identity`'s token: the one cached in `store` while it is still
/// [usable](Token::usable), else a new one from the token endpoint, which is then
/// cached. Without a store (not granted, or failing) every call fetches its own, and a
/// token that cannot be cached still serves this call.
pub async fn fetch_token(
    identity: &ManagedIdentity<'_>,
    store: Option<&Store>,
    waits: TokenWaits<impl FnOnce() -> u64>,
) -> Result<Token, FetchFailure> {
    let key = identity.cache_key();
    let now_unix = wall_clock_ms() / 1000;
    if let Some(store) = store
        && let Ok(Some(bytes)) = store.get(&key).await
        && let Some(token) = Token::from_bytes(&bytes)
        && token.usable(now_unix)
    {
        return Ok(token);
    }
    let mut builder = http::Request::builder()
        .method(http::Method::GET)
        .uri(identity.url())
        .extension(waits.options);
    for (name, value) in TOKEN_REQUEST_HEADERS {
        builder = builder.header(name, value);
    }
    let request = builder
        .body(FullBody::new(Bytes::new()))
        .map_err(|_| FetchFailure::Unbuildable)?;
    let response = match within(waits.answer_ms, spin_sdk::http::send(request)).await {
        None => return Err(FetchFailure::TimedOut),
        // No credential was sent, so there is nothing to redact.
        Some(Err(code)) => return Err(FetchFailure::Transport(classify(&code, None))),
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
        return Err(FetchFailure::Token(token_error(
            status,
            &body,
            identity.client_id_variable,
        )));
    }
    let token = parse_token(&body, now_unix).map_err(FetchFailure::Token)?;
    if let Some(store) = store {
        let _ = store.set(&key, &token.to_bytes()).await;
    }
    Ok(token)
}

/// Drops `identity`'s cached token, after a service refused it: it may have been
/// revoked, and the next call should not send it again.
pub async fn forget_token(identity: &ManagedIdentity<'_>, store: Option<&Store>) {
    if let Some(store) = store {
        let _ = store.delete(&identity.cache_key()).await;
    }
}
