//! The wasm side of the helpers chatgate's components share: reading their Spin
//! variables, deadlines and clocks for host calls, `wasi:http` request options, bounded
//! reads of outbound responses, what a failed outbound call means, and fetching
//! Entra ID tokens, managed or workload identity ([`identity`]). The decisions these feed (configuration,
//! error mapping, redaction) live in the pure `chatgate-guest`, which builds natively.

// No bindings are generated here: spin-sdk's are used, so nothing needs `unsafe`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![cfg(target_arch = "wasm32")]

pub mod identity;

use chatgate_guest::{TransportFailure, VariableValue, Variables, sanitize};
use futures_util::future::{Either, select};
use spin_sdk::wasip3::clocks::{monotonic_clock, system_clock};
use spin_sdk::wasip3::http::types::ErrorCode;
use std::pin::pin;

/// Reads every variable in `names` from Spin: a name the component does not declare
/// is [`VariableValue::Missing`] (its default applies), one the host cannot resolve
/// [`VariableValue::Unreadable`].
pub async fn read_variables(names: &[&'static str]) -> Variables {
    let mut values = Vec::with_capacity(names.len());
    for &name in names {
        let value = match spin_sdk::variables::get(name).await {
            Ok(value) => VariableValue::Value(value),
            Err(spin_sdk::variables::Error::Undefined(_)) => VariableValue::Missing,
            Err(_) => VariableValue::Unreadable,
        };
        values.push((name, value));
    }
    Variables::new(values)
}

/// `future`'s output, or `None` if `ms` milliseconds pass first (the future is
/// then dropped, which cancels the host call behind it).
pub async fn within<F: Future>(ms: u64, future: F) -> Option<F::Output> {
    let future = pin!(future);
    let timer = pin!(sleep_ms(ms));
    match select(future, timer).await {
        Either::Left((output, _)) => Some(output),
        Either::Right(_) => None,
    }
}

/// A response body as far as it was read.
pub enum ReadBody {
    /// The whole body, at most the limit.
    Complete(Vec<u8>),
    /// Longer than the limit; the rest was not read.
    Truncated,
}

/// Why a response body could not be read.
pub enum BodyFailure {
    /// The budget ran out first.
    TimedOut,
    /// The body broke off.
    Broken,
}

/// Reads `response`'s body, at most `limit` bytes of it, within `budget_ms`
/// milliseconds in all: a stalled or endless body cannot hold the caller.
pub async fn read_body(
    response: spin_sdk::http::Response,
    limit: usize,
    budget_ms: u64,
) -> Result<ReadBody, BodyFailure> {
    use http_body_util::BodyExt;
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

/// `wasi:http` request options that ask the host to give up after `budget_ms`
/// (connecting, waiting for the first byte, between bytes).
pub fn request_options(budget_ms: u64) -> spin_sdk::wasip3::http_compat::RequestOptionsExtension {
    let ns = budget_ms.saturating_mul(1_000_000);
    let options = spin_sdk::wasip3::http::types::RequestOptions::new();
    // A host without a timeout kind keeps its own default; the guest's timer bounds
    // the waits either way.
    let _ = options.set_connect_timeout(Some(ns));
    let _ = options.set_first_byte_timeout(Some(ns));
    let _ = options.set_between_bytes_timeout(Some(ns));
    spin_sdk::wasip3::http_compat::RequestOptionsExtension(options)
}

/// What an outbound call's `wasi:http` error means for the caller. `secret` (the
/// credential that was sent) is redacted from the description of an unexpected code.
pub fn classify(code: &ErrorCode, secret: Option<&str>) -> TransportFailure {
    let unreachable = |why: &str| TransportFailure::Unreachable(why.to_string());
    match code {
        ErrorCode::HttpRequestDenied => TransportFailure::Denied,
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => TransportFailure::TimedOut,
        ErrorCode::ConnectionRefused => unreachable("connection refused"),
        ErrorCode::ConnectionTerminated => unreachable("connection closed by the server"),
        ErrorCode::DnsError(_) | ErrorCode::DestinationNotFound => {
            unreachable("the host name did not resolve")
        }
        ErrorCode::TlsProtocolError
        | ErrorCode::TlsCertificateError
        | ErrorCode::TlsAlertReceived(_) => unreachable("the TLS handshake failed"),
        other => TransportFailure::Unreachable(sanitize(&format!("{other:?}"), secret)),
    }
}

/// Waits `ms` milliseconds on the host's monotonic clock: backoffs, pauses before a
/// retry, and the timer [`within`] races against.
pub async fn sleep_ms(ms: u64) {
    monotonic_clock::wait_for(ms.saturating_mul(1_000_000)).await;
}

/// Milliseconds since the Unix epoch.
pub fn wall_clock_ms() -> u64 {
    let now = system_clock::now();
    u64::try_from(now.seconds)
        .unwrap_or(0)
        .saturating_mul(1000)
        .saturating_add(u64::from(now.nanoseconds) / 1_000_000)
}
