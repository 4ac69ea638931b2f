//! Per-request configuration from Spin variables.

use crate::error::ApiError;
use chatgate_rag::completion::MAX_TEMPERATURE;

pub const DEFAULT_MODEL: &str = "chatgate-rag";
pub const DEFAULT_TOP_K: u32 = 4;
/// The contract's bound on `top-k`, which `chat_top_k` and clients' `top_k` must respect.
pub use chatgate_rag::retriever::MAX_TOP_K;
/// Enough for a long conversation plus sources, well inside every current
/// model's context window, and a cap on what one request can cost.
pub const DEFAULT_MAX_PROMPT_TOKENS: u32 = 16_384;
/// The largest context window of current models.
pub const MAX_PROMPT_TOKENS: u32 = 2_000_000;
pub const DEFAULT_TOKENIZER: &str = "o200k_base";
pub const TOKENIZERS: [&str; 2] = ["o200k_base", "cl100k_base"];

/// Variable values as read; `None` (or blank) means unset.
#[derive(Debug, Default, Clone)]
pub struct Variables {
    pub chat_models: Option<String>,
    pub chat_top_k: Option<String>,
    pub chat_temperature_default: Option<String>,
    pub chat_max_prompt_tokens: Option<String>,
    pub chat_tokenizer: Option<String>,
    pub quota_requests_per_minute: Option<String>,
    pub quota_tokens_per_minute: Option<String>,
}

impl Variables {
    pub const NAMES: [&str; 7] = [
        "chat_models",
        "chat_top_k",
        "chat_temperature_default",
        "chat_max_prompt_tokens",
        "chat_tokenizer",
        "quota_requests_per_minute",
        "quota_tokens_per_minute",
    ];

    /// Sets the variable called `name`; other names are ignored.
    pub fn set(&mut self, name: &str, value: Option<String>) {
        let slot = match name {
            "chat_models" => &mut self.chat_models,
            "chat_top_k" => &mut self.chat_top_k,
            "chat_temperature_default" => &mut self.chat_temperature_default,
            "chat_max_prompt_tokens" => &mut self.chat_max_prompt_tokens,
            "chat_tokenizer" => &mut self.chat_tokenizer,
            "quota_requests_per_minute" => &mut self.quota_requests_per_minute,
            "quota_tokens_per_minute" => &mut self.quota_tokens_per_minute,
            _ => return,
        };
        *slot = value;
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Model ids offered to clients; never empty, first is the default.
    pub models: Vec<String>,
    pub top_k: u32,
    pub default_temperature: Option<f32>,
    /// The most tokens a prompt may have once sources are added.
    pub max_prompt_tokens: u32,
    /// The BPE vocabulary prompts are counted with (`o200k_base`, `cl100k_base`).
    pub tokenizer: &'static str,
    /// Per identity and minute; `None` is unlimited.
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u32>,
}

/// The model a request runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelChoice {
    /// The public id the client asked for (or the default).
    pub id: String,
    /// What to ask the completion provider for: `None` for the first (default)
    /// id, which stands for the provider's own configured model.
    pub provider_model: Option<String>,
}

impl Settings {
    pub fn from_variables(variables: &Variables) -> Result<Self, ApiError> {
        let mut models: Vec<String> = Vec::new();
        for id in set(&variables.chat_models)
            .unwrap_or(DEFAULT_MODEL)
            .split(',')
        {
            let id = id.trim();
            if !id.is_empty() && !models.iter().any(|m| m == id) {
                models.push(id.to_string());
            }
        }
        if models.is_empty() {
            return Err(ApiError::misconfigured("chat_models", "lists no model id"));
        }

        let top_k =
            bounded(&variables.chat_top_k, "chat_top_k", 1, MAX_TOP_K)?.unwrap_or(DEFAULT_TOP_K);
        let max_prompt_tokens = bounded(
            &variables.chat_max_prompt_tokens,
            "chat_max_prompt_tokens",
            1,
            MAX_PROMPT_TOKENS,
        )?
        .unwrap_or(DEFAULT_MAX_PROMPT_TOKENS);
        let tokenizer = match set(&variables.chat_tokenizer) {
            None => DEFAULT_TOKENIZER,
            Some(name) => TOKENIZERS
                .into_iter()
                .find(|known| *known == name.trim())
                .ok_or_else(|| {
                    ApiError::misconfigured("chat_tokenizer", "must be o200k_base or cl100k_base")
                })?,
        };
        // Zero means unlimited, as in Azure API Management's policies.
        let per_minute = |value, name| {
            bounded(value, name, 0, u32::MAX).map(|limit| limit.filter(|limit| *limit > 0))
        };
        let requests_per_minute = per_minute(
            &variables.quota_requests_per_minute,
            "quota_requests_per_minute",
        )?;
        let tokens_per_minute = per_minute(
            &variables.quota_tokens_per_minute,
            "quota_tokens_per_minute",
        )?;

        let default_temperature = match set(&variables.chat_temperature_default) {
            None => None,
            Some(raw) => Some(
                raw.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|t| (0.0..=MAX_TEMPERATURE).contains(t))
                    .ok_or_else(|| {
                        ApiError::misconfigured(
                            "chat_temperature_default",
                            "must be a number from 0 to 2",
                        )
                    })?,
            ),
        };

        Ok(Self {
            models,
            top_k,
            default_temperature,
            max_prompt_tokens,
            tokenizer,
            requests_per_minute,
            tokens_per_minute,
        })
    }

    pub fn resolve_model(&self, requested: Option<&str>) -> Result<ModelChoice, ApiError> {
        let default = &self.models[0];
        match requested {
            None => Ok(ModelChoice {
                id: default.clone(),
                provider_model: None,
            }),
            Some(id) if id == default => Ok(ModelChoice {
                id: default.clone(),
                provider_model: None,
            }),
            Some(id) if self.models.iter().any(|m| m == id) => Ok(ModelChoice {
                id: id.to_string(),
                provider_model: Some(id.to_string()),
            }),
            Some(id) => Err(ApiError::model_not_found(id)),
        }
    }
}

fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.trim().is_empty())
}

/// An integer variable within `min..=max`; `None` when unset.
fn bounded(
    value: &Option<String>,
    name: &str,
    min: u32,
    max: u32,
) -> Result<Option<u32>, ApiError> {
    let Some(raw) = set(value) else {
        return Ok(None);
    };
    raw.trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .map(Some)
        .ok_or_else(|| {
            ApiError::misconfigured(name, &format!("must be an integer from {min} to {max}"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(
        models: Option<&str>,
        top_k: Option<&str>,
        temperature: Option<&str>,
    ) -> Result<Settings, ApiError> {
        Settings::from_variables(&Variables {
            chat_models: models.map(str::to_string),
            chat_top_k: top_k.map(str::to_string),
            chat_temperature_default: temperature.map(str::to_string),
            ..Variables::default()
        })
    }

    fn with(name: &str, value: &str) -> Result<Settings, ApiError> {
        let mut variables = Variables::default();
        variables.set(name, Some(value.to_string()));
        Settings::from_variables(&variables)
    }

    #[test]
    fn every_named_variable_can_be_set() {
        for name in Variables::NAMES {
            let mut variables = Variables::default();
            variables.set(name, Some("bad value".into()));
            let error = Settings::from_variables(&variables).err();
            // chat_models accepts any text as a model id.
            if name != "chat_models" {
                let error = error.unwrap_or_else(|| panic!("{name} ignored"));
                assert!(error.message.contains(name), "{}", error.message);
            }
        }
    }

    #[test]
    fn prompt_budget_and_tokenizer_are_configurable() {
        let defaults = Settings::from_variables(&Variables::default()).unwrap();
        assert_eq!(defaults.max_prompt_tokens, DEFAULT_MAX_PROMPT_TOKENS);
        assert_eq!(defaults.tokenizer, "o200k_base");
        assert_eq!(
            with("chat_max_prompt_tokens", "900")
                .unwrap()
                .max_prompt_tokens,
            900
        );
        assert_eq!(
            with("chat_tokenizer", " cl100k_base ").unwrap().tokenizer,
            "cl100k_base"
        );
        assert!(with("chat_max_prompt_tokens", "0").is_err());
        assert!(with("chat_tokenizer", "p50k_base").is_err());
    }

    #[test]
    fn quotas_are_unlimited_unless_set_above_zero() {
        let defaults = Settings::from_variables(&Variables::default()).unwrap();
        assert_eq!(
            (defaults.requests_per_minute, defaults.tokens_per_minute),
            (None, None)
        );
        assert_eq!(
            with("quota_requests_per_minute", "0")
                .unwrap()
                .requests_per_minute,
            None
        );
        assert_eq!(
            with("quota_requests_per_minute", "60")
                .unwrap()
                .requests_per_minute,
            Some(60)
        );
        assert_eq!(
            with("quota_tokens_per_minute", "1000")
                .unwrap()
                .tokens_per_minute,
            Some(1000)
        );
        assert!(with("quota_tokens_per_minute", "-1").is_err());
    }

    #[test]
    fn unset_and_blank_variables_take_defaults() {
        for blank in [None, Some(""), Some("  ")] {
            let settings = settings(blank, blank, blank).unwrap();
            assert_eq!(settings.models, vec!["chatgate-rag".to_string()]);
            assert_eq!(settings.top_k, 4);
            assert_eq!(settings.default_temperature, None);
        }
    }

    #[test]
    fn models_are_trimmed_and_deduplicated_in_order() {
        let settings = settings(Some(" a , b,,a,c "), None, None).unwrap();
        assert_eq!(settings.models, vec!["a", "b", "c"]);
    }

    #[test]
    fn a_models_list_of_only_commas_is_a_configuration_error() {
        assert_eq!(settings(Some(" , ,"), None, None).unwrap_err().status, 500);
    }

    #[test]
    fn top_k_and_temperature_are_parsed_and_bounded() {
        let ok = settings(None, Some("8"), Some("0.2")).unwrap();
        assert_eq!((ok.top_k, ok.default_temperature), (8, Some(0.2)));
        for bad in ["0", "51", "-1", "four"] {
            let error = settings(None, Some(bad), None).unwrap_err();
            assert_eq!(error.status, 500);
            assert!(error.message.contains("chat_top_k"));
        }
        for bad in ["3", "-0.5", "warm"] {
            assert_eq!(settings(None, None, Some(bad)).unwrap_err().status, 500);
        }
    }

    #[test]
    fn default_model_leaves_the_choice_to_the_provider() {
        let settings = settings(Some("chatgate-rag,gpt-4o"), None, None).unwrap();
        let expected = ModelChoice {
            id: "chatgate-rag".into(),
            provider_model: None,
        };
        assert_eq!(settings.resolve_model(None).unwrap(), expected);
        assert_eq!(
            settings.resolve_model(Some("chatgate-rag")).unwrap(),
            expected
        );
    }

    #[test]
    fn other_listed_models_are_passed_to_the_provider() {
        let settings = settings(Some("chatgate-rag,gpt-4o"), None, None).unwrap();
        assert_eq!(
            settings.resolve_model(Some("gpt-4o")).unwrap(),
            ModelChoice {
                id: "gpt-4o".into(),
                provider_model: Some("gpt-4o".into())
            }
        );
    }

    #[test]
    fn unlisted_model_is_404_model_not_found() {
        let settings = settings(None, None, None).unwrap();
        let error = settings.resolve_model(Some("gpt-5")).unwrap_err();
        assert_eq!((error.status, error.code), (404, "model_not_found"));
        assert_eq!(error.param.as_deref(), Some("model"));
    }
}
