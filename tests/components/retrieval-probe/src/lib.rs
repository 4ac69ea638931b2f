//! The benchmark's view of a retriever (`cargo bench --bench retrieval`):
//!
//! - `GET /search?k=<top-k>&q=<query>` calls `chatgate:retriever/retriever.search` and answers
//!   the number of passages and the first id, with the call's duration measured inside
//!   Wasm by the monotonic clock in `x-search-ns`;
//! - any other request answers 204 without calling the retriever, so that its latency is
//!   the per-request cost of instantiating the composition (the retriever included).

/// `(top_k, query)` of a `/search` query string; `None` unless both are there and valid.
pub fn search_parameters(query_string: &str) -> Option<(u32, String)> {
    let mut top_k = None;
    let mut query = None;
    for pair in query_string.split('&') {
        let (name, value) = pair.split_once('=')?;
        match name {
            "k" => top_k = value.parse().ok(),
            "q" => query = Some(percent_decode(value)?),
            _ => {}
        }
    }
    Some((top_k?, query?))
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = text.get(i + 1..i + 3)?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8(decoded).ok()
}

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;

#[cfg(test)]
mod tests {
    use super::search_parameters;

    #[test]
    fn reads_top_k_and_a_decoded_query() {
        assert_eq!(
            search_parameters("k=10&q=web+application%20firewall%3F"),
            Some((10, "web application firewall?".to_string()))
        );
        assert_eq!(search_parameters("q=x"), None);
        assert_eq!(search_parameters("k=ten&q=x"), None);
        assert_eq!(search_parameters("k=1&q=%zz"), None);
    }
}
