//! Web application firewall middleware. Checks, in order: method allow-list (405), total header
//! bytes (431), body size (413, from `Content-Length` and while reading), content type of bodies
//! (415), then the injection [`rules`] over the decoded URL, header values and every string of
//! the JSON body (invalid JSON: 400). A rule match answers 403, or in detect mode is only logged.
//!
//! Decisions are made here and tested natively; the `wasm` module reads variables, buffers the
//! body and forwards it unchanged.

pub mod config;
pub mod decode;
pub mod inspect;
pub mod normalize;
pub mod rules;

use config::{Config, ConfigError, Mode};
use http::{HeaderMap, Method, StatusCode};
use inspect::Finding;

pub const ALLOWED_METHODS: [Method; 4] = [Method::GET, Method::HEAD, Method::POST, Method::OPTIONS];
/// Value of the `Allow` header sent with 405.
pub const ALLOW_HEADER_VALUE: &str = "GET, HEAD, POST, OPTIONS";

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

/// Fail closed on a bad variable, naming it but not echoing its value.
pub fn config_rejection(error: &ConfigError) -> Rejection {
    Rejection {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        error_type: "server_error",
        code: "waf_misconfigured".to_owned(),
        message: format!(
            "The WAF is misconfigured: variable `{}` has an invalid value.",
            error.variable
        ),
    }
}

/// Checks that need only the request head: method, header size and declared body size.
pub fn check_head(config: &Config, method: &Method, headers: &HeaderMap) -> Result<(), Rejection> {
    if !ALLOWED_METHODS.contains(method) {
        return Err(Rejection::invalid_request(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("Method {method} is not allowed; use one of {ALLOW_HEADER_VALUE}."),
        ));
    }
    if header_bytes(headers) > config.max_header_bytes {
        return Err(Rejection::invalid_request(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "request_header_fields_too_large",
            format!(
                "Request headers exceed the limit of {} bytes.",
                config.max_header_bytes
            ),
        ));
    }
    if let Some(declared) = declared_content_length(headers)? {
        check_body_size(config, declared)?;
    }
    Ok(())
}

/// Size of the header section as on an HTTP/1.1 wire: `name: value\r\n` per field.
pub fn header_bytes(headers: &HeaderMap) -> u64 {
    headers
        .iter()
        .map(|(name, value)| (name.as_str().len() + value.len() + 4) as u64)
        .sum()
}

fn declared_content_length(headers: &HeaderMap) -> Result<Option<u64>, Rejection> {
    let mut declared = None;
    for value in headers.get_all(http::header::CONTENT_LENGTH) {
        let parsed = value
            .to_str()
            .ok()
            .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u64>().ok());
        match (parsed, declared) {
            (Some(length), None) => declared = Some(length),
            (Some(length), Some(previous)) if length == previous => {}
            _ => {
                return Err(Rejection::invalid_request(
                    StatusCode::BAD_REQUEST,
                    "invalid_content_length",
                    "The Content-Length header is invalid.".to_owned(),
                ));
            }
        }
    }
    Ok(declared)
}

/// Called with the running total while the body is read, so an oversized body is cut off early.
pub fn check_body_size(config: &Config, bytes: u64) -> Result<(), Rejection> {
    if bytes > config.max_body_bytes {
        return Err(Rejection::invalid_request(
            StatusCode::PAYLOAD_TOO_LARGE,
            "request_too_large",
            format!(
                "Request body exceeds the limit of {} bytes.",
                config.max_body_bytes
            ),
        ));
    }
    Ok(())
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

/// The outcome of inspecting a complete request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// A rule matched in detect mode: log it and pass the request on.
    Detected(Finding),
    /// A rule matched in block mode: log it and answer with the rejection (403).
    Blocked(Finding, Rejection),
    Rejected(Rejection),
}

/// Content-type, JSON and rule checks over a request whose body has been read within limits.
pub fn inspect_request(
    config: &Config,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Verdict {
    let document = if body.is_empty() {
        None
    } else {
        let content_type_ok = match headers
            .get_all(http::header::CONTENT_TYPE)
            .iter()
            .collect::<Vec<_>>()[..]
        {
            [single] => single.to_str().is_ok_and(is_allowed_content_type),
            _ => false,
        };
        if !content_type_ok {
            return Verdict::Rejected(Rejection::invalid_request(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Request bodies must be sent as Content-Type: application/json.".to_owned(),
            ));
        }
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(document) => Some(document),
            Err(_) => {
                return Verdict::Rejected(Rejection::invalid_request(
                    StatusCode::BAD_REQUEST,
                    "invalid_json",
                    "The request body is not valid JSON.".to_owned(),
                ));
            }
        }
    };

    let finding = inspect::inspect_url(path_and_query)
        .or_else(|| inspect::inspect_headers(headers))
        .or_else(|| document.as_ref().and_then(inspect::inspect_json));
    match (finding, config.mode) {
        (None, _) => Verdict::Pass,
        (Some(finding), Mode::Detect) => Verdict::Detected(finding),
        (Some(finding), Mode::Block) => {
            let rejection = rule_rejection(&finding);
            Verdict::Blocked(finding, rejection)
        }
    }
}

fn rule_rejection(finding: &Finding) -> Rejection {
    let rule = finding.rule;
    Rejection::invalid_request(
        StatusCode::FORBIDDEN,
        &format!("waf_rule_{}", rule.id),
        format!(
            "Request blocked by WAF rule {} ({}, category {}).",
            rule.id,
            rule.name,
            rule.category.as_str()
        ),
    )
}

/// The `waf_match` log line: which rule, where, and the request's identity, never the value.
pub fn match_log_line(
    finding: &Finding,
    mode: Mode,
    method: &str,
    route: &str,
    request_id: Option<&str>,
) -> String {
    serde_json::json!({
        "level": "warn",
        "msg": "waf_match",
        "rule": finding.rule.id,
        "rule_name": finding.rule.name,
        "category": finding.rule.category.as_str(),
        "target": finding.target,
        "mode": mode.as_str(),
        "method": method,
        "route": route,
        "request_id": request_id,
    })
    .to_string()
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::config::{Config, Mode, VARIABLES};
    use super::{Rejection, Verdict};
    use bytes::Bytes;
    use http_body_util::BodyExt;
    use spin_sdk::http::{FullBody, IntoResponse, Request, Response, StatusCode, box_body, next};
    use spin_sdk::http_service;
    use spin_sdk::wasip3::http::types::{ErrorCode, Response as WasiResponse};

    #[http_service]
    async fn handle(request: Request) -> Result<WasiResponse, ErrorCode> {
        let config = match read_config().await {
            Ok(config) => config,
            Err(error) => return reject(&super::config_rejection(&error)),
        };
        if let Err(rejection) = super::check_head(&config, request.method(), request.headers()) {
            return reject(&rejection);
        }

        let (parts, mut body) = request.into_parts();
        let mut buffered = Vec::new();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else {
                return reject(&unreadable_body());
            };
            if let Ok(data) = frame.into_data() {
                let total = (buffered.len() + data.len()) as u64;
                if let Err(rejection) = super::check_body_size(&config, total) {
                    return reject(&rejection);
                }
                buffered.extend_from_slice(&data);
            }
        }

        let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
        match super::inspect_request(&config, path_and_query, &parts.headers, &buffered) {
            Verdict::Pass => {}
            Verdict::Rejected(rejection) => return reject(&rejection),
            Verdict::Detected(finding) => log_match(&finding, Mode::Detect, &parts),
            Verdict::Blocked(finding, rejection) => {
                log_match(&finding, Mode::Block, &parts);
                return reject(&rejection);
            }
        }

        let inward = Request::from_parts(parts, box_body(FullBody::new(Bytes::from(buffered))));
        next(inward).await?.into_response()
    }

    async fn read_config() -> Result<Config, super::config::ConfigError> {
        let mut values = Vec::with_capacity(VARIABLES.len());
        for name in VARIABLES {
            let value = match spin_sdk::variables::get(name).await {
                Ok(value) => Ok(Some(value)),
                Err(spin_sdk::variables::Error::Undefined(_)) => Ok(None),
                Err(_) => Err(()),
            };
            values.push((name, value));
        }
        Config::from_variables(|name| {
            values
                .iter()
                .find(|(n, _)| *n == name)
                .map_or(Ok(None), |(_, v)| v.clone())
        })
    }

    fn log_match(finding: &super::inspect::Finding, mode: Mode, parts: &http::request::Parts) {
        let request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok());
        let line = super::match_log_line(
            finding,
            mode,
            parts.method.as_str(),
            parts.uri.path(),
            request_id,
        );
        println!("{line}");
    }

    fn unreadable_body() -> Rejection {
        Rejection {
            status: StatusCode::BAD_REQUEST,
            error_type: "invalid_request_error",
            code: "unreadable_body".to_owned(),
            message: "The request body could not be read.".to_owned(),
        }
    }

    fn reject(rejection: &Rejection) -> Result<WasiResponse, ErrorCode> {
        let mut response = Response::new(rejection.body());
        *response.status_mut() = rejection.status;
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            spin_sdk::http::HeaderValue::from_static("application/json"),
        );
        if rejection.needs_allow_header() {
            headers.insert(
                "allow",
                spin_sdk::http::HeaderValue::from_static(super::ALLOW_HEADER_VALUE),
            );
        }
        response.into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn json_headers() -> HeaderMap {
        headers(&[("content-type", "application/json")])
    }

    fn status_of(result: Result<(), Rejection>) -> Option<u16> {
        result.err().map(|r| r.status.as_u16())
    }

    fn verdict_status(verdict: &Verdict) -> Option<u16> {
        match verdict {
            Verdict::Pass | Verdict::Detected(_) => None,
            Verdict::Blocked(_, rejection) | Verdict::Rejected(rejection) => {
                Some(rejection.status.as_u16())
            }
        }
    }

    #[test]
    fn only_the_allowed_methods_pass() {
        let config = Config::default();
        for method in [Method::GET, Method::HEAD, Method::POST, Method::OPTIONS] {
            assert_eq!(check_head(&config, &method, &HeaderMap::new()), Ok(()));
        }
        for method in [
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
            Method::TRACE,
            Method::CONNECT,
        ] {
            let rejection = check_head(&config, &method, &HeaderMap::new()).unwrap_err();
            assert_eq!(rejection.status, StatusCode::METHOD_NOT_ALLOWED);
            assert!(rejection.needs_allow_header());
            assert_eq!(rejection.code, "method_not_allowed");
        }
    }

    #[test]
    fn header_bytes_are_limited() {
        let config = Config {
            max_header_bytes: 20,
            ..Config::default()
        };
        // "x-a: 1234567890\r\n" is 3 + 10 + 4 = 17 bytes.
        let small = headers(&[("x-a", "1234567890")]);
        assert_eq!(header_bytes(&small), 17);
        assert_eq!(check_head(&config, &Method::GET, &small), Ok(()));
        let large = headers(&[("x-a", "1234567890"), ("x-b", "1")]);
        assert_eq!(
            status_of(check_head(&config, &Method::GET, &large)),
            Some(431)
        );
    }

    #[test]
    fn declared_content_length_is_checked_before_reading() {
        let config = Config {
            max_body_bytes: 10,
            ..Config::default()
        };
        let ok = headers(&[("content-length", "10")]);
        assert_eq!(check_head(&config, &Method::POST, &ok), Ok(()));
        let too_big = headers(&[("content-length", "11")]);
        assert_eq!(
            status_of(check_head(&config, &Method::POST, &too_big)),
            Some(413)
        );
        for bad in ["-1", "1e3", "", "ten"] {
            let invalid = headers(&[("content-length", bad)]);
            assert_eq!(
                status_of(check_head(&config, &Method::POST, &invalid)),
                Some(400),
                "{bad}"
            );
        }
        let conflicting = headers(&[("content-length", "1"), ("content-length", "2")]);
        assert_eq!(
            status_of(check_head(&config, &Method::POST, &conflicting)),
            Some(400)
        );
    }

    #[test]
    fn running_body_size_is_checked() {
        let config = Config {
            max_body_bytes: 1_048_576,
            ..Config::default()
        };
        assert_eq!(check_body_size(&config, 1_048_576), Ok(()));
        let rejection = check_body_size(&config, 1_048_577).unwrap_err();
        assert_eq!(rejection.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(rejection.code, "request_too_large");
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
    fn bodies_need_a_json_content_type() {
        let config = Config::default();
        let plain = headers(&[("content-type", "text/plain")]);
        assert_eq!(
            verdict_status(&inspect_request(&config, "/", &plain, b"{}")),
            Some(415)
        );
        assert_eq!(
            verdict_status(&inspect_request(&config, "/", &HeaderMap::new(), b"{}")),
            Some(415)
        );
        // No body, no content-type requirement.
        assert_eq!(
            inspect_request(&config, "/healthz", &HeaderMap::new(), b""),
            Verdict::Pass
        );
    }

    #[test]
    fn invalid_json_is_400() {
        let verdict = inspect_request(&Config::default(), "/", &json_headers(), b"{\"a\":");
        assert_eq!(verdict_status(&verdict), Some(400));
        let Verdict::Rejected(rejection) = verdict else {
            panic!("expected a rejection")
        };
        assert_eq!(rejection.code, "invalid_json");
    }

    #[test]
    fn a_rule_match_blocks_with_the_rule_named() {
        let body = br#"{"messages":[{"role":"user","content":"' OR 1=1 --"}]}"#;
        let verdict = inspect_request(
            &Config::default(),
            "/v1/chat/completions",
            &json_headers(),
            body,
        );
        let Verdict::Blocked(finding, rejection) = verdict else {
            panic!("expected a block, got {verdict:?}")
        };
        assert_eq!(finding.target, "body:/messages/0/content");
        assert_eq!(rejection.status, StatusCode::FORBIDDEN);
        let value: serde_json::Value = serde_json::from_str(&rejection.body()).unwrap();
        assert_eq!(value["error"]["type"], "invalid_request_error");
        assert_eq!(value["error"]["code"], "waf_rule_1001");
        assert!(value["error"]["param"].is_null());
        let message = value["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("1001") && message.contains("sql_injection"),
            "{message}"
        );
        assert!(!message.contains("OR 1=1"), "the payload is not echoed");
    }

    #[test]
    fn detect_mode_reports_but_passes() {
        let config = Config {
            mode: Mode::Detect,
            ..Config::default()
        };
        let verdict = inspect_request(&config, "/search?q=%3Cscript%3E", &HeaderMap::new(), b"");
        let Verdict::Detected(finding) = verdict else {
            panic!("expected a detection, got {verdict:?}")
        };
        let line = match_log_line(&finding, Mode::Detect, "GET", "/search", Some("rid-1"));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["msg"], "waf_match");
        assert_eq!(value["rule"], 2001);
        assert_eq!(value["category"], "xss");
        assert_eq!(value["mode"], "detect");
        assert_eq!(value["target"], "query:q");
        assert_eq!(value["request_id"], "rid-1");
        assert!(!line.contains("script>"), "the matched value is not logged");
    }

    #[test]
    fn limits_and_content_checks_apply_in_detect_mode_too() {
        let config = Config {
            mode: Mode::Detect,
            ..Config::default()
        };
        assert_eq!(
            status_of(check_head(&config, &Method::DELETE, &HeaderMap::new())),
            Some(405)
        );
        assert_eq!(
            verdict_status(&inspect_request(&config, "/", &json_headers(), b"nope")),
            Some(400)
        );
    }

    #[test]
    fn a_normal_chat_request_passes() {
        let body = br#"{"messages":[{"role":"user","content":"Which union members selected the chair? I'm not sure, or 1 of them. What does <T> mean in Rust generics? a -- b"}],"stream":true}"#;
        let verdict = inspect_request(
            &Config::default(),
            "/v1/chat/completions",
            &headers(&[
                ("content-type", "application/json; charset=utf-8"),
                ("authorization", "Bearer abc.def.ghi"),
                ("user-agent", "openai-python/1.50.0"),
            ]),
            body,
        );
        assert_eq!(verdict, Verdict::Pass);
    }

    #[test]
    fn misconfiguration_names_the_variable_only() {
        let rejection = config_rejection(&ConfigError {
            variable: config::MAX_BODY_VARIABLE,
        });
        assert_eq!(rejection.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(rejection.message.contains("waf_max_body_bytes"));
        let value: serde_json::Value = serde_json::from_str(&rejection.body()).unwrap();
        assert_eq!(value["error"]["code"], "waf_misconfigured");
    }
}
