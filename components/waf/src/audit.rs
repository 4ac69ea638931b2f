//! The audit record: one JSON line per request the rules blocked, would have blocked
//! (detect mode), or flagged with a logged rule below the blocking threshold.
//!
//! It says what a security team needs to see the attack (rule ids, messages, tags, the
//! variables that matched and their values, anomaly scores, paranoia level, mode,
//! verdict) and never a credential: values of credential headers and cookies are
//! replaced by `[redacted]` wherever they appear in a matched value, and a match on such
//! a variable shows no value at all. Values are cut to
//! [`MATCHED_VALUE_LIMIT`](chatgate_seclang::MATCHED_VALUE_LIMIT) bytes; the path is
//! logged without its query (query values appear only as matched values).

use chatgate_seclang::{EngineMode, MATCHED_VALUE_LIMIT, Outcome, RuleMatch};
use http::HeaderMap;
use serde_json::{Map, Value, json};

/// Headers whose values are credentials or session state.
pub const SECRET_HEADERS: [&str; 6] = [
    "authorization",
    "proxy-authorization",
    "api-key",
    "x-api-key",
    "cookie",
    "x-ms-token-aad-access-token",
];

pub const REDACTED: &str = "[redacted]";

/// Secrets shorter than this are not searched for inside other values: every `1` of a
/// log would become `[redacted]` for a cookie `a=1`. The credential variables themselves
/// are still hidden whole.
const MIN_SECRET_LEN: usize = 4;

/// The most characters of the path logged.
const PATH_LIMIT: usize = 256;

/// What the WAF did with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Refused with 403.
    Blocked,
    /// A rule decided to block, but the WAF only detects (`waf_mode=detect` or the rule
    /// set's `SecRuleEngine DetectionOnly`): passed on.
    Detected,
    /// Rules that ask to be logged matched, below the blocking threshold: passed on.
    Flagged,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Blocked => "blocked",
            Verdict::Detected => "detected",
            Verdict::Flagged => "flagged",
        }
    }
}

/// The credentials of a request, to be kept out of the log.
#[derive(Debug, Default)]
pub struct Secrets(Vec<String>);

/// The values of a request's credential headers, as they came: what [`Secrets`] is made
/// of, kept cheaply (one copy per such header) until an audit line needs them, which an
/// ordinary request never does.
#[derive(Debug, Default)]
pub struct SecretHeaders(Vec<(usize, Vec<u8>)>);

impl SecretHeaders {
    /// Keeps `value` if `name` is one of [`SECRET_HEADERS`] (lowercase, as `http` holds
    /// names).
    pub fn add(&mut self, name: &str, value: &[u8]) {
        if let Some(kind) = SECRET_HEADERS.iter().position(|secret| *secret == name) {
            self.0.push((kind, value.to_vec()));
        }
    }

    /// The secrets of the kept values.
    pub fn secrets(&self) -> Secrets {
        // By header name in the order of `SECRET_HEADERS`, each name's values in their
        // order, as `Secrets::of` reads them.
        let mut kept: Vec<&(usize, Vec<u8>)> = self.0.iter().collect();
        kept.sort_by_key(|(kind, _)| *kind);
        Secrets::from_values(
            kept.into_iter()
                .map(|(kind, value)| (SECRET_HEADERS[*kind], value.as_slice())),
        )
    }
}

impl Secrets {
    pub fn of(headers: &HeaderMap) -> Secrets {
        Secrets::from_values(SECRET_HEADERS.iter().flat_map(|name| {
            headers
                .get_all(*name)
                .into_iter()
                .map(move |value| (*name, value.as_bytes()))
        }))
    }

    /// The secrets of credential header values (`name` one of [`SECRET_HEADERS`]).
    fn from_values<'v>(values: impl Iterator<Item = (&'static str, &'v [u8])>) -> Secrets {
        let mut secrets = Vec::new();
        for (name, value) in values {
            let value = String::from_utf8_lossy(value).into_owned();
            if name == "cookie" {
                for pair in value.split(';') {
                    if let Some((_, v)) = pair.split_once('=') {
                        secrets.push(v.trim().to_owned());
                    }
                }
            } else if let Some((_, token)) = value.trim().split_once(' ') {
                // `Bearer <token>`: rules may see the token alone (after a split or a
                // transformation), so it is a secret of its own.
                secrets.push(token.trim().to_owned());
            }
            secrets.push(value.trim().to_owned());
        }
        secrets.retain(|s| s.len() >= MIN_SECRET_LEN);
        // Longest first, so that a token inside a longer header value does not leave the
        // rest of that value behind.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Secrets(secrets)
    }

    /// `value` with every secret replaced, compared ignoring ASCII case (rules often
    /// lowercase what they match).
    pub fn redact(&self, value: &str) -> String {
        let mut out = value.to_owned();
        for secret in &self.0 {
            out = replace_ignore_ascii_case(&out, secret, REDACTED);
        }
        out
    }
}

fn replace_ignore_ascii_case(text: &str, needle: &str, with: &str) -> String {
    let lower_text = text.to_ascii_lowercase();
    let lower_needle = needle.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(found) = lower_text[rest..].find(&lower_needle) {
        let start = rest + found;
        out.push_str(&text[rest..start]);
        out.push_str(with);
        rest = start + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

/// Whether a matched variable (`REQUEST_HEADERS:Authorization`, `REQUEST_COOKIES:sid`, ...)
/// holds a credential, so that no part of its value is logged.
pub fn is_secret_variable(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.starts_with("request_cookies:") || lower == "request_cookies" {
        return true;
    }
    lower
        .strip_prefix("request_headers:")
        .is_some_and(|header| SECRET_HEADERS.contains(&header))
}

/// The request's identity for the record.
pub struct RequestInfo<'a> {
    pub request_id: Option<&'a str>,
    pub method: &'a str,
    /// The path without its query.
    pub path: &'a str,
    pub mode: &'a str,
}

/// Whether `outcome` deserves a record, and with which verdict, given whether the WAF
/// refused the request.
pub fn verdict(outcome: &Outcome, blocked: bool) -> Option<Verdict> {
    if blocked {
        Some(Verdict::Blocked)
    } else if outcome.intervention.is_some() {
        Some(Verdict::Detected)
    } else if outcome.matches.any_logged() {
        Some(Verdict::Flagged)
    } else {
        None
    }
}

/// The rules worth showing: those that asked to be logged, and the one that decided.
pub fn reported(outcome: &Outcome) -> impl Iterator<Item = &RuleMatch> {
    let deciding = outcome.intervention.as_ref().map(|i| i.rule_id);
    outcome
        .matches
        .iter()
        .filter(move |m| m.log || Some(m.id) == deciding)
}

/// The audit line (`{"level":"warn","msg":"waf_audit",...}`).
pub fn record(
    info: &RequestInfo,
    outcome: &Outcome,
    verdict: Verdict,
    status: Option<u16>,
    secrets: &Secrets,
) -> String {
    let matches: Vec<Value> = reported(outcome)
        .map(|m| {
            let matched: Vec<Value> = m
                .matched_vars
                .iter()
                .zip(&m.matched_values)
                .map(|(name, value)| {
                    let value = if is_secret_variable(name) {
                        REDACTED.to_owned()
                    } else {
                        truncate(&secrets.redact(&String::from_utf8_lossy(value)))
                    };
                    json!({"variable": name, "value": value})
                })
                .collect();
            json!({
                "id": m.id,
                "phase": m.phase,
                "msg": m.msg.as_deref().map(|t| truncate(&secrets.redact(t))),
                "logdata": m.logdata.as_deref().map(|t| truncate(&secrets.redact(t))),
                "severity": m.severity,
                "tags": m.tags,
                "matched": matched,
            })
        })
        .collect();
    let rule_ids: Vec<u64> = reported(outcome).map(|m| m.id).collect();
    let mut record = Map::new();
    record.insert("level".into(), "warn".into());
    record.insert("msg".into(), "waf_audit".into());
    record.insert("request_id".into(), json!(info.request_id));
    record.insert("method".into(), info.method.into());
    record.insert("path".into(), truncate_chars(info.path, PATH_LIMIT).into());
    record.insert("verdict".into(), verdict.as_str().into());
    record.insert("status".into(), json!(status));
    record.insert("mode".into(), info.mode.into());
    let engine_mode = match outcome.mode {
        EngineMode::On => "on",
        EngineMode::Off => "off",
        EngineMode::DetectionOnly => "detection_only",
    };
    record.insert("engine_mode".into(), engine_mode.into());
    record.insert(
        "intervention_rule".into(),
        json!(outcome.intervention.as_ref().map(|i| i.rule_id)),
    );
    record.insert("rule_ids".into(), json!(rule_ids));
    record.insert("scores".into(), Value::Object(scores(outcome)));
    record.insert("paranoia_level".into(), paranoia(outcome));
    record.insert("body_error".into(), json!(outcome.body_error));
    record.insert("matches".into(), Value::Array(matches));
    Value::Object(record).to_string()
}

/// What each severity adds (`critical_anomaly_score`, ...): settings, not scores.
const SEVERITY_SETTINGS: [&str; 4] = [
    "critical_anomaly_score",
    "error_anomaly_score",
    "warning_anomaly_score",
    "notice_anomaly_score",
];

/// The anomaly scores of `TX` (CRS 3: `anomaly_score`, `sql_injection_score`, ...;
/// CRS 4: `blocking_inbound_anomaly_score`, `inbound_anomaly_score_pl1`, ...) and the
/// threshold, as numbers; zero scores are left out.
fn scores(outcome: &Outcome) -> Map<String, Value> {
    outcome
        .tx
        .iter()
        .filter(|(name, _)| name.ends_with("_score") || name.contains("anomaly_score"))
        .filter(|(name, _)| !SEVERITY_SETTINGS.contains(&name.as_str()))
        .filter_map(|(name, value)| {
            let number: i64 = value.trim().parse().ok()?;
            (number != 0 || name.contains("threshold")).then(|| (name.clone(), json!(number)))
        })
        .collect()
}

/// CRS 4 says `blocking_paranoia_level` and `detection_paranoia_level`; CRS 3.3
/// `paranoia_level` and `executing_paranoia_level`.
fn paranoia(outcome: &Outcome) -> Value {
    let level = |name: &str| outcome.tx(name).and_then(|v| v.trim().parse::<u8>().ok());
    let blocking = level("blocking_paranoia_level").or_else(|| level("paranoia_level"));
    let detection = level("detection_paranoia_level").or_else(|| level("executing_paranoia_level"));
    json!({"blocking": blocking, "detection": detection.or(blocking)})
}

fn truncate(text: &str) -> String {
    if text.len() <= MATCHED_VALUE_LIMIT {
        return text.to_owned();
    }
    let mut end = MATCHED_VALUE_LIMIT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

fn truncate_chars(text: &str, limit: usize) -> String {
    match text.char_indices().nth(limit) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_seclang::{Intervention, InterventionKind};
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn rule_match(id: u64, log: bool, vars: &[(&str, &str)]) -> RuleMatch {
        RuleMatch {
            id,
            phase: 2,
            msg: Some(format!("rule {id}")),
            logdata: None,
            tags: vec!["attack-sqli".into()],
            severity: Some(2),
            log,
            matched_vars: vars.iter().map(|(n, _)| n.to_string()).collect(),
            matched_values: vars.iter().map(|(_, v)| v.as_bytes().to_vec()).collect(),
        }
    }

    fn outcome(matches: Vec<RuleMatch>, intervention: Option<u64>) -> Outcome {
        Outcome {
            mode: EngineMode::On,
            intervention: intervention.map(|rule_id| Intervention {
                kind: InterventionKind::Deny,
                status: 403,
                rule_id,
                phase: 2,
            }),
            matches: matches.into(),
            tx: [
                ("anomaly_score", "10"),
                ("sql_injection_score", "10"),
                ("xss_score", "0"),
                ("inbound_anomaly_score_threshold", "5"),
                ("critical_anomaly_score", "5"),
                ("paranoia_level", "1"),
                ("executing_paranoia_level", "2"),
                ("crs_setup_version", "334"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            body_error: None,
        }
    }

    const INFO: RequestInfo = RequestInfo {
        request_id: Some("rid-1"),
        method: "POST",
        path: "/v1/chat/completions",
        mode: "block",
    };

    #[test]
    fn the_record_names_rules_scores_and_the_verdict() {
        let outcome = outcome(
            vec![
                rule_match(901100, false, &[]),
                rule_match(942100, true, &[("ARGS:json.model", "1' or '1'='1")]),
                rule_match(949110, true, &[("TX:anomaly_score", "10")]),
            ],
            Some(949110),
        );
        let verdict = verdict(&outcome, true).unwrap();
        let line = record(&INFO, &outcome, verdict, Some(403), &Secrets::default());
        let value: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["msg"], "waf_audit");
        assert_eq!(value["verdict"], "blocked");
        assert_eq!(value["status"], 403);
        assert_eq!(value["request_id"], "rid-1");
        assert_eq!(
            value["rule_ids"],
            json!([942100, 949110]),
            "nolog rules left out"
        );
        assert_eq!(value["intervention_rule"], 949110);
        assert_eq!(
            value["scores"],
            json!({"anomaly_score": 10, "sql_injection_score": 10, "inbound_anomaly_score_threshold": 5})
        );
        assert_eq!(
            value["paranoia_level"],
            json!({"blocking": 1, "detection": 2})
        );
        let first = &value["matches"][0];
        assert_eq!(first["id"], 942100);
        assert_eq!(first["tags"], json!(["attack-sqli"]));
        assert_eq!(first["matched"][0]["variable"], "ARGS:json.model");
        assert_eq!(first["matched"][0]["value"], "1' or '1'='1");
    }

    #[test]
    fn credentials_never_reach_the_record() {
        let request = headers(&[
            ("authorization", "Bearer sk-live-TOKEN-1234"),
            ("api-key", "azure-key-5678"),
            ("x-api-key", "third-key-9012"),
            ("cookie", "sid=SESSION-abcdef; theme=1"),
        ]);
        let secrets = Secrets::of(&request);
        let outcome = outcome(
            vec![rule_match(
                920000,
                true,
                &[
                    ("REQUEST_HEADERS:Authorization", "bearer sk-live-token-1234"),
                    ("REQUEST_COOKIES:sid", "x"),
                    (
                        "REQUEST_HEADERS",
                        "bearer sk-live-token-1234 api azure-key-5678",
                    ),
                    ("ARGS:q", "union select third-key-9012, session-ABCDEF"),
                    ("ARGS:theme", "1 or 1=1"),
                ],
            )],
            None,
        );
        let line = record(&INFO, &outcome, Verdict::Flagged, None, &secrets);
        for secret in [
            "sk-live",
            "TOKEN-1234",
            "token-1234",
            "azure-key",
            "third-key",
            "SESSION-abcdef",
            "session-ABCDEF",
        ] {
            assert!(!line.contains(secret), "{secret} in {line}");
        }
        let value: Value = serde_json::from_str(&line).unwrap();
        let matched = &value["matches"][0]["matched"];
        assert_eq!(matched[0]["value"], REDACTED);
        assert_eq!(matched[1]["value"], REDACTED);
        assert_eq!(matched[2]["value"], "[redacted] api [redacted]");
        assert_eq!(matched[3]["value"], "union select [redacted], [redacted]");
        // A one-character cookie is not hunted for in other values.
        assert_eq!(matched[4]["value"], "1 or 1=1");
    }

    #[test]
    fn values_and_path_are_cut() {
        let long = "a".repeat(1000);
        let outcome = outcome(vec![rule_match(1, true, &[("ARGS:a", &long)])], None);
        let path = format!("/{}", "é".repeat(400));
        let info = RequestInfo {
            path: &path,
            ..INFO
        };
        let line = record(&info, &outcome, Verdict::Flagged, None, &Secrets::default());
        let value: Value = serde_json::from_str(&line).unwrap();
        let logged = value["matches"][0]["matched"][0]["value"].as_str().unwrap();
        assert_eq!(logged.len(), MATCHED_VALUE_LIMIT + "…".len());
        assert_eq!(
            value["path"].as_str().unwrap().chars().count(),
            PATH_LIMIT + 1
        );
    }

    #[test]
    fn verdicts() {
        let quiet = outcome(vec![rule_match(901100, false, &[])], None);
        assert_eq!(verdict(&quiet, false), None);
        let flagged = outcome(vec![rule_match(920350, true, &[])], None);
        assert_eq!(verdict(&flagged, false), Some(Verdict::Flagged));
        let would_block = outcome(vec![rule_match(949110, true, &[])], Some(949110));
        assert_eq!(verdict(&would_block, false), Some(Verdict::Detected));
        assert_eq!(verdict(&would_block, true), Some(Verdict::Blocked));
    }

    #[test]
    fn secret_variables() {
        for name in [
            "REQUEST_HEADERS:Authorization",
            "request_headers:api-key",
            "REQUEST_HEADERS:Cookie",
            "REQUEST_COOKIES:sid",
            "REQUEST_HEADERS:X-API-Key",
        ] {
            assert!(is_secret_variable(name), "{name}");
        }
        for name in [
            "REQUEST_HEADERS:User-Agent",
            "ARGS:authorization",
            "REQUEST_COOKIES_NAMES:sid",
        ] {
            assert!(!is_secret_variable(name), "{name}");
        }
    }
}
