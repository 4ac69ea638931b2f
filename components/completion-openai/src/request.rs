//! The upstream HTTP request for one completion: URL, headers and JSON body.

use crate::config::{Config, Flavor, is_deployment_name};
use crate::types::{CompletionError, Message, Options};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamRequest {
    pub url: String,
    /// Header names are lowercase. The credential header, if any, is among them.
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// The model (OpenAI) or deployment (Azure) asked for; reported when the upstream
    /// does not say which model answered.
    pub model: String,
}

impl UpstreamRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Serialize)]
struct ChatRequestBody<'a> {
    model: &'a str,
    messages: Vec<ChatMessage<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(Serialize)]
struct ChatMessage<'a> {
    role: &'static str,
    content: &'a str,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

const USER_AGENT: &str = concat!("chatgate-completion-openai/", env!("CARGO_PKG_VERSION"));

pub fn build_request(
    config: &Config,
    messages: &[Message],
    options: &Options,
    stream: bool,
) -> Result<UpstreamRequest, CompletionError> {
    if messages.is_empty() {
        return Err(CompletionError::InvalidRequest(
            "at least one message is required".into(),
        ));
    }
    if options.temperature.is_some_and(|t| !t.is_finite()) {
        // serde_json would silently write NaN or infinity as `null`.
        return Err(CompletionError::InvalidRequest(
            "temperature must be a finite number".into(),
        ));
    }
    let model = match options.model.as_deref() {
        None => config.default_model.as_str(),
        Some(model) if model.trim().is_empty() => {
            return Err(CompletionError::InvalidRequest(
                "model must not be empty".into(),
            ));
        }
        Some(model) => model,
    };

    let (url, credential_header) = match &config.flavor {
        Flavor::OpenAi { path_prefix } => (
            format!("{}{}/chat/completions", config.origin, path_prefix),
            config
                .api_key
                .as_ref()
                .map(|key| ("authorization", format!("Bearer {}", key.expose()))),
        ),
        Flavor::Azure { api_version } => {
            if !is_deployment_name(model) {
                return Err(CompletionError::InvalidRequest(
                    "model must be an Azure deployment name (letters, digits, `-`, `_`, `.`)"
                        .into(),
                ));
            }
            (
                format!(
                    "{}/openai/deployments/{model}/chat/completions?api-version={api_version}",
                    config.origin
                ),
                config
                    .api_key
                    .as_ref()
                    .map(|key| ("api-key", key.expose().to_string())),
            )
        }
    };

    let body = ChatRequestBody {
        model,
        messages: messages
            .iter()
            .map(|m| ChatMessage {
                role: m.role.as_openai(),
                content: &m.content,
            })
            .collect(),
        temperature: options.temperature,
        max_tokens: options.max_tokens,
        stop: &options.stop,
        stream,
        stream_options: stream.then_some(StreamOptions {
            include_usage: true,
        }),
    };
    let body = serde_json::to_vec(&body)
        .map_err(|e| CompletionError::Internal(format!("could not encode the request: {e}")))?;

    let accept = if stream {
        "text/event-stream"
    } else {
        "application/json"
    };
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", accept.to_string()),
        ("user-agent", USER_AGENT.to_string()),
    ];
    headers.extend(credential_header);

    Ok(UpstreamRequest {
        url,
        headers,
        body,
        model: model.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{API_FLAVOR, API_KEY, MODEL, ORIGIN, PATH_PREFIX, VariableValue};
    use crate::types::Role;
    use serde_json::{Value, json};

    fn config(vars: &[(&str, &str)]) -> Config {
        Config::from_variables(|name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| VariableValue::Value(v.to_string()))
                .unwrap_or(VariableValue::Missing)
        })
        .unwrap()
    }

    fn conversation() -> Vec<Message> {
        vec![
            Message {
                role: Role::System,
                content: "Answer from the sources.".into(),
            },
            Message {
                role: Role::User,
                content: "What is a \"zone\"?".into(),
            },
            Message {
                role: Role::Assistant,
                content: "A zone is...".into(),
            },
        ]
    }

    fn body_json(request: &UpstreamRequest) -> Value {
        serde_json::from_slice(&request.body).unwrap()
    }

    #[test]
    fn openai_non_streaming_request() {
        let config = config(&[(API_KEY, "sk-test")]);
        let options = Options {
            model: None,
            temperature: Some(0.25),
            max_tokens: Some(256),
            stop: vec!["\n\n".into()],
        };
        let request = build_request(&config, &conversation(), &options, false).unwrap();
        assert_eq!(request.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(request.header("authorization"), Some("Bearer sk-test"));
        assert_eq!(request.header("api-key"), None);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("accept"), Some("application/json"));
        assert_eq!(request.model, "gpt-4o-mini");
        assert_eq!(
            body_json(&request),
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Answer from the sources."},
                    {"role": "user", "content": "What is a \"zone\"?"},
                    {"role": "assistant", "content": "A zone is..."},
                ],
                "temperature": 0.25,
                "max_tokens": 256,
                "stop": ["\n\n"],
                "stream": false,
            })
        );
    }

    #[test]
    fn openai_streaming_request_asks_for_usage() {
        let config = config(&[(API_KEY, "sk-test")]);
        let options = Options {
            model: Some("gpt-4.1".into()),
            ..Options::default()
        };
        let request = build_request(&config, &conversation()[1..2], &options, true).unwrap();
        assert_eq!(request.header("accept"), Some("text/event-stream"));
        assert_eq!(request.model, "gpt-4.1");
        assert_eq!(
            body_json(&request),
            json!({
                "model": "gpt-4.1",
                "messages": [{"role": "user", "content": "What is a \"zone\"?"}],
                "stream": true,
                "stream_options": {"include_usage": true},
            })
        );
    }

    #[test]
    fn temperature_is_written_as_the_shortest_decimal() {
        let options = Options {
            temperature: Some(0.7),
            ..Options::default()
        };
        let request = build_request(&config(&[]), &conversation(), &options, false).unwrap();
        let text = String::from_utf8(request.body).unwrap();
        assert!(text.contains("\"temperature\":0.7,"), "{text}");
    }

    #[test]
    fn local_server_without_key_gets_no_credential() {
        let config = config(&[(ORIGIN, "http://localhost:11434"), (PATH_PREFIX, "/v1")]);
        let request = build_request(&config, &conversation(), &Options::default(), false).unwrap();
        assert_eq!(request.url, "http://localhost:11434/v1/chat/completions");
        assert_eq!(request.header("authorization"), None);
        assert_eq!(request.header("api-key"), None);
    }

    #[test]
    fn azure_request_uses_deployment_path_and_api_key_header() {
        let config = config(&[
            (ORIGIN, "https://contoso.openai.azure.com"),
            (API_FLAVOR, "azure"),
            (API_KEY, "azure-key"),
            (MODEL, "chat-default"),
        ]);
        let request = build_request(&config, &conversation(), &Options::default(), false).unwrap();
        assert_eq!(
            request.url,
            "https://contoso.openai.azure.com/openai/deployments/chat-default/chat/completions?api-version=2024-10-21"
        );
        assert_eq!(request.header("api-key"), Some("azure-key"));
        assert_eq!(request.header("authorization"), None);
        assert_eq!(body_json(&request)["model"], "chat-default");

        let options = Options {
            model: Some("gpt-4o-eu".into()),
            ..Options::default()
        };
        let request = build_request(&config, &conversation(), &options, true).unwrap();
        assert!(
            request
                .url
                .contains("/openai/deployments/gpt-4o-eu/chat/completions?"),
            "{}",
            request.url
        );
        assert_eq!(body_json(&request)["stream_options"]["include_usage"], true);
    }

    #[test]
    fn azure_rejects_deployment_names_that_would_change_the_path() {
        let config = config(&[(API_FLAVOR, "azure")]);
        for model in ["../../admin", "a b", "dep?x=1", "dép"] {
            let options = Options {
                model: Some(model.into()),
                ..Options::default()
            };
            assert!(matches!(
                build_request(&config, &conversation(), &options, false),
                Err(CompletionError::InvalidRequest(_))
            ));
        }
    }

    #[test]
    fn invalid_options_are_rejected_before_sending() {
        let config = config(&[]);
        assert!(matches!(
            build_request(&config, &[], &Options::default(), false),
            Err(CompletionError::InvalidRequest(_))
        ));
        let nan = Options {
            temperature: Some(f32::NAN),
            ..Options::default()
        };
        assert!(matches!(
            build_request(&config, &conversation(), &nan, false),
            Err(CompletionError::InvalidRequest(_))
        ));
        let blank_model = Options {
            model: Some("  ".into()),
            ..Options::default()
        };
        assert!(matches!(
            build_request(&config, &conversation(), &blank_model, false),
            Err(CompletionError::InvalidRequest(_))
        ));
    }
}
