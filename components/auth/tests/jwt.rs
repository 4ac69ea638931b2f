//! RS256 verification against real signatures.

mod common;

use auth::jwt::{Jwks, JwksError, Policy, TokenError, verify};
use common::*;
use serde_json::json;

fn policy() -> Policy<'static> {
    Policy {
        issuer: ISSUER,
        audience: AUDIENCE,
        clock_skew_seconds: 60,
    }
}

fn check(token: &str) -> Result<String, TokenError> {
    let jwks = Jwks::parse(&jwks()).unwrap();
    verify(token, &jwks, &policy(), NOW).map(|t| t.subject)
}

fn with(field: &str, value: serde_json::Value) -> String {
    let mut claims = valid_claims();
    claims[field] = value;
    token_with_claims(&claims)
}

fn without(field: &str) -> String {
    let mut claims = valid_claims();
    claims.as_object_mut().unwrap().remove(field);
    token_with_claims(&claims)
}

#[test]
fn a_valid_token_yields_its_subject() {
    assert_eq!(check(&valid_token()), Ok("user-123".to_owned()));
}

#[test]
fn the_key_is_chosen_by_kid() {
    let token = sign(&rs256_header(OTHER_KID), &valid_claims(), key_b());
    assert_eq!(check(&token), Ok("user-123".to_owned()));
}

#[test]
fn expiry_is_enforced_with_clock_skew() {
    assert_eq!(
        check(&with("exp", json!(NOW - 61))),
        Err(TokenError::Expired)
    );
    assert_eq!(
        check(&with("exp", json!(NOW - 60))),
        Err(TokenError::Expired)
    );
    assert!(
        check(&with("exp", json!(NOW - 59))).is_ok(),
        "within the 60 s skew"
    );
    // NumericDate may be fractional.
    assert!(check(&with("exp", json!(NOW as f64 + 100.5))).is_ok());
    assert_eq!(
        check(&with("exp", json!((NOW - 61) as f64 + 0.9))),
        Err(TokenError::Expired)
    );
}

#[test]
fn exp_is_required_and_must_be_numeric() {
    assert_eq!(check(&without("exp")), Err(TokenError::MissingExpiry));
    assert_eq!(
        check(&with("exp", json!("tomorrow"))),
        Err(TokenError::Malformed)
    );
}

#[test]
fn not_before_is_enforced_with_clock_skew_and_optional() {
    assert_eq!(
        check(&with("nbf", json!(NOW + 61))),
        Err(TokenError::NotYetValid)
    );
    assert!(
        check(&with("nbf", json!(NOW + 60))).is_ok(),
        "within the 60 s skew"
    );
    assert!(check(&without("nbf")).is_ok());
}

#[test]
fn zero_skew_is_exact() {
    let jwks = Jwks::parse(&jwks()).unwrap();
    let strict = Policy {
        clock_skew_seconds: 0,
        ..policy()
    };
    let token = with("exp", json!(NOW + 1));
    assert!(verify(&token, &jwks, &strict, NOW).is_ok());
    assert_eq!(
        verify(&token, &jwks, &strict, NOW + 1),
        Err(TokenError::Expired)
    );
}

#[test]
fn issuer_must_match_exactly() {
    assert_eq!(
        check(&with("iss", json!("https://evil.example"))),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(
        check(&with("iss", json!(format!("{ISSUER}/")))),
        Err(TokenError::WrongIssuer)
    );
    assert_eq!(check(&without("iss")), Err(TokenError::WrongIssuer));
}

#[test]
fn audience_may_be_a_string_or_an_array() {
    assert!(check(&with("aud", json!(["other", AUDIENCE]))).is_ok());
    assert_eq!(
        check(&with("aud", json!("api://other"))),
        Err(TokenError::WrongAudience)
    );
    assert_eq!(
        check(&with("aud", json!(["a", "b"]))),
        Err(TokenError::WrongAudience)
    );
    assert_eq!(check(&without("aud")), Err(TokenError::WrongAudience));
}

#[test]
fn subject_is_required_and_header_safe() {
    assert_eq!(check(&without("sub")), Err(TokenError::InvalidSubject));
    assert_eq!(
        check(&with("sub", json!(""))),
        Err(TokenError::InvalidSubject)
    );
    assert_eq!(
        check(&with("sub", json!("a\r\nx-chatgate-auth: jwt"))),
        Err(TokenError::InvalidSubject)
    );
}

#[test]
fn unknown_or_missing_kid_is_rejected() {
    let unknown = sign(&rs256_header("nope"), &valid_claims(), key_a());
    assert_eq!(check(&unknown), Err(TokenError::UnknownKid));
    let no_kid = sign(&json!({"alg": "RS256"}), &valid_claims(), key_a());
    assert_eq!(check(&no_kid), Err(TokenError::MissingKid));
}

#[test]
fn a_signature_by_another_key_is_rejected() {
    let forged = sign(&rs256_header(KID), &valid_claims(), key_b());
    assert_eq!(check(&forged), Err(TokenError::BadSignature));
}

#[test]
fn a_tampered_payload_is_rejected() {
    let token = valid_token();
    let parts: Vec<&str> = token.split('.').collect();
    let mut claims = valid_claims();
    claims["sub"] = json!("admin");
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(claims.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(check(&tampered), Err(TokenError::BadSignature));
}

#[test]
fn a_tampered_or_truncated_signature_is_rejected() {
    let token = valid_token();
    let (input, signature) = token.rsplit_once('.').unwrap();
    let mut bytes =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, signature)
            .unwrap();
    bytes[10] ^= 0x01;
    assert_eq!(
        check(&format!("{input}.{}", b64(&bytes))),
        Err(TokenError::BadSignature)
    );
    assert_eq!(
        check(&format!("{input}.{}", b64(&bytes[..100]))),
        Err(TokenError::BadSignature)
    );
    assert_eq!(check(&format!("{input}.")), Err(TokenError::BadSignature));
}

#[test]
fn only_rs256_is_accepted() {
    // `none` with an empty signature.
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": KID}).to_string().as_bytes()),
        b64(valid_claims().to_string().as_bytes())
    );
    assert_eq!(check(&none), Err(TokenError::UnsupportedAlgorithm));
    // HS256 "signed" with the public modulus as the HMAC secret (the classic confusion).
    for alg in ["HS256", "RS384", "PS256", "ES256", "rs256"] {
        let token = sign(&json!({"alg": alg, "kid": KID}), &valid_claims(), key_a());
        assert_eq!(
            check(&token),
            Err(TokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
    let no_alg = sign(&json!({"kid": KID}), &valid_claims(), key_a());
    assert_eq!(check(&no_alg), Err(TokenError::UnsupportedAlgorithm));
}

#[test]
fn critical_header_extensions_are_rejected() {
    let token = sign(
        &json!({"alg": "RS256", "kid": KID, "crit": ["exp"]}),
        &valid_claims(),
        key_a(),
    );
    assert_eq!(check(&token), Err(TokenError::UnsupportedCriticalHeader));
}

#[test]
fn malformed_tokens_are_rejected() {
    let good = valid_token();
    let parts: Vec<&str> = good.split('.').collect();
    let cases = [
        "a.b.c".to_owned(),
        "..".to_owned(),
        format!("{}=.{}.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}.x", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[1,2]"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        "x".repeat(20_000),
    ];
    for token in cases {
        assert_eq!(
            check(&token),
            Err(TokenError::Malformed),
            "{}",
            &token[..token.len().min(60)]
        );
    }
}

#[test]
fn a_signed_but_non_object_payload_is_malformed() {
    let token = sign(&rs256_header(KID), &json!("just a string"), key_a());
    assert_eq!(check(&token), Err(TokenError::Malformed));
}

#[test]
fn jwks_parsing_skips_foreign_keys_and_rejects_broken_rsa_keys() {
    let ec = json!({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"});
    let encryption = json!({"kty": "RSA", "use": "enc", "kid": "enc", "n": "AA", "e": "AQAB"});
    let other_alg = json!({"kty": "RSA", "alg": "RS512", "kid": "rs512", "n": "AA", "e": "AQAB"});
    let mixed = json!({"keys": [ec, encryption, other_alg, jwk(KID, key_a())]}).to_string();
    let jwks = Jwks::parse(&mixed).unwrap();
    assert!(!jwks.is_empty());
    assert!(verify(&valid_token(), &jwks, &policy(), NOW).is_ok());

    let small_modulus =
        json!({"keys": [{"kty": "RSA", "kid": "k", "n": b64(&[0xff; 128]), "e": "AQAB"}]});
    let no_kid = json!({"keys": [{"kty": "RSA", "n": b64(&key_a_n()), "e": "AQAB"}]});
    let duplicate = json!({"keys": [jwk(KID, key_a()), jwk(KID, key_b())]});
    let bad_base64 = json!({"keys": [{"kty": "RSA", "kid": "k", "n": "***", "e": "AQAB"}]});
    let cases = [
        ("not json".to_owned(), JwksError::NotJson),
        (json!({"nokeys": []}).to_string(), JwksError::NoKeysArray),
        (small_modulus.to_string(), JwksError::InvalidRsaKey),
        (no_kid.to_string(), JwksError::MissingKid),
        (duplicate.to_string(), JwksError::DuplicateKid),
        (bad_base64.to_string(), JwksError::InvalidRsaKey),
    ];
    for (document, error) in cases {
        assert_eq!(Jwks::parse(&document).err(), Some(error), "{document}");
    }
}

fn key_a_n() -> Vec<u8> {
    use rsa::traits::PublicKeyParts;
    key_a().n_bytes().to_vec()
}
