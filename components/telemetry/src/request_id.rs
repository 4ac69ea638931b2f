//! `x-request-id`: keep a sane client-supplied id so callers can correlate, else mint one.

const MAX_LEN: usize = 128;

/// Random bytes [`choose`] may need to mint an id.
pub const REQUEST_ID_ENTROPY_LEN: usize = 16;

/// A client id is kept only if it is a short token that is safe in headers and logs.
pub fn is_acceptable(candidate: &str) -> bool {
    !candidate.is_empty()
        && candidate.len() <= MAX_LEN
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// The client's id when exactly one acceptable id was sent, else a new UUIDv4-formatted one.
pub fn choose(client_values: &[&[u8]], entropy: &[u8; REQUEST_ID_ENTROPY_LEN]) -> String {
    if let [single] = client_values
        && let Ok(text) = std::str::from_utf8(single)
        && is_acceptable(text)
    {
        return text.to_owned();
    }
    generate(entropy)
}

/// Formats random bytes as a version-4 UUID (RFC 9562), which log tooling recognises.
pub fn generate(entropy: &[u8; REQUEST_ID_ENTROPY_LEN]) -> String {
    let mut bytes = *entropy;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let mut id = String::with_capacity(36);
    for (at, group) in [0..4, 4..6, 6..8, 8..10, 10..16].into_iter().enumerate() {
        if at > 0 {
            id.push('-');
        }
        crate::trace::push_hex(&mut id, &bytes[group]);
    }
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_short_tokens_of_the_allowed_alphabet() {
        assert!(is_acceptable("abc-123_DEF.4"));
        assert!(is_acceptable(&"a".repeat(128)));
    }

    #[test]
    fn rejects_empty_long_or_unsafe_ids() {
        for bad in [
            "",
            "has space",
            "semi;colon",
            "quote\"",
            "new\nline",
            "ünï",
            "a/b",
        ] {
            assert!(!is_acceptable(bad), "{bad:?}");
        }
        assert!(!is_acceptable(&"a".repeat(129)));
    }

    #[test]
    fn keeps_a_single_acceptable_client_id() {
        assert_eq!(choose(&[b"req-42"], &[0; 16]), "req-42");
    }

    #[test]
    fn replaces_unacceptable_missing_or_repeated_ids() {
        let minted = generate(&[7; 16]);
        assert_eq!(choose(&[b"bad id"], &[7; 16]), minted);
        assert_eq!(choose(&[], &[7; 16]), minted);
        assert_eq!(choose(&[b"a", b"b"], &[7; 16]), minted);
        assert_eq!(choose(&[&[0xff, 0xfe]], &[7; 16]), minted);
    }

    #[test]
    fn generated_ids_are_uuid_v4_and_themselves_acceptable() {
        let id = generate(&[0xff; 16]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert!(is_acceptable(&id));
        assert_ne!(generate(&[1; 16]), generate(&[2; 16]));
    }

    #[test]
    fn generated_ids_are_the_hex_grouped_8_4_4_4_12() {
        for fill in [0u8, 0x5a, 0xff] {
            let mut entropy = [fill; 16];
            entropy[0] = 0x01;
            entropy[15] = 0xfe;
            let mut bytes = entropy;
            bytes[6] = (bytes[6] & 0x0f) | 0x40;
            bytes[8] = (bytes[8] & 0x3f) | 0x80;
            let hex = crate::trace::encode_hex(&bytes);
            let expected = format!(
                "{}-{}-{}-{}-{}",
                &hex[0..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..32]
            );
            assert_eq!(generate(&entropy), expected);
        }
    }
}
