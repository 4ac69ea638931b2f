//! Which parts of a request the rules see, and in which form.

use crate::decode::decoded_variants;
use crate::rules::{Context, Rule, first_match};
use http::HeaderMap;
use serde_json::Value;

/// Header values that are not inspected. `authorization` and `api-key` (and
/// `proxy-authorization`) carry credentials: opaque random tokens that `auth` verifies
/// cryptographically and no component interprets as text, so inspecting them only risks false
/// positives on secrets. `cookie` is skipped because no chatgate component reads cookies, and
/// a browser may attach unrelated cookies of the same site whose opaque values would produce
/// false positives without protecting anything here.
pub const UNINSPECTED_HEADERS: [&str; 4] =
    ["authorization", "proxy-authorization", "api-key", "cookie"];

/// Longest target description put in a log line.
const MAX_TARGET_LEN: usize = 128;

/// A rule match and where it was found (never the matched value, which may be sensitive).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub rule: &'static Rule,
    /// `path`, `query:<name>`, `header:<name>` or `body:<JSON pointer>`.
    pub target: String,
}

impl PartialEq for Rule {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}
impl Eq for Rule {}

/// Inspects the path and each query parameter as sent and after one and two decoding passes.
pub fn inspect_url(path_and_query: &str) -> Option<Finding> {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    for variant in decoded_variants(path, false) {
        if let Some(rule) = first_match(&variant, Context::UrlPath) {
            return Some(Finding {
                rule,
                target: "path".to_owned(),
            });
        }
    }
    for parameter in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        for part in [name, value] {
            for variant in decoded_variants(part, true) {
                if let Some(rule) = first_match(&variant, Context::UrlQuery) {
                    return Some(Finding {
                        rule,
                        target: describe("query", name),
                    });
                }
            }
        }
    }
    None
}

/// Inspects every header value except [`UNINSPECTED_HEADERS`].
pub fn inspect_headers(headers: &HeaderMap) -> Option<Finding> {
    headers
        .iter()
        .filter(|(name, _)| !UNINSPECTED_HEADERS.contains(&name.as_str()))
        .find_map(|(name, value)| {
            let text = String::from_utf8_lossy(value.as_bytes());
            first_match(&text, Context::Header).map(|rule| Finding {
                rule,
                target: describe("header", name.as_str()),
            })
        })
}

/// Inspects every string and object key of a JSON document.
pub fn inspect_json(document: &Value) -> Option<Finding> {
    let mut path = Vec::new();
    walk(document, &mut path)
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

fn walk<'a>(value: &'a Value, path: &mut Vec<Step<'a>>) -> Option<Finding> {
    match value {
        Value::String(text) => check_json_text(text, path),
        Value::Array(items) => items.iter().enumerate().find_map(|(index, item)| {
            path.push(Step::Index(index));
            let found = walk(item, path);
            path.pop();
            found
        }),
        Value::Object(members) => members.iter().find_map(|(key, item)| {
            path.push(Step::Key(key));
            let found = check_json_text(key, path).or_else(|| walk(item, path));
            path.pop();
            found
        }),
        Value::Null | Value::Bool(_) | Value::Number(_) => None,
    }
}

fn check_json_text(text: &str, path: &[Step]) -> Option<Finding> {
    first_match(text, Context::JsonString).map(|rule| Finding {
        rule,
        target: describe("body", &json_pointer(path)),
    })
}

/// RFC 6901 pointer to the value, for the log.
fn json_pointer(path: &[Step]) -> String {
    let mut pointer = String::new();
    for step in path {
        pointer.push('/');
        match step {
            Step::Key(key) => pointer.push_str(&key.replace('~', "~0").replace('/', "~1")),
            Step::Index(index) => pointer.push_str(&index.to_string()),
        }
    }
    pointer
}

/// `<kind>:<name>`, truncated on a character boundary so hostile names cannot bloat logs.
fn describe(kind: &str, name: &str) -> String {
    let mut target = format!("{kind}:{name}");
    if target.len() > MAX_TARGET_LEN {
        let mut cut = MAX_TARGET_LEN;
        while !target.is_char_boundary(cut) {
            cut -= 1;
        }
        target.truncate(cut);
    }
    target
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use serde_json::json;

    fn rule_id(finding: Option<Finding>) -> Option<(u32, String)> {
        finding.map(|f| (f.rule.id, f.target))
    }

    #[test]
    fn url_path_is_inspected_after_single_and_double_decoding() {
        assert_eq!(
            rule_id(inspect_url("/v1/%2e%2e/%2e%2e/etc/passwd")),
            Some((3002, "path".into()))
        );
        assert_eq!(
            rule_id(inspect_url("/files/%252e%252e%252fsecret")),
            Some((3002, "path".into()))
        );
        assert_eq!(
            rule_id(inspect_url("/files/..%252fsecret")),
            Some((3001, "path".into()))
        );
        assert_eq!(rule_id(inspect_url("/v1/chat/completions")), None);
    }

    #[test]
    fn query_parameters_are_decoded_and_named_in_the_target() {
        assert_eq!(
            rule_id(inspect_url("/search?q=1%27%20OR%201%3D1%20--&page=2")),
            Some((1001, "query:q".into()))
        );
        assert_eq!(
            rule_id(inspect_url("/search?q=%253Cscript%253E")),
            Some((2001, "query:q".into()))
        );
        assert_eq!(
            rule_id(inspect_url("/search?user=admin%27--&x=1")),
            Some((1005, "query:user".into()))
        );
        assert_eq!(
            rule_id(inspect_url(
                "/search?q=union+members+selected+a+leader&lang=en"
            )),
            None
        );
    }

    #[test]
    fn a_triple_encoded_payload_is_beyond_the_two_passes() {
        // %25252e -> %252e -> %2e: the encoded-dots rule still sees the leftover escape.
        assert_eq!(
            rule_id(inspect_url("/a/%25252e%25252e")).map(|f| f.0),
            Some(3002)
        );
        // A triple-encoded <script> is only text after two passes, and is let through.
        assert_eq!(rule_id(inspect_url("/search?q=%25253Cscript%25253E")), None);
    }

    #[test]
    fn header_values_are_inspected_except_credentials_and_cookies() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static("Bearer ' or 1=1 --"),
        );
        headers.insert("api-key", HeaderValue::from_static("../../etc/passwd"));
        headers.insert("cookie", HeaderValue::from_static("session=<script>"));
        headers.insert(
            "user-agent",
            HeaderValue::from_static("Mozilla/5.0 (X11; Linux x86_64; rv:128.0)"),
        );
        assert_eq!(inspect_headers(&headers), None);
        headers.insert(
            "referer",
            HeaderValue::from_static("<script>alert(1)</script>"),
        );
        assert_eq!(
            rule_id(inspect_headers(&headers)),
            Some((2001, "header:referer".into()))
        );
    }

    #[test]
    fn typical_browser_and_sdk_headers_pass() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            (
                "accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            ),
            ("accept-language", "en-US,en;q=0.5"),
            (
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/128.0.0.0 Safari/537.36",
            ),
            (
                "sec-ch-ua",
                "\"Chromium\";v=\"128\", \"Not;A=Brand\";v=\"24\", \"Google Chrome\";v=\"128\"",
            ),
            (
                "referer",
                "https://chat.example.com/c/123?tab=history&q=a%20b",
            ),
            (
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            ),
            ("x-stainless-os", "Linux"),
            ("if-none-match", "W/\"0815\""),
        ] {
            headers.append(name, HeaderValue::from_str(value).unwrap());
        }
        assert_eq!(inspect_headers(&headers), None);
    }

    #[test]
    fn every_json_string_and_key_is_inspected() {
        let message = json!({"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "<svg/onload=alert(1)>"}]});
        assert_eq!(
            rule_id(inspect_json(&message)),
            Some((2003, "body:/messages/1/content".into()))
        );
        let hostile_key = json!({"filters": {"' or 1=1 --": true}});
        assert_eq!(
            rule_id(inspect_json(&hostile_key)),
            Some((1001, "body:/filters/' or 1=1 --".into()))
        );
        let escaped = json!({"a/b": {"c~d": "../../etc/passwd"}});
        assert_eq!(
            rule_id(inspect_json(&escaped)),
            Some((3001, "body:/a~1b/c~0d".into()))
        );
    }

    #[test]
    fn ordinary_chat_bodies_pass() {
        let chat = json!({
            "model": "gpt-4o",
            "stream": true,
            "temperature": 0.2,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Which union members selected the new chair? I'm not sure, or 1 of them."},
                {"role": "user", "content": "what does <T> mean in Rust generics, and is a -- b valid?"},
            ]
        });
        assert_eq!(inspect_json(&chat), None);
    }

    #[test]
    fn long_targets_are_truncated() {
        let key = "k".repeat(500);
        let document = json!({ key: "<script>" });
        let finding = inspect_json(&document).unwrap();
        assert_eq!(finding.target.len(), MAX_TARGET_LEN);
    }
}
