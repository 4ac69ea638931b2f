//! Parsing and validation of OpenAI `POST /v1/chat/completions` request bodies.
//!
//! Each known field is deserialized on its own by serde into its typed form, so
//! that a wrong field is reported with `param` naming exactly that field
//! (`messages[2].content[0].type`), as OpenAI does. Unknown fields are ignored.

use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::domain::{ChatMessage, Role};
use crate::error::ApiError;

/// The contract's limits (`chatgate-rag` owns them, every side checks the same ones),
/// re-exported for the tests that generate requests at the edge of them.
pub use chatgate_rag::completion::{MAX_STOP_SEQUENCES, MAX_TEMPERATURE};
pub use chatgate_rag::retriever::{MAX_FILTERS, MAX_TOP_K};

/// Bounds the memory one request can make us hold; long conversations stay far below it.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// A validated chat completion request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The model the client asked for; `None` means the gateway default.
    pub model: Option<String>,
    /// Never empty, and always holds a user message with text.
    pub messages: Vec<ChatMessage>,
    pub temperature: Option<f32>,
    /// `max_completion_tokens`, or the older `max_tokens` when only that is set.
    pub max_tokens: Option<u32>,
    pub stop: Vec<String>,
    pub stream: bool,
    /// `stream_options.include_usage`: append a usage chunk to the stream.
    pub include_usage: bool,
    pub user: Option<String>,
    pub top_p: Option<f32>,
    pub seed: Option<i64>,
    /// `response_format` as the client sent it; `None` for plain text.
    pub response_format: Option<Value>,
    /// chatgate's own options, under the `chatgate` field (`extra_body` in the SDKs).
    pub grounding: Grounding,
}

/// How an answer is grounded, chosen by the `chatgate` request field:
/// `{"chatgate": {"retrieval": false, "top_k": 3, "filters": [{"field": "source", "value": "data/"}]}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grounding {
    /// `false` sends the conversation to the model as is, without sources.
    pub retrieval: bool,
    /// Overrides the operator's `chat_top_k`.
    pub top_k: Option<u32>,
    pub filters: Vec<Filter>,
}

impl Default for Grounding {
    fn default() -> Self {
        Self {
            retrieval: true,
            top_k: None,
            filters: Vec::new(),
        }
    }
}

/// A metadata filter passed to the retriever.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Filter {
    pub field: String,
    pub value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WireGrounding {
    retrieval: Option<bool>,
    top_k: Option<u32>,
    filters: Option<Vec<Filter>>,
}

/// Fields the SDKs can send that this gateway cannot honour: answering without
/// them would silently change what the client asked for, so they are refused.
/// Each is refused only when set to something other than its neutral value.
const UNSUPPORTED_FIELDS: [(&str, &str); 11] = [
    ("tools", "Tool calling is not supported by this gateway."),
    (
        "tool_choice",
        "Tool calling is not supported by this gateway.",
    ),
    (
        "functions",
        "Function calling is not supported by this gateway.",
    ),
    (
        "function_call",
        "Function calling is not supported by this gateway.",
    ),
    (
        "logprobs",
        "Log probabilities are not supported by this gateway.",
    ),
    (
        "top_logprobs",
        "Log probabilities are not supported by this gateway.",
    ),
    (
        "logit_bias",
        "'logit_bias' is not supported by this gateway.",
    ),
    (
        "presence_penalty",
        "'presence_penalty' is not supported by this gateway.",
    ),
    (
        "frequency_penalty",
        "'frequency_penalty' is not supported by this gateway.",
    ),
    ("audio", "Audio output is not supported by this gateway."),
    (
        "prediction",
        "Predicted outputs are not supported by this gateway.",
    ),
];

/// `null`, `false`, `0`, `[]`, `{}` and `"none"` ask for nothing.
fn is_neutral(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(false) => true,
        Value::Number(number) => number.as_f64() == Some(0.0),
        Value::Array(items) => items.is_empty(),
        Value::Object(fields) => fields.is_empty(),
        Value::String(text) => text == "none",
        Value::Bool(true) => false,
    }
}

impl ChatRequest {
    /// The text to search the documents for: the latest user message.
    pub fn retrieval_query(&self) -> Option<&str> {
        latest_user_text(&self.messages)
    }
}

fn latest_user_text(messages: &[ChatMessage]) -> Option<&str> {
    messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .map(|m| m.content.as_str())
        .filter(|text| !text.trim().is_empty())
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<Value>),
}

#[derive(Deserialize)]
struct WirePart {
    #[serde(rename = "type")]
    kind: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum WireStop {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct WireStreamOptions {
    include_usage: Option<bool>,
}

pub fn parse_chat_request(body: &[u8]) -> Result<ChatRequest, ApiError> {
    let document: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            400,
            crate::error::INVALID_REQUEST,
            "invalid_json",
            format!("The request body is not valid JSON: {e}."),
        )
    })?;
    let Value::Object(mut fields) = document else {
        return Err(ApiError::new(
            400,
            crate::error::INVALID_REQUEST,
            "invalid_type",
            "The request body must be a JSON object.",
        ));
    };

    let model = take::<String>(&mut fields, "model", "model", "a string")?;
    if model.as_deref().is_some_and(|m| m.trim().is_empty()) {
        return Err(ApiError::invalid(
            "model",
            "invalid_value",
            "'model' must not be empty.",
        ));
    }

    let messages = parse_messages(&mut fields)?;

    let temperature = match take::<f64>(&mut fields, "temperature", "temperature", "a number")? {
        // Compared before narrowing, so that 2.0000001 is refused rather than rounded in.
        Some(t) if !(0.0..=f64::from(MAX_TEMPERATURE)).contains(&t) => {
            return Err(ApiError::invalid(
                "temperature",
                "invalid_value",
                format!("'temperature' must be between 0 and {MAX_TEMPERATURE}, got {t}."),
            ));
        }
        other => other.map(|t| t as f32),
    };

    let max_completion_tokens = token_limit(&mut fields, "max_completion_tokens")?;
    let max_tokens = token_limit(&mut fields, "max_tokens")?;

    let stop = parse_stop(&mut fields)?;

    let stream = take::<bool>(&mut fields, "stream", "stream", "a boolean")?.unwrap_or(false);
    let include_usage = take::<WireStreamOptions>(
        &mut fields,
        "stream_options",
        "stream_options",
        "an object like {\"include_usage\": true}",
    )?
    .and_then(|options| options.include_usage)
    .unwrap_or(false);

    if let Some(n) = take::<i64>(&mut fields, "n", "n", "an integer")?
        && n != 1
    {
        return Err(ApiError::invalid(
            "n",
            "unsupported_value",
            format!("Only n=1 is supported, got n={n}."),
        ));
    }

    let user = take::<String>(&mut fields, "user", "user", "a string")?;

    let top_p = match take::<f64>(&mut fields, "top_p", "top_p", "a number")? {
        Some(p) if !(0.0..=1.0).contains(&p) => {
            return Err(ApiError::invalid(
                "top_p",
                "invalid_value",
                format!("'top_p' must be between 0 and 1, got {p}."),
            ));
        }
        other => other.map(|p| p as f32),
    };
    let seed = take::<i64>(&mut fields, "seed", "seed", "an integer")?;
    let response_format = parse_response_format(&mut fields)?;
    check_modalities(&mut fields)?;
    for (name, reason) in UNSUPPORTED_FIELDS {
        if let Some(value) = fields.get(name)
            && !is_neutral(value)
        {
            return Err(ApiError::invalid(name, "unsupported_parameter", reason));
        }
    }
    let grounding = parse_grounding(&mut fields)?;

    Ok(ChatRequest {
        model,
        messages,
        temperature,
        max_tokens: max_completion_tokens.or(max_tokens),
        stop,
        stream,
        include_usage,
        user,
        top_p,
        seed,
        response_format,
        grounding,
    })
}

fn parse_response_format(fields: &mut Map<String, Value>) -> Result<Option<Value>, ApiError> {
    let Some(format) = take::<Map<String, Value>>(
        fields,
        "response_format",
        "response_format",
        "an object like {\"type\": \"json_object\"}",
    )?
    else {
        return Ok(None);
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Value::Object(format))),
        Some("json_schema") => {
            if format
                .get("json_schema")
                .and_then(|schema| schema.get("name"))
                .and_then(Value::as_str)
                .is_none()
            {
                return Err(missing("response_format.json_schema.name"));
            }
            Ok(Some(Value::Object(format)))
        }
        None => Err(missing("response_format.type")),
        Some(other) => Err(ApiError::invalid(
            "response_format.type",
            "invalid_value",
            format!(
                "Unsupported response_format type '{}'; use text, json_object or json_schema.",
                crate::error::clip(other)
            ),
        )),
    }
}

/// Only text answers exist here; `["text"]` is accepted as the no-op it is.
fn check_modalities(fields: &mut Map<String, Value>) -> Result<(), ApiError> {
    let modalities =
        take::<Vec<String>>(fields, "modalities", "modalities", "an array of strings")?
            .unwrap_or_default();
    if modalities.iter().any(|modality| modality != "text") {
        return Err(ApiError::invalid(
            "modalities",
            "unsupported_value",
            "Only the 'text' modality is supported by this gateway.",
        ));
    }
    Ok(())
}

fn parse_grounding(fields: &mut Map<String, Value>) -> Result<Grounding, ApiError> {
    let Some(wire) = take::<WireGrounding>(
        fields,
        "chatgate",
        "chatgate",
        "an object with optional 'retrieval' (boolean), 'top_k' (integer) and 'filters' ([{\"field\", \"value\"}])",
    )?
    else {
        return Ok(Grounding::default());
    };
    if let Some(top_k) = wire.top_k
        && !(1..=MAX_TOP_K).contains(&top_k)
    {
        return Err(ApiError::invalid(
            "chatgate.top_k",
            "invalid_value",
            format!("'chatgate.top_k' must be from 1 to {MAX_TOP_K}, got {top_k}."),
        ));
    }
    let filters = wire.filters.unwrap_or_default();
    if filters.len() > MAX_FILTERS {
        return Err(ApiError::invalid(
            "chatgate.filters",
            "invalid_value",
            format!("'chatgate.filters' allows at most {MAX_FILTERS} filters."),
        ));
    }
    Ok(Grounding {
        retrieval: wire.retrieval.unwrap_or(true),
        top_k: wire.top_k,
        filters,
    })
}

/// Removes `name` from `fields` and deserializes it; absent and `null` are `None`.
fn take<T: DeserializeOwned>(
    fields: &mut Map<String, Value>,
    name: &str,
    param: &str,
    expected: &str,
) -> Result<Option<T>, ApiError> {
    match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => typed(value, param, expected).map(Some),
    }
}

fn typed<T: DeserializeOwned>(value: Value, param: &str, expected: &str) -> Result<T, ApiError> {
    T::deserialize(value).map_err(|_| {
        ApiError::invalid(
            param,
            "invalid_type",
            format!("Invalid type for '{param}': expected {expected}."),
        )
    })
}

fn missing(param: &str) -> ApiError {
    ApiError::invalid(
        param,
        "missing_required_parameter",
        format!("Missing required parameter: '{param}'."),
    )
}

fn token_limit(fields: &mut Map<String, Value>, name: &str) -> Result<Option<u32>, ApiError> {
    match take::<i64>(fields, name, name, "an integer")? {
        None => Ok(None),
        Some(limit) => u32::try_from(limit)
            .ok()
            .filter(|limit| *limit >= 1)
            .map(Some)
            .ok_or_else(|| {
                ApiError::invalid(
                    name,
                    "invalid_value",
                    format!("'{name}' must be a positive integer, got {limit}."),
                )
            }),
    }
}

fn parse_stop(fields: &mut Map<String, Value>) -> Result<Vec<String>, ApiError> {
    let stop = match take::<WireStop>(
        fields,
        "stop",
        "stop",
        "a string or an array of up to 4 strings",
    )? {
        None => Vec::new(),
        Some(WireStop::One(sequence)) => vec![sequence],
        Some(WireStop::Many(sequences)) => sequences,
    };
    if stop.len() > MAX_STOP_SEQUENCES {
        return Err(ApiError::invalid(
            "stop",
            "invalid_value",
            format!(
                "'stop' allows at most {MAX_STOP_SEQUENCES} sequences, got {}.",
                stop.len()
            ),
        ));
    }
    if stop.iter().any(String::is_empty) {
        return Err(ApiError::invalid(
            "stop",
            "invalid_value",
            "Stop sequences must not be empty strings.",
        ));
    }
    Ok(stop)
}

fn parse_messages(fields: &mut Map<String, Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let raw = take::<Vec<Value>>(
        fields,
        "messages",
        "messages",
        "an array of message objects",
    )?
    .ok_or_else(|| missing("messages"))?;
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "empty_array",
            "'messages' must contain at least one message.",
        ));
    }
    let messages = raw
        .into_iter()
        .enumerate()
        .map(|(index, value)| parse_message(index, value))
        .collect::<Result<Vec<_>, _>>()?;
    if latest_user_text(&messages).is_none() {
        let problem = if messages.iter().any(|m| m.role == Role::User) {
            "The latest user message must have text: it is the search query."
        } else {
            "'messages' must contain a user message: the latest one is the search query."
        };
        return Err(ApiError::invalid("messages", "invalid_value", problem));
    }
    Ok(messages)
}

fn parse_message(index: usize, value: Value) -> Result<ChatMessage, ApiError> {
    let param = format!("messages[{index}]");
    let mut fields: Map<String, Value> = typed(value, &param, "a message object")?;

    let role_param = format!("{param}.role");
    let role = match take::<String>(&mut fields, "role", &role_param, "a string")?
        .ok_or_else(|| missing(&role_param))?
        .as_str()
    {
        // `developer` is OpenAI's newer name for the system role.
        "system" | "developer" => Role::System,
        "user" => Role::User,
        "assistant" => Role::Assistant,
        other => {
            return Err(ApiError::invalid(
                role_param,
                "invalid_value",
                format!(
                    "Unsupported role '{}'; use system, developer, user or assistant.",
                    crate::error::clip(other)
                ),
            ));
        }
    };

    let content_param = format!("{param}.content");
    let content = match take::<WireContent>(
        &mut fields,
        "content",
        &content_param,
        "a string or an array of text parts",
    )?
    .ok_or_else(|| missing(&content_param))?
    {
        WireContent::Text(text) => text,
        WireContent::Parts(parts) => parts
            .into_iter()
            .enumerate()
            .map(|(part_index, part)| {
                parse_text_part(&format!("{content_param}[{part_index}]"), part)
            })
            .collect::<Result<Vec<_>, _>>()?
            .join("\n"),
    };

    Ok(ChatMessage { role, content })
}

fn parse_text_part(param: &str, value: Value) -> Result<String, ApiError> {
    let part: WirePart = typed(
        value,
        param,
        "an object like {\"type\": \"text\", \"text\": \"...\"}",
    )?;
    let type_param = format!("{param}.type");
    match part.kind.as_deref() {
        None => Err(missing(&type_param)),
        Some("text") => part.text.ok_or_else(|| missing(&format!("{param}.text"))),
        Some(other) => Err(ApiError::invalid(
            type_param,
            "unsupported_value",
            format!(
                "Unsupported content part type '{}'; only 'text' is supported.",
                crate::error::clip(other)
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(body: Value) -> Result<ChatRequest, ApiError> {
        parse_chat_request(body.to_string().as_bytes())
    }

    /// Asserts the body is rejected with 400 for `param` and returns the error.
    fn rejected(body: Value, param: &str) -> ApiError {
        let error = parse(body).expect_err("request should be rejected");
        assert_eq!(error.status, 400, "{error:?}");
        assert_eq!(error.param.as_deref(), Some(param), "{error:?}");
        error
    }

    fn hello() -> Value {
        json!([{"role": "user", "content": "hello"}])
    }

    #[test]
    fn minimal_request_takes_defaults() {
        let request = parse(json!({"messages": hello()})).unwrap();
        assert_eq!(request.model, None);
        assert_eq!(
            request.messages,
            vec![ChatMessage::new(Role::User, "hello")]
        );
        assert_eq!(request.temperature, None);
        assert_eq!(request.max_tokens, None);
        assert!(request.stop.is_empty());
        assert!(!request.stream);
        assert!(!request.include_usage);
    }

    #[test]
    fn full_request_is_parsed_and_unknown_fields_ignored() {
        let request = parse(json!({
            "model": "chatgate-rag",
            "messages": [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": [{"type": "text", "text": "what is"}, {"type": "text", "text": "chatgate?"}], "name": "ann"},
                {"role": "assistant", "content": "A gateway [doc1]."},
                {"role": "user", "content": "and spin?"}
            ],
            "temperature": 0.5,
            "max_tokens": 100,
            "stop": ["\n\n", "END"],
            "stream": true,
            "stream_options": {"include_usage": true},
            "n": 1,
            "user": "u-1",
            "top_p": 0.9,
            "seed": 42,
            "response_format": {"type": "json_object"},
            "presence_penalty": 0,
            "tools": [],
            "metadata": {"team": "a"},
            "chatgate": {"retrieval": false, "top_k": 3, "filters": [{"field": "source", "value": "data/"}]}
        }))
        .unwrap();
        assert_eq!(request.model.as_deref(), Some("chatgate-rag"));
        assert_eq!(
            request.messages,
            vec![
                ChatMessage::new(Role::System, "be brief"),
                ChatMessage::new(Role::User, "what is\nchatgate?"),
                ChatMessage::new(Role::Assistant, "A gateway [doc1]."),
                ChatMessage::new(Role::User, "and spin?"),
            ]
        );
        assert_eq!(request.temperature, Some(0.5));
        assert_eq!(request.max_tokens, Some(100));
        assert_eq!(request.stop, vec!["\n\n".to_string(), "END".to_string()]);
        assert!(request.stream);
        assert!(request.include_usage);
        assert_eq!(request.user.as_deref(), Some("u-1"));
        assert_eq!(request.top_p, Some(0.9));
        assert_eq!(request.seed, Some(42));
        assert_eq!(
            request.response_format,
            Some(json!({"type": "json_object"}))
        );
        assert_eq!(
            request.grounding,
            Grounding {
                retrieval: false,
                top_k: Some(3),
                filters: vec![Filter {
                    field: "source".into(),
                    value: "data/".into()
                }],
            }
        );
        assert_eq!(request.retrieval_query(), Some("and spin?"));
    }

    #[test]
    fn retrieval_is_on_unless_turned_off() {
        assert!(
            parse(json!({"messages": hello()}))
                .unwrap()
                .grounding
                .retrieval
        );
        let on = parse(json!({"messages": hello(), "chatgate": {"top_k": 2}})).unwrap();
        assert!(on.grounding.retrieval);
        rejected(
            json!({"messages": hello(), "chatgate": {"retrieval": "no"}}),
            "chatgate",
        );
        rejected(
            json!({"messages": hello(), "chatgate": {"retreival": false}}),
            "chatgate",
        );
        rejected(
            json!({"messages": hello(), "chatgate": {"top_k": 0}}),
            "chatgate.top_k",
        );
        let many = vec![json!({"field": "title", "value": "x"}); MAX_FILTERS + 1];
        rejected(
            json!({"messages": hello(), "chatgate": {"filters": many}}),
            "chatgate.filters",
        );
    }

    #[test]
    fn plain_text_response_format_is_the_default() {
        let text = parse(json!({"messages": hello(), "response_format": {"type": "text"}}));
        assert_eq!(text.unwrap().response_format, None);
        let schema = json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": {"type": "object"}}});
        let parsed = parse(json!({"messages": hello(), "response_format": schema.clone()}));
        assert_eq!(parsed.unwrap().response_format, Some(schema));
        rejected(
            json!({"messages": hello(), "response_format": {"type": "xml"}}),
            "response_format.type",
        );
        rejected(
            json!({"messages": hello(), "response_format": {"type": "json_schema", "json_schema": {}}}),
            "response_format.json_schema.name",
        );
        rejected(
            json!({"messages": hello(), "response_format": "json"}),
            "response_format",
        );
    }

    #[test]
    fn sampling_fields_are_checked() {
        rejected(json!({"messages": hello(), "top_p": 1.5}), "top_p");
        rejected(json!({"messages": hello(), "seed": 1.5}), "seed");
        let request = parse(json!({"messages": hello(), "top_p": 0, "seed": -7})).unwrap();
        assert_eq!((request.top_p, request.seed), (Some(0.0), Some(-7)));
    }

    #[test]
    fn features_that_cannot_be_honoured_are_refused_not_ignored() {
        for (field, value) in [
            (
                "tools",
                json!([{"type": "function", "function": {"name": "f"}}]),
            ),
            ("tool_choice", json!("required")),
            ("logprobs", json!(true)),
            ("logit_bias", json!({"50256": -100})),
            ("presence_penalty", json!(0.5)),
            ("frequency_penalty", json!(-1)),
            ("audio", json!({"voice": "alloy", "format": "wav"})),
        ] {
            let error = rejected(json!({"messages": hello(), field: value}), field);
            assert_eq!(error.code, "unsupported_parameter");
        }
        for (field, neutral) in [
            ("tools", json!([])),
            ("tool_choice", json!("none")),
            ("logprobs", json!(false)),
            ("frequency_penalty", json!(0.0)),
        ] {
            parse(json!({"messages": hello(), field: neutral})).unwrap();
        }
        parse(json!({"messages": hello(), "modalities": ["text"]})).unwrap();
        rejected(
            json!({"messages": hello(), "modalities": ["text", "audio"]}),
            "modalities",
        );
    }

    #[test]
    fn nulls_mean_absent() {
        let request = parse(json!({
            "messages": hello(), "model": null, "temperature": null, "max_tokens": null,
            "stop": null, "stream": null, "n": null, "user": null, "stream_options": null
        }))
        .unwrap();
        assert_eq!(request.model, None);
        assert!(!request.stream);
    }

    #[test]
    fn single_stop_string_is_one_sequence() {
        let request = parse(json!({"messages": hello(), "stop": "END"})).unwrap();
        assert_eq!(request.stop, vec!["END".to_string()]);
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let request =
            parse(json!({"messages": hello(), "max_tokens": 10, "max_completion_tokens": 20}))
                .unwrap();
        assert_eq!(request.max_tokens, Some(20));
        let request = parse(json!({"messages": hello(), "max_tokens": 10})).unwrap();
        assert_eq!(request.max_tokens, Some(10));
    }

    #[test]
    fn temperature_bounds_are_inclusive() {
        for t in [0.0, 2.0] {
            let request = parse(json!({"messages": hello(), "temperature": t})).unwrap();
            assert_eq!(request.temperature, Some(t as f32));
        }
    }

    #[test]
    fn retrieval_query_is_the_latest_user_message() {
        let request = parse(json!({"messages": [
            {"role": "user", "content": "first"},
            {"role": "assistant", "content": "answer"},
            {"role": "user", "content": "second"},
            {"role": "assistant", "content": "prefill"}
        ]}))
        .unwrap();
        assert_eq!(request.retrieval_query(), Some("second"));
    }

    #[test]
    fn invalid_json_is_400_without_param() {
        let error = parse_chat_request(b"{\"messages\": [").unwrap_err();
        assert_eq!(
            (error.status, error.code, error.param),
            (400, "invalid_json", None)
        );
    }

    #[test]
    fn non_object_body_is_400() {
        let error = parse(json!([1, 2])).unwrap_err();
        assert_eq!((error.status, error.code), (400, "invalid_type"));
    }

    #[test]
    fn messages_are_required_and_non_empty() {
        assert_eq!(
            rejected(json!({}), "messages").code,
            "missing_required_parameter"
        );
        assert_eq!(
            rejected(json!({"messages": []}), "messages").code,
            "empty_array"
        );
        assert_eq!(
            rejected(json!({"messages": "hi"}), "messages").code,
            "invalid_type"
        );
    }

    #[test]
    fn a_user_message_with_text_is_required() {
        rejected(
            json!({"messages": [{"role": "system", "content": "x"}]}),
            "messages",
        );
        rejected(
            json!({"messages": [{"role": "user", "content": "  "}]}),
            "messages",
        );
    }

    #[test]
    fn each_message_field_is_checked() {
        rejected(json!({"messages": ["hi"]}), "messages[0]");
        rejected(json!({"messages": [{"content": "hi"}]}), "messages[0].role");
        rejected(
            json!({"messages": [{"role": 3, "content": "hi"}]}),
            "messages[0].role",
        );
        let error = rejected(
            json!({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}]}),
            "messages[1].role",
        );
        assert!(error.message.contains("tool"));
        rejected(
            json!({"messages": [{"role": "user"}]}),
            "messages[0].content",
        );
        rejected(
            json!({"messages": [{"role": "assistant", "content": null}, {"role": "user", "content": "q"}]}),
            "messages[0].content",
        );
        rejected(
            json!({"messages": [{"role": "user", "content": 5}]}),
            "messages[0].content",
        );
    }

    #[test]
    fn only_text_content_parts_are_accepted() {
        let error = rejected(
            json!({"messages": [{"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://x/y.png"}}
            ]}]}),
            "messages[0].content[1].type",
        );
        assert_eq!(error.code, "unsupported_value");
        rejected(
            json!({"messages": [{"role": "user", "content": [{"text": "x"}]}]}),
            "messages[0].content[0].type",
        );
        rejected(
            json!({"messages": [{"role": "user", "content": [{"type": "text"}]}]}),
            "messages[0].content[0].text",
        );
        rejected(
            json!({"messages": [{"role": "user", "content": ["x"]}]}),
            "messages[0].content[0]",
        );
    }

    #[test]
    fn temperature_must_be_a_number_in_range() {
        rejected(
            json!({"messages": hello(), "temperature": 2.01}),
            "temperature",
        );
        rejected(
            json!({"messages": hello(), "temperature": -0.1}),
            "temperature",
        );
        // Narrowed to f32 this would be exactly 2.0, inside the range.
        assert_eq!(2.000_000_1_f64 as f32, 2.0);
        rejected(
            json!({"messages": hello(), "temperature": 2.000_000_1}),
            "temperature",
        );
        assert_eq!(
            rejected(
                json!({"messages": hello(), "temperature": "hot"}),
                "temperature"
            )
            .code,
            "invalid_type"
        );
    }

    #[test]
    fn token_limits_must_be_positive_integers() {
        for field in ["max_tokens", "max_completion_tokens"] {
            rejected(json!({"messages": hello(), field: 0}), field);
            rejected(json!({"messages": hello(), field: -5}), field);
            rejected(json!({"messages": hello(), field: 1.5}), field);
            rejected(
                json!({"messages": hello(), field: 5_000_000_000_i64}),
                field,
            );
        }
    }

    #[test]
    fn stop_allows_up_to_four_non_empty_strings() {
        parse(json!({"messages": hello(), "stop": ["a", "b", "c", "d"]})).unwrap();
        rejected(
            json!({"messages": hello(), "stop": ["a", "b", "c", "d", "e"]}),
            "stop",
        );
        rejected(json!({"messages": hello(), "stop": [""]}), "stop");
        rejected(json!({"messages": hello(), "stop": [1]}), "stop");
        rejected(json!({"messages": hello(), "stop": 1}), "stop");
    }

    #[test]
    fn only_one_choice_is_supported() {
        parse(json!({"messages": hello(), "n": 1})).unwrap();
        assert_eq!(
            rejected(json!({"messages": hello(), "n": 2}), "n").code,
            "unsupported_value"
        );
        rejected(json!({"messages": hello(), "n": "1"}), "n");
    }

    #[test]
    fn scalar_fields_are_type_checked() {
        rejected(json!({"messages": hello(), "stream": "yes"}), "stream");
        rejected(
            json!({"messages": hello(), "stream_options": true}),
            "stream_options",
        );
        rejected(json!({"messages": hello(), "model": 4}), "model");
        rejected(json!({"messages": hello(), "model": " "}), "model");
        rejected(json!({"messages": hello(), "user": {"id": 1}}), "user");
    }
}
