//! Component configuration from Spin variables.
//!
//! A variable that is missing or empty takes its default (Spin manifests often declare
//! `default = ""`). An invalid value is an `internal` error that names the variable but
//! never repeats its value, since the value may be a secret.

use crate::types::CompletionError;

pub const ORIGIN: &str = "openai_origin";
pub const API_FLAVOR: &str = "openai_api_flavor";
pub const PATH_PREFIX: &str = "openai_path_prefix";
pub const API_VERSION: &str = "openai_api_version";
pub const API_KEY: &str = "openai_api_key";
pub const MODEL: &str = "openai_model";
pub const TIMEOUT_MS: &str = "openai_timeout_ms";

/// Every variable this component may read, for the adapter to fetch up front.
pub const VARIABLE_NAMES: [&str; 7] = [
    ORIGIN,
    API_FLAVOR,
    PATH_PREFIX,
    API_VERSION,
    API_KEY,
    MODEL,
    TIMEOUT_MS,
];

pub const DEFAULT_ORIGIN: &str = "https://api.openai.com";
pub const DEFAULT_PATH_PREFIX: &str = "/v1";
pub const DEFAULT_API_VERSION: &str = "2024-10-21";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
/// A longer wait than an hour is a misconfiguration, not patience.
const MAX_TIMEOUT_MS: u64 = 3_600_000;

/// What reading one variable from the host produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VariableValue {
    Missing,
    Value(String),
    /// The host failed to resolve the variable (provider error, invalid name, ...).
    Unreadable,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// POST `{origin}{path_prefix}/chat/completions`, `Authorization: Bearer`.
    OpenAi { path_prefix: String },
    /// POST `{origin}/openai/deployments/{deployment}/chat/completions?api-version=...`, `api-key`.
    Azure { api_version: String },
}

/// The API key; its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `scheme://host[:port]`, without a trailing slash.
    pub origin: String,
    pub flavor: Flavor,
    /// `None` for servers that take no credential (local model servers).
    pub api_key: Option<ApiKey>,
    pub default_model: String,
    pub timeout_ms: u64,
}

impl Config {
    /// Builds the configuration from `lookup`, which reads one variable by name.
    pub fn from_variables(
        lookup: impl Fn(&str) -> VariableValue,
    ) -> Result<Config, CompletionError> {
        let read = |name: &str| -> Result<Option<String>, CompletionError> {
            match lookup(name) {
                VariableValue::Missing => Ok(None),
                VariableValue::Value(value) => {
                    let value = value.trim();
                    Ok((!value.is_empty()).then(|| value.to_string()))
                }
                VariableValue::Unreadable => Err(CompletionError::Internal(format!(
                    "the variable {name} could not be read"
                ))),
            }
        };

        let origin = parse_origin(read(ORIGIN)?.as_deref().unwrap_or(DEFAULT_ORIGIN))?;

        let flavor = match read(API_FLAVOR)?.map(|f| f.to_ascii_lowercase()).as_deref() {
            None | Some("openai") => Flavor::OpenAi {
                path_prefix: parse_path_prefix(
                    read(PATH_PREFIX)?.as_deref().unwrap_or(DEFAULT_PATH_PREFIX),
                    &origin,
                )?,
            },
            Some("azure") => Flavor::Azure {
                api_version: parse_api_version(
                    read(API_VERSION)?.as_deref().unwrap_or(DEFAULT_API_VERSION),
                )?,
            },
            Some(_) => return Err(invalid(API_FLAVOR, "must be `openai` or `azure`")),
        };

        let api_key = match read(API_KEY)? {
            None => None,
            Some(key) if is_header_value(&key) => Some(ApiKey(key)),
            Some(_) => {
                return Err(invalid(
                    API_KEY,
                    "must contain only visible ASCII characters",
                ));
            }
        };

        let default_model = read(MODEL)?.unwrap_or_else(|| DEFAULT_MODEL.to_string());
        if let Flavor::Azure { .. } = flavor
            && !is_deployment_name(&default_model)
        {
            return Err(invalid(
                MODEL,
                "must be an Azure deployment name (letters, digits, `-`, `_`, `.`)",
            ));
        }

        let timeout_ms = match read(TIMEOUT_MS)? {
            None => DEFAULT_TIMEOUT_MS,
            Some(text) => match text.parse::<u64>() {
                Ok(ms) if (1..=MAX_TIMEOUT_MS).contains(&ms) => ms,
                _ => {
                    return Err(invalid(
                        TIMEOUT_MS,
                        "must be a whole number of milliseconds between 1 and 3600000",
                    ));
                }
            },
        };

        Ok(Config {
            origin,
            flavor,
            api_key,
            default_model,
            timeout_ms,
        })
    }
}

fn invalid(name: &str, rule: &str) -> CompletionError {
    CompletionError::Internal(format!("the variable {name} is invalid: it {rule}"))
}

fn parse_origin(text: &str) -> Result<String, CompletionError> {
    let rule = "must be scheme://host[:port] with scheme http or https";
    let uri: http::Uri = text.parse().map_err(|_| invalid(ORIGIN, rule))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    let Some(authority) = uri.authority() else {
        return Err(invalid(ORIGIN, rule));
    };
    let path_is_root = matches!(uri.path(), "" | "/");
    let has_userinfo = authority.as_str().contains('@');
    if !matches!(scheme, "http" | "https")
        || !path_is_root
        || uri.query().is_some()
        || has_userinfo
        || authority.host().is_empty()
    {
        return Err(invalid(ORIGIN, rule));
    }
    Ok(format!("{scheme}://{authority}"))
}

fn parse_path_prefix(text: &str, origin: &str) -> Result<String, CompletionError> {
    let rule = "must be a URL path such as /v1";
    let prefix = text.trim_end_matches('/');
    let well_formed = prefix.is_empty()
        || (prefix.starts_with('/')
            && prefix
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '?' && c != '#'));
    if !well_formed
        || format!("{origin}{prefix}/chat/completions")
            .parse::<http::Uri>()
            .is_err()
    {
        return Err(invalid(PATH_PREFIX, rule));
    }
    Ok(prefix.to_string())
}

fn parse_api_version(text: &str) -> Result<String, CompletionError> {
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(text.to_string())
    } else {
        Err(invalid(
            API_VERSION,
            "must be an Azure OpenAI api-version such as 2024-10-21",
        ))
    }
}

/// Azure deployment names go into the URL path, so only characters Azure allows in
/// them (and that need no escaping) are accepted.
pub fn is_deployment_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn is_header_value(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config_from(vars: &[(&str, &str)]) -> Result<Config, CompletionError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_variables(|name| match vars.get(name) {
            Some(value) => VariableValue::Value(value.clone()),
            None => VariableValue::Missing,
        })
    }

    fn internal_message(result: Result<Config, CompletionError>) -> String {
        match result {
            Err(CompletionError::Internal(message)) => message,
            other => panic!("expected an internal error, got {other:?}"),
        }
    }

    #[test]
    fn no_variables_means_openai_defaults() {
        let config = config_from(&[]).unwrap();
        assert_eq!(config.origin, "https://api.openai.com");
        assert_eq!(
            config.flavor,
            Flavor::OpenAi {
                path_prefix: "/v1".into()
            }
        );
        assert_eq!(config.api_key, None);
        assert_eq!(config.default_model, "gpt-4o-mini");
        assert_eq!(config.timeout_ms, 60_000);
    }

    #[test]
    fn empty_variables_take_defaults() {
        let config = config_from(&[
            (ORIGIN, ""),
            (API_FLAVOR, " "),
            (PATH_PREFIX, ""),
            (API_KEY, ""),
            (MODEL, ""),
            (TIMEOUT_MS, ""),
        ])
        .unwrap();
        assert_eq!(config, config_from(&[]).unwrap());
    }

    #[test]
    fn local_server_origin_keeps_port_and_drops_trailing_slash() {
        let config =
            config_from(&[(ORIGIN, "http://127.0.0.1:8080/"), (PATH_PREFIX, "/v1/")]).unwrap();
        assert_eq!(config.origin, "http://127.0.0.1:8080");
        assert_eq!(
            config.flavor,
            Flavor::OpenAi {
                path_prefix: "/v1".into()
            }
        );
    }

    #[test]
    fn root_path_prefix_is_allowed() {
        let config = config_from(&[(PATH_PREFIX, "/")]).unwrap();
        assert_eq!(
            config.flavor,
            Flavor::OpenAi {
                path_prefix: String::new()
            }
        );
    }

    #[test]
    fn azure_flavor_reads_api_version_and_deployment() {
        let config = config_from(&[
            (ORIGIN, "https://contoso.openai.azure.com"),
            (API_FLAVOR, "Azure"),
            (MODEL, "gpt-4o-prod"),
            (API_VERSION, "2025-01-01-preview"),
        ])
        .unwrap();
        assert_eq!(
            config.flavor,
            Flavor::Azure {
                api_version: "2025-01-01-preview".into()
            }
        );
        assert_eq!(config.default_model, "gpt-4o-prod");
        let default_version = config_from(&[(API_FLAVOR, "azure")]).unwrap();
        assert_eq!(
            default_version.flavor,
            Flavor::Azure {
                api_version: "2024-10-21".into()
            }
        );
    }

    #[test]
    fn origins_that_are_not_bare_origins_are_rejected() {
        for origin in [
            "api.openai.com",
            "ftp://api.openai.com",
            "https://api.openai.com/v1",
            "https://api.openai.com?x=1",
            "https://user:pw@api.openai.com",
            "not a url",
        ] {
            let message = internal_message(config_from(&[(ORIGIN, origin)]));
            assert!(message.contains("openai_origin"), "{message}");
        }
    }

    #[test]
    fn invalid_values_name_the_variable_but_not_the_value() {
        let cases = [
            (API_FLAVOR, "bedrock-secret-flavor"),
            (PATH_PREFIX, "v1-no-slash"),
            (PATH_PREFIX, "/v1?q=secret"),
            (TIMEOUT_MS, "-42"),
            (TIMEOUT_MS, "soon"),
            (TIMEOUT_MS, "3600001"),
            (API_KEY, "sk-secret\nInjected: header"),
        ];
        for (name, value) in cases {
            let message = internal_message(config_from(&[(name, value)]));
            assert!(message.contains(name), "{message}");
            assert!(!message.contains(value), "{message} leaks {value}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn azure_rejects_bad_api_version_and_deployment_names() {
        let message = internal_message(config_from(&[
            (API_FLAVOR, "azure"),
            (API_VERSION, "2024/10/21"),
        ]));
        assert!(message.contains(API_VERSION), "{message}");
        let message = internal_message(config_from(&[(API_FLAVOR, "azure"), (MODEL, "../admin")]));
        assert!(message.contains(MODEL), "{message}");
    }

    #[test]
    fn zero_timeout_is_rejected() {
        let message = internal_message(config_from(&[(TIMEOUT_MS, "0")]));
        assert!(message.contains(TIMEOUT_MS), "{message}");
    }

    #[test]
    fn unreadable_variable_is_internal_error_naming_it() {
        let result = Config::from_variables(|name| {
            if name == API_KEY {
                VariableValue::Unreadable
            } else {
                VariableValue::Missing
            }
        });
        assert!(internal_message(result).contains(API_KEY));
    }

    #[test]
    fn api_key_is_trimmed_and_hidden_from_debug() {
        let config = config_from(&[(API_KEY, " sk-test-123 \n")]).unwrap();
        assert_eq!(config.api_key.as_ref().unwrap().expose(), "sk-test-123");
        assert!(!format!("{config:?}").contains("sk-test-123"));
    }
}
