//! `GET /hello` answers `hello`; `POST /counter` increments a counter in the `default`
//! key-value store and answers its new value (or the store error); any other request is
//! echoed back as JSON so that middleware tests can see exactly what reached the inner handler.
//!
//! The `wasi:keyvalue` routes, on the `default` store, answer the new value or a 500 naming
//! the store error:
//! * `POST /incr/<key>`: atomic `increment` by the request body (a decimal integer; empty: 1);
//! * `POST /cas/<key>`: adds 1 to a decimal counter with compare-and-swap, retrying on conflict;
//! * `GET /raw/<key>`: the stored bytes, read through `spin:key-value`, as lowercase hex
//!   (404 when absent).

/// The counter value after `previous` (missing or unreadable values restart at zero).
pub fn next_count(previous: Option<&[u8]>) -> u64 {
    previous
        .and_then(|bytes| std::str::from_utf8(bytes).ok())
        .and_then(|text| text.parse::<u64>().ok())
        .map_or(1, |n| n.saturating_add(1))
}

/// The key addressed by `path` under `prefix` (e.g. `/incr/`), if it names one.
pub fn key_under<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    path.strip_prefix(prefix).filter(|key| !key.is_empty())
}

/// The increment a request body asks for: a decimal integer, 1 when the body is blank.
pub fn parse_delta(body: &[u8]) -> Result<i64, String> {
    let text = std::str::from_utf8(body)
        .map_err(|_| "the delta must be a decimal integer".to_string())?
        .trim();
    if text.is_empty() {
        return Ok(1);
    }
    text.parse()
        .map_err(|_| "the delta must be a decimal integer".to_string())
}

/// Bytes as lowercase hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The JSON echo of a request: method, path, headers (in order) and body size.
pub fn echo_json(
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body_len: usize,
) -> String {
    let headers: Vec<serde_json::Value> = headers
        .iter()
        .map(|(name, value)| serde_json::json!([name, value]))
        .collect();
    serde_json::json!({
        "method": method,
        "path": path,
        "headers": headers,
        "body_bytes": body_len,
    })
    .to_string()
}

#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(test)]
mod tests {
    #[test]
    fn counter_starts_at_one_and_increments() {
        assert_eq!(super::next_count(None), 1);
        assert_eq!(super::next_count(Some(b"41")), 42);
        assert_eq!(super::next_count(Some(b"garbage")), 1);
    }

    #[test]
    fn keys_are_taken_from_the_path_after_the_route_prefix() {
        assert_eq!(super::key_under("/incr/hits", "/incr/"), Some("hits"));
        assert_eq!(super::key_under("/incr/", "/incr/"), None);
        assert_eq!(super::key_under("/cas/hits", "/incr/"), None);
    }

    #[test]
    fn delta_is_a_decimal_integer_defaulting_to_one() {
        assert_eq!(super::parse_delta(b""), Ok(1));
        assert_eq!(super::parse_delta(b" -7\n"), Ok(-7));
        assert!(super::parse_delta(b"1.5").is_err());
        assert!(super::parse_delta(&[0xff]).is_err());
    }

    #[test]
    fn hex_is_lowercase_and_zero_padded() {
        assert_eq!(super::hex(&[0x32, 0, 0xab]), "3200ab");
    }

    #[test]
    fn echo_keeps_header_order_and_counts_body() {
        let json = super::echo_json(
            "POST",
            "/x?y=1",
            &[("a".into(), "1".into()), ("b".into(), "2".into())],
            5,
        );
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["headers"][1][0], "b");
        assert_eq!(v["body_bytes"], 5);
        assert_eq!(v["path"], "/x?y=1");
    }
}
