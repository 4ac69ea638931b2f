//! Header values as text, read the way `http::HeaderValue::to_str` reads them, for
//! middlewares that take a header's bytes from the host without building an
//! `http::HeaderMap`.

/// `value` as a string if every byte is visible ASCII (space to `~`) or a tab, as
/// `http::HeaderValue::to_str` accepts it; `None` otherwise.
pub fn visible_ascii(value: &[u8]) -> Option<&str> {
    if value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
    {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::visible_ascii;

    #[test]
    fn reads_every_byte_as_http_header_value_to_str_does() {
        for byte in 0..=u8::MAX {
            let bytes = [b'a', byte, b'z'];
            let ours = visible_ascii(&bytes);
            let http = http::HeaderValue::from_bytes(&bytes)
                .ok()
                .and_then(|value| value.to_str().ok().map(str::to_owned));
            assert_eq!(ours.map(str::to_owned), http, "byte {byte:#04x}");
        }
    }
}
