use super::Headers;
use super::config::{Settings, VARIABLES};
use chatgate_guest::VariableValue;
use chatgate_guest_otel::{StageSpan, Tracer};
use chatgate_middleware::{Light, next};
use spin_sdk::http::{IntoResponse, Response};
use spin_sdk::wasip3::exports::http::handler::Guest;
use spin_sdk::wasip3::http::types::{ErrorCode, Request as WasiRequest, Response as WasiResponse};
use std::borrow::Cow;
use std::sync::{Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};
// Links the eight-bytes-at-a-time `memcmp` over wasi-libc's (crates/memcmp).
use chatgate_memcmp as _;
// Installs the size-class cache in front of dlmalloc as the allocator (crates/guest-alloc).
use chatgate_guest_alloc as _;

/// The span `auth` reports (`wasi:otel/tracing`).
const TRACER: Tracer = Tracer::new("chatgate-auth", env!("CARGO_PKG_VERSION"));

/// Exported on WASI's own types rather than with `#[http_service]`: the request goes on
/// untouched, or with its headers edited around its original body, and the next
/// handler's response comes back as it is (`crates/middleware` says what that saves).
struct Auth;

spin_sdk::wasip3::http::service::export!(Auth);

impl Guest for Auth {
    async fn handle(request: WasiRequest) -> Result<WasiResponse, ErrorCode> {
        // Its headers are copied once (auth looks for every `x-chatgate-` name) and
        // looked up in the copy, not parsed into a map.
        let mut incoming = Light::read(request)?;
        incoming.copy_headers();
        // `inward_from` works on a map: the `traceparent` values alone.
        let mut traceparent = http::HeaderMap::new();
        for value in
            Copied(incoming.copied().unwrap_or_default()).values(chatgate_guest_otel::TRACEPARENT)
        {
            let value = http::HeaderValue::from_bytes(value)
                .map_err(|error| ErrorCode::InternalError(Some(error.to_string())))?;
            traceparent.append(chatgate_guest_otel::TRACEPARENT, value);
        }
        let (mut stage, traceparent) = TRACER.inward_from("auth", &traceparent);
        if let Some(traceparent) = traceparent {
            incoming.set(
                chatgate_guest_otel::TRACEPARENT,
                traceparent.as_bytes().to_vec(),
            );
        }
        let outcome = authenticate_and_forward(incoming, &mut stage).await;
        stage.end_with(&outcome);
        outcome
    }
}

/// The request's headers as they came (a `copy-all`), for the decisions in `lib.rs`.
struct Copied<'a>(&'a [(String, Vec<u8>)]);

impl super::Headers for Copied<'_> {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_slice())
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(name, _)| name.as_str())
    }
}

async fn authenticate_and_forward(
    mut incoming: Light,
    stage: &mut StageSpan,
) -> Result<WasiResponse, ErrorCode> {
    let (method, path) = (incoming.method(), incoming.uri().path());
    let settings = if super::is_exempt(method, path) {
        Cow::Owned(Settings::default())
    } else {
        settings().await
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    // Tokens verified earlier are kept only beside settings kept for the instance (what
    // they were verified under); with settings read for this request alone, none is used.
    let mut tokens = matches!(settings, Cow::Borrowed(_))
        .then(|| VERIFIED_TOKENS.lock().unwrap_or_else(|e| e.into_inner()));
    let outcome = super::authenticate_with(
        incoming.method(),
        incoming.uri().path(),
        &Copied(incoming.copied().unwrap_or_default()),
        &settings,
        now,
        tokens.as_deref_mut(),
    );
    drop(tokens);
    stage.set_all(|| super::span_attributes(&outcome));
    // Counted for every request, traced or not (`wasi:otel/metrics`).
    if let super::Outcome::Unauthorized(refused) = &outcome {
        chatgate_guest_otel::count(
            &TRACER,
            "chatgate.auth.failures",
            "Requests refused for their credentials, by failure code.",
            &[("chatgate.auth.failure", refused.code.into())],
        );
    }
    if let Some(refusal) = super::refusal(&outcome) {
        let mut response = Response::new(refusal.body);
        *response.status_mut() = refusal.status;
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            spin_sdk::http::HeaderValue::from_static("application/json"),
        );
        if let Some(challenge) = refusal
            .www_authenticate
            .and_then(|c| spin_sdk::http::HeaderValue::from_str(&c).ok())
        {
            headers.insert("www-authenticate", challenge);
        }
        return response.into_response();
    }
    let super::Outcome::Forward(identity) = outcome else {
        return Err(ErrorCode::InternalError(None));
    };
    let headers = Copied(incoming.copied().unwrap_or_default());
    if !super::inward_unchanged(&headers, identity.as_ref()) {
        for edit in super::inward_edits(&headers, identity.as_ref()) {
            match edit {
                super::InwardEdit::Delete(name) => incoming.delete(name),
                super::InwardEdit::Set(name, value) => incoming.set(name, value.into_bytes()),
            }
        }
    }
    next(incoming.forward()?).await
}

/// The variables, read by the instance's first request that reads them all and kept for
/// its later ones. Safe across requests: they hold configuration only, the same for every
/// request (chatgate resolves variables at load; on Spin a provider's changed value
/// reaches new instances, each serving at most `--max-instance-reuse-count` requests).
/// Reading them costs six host calls per request otherwise.
static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Bearer tokens verified by this instance under its kept settings (see `verified.rs` for
/// why that is safe): a client's next request with the same token skips the signature
/// check and the JWKS parse.
static VERIFIED_TOKENS: Mutex<super::verified::VerifiedTokens> =
    Mutex::new(super::verified::VerifiedTokens::new());

async fn settings() -> Cow<'static, Settings> {
    if let Some(kept) = SETTINGS.get() {
        return Cow::Borrowed(kept);
    }
    let read = read_settings().await;
    if read.fully_read() {
        Cow::Borrowed(SETTINGS.get_or_init(|| read))
    } else {
        Cow::Owned(read)
    }
}

async fn read_settings() -> Settings {
    let values = chatgate_guest_io::read_variables(&VARIABLES).await;
    Settings::read(|name| match values.get(name) {
        VariableValue::Value(value) => Ok(Some(value)),
        VariableValue::Missing => Ok(None),
        VariableValue::Unreadable => Err(()),
    })
}
