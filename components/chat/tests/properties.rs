//! Property tests of the request parser and the SSE writer: arbitrary bodies are
//! answered with an OpenAI error object, never a panic; every valid request reads back
//! as sent; every streamed chunk is one SSE event carrying its text unchanged.

use chat::domain::Role;
use chat::request::{Filter, MAX_FILTERS, MAX_STOP_SEQUENCES, parse_chat_request};
use chat::sse::{ChunkHeader, content_chunk};
use proptest::prelude::*;
use serde_json::{Value, json};

/// JSON of a few levels whose keys are the request's own, so that parsing gets past
/// the outer checks into every field's.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        prop_oneof![Just(0.5), Just(2.0), Just(-1.0), Just(1e300)].prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        prop_oneof![
            Just("user"),
            Just("system"),
            Just("developer"),
            Just("assistant"),
            Just("tool"),
            Just("text"),
            Just("image_url"),
            Just("json_object"),
            Just("json_schema"),
            Just("none"),
            Just("source"),
        ]
        .prop_map(Value::from),
    ];
    let key = prop_oneof![
        prop_oneof![
            Just("model"),
            Just("messages"),
            Just("role"),
            Just("content"),
            Just("type"),
            Just("text"),
            Just("temperature"),
            Just("top_p"),
            Just("max_tokens"),
            Just("max_completion_tokens"),
            Just("stop"),
            Just("stream"),
            Just("stream_options"),
            Just("include_usage"),
            Just("n"),
            Just("user"),
            Just("seed"),
            Just("response_format"),
            Just("json_schema"),
            Just("name"),
            Just("modalities"),
            Just("tools"),
            Just("logit_bias"),
            Just("chatgate"),
            Just("retrieval"),
            Just("top_k"),
            Just("filters"),
            Just("field"),
            Just("value"),
        ]
        .prop_map(str::to_string),
        "[a-z_]{0,8}",
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key.clone(), inner, 0..8)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// What a valid request says, written below as the JSON an SDK sends.
#[derive(Debug, Clone)]
struct Spec {
    model: Option<String>,
    /// Role name as sent, text, and whether it is sent as text parts.
    messages: Vec<(&'static str, String, bool)>,
    temperature: Option<f64>,
    max_tokens: Option<u32>,
    stop: Vec<String>,
    stream: bool,
    include_usage: bool,
    user: Option<String>,
    top_p: Option<f64>,
    seed: Option<i64>,
    json_object: bool,
    retrieval: Option<bool>,
    top_k: Option<u32>,
    filters: Vec<(String, String)>,
}

fn spec() -> impl Strategy<Value = Spec> {
    let message = (
        prop_oneof![
            Just("system"),
            Just("developer"),
            Just("user"),
            Just("assistant")
        ],
        any::<String>(),
        any::<bool>(),
    );
    (
        (
            prop::option::of("[a-zA-Z0-9._-]{1,16}"),
            prop::collection::vec(message, 0..4),
            // The latest user message is the search query: it must have text.
            "[a-zA-Z0-9?]{1,8}[ a-z]{0,8}",
            prop::option::of(0.0f64..=2.0),
            prop::option::of(1u32..),
            prop::collection::vec(".{1,6}", 0..=MAX_STOP_SEQUENCES),
        ),
        (
            any::<bool>(),
            any::<bool>(),
            prop::option::of(any::<String>()),
            prop::option::of(0.0f64..=1.0),
            prop::option::of(any::<i64>()),
            any::<bool>(),
            prop::option::of(any::<bool>()),
            // Below every `chat_top_k` maximum the settings allow.
            prop::option::of(1u32..=5),
            prop::collection::vec((".{0,6}", ".{0,6}"), 0..=MAX_FILTERS),
        ),
    )
        .prop_map(
            |(
                (model, mut messages, query, temperature, max_tokens, stop),
                (stream, include_usage, user, top_p, seed, json_object, retrieval, top_k, filters),
            )| {
                messages.push(("user", query, false));
                Spec {
                    model,
                    messages,
                    temperature,
                    max_tokens,
                    stop,
                    stream,
                    include_usage,
                    user,
                    top_p,
                    seed,
                    json_object,
                    retrieval,
                    top_k,
                    filters,
                }
            },
        )
}

fn body(spec: &Spec) -> Value {
    let messages: Vec<Value> = spec
        .messages
        .iter()
        .map(|(role, text, as_parts)| {
            let content = if *as_parts {
                json!([{"type": "text", "text": text}])
            } else {
                json!(text)
            };
            json!({"role": role, "content": content})
        })
        .collect();
    let mut body = json!({
        "messages": messages,
        "stream": spec.stream,
        "stream_options": {"include_usage": spec.include_usage},
    });
    let mut set = |name: &str, value: Value| {
        body[name] = value;
    };
    if let Some(model) = &spec.model {
        set("model", json!(model));
    }
    if let Some(temperature) = spec.temperature {
        set("temperature", json!(temperature));
    }
    if let Some(max_tokens) = spec.max_tokens {
        set("max_completion_tokens", json!(max_tokens));
    }
    match spec.stop.as_slice() {
        [] => {}
        [one] => set("stop", json!(one)),
        many => set("stop", json!(many)),
    }
    if let Some(user) = &spec.user {
        set("user", json!(user));
    }
    if let Some(top_p) = spec.top_p {
        set("top_p", json!(top_p));
    }
    if let Some(seed) = spec.seed {
        set("seed", json!(seed));
    }
    if spec.json_object {
        set("response_format", json!({"type": "json_object"}));
    }
    let filters: Vec<Value> = spec
        .filters
        .iter()
        .map(|(field, value)| json!({"field": field, "value": value}))
        .collect();
    set(
        "chatgate",
        json!({"retrieval": spec.retrieval, "top_k": spec.top_k, "filters": filters}),
    );
    body
}

fn role(name: &str) -> Role {
    match name {
        "system" | "developer" => Role::System,
        "user" => Role::User,
        _ => Role::Assistant,
    }
}

proptest! {
    // Bounded so that the file runs in well under a second in release.
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_are_an_error_not_a_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Err(error) = parse_chat_request(&body) {
            prop_assert_eq!(error.status, 400);
            prop_assert!(error.to_json()["error"]["message"].is_string());
        }
    }

    #[test]
    fn arbitrary_json_is_an_error_not_a_panic(document in json_value(), messages in json_value()) {
        let mut document = document;
        // Half of the cases get past the "messages" checks into the other fields.
        if let Value::Object(fields) = &mut document
            && messages.is_array()
        {
            fields.insert("messages".into(), messages);
        }
        match parse_chat_request(document.to_string().as_bytes()) {
            Ok(request) => prop_assert!(request.retrieval_query().is_some()),
            Err(error) => {
                prop_assert_eq!(error.status, 400);
                prop_assert!(error.to_json()["error"]["message"].is_string());
            }
        }
    }

    #[test]
    fn valid_requests_read_back_as_sent(spec in spec()) {
        let request = parse_chat_request(body(&spec).to_string().as_bytes())
            .map_err(|error| TestCaseError::fail(format!("{error:?}")))?;
        prop_assert_eq!(&request.model, &spec.model);
        let messages: Vec<(Role, &str)> = request
            .messages
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        let sent: Vec<(Role, &str)> = spec
            .messages
            .iter()
            .map(|(name, text, _)| (role(name), text.as_str()))
            .collect();
        prop_assert_eq!(messages, sent);
        prop_assert_eq!(request.temperature, spec.temperature.map(|t| t as f32));
        prop_assert_eq!(request.max_tokens, spec.max_tokens);
        prop_assert_eq!(&request.stop, &spec.stop);
        prop_assert_eq!(request.stream, spec.stream);
        prop_assert_eq!(request.include_usage, spec.include_usage);
        prop_assert_eq!(&request.user, &spec.user);
        prop_assert_eq!(request.top_p, spec.top_p.map(|p| p as f32));
        prop_assert_eq!(request.seed, spec.seed);
        prop_assert_eq!(
            request.response_format,
            spec.json_object.then(|| json!({"type": "json_object"}))
        );
        prop_assert_eq!(request.grounding.retrieval, spec.retrieval.unwrap_or(true));
        prop_assert_eq!(request.grounding.top_k, spec.top_k);
        let filters: Vec<Filter> = spec
            .filters
            .iter()
            .map(|(field, value)| Filter { field: field.clone(), value: value.clone() })
            .collect();
        prop_assert_eq!(&request.grounding.filters, &filters);
    }

    /// Text with any line breaks stays inside one `data:` line, and reads back unchanged.
    #[test]
    fn a_content_chunk_is_one_event_carrying_the_text(content in any::<String>()) {
        let header = ChunkHeader { id: "chatcmpl-1".into(), created: 1, model: "m".into() };
        let event = content_chunk(&header, &content);
        let data = event
            .strip_prefix("data: ")
            .and_then(|rest| rest.strip_suffix("\n\n"))
            .expect("one data event");
        prop_assert!(!data.contains(['\n', '\r']));
        let payload: Value = serde_json::from_str(data).unwrap();
        prop_assert_eq!(&payload["choices"][0]["delta"]["content"], &json!(content));
    }
}
