//! Mints real RS256 tokens with the checked-in, test-only RSA keys.
#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs8::DecodePrivateKey;
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, PrivateKey};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

pub const ISSUER: &str = "https://login.example.test/tenant/v2.0";
pub const AUDIENCE: &str = "api://chatgate";
pub const KID: &str = "test-key-a";
pub const OTHER_KID: &str = "test-key-b";
/// A fixed "now" so no test depends on the wall clock.
pub const NOW: i64 = 1_700_000_000;

pub fn key_a() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PrivateKey::from_pkcs8_pem(include_str!("../keys/test-only-rsa-2048-a.pem")).unwrap()
    })
}

pub fn key_b() -> &'static PrivateKey {
    static KEY: OnceLock<PrivateKey> = OnceLock::new();
    KEY.get_or_init(|| {
        PrivateKey::from_pkcs8_pem(include_str!("../keys/test-only-rsa-2048-b.pem")).unwrap()
    })
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn jwk(kid: &str, key: &PrivateKey) -> Value {
    json!({
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "alg": "RS256",
        "n": b64(&key.n_bytes()),
        "e": b64(&key.e_bytes()),
    })
}

/// A JWKS holding key A under [`KID`] and key B under [`OTHER_KID`].
pub fn jwks() -> String {
    json!({"keys": [jwk(KID, key_a()), jwk(OTHER_KID, key_b())]}).to_string()
}

pub fn valid_claims() -> Value {
    json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": "user-123",
        "iat": NOW - 10,
        "nbf": NOW - 10,
        "exp": NOW + 3_600,
    })
}

pub fn rs256_header(kid: &str) -> Value {
    json!({"alg": "RS256", "typ": "JWT", "kid": kid})
}

/// Signs `header.claims` with `key` (PKCS#1 v1.5 over SHA-256), whatever the header says.
pub fn sign(header: &Value, claims: &Value, key: &PrivateKey) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let hashed = Sha256::digest(signing_input.as_bytes());
    let signature = key.sign(Pkcs1v15Sign::new::<Sha256>(), &hashed).unwrap();
    format!("{signing_input}.{}", b64(&signature))
}

pub fn token_with_claims(claims: &Value) -> String {
    sign(&rs256_header(KID), claims, key_a())
}

pub fn valid_token() -> String {
    token_with_claims(&valid_claims())
}
