//! Per-request configuration from Spin variables.

use crate::error::ApiError;
use crate::request::MAX_TEMPERATURE;

pub const DEFAULT_MODEL: &str = "chatgate-rag";
pub const DEFAULT_TOP_K: u32 = 4;
/// More passages than this would crowd the model's context for little gain.
pub const MAX_TOP_K: u32 = 50;

/// Variable values as read; `None` (or blank) means unset.
#[derive(Debug, Default, Clone)]
pub struct Variables {
    pub chat_models: Option<String>,
    pub chat_top_k: Option<String>,
    pub chat_temperature_default: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Model ids offered to clients; never empty, first is the default.
    pub models: Vec<String>,
    pub top_k: u32,
    pub default_temperature: Option<f32>,
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

        let top_k = match set(&variables.chat_top_k) {
            None => DEFAULT_TOP_K,
            Some(raw) => raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|k| (1..=MAX_TOP_K).contains(k))
                .ok_or_else(|| {
                    ApiError::misconfigured(
                        "chat_top_k",
                        &format!("must be an integer from 1 to {MAX_TOP_K}"),
                    )
                })?,
        };

        let default_temperature = match set(&variables.chat_temperature_default) {
            None => None,
            Some(raw) => Some(
                raw.trim()
                    .parse::<f32>()
                    .ok()
                    .filter(|t| (0.0..=MAX_TEMPERATURE as f32).contains(t))
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
        })
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
