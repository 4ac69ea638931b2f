//! A test double of Entra ID's v2.0 token endpoint for workload identity federation
//! (client credentials with a client assertion), speaking its wire protocol:
//!
//! `POST /{tenant}/oauth2/v2.0/token`, `application/x-www-form-urlencoded` with
//! `grant_type=client_credentials`, `client_id`, `scope=<resource>/.default`,
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer` and
//! `client_assertion`; answered by `{"token_type":"Bearer","expires_in":..,
//! "ext_expires_in":..,"access_token":..}`, or by Entra's error JSON (`error`,
//! `error_description` with an `AADSTS<code>:` prefix and trace lines, `error_codes`,
//! `timestamp`, `trace_id`, `correlation_id`) with status 400 or 401.
//!
//! It is a double, not Entra: it does not verify the assertion's signature or issuer,
//! only that one is sent in the form Entra requires, and it says so in every token it
//! hands out (`entra-double.<resource>.<n>`, the n-th token for that resource). Every
//! exchange is recorded with its form fields, so a test can check what was sent.

use crate::double::serve_buffered;
use bytes::Bytes;
use http_body_util::Full;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Entra ID's answer to an assertion whose subject no federated credential names.
pub const NO_MATCHING_FEDERATION: &str = "AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:chatgate:chatgate'. Check your federated identity credential Subject, Audience and Issuer against the presented assertion. https://learn.microsoft.com/entra/workload-id/workload-identity-federation";

/// One token request the double received.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub content_type: Option<String>,
    /// The form fields, by name (each sent once).
    pub form: BTreeMap<String, String>,
}

/// How the double answers the next exchanges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Tokens, valid for `expires_in` seconds.
    Issue { expires_in: u64 },
    /// 400 `invalid_client` with AADSTS700213 (no federated credential matches).
    RefuseFederation,
    /// 503 with an `temporarily_unavailable` error body.
    Unavailable,
    /// Accept the request and never answer.
    Stall,
}

pub struct EntraDouble {
    /// `http://127.0.0.1:<port>`, what `*_authority_host` is set to.
    pub origin: String,
    pub tenant_id: String,
    pub client_id: String,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    mode: Arc<Mutex<Mode>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EntraDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EntraDouble {
    /// Serves the token endpoint of `tenant_id` for the application `client_id`, issuing
    /// tokens valid for an hour until told otherwise ([`EntraDouble::set_mode`]).
    pub async fn start(tenant_id: &str, client_id: &str) -> EntraDouble {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let mode = Arc::new(Mutex::new(Mode::Issue { expires_in: 3599 }));
        let issued = Arc::new(Mutex::new(BTreeMap::<String, u32>::new()));
        let (recorded, current, tenant, client) = (
            exchanges.clone(),
            mode.clone(),
            tenant_id.to_string(),
            client_id.to_string(),
        );
        let task = serve_buffered(listener, move |parts, body| {
            let (recorded, current, issued, tenant, client) = (
                recorded.clone(),
                current.clone(),
                issued.clone(),
                tenant.clone(),
                client.clone(),
            );
            async move {
                let exchange = Exchange {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    content_type: parts
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string),
                    form: parse_form(&body),
                };
                recorded.lock().unwrap().push(exchange.clone());
                let mode = current.lock().unwrap().clone();
                if mode == Mode::Stall {
                    std::future::pending::<()>().await;
                }
                answer(&exchange, &mode, &tenant, &client, &issued)
            }
        });
        EntraDouble {
            origin,
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            exchanges,
            mode,
            task,
        }
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    /// Every exchange so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges.lock().unwrap().clone()
    }

    /// The token the double hands out as the `n`-th (from 1) for `scope`.
    pub fn token(scope: &str, n: u32) -> String {
        format!("entra-double.{}.{n}", scope_tag(scope))
    }
}

/// An `application/x-www-form-urlencoded` body's fields (`+` is a space, `%XX` a byte).
pub fn parse_form(body: &[u8]) -> BTreeMap<String, String> {
    let decode = |text: &str| {
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'+' => out.push(b' '),
                b'%' if i + 2 < bytes.len() => {
                    let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                    match hex.and_then(|hex| u8::from_str_radix(hex, 16).ok()) {
                        Some(byte) => {
                            out.push(byte);
                            i += 2;
                        }
                        None => out.push(b'%'),
                    }
                }
                byte => out.push(byte),
            }
            i += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

/// `https://search.azure.com/.default` -> `search`.
fn scope_tag(scope: &str) -> String {
    scope
        .trim_start_matches("https://")
        .split(['.', '/'])
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Entra's error body: the description ends with its trace lines, as Entra's does.
fn error(status: u16, code: &str, number: u32, description: &str) -> http::Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error": code,
        "error_description": format!("{description}\r\nTrace ID: 0b3c2d1e-double\r\nCorrelation ID: 9f1e8d7c-double\r\nTimestamp: 2026-12-06 00:00:00Z"),
        "error_codes": [number],
        "timestamp": "2026-12-06 00:00:00Z",
        "trace_id": "0b3c2d1e-double",
        "correlation_id": "9f1e8d7c-double",
        "error_uri": "https://login.microsoftonline.com/error?code=".to_string() + &number.to_string(),
    });
    json(status, &body)
}

fn json(status: u16, body: &serde_json::Value) -> http::Response<Full<Bytes>> {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .header("cache-control", "no-store, no-cache")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap()
}

fn answer(
    exchange: &Exchange,
    mode: &Mode,
    tenant: &str,
    client: &str,
    issued: &Mutex<BTreeMap<String, u32>>,
) -> http::Response<Full<Bytes>> {
    let field = |name: &str| exchange.form.get(name).map(String::as_str);
    if exchange.path != format!("/{tenant}/oauth2/v2.0/token") {
        return error(
            400,
            "invalid_tenant",
            90002,
            &format!(
                "AADSTS90002: Tenant '{}' not found.",
                exchange.path.split('/').nth(1).unwrap_or_default()
            ),
        );
    }
    if exchange.method != "POST"
        || !exchange
            .content_type
            .as_deref()
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"))
    {
        return error(
            400,
            "invalid_request",
            900144,
            "AADSTS900144: The request body must contain the following parameter: 'grant_type'.",
        );
    }
    for name in ["grant_type", "client_id", "scope", "client_assertion_type"] {
        if field(name).is_none_or(str::is_empty) {
            return error(
                400,
                "invalid_request",
                900144,
                &format!(
                    "AADSTS900144: The request body must contain the following parameter: '{name}'."
                ),
            );
        }
    }
    if field("grant_type") != Some("client_credentials") {
        return error(
            400,
            "unsupported_grant_type",
            70003,
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != Some(client) {
        return error(
            400,
            "unauthorized_client",
            700016,
            &format!(
                "AADSTS700016: Application with identifier '{}' was not found in the directory.",
                field("client_id").unwrap_or_default()
            ),
        );
    }
    if field("client_assertion_type") != Some(CLIENT_ASSERTION_TYPE)
        || field("client_assertion").is_none_or(|a| a.split('.').count() != 3)
    {
        return error(
            401,
            "invalid_client",
            50027,
            "AADSTS50027: JWT token is invalid or malformed.",
        );
    }
    let scope = field("scope").unwrap_or_default();
    if !scope.ends_with("/.default") {
        return error(
            400,
            "invalid_scope",
            1002012,
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).",
        );
    }
    match mode {
        Mode::Issue { expires_in } => {
            let n = {
                let mut issued = issued.lock().unwrap();
                let count = issued.entry(scope.to_string()).or_insert(0);
                *count += 1;
                *count
            };
            json(
                200,
                &serde_json::json!({
                    "token_type": "Bearer",
                    "expires_in": expires_in,
                    "ext_expires_in": expires_in,
                    "access_token": EntraDouble::token(scope, n),
                }),
            )
        }
        Mode::RefuseFederation => error(400, "invalid_client", 700213, NO_MATCHING_FEDERATION),
        Mode::Unavailable => error(
            503,
            "temporarily_unavailable",
            90033,
            "AADSTS90033: A transient error has occurred. Please try again.",
        ),
        // Held before answering (see `start`); never reached with an answer.
        Mode::Stall => error(500, "server_error", 0, "the double was told to stall"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(form: &[(&str, &str)]) -> Exchange {
        Exchange {
            method: "POST".into(),
            path: "/tenant-a/oauth2/v2.0/token".into(),
            content_type: Some("application/x-www-form-urlencoded".into()),
            form: form
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn grant(scope: &str) -> Vec<(&str, &str)> {
        vec![
            ("grant_type", "client_credentials"),
            ("client_id", "client-a"),
            ("scope", scope),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", "a.b.c"),
        ]
    }

    fn status_and_body(response: http::Response<Full<Bytes>>) -> (u16, serde_json::Value) {
        use http_body_util::BodyExt;
        let status = response.status().as_u16();
        let collected = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(response.into_body().collect());
        (
            status,
            serde_json::from_slice(&collected.unwrap().to_bytes()).unwrap(),
        )
    }

    #[test]
    fn forms_are_percent_decoded() {
        let form =
            parse_form(b"scope=https%3A%2F%2Fsearch.azure.com%2F.default&a=b+c&bad=%zz&empty=");
        assert_eq!(form["scope"], "https://search.azure.com/.default");
        assert_eq!(form["a"], "b c");
        assert_eq!(form["bad"], "%zz");
        assert_eq!(form["empty"], "");
    }

    #[test]
    fn a_well_formed_grant_gets_numbered_tokens_per_scope() {
        let issued = Mutex::new(BTreeMap::new());
        let issue = Mode::Issue { expires_in: 3599 };
        for n in 1..=2 {
            let (status, body) = status_and_body(answer(
                &exchange(&grant("https://search.azure.com/.default")),
                &issue,
                "tenant-a",
                "client-a",
                &issued,
            ));
            assert_eq!(status, 200);
            assert_eq!(body["access_token"], format!("entra-double.search.{n}"));
            assert_eq!(body["token_type"], "Bearer");
            assert_eq!(body["expires_in"], 3599);
        }
        let (_, body) = status_and_body(answer(
            &exchange(&grant("https://cognitiveservices.azure.com/.default")),
            &issue,
            "tenant-a",
            "client-a",
            &issued,
        ));
        assert_eq!(body["access_token"], "entra-double.cognitiveservices.1");
    }

    #[test]
    fn malformed_grants_get_entras_errors() {
        let issued = Mutex::new(BTreeMap::new());
        let issue = Mode::Issue { expires_in: 3599 };
        let refuse = |form: &[(&str, &str)]| {
            status_and_body(answer(
                &exchange(form),
                &issue,
                "tenant-a",
                "client-a",
                &issued,
            ))
        };
        let mut no_assertion = grant("https://search.azure.com/.default");
        no_assertion.pop();
        let (status, body) = refuse(&no_assertion);
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );
        let (status, body) = refuse(&grant("https://search.azure.com"));
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_scope"))
        );
        let mut other_client = grant("https://search.azure.com/.default");
        other_client[1] = ("client_id", "client-b");
        let (_, body) = refuse(&other_client);
        assert_eq!(body["error_codes"][0], 700016);
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("\r\nTrace ID:")
        );
    }
}
