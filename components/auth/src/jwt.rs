//! RS256 JSON Web Tokens (RFC 7519) verified against a JWKS (RFC 7517).
//!
//! Only `RS256` is accepted: the algorithm is fixed by configuration, never chosen by the
//! token, which rules out `none`, HMAC-with-the-public-key confusion and weak algorithms.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::{BoxedUint, Pkcs1v15Sign, PublicKey};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// RFC 7518 §3.3: RS256 keys must be at least 2048 bits.
const MIN_KEY_BITS: usize = 2048;
const MAX_KEY_BITS: usize = 8192;
/// Longest `sub` forwarded as `x-chatgate-subject`.
const MAX_SUBJECT_LEN: usize = 256;
/// Larger tokens are rejected before any decoding work.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Verification keys by `kid`.
pub struct Jwks {
    keys: Vec<(String, PublicKey)>,
}

/// Why `auth_jwks` was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwksError {
    NotJson,
    NoKeysArray,
    MissingKid,
    DuplicateKid,
    InvalidRsaKey,
}

impl Jwks {
    /// Parses `{"keys":[...]}`. Keys that are not RSA signing keys for RS256 are skipped (a
    /// shared JWKS may hold EC or encryption keys); a malformed RSA signing key is an error.
    pub fn parse(document: &str) -> Result<Self, JwksError> {
        let document: Value = serde_json::from_str(document).map_err(|_| JwksError::NotJson)?;
        let entries = document
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysArray)?;
        let mut keys: Vec<(String, PublicKey)> = Vec::new();
        for entry in entries {
            let field = |name: &str| entry.get(name).and_then(Value::as_str);
            let usable = field("kty") == Some("RSA")
                && field("use").is_none_or(|u| u == "sig")
                && field("alg").is_none_or(|a| a == "RS256");
            if !usable {
                continue;
            }
            let kid = field("kid").ok_or(JwksError::MissingKid)?;
            if keys.iter().any(|(existing, _)| existing == kid) {
                return Err(JwksError::DuplicateKid);
            }
            let component = |name: &str| {
                field(name)
                    .and_then(|b64| URL_SAFE_NO_PAD.decode(b64).ok())
                    .filter(|bytes| !bytes.is_empty())
                    .map(|bytes| BoxedUint::from_be_slice_vartime(&bytes))
                    .ok_or(JwksError::InvalidRsaKey)
            };
            let key = PublicKey::new_with_size_limits(
                component("n")?,
                component("e")?,
                MIN_KEY_BITS..=MAX_KEY_BITS,
            )
            .map_err(|_| JwksError::InvalidRsaKey)?;
            keys.push((kid.to_owned(), key));
        }
        Ok(Self { keys })
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn key(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.iter().find(|(k, _)| k == kid).map(|(_, key)| key)
    }
}

/// What a token must satisfy besides a valid signature.
pub struct Policy<'a> {
    pub issuer: &'a str,
    pub audience: &'a str,
    pub clock_skew_seconds: i64,
}

/// Why a token was refused. Descriptions are fixed text: safe for `WWW-Authenticate`
/// (no quotes or backslashes) and free of token content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    Malformed,
    UnsupportedAlgorithm,
    UnsupportedCriticalHeader,
    MissingKid,
    UnknownKid,
    BadSignature,
    Expired,
    MissingExpiry,
    NotYetValid,
    WrongIssuer,
    WrongAudience,
    InvalidSubject,
}

impl TokenError {
    pub fn description(self) -> &'static str {
        match self {
            TokenError::Malformed => "The token is malformed",
            TokenError::UnsupportedAlgorithm => "Only RS256 tokens are accepted",
            TokenError::UnsupportedCriticalHeader => {
                "The token has unsupported critical header parameters"
            }
            TokenError::MissingKid => "The token header has no kid",
            TokenError::UnknownKid => "The token was signed with an unknown key",
            TokenError::BadSignature => "The token signature is invalid",
            TokenError::Expired => "The token has expired",
            TokenError::MissingExpiry => "The token has no exp claim",
            TokenError::NotYetValid => "The token is not valid yet",
            TokenError::WrongIssuer => "The token issuer is not accepted",
            TokenError::WrongAudience => "The token audience is not accepted",
            TokenError::InvalidSubject => "The token has no usable sub claim",
        }
    }
}

/// The verified caller, and the time window (its `exp` and `nbf` claims) in which the
/// token is valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    pub subject: String,
    pub expires: i64,
    pub not_before: Option<i64>,
}

/// Whether a bearer credential has the compact JWS shape (three dot-separated parts).
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// Verifies signature first, then claims: nothing in an unauthenticated payload is trusted.
pub fn verify(
    token: &str,
    jwks: &Jwks,
    policy: &Policy,
    now_unix: i64,
) -> Result<VerifiedToken, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };

    let header = decode_json_segment(header_b64)?;
    if header.get("alg").and_then(Value::as_str) != Some("RS256") {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    // RFC 7515 §4.1.11: a recipient must reject critical extensions it does not understand.
    if header.get("crit").is_some() {
        return Err(TokenError::UnsupportedCriticalHeader);
    }
    let kid = header
        .get("kid")
        .and_then(Value::as_str)
        .ok_or(TokenError::MissingKid)?;
    let key = jwks.key(kid).ok_or(TokenError::UnknownKid)?;

    let signature = URL_SAFE_NO_PAD
        .decode(signature_b64)
        .map_err(|_| TokenError::Malformed)?;
    let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
    let hashed = Sha256::digest(signing_input.as_bytes());
    key.verify(Pkcs1v15Sign::new::<Sha256>(), &hashed, &signature)
        .map_err(|_| TokenError::BadSignature)?;

    let claims = decode_json_segment(payload_b64)?;
    check_claims(&claims, policy, now_unix)
}

fn check_claims(claims: &Value, policy: &Policy, now: i64) -> Result<VerifiedToken, TokenError> {
    let skew = policy.clock_skew_seconds;
    let expires = numeric_date(claims.get("exp")).ok_or(TokenError::MissingExpiry)??;
    if now >= expires.saturating_add(skew) {
        return Err(TokenError::Expired);
    }
    let not_before = numeric_date(claims.get("nbf")).transpose()?;
    if let Some(not_before) = not_before
        && now.saturating_add(skew) < not_before
    {
        return Err(TokenError::NotYetValid);
    }
    if claims.get("iss").and_then(Value::as_str) != Some(policy.issuer) {
        return Err(TokenError::WrongIssuer);
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(aud)) => aud == policy.audience,
        Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(policy.audience)),
        _ => false,
    };
    if !audience_ok {
        return Err(TokenError::WrongAudience);
    }
    let subject = claims
        .get("sub")
        .and_then(Value::as_str)
        .filter(|sub| is_forwardable_subject(sub))
        .ok_or(TokenError::InvalidSubject)?;
    Ok(VerifiedToken {
        subject: subject.to_owned(),
        expires,
        not_before,
    })
}

/// `None` if absent; `Some(Err)` if present but not a number (RFC 7519 NumericDate,
/// which may be fractional).
fn numeric_date(value: Option<&Value>) -> Option<Result<i64, TokenError>> {
    let value = value?;
    Some(
        value
            .as_i64()
            .or_else(|| {
                value
                    .as_f64()
                    .filter(|f| f.is_finite())
                    .map(|f| f.floor() as i64)
            })
            .ok_or(TokenError::Malformed),
    )
}

/// The subject becomes a header value: printable ASCII only, bounded length.
fn is_forwardable_subject(subject: &str) -> bool {
    !subject.is_empty()
        && subject.len() <= MAX_SUBJECT_LEN
        && subject.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn decode_json_segment(segment: &str) -> Result<Value, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(value @ Value::Object(_)) => Ok(value),
        _ => Err(TokenError::Malformed),
    }
}
