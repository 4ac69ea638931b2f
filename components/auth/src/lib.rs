//! Authentication middleware. Callers present an API key (`Authorization: Bearer <key>` or
//! `api-key: <key>`) or an RS256 JWT (`Authorization: Bearer <jwt>`). On success the request
//! goes inward without its credential and without any client-sent `x-chatgate-*` header,
//! carrying instead `x-chatgate-subject` and `x-chatgate-auth`, the only identity inner
//! components trust. `GET /healthz` is exempt.
//!
//! Decisions are made here and tested natively; the `wasm` module reads variables and the clock.

pub mod api_keys;
pub mod config;
pub mod jwt;
pub mod verified;

use chatgate_guest::header_value::visible_ascii;
use config::{ConfigError, Mode, Settings};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use verified::VerifiedTokens;

pub const SUBJECT_HEADER: &str = "x-chatgate-subject";
pub const AUTH_HEADER: &str = "x-chatgate-auth";
const IDENTITY_HEADER_PREFIX: &str = "x-chatgate-";
const API_KEY_HEADER: &str = "api-key";
const REALM_CHALLENGE: &str = "Bearer realm=\"chatgate\"";

/// The request headers authentication reads, by name: an `http::HeaderMap`, or the
/// middleware's copy of a WASI request's headers, which it does not parse into a map.
pub trait Headers {
    /// The values of the header `name` (lowercase), in order.
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a;
    /// The name of every header (lowercase), in order; a name sent twice may come twice.
    fn names(&self) -> impl Iterator<Item = &str>;
}

impl Headers for HeaderMap {
    fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.get_all(name).iter().map(HeaderValue::as_bytes)
    }

    fn names(&self) -> impl Iterator<Item = &str> {
        self.keys().map(http::HeaderName::as_str)
    }
}

/// No value, one value, or several.
enum Values<'a> {
    None,
    One(&'a [u8]),
    Several,
}

fn values_of<'a>(headers: &'a impl Headers, name: &'a str) -> Values<'a> {
    let mut values = headers.values(name);
    match (values.next(), values.next()) {
        (None, _) => Values::None,
        (Some(value), None) => Values::One(value),
        (Some(_), Some(_)) => Values::Several,
    }
}

/// How the caller was admitted; the value of `x-chatgate-auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Jwt,
    ApiKey,
    Disabled,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api-key",
            AuthMethod::Disabled => "disabled",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub subject: String,
    pub method: AuthMethod,
}

/// A 401: the OpenAI-style error code, a message, and whether a credential was presented
/// (which adds `error="invalid_token"` to the challenge, RFC 6750 §3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized {
    pub code: &'static str,
    pub message: String,
    /// Set when a credential was presented and refused.
    pub error_description: Option<&'static str>,
}

impl Unauthorized {
    fn missing() -> Self {
        Self {
            code: "invalid_api_key",
            message: "Missing credentials: send `Authorization: Bearer <api key or token>` or an `api-key` header.".to_owned(),
            error_description: None,
        }
    }

    fn refused(code: &'static str, message: &str, description: &'static str) -> Self {
        Self {
            code,
            message: message.to_owned(),
            error_description: Some(description),
        }
    }

    pub fn www_authenticate(&self) -> String {
        match self.error_description {
            None => REALM_CHALLENGE.to_owned(),
            Some(description) => format!(
                "{REALM_CHALLENGE}, error=\"invalid_token\", error_description=\"{description}\""
            ),
        }
    }

    pub fn body(&self) -> String {
        error_body(&self.message, "invalid_request_error", self.code)
    }
}

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Pass inward; `None` for exempt paths, which get no identity headers.
    Forward(Option<Identity>),
    Unauthorized(Unauthorized),
    /// A variable is invalid: answer 500 and name it.
    Misconfigured(ConfigError),
}

/// The only unauthenticated route: liveness probes carry no credentials.
pub fn is_exempt(method: &Method, path: &str) -> bool {
    method == Method::GET && path == "/healthz"
}

/// The credential a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Credential<'a> {
    None,
    Bearer(&'a str),
    ApiKeyHeader(&'a str),
    /// Several credentials, or an `Authorization` that is not a usable bearer credential.
    Unusable(&'static str),
}

fn credential(headers: &impl Headers) -> Credential<'_> {
    let authorization = values_of(headers, http::header::AUTHORIZATION.as_str());
    let api_key = values_of(headers, API_KEY_HEADER);
    match (authorization, api_key) {
        (Values::None, Values::None) => Credential::None,
        (Values::One(value), Values::None) => {
            let Some(value) = visible_ascii(value) else {
                return Credential::Unusable("The Authorization header is malformed");
            };
            let (scheme, token) = value.trim().split_once(' ').unwrap_or((value.trim(), ""));
            let token = token.trim_start();
            if !scheme.eq_ignore_ascii_case("bearer") {
                Credential::Unusable("Only the Bearer authorization scheme is supported")
            } else if token.is_empty() || token.contains(char::is_whitespace) {
                Credential::Unusable("The bearer credential is malformed")
            } else {
                Credential::Bearer(token)
            }
        }
        (Values::None, Values::One(value)) => match visible_ascii(value) {
            Some(key) if !key.trim().is_empty() => Credential::ApiKeyHeader(key.trim()),
            _ => Credential::Unusable("The api-key header is malformed"),
        },
        _ => Credential::Unusable("Send exactly one credential"),
    }
}

/// The header in which the Spin host reports the client's socket address; the host
/// sets it on every request, replacing any value the client sent.
pub const CLIENT_ADDRESS_HEADER: &str = "spin-client-addr";

/// Whether the host reports a loopback client. Without the header, fail closed.
fn client_is_loopback(headers: &impl Headers) -> bool {
    headers
        .values(CLIENT_ADDRESS_HEADER)
        .next()
        .and_then(visible_ascii)
        .and_then(|v| v.parse::<std::net::SocketAddr>().ok())
        .is_some_and(|addr| addr.ip().is_loopback())
}

/// Decides whether the request may go inward, and as whom.
pub fn authenticate(
    method: &Method,
    path: &str,
    headers: &impl Headers,
    settings: &Settings,
    now_unix: i64,
) -> Outcome {
    authenticate_with(method, path, headers, settings, now_unix, None)
}

/// Like [`authenticate`], finding a bearer token in `tokens` (and keeping it there once
/// verified) when given them: they must have been kept under these same `settings`.
pub fn authenticate_with(
    method: &Method,
    path: &str,
    headers: &impl Headers,
    settings: &Settings,
    now_unix: i64,
    tokens: Option<&mut VerifiedTokens>,
) -> Outcome {
    if is_exempt(method, path) {
        return Outcome::Forward(None);
    }
    match decide(headers, settings, now_unix, tokens) {
        Ok(Ok(identity)) => Outcome::Forward(Some(identity)),
        Ok(Err(unauthorized)) => Outcome::Unauthorized(unauthorized),
        Err(config_error) => Outcome::Misconfigured(config_error),
    }
}

fn decide(
    headers: &impl Headers,
    settings: &Settings,
    now_unix: i64,
    tokens: Option<&mut VerifiedTokens>,
) -> Result<Result<Identity, Unauthorized>, ConfigError> {
    if settings.mode()? == Mode::Disabled {
        return Ok(if client_is_loopback(headers) {
            Ok(Identity {
                subject: "anonymous".to_owned(),
                method: AuthMethod::Disabled,
            })
        } else {
            Err(Unauthorized::refused(
                "invalid_api_key",
                "Authentication is disabled for loopback development only, and this client is not on loopback.",
                "Authentication is disabled for loopback clients only",
            ))
        });
    }
    // Parsed even when unused so a broken key list is reported on every request.
    let api_keys = settings.api_keys()?;
    let clock_skew_seconds = settings.clock_skew_seconds()?;

    let api_key = match credential(headers) {
        Credential::None => return Ok(Err(Unauthorized::missing())),
        Credential::Unusable(description) => {
            return Ok(Err(Unauthorized::refused(
                "invalid_api_key",
                &format!("{description}."),
                description,
            )));
        }
        Credential::Bearer(token) if jwt::looks_like_jwt(token) => {
            return verify_jwt(token, settings, clock_skew_seconds, now_unix, tokens);
        }
        Credential::Bearer(key) | Credential::ApiKeyHeader(key) => key,
    };
    Ok(match api_keys.identify(api_key) {
        Some(name) => Ok(Identity {
            subject: format!("api-key:{name}"),
            method: AuthMethod::ApiKey,
        }),
        None => Err(Unauthorized::refused(
            "invalid_api_key",
            "Incorrect API key provided.",
            "The API key is not valid",
        )),
    })
}

fn verify_jwt(
    token: &str,
    settings: &Settings,
    clock_skew_seconds: i64,
    now_unix: i64,
    tokens: Option<&mut VerifiedTokens>,
) -> Result<Result<Identity, Unauthorized>, ConfigError> {
    if let Some(subject) = tokens
        .as_deref()
        .and_then(|tokens| tokens.subject(token, now_unix, clock_skew_seconds))
    {
        return Ok(Ok(Identity {
            subject: subject.to_owned(),
            method: AuthMethod::Jwt,
        }));
    }
    let Some(jwks) = settings.get(config::JWKS)? else {
        return Ok(Err(Unauthorized::refused(
            "invalid_token",
            "Bearer tokens are not accepted by this deployment.",
            "JWT authentication is not configured",
        )));
    };
    let jwks = jwt::Jwks::parse(jwks).map_err(|_| ConfigError {
        variable: config::JWKS,
    })?;
    let policy = jwt::Policy {
        issuer: settings.required(config::ISSUER)?,
        audience: settings.required(config::AUDIENCE)?,
        clock_skew_seconds,
    };
    Ok(match jwt::verify(token, &jwks, &policy, now_unix) {
        Ok(verified) => {
            if let Some(tokens) = tokens {
                tokens.keep(token, &verified, now_unix, clock_skew_seconds);
            }
            Ok(Identity {
                subject: verified.subject,
                method: AuthMethod::Jwt,
            })
        }
        Err(error) => Err(Unauthorized::refused(
            "invalid_token",
            &format!("Invalid bearer token: {}.", error.description()),
            error.description(),
        )),
    })
}

/// Whether [`prepare_inward`] would leave `headers` as they are: no identity to assert,
/// and neither a credential nor a client-asserted identity to drop. The request can then
/// go on untouched, without the new request an edit costs.
pub fn inward_unchanged(headers: &impl Headers, identity: Option<&Identity>) -> bool {
    identity.is_none()
        && headers
            .values(http::header::AUTHORIZATION.as_str())
            .next()
            .is_none()
        && headers.values(API_KEY_HEADER).next().is_none()
        && !headers
            .names()
            .any(|name| name.starts_with(IDENTITY_HEADER_PREFIX))
}

/// One change [`prepare_inward`] makes to the inward headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InwardEdit {
    /// The header goes, every value of it.
    Delete(String),
    /// The header's values are replaced by this one.
    Set(&'static str, String),
}

/// What [`prepare_inward`] changes, in order: client-asserted identity and the
/// credential dropped, then the verified identity (if any) asserted. The component
/// applies them to the request's copied headers without parsing them into a map.
pub fn inward_edits(headers: &impl Headers, identity: Option<&Identity>) -> Vec<InwardEdit> {
    let mut edits: Vec<InwardEdit> = Vec::new();
    for name in headers.names() {
        if name.starts_with(IDENTITY_HEADER_PREFIX)
            && !edits
                .iter()
                .any(|edit| matches!(edit, InwardEdit::Delete(n) if n == name))
        {
            edits.push(InwardEdit::Delete(name.to_owned()));
        }
    }
    edits.push(InwardEdit::Delete(
        http::header::AUTHORIZATION.as_str().to_owned(),
    ));
    edits.push(InwardEdit::Delete(API_KEY_HEADER.to_owned()));
    if let Some(identity) = identity {
        // Subjects are restricted to header-safe characters before they get here.
        if HeaderValue::from_str(&identity.subject).is_ok() {
            edits.push(InwardEdit::Set(SUBJECT_HEADER, identity.subject.clone()));
        }
        edits.push(InwardEdit::Set(
            AUTH_HEADER,
            identity.method.as_str().to_owned(),
        ));
    }
    edits
}

/// Rewrites the inward headers: drops client-asserted identity and the credential, then
/// asserts the verified identity (if any).
pub fn prepare_inward(headers: &mut HeaderMap, identity: Option<&Identity>) {
    for edit in inward_edits(headers, identity) {
        match edit {
            InwardEdit::Delete(name) => {
                headers.remove(name);
            }
            InwardEdit::Set(name, value) => {
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(name, value);
                }
            }
        }
    }
}

/// The response for a refused request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub www_authenticate: Option<String>,
    /// OpenAI-style JSON error.
    pub body: String,
}

/// What `auth`'s span records of an outcome: how the caller was authenticated or why
/// not. Never the subject or the credential.
pub fn span_attributes(outcome: &Outcome) -> Vec<(&'static str, &'static str)> {
    match outcome {
        Outcome::Forward(Some(identity)) => vec![
            ("chatgate.auth.outcome", "authenticated"),
            ("chatgate.auth.method", identity.method.as_str()),
        ],
        Outcome::Forward(None) => vec![("chatgate.auth.outcome", "exempt")],
        Outcome::Unauthorized(refused) => vec![
            ("chatgate.auth.outcome", "refused"),
            ("chatgate.auth.failure", refused.code),
        ],
        Outcome::Misconfigured(error) => vec![
            ("chatgate.auth.outcome", "misconfigured"),
            ("chatgate.auth.variable", error.variable),
        ],
    }
}

/// The response to send instead of forwarding, if any.
pub fn refusal(outcome: &Outcome) -> Option<Refusal> {
    match outcome {
        Outcome::Forward(_) => None,
        Outcome::Unauthorized(unauthorized) => Some(Refusal {
            status: StatusCode::UNAUTHORIZED,
            www_authenticate: Some(unauthorized.www_authenticate()),
            body: unauthorized.body(),
        }),
        Outcome::Misconfigured(error) => Some(Refusal {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            www_authenticate: None,
            body: error_body(
                &format!(
                    "Authentication is misconfigured: variable `{}` has an invalid value.",
                    error.variable
                ),
                "server_error",
                "auth_misconfigured",
            ),
        }),
    }
}

fn error_body(message: &str, error_type: &str, code: &str) -> String {
    chatgate_guest::openai_error::error_json(message, error_type, None, code).to_string()
}

#[cfg(target_arch = "wasm32")]
mod wasm;
