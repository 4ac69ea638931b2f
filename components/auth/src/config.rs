//! Component variables. Missing or empty means default; a present but invalid value fails
//! closed (500) naming the variable, never its value (several of them are secrets).

use crate::api_keys::ApiKeys;
use std::sync::OnceLock;

pub const MODE: &str = "auth_mode";
pub const API_KEYS: &str = "auth_api_keys";
pub const JWKS: &str = "auth_jwks";
pub const ISSUER: &str = "auth_issuer";
pub const AUDIENCE: &str = "auth_audience";
pub const CLOCK_SKEW: &str = "auth_clock_skew_seconds";
/// Every variable auth reads, for the adapter to fetch.
pub const VARIABLES: [&str; 6] = [MODE, API_KEYS, JWKS, ISSUER, AUDIENCE, CLOCK_SKEW];

pub const DEFAULT_CLOCK_SKEW_SECONDS: i64 = 60;
/// More than an hour of tolerated skew would make `exp` meaningless; treat it as a typo.
const MAX_CLOCK_SKEW_SECONDS: i64 = 3_600;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Required,
    /// Development only: every request passes as `anonymous`.
    Disabled,
}

/// Raw variable values as read for one request; parsed on demand so a request only pays for
/// (and can only fail on) the configuration its credential needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    values: Vec<(&'static str, Result<Option<String>, ()>)>,
    api_keys: ParsedApiKeys,
}

/// `auth_api_keys` parsed at most once per `Settings`: parsing hashes every configured key
/// (two SHA-256 blocks a key), and the adapter keeps one `Settings` for the instance's
/// requests. A cache, not configuration: clones start empty and every two are equal.
#[derive(Default)]
struct ParsedApiKeys(OnceLock<Result<ApiKeys, ConfigError>>);

impl Clone for ParsedApiKeys {
    fn clone(&self) -> Self {
        Self::default()
    }
}

impl PartialEq for ParsedApiKeys {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for ParsedApiKeys {}

impl std::fmt::Debug for ParsedApiKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ParsedApiKeys")
    }
}

impl Settings {
    /// `lookup` returns `Ok(None)` for an undefined variable and `Err(())` if it cannot be read.
    pub fn read(mut lookup: impl FnMut(&str) -> Result<Option<String>, ()>) -> Self {
        Self {
            values: VARIABLES.iter().map(|&name| (name, lookup(name))).collect(),
            api_keys: ParsedApiKeys::default(),
        }
    }

    /// Whether every variable could be read (each has a value or is undeclared): only such
    /// settings may be kept for the instance's later requests, so that a failed read is
    /// retried by the next request rather than remembered.
    pub fn fully_read(&self) -> bool {
        self.values.iter().all(|(_, value)| value.is_ok())
    }

    /// The trimmed value, `None` when missing or empty.
    pub fn get(&self, variable: &'static str) -> Result<Option<&str>, ConfigError> {
        match self.values.iter().find(|(name, _)| *name == variable) {
            None | Some((_, Ok(None))) => Ok(None),
            Some((_, Ok(Some(value)))) => Ok(Some(value.trim()).filter(|v| !v.is_empty())),
            Some((_, Err(()))) => Err(ConfigError { variable }),
        }
    }

    /// The configured API keys (none when unset).
    pub fn api_keys(&self) -> Result<&ApiKeys, ConfigError> {
        self.api_keys
            .0
            .get_or_init(|| {
                ApiKeys::parse(self.get(API_KEYS)?.unwrap_or_default())
                    .map_err(|_| ConfigError { variable: API_KEYS })
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn mode(&self) -> Result<Mode, ConfigError> {
        match self.get(MODE)? {
            None => Ok(Mode::Required),
            Some(v) if v.eq_ignore_ascii_case("required") => Ok(Mode::Required),
            Some(v) if v.eq_ignore_ascii_case("disabled") => Ok(Mode::Disabled),
            Some(_) => Err(ConfigError { variable: MODE }),
        }
    }

    pub fn clock_skew_seconds(&self) -> Result<i64, ConfigError> {
        let Some(value) = self.get(CLOCK_SKEW)? else {
            return Ok(DEFAULT_CLOCK_SKEW_SECONDS);
        };
        value
            .bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| value.parse::<i64>().ok())
            .flatten()
            .filter(|skew| *skew <= MAX_CLOCK_SKEW_SECONDS)
            .ok_or(ConfigError {
                variable: CLOCK_SKEW,
            })
    }

    /// A required JWT setting: missing is as bad as invalid once a JWKS is configured.
    pub fn required(&self, variable: &'static str) -> Result<&str, ConfigError> {
        self.get(variable)?.ok_or(ConfigError { variable })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Settings {
        Settings::read(|name| {
            Ok(pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string()))
        })
    }

    #[test]
    fn only_settings_read_in_full_are_kept() {
        assert!(settings(&[]).fully_read());
        assert!(settings(&[("auth_mode", "off")]).fully_read());
        let unreadable = Settings::read(|name| if name == JWKS { Err(()) } else { Ok(None) });
        assert!(!unreadable.fully_read());
    }

    #[test]
    fn defaults() {
        let s = settings(&[]);
        assert_eq!(s.mode(), Ok(Mode::Required));
        assert_eq!(s.clock_skew_seconds(), Ok(60));
        assert_eq!(s.get(API_KEYS), Ok(None));
        assert_eq!(settings(&[("auth_mode", "  ")]).mode(), Ok(Mode::Required));
    }

    #[test]
    fn parses_mode_and_skew() {
        assert_eq!(
            settings(&[("auth_mode", "Disabled")]).mode(),
            Ok(Mode::Disabled)
        );
        assert_eq!(
            settings(&[("auth_clock_skew_seconds", "0")]).clock_skew_seconds(),
            Ok(0)
        );
        assert_eq!(
            settings(&[("auth_clock_skew_seconds", " 30 ")]).clock_skew_seconds(),
            Ok(30)
        );
    }

    #[test]
    fn invalid_values_name_the_variable() {
        assert_eq!(
            settings(&[("auth_mode", "off")]).mode(),
            Err(ConfigError { variable: MODE })
        );
        for bad in ["-5", "1m", "3601", "99999999999999999999"] {
            assert_eq!(
                settings(&[("auth_clock_skew_seconds", bad)]).clock_skew_seconds(),
                Err(ConfigError {
                    variable: CLOCK_SKEW
                }),
                "{bad}"
            );
        }
        assert_eq!(
            settings(&[]).required(ISSUER),
            Err(ConfigError { variable: ISSUER })
        );
    }

    #[test]
    fn unreadable_variables_fail_closed() {
        let s = Settings::read(|name| if name == MODE { Err(()) } else { Ok(None) });
        assert_eq!(s.mode(), Err(ConfigError { variable: MODE }));
    }
}
