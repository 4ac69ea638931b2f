//! An OIDC issuer's signing side, for tests: an RSA key, its JWKS document, and RS256 tokens.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::PrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::traits::PublicKeyParts;
use sha2::Sha256;

pub struct Issuer {
    pub issuer: String,
    pub kid: String,
    key: SigningKey<Sha256>,
    jwks: String,
}

impl Issuer {
    /// A fresh 2048-bit key published under `kid`.
    pub fn new(issuer: &str, kid: &str) -> Issuer {
        let private = PrivateKey::new(&mut getrandom::SysRng, 2048).expect("RSA key");
        let jwks = serde_json::json!({
            "keys": [{
                "kty": "RSA",
                "kid": kid,
                "use": "sig",
                "alg": "RS256",
                "n": URL_SAFE_NO_PAD.encode(private.n_bytes()),
                "e": URL_SAFE_NO_PAD.encode(private.e_bytes()),
            }]
        })
        .to_string();
        Issuer {
            issuer: issuer.to_string(),
            kid: kid.to_string(),
            key: SigningKey::<Sha256>::new(private),
            jwks,
        }
    }

    /// The JWKS document, as the `auth_jwks` variable takes it.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// Signs `claims` with RS256 under this issuer's `kid`.
    pub fn token(&self, claims: &serde_json::Value) -> String {
        let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": self.kid});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = self.key.sign(signing_input.as_bytes()).to_bytes();
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }
}

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}
