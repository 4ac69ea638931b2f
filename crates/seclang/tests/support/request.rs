//! The request the CRS-facing tests build (`crs.rs`, `crs4.rs`, `prefilter.rs`): a
//! browser-like HTTP/1.1 request from a documentation address, with `Content-Length`
//! when it has a body.

use chatgate_seclang::Request;

/// `method uri` with the browser's usual headers, `headers` after them, and `body`.
pub fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request {
    let mut all = vec![
        ("Host".to_string(), "chat.example".to_string()),
        (
            "User-Agent".to_string(),
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".to_string(),
        ),
        ("Accept".to_string(), "application/json".to_string()),
    ];
    all.extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    if !body.is_empty() {
        all.push(("Content-Length".to_string(), body.len().to_string()));
    }
    Request {
        method: method.into(),
        uri: uri.into(),
        protocol: "HTTP/1.1".into(),
        headers: all,
        body: body.as_bytes().to_vec(),
        remote_addr: "192.0.2.10".into(),
        remote_port: 40000,
        unique_id: "test".into(),
    }
}
