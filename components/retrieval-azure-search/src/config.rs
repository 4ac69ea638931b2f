//! The component's configuration, read from Spin variables and validated once per
//! request. A misconfiguration is reported as `index-unavailable`: the index cannot be
//! reached as configured, and no request is sent (not even for a token).

use crate::RetrievalError;

pub const DEFAULT_API_VERSION: &str = "2024-07-01";
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Azure AI Search's own default `top` is 50; above this a request is refused
/// rather than asking the service for an answer the prompt could never hold.
pub const MAX_TOP: u32 = 1000;

/// The first api-version whose vector queries may be of kind `text` (vectorized by
/// the index's vectorizer), generally available.
pub const MIN_TEXT_VECTOR_API_VERSION: &str = "2024-07-01";
/// The audience of Azure AI Search data-plane tokens.
pub const TOKEN_RESOURCE: &str = "https://search.azure.com";

/// The variables of `managed-identity` and `workload-identity`.
pub const IDENTITY_VARIABLES: IdentityVariables = IdentityVariables {
    token_origin: "azure_search_token_origin",
    client_id: "azure_search_client_id",
    tenant_id: "azure_search_tenant_id",
    authority_host: "azure_search_authority_host",
    token_file: "azure_search_token_file",
};

/// Every variable the component reads.
pub const VARIABLE_NAMES: [&str; 19] = [
    "azure_search_origin",
    "azure_search_index",
    "azure_search_auth",
    "azure_search_api_key",
    "azure_search_token_origin",
    "azure_search_client_id",
    "azure_search_tenant_id",
    "azure_search_authority_host",
    "azure_search_token_file",
    "azure_search_api_version",
    "azure_search_semantic_configuration",
    "azure_search_id_field",
    "azure_search_title_field",
    "azure_search_content_field",
    "azure_search_source_field",
    "azure_search_metadata_fields",
    "azure_search_timeout_ms",
    "azure_search_vector_fields",
    "azure_search_vector_k",
];

use chatgate_guest::entra_identity::{
    EntraIdentity, IdentityError, IdentityVariables, MANAGED_IDENTITY, WORKLOAD_IDENTITY,
};
pub use chatgate_guest::{ApiKey, VariableValue};

/// Which index fields hold the parts of a passage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    pub id: String,
    pub title: String,
    pub content: String,
    pub source: String,
    /// Further fields passed on as each passage's `metadata`, in this order.
    pub metadata: Vec<String>,
}

/// How requests prove their right to query the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// The `api-key` header: a query or admin key of the service.
    ApiKey(ApiKey),
    /// `Authorization: Bearer` with an Entra ID token for [`TOKEN_RESOURCE`], from a
    /// managed-identity endpoint or by workload identity federation (as on AKS).
    Entra(EntraIdentity),
}

/// Hybrid search: a vector query of kind `text` next to the keyword query, which
/// the service vectorizes with the index's vectorizer and fuses with reciprocal
/// rank fusion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VectorSearch {
    /// Vector fields (`Collection(Edm.Single)`) searched together, at least one.
    pub fields: Vec<String>,
    /// Nearest neighbours asked for; `None` asks for as many as the call's `top-k`.
    pub k: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `scheme://host[:port]`, without a trailing slash.
    pub origin: String,
    pub index: String,
    pub auth: Auth,
    pub api_version: String,
    pub semantic_configuration: Option<String>,
    /// `None`: keyword search only.
    pub vector: Option<VectorSearch>,
    pub fields: Fields,
    /// The deadline for one `search` call, token and retry included.
    pub timeout_ms: u64,
}

impl Config {
    pub fn from_variables(get: impl Fn(&str) -> VariableValue) -> Result<Config, RetrievalError> {
        let read = |name: &str, default: &str| -> Result<String, RetrievalError> {
            match get(name) {
                VariableValue::Value(value) => Ok(value.trim().to_string()),
                VariableValue::Missing => Ok(default.to_string()),
                VariableValue::Unreadable => Err(misconfigured(format!(
                    "the variable {name} could not be read"
                ))),
            }
        };
        let origin = parse_origin(
            "azure_search_origin",
            &read("azure_search_origin", "")?,
            "https://my-service.search.windows.net",
        )?;
        let index = read("azure_search_index", "")?;
        if !valid_index_name(&index) {
            return Err(misconfigured(if index.is_empty() {
                "azure_search_index is not set".to_string()
            } else {
                "azure_search_index must be 2-128 lowercase letters, digits or dashes, starting and ending with a letter or digit".to_string()
            }));
        }
        let auth = match read("azure_search_auth", "")?.to_ascii_lowercase().as_str() {
            "" | "api-key" => {
                let api_key = read("azure_search_api_key", "")?;
                if api_key.is_empty() {
                    return Err(misconfigured("azure_search_api_key is not set".into()));
                }
                // A header value cannot hold control characters; the key is not quoted.
                if !api_key.bytes().all(|b| (0x21..0x7f).contains(&b)) {
                    return Err(misconfigured(
                        "azure_search_api_key holds characters an HTTP header cannot carry".into(),
                    ));
                }
                Auth::ApiKey(ApiKey::new(api_key))
            }
            mode => {
                let read_set = |name: &'static str| match read(name, "") {
                    Ok(value) => Ok((!value.is_empty()).then_some(value)),
                    Err(_) => Err(IdentityError(format!(
                        "the variable {name} could not be read"
                    ))),
                };
                match EntraIdentity::from_variables(mode, &IDENTITY_VARIABLES, read_set) {
                    Ok(Some(identity)) => Auth::Entra(identity),
                    Ok(None) => {
                        return Err(misconfigured(format!(
                            "azure_search_auth must be `api-key`, `{MANAGED_IDENTITY}` or `{WORKLOAD_IDENTITY}`"
                        )));
                    }
                    Err(IdentityError(message)) => return Err(misconfigured(message)),
                }
            }
        };
        let mut api_version = read("azure_search_api_version", DEFAULT_API_VERSION)?;
        if api_version.is_empty() {
            api_version = DEFAULT_API_VERSION.to_string();
        }
        if !api_version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        {
            return Err(misconfigured(
                "azure_search_api_version must look like 2024-07-01".into(),
            ));
        }
        let semantic = read("azure_search_semantic_configuration", "")?;
        let semantic_configuration = (!semantic.is_empty()).then_some(semantic);
        let field = |name: &str, default: &str| -> Result<String, RetrievalError> {
            let value = read(name, default)?;
            let value = if value.is_empty() {
                default.to_string()
            } else {
                value
            };
            if valid_field_name(&value) {
                Ok(value)
            } else {
                Err(misconfigured(format!(
                    "{name} must be an index field name (letters, digits and underscores, starting with a letter)"
                )))
            }
        };
        let fields = Fields {
            id: field("azure_search_id_field", "id")?,
            title: field("azure_search_title_field", "title")?,
            content: field("azure_search_content_field", "content")?,
            source: field("azure_search_source_field", "filepath")?,
            metadata: field_list(
                &read("azure_search_metadata_fields", "")?,
                "azure_search_metadata_fields",
            )?,
        };
        let timeout = read("azure_search_timeout_ms", "")?;
        let timeout_ms = if timeout.is_empty() {
            DEFAULT_TIMEOUT_MS
        } else {
            match timeout.parse::<u64>() {
                Ok(ms) if (1..=600_000).contains(&ms) => ms,
                _ => {
                    return Err(misconfigured(
                        "azure_search_timeout_ms must be a whole number of milliseconds from 1 to 600000".into(),
                    ));
                }
            }
        };
        let vector = vector_search(
            &read("azure_search_vector_fields", "")?,
            &read("azure_search_vector_k", "")?,
            &api_version,
        )?;
        Ok(Config {
            origin,
            index,
            auth,
            api_version,
            semantic_configuration,
            vector,
            fields,
            timeout_ms,
        })
    }
}

/// The comma-separated field names of the variable `name`, each once, in order.
fn field_list(text: &str, name: &str) -> Result<Vec<String>, RetrievalError> {
    let mut fields: Vec<String> = Vec::new();
    for field in text.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        if !valid_field_name(field) {
            return Err(misconfigured(format!(
                "{name} must be comma-separated index field names (letters, digits and underscores, starting with a letter)"
            )));
        }
        if !fields.iter().any(|f| f == field) {
            fields.push(field.to_string());
        }
    }
    Ok(fields)
}

/// Hybrid search settings: off unless vector fields are named.
fn vector_search(
    fields_text: &str,
    k_text: &str,
    api_version: &str,
) -> Result<Option<VectorSearch>, RetrievalError> {
    let fields = field_list(fields_text, "azure_search_vector_fields")?;
    if fields.is_empty() {
        return Ok(None);
    }
    // Date-stamped versions sort as text; earlier ones only take raw vectors.
    if api_version
        .get(..10)
        .is_none_or(|date| date < MIN_TEXT_VECTOR_API_VERSION)
    {
        return Err(misconfigured(format!(
            "azure_search_vector_fields needs azure_search_api_version {MIN_TEXT_VECTOR_API_VERSION} or later (vector queries of kind `text`)"
        )));
    }
    let k = if k_text.is_empty() {
        None
    } else {
        match k_text.parse::<u32>() {
            Ok(k) if (1..=MAX_TOP).contains(&k) => Some(k),
            _ => {
                return Err(misconfigured(format!(
                    "azure_search_vector_k must be a whole number from 1 to {MAX_TOP}, or empty for the call's top-k"
                )));
            }
        }
    };
    Ok(Some(VectorSearch { fields, k }))
}

fn misconfigured(reason: String) -> RetrievalError {
    RetrievalError::IndexUnavailable(format!("retrieval-azure-search is misconfigured: {reason}"))
}

/// `https://<service>.search.windows.net` (or `http://` for a local server): a scheme
/// and an authority, nothing else, so that the path is ours to append.
fn parse_origin(name: &str, text: &str, example: &str) -> Result<String, RetrievalError> {
    if text.is_empty() {
        return Err(misconfigured(format!("{name} is not set")));
    }
    chatgate_guest::parse_origin(text).ok_or_else(|| {
        misconfigured(format!(
            "{name} must be scheme://host[:port], e.g. {example}"
        ))
    })
}

/// Azure AI Search index names: lowercase letters, digits and dashes, 2 to 128
/// characters, starting and ending with a letter or digit, no `--`.
fn valid_index_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    (2..=128).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && !name.contains("--")
}

/// Azure AI Search field names: a letter, then letters, digits or underscores. They
/// are written unquoted into OData filters, so nothing else may pass.
fn valid_field_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 128
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The field names of the default index schema.
    pub(crate) fn fields() -> Fields {
        Fields {
            id: "id".into(),
            title: "title".into(),
            content: "content".into(),
            source: "filepath".into(),
            metadata: Vec::new(),
        }
    }

    fn config(pairs: &[(&str, &str)]) -> Result<Config, RetrievalError> {
        Config::from_variables(|name| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| VariableValue::Value(v.to_string()))
                .unwrap_or(VariableValue::Missing)
        })
    }

    const MINIMAL: &[(&str, &str)] = &[
        ("azure_search_origin", "https://contoso.search.windows.net/"),
        ("azure_search_index", "handbook-v2"),
        ("azure_search_api_key", "secret-admin-key"),
    ];

    fn with(extra: &[(&'static str, &'static str)]) -> Vec<(&'static str, &'static str)> {
        let mut pairs: Vec<_> = MINIMAL
            .iter()
            .filter(|(n, _)| !extra.iter().any(|(e, _)| e == n))
            .copied()
            .collect();
        pairs.extend_from_slice(extra);
        pairs
    }

    fn misconfiguration(pairs: &[(&str, &str)]) -> String {
        match config(pairs) {
            Err(RetrievalError::IndexUnavailable(message)) => message,
            other => panic!("expected a misconfiguration, got {other:?}"),
        }
    }

    #[test]
    fn origin_index_and_key_suffice_and_everything_else_has_a_default() {
        let config = config(MINIMAL).unwrap();
        assert_eq!(config.origin, "https://contoso.search.windows.net");
        assert_eq!(config.index, "handbook-v2");
        assert_eq!(
            config.auth,
            Auth::ApiKey(ApiKey::new("secret-admin-key".into()))
        );
        assert_eq!(config.api_version, "2024-07-01");
        assert_eq!(config.semantic_configuration, None);
        assert_eq!(config.vector, None);
        assert_eq!(
            config.fields,
            Fields {
                id: "id".into(),
                title: "title".into(),
                content: "content".into(),
                source: "filepath".into(),
                metadata: Vec::new(),
            }
        );
        assert_eq!(config.timeout_ms, 10_000);
    }

    #[test]
    fn empty_values_mean_the_defaults_for_optional_settings() {
        let config = config(&with(&[
            ("azure_search_api_version", ""),
            ("azure_search_semantic_configuration", " "),
            ("azure_search_source_field", ""),
            ("azure_search_timeout_ms", ""),
        ]))
        .unwrap();
        assert_eq!(config.api_version, DEFAULT_API_VERSION);
        assert_eq!(config.semantic_configuration, None);
        assert_eq!(config.fields.source, "filepath");
        assert_eq!(config.timeout_ms, DEFAULT_TIMEOUT_MS);
    }

    #[test]
    fn every_setting_can_be_overridden() {
        let config = config(&with(&[
            ("azure_search_api_version", "2025-05-01-preview"),
            ("azure_search_semantic_configuration", "default-semantic"),
            ("azure_search_id_field", "chunk_id"),
            ("azure_search_title_field", "doc_title"),
            ("azure_search_content_field", "chunk"),
            ("azure_search_source_field", "url"),
            ("azure_search_timeout_ms", "2500"),
        ]))
        .unwrap();
        assert_eq!(config.api_version, "2025-05-01-preview");
        assert_eq!(
            config.semantic_configuration.as_deref(),
            Some("default-semantic")
        );
        assert_eq!(config.fields.id, "chunk_id");
        assert_eq!(config.fields.title, "doc_title");
        assert_eq!(config.fields.content, "chunk");
        assert_eq!(config.fields.source, "url");
        assert_eq!(config.timeout_ms, 2500);
    }

    #[test]
    fn required_settings_are_named_when_missing() {
        for name in [
            "azure_search_origin",
            "azure_search_index",
            "azure_search_api_key",
        ] {
            let pairs: Vec<_> = MINIMAL
                .iter()
                .filter(|(n, _)| *n != name)
                .copied()
                .collect();
            let message = misconfiguration(&pairs);
            assert!(message.contains(name), "{message}");
            assert!(message.contains("not set"), "{message}");
        }
    }

    #[test]
    fn an_origin_with_a_path_query_credentials_or_another_scheme_is_refused() {
        for origin in [
            "contoso.search.windows.net",
            "ftp://contoso.search.windows.net",
            "https://contoso.search.windows.net/indexes",
            "https://contoso.search.windows.net?api-version=1",
            "https://user:pw@contoso.search.windows.net",
            "not a url",
        ] {
            let message = misconfiguration(&with(&[("azure_search_origin", origin)]));
            assert!(
                message.contains("azure_search_origin"),
                "{origin}: {message}"
            );
        }
        let local = config(&with(&[("azure_search_origin", "http://127.0.0.1:8089")])).unwrap();
        assert_eq!(local.origin, "http://127.0.0.1:8089");
    }

    #[test]
    fn index_names_follow_azure_rules_so_they_need_no_escaping_in_the_path() {
        for bad in [
            "A",
            "Handbook",
            "hand book",
            "-handbook",
            "handbook-",
            "hand--book",
            "../x",
            "x/y",
        ] {
            let message = misconfiguration(&with(&[("azure_search_index", bad)]));
            assert!(message.contains("azure_search_index"), "{bad}: {message}");
        }
        assert!(config(&with(&[("azure_search_index", "a1")])).is_ok());
    }

    #[test]
    fn field_names_that_could_change_a_filter_expression_are_refused() {
        for bad in ["title eq 'x' or true", "1title", "ti-tle", "title'"] {
            let message = misconfiguration(&with(&[("azure_search_title_field", bad)]));
            assert!(
                message.contains("azure_search_title_field"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn api_versions_and_timeouts_are_checked() {
        let message = misconfiguration(&with(&[("azure_search_api_version", "2024&x=1")]));
        assert!(message.contains("azure_search_api_version"), "{message}");
        for bad in ["0", "-1", "ten", "600001"] {
            let message = misconfiguration(&with(&[("azure_search_timeout_ms", bad)]));
            assert!(
                message.contains("azure_search_timeout_ms"),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn an_unreadable_variable_is_named_and_a_key_never_appears_in_messages_or_debug() {
        let result = Config::from_variables(|name| match name {
            "azure_search_api_key" => VariableValue::Unreadable,
            "azure_search_origin" => VariableValue::Value("https://x.search.windows.net".into()),
            "azure_search_index" => VariableValue::Value("docs".into()),
            _ => VariableValue::Missing,
        });
        assert_eq!(
            result,
            Err(RetrievalError::IndexUnavailable(
                "retrieval-azure-search is misconfigured: the variable azure_search_api_key could not be read".into()
            ))
        );
        let message = misconfiguration(&with(&[("azure_search_api_key", "bad key\n")]));
        assert!(!message.contains("bad key"), "{message}");
        let debug = format!("{:?}", config(MINIMAL).unwrap());
        assert!(!debug.contains("secret-admin-key"), "{debug}");
    }

    #[test]
    fn managed_identity_needs_a_token_origin_and_no_api_key() {
        let without_key: Vec<_> = MINIMAL
            .iter()
            .filter(|(n, _)| *n != "azure_search_api_key")
            .copied()
            .chain([("azure_search_auth", "Managed-Identity")])
            .collect();
        let message = misconfiguration(&without_key);
        assert!(message.contains("azure_search_token_origin"), "{message}");

        let mut pairs = without_key.clone();
        pairs.push(("azure_search_token_origin", "http://169.254.169.254/"));
        assert_eq!(
            config(&pairs).unwrap().auth,
            Auth::Entra(EntraIdentity::Managed {
                token_origin: "http://169.254.169.254".into(),
                client_id: None,
            })
        );
        pairs.push((
            "azure_search_client_id",
            "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d",
        ));
        assert_eq!(
            config(&pairs).unwrap().auth,
            Auth::Entra(EntraIdentity::Managed {
                token_origin: "http://169.254.169.254".into(),
                client_id: Some("6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d".into()),
            })
        );
        // An API key that is also set is not sent, so it does not matter.
        let with_key = config(&with(&[
            ("azure_search_auth", "managed-identity"),
            ("azure_search_token_origin", "http://127.0.0.1:1"),
        ]))
        .unwrap();
        assert!(matches!(
            with_key.auth,
            Auth::Entra(EntraIdentity::Managed { .. })
        ));
    }

    #[test]
    fn workload_identity_needs_a_tenant_a_client_and_an_authority() {
        const CLIENT: &str = "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d";
        let base = [("azure_search_auth", "workload-identity")];
        let message = misconfiguration(&with(&base));
        assert!(message.contains("azure_search_tenant_id"), "{message}");
        let mut pairs = with(&base);
        pairs.push(("azure_search_tenant_id", "contoso.onmicrosoft.com"));
        let message = misconfiguration(&pairs);
        assert!(message.contains("azure_search_client_id"), "{message}");
        pairs.push(("azure_search_client_id", CLIENT));
        let message = misconfiguration(&pairs);
        assert!(
            message.contains("azure_search_authority_host is not set"),
            "{message}"
        );
        pairs.push((
            "azure_search_authority_host",
            "https://login.microsoftonline.com",
        ));
        assert_eq!(
            config(&pairs).unwrap().auth,
            Auth::Entra(EntraIdentity::Workload {
                authority_host: "https://login.microsoftonline.com".into(),
                tenant_id: "contoso.onmicrosoft.com".into(),
                client_id: CLIENT.into(),
                token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
            })
        );
        for (name, value) in [
            ("azure_search_tenant_id", "a/b-secret"),
            ("azure_search_client_id", "a&scope=secret"),
            (
                "azure_search_authority_host",
                "https://login.example/secret",
            ),
            ("azure_search_token_file", "../secret"),
        ] {
            let mut bad: Vec<_> = pairs.iter().copied().filter(|(n, _)| *n != name).collect();
            bad.push((name, value));
            let message = misconfiguration(&bad);
            assert!(message.contains(name), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn identity_settings_that_could_reshape_the_token_request_are_refused() {
        let base = [
            ("azure_search_auth", "managed-identity"),
            ("azure_search_token_origin", "http://169.254.169.254"),
        ];
        let mut pairs = with(&base);
        pairs.push(("azure_search_client_id", "a&resource=https://evil"));
        let message = misconfiguration(&pairs);
        assert!(message.contains("azure_search_client_id"), "{message}");
        let message = misconfiguration(&with(&[
            ("azure_search_auth", "managed-identity"),
            (
                "azure_search_token_origin",
                "http://169.254.169.254/metadata",
            ),
        ]));
        assert!(message.contains("azure_search_token_origin"), "{message}");
        let message = misconfiguration(&with(&[("azure_search_auth", "aad")]));
        assert!(message.contains("`managed-identity`"), "{message}");
    }

    #[test]
    fn metadata_fields_are_a_checked_list() {
        let config = config(&with(&[(
            "azure_search_metadata_fields",
            " team , lastUpdated,team,",
        )]))
        .unwrap();
        assert_eq!(config.fields.metadata, ["team", "lastUpdated"]);
        let message = misconfiguration(&with(&[("azure_search_metadata_fields", "team,x eq 'y'")]));
        assert!(
            message.contains("azure_search_metadata_fields"),
            "{message}"
        );
    }

    #[test]
    fn vector_fields_turn_on_hybrid_search() {
        let hybrid = config(&with(&[(
            "azure_search_vector_fields",
            " contentVector , titleVector,contentVector ",
        )]))
        .unwrap();
        assert_eq!(
            hybrid.vector,
            Some(VectorSearch {
                fields: vec!["contentVector".into(), "titleVector".into()],
                k: None,
            })
        );
        assert_eq!(config_with_k("50").unwrap().vector.unwrap().k, Some(50));
        // k alone, without fields, changes nothing.
        let k_only = with(&[("azure_search_vector_k", "50")]);
        assert_eq!(config(&k_only).unwrap().vector, None);
    }

    fn config_with_k(k: &'static str) -> Result<Config, RetrievalError> {
        config(&with(&[
            ("azure_search_vector_fields", "contentVector"),
            ("azure_search_vector_k", k),
        ]))
    }

    #[test]
    fn bad_vector_settings_are_named() {
        for bad in ["0", "-1", "1001", "many"] {
            let Err(RetrievalError::IndexUnavailable(message)) = config_with_k(bad) else {
                panic!("{bad} accepted");
            };
            assert!(
                message.contains("azure_search_vector_k"),
                "{bad}: {message}"
            );
        }
        let message = misconfiguration(&with(&[(
            "azure_search_vector_fields",
            "contentVector,content vector",
        )]));
        assert!(message.contains("azure_search_vector_fields"), "{message}");
    }

    #[test]
    fn text_vector_queries_need_api_version_2024_07_01_or_later() {
        for old in ["2023-11-01", "2024-05-01-preview", "v1"] {
            let message = misconfiguration(&with(&[
                ("azure_search_vector_fields", "contentVector"),
                ("azure_search_api_version", old),
            ]));
            assert!(
                message.contains("azure_search_api_version 2024-07-01"),
                "{old}: {message}"
            );
        }
        for recent in ["2024-07-01", "2024-09-01-preview", "2025-09-01"] {
            assert!(
                config(&with(&[
                    ("azure_search_vector_fields", "contentVector"),
                    ("azure_search_api_version", recent),
                ]))
                .is_ok(),
                "{recent}"
            );
        }
    }
}
