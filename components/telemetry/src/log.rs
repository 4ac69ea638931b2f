//! The one JSON log line written per request, and the timing values derived from it.

use std::time::Duration;

/// Severity by outcome: server faults are errors, client faults warnings.
pub fn level_for_status(status: u16) -> &'static str {
    match status {
        500.. => "error",
        400..=499 => "warn",
        _ => "info",
    }
}

/// Milliseconds with microsecond resolution, for the log line.
pub fn duration_ms(elapsed: Duration) -> f64 {
    (elapsed.as_secs_f64() * 1_000_000.0).round() / 1_000.0
}

/// `Server-Timing` metric for the whole chain (RFC: <https://www.w3.org/TR/server-timing/>).
pub fn server_timing(elapsed: Duration) -> String {
    format!("total;dur={:.1}", elapsed.as_secs_f64() * 1_000.0)
}

/// RFC 3339 UTC timestamp with millisecond precision, e.g. `2024-03-01T12:34:56.789Z`.
pub fn rfc3339_utc(since_unix_epoch: Duration) -> String {
    let mut out = String::with_capacity(24);
    push_rfc3339_utc(&mut out, since_unix_epoch);
    out
}

/// Appends [`rfc3339_utc`] to `out`, digit by digit rather than through `format!`.
fn push_rfc3339_utc(out: &mut String, since_unix_epoch: Duration) {
    let secs = since_unix_epoch.as_secs();
    let millis = u64::from(since_unix_epoch.subsec_millis());
    let days = secs / 86_400;
    let secs_of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    push_padded(out, year, 4);
    out.push('-');
    push_padded(out, month, 2);
    out.push('-');
    push_padded(out, day, 2);
    out.push('T');
    push_padded(out, secs_of_day / 3_600, 2);
    out.push(':');
    push_padded(out, (secs_of_day % 3_600) / 60, 2);
    out.push(':');
    push_padded(out, secs_of_day % 60, 2);
    out.push('.');
    push_padded(out, millis, 3);
    out.push('Z');
}

/// Appends `value` in decimal, zero-padded to `width` digits (as `{value:0width$}`).
fn push_padded(out: &mut String, mut value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut start = digits.len();
    while value > 0 {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    let start = start.min(digits.len() - width.clamp(1, digits.len()));
    out.push_str(std::str::from_utf8(&digits[start..]).unwrap_or_default());
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Appends `value` as a JSON string, quoted and escaped as `serde_json` escapes it:
/// `"` and `\\` with a backslash, the control characters below U+0020 as `\\b`, `\\t`,
/// `\\n`, `\\f`, `\\r` or `\\u00xx` (lowercase hex), everything else as it is.
fn push_json(line: &mut String, value: &str) {
    line.push('"');
    let mut plain = 0;
    for (at, byte) in value.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        line.push_str(&value[plain..at]);
        plain = at + 1;
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            line.push_str("\\u00");
            line.push(char::from(HEX[usize::from(byte >> 4)]));
            line.push(char::from(HEX[usize::from(byte & 0x0f)]));
        } else {
            line.push_str(escape);
        }
    }
    line.push_str(&value[plain..]);
    line.push('"');
}

/// Appends [`duration_ms`] as `serde_json` writes the number (the shortest decimal that
/// reads back as the same `f64`, with `.0` when whole).
fn push_duration_ms(line: &mut String, elapsed: Duration) {
    let micros = (elapsed.as_secs_f64() * 1_000_000.0).round();
    // Below 2^40 microseconds (12 days) the microseconds are exact and their decimal
    // value, three places after the point, is that shortest decimal: a shorter one is at
    // least a thousandth away, more than the spacing of `f64`s there.
    if micros < (1u64 << 40) as f64 {
        let micros = micros as u64;
        push_padded(line, micros / 1_000, 1);
        line.push('.');
        let thousandths = micros % 1_000;
        if thousandths == 0 {
            line.push('0');
        } else {
            // Without trailing zeros: 0.5, 0.05, 0.541.
            let (mut digits, mut width) = (thousandths, 3);
            while digits % 10 == 0 {
                digits /= 10;
                width -= 1;
            }
            push_padded(line, digits, width);
        }
    } else {
        line.push_str(&serde_json::Value::from(duration_ms(elapsed)).to_string());
    }
}

/// Appends `id` as a JSON string of lowercase hex digits (which need no escaping).
fn push_hex_json(line: &mut String, id: &[u8]) {
    line.push('"');
    crate::trace::push_hex(line, id);
    line.push('"');
}

/// Everything the request log line says.
pub struct RequestLog<'a> {
    pub started_at: Duration,
    pub method: &'a str,
    /// The path only: query strings can carry personal data or credentials.
    pub route: &'a str,
    pub status: u16,
    pub elapsed: Duration,
    pub span: &'a crate::trace::Span,
    pub request_id: &'a str,
    /// Why the inner handler produced no response, if it did not.
    pub error: Option<&'a str>,
}

impl RequestLog<'_> {
    /// The line alone ([`RequestLog::to_json_line_and_record`]).
    #[cfg(test)]
    pub fn to_json_line(&self) -> String {
        self.to_json_line_and_record().0
    }

    /// The line, its keys in the order `serde_json` sorts them, and where in it the values
    /// of the same request's OpenTelemetry record are ([`OtelRecord`]): the record repeats
    /// them as JSON text, which is what the line holds, so they are copied from it rather
    /// than escaped and written again. Written field by field rather than through a
    /// `serde_json::Value` (a map of eleven entries, each key and value allocated, then
    /// serialised): about 10 µs of a request's time in `telemetry`, measured with the
    /// gateway bench's `BENCH_VARIANTS`.
    pub fn to_json_line_and_record(&self) -> (String, OtelRecord) {
        let mut line = String::with_capacity(400);
        line.push_str("{\"duration_ms\":");
        let start = line.len();
        // As `serde_json` writes a finite number (a duration is one).
        push_duration_ms(&mut line, self.elapsed);
        let duration = start..line.len();
        let mut error = 0..0;
        if let Some(value) = self.error {
            line.push_str(",\"error\":");
            let start = line.len();
            push_json(&mut line, value);
            error = start..line.len();
        }
        line.push_str(",\"level\":\"");
        line.push_str(level_for_status(self.status));
        line.push_str("\",\"method\":");
        let start = line.len();
        push_json(&mut line, self.method);
        let method = start..line.len();
        line.push_str(",\"msg\":\"request\",\"parent_span_id\":");
        match &self.span.parent_span_id {
            Some(parent) => push_hex_json(&mut line, parent),
            None => line.push_str("null"),
        }
        line.push_str(",\"request_id\":");
        let start = line.len();
        push_json(&mut line, self.request_id);
        let request_id = start..line.len();
        line.push_str(",\"route\":");
        let start = line.len();
        push_json(&mut line, self.route);
        let route = start..line.len();
        line.push_str(",\"span_id\":");
        push_hex_json(&mut line, &self.span.span_id);
        line.push_str(",\"status\":");
        let start = line.len();
        push_padded(&mut line, u64::from(self.status), 1);
        let status = start..line.len();
        line.push_str(",\"trace_id\":");
        push_hex_json(&mut line, &self.span.trace_id);
        line.push_str(",\"ts\":");
        line.push('"');
        push_rfc3339_utc(&mut line, self.started_at);
        line.push('"');
        line.push('}');
        let severity = match level_for_status(self.status) {
            "error" => 17,
            "warn" => 13,
            _ => 9,
        };
        let record = OtelRecord {
            severity,
            values: [
                ("http.request.method", method),
                ("url.path", route),
                ("http.response.status_code", status),
                ("chatgate.request_id", request_id),
                ("chatgate.duration_ms", duration),
                ("error.type", error),
            ],
            len: if self.error.is_some() { 6 } else { 5 },
        };
        (line, record)
    }

    /// The same as an OpenTelemetry log record: the severity number (9 info, 13 warn,
    /// 17 error, by the line's level) and the attributes, named by the HTTP semantic
    /// conventions where they have a name. The trace and span are the record's context.
    /// The values are JSON text, as `wasi:otel` carries them, as the line writes them
    /// (what serde_json writes for them).
    #[cfg(test)]
    pub fn otel_record(&self) -> (u8, Vec<(&'static str, String)>) {
        let (line, record) = self.to_json_line_and_record();
        let attributes = record
            .attributes(&line)
            .map(|(key, value)| (key, value.to_owned()))
            .collect();
        (record.severity, attributes)
    }
}

/// The request's OpenTelemetry log record ([`RequestLog::otel_record`]), its values
/// where its line holds them ([`RequestLog::to_json_line_and_record`]).
#[derive(Debug, Clone)]
pub struct OtelRecord {
    /// OpenTelemetry's severity number.
    pub severity: u8,
    values: [(&'static str, std::ops::Range<usize>); 6],
    len: usize,
}

impl OtelRecord {
    /// The attributes, each value the JSON text `line` holds for it.
    pub fn attributes<'l>(
        &self,
        line: &'l str,
    ) -> impl ExactSizeIterator<Item = (&'static str, &'l str)> + use<'l, '_> {
        self.values[..self.len]
            .iter()
            .map(|(key, range)| (*key, line.get(range.clone()).unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{SPAN_ENTROPY_LEN, Span};

    #[test]
    fn the_otel_record_says_what_the_line_says() {
        let span = Span::start(None, &[7u8; SPAN_ENTROPY_LEN]);
        let log = RequestLog {
            started_at: Duration::ZERO,
            method: "POST",
            route: "/v1/chat/completions",
            status: 503,
            elapsed: Duration::from_micros(1_500),
            span: &span,
            request_id: "rid-1",
            error: Some("upstream"),
        };
        let (severity, attributes) = log.otel_record();
        assert_eq!(severity, 17);
        // Each value is what serde_json writes for the attribute's value.
        let expected: [(&str, serde_json::Value); 6] = [
            ("http.request.method", "POST".into()),
            ("url.path", "/v1/chat/completions".into()),
            ("http.response.status_code", 503.into()),
            ("chatgate.request_id", "rid-1".into()),
            ("chatgate.duration_ms", 1.5.into()),
            ("error.type", "upstream".into()),
        ];
        let expected: Vec<(&str, String)> = expected
            .into_iter()
            .map(|(key, value)| (key, value.to_string()))
            .collect();
        assert_eq!(attributes, expected);
        let awkward = RequestLog {
            route: "/a\"b\\c\n\u{1}é",
            elapsed: Duration::from_secs(2),
            error: None,
            status: 200,
            ..log
        };
        let (severity, attributes) = awkward.otel_record();
        assert_eq!(severity, 9);
        assert_eq!(attributes.len(), 5);
        assert_eq!(
            attributes[1].1,
            serde_json::Value::from(awkward.route).to_string()
        );
        assert_eq!(attributes[4].1, serde_json::Value::from(2000.0).to_string());
    }

    #[test]
    fn levels_follow_status_classes() {
        assert_eq!(level_for_status(200), "info");
        assert_eq!(level_for_status(304), "info");
        assert_eq!(level_for_status(401), "warn");
        assert_eq!(level_for_status(499), "warn");
        assert_eq!(level_for_status(500), "error");
        assert_eq!(level_for_status(502), "error");
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(rfc3339_utc(Duration::ZERO), "1970-01-01T00:00:00.000Z");
        // 2024-02-29 (leap day) 23:59:59.999
        assert_eq!(
            rfc3339_utc(Duration::from_millis(1_709_251_199_999)),
            "2024-02-29T23:59:59.999Z"
        );
        assert_eq!(
            rfc3339_utc(Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00.000Z"
        );
        assert_eq!(
            rfc3339_utc(Duration::from_secs(4_102_444_800)),
            "2100-01-01T00:00:00.000Z"
        );
    }

    #[test]
    fn server_timing_has_one_decimal() {
        assert_eq!(
            server_timing(Duration::from_micros(12_345)),
            "total;dur=12.3"
        );
        assert_eq!(server_timing(Duration::ZERO), "total;dur=0.0");
        assert_eq!(server_timing(Duration::from_micros(1_500)), "total;dur=1.5");
    }

    #[test]
    fn duration_is_milliseconds_rounded_to_microseconds() {
        assert_eq!(duration_ms(Duration::from_nanos(12_345_678)), 12.346);
    }

    #[test]
    fn log_line_is_one_json_object_with_the_contract_fields() {
        let span = Span::start(None, &[9; SPAN_ENTROPY_LEN]);
        let log = RequestLog {
            started_at: Duration::from_secs(0),
            method: "POST",
            route: "/v1/chat/completions",
            status: 503,
            elapsed: Duration::from_millis(5),
            span: &span,
            request_id: "rid-1",
            error: None,
        };
        let line = log.to_json_line();
        assert!(!line.contains('\n'));
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["ts"], "1970-01-01T00:00:00.000Z");
        assert_eq!(value["level"], "error");
        assert_eq!(value["msg"], "request");
        assert_eq!(value["method"], "POST");
        assert_eq!(value["route"], "/v1/chat/completions");
        assert_eq!(value["status"], 503);
        assert_eq!(value["duration_ms"], 5.0);
        assert_eq!(value["trace_id"], span.trace_id_hex());
        assert_eq!(value["span_id"], span.span_id_hex());
        assert_eq!(value["request_id"], "rid-1");
        assert!(value.get("error").is_none());
    }

    /// The line as a `serde_json::Value` renders it (how it was written before).
    fn rendered_by_serde_json(log: &RequestLog) -> String {
        let mut line = serde_json::json!({
            "ts": rfc3339_utc(log.started_at),
            "level": level_for_status(log.status),
            "msg": "request",
            "method": log.method,
            "route": log.route,
            "status": log.status,
            "duration_ms": duration_ms(log.elapsed),
            "trace_id": log.span.trace_id_hex(),
            "span_id": log.span.span_id_hex(),
            "parent_span_id": log.span.parent_span_id_hex(),
            "request_id": log.request_id,
        });
        if let Some(error) = log.error {
            line["error"] = serde_json::Value::from(error);
        }
        line.to_string()
    }

    #[test]
    fn the_line_is_byte_for_byte_what_serde_json_wrote() {
        let root = Span::start(None, &[3; SPAN_ENTROPY_LEN]);
        let child = root.child(&[4; 8]);
        for (span, error, status, elapsed, route) in [
            (&root, None, 200, Duration::from_micros(541), "/v1/models"),
            (
                &child,
                Some("Timeout \"x\"\n"),
                502,
                Duration::from_nanos(12_345_678),
                "/ä\u{1}\\",
            ),
            (&root, None, 404, Duration::ZERO, ""),
            (&child, None, 200, Duration::from_secs(90_061), "/a\"b\n{}"),
        ] {
            let log = RequestLog {
                started_at: Duration::from_millis(1_709_251_199_999),
                method: "GET",
                route,
                status,
                elapsed,
                span,
                request_id: "rid-\u{7f}",
                error,
            };
            assert_eq!(log.to_json_line(), rendered_by_serde_json(&log));
        }
    }

    #[test]
    fn hostile_routes_cannot_break_the_line() {
        let span = Span::start(None, &[9; SPAN_ENTROPY_LEN]);
        let log = RequestLog {
            started_at: Duration::ZERO,
            method: "GET",
            route: "/a\"b\n{\"level\":\"info\"}",
            status: 200,
            elapsed: Duration::ZERO,
            span: &span,
            request_id: "r",
            error: Some("connection refused"),
        };
        let line = log.to_json_line();
        assert_eq!(line.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["route"], "/a\"b\n{\"level\":\"info\"}");
        assert_eq!(value["error"], "connection refused");
    }

    #[test]
    fn numbers_strings_and_timestamps_are_what_serde_json_and_fmt_write() {
        let mut micros: Vec<u64> = (0..20_000).collect();
        micros.extend((0..2_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 24));
        micros.extend([
            999_999,
            1_000_000,
            90_061_000_000,
            (1 << 40) - 1,
            1 << 40,
            1 << 50,
        ]);
        for micros in micros {
            for extra_nanos in [0, 499, 500, 999] {
                let elapsed = Duration::from_nanos(micros * 1_000 + extra_nanos);
                let mut line = String::new();
                push_duration_ms(&mut line, elapsed);
                assert_eq!(
                    line,
                    serde_json::Value::from(duration_ms(elapsed)).to_string(),
                    "{elapsed:?}"
                );
            }
        }
        let mut text = String::new();
        for c in (0..0x80u8).map(char::from).chain("ä€😀\u{2028}".chars()) {
            text.push(c);
            text.push('x');
            text.push(c);
        }
        for value in [text.as_str(), "", "plain", "\"", "\u{1f}"] {
            let mut line = String::new();
            push_json(&mut line, value);
            assert_eq!(line, serde_json::to_string(value).unwrap());
        }
        for secs in (0..400u64).map(|i| i * 86_400 * 367 + i * 3_607).chain([
            253_402_300_799,
            253_402_300_800,
            32_503_680_000_000,
        ]) {
            for millis in [0, 7, 999] {
                let at = Duration::from_millis(secs * 1_000 + millis);
                let secs_of_day = secs % 86_400;
                let (year, month, day) = civil_from_days(secs / 86_400);
                assert_eq!(
                    rfc3339_utc(at),
                    format!(
                        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
                        secs_of_day / 3_600,
                        (secs_of_day % 3_600) / 60,
                        secs_of_day % 60
                    )
                );
            }
        }
    }
}
