//! The upstream HTTP request for one completion: URL, headers and JSON body.

use crate::config::{Flavor, Target, is_deployment_name};
use chatgate_rag::completion::{CompletionError, Message, Options};
use serde::Serialize;
use serde_json::Value;

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
    top_p: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    stop: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    seed: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
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

/// Refuses what no upstream could be sent, before anything is sent anywhere.
pub fn validate(
    flavor: &Flavor,
    messages: &[Message],
    options: &Options,
) -> Result<(), CompletionError> {
    let invalid = |message: &str| Err(CompletionError::invalid_request(message));
    if messages.is_empty() {
        return invalid("at least one message is required");
    }
    // serde_json would silently write NaN or infinity as `null`.
    let invalid_parameter =
        |param: &str, message: &str| Err(CompletionError::invalid_parameter(param, message));
    if options.temperature.is_some_and(|t| !t.is_finite()) {
        return invalid_parameter("temperature", "temperature must be a finite number");
    }
    if options.top_p.is_some_and(|p| !p.is_finite()) {
        return invalid_parameter("top_p", "top_p must be a finite number");
    }
    if let Some(model) = options.model.as_deref() {
        if model.trim().is_empty() {
            return invalid("model must not be empty");
        }
        if let Flavor::Azure { .. } = flavor
            && !is_deployment_name(model)
        {
            return invalid(
                "model must be an Azure deployment name (letters, digits, `-`, `_`, `.`)",
            );
        }
    }
    response_format(options)?;
    Ok(())
}

/// `response_format` parsed, so that it is sent as the object it is.
fn response_format(options: &Options) -> Result<Option<Value>, CompletionError> {
    let Some(text) = options.response_format.as_deref() else {
        return Ok(None);
    };
    match serde_json::from_str::<Value>(text) {
        Ok(format @ Value::Object(_)) => Ok(Some(format)),
        _ => Err(CompletionError::invalid_parameter(
            "response_format",
            "response_format must be a JSON object such as {\"type\": \"json_object\"}",
        )),
    }
}

/// The request for `target`. `bearer_token` (managed identity) replaces the
/// endpoint's API key.
pub fn build_request(
    flavor: &Flavor,
    target: &Target,
    bearer_token: Option<&str>,
    messages: &[Message],
    options: &Options,
    stream: bool,
) -> Result<UpstreamRequest, CompletionError> {
    validate(flavor, messages, options)?;
    let model = target.model.as_str();
    let origin = &target.endpoint.origin;
    let api_key = target.endpoint.api_key.as_ref().map(|key| key.expose());

    let url = match flavor {
        Flavor::OpenAi { path_prefix } => format!("{origin}{path_prefix}/chat/completions"),
        Flavor::Azure { api_version } => {
            if !is_deployment_name(model) {
                return Err(CompletionError::invalid_request(
                    "model must be an Azure deployment name (letters, digits, `-`, `_`, `.`)",
                ));
            }
            format!(
                "{origin}/openai/deployments/{model}/chat/completions?api-version={api_version}"
            )
        }
    };
    let credential_header = match (bearer_token, api_key, flavor) {
        (Some(token), _, _) => Some(("authorization", format!("Bearer {token}"))),
        (None, Some(key), Flavor::OpenAi { .. }) => {
            Some(("authorization", format!("Bearer {key}")))
        }
        (None, Some(key), Flavor::Azure { .. }) => Some(("api-key", key.to_string())),
        (None, None, _) => None,
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
        top_p: options.top_p,
        max_tokens: options.max_tokens,
        stop: &options.stop,
        seed: options.seed,
        response_format: response_format(options)?,
        user: options.user.as_deref(),
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
    use crate::config::{
        API_FLAVOR, API_KEY, AUTH, Config, FAILOVER_API_KEY, FAILOVER_ORIGIN, MODEL, ORIGIN,
        PATH_PREFIX, TOKEN_ORIGIN, VariableValue,
    };
    use chatgate_rag::completion::Role;
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

    /// The request for the first target, as the adapter builds it.
    fn build(
        config: &Config,
        messages: &[Message],
        options: &Options,
        stream: bool,
    ) -> Result<UpstreamRequest, CompletionError> {
        let target = config.targets(options.model.as_deref()).remove(0);
        build_request(&config.flavor, &target, None, messages, options, stream)
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
            ..Options::default()
        };
        let request = build(&config, &conversation(), &options, false).unwrap();
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
        let request = build(&config, &conversation()[1..2], &options, true).unwrap();
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
        let request = build(&config(&[]), &conversation(), &options, false).unwrap();
        let text = String::from_utf8(request.body).unwrap();
        assert!(text.contains("\"temperature\":0.7,"), "{text}");
    }

    #[test]
    fn local_server_without_key_gets_no_credential() {
        let config = config(&[(ORIGIN, "http://localhost:11434"), (PATH_PREFIX, "/v1")]);
        let request = build(&config, &conversation(), &Options::default(), false).unwrap();
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
        let request = build(&config, &conversation(), &Options::default(), false).unwrap();
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
        let request = build(&config, &conversation(), &options, true).unwrap();
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
                build(&config, &conversation(), &options, false),
                Err(CompletionError::InvalidRequest { param: None, .. })
            ));
        }
    }

    #[test]
    fn invalid_options_are_rejected_before_sending() {
        let config = config(&[]);
        assert!(matches!(
            build(&config, &[], &Options::default(), false),
            Err(CompletionError::InvalidRequest { param: None, .. })
        ));
        let nan = Options {
            temperature: Some(f32::NAN),
            ..Options::default()
        };
        assert!(matches!(
            build(&config, &conversation(), &nan, false),
            Err(CompletionError::InvalidRequest { param: Some(param), .. }) if param == "temperature"
        ));
        let blank_model = Options {
            model: Some("  ".into()),
            ..Options::default()
        };
        assert!(matches!(
            build(&config, &conversation(), &blank_model, false),
            Err(CompletionError::InvalidRequest { param: None, .. })
        ));
    }

    #[test]
    fn sampling_format_and_user_options_are_passed_through() {
        let options = Options {
            top_p: Some(0.5),
            seed: Some(-42),
            response_format: Some(
                r#"{"type":"json_schema","json_schema":{"name":"a","strict":true,"schema":{"type":"object"}}}"#
                    .into(),
            ),
            user: Some("user-7".into()),
            ..Options::default()
        };
        let request = build(&config(&[]), &conversation(), &options, false).unwrap();
        let body = body_json(&request);
        assert_eq!(body["top_p"], 0.5);
        assert_eq!(body["seed"], -42);
        assert_eq!(
            body["response_format"],
            json!({"type": "json_schema", "json_schema": {"name": "a", "strict": true, "schema": {"type": "object"}}})
        );
        assert_eq!(body["user"], "user-7");
    }

    #[test]
    fn response_format_must_be_a_json_object_and_top_p_finite() {
        for format in ["json_object", "[1]", "{\"type\":"] {
            let options = Options {
                response_format: Some(format.into()),
                ..Options::default()
            };
            assert!(matches!(
                validate(&config(&[]).flavor, &conversation(), &options),
                Err(CompletionError::InvalidRequest { param: Some(param), .. }) if param == "response_format"
            ));
        }
        let options = Options {
            top_p: Some(f32::INFINITY),
            ..Options::default()
        };
        assert!(matches!(
            validate(&config(&[]).flavor, &conversation(), &options),
            Err(CompletionError::InvalidRequest { param: Some(param), .. }) if param == "top_p"
        ));
    }

    #[test]
    fn a_managed_identity_token_is_sent_as_bearer_for_both_flavors() {
        for flavor in ["openai", "azure"] {
            let config = config(&[
                (API_FLAVOR, flavor),
                (AUTH, "managed-identity"),
                (TOKEN_ORIGIN, "http://169.254.169.254"),
                (API_KEY, "ignored-key"),
            ]);
            let target = config.targets(None).remove(0);
            let request = build_request(
                &config.flavor,
                &target,
                Some("entra-token"),
                &conversation(),
                &Options::default(),
                false,
            )
            .unwrap();
            assert_eq!(request.header("authorization"), Some("Bearer entra-token"));
            assert_eq!(request.header("api-key"), None);
        }
    }

    #[test]
    fn the_failover_target_gets_its_own_origin_and_key() {
        let config = config(&[
            (API_FLAVOR, "azure"),
            (ORIGIN, "https://eastus.example"),
            (FAILOVER_ORIGIN, "https://westus.example"),
            (API_KEY, "east-key"),
            (FAILOVER_API_KEY, "west-key"),
            (MODEL, "chat"),
        ]);
        let targets = config.targets(None);
        let request = build_request(
            &config.flavor,
            &targets[1],
            None,
            &conversation(),
            &Options::default(),
            false,
        )
        .unwrap();
        assert!(
            request
                .url
                .starts_with("https://westus.example/openai/deployments/chat/"),
            "{}",
            request.url
        );
        assert_eq!(request.header("api-key"), Some("west-key"));
    }
}
