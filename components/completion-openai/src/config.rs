//! Component configuration from Spin variables.
//!
//! A variable that is missing or empty takes its default (Spin manifests often declare
//! `default = ""`). An invalid value is an `internal` error that names the variable but
//! never repeats its value, since the value may be a secret.

use crate::breaker::BreakerPolicy;
use crate::retry::RetryPolicy;
use chatgate_guest::entra_identity::{EntraIdentity, IdentityError, IdentityVariables};
use chatgate_rag::completion::CompletionError;

pub const ORIGIN: &str = "openai_origin";
pub const API_FLAVOR: &str = "openai_api_flavor";
pub const PATH_PREFIX: &str = "openai_path_prefix";
pub const API_VERSION: &str = "openai_api_version";
pub const API_KEY: &str = "openai_api_key";
pub const MODEL: &str = "openai_model";
pub const TIMEOUT_MS: &str = "openai_timeout_ms";
pub const CONNECT_TIMEOUT_MS: &str = "openai_connect_timeout_ms";
pub const FIRST_BYTE_TIMEOUT_MS: &str = "openai_first_byte_timeout_ms";
pub const IDLE_TIMEOUT_MS: &str = "openai_idle_timeout_ms";
pub const MAX_RETRIES: &str = "openai_max_retries";
pub const RETRY_BASE_MS: &str = "openai_retry_base_ms";
pub const FAILOVER_ORIGIN: &str = "openai_failover_origin";
pub const FAILOVER_API_KEY: &str = "openai_failover_api_key";
pub const BREAKER_FAILURES: &str = "openai_breaker_failures";
pub const BREAKER_COOLDOWN_MS: &str = "openai_breaker_cooldown_ms";
pub const AUTH: &str = "openai_auth";
pub const TOKEN_ORIGIN: &str = "openai_token_origin";
pub const CLIENT_ID: &str = "openai_client_id";
pub const TENANT_ID: &str = "openai_tenant_id";
pub const AUTHORITY_HOST: &str = "openai_authority_host";
pub const TOKEN_FILE: &str = "openai_token_file";
/// The variables of `managed-identity` and `workload-identity`.
pub const IDENTITY_VARIABLES: IdentityVariables = IdentityVariables {
    token_origin: TOKEN_ORIGIN,
    client_id: CLIENT_ID,
    tenant_id: TENANT_ID,
    authority_host: AUTHORITY_HOST,
    token_file: TOKEN_FILE,
};

/// Every variable this component may read, for the adapter to fetch up front.
pub const VARIABLE_NAMES: [&str; 22] = [
    ORIGIN,
    API_FLAVOR,
    PATH_PREFIX,
    API_VERSION,
    API_KEY,
    MODEL,
    TIMEOUT_MS,
    CONNECT_TIMEOUT_MS,
    FIRST_BYTE_TIMEOUT_MS,
    IDLE_TIMEOUT_MS,
    MAX_RETRIES,
    RETRY_BASE_MS,
    FAILOVER_ORIGIN,
    FAILOVER_API_KEY,
    BREAKER_FAILURES,
    BREAKER_COOLDOWN_MS,
    AUTH,
    TOKEN_ORIGIN,
    CLIENT_ID,
    TENANT_ID,
    AUTHORITY_HOST,
    TOKEN_FILE,
];

pub const DEFAULT_ORIGIN: &str = "https://api.openai.com";
pub const DEFAULT_PATH_PREFIX: &str = "/v1";
pub const DEFAULT_API_VERSION: &str = "2024-10-21";
pub const DEFAULT_MODEL: &str = "gpt-4o-mini";
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
pub const DEFAULT_FIRST_BYTE_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 30_000;
pub const DEFAULT_MAX_RETRIES: u32 = 2;
pub const DEFAULT_RETRY_BASE_MS: u64 = 500;
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;
pub const DEFAULT_BREAKER_COOLDOWN_MS: u64 = 30_000;
/// A longer wait than an hour is a misconfiguration, not patience.
const MAX_TIMEOUT_MS: u64 = 3_600_000;
const MAX_RETRIES_LIMIT: u32 = 10;
const MAX_BREAKER_FAILURES: u32 = 1_000;

pub use chatgate_guest::{ApiKey, VariableValue};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// POST `{origin}{path_prefix}/chat/completions`, `Authorization: Bearer`.
    OpenAi { path_prefix: String },
    /// POST `{origin}/openai/deployments/{deployment}/chat/completions?api-version=...`, `api-key`.
    Azure { api_version: String },
}

/// One base URL of the API and the key that goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `scheme://host[:port]`, without a trailing slash.
    pub origin: String,
    /// `None` for servers that take no credential (local model servers) and with
    /// managed identity.
    pub api_key: Option<ApiKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The endpoint's API key, if any.
    ApiKey,
    /// An Entra ID token, from a managed-identity endpoint or by workload identity
    /// federation (as on AKS).
    Entra(EntraIdentity),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Per attempt: establishing the connection.
    pub connect_ms: u64,
    /// Per attempt: from the connection to the response headers.
    pub first_byte_ms: u64,
    /// Between two pieces of a response body (stream chunks).
    pub idle_ms: u64,
    /// The whole call; for a stream, until its answer has begun.
    pub deadline_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub flavor: Flavor,
    /// Tried in this order: the primary origin, then the failover origin.
    pub endpoints: Vec<Endpoint>,
    pub auth: Auth,
    /// Models (OpenAI) or deployments (Azure) tried in this order on each endpoint
    /// when the caller names none; never empty.
    pub models: Vec<String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
    pub breaker: BreakerPolicy,
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
        let number = |name: &str,
                      default: u64,
                      range: std::ops::RangeInclusive<u64>,
                      rule: &str| {
            match read(name)? {
                None => Ok(default),
                Some(text) => match text.parse::<u64>() {
                    Ok(n) if range.contains(&n) => Ok(n),
                    _ => Err(invalid(name, rule)),
                },
            }
        };
        let milliseconds = |name: &str, default: u64| {
            number(
                name,
                default,
                1..=MAX_TIMEOUT_MS,
                "must be a whole number of milliseconds between 1 and 3600000",
            )
        };

        let origin = parse_origin(ORIGIN, read(ORIGIN)?.as_deref().unwrap_or(DEFAULT_ORIGIN))?;
        let failover_origin = read(FAILOVER_ORIGIN)?
            .map(|text| parse_origin(FAILOVER_ORIGIN, &text))
            .transpose()?;

        let flavor = match read(API_FLAVOR)?.map(|f| f.to_ascii_lowercase()).as_deref() {
            None | Some("openai") => {
                let path_prefix = read(PATH_PREFIX)?;
                let path_prefix = path_prefix.as_deref().unwrap_or(DEFAULT_PATH_PREFIX);
                let path_prefix = parse_path_prefix(path_prefix, &origin)?;
                if let Some(failover) = &failover_origin {
                    parse_path_prefix(&path_prefix, failover)?;
                }
                Flavor::OpenAi { path_prefix }
            }
            Some("azure") => Flavor::Azure {
                api_version: parse_api_version(
                    read(API_VERSION)?.as_deref().unwrap_or(DEFAULT_API_VERSION),
                )?,
            },
            Some(_) => return Err(invalid(API_FLAVOR, "must be `openai` or `azure`")),
        };

        let auth = match read(AUTH)?.map(|a| a.to_ascii_lowercase()).as_deref() {
            None | Some("api-key") => Auth::ApiKey,
            Some(mode) => {
                let read_set = |name: &'static str| {
                    read(name).map_err(|_| IdentityError(format!("{name} could not be read")))
                };
                match EntraIdentity::from_variables(mode, &IDENTITY_VARIABLES, read_set) {
                    Ok(Some(identity)) => Auth::Entra(identity),
                    Ok(None) => {
                        return Err(invalid(
                            AUTH,
                            "must be `api-key`, `managed-identity` or `workload-identity`",
                        ));
                    }
                    Err(IdentityError(message)) => {
                        return Err(CompletionError::Internal(format!("the variable {message}")));
                    }
                }
            }
        };

        let api_key = |name: &str| -> Result<Option<ApiKey>, CompletionError> {
            match read(name)? {
                None => Ok(None),
                Some(key) if is_header_value(&key) => Ok(Some(ApiKey::new(key))),
                Some(_) => Err(invalid(name, "must contain only visible ASCII characters")),
            }
        };
        let primary_key = api_key(API_KEY)?;
        let failover_key = api_key(FAILOVER_API_KEY)?.or_else(|| primary_key.clone());
        let uses_keys = auth == Auth::ApiKey;
        let mut endpoints = vec![Endpoint {
            origin,
            api_key: primary_key.filter(|_| uses_keys),
        }];
        endpoints.extend(failover_origin.map(|origin| Endpoint {
            origin,
            api_key: failover_key.filter(|_| uses_keys),
        }));

        let models = parse_models(read(MODEL)?.as_deref().unwrap_or(DEFAULT_MODEL), &flavor)?;

        let timeouts = Timeouts {
            connect_ms: milliseconds(CONNECT_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS)?,
            first_byte_ms: milliseconds(FIRST_BYTE_TIMEOUT_MS, DEFAULT_FIRST_BYTE_TIMEOUT_MS)?,
            idle_ms: milliseconds(IDLE_TIMEOUT_MS, DEFAULT_IDLE_TIMEOUT_MS)?,
            deadline_ms: milliseconds(TIMEOUT_MS, DEFAULT_TIMEOUT_MS)?,
        };
        let retry = RetryPolicy {
            max_retries: number(
                MAX_RETRIES,
                DEFAULT_MAX_RETRIES.into(),
                0..=MAX_RETRIES_LIMIT.into(),
                "must be a whole number between 0 and 10",
            )? as u32,
            base_delay_ms: milliseconds(RETRY_BASE_MS, DEFAULT_RETRY_BASE_MS)?,
            deadline_ms: timeouts.deadline_ms,
        };
        let breaker = BreakerPolicy {
            failure_threshold: number(
                BREAKER_FAILURES,
                DEFAULT_BREAKER_FAILURES.into(),
                0..=MAX_BREAKER_FAILURES.into(),
                "must be a whole number between 0 (no breaker) and 1000",
            )? as u32,
            cooldown_ms: milliseconds(BREAKER_COOLDOWN_MS, DEFAULT_BREAKER_COOLDOWN_MS)?,
        };

        Ok(Config {
            flavor,
            endpoints,
            auth,
            models,
            timeouts,
            retry,
            breaker,
        })
    }

    /// The targets of one call, in the order they are tried: every model on the
    /// primary endpoint, then every model on the failover endpoint. A model the caller
    /// asked for replaces the configured list.
    pub fn targets(&self, requested_model: Option<&str>) -> Vec<Target> {
        let models: Vec<&str> = match requested_model {
            Some(model) => vec![model],
            None => self.models.iter().map(String::as_str).collect(),
        };
        self.endpoints
            .iter()
            .flat_map(|endpoint| {
                models.iter().map(move |model| Target {
                    endpoint: endpoint.clone(),
                    model: model.to_string(),
                })
            })
            .collect()
    }
}

/// One place a request can be sent: an endpoint and a model/deployment on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub endpoint: Endpoint,
    pub model: String,
}

fn invalid(name: &str, rule: &str) -> CompletionError {
    CompletionError::Internal(format!("the variable {name} is invalid: it {rule}"))
}

fn parse_origin(name: &str, text: &str) -> Result<String, CompletionError> {
    let rule = "must be scheme://host[:port] with scheme http or https";
    let uri: http::Uri = text.parse().map_err(|_| invalid(name, rule))?;
    let scheme = uri.scheme_str().unwrap_or_default();
    let Some(authority) = uri.authority() else {
        return Err(invalid(name, rule));
    };
    let path_is_root = matches!(uri.path(), "" | "/");
    let has_userinfo = authority.as_str().contains('@');
    if !matches!(scheme, "http" | "https")
        || !path_is_root
        || uri.query().is_some()
        || has_userinfo
        || authority.host().is_empty()
    {
        return Err(invalid(name, rule));
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

/// A comma-separated, ordered list; duplicates are tried once.
fn parse_models(text: &str, flavor: &Flavor) -> Result<Vec<String>, CompletionError> {
    let mut models: Vec<String> = Vec::new();
    for model in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
        if let Flavor::Azure { .. } = flavor
            && !is_deployment_name(model)
        {
            return Err(invalid(
                MODEL,
                "must be Azure deployment names (letters, digits, `-`, `_`, `.`), comma-separated",
            ));
        }
        if !models.iter().any(|m| m == model) {
            models.push(model.to_string());
        }
    }
    if models.is_empty() {
        return Err(invalid(MODEL, "must name at least one model"));
    }
    Ok(models)
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
        assert_eq!(
            config.endpoints,
            [Endpoint {
                origin: "https://api.openai.com".into(),
                api_key: None
            }]
        );
        assert_eq!(
            config.flavor,
            Flavor::OpenAi {
                path_prefix: "/v1".into()
            }
        );
        assert_eq!(config.auth, Auth::ApiKey);
        assert_eq!(config.models, ["gpt-4o-mini"]);
        assert_eq!(
            config.timeouts,
            Timeouts {
                connect_ms: 10_000,
                first_byte_ms: 30_000,
                idle_ms: 30_000,
                deadline_ms: 60_000
            }
        );
        assert_eq!(
            config.retry,
            RetryPolicy {
                max_retries: 2,
                base_delay_ms: 500,
                deadline_ms: 60_000
            }
        );
        assert_eq!(
            config.breaker,
            BreakerPolicy {
                failure_threshold: 5,
                cooldown_ms: 30_000
            }
        );
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
            (CONNECT_TIMEOUT_MS, ""),
            (FIRST_BYTE_TIMEOUT_MS, " "),
            (IDLE_TIMEOUT_MS, ""),
            (MAX_RETRIES, ""),
            (RETRY_BASE_MS, ""),
            (FAILOVER_ORIGIN, ""),
            (FAILOVER_API_KEY, ""),
            (BREAKER_FAILURES, ""),
            (BREAKER_COOLDOWN_MS, ""),
            (AUTH, ""),
            (TOKEN_ORIGIN, ""),
            (CLIENT_ID, ""),
        ])
        .unwrap();
        assert_eq!(config, config_from(&[]).unwrap());
    }

    #[test]
    fn local_server_origin_keeps_port_and_drops_trailing_slash() {
        let config =
            config_from(&[(ORIGIN, "http://127.0.0.1:8080/"), (PATH_PREFIX, "/v1/")]).unwrap();
        assert_eq!(config.endpoints[0].origin, "http://127.0.0.1:8080");
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
        assert_eq!(config.models, ["gpt-4o-prod"]);
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
            (CONNECT_TIMEOUT_MS, "-7"),
            (FIRST_BYTE_TIMEOUT_MS, "1.5"),
            (IDLE_TIMEOUT_MS, "secret"),
            (MAX_RETRIES, "11"),
            (RETRY_BASE_MS, "-1"),
            (BREAKER_FAILURES, "1001"),
            (BREAKER_COOLDOWN_MS, "forever-secret"),
            (FAILOVER_ORIGIN, "secret.example.com"),
            (FAILOVER_API_KEY, "sk-secret\u{7f}"),
            (AUTH, "password-secret"),
            (MODEL, " , "),
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
        assert_eq!(
            config.endpoints[0].api_key.as_ref().unwrap().expose(),
            "sk-test-123"
        );
        assert!(!format!("{config:?}").contains("sk-test-123"));
    }

    fn target_names(config: &Config, requested: Option<&str>) -> Vec<String> {
        config
            .targets(requested)
            .iter()
            .map(|t| format!("{} {}", t.endpoint.origin, t.model))
            .collect()
    }

    #[test]
    fn models_are_an_ordered_comma_separated_list() {
        let config = config_from(&[(MODEL, " gpt-4o , gpt-4o-mini,,gpt-4o ")]).unwrap();
        assert_eq!(config.models, ["gpt-4o", "gpt-4o-mini"]);
        let message = internal_message(config_from(&[
            (API_FLAVOR, "azure"),
            (MODEL, "chat-eu, ../admin"),
        ]));
        assert!(message.contains(MODEL), "{message}");
    }

    #[test]
    fn targets_are_every_model_on_the_primary_then_on_the_failover_origin() {
        let config = config_from(&[
            (ORIGIN, "https://eastus.example"),
            (FAILOVER_ORIGIN, "https://westus.example/"),
            (MODEL, "a,b"),
        ])
        .unwrap();
        assert_eq!(
            target_names(&config, None),
            [
                "https://eastus.example a",
                "https://eastus.example b",
                "https://westus.example a",
                "https://westus.example b"
            ]
        );
        assert_eq!(
            target_names(&config, Some("c")),
            ["https://eastus.example c", "https://westus.example c"]
        );
    }

    #[test]
    fn the_failover_origin_uses_its_own_key_or_the_primary_one() {
        let keys = |vars: &[(&str, &str)]| -> Vec<Option<String>> {
            config_from(vars)
                .unwrap()
                .endpoints
                .iter()
                .map(|e| e.api_key.as_ref().map(|k| k.expose().to_string()))
                .collect()
        };
        let failover = (FAILOVER_ORIGIN, "https://westus.example");
        assert_eq!(
            keys(&[failover, (API_KEY, "k1"), (FAILOVER_API_KEY, "k2")]),
            [Some("k1".to_string()), Some("k2".to_string())]
        );
        assert_eq!(
            keys(&[failover, (API_KEY, "k1")]),
            [Some("k1".to_string()), Some("k1".to_string())]
        );
    }

    #[test]
    fn managed_identity_needs_a_token_origin_and_drops_api_keys() {
        let message = internal_message(config_from(&[(AUTH, "managed-identity")]));
        assert!(message.contains(TOKEN_ORIGIN), "{message}");
        let config = config_from(&[
            (AUTH, "Managed-Identity"),
            (TOKEN_ORIGIN, "http://169.254.169.254"),
            (CLIENT_ID, "6c1e0f2a-0000-4e5b-9d7c-000000000001"),
            (API_KEY, "unused"),
        ])
        .unwrap();
        assert_eq!(
            config.auth,
            Auth::Entra(EntraIdentity::Managed {
                token_origin: "http://169.254.169.254".into(),
                client_id: Some("6c1e0f2a-0000-4e5b-9d7c-000000000001".into())
            })
        );
        assert_eq!(config.endpoints[0].api_key, None);
        let message = internal_message(config_from(&[
            (AUTH, "managed-identity"),
            (TOKEN_ORIGIN, "http://169.254.169.254"),
            (CLIENT_ID, "a&resource=evil"),
        ]));
        assert!(message.contains(CLIENT_ID), "{message}");
    }

    #[test]
    fn workload_identity_needs_a_tenant_a_client_and_an_authority() {
        const CLIENT: &str = "6c1e0f2a-0000-4e5b-9d7c-000000000001";
        let message = internal_message(config_from(&[(AUTH, "workload-identity")]));
        assert!(message.contains(TENANT_ID), "{message}");
        let message = internal_message(config_from(&[
            (AUTH, "workload-identity"),
            (TENANT_ID, "contoso.onmicrosoft.com"),
        ]));
        assert!(message.contains(CLIENT_ID), "{message}");
        let message = internal_message(config_from(&[
            (AUTH, "workload-identity"),
            (TENANT_ID, "contoso.onmicrosoft.com"),
            (CLIENT_ID, CLIENT),
        ]));
        assert!(message.contains(AUTHORITY_HOST), "{message}");
        let config = config_from(&[
            (AUTH, "Workload-Identity"),
            (TENANT_ID, "contoso.onmicrosoft.com"),
            (CLIENT_ID, CLIENT),
            (AUTHORITY_HOST, "https://login.microsoftonline.com"),
            (API_KEY, "unused"),
        ])
        .unwrap();
        assert_eq!(
            config.auth,
            Auth::Entra(EntraIdentity::Workload {
                authority_host: "https://login.microsoftonline.com".into(),
                tenant_id: "contoso.onmicrosoft.com".into(),
                client_id: CLIENT.into(),
                token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
            })
        );
        assert_eq!(config.endpoints[0].api_key, None);
        let config = config_from(&[
            (AUTH, "workload-identity"),
            (TENANT_ID, "t"),
            (CLIENT_ID, CLIENT),
            (AUTHORITY_HOST, "http://127.0.0.1:8400/"),
            (TOKEN_FILE, "/tokens/sa"),
        ])
        .unwrap();
        assert!(matches!(
            config.auth,
            Auth::Entra(EntraIdentity::Workload { authority_host, token_file, .. })
                if authority_host == "http://127.0.0.1:8400" && token_file == "/tokens/sa"
        ));
        for (name, value) in [
            (TENANT_ID, "a/b-secret"),
            (CLIENT_ID, "a&scope=secret"),
            (AUTHORITY_HOST, "https://login.example/secret"),
            (TOKEN_FILE, "../secret"),
        ] {
            let mut vars = vec![
                (AUTH, "workload-identity"),
                (TENANT_ID, "t"),
                (CLIENT_ID, CLIENT),
                (AUTHORITY_HOST, "https://login.microsoftonline.com"),
            ];
            vars.retain(|(n, _)| *n != name);
            vars.push((name, value));
            let message = internal_message(config_from(&vars));
            assert!(message.contains(name), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn resilience_settings_are_read() {
        let config = config_from(&[
            (TIMEOUT_MS, "2000"),
            (CONNECT_TIMEOUT_MS, "100"),
            (FIRST_BYTE_TIMEOUT_MS, "200"),
            (IDLE_TIMEOUT_MS, "300"),
            (MAX_RETRIES, "0"),
            (RETRY_BASE_MS, "10"),
            (BREAKER_FAILURES, "0"),
            (BREAKER_COOLDOWN_MS, "50"),
        ])
        .unwrap();
        assert_eq!(
            config.timeouts,
            Timeouts {
                connect_ms: 100,
                first_byte_ms: 200,
                idle_ms: 300,
                deadline_ms: 2000
            }
        );
        assert_eq!(config.retry.max_retries, 0);
        assert_eq!(config.retry.base_delay_ms, 10);
        assert_eq!(config.retry.deadline_ms, 2000);
        assert!(!config.breaker.enabled());
        assert_eq!(config.breaker.cooldown_ms, 50);
    }
}
