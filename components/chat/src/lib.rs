//! `chat`: the OpenAI-compatible chat endpoint at the end of the middleware
//! chain. It retrieves passages for the latest user message, grounds the
//! conversation on them with a system prompt, and asks the completion provider
//! for the answer, returned with Azure "on your data" citations.
//!
//! Everything but the `wasm` adapter is plain Rust tested natively.

pub mod budget;
pub mod domain;
pub mod error;
pub mod genai;
pub mod prompt;
pub mod quota;
pub mod request;
pub mod response;
pub mod routes;
pub mod settings;
pub mod sse;
pub mod tokens;

use domain::CompletionOptions;
use request::ChatRequest;
use settings::{ModelChoice, Settings};

/// The provider options for `request`: its own settings first, then the
/// operator's defaults.
pub fn completion_options(
    request: &ChatRequest,
    model: &ModelChoice,
    settings: &Settings,
) -> CompletionOptions {
    CompletionOptions {
        model: model.provider_model.clone(),
        temperature: request.temperature.or(settings.default_temperature),
        top_p: request.top_p,
        max_tokens: request.max_tokens,
        stop: request.stop.clone(),
        seed: request.seed,
        response_format: request
            .response_format
            .as_ref()
            .map(|format| format.to_string()),
        user: request.user.clone(),
        traceparent: None,
    }
}

#[cfg(target_arch = "wasm32")]
// The generated bindings (`wit_bindgen::generate!`, `export!`) are unsafe glue;
// nothing else in the crate may use `unsafe` (workspace lint).
#[allow(unsafe_code)]
mod wasm;

#[cfg(test)]
mod tests {
    use super::*;
    use settings::Variables;

    fn settings(temperature_default: Option<&str>) -> Settings {
        Settings::from_variables(&Variables {
            chat_models: Some("chatgate-rag,gpt-4o".into()),
            chat_temperature_default: temperature_default.map(str::to_string),
            ..Variables::default()
        })
        .unwrap()
    }

    fn request(body: serde_json::Value) -> ChatRequest {
        request::parse_chat_request(body.to_string().as_bytes()).unwrap()
    }

    #[test]
    fn options_carry_the_clients_settings() {
        let settings = settings(Some("0.1"));
        let request = request(serde_json::json!({
            "model": "gpt-4o", "messages": [{"role": "user", "content": "q"}],
            "temperature": 0.9, "max_tokens": 50, "stop": "END", "top_p": 0.5,
            "seed": 7, "user": "u-9", "response_format": {"type": "json_object"}
        }));
        let model = settings.resolve_model(request.model.as_deref()).unwrap();
        assert_eq!(
            completion_options(&request, &model, &settings),
            CompletionOptions {
                model: Some("gpt-4o".into()),
                temperature: Some(0.9),
                top_p: Some(0.5),
                max_tokens: Some(50),
                stop: vec!["END".into()],
                seed: Some(7),
                response_format: Some(r#"{"type":"json_object"}"#.into()),
                user: Some("u-9".into()),
                traceparent: None,
            }
        );
    }

    #[test]
    fn operator_default_temperature_applies_only_when_the_client_sets_none() {
        let request = request(serde_json::json!({"messages": [{"role": "user", "content": "q"}]}));
        let with_default = settings(Some("0.1"));
        let model = with_default.resolve_model(None).unwrap();
        let options = completion_options(&request, &model, &with_default);
        assert_eq!((options.model, options.temperature), (None, Some(0.1)));

        let without_default = settings(None);
        assert_eq!(
            completion_options(&request, &model, &without_default).temperature,
            None
        );
    }
}
