//! The deployment's settings, from Spin variables (when `chat` passes its variables on
//! with `inherit_configuration = ["variables", ...]`; without them, the defaults).

use chatgate_embeddings::Flavor;
use chatgate_guest::entra_identity::{EntraIdentity, IdentityError, IdentityVariables};
use chatgate_guest::{ApiKey, VariableValue, Variables};

pub const MIN_SCORE: &str = "retrieval_min_score";
pub const MIN_SIMILARITY: &str = "retrieval_min_similarity";
pub const EMBEDDINGS_ORIGIN: &str = "retrieval_embeddings_origin";
pub const EMBEDDINGS_API_FLAVOR: &str = "retrieval_embeddings_api_flavor";
pub const EMBEDDINGS_PATH_PREFIX: &str = "retrieval_embeddings_path_prefix";
pub const EMBEDDINGS_API_KEY: &str = "retrieval_embeddings_api_key";
pub const EMBEDDINGS_API_VERSION: &str = "retrieval_embeddings_api_version";
pub const EMBEDDINGS_MODEL: &str = "retrieval_embeddings_model";
pub const EMBEDDINGS_TIMEOUT_MS: &str = "retrieval_embeddings_timeout_ms";
/// `api-key` (default), `managed-identity` or `workload-identity`.
pub const EMBEDDINGS_AUTH: &str = "retrieval_embeddings_auth";
/// The variables of `managed-identity` and `workload-identity`.
pub const IDENTITY_VARIABLES: IdentityVariables = IdentityVariables {
    token_origin: "retrieval_embeddings_token_origin",
    client_id: "retrieval_embeddings_client_id",
    tenant_id: "retrieval_embeddings_tenant_id",
    authority_host: "retrieval_embeddings_authority_host",
    token_file: "retrieval_embeddings_token_file",
};
/// The audience of Azure OpenAI (Azure AI services) tokens.
pub const TOKEN_RESOURCE: &str = "https://cognitiveservices.azure.com";

/// Every variable the component reads.
pub const VARIABLES: &[&str] = &[
    MIN_SCORE,
    MIN_SIMILARITY,
    EMBEDDINGS_ORIGIN,
    EMBEDDINGS_API_FLAVOR,
    EMBEDDINGS_PATH_PREFIX,
    EMBEDDINGS_API_KEY,
    EMBEDDINGS_API_VERSION,
    EMBEDDINGS_MODEL,
    EMBEDDINGS_TIMEOUT_MS,
    EMBEDDINGS_AUTH,
    IDENTITY_VARIABLES.token_origin,
    IDENTITY_VARIABLES.client_id,
    IDENTITY_VARIABLES.tenant_id,
    IDENTITY_VARIABLES.authority_host,
    IDENTITY_VARIABLES.token_file,
];

use chatgate_embeddings::{DEFAULT_AZURE_API_VERSION, DEFAULT_PATH_PREFIX};
/// A query embedding is one short input: when it takes longer than this, the search
/// answers from BM25 alone rather than keep `chat` waiting.
pub const DEFAULT_TIMEOUT_MS: u64 = 3000;

#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// BM25 scores below this are not relevant enough to return: with no passage left,
    /// `chat` answers that it found nothing relevant instead of grounding on noise.
    pub min_score: f32,
    /// Cosine similarities below this do not count as vector matches (hybrid search).
    pub min_similarity: f32,
    /// Where queries are embedded; `None` (no origin set) keeps every search BM25-only.
    pub embeddings: Option<EmbeddingsConfig>,
}

/// The endpoint that embeds queries: the one (or the same model as the one) that
/// embedded the index's chunks.
#[derive(Debug, Clone, PartialEq)]
pub struct EmbeddingsConfig {
    /// `scheme://host[:port]`, without a trailing slash.
    pub origin: String,
    /// The wire format: `{origin}{path_prefix}/embeddings` (OpenAI) or
    /// `{origin}/openai/deployments/{model}/embeddings?api-version={api_version}` (Azure).
    pub flavor: Flavor,
    /// Sent when set and no identity is; a local OpenAI-compatible server may need none.
    pub api_key: Option<ApiKey>,
    /// Entra ID tokens (`Authorization: Bearer`) instead of a key, for Azure OpenAI.
    pub identity: Option<EntraIdentity>,
    /// The model (Azure: the deployment); `None` uses the one the index records.
    pub model: Option<String>,
    pub timeout_ms: u64,
}

/// A variable that is set but unusable: the deployment is misconfigured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl Config {
    pub fn from_variables(variables: &Variables) -> Result<Config, ConfigError> {
        Ok(Config {
            min_score: non_negative(variables, MIN_SCORE, 0.0)?,
            min_similarity: number(variables, MIN_SIMILARITY, 0.0, -1.0..=1.0)?,
            embeddings: embeddings(variables)?,
        })
    }
}

fn embeddings(variables: &Variables) -> Result<Option<EmbeddingsConfig>, ConfigError> {
    let Some(origin) = text(variables, EMBEDDINGS_ORIGIN)? else {
        return Ok(None);
    };
    let origin = parse_origin(&origin)?;
    let flavor = match text(variables, EMBEDDINGS_API_FLAVOR)?.as_deref() {
        None | Some("openai") => {
            let prefix = text(variables, EMBEDDINGS_PATH_PREFIX)?
                .unwrap_or_else(|| DEFAULT_PATH_PREFIX.to_string());
            Flavor::OpenAi {
                path_prefix: parse_path_prefix(&prefix)?,
            }
        }
        Some("azure") => {
            let version = text(variables, EMBEDDINGS_API_VERSION)?
                .unwrap_or_else(|| DEFAULT_AZURE_API_VERSION.to_string());
            if !chatgate_embeddings::valid_api_version(&version) {
                return Err(ConfigError(format!(
                    "variable `{EMBEDDINGS_API_VERSION}` must look like {DEFAULT_AZURE_API_VERSION}, not `{version}`"
                )));
            }
            Flavor::Azure {
                api_version: version,
            }
        }
        Some(other) => {
            return Err(ConfigError(format!(
                "variable `{EMBEDDINGS_API_FLAVOR}` must be `openai` or `azure`, not `{other}`"
            )));
        }
    };
    let api_key = text(variables, EMBEDDINGS_API_KEY)?;
    if api_key
        .as_deref()
        .is_some_and(|key| !key.bytes().all(|b| b.is_ascii_graphic()))
    {
        // The value is not quoted: it is a secret.
        return Err(ConfigError(format!(
            "variable `{EMBEDDINGS_API_KEY}` holds characters an HTTP header cannot carry"
        )));
    }
    let auth = text(variables, EMBEDDINGS_AUTH)?.unwrap_or_default();
    let identity = match auth.to_ascii_lowercase().as_str() {
        "" | "api-key" => None,
        mode => {
            let read = |name: &'static str| {
                text(variables, name).map_err(|ConfigError(message)| IdentityError(message))
            };
            match EntraIdentity::from_variables(mode, &IDENTITY_VARIABLES, read) {
                Ok(Some(identity)) => Some(identity),
                Ok(None) => {
                    return Err(ConfigError(format!(
                        "variable `{EMBEDDINGS_AUTH}` must be `api-key`, `managed-identity` or `workload-identity`, not `{auth}`"
                    )));
                }
                Err(IdentityError(message)) => return Err(ConfigError(message)),
            }
        }
    };
    let model = text(variables, EMBEDDINGS_MODEL)?;
    if let (Flavor::Azure { .. }, Some(model)) = (&flavor, &model)
        && !chatgate_embeddings::valid_deployment(model)
    {
        return Err(ConfigError(format!(
            "variable `{EMBEDDINGS_MODEL}` must be an Azure OpenAI deployment name (letters, digits, `-`, `_`, `.`), not `{model}`"
        )));
    }
    let timeout_ms = match text(variables, EMBEDDINGS_TIMEOUT_MS)? {
        None => DEFAULT_TIMEOUT_MS,
        Some(value) => value
            .parse::<u64>()
            .ok()
            .filter(|ms| (1..=600_000).contains(ms))
            .ok_or_else(|| {
                ConfigError(format!(
                    "variable `{EMBEDDINGS_TIMEOUT_MS}` must be milliseconds from 1 to 600000, not `{value}`"
                ))
            })?,
    };
    Ok(Some(EmbeddingsConfig {
        origin,
        flavor,
        api_key: api_key.map(ApiKey::new),
        identity,
        model,
        timeout_ms,
    }))
}

/// A variable's trimmed value; `None` when unset or empty (its default applies).
fn text(variables: &Variables, name: &str) -> Result<Option<String>, ConfigError> {
    match variables.get(name) {
        VariableValue::Missing => Ok(None),
        VariableValue::Unreadable => {
            Err(ConfigError(format!("variable `{name}` could not be read")))
        }
        VariableValue::Value(text) => {
            let text = text.trim();
            Ok((!text.is_empty()).then(|| text.to_string()))
        }
    }
}

fn parse_origin(text: &str) -> Result<String, ConfigError> {
    chatgate_guest::parse_origin(text).ok_or_else(|| {
        ConfigError(format!(
            "variable `{EMBEDDINGS_ORIGIN}` must be scheme://host[:port], e.g. https://api.openai.com, not `{text}`"
        ))
    })
}

/// `/v1`, `/openai/v1`, or empty (`/` alone also means empty).
fn parse_path_prefix(text: &str) -> Result<String, ConfigError> {
    chatgate_embeddings::path_prefix(text).ok_or_else(|| {
        ConfigError(format!(
            "variable `{EMBEDDINGS_PATH_PREFIX}` must be a URL path such as {DEFAULT_PATH_PREFIX}, not `{text}`"
        ))
    })
}

fn non_negative(variables: &Variables, name: &str, default: f32) -> Result<f32, ConfigError> {
    number(variables, name, default, 0.0..=f32::MAX)
}

fn number(
    variables: &Variables,
    name: &str,
    default: f32,
    range: std::ops::RangeInclusive<f32>,
) -> Result<f32, ConfigError> {
    match variables.get(name) {
        VariableValue::Missing => Ok(default),
        VariableValue::Unreadable => {
            Err(ConfigError(format!("variable `{name}` could not be read")))
        }
        VariableValue::Value(text) if text.trim().is_empty() => Ok(default),
        VariableValue::Value(text) => text
            .trim()
            .parse::<f32>()
            .ok()
            .filter(|value| range.contains(value))
            .ok_or_else(|| {
                ConfigError(format!(
                    "variable `{name}` must be a number from {} to {}, not `{text}`",
                    range.start(),
                    range.end()
                ))
            }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(values: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
        Config::from_variables(&Variables::new(
            values
                .iter()
                .map(|(name, value)| (*name, VariableValue::Value(value.to_string())))
                .collect(),
        ))
    }

    #[test]
    fn defaults_return_every_match() {
        assert_eq!(
            config(&[]).unwrap(),
            Config {
                min_score: 0.0,
                min_similarity: 0.0,
                embeddings: None,
            }
        );
        assert_eq!(config(&[(MIN_SCORE, " ")]).unwrap().min_score, 0.0);
    }

    #[test]
    fn floors_are_read_and_checked() {
        assert_eq!(config(&[(MIN_SCORE, "7.5")]).unwrap().min_score, 7.5);
        assert_eq!(
            config(&[(MIN_SIMILARITY, "0.3")]).unwrap().min_similarity,
            0.3
        );
        let error = config(&[(MIN_SCORE, "-1")]).unwrap_err();
        assert!(error.0.contains("retrieval_min_score"), "{error:?}");
        assert!(config(&[(MIN_SIMILARITY, "1.5")]).is_err());
        assert!(config(&[(MIN_SCORE, "high")]).is_err());
    }

    #[test]
    fn without_an_origin_searches_stay_bm25_only_whatever_else_is_set() {
        let config = config(&[
            (EMBEDDINGS_ORIGIN, " "),
            (EMBEDDINGS_API_KEY, "sk-1"),
            (EMBEDDINGS_MODEL, "m"),
        ])
        .unwrap();
        assert_eq!(config.embeddings, None);
    }

    #[test]
    fn an_origin_alone_means_openai_with_the_indexs_model() {
        let embeddings = config(&[(EMBEDDINGS_ORIGIN, "https://api.openai.com/")])
            .unwrap()
            .embeddings
            .unwrap();
        assert_eq!(
            embeddings,
            EmbeddingsConfig {
                origin: "https://api.openai.com".into(),
                flavor: Flavor::OpenAi {
                    path_prefix: "/v1".into()
                },
                api_key: None,
                identity: None,
                model: None,
                timeout_ms: DEFAULT_TIMEOUT_MS,
            }
        );
    }

    #[test]
    fn every_embeddings_setting_is_read() {
        let openai = config(&[
            (EMBEDDINGS_ORIGIN, "http://127.0.0.1:11434"),
            (EMBEDDINGS_PATH_PREFIX, "/"),
            (EMBEDDINGS_API_KEY, "sk-local"),
            (EMBEDDINGS_MODEL, "nomic-embed-text"),
            (EMBEDDINGS_TIMEOUT_MS, "800"),
        ])
        .unwrap()
        .embeddings
        .unwrap();
        assert_eq!(
            openai.flavor,
            Flavor::OpenAi {
                path_prefix: String::new()
            }
        );
        assert_eq!(openai.api_key, Some(ApiKey::new("sk-local".into())));
        assert_eq!(openai.model.as_deref(), Some("nomic-embed-text"));
        assert_eq!(openai.timeout_ms, 800);

        let azure = config(&[
            (EMBEDDINGS_ORIGIN, "https://contoso.openai.azure.com"),
            (EMBEDDINGS_API_FLAVOR, "azure"),
            (EMBEDDINGS_API_VERSION, "2024-02-01"),
        ])
        .unwrap()
        .embeddings
        .unwrap();
        assert_eq!(
            azure.flavor,
            Flavor::Azure {
                api_version: "2024-02-01".into()
            }
        );
    }

    #[test]
    fn unusable_embeddings_settings_name_the_variable_but_never_quote_the_key() {
        let with_origin = |name: &'static str, value: &str| {
            config(&[(EMBEDDINGS_ORIGIN, "https://e.example"), (name, value)]).unwrap_err()
        };
        for (name, value) in [
            (EMBEDDINGS_API_FLAVOR, "anthropic"),
            (EMBEDDINGS_PATH_PREFIX, "v1?x=1"),
            (EMBEDDINGS_TIMEOUT_MS, "0"),
            (EMBEDDINGS_TIMEOUT_MS, "soon"),
        ] {
            let error = with_origin(name, value);
            assert!(error.0.contains(name), "{error:?}");
        }
        let error = with_origin(EMBEDDINGS_API_KEY, "sk-secret\r\nx: y");
        assert!(error.0.contains(EMBEDDINGS_API_KEY) && !error.0.contains("sk-secret"));
        for origin in [
            "api.openai.com",
            "ftp://x",
            "https://x/v1",
            "https://user@x",
        ] {
            let error = config(&[(EMBEDDINGS_ORIGIN, origin)]).unwrap_err();
            assert!(error.0.contains(EMBEDDINGS_ORIGIN), "{origin}: {error:?}");
        }
        let error = config(&[
            (EMBEDDINGS_ORIGIN, "https://e.example"),
            (EMBEDDINGS_API_FLAVOR, "azure"),
            (EMBEDDINGS_MODEL, "../admin"),
        ])
        .unwrap_err();
        assert!(error.0.contains(EMBEDDINGS_MODEL), "{error:?}");
    }

    #[test]
    fn an_identity_replaces_the_key_and_names_its_missing_settings() {
        let origin = (EMBEDDINGS_ORIGIN, "https://x.openai.azure.com");
        let error = config(&[origin, (EMBEDDINGS_AUTH, "managed-identity")]).unwrap_err();
        assert!(
            error
                .0
                .starts_with("retrieval_embeddings_token_origin is not set"),
            "{error:?}"
        );
        let embeddings = config(&[
            origin,
            (EMBEDDINGS_AUTH, "Managed-Identity"),
            (IDENTITY_VARIABLES.token_origin, "http://169.254.169.254"),
        ])
        .unwrap()
        .embeddings
        .unwrap();
        assert_eq!(
            embeddings.identity,
            Some(EntraIdentity::Managed {
                token_origin: "http://169.254.169.254".into(),
                client_id: None
            })
        );
        let error = config(&[origin, (EMBEDDINGS_AUTH, "workload-identity")]).unwrap_err();
        assert!(
            error
                .0
                .starts_with("retrieval_embeddings_tenant_id is not set"),
            "{error:?}"
        );
        let error = config(&[origin, (EMBEDDINGS_AUTH, "password")]).unwrap_err();
        assert!(error.0.contains(EMBEDDINGS_AUTH), "{error:?}");
        // Without an origin nothing is embedded, so an identity is not even checked.
        assert_eq!(
            config(&[(EMBEDDINGS_AUTH, "managed-identity")])
                .unwrap()
                .embeddings,
            None
        );
    }
}
