//! Static API keys from `auth_api_keys` (`name=key,name=key`).
//!
//! Keys are compared as SHA-256 digests with a constant-time equality, so neither the key
//! bytes nor their length influence timing; every configured key is compared on each request.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const MAX_NAME_LEN: usize = 64;

pub struct ApiKeys {
    entries: Vec<(String, [u8; 32])>,
}

/// Why `auth_api_keys` was rejected (kept free of key material).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeysError {
    MissingSeparator,
    InvalidName,
    EmptyKey,
    DuplicateName,
    DuplicateKey,
}

impl ApiKeys {
    pub fn parse(spec: &str) -> Result<Self, ApiKeysError> {
        let mut entries: Vec<(String, [u8; 32])> = Vec::new();
        for pair in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, key) = pair.split_once('=').ok_or(ApiKeysError::MissingSeparator)?;
            let (name, key) = (name.trim(), key.trim());
            if !is_valid_name(name) {
                return Err(ApiKeysError::InvalidName);
            }
            if key.is_empty() {
                return Err(ApiKeysError::EmptyKey);
            }
            let digest = digest(key);
            if entries.iter().any(|(existing, _)| existing == name) {
                return Err(ApiKeysError::DuplicateName);
            }
            if entries.iter().any(|(_, existing)| existing == &digest) {
                return Err(ApiKeysError::DuplicateKey);
            }
            entries.push((name.to_owned(), digest));
        }
        Ok(Self { entries })
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The name of the key equal to `presented`, if any.
    pub fn identify(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut matched = None;
        for (name, stored) in &self.entries {
            // No early exit: the work done is the same whichever key (if any) matches.
            if bool::from(stored.ct_eq(&presented)) && matched.is_none() {
                matched = Some(name.as_str());
            }
        }
        matched
    }
}

/// Names end up in `x-chatgate-subject`, so they are restricted to a header- and log-safe alphabet.
fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifies_configured_keys_by_name() {
        let keys = ApiKeys::parse("dev=chatgate-dev-key, ci = ci-key==,").unwrap();
        assert_eq!(keys.identify("chatgate-dev-key"), Some("dev"));
        assert_eq!(keys.identify("ci-key=="), Some("ci"));
    }

    #[test]
    fn rejects_wrong_prefix_suffix_and_other_lengths() {
        let keys = ApiKeys::parse("dev=chatgate-dev-key").unwrap();
        for wrong in [
            "chatgate-dev-ke",
            "chatgate-dev-key2",
            "CHATGATE-DEV-KEY",
            "",
            "x",
            "dev",
        ] {
            assert_eq!(keys.identify(wrong), None, "{wrong:?}");
        }
    }

    #[test]
    fn empty_configuration_has_no_keys() {
        let keys = ApiKeys::parse(" , ").unwrap();
        assert!(keys.is_empty());
        assert_eq!(keys.identify(""), None);
    }

    #[test]
    fn malformed_configuration_is_rejected() {
        let cases = [
            ("justakey", ApiKeysError::MissingSeparator),
            ("=key", ApiKeysError::InvalidName),
            ("bad name=key", ApiKeysError::InvalidName),
            ("dev=", ApiKeysError::EmptyKey),
            ("dev=a,dev=b", ApiKeysError::DuplicateName),
            ("one=k,two=k", ApiKeysError::DuplicateKey),
        ];
        for (spec, error) in cases {
            assert_eq!(ApiKeys::parse(spec).err(), Some(error), "{spec}");
        }
    }
}
