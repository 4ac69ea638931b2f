//! An OpenID Connect provider test double (its discovery document says so): the endpoints
//! a browser app uses for the authorization code flow with PKCE, speaking the real
//! protocol (OpenID Connect Discovery 1.0, RFC 6749, RFC 7636), over plain HTTP on
//! loopback.
//!
//! - `GET /.well-known/openid-configuration`: issuer, endpoints, `S256` only.
//! - `GET /authorize`: approves at once, as for a user already signed in, after checking
//!   the request (code flow, known client and redirect URI, an `S256` challenge); sends the
//!   browser back to the redirect URI with a one-time code and the caller's `state`.
//! - `POST /token` (form-encoded): `authorization_code` (the verifier must hash to the
//!   challenge, the client and redirect URI must match, each code works once) and
//!   `refresh_token`; answers RS256 access tokens (`aud` = the configured audience) and
//!   an ID token carrying the `nonce`, signed by [`crate::jwt::Issuer`].
//! - `GET /jwks`: the signing key.
//!
//! Token and discovery answers allow any origin (CORS), as real providers do for public
//! clients. Everything it refused is kept in [`Exchanges::refused`].
//!
//! [`Provider::set_fault`] makes it issue a bad ID token on purpose (forged, from another
//! issuer, for another sign-in, ...), so that a test can see the app refuse it.

use crate::jwt::{Issuer, now};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::Full;
use sha2::Digest as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the provider knows of its one client.
#[derive(Debug, Clone)]
pub struct Client {
    pub client_id: String,
    /// The `aud` of the access tokens it issues (the API's, which `auth_audience` names).
    pub audience: String,
    /// The `sub` of the signed-in user.
    pub subject: String,
    /// `expires_in` of every access token, in seconds.
    pub lifetime: i64,
}

/// A bad ID token the provider issues on purpose, until the fault is set back to `None`.
/// All but [`Fault::RefreshOtherSubject`] spoil the ID token of an authorization code
/// exchange; the access token stays good, so only the app's own checks can refuse them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    #[default]
    None,
    /// Signed, then its claims changed (`sub`): the signature no longer matches.
    Tampered,
    /// Signed by another key published nowhere, under the provider's `kid`.
    ForeignKey,
    /// Signed by another key, under a kid the JWKS does not have.
    UnknownKid,
    /// `"alg": "none"` and no signature.
    Unsigned,
    /// Validly signed, but `iss` names another issuer.
    WrongIssuer,
    /// Validly signed, but `aud` names another client.
    WrongAudience,
    /// Validly signed, but the `nonce` is not the one the sign-in sent.
    WrongNonce,
    /// Validly signed, but expired an hour ago.
    Expired,
    /// Validly signed, but valid only from an hour on (`nbf`).
    NotYetValid,
    /// No `id_token` in the token answer.
    Missing,
    /// The ID token of a refresh grant names another user (`sub`): OpenID Connect Core
    /// 12.2 requires the same one.
    RefreshOtherSubject,
}

impl Fault {
    /// By the name a test's script uses (`tests/ui/browser.py`): `none`, `tampered`,
    /// `foreign-key`, `unknown-kid`, `unsigned`, `wrong-issuer`, `wrong-audience`, `wrong-nonce`,
    /// `expired`, `not-yet-valid`, `missing`, `refresh-other-subject`.
    pub fn named(name: &str) -> Option<Fault> {
        Some(match name {
            "none" => Fault::None,
            "tampered" => Fault::Tampered,
            "foreign-key" => Fault::ForeignKey,
            "unknown-kid" => Fault::UnknownKid,
            "unsigned" => Fault::Unsigned,
            "wrong-issuer" => Fault::WrongIssuer,
            "wrong-audience" => Fault::WrongAudience,
            "wrong-nonce" => Fault::WrongNonce,
            "expired" => Fault::Expired,
            "not-yet-valid" => Fault::NotYetValid,
            "missing" => Fault::Missing,
            "refresh-other-subject" => Fault::RefreshOtherSubject,
            _ => return None,
        })
    }
}

struct Grant {
    challenge: String,
    nonce: Option<String>,
    scope: String,
}

/// What happened at the token endpoint.
#[derive(Debug, Default, Clone)]
pub struct Exchanges {
    /// Codes exchanged for tokens (their verifiers checked).
    pub codes: usize,
    /// Refresh-token grants answered.
    pub refreshes: usize,
    /// Every refused request, with the reason.
    pub refused: Vec<String>,
    /// The access tokens issued, in order.
    pub access_tokens: Vec<String>,
    /// The fault of every spoilt ID token issued (or left out), in order.
    pub spoilt: Vec<Fault>,
}

#[derive(Default)]
struct State {
    /// The client's one registered redirect URI ([`Provider::register_redirect_uri`]).
    redirect_uri: String,
    codes: HashMap<String, Grant>,
    refresh_tokens: HashMap<String, String>,
    exchanges: Exchanges,
    serial: u64,
    fault: Fault,
}

pub struct Provider {
    /// `http://127.0.0.1:<port>`: the issuer, and the authority the app is given.
    pub origin: String,
    issuer: Arc<Issuer>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Reply = http::Response<Full<Bytes>>;

fn reply(status: u16, content_type: &str, body: String) -> Reply {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("access-control-allow-origin", "*")
        .header("cache-control", "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap()
}

fn oauth_error(state: &Mutex<State>, status: u16, error: &str, why: &str) -> Reply {
    state
        .lock()
        .unwrap()
        .exchanges
        .refused
        .push(format!("{error}: {why}"));
    reply(
        status,
        "application/json",
        serde_json::json!({"error": error, "error_description": why}).to_string(),
    )
}

/// `application/x-www-form-urlencoded` pairs (a query string has the same form).
fn url_decode_pairs(text: &str) -> HashMap<String, String> {
    let decode = |s: &str| {
        let bytes = s.replace('+', " ").into_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let (b'%', Some(b)) = (bytes[i], hex) {
                out.push(b);
                i += 3;
                continue;
            }
            out.push(bytes[i]);
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// The authorization endpoint's answer: a redirect back to the client.
fn redirect(location: String) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(302)
        .header("location", location)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Provider {
    /// Serves a provider for `client` on an ephemeral loopback port.
    pub async fn start(client: Client) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let issuer = Arc::new(Issuer::new(&origin, "oidc-double-key"));
        let state = Arc::new(Mutex::new(State::default()));
        let context = (
            origin.clone(),
            issuer.clone(),
            state.clone(),
            Arc::new(client),
        );
        let task = crate::double::serve_buffered(listener, move |parts, body| {
            let (origin, issuer, state, client) = context.clone();
            async move {
                let body = String::from_utf8_lossy(&body).into_owned();
                handle(&origin, &issuer, &state, &client, &parts, &body)
            }
        });
        Provider {
            origin,
            issuer,
            state,
            task,
        }
    }

    /// Registers the client's redirect URI (the app's `/`, known once the gateway serves).
    pub fn register_redirect_uri(&self, uri: &str) {
        self.state.lock().unwrap().redirect_uri = uri.to_string();
    }

    /// Its JWKS document, as the `auth_jwks` variable takes it.
    pub fn jwks(&self) -> String {
        self.issuer.jwks().to_string()
    }

    /// Makes the token endpoint issue bad ID tokens of this kind from now on
    /// (`Fault::None`: good ones again).
    pub fn set_fault(&self, fault: Fault) {
        self.state.lock().unwrap().fault = fault;
    }

    /// What happened at the token endpoint so far.
    pub fn exchanges(&self) -> Exchanges {
        self.state.lock().unwrap().exchanges.clone()
    }
}

fn handle(
    origin: &str,
    issuer: &Issuer,
    state: &Mutex<State>,
    client: &Client,
    parts: &http::request::Parts,
    body: &str,
) -> Reply {
    let path = parts.uri.path();
    let query = url_decode_pairs(parts.uri.query().unwrap_or(""));
    match (parts.method.as_str(), path) {
        ("GET", "/.well-known/openid-configuration") => reply(
            200,
            "application/json",
            serde_json::json!({
                "issuer": origin,
                "authorization_endpoint": format!("{origin}/authorize"),
                "token_endpoint": format!("{origin}/token"),
                "jwks_uri": format!("{origin}/jwks"),
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "service_documentation": "chatgate's OpenID Connect provider test double (tests/src/oidc.rs)",
            })
            .to_string(),
        ),
        ("GET", "/jwks") => reply(200, "application/json", issuer.jwks().to_string()),
        ("GET", "/authorize") => authorize(state, client, &query),
        ("POST", "/token") => token(origin, issuer, state, client, &url_decode_pairs(body)),
        _ => reply(404, "text/plain", "not found".into()),
    }
}

fn authorize(state: &Mutex<State>, client: &Client, query: &HashMap<String, String>) -> Reply {
    let get = |name: &str| query.get(name).map(String::as_str).unwrap_or("");
    let redirect_uri = state.lock().unwrap().redirect_uri.clone();
    // Errors before the redirect URI is known to be the client's are shown, not redirected.
    if get("client_id") != client.client_id || get("redirect_uri") != redirect_uri {
        return oauth_error(
            state,
            400,
            "invalid_request",
            "unknown client_id or redirect_uri",
        );
    }
    let refuse = |why: &str| -> Reply {
        state
            .lock()
            .unwrap()
            .exchanges
            .refused
            .push(format!("authorize: {why}"));
        let location = format!(
            "{}?error=invalid_request&error_description={}&state={}",
            redirect_uri,
            percent_encode(why),
            percent_encode(get("state"))
        );
        redirect(location)
    };
    if get("response_type") != "code" {
        return refuse("response_type must be code");
    }
    if get("code_challenge_method") != "S256" || get("code_challenge").len() != 43 {
        return refuse("PKCE with an S256 code_challenge is required");
    }
    if !get("scope").split(' ').any(|s| s == "openid") {
        return refuse("the openid scope is required");
    }
    let mut locked = state.lock().unwrap();
    locked.serial += 1;
    let code = format!("code-{}-{}", locked.serial, now());
    locked.codes.insert(
        code.clone(),
        Grant {
            challenge: get("code_challenge").to_string(),
            nonce: query.get("nonce").cloned(),
            scope: get("scope").to_string(),
        },
    );
    let location = format!(
        "{}?code={}&state={}",
        redirect_uri,
        percent_encode(&code),
        percent_encode(get("state"))
    );
    redirect(location)
}

fn token(
    origin: &str,
    issuer: &Issuer,
    state: &Mutex<State>,
    client: &Client,
    form: &HashMap<String, String>,
) -> Reply {
    let get = |name: &str| form.get(name).map(String::as_str).unwrap_or("");
    if get("client_id") != client.client_id {
        return oauth_error(state, 401, "invalid_client", "unknown client_id");
    }
    let refresh = get("grant_type") == "refresh_token";
    let (scope, nonce) = match get("grant_type") {
        "authorization_code" => {
            let grant = state.lock().unwrap().codes.remove(get("code"));
            let Some(grant) = grant else {
                return oauth_error(state, 400, "invalid_grant", "unknown or used code");
            };
            let registered = state.lock().unwrap().redirect_uri.clone();
            if get("redirect_uri") != registered {
                return oauth_error(state, 400, "invalid_grant", "redirect_uri differs");
            }
            let hashed =
                URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(get("code_verifier").as_bytes()));
            if get("code_verifier").len() < 43 || hashed != grant.challenge {
                return oauth_error(
                    state,
                    400,
                    "invalid_grant",
                    "code_verifier does not match the challenge",
                );
            }
            state.lock().unwrap().exchanges.codes += 1;
            (grant.scope, grant.nonce)
        }
        "refresh_token" => {
            let scope = state
                .lock()
                .unwrap()
                .refresh_tokens
                .remove(get("refresh_token"));
            let Some(scope) = scope else {
                return oauth_error(state, 400, "invalid_grant", "unknown or used refresh_token");
            };
            state.lock().unwrap().exchanges.refreshes += 1;
            (scope, None)
        }
        other => {
            return oauth_error(
                state,
                400,
                "unsupported_grant_type",
                &format!("grant_type {other:?}"),
            );
        }
    };
    let issued = now();
    let mut locked = state.lock().unwrap();
    locked.serial += 1;
    let serial = locked.serial;
    let access_token = issuer.token(&serde_json::json!({
        "iss": origin, "aud": client.audience, "sub": client.subject,
        "iat": issued, "exp": issued + client.lifetime, "scp": scope, "jti": format!("at-{serial}"),
    }));
    let mut id_claims = serde_json::json!({
        "iss": origin, "aud": client.client_id, "sub": client.subject,
        "iat": issued, "exp": issued + client.lifetime,
    });
    if let Some(nonce) = nonce {
        id_claims["nonce"] = nonce.into();
    }
    // A code exchange gets every fault but the refresh one; a refresh grant only that one.
    let fault = match locked.fault {
        Fault::RefreshOtherSubject if refresh => Fault::RefreshOtherSubject,
        Fault::RefreshOtherSubject => Fault::None,
        _ if refresh => Fault::None,
        fault => fault,
    };
    let refresh_token = format!("rt-{serial}");
    locked
        .refresh_tokens
        .insert(refresh_token.clone(), scope.clone());
    locked.exchanges.access_tokens.push(access_token.clone());
    if fault != Fault::None {
        locked.exchanges.spoilt.push(fault);
    }
    drop(locked);
    let mut answer = serde_json::json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": client.lifetime,
        "scope": scope,
        "refresh_token": refresh_token,
    });
    if let Some(id_token) = id_token(origin, issuer, id_claims, fault) {
        answer["id_token"] = id_token.into();
    }
    reply(200, "application/json", answer.to_string())
}

/// The ID token for `claims`, spoilt as `fault` says.
fn id_token(
    origin: &str,
    issuer: &Issuer,
    mut claims: serde_json::Value,
    fault: Fault,
) -> Option<String> {
    let encode = |value: &serde_json::Value| URL_SAFE_NO_PAD.encode(value.to_string());
    match fault {
        Fault::None => {}
        Fault::Missing => return None,
        Fault::Tampered => {
            let signed = issuer.token(&claims);
            let mut parts: Vec<&str> = signed.split('.').collect();
            claims["sub"] = "someone-else@example.test".into();
            let forged = encode(&claims);
            parts[1] = &forged;
            return Some(parts.join("."));
        }
        Fault::ForeignKey => {
            // A key of the same size under the same kid, that the JWKS does not publish.
            return Some(Issuer::new(origin, &issuer.kid).token(&claims));
        }
        Fault::UnknownKid => {
            return Some(Issuer::new(origin, "unpublished-key").token(&claims));
        }
        Fault::Unsigned => {
            let header = serde_json::json!({"alg": "none", "typ": "JWT"});
            return Some(format!("{}.{}.", encode(&header), encode(&claims)));
        }
        Fault::WrongIssuer => claims["iss"] = "https://issuer.invalid".into(),
        Fault::WrongAudience => claims["aud"] = "another-client".into(),
        Fault::WrongNonce => claims["nonce"] = "not-this-sign-in".into(),
        Fault::Expired => {
            let issued = now() - 2 * 3600;
            claims["iat"] = issued.into();
            claims["exp"] = (issued + 3600).into();
        }
        Fault::NotYetValid => claims["nbf"] = (now() + 3600).into(),
        Fault::RefreshOtherSubject => claims["sub"] = "someone-else@example.test".into(),
    }
    Some(issuer.token(&claims))
}
