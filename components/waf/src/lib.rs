//! Web application firewall middleware: a ModSecurity SecLang rule set (the project's
//! default rules, or OWASP CRS with the prompt-field policy) evaluated by
//! [`chatgate_seclang`] over every request, then the gateway's own limits.
//!
//! Every request is inspected and scored before any other refusal, so that an attack is
//! answered 403 and logged as an attack whatever else is wrong with it (issue 11 §7):
//!
//! 1. phase 1 over the request line and headers: a blocking rule answers 403 at once;
//! 2. the declared body size (400 for an invalid `Content-Length`, 413 over
//!    `waf_max_body_bytes`), then the body is read, never past that limit (413). A request
//!    ended here still goes through phase 2 without its body, so that an attack in its
//!    query (which rule sets such as CRS inspect in phase 2) is answered 403;
//! 3. the body processor chosen by `Content-Type` (JSON, urlencoded, multipart, XML; the
//!    raw body otherwise) and phase 2: a blocking rule answers 403;
//! 4. only then what the routes cannot take: method (405 + `Allow`), header bytes (431), a
//!    body that is not JSON (415), malformed JSON or a body the processor refused (400).
//!
//! `waf_mode=detect` runs the rules as `SecRuleEngine DetectionOnly`: what they would have
//! blocked is logged and the request goes on (the limits of step 4 still apply). Each
//! request the rules blocked, would have blocked or flagged gets one [`audit`] line.
//!
//! The rule set is compiled once: `chatgate waf` pre-initialises the component with a
//! [`bundle`] of rule files and snapshots the compiled set into it. A component that was
//! not pre-initialised compiles the embedded default rules (`rules/`) on first use in the
//! instance. A rule set that does not compile answers 500 `waf_misconfigured`: the WAF
//! never passes a request it could not inspect.
//!
//! Decisions are made here and tested natively; the `wasm` module reads variables and the
//! body, and forwards the body unchanged.

pub mod audit;
pub mod bundle;
pub mod config;

use chatgate_seclang::{EvalMemo, Outcome, Request, RuleSet, Transaction};
use config::{Config, ConfigError, Mode};
use http::{HeaderMap, Method, StatusCode};

pub const ALLOWED_METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::POST, Method::OPTIONS];
/// Value of the `Allow` header sent with 405.
pub const ALLOW_HEADER_VALUE: &str = "GET, HEAD, POST, OPTIONS";

/// Where `chatgate waf` makes the rule bundle readable during pre-initialisation
/// (the host's `preload` shows its folder at `/index`).
pub const PRELOAD_PATH: &str = "/index/waf-rules.json";

/// The project's default rule set, embedded at build time (every file under `rules/`;
/// see `build.rs`), compiled when the component was not pre-initialised.
pub mod default_rules {
    include!(concat!(env!("OUT_DIR"), "/default_rules.rs"));

    /// The entry file, as the embedded files name it.
    pub const ENTRY: &str = "rules/default.conf";

    /// The default rules as a bundle of the embedded files.
    pub fn bundle() -> super::bundle::Bundle {
        super::bundle::Bundle {
            entries: vec![ENTRY.to_owned()],
            skip_unsupported: false,
            files: FILES
                .iter()
                .map(|(path, text)| ((*path).to_owned(), (*text).to_owned()))
                .collect(),
            binary_files: Default::default(),
        }
    }

    /// Compiles the embedded default rules.
    pub fn compile() -> Result<chatgate_seclang::RuleSet, String> {
        if !FILES.iter().any(|(path, _)| *path == ENTRY) {
            return Err(format!(
                "no default rule set was embedded ({ENTRY} was missing when the component was built)"
            ));
        }
        bundle().compile().map_err(|error| error.to_string())
    }
}

/// A refused request: status and OpenAI-style error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub error_type: &'static str,
    pub code: String,
    pub message: String,
}

impl Rejection {
    fn invalid_request(status: StatusCode, code: &str, message: String) -> Self {
        Self {
            status,
            error_type: "invalid_request_error",
            code: code.to_owned(),
            message,
        }
    }

    /// `{"error":{"message","type","param":null,"code"}}`
    pub fn body(&self) -> String {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.error_type,
                "param": null,
                "code": self.code,
            }
        })
        .to_string()
    }

    /// Whether the response must carry `Allow: GET, HEAD, POST, OPTIONS`.
    pub fn needs_allow_header(&self) -> bool {
        self.status == StatusCode::METHOD_NOT_ALLOWED
    }
}

/// What `waf`'s span records of a request: passed or refused (and the refusal's code),
/// and, when rules matched, the verdict, rule ids, anomaly score, paranoia level and
/// mode of the audit line. Never a matched value: those stay in the audit log, redacted.
pub fn span_attributes(
    rejection: Option<&Rejection>,
    audit: Option<&str>,
) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::{Value, json};
    let mut attributes = match rejection {
        Some(rejection) => vec![
            ("chatgate.waf.outcome", json!("refused")),
            ("chatgate.waf.rejection", json!(rejection.code)),
        ],
        None => vec![("chatgate.waf.outcome", json!("pass"))],
    };
    let Some(Value::Object(record)) = audit.and_then(|line| serde_json::from_str(line).ok()) else {
        return attributes;
    };
    for (attribute, field) in [
        ("chatgate.waf.verdict", "verdict"),
        ("chatgate.waf.mode", "mode"),
        ("chatgate.waf.rule_ids", "rule_ids"),
        ("chatgate.waf.paranoia_level", "paranoia_level"),
    ] {
        if let Some(value) = record.get(field).filter(|v| !v.is_null()) {
            attributes.push((attribute, value.clone()));
        }
    }
    let score = record.get("scores").and_then(|scores| {
        scores
            .get("anomaly_score")
            .or(scores.get("inbound_anomaly_score"))
    });
    if let Some(score) = score {
        attributes.push(("chatgate.waf.anomaly_score", score.clone()));
    }
    attributes
}

/// Fail closed on a bad variable, naming it but not echoing its value.
pub fn config_rejection(error: &ConfigError) -> Rejection {
    misconfigured(format!(
        "The WAF is misconfigured: variable `{}` has an invalid value.",
        error.variable
    ))
}

/// Fail closed on a rule set that does not compile. The reason goes to the log, not to
/// the client.
pub fn rules_rejection() -> Rejection {
    misconfigured("The WAF is misconfigured: its rule set does not compile.".to_owned())
}

fn misconfigured(message: String) -> Rejection {
    Rejection {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error_type: "server_error",
        code: "waf_misconfigured".to_owned(),
        message,
    }
}

/// The log line for a rule set that does not compile.
pub fn rules_error_line(error: &str) -> String {
    serde_json::json!({"level": "error", "msg": "waf_rules_invalid", "error": error}).to_string()
}

/// Size of the header section as on an HTTP/1.1 wire: `name: value\r\n` per field.
pub fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().len() + value.len() + 4) as u64)
        .sum()
}

/// The declared body length after one more `Content-Length` value, given the length the
/// earlier ones declared; `Err` for an invalid or conflicting value.
fn content_length(declared: Option<u64>, value: &http::HeaderValue) -> Result<Option<u64>, ()> {
    let parsed = value
        .to_str()
        .ok()
        .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse::<u64>().ok());
    match (parsed, declared) {
        (Some(length), None) => Ok(Some(length)),
        (Some(length), Some(previous)) if length == previous => Ok(declared),
        _ => Err(()),
    }
}

fn body_too_large(config: &Config) -> Rejection {
    Rejection::invalid_request(
        StatusCode::PAYLOAD_TOO_LARGE,
        "request_too_large",
        format!(
            "Request body exceeds the limit of {} bytes.",
            config.max_body_bytes
        ),
    )
}

fn unreadable_body() -> Rejection {
    Rejection::invalid_request(
        StatusCode::BAD_REQUEST,
        "unreadable_body",
        "The request body could not be read.".to_owned(),
    )
}

/// `application/json`, optionally with `charset=utf-8` (JSON is UTF-8 by definition, RFC 8259).
pub fn is_allowed_content_type(value: &str) -> bool {
    let mut parts = value.split(';');
    let media_type = parts.next().unwrap_or_default().trim();
    if !media_type.eq_ignore_ascii_case("application/json") {
        return false;
    }
    parts.all(|parameter| {
        let Some((name, value)) = parameter.split_once('=') else {
            return parameter.trim().is_empty();
        };
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        name.trim().eq_ignore_ascii_case("charset") && value.eq_ignore_ascii_case("utf-8")
    })
}

/// The request as the rules see it. Headers the host sets itself (`spin-*`: Spin replaces
/// any a client sent) are left out: they repeat the URL, and an attack in a query would
/// be scored twice. `host` is restored from the URI's authority when the host took it off
/// (wasi:http carries it separately), so that a rule asking for it sees what was sent.
/// `REMOTE_ADDR` / `REMOTE_PORT` come from `spin-client-addr`, which the host (like Spin)
/// sets from the connection, replacing any value a client sent.
pub fn rules_request(
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    request_id: Option<&str>,
) -> Request {
    let mut request = read_headers(method, uri, headers, Request::default()).request;
    request.unique_id = request_id.unwrap_or_default().to_owned();
    request
}

/// What the checks need of the headers, read in one pass over them ([`read_headers`])
/// rather than a look-up by name each (a name parsed, hashed and compared per look-up:
/// eleven of them per request before).
struct Headers {
    /// [`rules_request`]'s request, `unique_id` left empty.
    request: Request,
    /// The first `x-request-id`.
    request_id: Option<String>,
    header_bytes: u64,
    declared_length: Result<Option<u64>, ()>,
    content_type: ContentType,
    secrets: audit::SecretHeaders,
}

/// Reads the headers into `request`, an earlier request's whose strings are written over
/// ([`SPARE_REQUEST`]) or a new one.
fn read_headers(
    method: &Method,
    uri: &http::Uri,
    headers: &HeaderMap,
    mut request: Request,
) -> Headers {
    let mut pairs = std::mem::take(&mut request.headers);
    // Entries `..used` are this request's; those after are spare room.
    let mut used = 0;
    let mut push = |pairs: &mut Vec<(String, String)>, name: &str, value: &str| {
        match pairs.get_mut(used) {
            Some((n, v)) => {
                set(n, name);
                set(v, value);
            }
            None => pairs.push((name.to_owned(), value.to_owned())),
        }
        used += 1;
    };
    let mut has_host = false;
    let mut client = None;
    let mut request_id = None;
    let mut header_bytes = 0;
    let mut declared_length = Ok(None);
    let mut content_types = 0;
    let mut json = false;
    let mut secrets = audit::SecretHeaders::default();
    for (name, value) in headers {
        header_bytes += (name.as_str().len() + value.len() + 4) as u64;
        if name == http::header::CONTENT_LENGTH {
            declared_length = declared_length.and_then(|declared| content_length(declared, value));
        } else if name == http::header::CONTENT_TYPE {
            content_types += 1;
            json = value.to_str().is_ok_and(is_allowed_content_type);
        } else if name == http::header::HOST {
            has_host = true;
        }
        let name = name.as_str();
        if name.starts_with("spin-") {
            if client.is_none() && name == "spin-client-addr" {
                client = Some(value.to_str().ok().and_then(|v| {
                    let address = v.parse::<std::net::SocketAddr>().ok()?;
                    // An IPv4 address reads back as written (no leading zeros parse):
                    // the text itself, rather than the address formatted again.
                    let ip = match address {
                        std::net::SocketAddr::V4(_) => v.rsplit_once(':')?.0.to_owned(),
                        std::net::SocketAddr::V6(a) => a.ip().to_string(),
                    };
                    Some((ip, address.port()))
                }));
            }
            continue;
        }
        if request_id.is_none() && name == "x-request-id" {
            request_id = Some(value.to_str().ok().map(str::to_owned));
        }
        secrets.add(name, value.as_bytes());
        push(&mut pairs, name, &String::from_utf8_lossy(value.as_bytes()));
    }
    if !has_host && let Some(authority) = uri.authority() {
        push(&mut pairs, "host", authority.as_str());
        pairs[..used].rotate_right(1);
    }
    pairs.truncate(used);
    let (remote_addr, remote_port) = client.flatten().unwrap_or_default();
    set(&mut request.method, method.as_str());
    set(
        &mut request.uri,
        uri.path_and_query().map_or("/", |pq| pq.as_str()),
    );
    set(&mut request.protocol, "HTTP/1.1");
    request.headers = pairs;
    request.body.clear();
    set(&mut request.remote_addr, &remote_addr);
    request.remote_port = remote_port;
    request.unique_id.clear();
    Headers {
        request,
        request_id: request_id.flatten(),
        header_bytes,
        declared_length,
        content_type: match (content_types, json) {
            (0, _) => ContentType::None,
            (1, true) => ContentType::Json,
            _ => ContentType::Other,
        },
        secrets,
    }
}

fn set(s: &mut String, value: &str) {
    s.clear();
    s.push_str(value);
}

/// The last request's copy for the rules, kept so that the next one writes its strings
/// over it (a method, a URI, two strings per header, all copied again by the engine into
/// its transaction and freed at once) rather than allocating them. Not kept past
/// [`SPARE_REQUEST_LIMIT`] bytes of room.
static SPARE_REQUEST: std::sync::Mutex<Option<Request>> = std::sync::Mutex::new(None);

/// The most bytes of strings [`SPARE_REQUEST`] keeps room for: an ordinary request's
/// headers take a few hundred; one with many or long headers is not kept.
const SPARE_REQUEST_LIMIT: usize = 16 * 1024;

fn take_request() -> Request {
    SPARE_REQUEST
        .lock()
        .ok()
        .and_then(|mut spare| spare.take())
        .unwrap_or_default()
}

fn keep_request(request: Request) {
    let room: usize = request
        .headers
        .iter()
        .map(|(n, v)| n.capacity() + v.capacity())
        .sum::<usize>()
        + request.uri.capacity()
        + request.body.capacity();
    if room <= SPARE_REQUEST_LIMIT
        && let Ok(mut spare) = SPARE_REQUEST.lock()
    {
        *spare = Some(request);
    }
}

/// Ordinary requests evaluated once while the component is pre-initialised, so that
/// the state the engine builds lazily on first use (the regex engines' caches: DFA
/// states, scratch space) is part of the snapshot every instance starts from, instead of
/// being rebuilt in every new instance.
pub fn warm_up_requests() -> Vec<Request> {
    let chat = serde_json::json!({
        "model": "chatgate-rag",
        "stream": true,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant for engineers."},
            {"role": "user", "content": "How do I sort the result of SELECT name FROM a UNION ALL SELECT name FROM b?"},
            {"role": "assistant", "content": "Wrap it: SELECT name FROM (SELECT name FROM a UNION ALL SELECT name FROM b) t ORDER BY name;"},
            {"role": "user", "content": "And in Python, with `sorted(rows, key=lambda r: r[0])`?"},
        ],
        "temperature": 0.2,
        "user": "user-1234",
    });
    let responses = serde_json::json!({
        "model": "chatgate-rag",
        "instructions": "Answer briefly.",
        "input": "What does the web application firewall block?",
    });
    let headers = |body: &str| {
        let mut headers = vec![
            ("host".to_owned(), "chat.example.com".to_owned()),
            ("user-agent".to_owned(), "OpenAI/Python 1.54.0".to_owned()),
            ("accept".to_owned(), "application/json".to_owned()),
            ("accept-encoding".to_owned(), "gzip, deflate".to_owned()),
            ("authorization".to_owned(), "Bearer warm-up".to_owned()),
        ];
        if !body.is_empty() {
            headers.push(("content-type".to_owned(), "application/json".to_owned()));
            headers.push(("content-length".to_owned(), body.len().to_string()));
        }
        headers
    };
    let request = |method: &str, uri: &str, body: String| Request {
        method: method.to_owned(),
        uri: uri.to_owned(),
        protocol: "HTTP/1.1".to_owned(),
        headers: headers(&body),
        body: body.into_bytes(),
        remote_addr: "127.0.0.1".to_owned(),
        remote_port: 40000,
        unique_id: "warm-up".to_owned(),
    };
    vec![
        request("POST", "/v1/chat/completions", chat.to_string()),
        request("POST", "/v1/responses", responses.to_string()),
        request("GET", "/v1/models", String::new()),
        request(
            "GET",
            "/v1/models/chatgate-rag?api-version=2024-10-21",
            String::new(),
        ),
    ]
}

/// What the WAF decided about a request whose body it read, and the audit line to write.
#[derive(Debug)]
pub struct Decision {
    /// `None`: pass the request on.
    pub refusal: Option<Rejection>,
    pub audit: Option<String>,
}

/// A request ended before its body was inspected, and the audit line to write.
#[derive(Debug)]
pub struct Refused {
    pub rejection: Rejection,
    pub audit: Option<String>,
}

/// What the engine learnt about values in earlier requests of this instance (header
/// values, argument names, roles, models: what repeats from one request of a client to
/// the next), so that it does not transform and match them again ([`EvalMemo`]: values of
/// at most 256 bytes, compared byte for byte, bounded; verdicts are the same without it).
/// Each inspection takes it and gives it back when it ends; one that starts while another
/// holds it (concurrent requests in one instance) works without.
static MEMO: std::sync::Mutex<Option<EvalMemo>> = std::sync::Mutex::new(None);

fn take_memo() -> EvalMemo {
    MEMO.lock()
        .ok()
        .and_then(|mut memo| memo.take())
        .unwrap_or_default()
}

fn keep_memo(memo: EvalMemo) {
    if let Ok(mut slot) = MEMO.lock()
        && slot.is_none()
    {
        *slot = Some(memo);
    }
}

/// Ends `transaction` (phase 5) and gives its memo back for the next request.
fn finish(transaction: Transaction<'_>) -> Outcome {
    let (outcome, memo) = transaction.finish_with_memo();
    keep_memo(memo);
    outcome
}

/// Hands a finished `outcome` back to the memo, so that the next request's match records
/// reuse its buffers instead of allocating them ([`EvalMemo::reuse`]).
fn reuse(outcome: Outcome) {
    if let Ok(mut slot) = MEMO.lock()
        && let Some(memo) = slot.as_mut()
    {
        memo.reuse(outcome);
    }
}

/// One request going through the checks, in the order of the module documentation.
pub struct Inspection<'r> {
    transaction: Transaction<'r>,
    context: Context,
}

/// What the checks and the audit line need besides the transaction.
struct Context {
    config: Config,
    method: Method,
    path: String,
    request_id: Option<String>,
    secrets: audit::SecretHeaders,
    header_bytes: u64,
    declared_length: Result<Option<u64>, ()>,
    content_type: ContentType,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ContentType {
    None,
    Json,
    Other,
}

impl<'r> Inspection<'r> {
    pub fn new(rules: &'r RuleSet, config: &Config, parts: &http::request::Parts) -> Self {
        let Headers {
            mut request,
            request_id,
            header_bytes,
            declared_length,
            content_type,
            secrets,
        } = read_headers(&parts.method, &parts.uri, &parts.headers, take_request());
        if let Some(id) = &request_id {
            request.unique_id.push_str(id);
        }
        let mut transaction = rules.transaction_with(&request, take_memo());
        keep_request(request);
        if config.mode == Mode::Detect {
            transaction.detect_only();
        }
        Inspection {
            transaction,
            context: Context {
                config: config.clone(),
                method: parts.method.clone(),
                path: parts.uri.path().to_owned(),
                request_id,
                secrets,
                header_bytes,
                declared_length,
                content_type,
            },
        }
    }

    /// Phase 1, then the declared body size. `Err` ends the request.
    pub fn headers(mut self) -> Result<Self, Refused> {
        if self.transaction.process_request_headers().is_some() {
            return Err(self.refuse(None));
        }
        match self.context.declared_length {
            Err(()) => Err(self.refuse_body(Rejection::invalid_request(
                StatusCode::BAD_REQUEST,
                "invalid_content_length",
                "The Content-Length header is invalid.".to_owned(),
            ))),
            Ok(Some(declared)) if declared > self.context.config.max_body_bytes => {
                let rejection = body_too_large(&self.context.config);
                Err(self.refuse_body(rejection))
            }
            Ok(_) => Ok(self),
        }
    }

    /// The most body bytes to read; one more ends the request ([`Inspection::too_large`]).
    pub fn max_body_bytes(&self) -> u64 {
        self.context.config.max_body_bytes
    }

    /// The body grew past [`Inspection::max_body_bytes`] while being read.
    pub fn too_large(self) -> Refused {
        let rejection = body_too_large(&self.context.config);
        self.refuse_body(rejection)
    }

    /// The body could not be read.
    pub fn unreadable(self) -> Refused {
        self.refuse_body(unreadable_body())
    }

    /// The body processor and phase 2 over the whole body, then the gateway's own checks.
    pub fn body(mut self, body: &[u8]) -> Decision {
        let blocked = self
            .transaction
            .process_request_body(Some(body.to_vec()))
            .is_some();
        let outcome = finish(self.transaction);
        let context = self.context;
        let refusal = if blocked {
            Some(blocked_rejection(&outcome))
        } else {
            context
                .route_check(body)
                .or_else(|| body_error_rejection(&outcome))
        };
        let status = refusal.as_ref().map(|r| r.status.as_u16());
        let audit = context.audit(&outcome, blocked, status);
        reuse(outcome);
        Decision { refusal, audit }
    }

    /// Ends a request whose body will not be inspected (too large, unreadable) with
    /// `rejection`, unless phase 2 over the rest of the request blocks it: rule sets such
    /// as CRS inspect the query's arguments in phase 2, and an attack there must be
    /// reported as one, whatever the body.
    fn refuse_body(mut self, rejection: Rejection) -> Refused {
        if self
            .transaction
            .process_request_body(Some(Vec::new()))
            .is_some()
        {
            return self.refuse(None);
        }
        self.refuse(Some(rejection))
    }

    /// Ends the transaction (phase 5) with `rejection`, or with the rules' block if `None`.
    fn refuse(self, rejection: Option<Rejection>) -> Refused {
        let blocked = rejection.is_none();
        let outcome = finish(self.transaction);
        let rejection = rejection.unwrap_or_else(|| blocked_rejection(&outcome));
        let audit = self
            .context
            .audit(&outcome, blocked, Some(rejection.status.as_u16()));
        reuse(outcome);
        Refused { rejection, audit }
    }
}

impl Context {
    /// What the routes cannot take, whatever the rules said.
    fn route_check(&self, body: &[u8]) -> Option<Rejection> {
        if !ALLOWED_METHODS.contains(&self.method) {
            return Some(Rejection::invalid_request(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!(
                    "Method {} is not allowed; use one of {ALLOW_HEADER_VALUE}.",
                    self.method
                ),
            ));
        }
        if self.header_bytes > self.config.max_header_bytes {
            return Some(Rejection::invalid_request(
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "request_header_fields_too_large",
                format!(
                    "Request headers exceed the limit of {} bytes.",
                    self.config.max_header_bytes
                ),
            ));
        }
        if body.is_empty() {
            return None;
        }
        if self.content_type != ContentType::Json {
            return Some(Rejection::invalid_request(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Request bodies must be sent as Content-Type: application/json.".to_owned(),
            ));
        }
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            return Some(Rejection::invalid_request(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                "The request body is not valid JSON.".to_owned(),
            ));
        }
        None
    }

    fn audit(&self, outcome: &Outcome, blocked: bool, status: Option<u16>) -> Option<String> {
        let verdict = audit::verdict(outcome, blocked)?;
        let info = audit::RequestInfo {
            request_id: self.request_id.as_deref(),
            method: self.method.as_str(),
            path: &self.path,
            mode: self.config.mode.as_str(),
        };
        Some(audit::record(
            &info,
            outcome,
            verdict,
            status,
            &self.secrets.secrets(),
        ))
    }
}

/// A JSON body the body processor could not take whole (nested deeper than it reads, more
/// arguments than `SecArgumentsLimit`): part of it would go uninspected, so it is refused
/// (ModSecurity's recommended `REQBODY_ERROR` rule does the same).
fn body_error_rejection(outcome: &Outcome) -> Option<Rejection> {
    let error = outcome.body_error.as_ref()?;
    Some(Rejection::invalid_request(
        StatusCode::BAD_REQUEST,
        "invalid_request_body",
        format!("The request body could not be inspected: {error}."),
    ))
}

/// 403 naming the rule that decided and the rules that matched, never the values.
fn blocked_rejection(outcome: &Outcome) -> Rejection {
    let deciding = outcome.intervention.as_ref().map_or(0, |i| i.rule_id);
    let mut matched: Vec<u64> = audit::reported(outcome)
        .map(|m| m.id)
        .filter(|id| *id != deciding)
        .collect();
    matched.dedup();
    let matched = if matched.is_empty() {
        String::new()
    } else {
        let ids: Vec<String> = matched.iter().map(u64::to_string).collect();
        format!("; matched rules {}", ids.join(", "))
    };
    Rejection::invalid_request(
        StatusCode::FORBIDDEN,
        &format!("waf_rule_{deciding}"),
        format!("Request blocked by the web application firewall (rule {deciding}{matched})."),
    )
}

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::Value;
    use std::sync::OnceLock;

    fn rules() -> &'static RuleSet {
        static RULES: OnceLock<RuleSet> = OnceLock::new();
        RULES.get_or_init(|| {
            RuleSet::from_text(
                &chatgate_seclang::MemoryFiles::default(),
                "anomaly.conf",
                include_str!("../tests/fixtures/anomaly.conf"),
                Default::default(),
            )
            .unwrap()
        })
    }

    #[test]
    fn the_warm_up_requests_are_ordinary_ones_the_default_rules_pass() {
        let rules = default_rules::compile().expect("the default rules compile");
        for request in warm_up_requests() {
            let outcome = rules.evaluate(&request);
            // Setup and scoring rules match every request; detection rules carry tags.
            let detections: Vec<_> = outcome
                .matches
                .iter()
                .filter(|m| !m.tags.is_empty())
                .collect();
            assert!(
                outcome.blocking().is_none() && detections.is_empty(),
                "{} {}: {detections:?}",
                request.method,
                request.uri,
            );
        }
    }

    fn parts(method: &str, uri: &str, headers: &[(&'static str, &str)]) -> http::request::Parts {
        let mut request = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_str(value).unwrap());
        }
        request.body(()).unwrap().into_parts().0
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    /// The decision for a whole request, as the adapter reaches it.
    fn decide(
        config: &Config,
        method: &str,
        uri: &str,
        headers: &[(&'static str, &str)],
        body: &[u8],
    ) -> (Option<Rejection>, Option<Value>) {
        let parts = parts(method, uri, headers);
        let inspection = match Inspection::new(rules(), config, &parts).headers() {
            Ok(inspection) => inspection,
            Err(refused) => return (Some(refused.rejection), audit_json(refused.audit)),
        };
        let decision = if body.len() as u64 > inspection.max_body_bytes() {
            let refused = inspection.too_large();
            return (Some(refused.rejection), audit_json(refused.audit));
        } else {
            inspection.body(body)
        };
        (decision.refusal, audit_json(decision.audit))
    }

    fn audit_json(line: Option<String>) -> Option<Value> {
        line.map(|line| serde_json::from_str(&line).unwrap())
    }

    fn status(result: &(Option<Rejection>, Option<Value>)) -> Option<u16> {
        result.0.as_ref().map(|r| r.status.as_u16())
    }

    fn chat(content: &str) -> Vec<u8> {
        serde_json::json!({"model": "m", "messages": [{"role": "user", "content": content}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_plain_chat_passes_without_an_audit_line() {
        let result = decide(
            &Config::default(),
            "POST",
            "/v1/chat/completions",
            &[JSON, ("authorization", "Bearer abc.def.ghi")],
            &chat("What does <T> mean in Rust generics?"),
        );
        assert_eq!(status(&result), None, "{result:?}");
        assert!(result.1.is_none(), "{result:?}");
    }

    #[test]
    fn sql_injection_in_the_body_is_403_naming_the_rules() {
        let result = decide(
            &Config::default(),
            "POST",
            "/v1/chat/completions",
            &[JSON],
            &chat("' OR 1=1 --"),
        );
        let rejection = result.0.clone().unwrap();
        assert_eq!(rejection.status, StatusCode::FORBIDDEN);
        assert_eq!(rejection.code, "waf_rule_949110");
        assert!(
            rejection.message.contains("942100"),
            "{}",
            rejection.message
        );
        assert!(!rejection.message.contains("OR 1=1"), "payload not echoed");
        let body: Value = serde_json::from_str(&rejection.body()).unwrap();
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["param"].is_null());
        let audit = result.1.unwrap();
        assert_eq!(audit["verdict"], "blocked");
        assert_eq!(audit["status"], 403);
        assert_eq!(audit["rule_ids"], serde_json::json!([942100, 949110]));
        assert_eq!(
            audit["matches"][0]["matched"][0]["variable"],
            "ARGS:json.messages.0.content"
        );
        assert_eq!(audit["scores"]["sql_injection_score"], 5);
    }

    #[test]
    fn the_span_names_the_rules_and_score_of_a_block_and_never_the_payload() {
        let result = decide(
            &Config::default(),
            "POST",
            "/v1/chat/completions",
            &[JSON],
            &chat("' OR 1=1 --"),
        );
        let audit = result.1.unwrap().to_string();
        let attributes = span_attributes(result.0.as_ref(), Some(&audit));
        let get = |key: &str| {
            attributes
                .iter()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("chatgate.waf.outcome"), Some("refused".into()));
        assert_eq!(
            get("chatgate.waf.rejection"),
            Some("waf_rule_949110".into())
        );
        assert_eq!(get("chatgate.waf.verdict"), Some("blocked".into()));
        assert_eq!(
            get("chatgate.waf.rule_ids"),
            Some(serde_json::json!([942100, 949110]))
        );
        assert!(get("chatgate.waf.anomaly_score").is_some());
        let text = serde_json::to_string(&attributes).unwrap();
        assert!(!text.contains("OR 1=1"), "{text}");
        assert_eq!(
            span_attributes(None, None),
            vec![("chatgate.waf.outcome", serde_json::json!("pass"))]
        );
    }

    #[test]
    fn a_phase_1_block_comes_before_the_size_check() {
        // Traversal in the URL with a body declared far over the limit: the attack is
        // reported, not the size.
        let config = Config {
            max_body_bytes: 10,
            ..Config::default()
        };
        let result = decide(
            &config,
            "POST",
            "/files/..%2f..%2fetc%2fpasswd",
            &[JSON, ("content-length", "1000000")],
            b"",
        );
        assert_eq!(status(&result), Some(403));
        assert_eq!(result.1.unwrap()["rule_ids"][0], 930100);
        // An attack in the query, which the rules see in phase 2, is reported too: phase 2
        // runs over the request without its body.
        let result = decide(
            &config,
            "POST",
            "/files?id=1%27%20or%20%271%27%3D%271%27--",
            &[JSON, ("content-length", "1000000")],
            b"",
        );
        assert_eq!(status(&result), Some(403), "{result:?}");
        assert_eq!(result.1.unwrap()["rule_ids"][0], 942100);
        // Without the attack the same request is 413, before any body is read.
        let result = decide(
            &config,
            "POST",
            "/files",
            &[JSON, ("content-length", "1000000")],
            b"",
        );
        assert_eq!(result.0.unwrap().code, "request_too_large");
    }

    #[test]
    fn attacks_come_before_method_content_type_and_size_refusals() {
        let config = Config {
            max_header_bytes: 40,
            ..Config::default()
        };
        let form = decide(
            &Config::default(),
            "POST",
            "/v1/chat/completions",
            &[("content-type", "application/x-www-form-urlencoded")],
            b"q=1%27%20OR%201%3D1%20--",
        );
        assert_eq!(status(&form), Some(403), "form body attack: {form:?}");
        let multipart_body = b"--b\r\nContent-Disposition: form-data; name=\"q\"\r\n\r\n<script>alert(1)</script>\r\n--b--\r\n";
        let multipart = decide(
            &Config::default(),
            "POST",
            "/upload",
            &[("content-type", "multipart/form-data; boundary=b")],
            multipart_body,
        );
        assert_eq!(status(&multipart), Some(403), "{multipart:?}");
        let method = decide(
            &Config::default(),
            "DELETE",
            "/v1/chat/completions?id=1%27%20or%20%271%27%3D%271",
            &[],
            b"",
        );
        assert_eq!(status(&method), Some(403), "{method:?}");
        let headers = decide(
            &config,
            "GET",
            "/?q=%3Cscript%3Ealert(1)%3C/script%3E",
            &[("x-padding", &"a".repeat(100))],
            b"",
        );
        assert_eq!(status(&headers), Some(403), "{headers:?}");
    }

    #[test]
    fn the_gateway_refusals_follow_when_no_rule_blocks() {
        let config = Config {
            max_header_bytes: 40,
            ..Config::default()
        };
        let method = decide(&Config::default(), "DELETE", "/v1/models", &[], b"");
        let rejection = method.0.unwrap();
        assert_eq!(rejection.status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(rejection.needs_allow_header());
        assert_eq!(
            decide(&config, "GET", "/", &[("x-padding", &"a".repeat(100))], b"")
                .0
                .unwrap()
                .code,
            "request_header_fields_too_large"
        );
        let plain = decide(
            &Config::default(),
            "POST",
            "/",
            &[("content-type", "text/plain")],
            b"hello there",
        );
        assert_eq!(plain.0.unwrap().code, "unsupported_media_type");
        let none = decide(&Config::default(), "POST", "/", &[], b"{}");
        assert_eq!(none.0.unwrap().code, "unsupported_media_type");
        let bad_json = decide(&Config::default(), "POST", "/", &[JSON], b"{\"a\":");
        assert_eq!(bad_json.0.unwrap().code, "invalid_json");
        let bad_length = decide(
            &Config::default(),
            "POST",
            "/",
            &[JSON, ("content-length", "1e3")],
            b"",
        );
        assert_eq!(bad_length.0.unwrap().code, "invalid_content_length");
        // No body, no content-type requirement.
        assert_eq!(
            status(&decide(&Config::default(), "GET", "/healthz", &[], b"")),
            None
        );
    }

    #[test]
    fn a_body_over_the_limit_is_413() {
        let config = Config {
            max_body_bytes: 10,
            ..Config::default()
        };
        let result = decide(&config, "POST", "/", &[JSON], &chat("a long enough body"));
        assert_eq!(result.0.unwrap().code, "request_too_large");
        assert!(result.1.is_none());
    }

    #[test]
    fn a_json_body_the_processor_cannot_take_whole_is_400() {
        let many: Vec<String> = (0..1001).map(|i| format!("\"k{i}\":{i}")).collect();
        let body = format!("{{{}}}", many.join(","));
        let result = decide(&Config::default(), "POST", "/", &[JSON], body.as_bytes());
        let rejection = result.0.unwrap();
        assert_eq!(rejection.code, "invalid_request_body");
        assert!(rejection.message.contains("1000"), "{}", rejection.message);
    }

    #[test]
    fn detect_mode_logs_what_it_would_block_and_passes() {
        let config = Config {
            mode: Mode::Detect,
            ..Config::default()
        };
        let result = decide(
            &config,
            "GET",
            "/../../etc/passwd?q=%27%20OR%201%3D1%20--",
            &[("user-agent", "sqlmap/1.7")],
            b"",
        );
        assert_eq!(status(&result), None);
        let audit = result.1.unwrap();
        assert_eq!(audit["verdict"], "detected");
        assert_eq!(audit["mode"], "detect");
        assert_eq!(audit["status"], Value::Null);
        // Phase 2 ran although phase 1 would have blocked: every rule is scored.
        let ids = audit["rule_ids"].as_array().unwrap();
        for id in [913100, 930100, 949100, 942100] {
            assert!(ids.contains(&Value::from(id)), "{id} in {ids:?}");
        }
        // The limits still apply.
        let refused = decide(&config, "POST", "/", &[JSON], b"nope");
        assert_eq!(status(&refused), Some(400));
    }

    #[test]
    fn a_rule_below_the_threshold_is_flagged_and_passes() {
        let result = decide(&Config::default(), "GET", "/?debug=1", &[], b"");
        assert_eq!(status(&result), None);
        let audit = result.1.unwrap();
        assert_eq!(audit["verdict"], "flagged");
        assert_eq!(audit["rule_ids"], serde_json::json!([920999]));
    }

    #[test]
    fn the_audit_line_keeps_credentials_out() {
        let result = decide(
            &Config::default(),
            "GET",
            "/x?a=%3Cscript%3Ealert(1)%3C/script%3E",
            &[
                ("authorization", "Bearer sk-secret-token-42"),
                ("referer", "' or 1=1 -- sk-secret-token-42"),
                ("x-request-id", "req-7"),
            ],
            b"",
        );
        assert_eq!(status(&result), Some(403));
        let audit = result.1.unwrap();
        let line = audit.to_string();
        assert!(!line.contains("sk-secret-token-42"), "{line}");
        assert!(line.contains("[redacted]"), "{line}");
        assert_eq!(audit["request_id"], "req-7");
        assert_eq!(audit["path"], "/x", "no query in the path");
    }

    #[test]
    fn host_headers_are_not_inspected_but_host_is_restored() {
        let mut headers = HeaderMap::new();
        headers.insert("spin-full-url", HeaderValue::from_static("http://h/?q=1"));
        headers.insert(
            "spin-client-addr",
            HeaderValue::from_static("203.0.113.7:40123"),
        );
        headers.insert("user-agent", HeaderValue::from_static("curl"));
        let uri: http::Uri = "http://example.test:3000/v1/models?x=1".parse().unwrap();
        let request = rules_request(&Method::GET, &uri, &headers, Some("rid"));
        assert_eq!(
            (request.remote_addr.as_str(), request.remote_port),
            ("203.0.113.7", 40123)
        );
        assert_eq!(request.uri, "/v1/models?x=1");
        assert_eq!(
            request.headers,
            vec![
                ("host".to_owned(), "example.test:3000".to_owned()),
                ("user-agent".to_owned(), "curl".to_owned())
            ]
        );
        assert_eq!(request.unique_id, "rid");
        // An IPv6 client reads as the address alone, as its formatting spells it.
        let mut headers = HeaderMap::new();
        headers.insert("spin-client-addr", HeaderValue::from_static("[::1]:8080"));
        headers.insert("host", HeaderValue::from_static("h"));
        let request = rules_request(&Method::GET, &uri, &headers, None);
        assert_eq!(
            (request.remote_addr.as_str(), request.remote_port),
            ("::1", 8080)
        );
        assert_eq!(request.headers, vec![("host".to_owned(), "h".to_owned())]);
    }

    #[test]
    fn content_type_allow_list() {
        for ok in [
            "application/json",
            "Application/JSON",
            "application/json; charset=utf-8",
            "application/json;charset=\"UTF-8\"",
        ] {
            assert!(is_allowed_content_type(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/json-patch+json",
            "application/jsonx",
            "application/json; charset=latin1",
            "application/json; boundary=x",
            "multipart/form-data; boundary=x",
            "",
        ] {
            assert!(!is_allowed_content_type(bad), "{bad}");
        }
    }

    #[test]
    fn header_bytes_count_as_on_the_wire() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("1234567890"));
        // "x-a: 1234567890\r\n" is 3 + 10 + 4 = 17 bytes.
        assert_eq!(header_bytes(&headers), 17);
    }

    #[test]
    fn misconfiguration_names_the_variable_only() {
        let rejection = config_rejection(&ConfigError {
            variable: config::MAX_BODY_VARIABLE,
        });
        assert_eq!(rejection.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(rejection.message.contains("waf_max_body_bytes"));
        let value: Value = serde_json::from_str(&rejection.body()).unwrap();
        assert_eq!(value["error"]["code"], "waf_misconfigured");
        assert_eq!(rules_rejection().code, "waf_misconfigured");
    }

    /// The rules the component compiles when it was not pre-initialised are the ones
    /// shipped under `rules/`, and they compile.
    #[test]
    fn the_embedded_default_rules_compile() {
        let rules = default_rules::compile().unwrap();
        assert!(!rules.is_empty());
        assert!(rules.unsupported().is_empty());
    }
}
