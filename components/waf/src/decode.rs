//! Percent-decoding for URL inspection.

/// How many decoding passes are inspected: once for normal encoding, twice for double encoding.
pub const MAX_DECODE_PASSES: usize = 2;

/// One pass of percent-decoding. Malformed escapes are kept literally; `plus_is_space` applies
/// the form-encoding rule used in query strings. Invalid UTF-8 becomes U+FFFD.
pub fn percent_decode(input: &str, plus_is_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high << 4) | low);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus_is_space => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The input and each distinct result of up to [`MAX_DECODE_PASSES`] decoding passes.
pub fn decoded_variants(input: &str, plus_is_space: bool) -> Vec<String> {
    let mut variants = vec![input.to_owned()];
    for _ in 0..MAX_DECODE_PASSES {
        let next = percent_decode(variants.last().map_or("", String::as_str), plus_is_space);
        if variants.last() == Some(&next) {
            break;
        }
        variants.push(next);
    }
    variants
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_escapes_in_either_case() {
        assert_eq!(percent_decode("%2e%2E%2f", false), "../");
        assert_eq!(percent_decode("a%20b", false), "a b");
    }

    #[test]
    fn keeps_malformed_escapes() {
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%%41", false), "%A");
    }

    #[test]
    fn plus_is_space_only_in_form_encoding() {
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }

    #[test]
    fn invalid_utf8_is_replaced_not_dropped() {
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }

    #[test]
    fn variants_cover_double_encoding_and_stop_there() {
        assert_eq!(
            decoded_variants("%25252e", false),
            ["%25252e", "%252e", "%2e"],
            "a third pass is not made"
        );
        assert_eq!(decoded_variants("plain", false), ["plain"]);
        assert_eq!(
            decoded_variants("%252e%252e%252f", false).last().unwrap(),
            "../"
        );
    }
}
