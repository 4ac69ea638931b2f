//! Component variables. A missing or empty variable takes its default; a present but invalid
//! one makes the WAF fail closed, because a typo must never silently weaken it.

/// Block (answer 403) or only report matching requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Block,
    Detect,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Block => "block",
            Mode::Detect => "detect",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub max_body_bytes: u64,
    pub max_header_bytes: u64,
}

pub const MODE_VARIABLE: &str = "waf_mode";
pub const MAX_BODY_VARIABLE: &str = "waf_max_body_bytes";
pub const MAX_HEADER_VARIABLE: &str = "waf_max_header_bytes";
/// Every variable the WAF reads, for the adapter to fetch.
pub const VARIABLES: [&str; 3] = [MODE_VARIABLE, MAX_BODY_VARIABLE, MAX_HEADER_VARIABLE];

pub const DEFAULT_MAX_BODY_BYTES: u64 = 1_048_576;
pub const DEFAULT_MAX_HEADER_BYTES: u64 = 16_384;
/// Upper bounds that catch a mistyped limit (the body is buffered in memory).
const LIMIT_MAX_BODY_BYTES: u64 = 64 * 1_048_576;
const LIMIT_MAX_HEADER_BYTES: u64 = 1_048_576;

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Block,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Names the bad variable; its value is deliberately not carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
}

impl Config {
    /// Builds the configuration from variable values; `None` means the variable is not set.
    pub fn from_variables(
        mut lookup: impl FnMut(&str) -> Result<Option<String>, ()>,
    ) -> Result<Self, ConfigError> {
        let mut read = |variable: &'static str| -> Result<Option<String>, ConfigError> {
            let value = lookup(variable).map_err(|()| ConfigError { variable })?;
            Ok(value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty()))
        };
        let defaults = Config::default();
        let mode = match read(MODE_VARIABLE)? {
            None => defaults.mode,
            Some(value) if value.eq_ignore_ascii_case("block") => Mode::Block,
            Some(value) if value.eq_ignore_ascii_case("detect") => Mode::Detect,
            Some(_) => {
                return Err(ConfigError {
                    variable: MODE_VARIABLE,
                });
            }
        };
        let max_body_bytes = parse_limit(
            read(MAX_BODY_VARIABLE)?,
            MAX_BODY_VARIABLE,
            defaults.max_body_bytes,
            LIMIT_MAX_BODY_BYTES,
        )?;
        let max_header_bytes = parse_limit(
            read(MAX_HEADER_VARIABLE)?,
            MAX_HEADER_VARIABLE,
            defaults.max_header_bytes,
            LIMIT_MAX_HEADER_BYTES,
        )?;
        Ok(Self {
            mode,
            max_body_bytes,
            max_header_bytes,
        })
    }
}

fn parse_limit(
    value: Option<String>,
    variable: &'static str,
    default: u64,
    upper_bound: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = value else {
        return Ok(default);
    };
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConfigError { variable });
    }
    match value.parse::<u64>() {
        Ok(limit) if (1..=upper_bound).contains(&limit) => Ok(limit),
        _ => Err(ConfigError { variable }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_variables(|name| {
            Ok(pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string()))
        })
    }

    #[test]
    fn missing_or_empty_variables_take_defaults() {
        assert_eq!(config(&[]), Ok(Config::default()));
        assert_eq!(
            config(&[("waf_mode", " "), ("waf_max_body_bytes", "")]),
            Ok(Config::default())
        );
        assert_eq!(Config::default().max_body_bytes, 1_048_576);
        assert_eq!(Config::default().max_header_bytes, 16_384);
        assert_eq!(Config::default().mode, Mode::Block);
    }

    #[test]
    fn reads_valid_values() {
        let parsed = config(&[
            ("waf_mode", "Detect"),
            ("waf_max_body_bytes", "2048"),
            ("waf_max_header_bytes", " 512 "),
        ])
        .unwrap();
        assert_eq!(parsed.mode, Mode::Detect);
        assert_eq!(parsed.max_body_bytes, 2048);
        assert_eq!(parsed.max_header_bytes, 512);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        let cases = [
            ("waf_mode", "off"),
            ("waf_max_body_bytes", "1MB"),
            ("waf_max_body_bytes", "-1"),
            ("waf_max_body_bytes", "+5"),
            ("waf_max_body_bytes", "0"),
            ("waf_max_body_bytes", "99999999999999999999999"),
            ("waf_max_body_bytes", "1000000000"),
            ("waf_max_header_bytes", "1e4"),
        ];
        for (variable, value) in cases {
            assert_eq!(
                config(&[(variable, value)]),
                Err(ConfigError {
                    variable: VARIABLES.into_iter().find(|v| *v == variable).unwrap()
                }),
                "{variable}={value}"
            );
        }
    }

    #[test]
    fn an_unreadable_variable_fails_closed() {
        let result = Config::from_variables(|name| {
            if name == MAX_HEADER_VARIABLE {
                Err(())
            } else {
                Ok(None)
            }
        });
        assert_eq!(
            result,
            Err(ConfigError {
                variable: MAX_HEADER_VARIABLE
            })
        );
    }
}
