//! Property tests of the JWT verifier and the JWKS parser: arbitrary input is refused
//! with an error, never a panic, and no single-byte change to a valid token verifies.

mod common;

use auth::jwt::{Jwks, Policy, TokenError, looks_like_jwt, verify};
use common::*;
use proptest::prelude::*;
use std::sync::OnceLock;

fn policy() -> Policy<'static> {
    Policy {
        issuer: ISSUER,
        audience: AUDIENCE,
        clock_skew_seconds: 60,
    }
}

fn jwks_parsed() -> &'static Jwks {
    static JWKS: OnceLock<Jwks> = OnceLock::new();
    JWKS.get_or_init(|| Jwks::parse(&jwks()).unwrap())
}

fn check(token: &str) -> Result<String, TokenError> {
    verify(token, jwks_parsed(), &policy(), NOW).map(|t| t.subject)
}

fn token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(valid_token)
}

/// `token` with byte `at` XORed with `mask` (7 bits, so the token stays ASCII).
fn flipped(token: &str, at: usize, mask: u8) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[at] ^= mask;
    String::from_utf8(bytes).expect("ASCII stays ASCII")
}

/// A JSON value of a few levels, to put where the verifier expects a header or claims.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    use serde_json::Value;
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9 :/._-]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("RS256"),
            Just("none"),
            Just("HS256"),
            Just(KID),
            Just(ISSUER),
            Just(AUDIENCE)
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("alg".to_string()),
                    Just("kid".to_string()),
                    Just("crit".to_string()),
                    Just("exp".to_string()),
                    Just("nbf".to_string()),
                    Just("iss".to_string()),
                    Just("aud".to_string()),
                    Just("sub".to_string()),
                    "[a-z]{1,4}",
                ],
                inner,
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

proptest! {
    // Bounded so that the file runs in well under a second in release.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_verify_or_panic(token in any::<String>()) {
        let _ = looks_like_jwt(&token);
        prop_assert!(check(&token).is_err());
    }

    #[test]
    fn token_shaped_strings_never_verify_or_panic(token in "[A-Za-z0-9_.=+/-]{0,400}") {
        prop_assert!(check(&token).is_err());
    }

    /// Well-formed segments with arbitrary JSON: every branch of the header and claim
    /// checks, without a valid signature.
    #[test]
    fn arbitrary_json_segments_never_verify_or_panic(
        header in json_value(),
        claims in json_value(),
        signature in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let token = format!(
            "{}.{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes()),
            b64(&signature)
        );
        prop_assert!(check(&token).is_err());
    }

    #[test]
    fn a_token_with_any_byte_changed_never_verifies(at in any::<prop::sample::Index>(), mask in 1u8..128) {
        let token = token();
        prop_assert!(check(&flipped(token, at.index(token.len()), mask)).is_err());
    }

    #[test]
    fn jwks_parsing_never_panics(document in any::<String>(), n in any::<Vec<u8>>(), e in any::<Vec<u8>>()) {
        let _ = Jwks::parse(&document);
        let shaped = serde_json::json!({"keys": [
            {"kty": "RSA", "kid": "k", "use": "sig", "alg": "RS256", "n": b64(&n), "e": b64(&e)},
            {"kty": "RSA", "kid": "k", "n": document},
        ]});
        let _ = Jwks::parse(&shaped.to_string());
    }
}

proptest! {
    // Each case signs a token (milliseconds of RSA): fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Claims are checked after the signature: a correctly signed token with arbitrary
    /// claims is refused or admitted by the claim rules, never a panic.
    #[test]
    fn signed_arbitrary_claims_never_panic(claims in json_value()) {
        let _ = check(&token_with_claims(&claims));
    }
}

/// Every position with the low bit, the case bit and all seven bits flipped: exhaustive
/// where the property above samples the masks.
#[test]
fn every_position_changed_fails_verification() {
    let token = token();
    assert_eq!(check(token), Ok("user-123".to_owned()));
    for at in 0..token.len() {
        for mask in [0x01, 0x20, 0x7f] {
            assert!(
                check(&flipped(token, at, mask)).is_err(),
                "byte {at} ^ {mask:#x} still verifies"
            );
        }
    }
}
