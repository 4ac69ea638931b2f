//! OpenTelemetry's GenAI semantic conventions for a completion component's upstream
//! call: the attributes of its CLIENT span `chat {gen_ai.request.model}` and of the
//! `gen_ai.client.*` metrics, as plain data (`chatgate-guest-otel` reports them).
//!
//! Never the prompt, the answer or a credential: only the provider's name, models,
//! settings, ids, reasons and counts. The attribute names and bucket boundaries are
//! the conventions' (GenAI semantic conventions, "gen-ai-spans" and "gen-ai-metrics"),
//! written from their documentation; not checked against a pinned copy of the text.

use serde_json::{Value, json};

/// One attribute: a semantic-convention key and its value.
pub type Attribute = (&'static str, Value);

/// `gen_ai.provider.name` of OpenAI's API.
pub const OPENAI: &str = "openai";
/// `gen_ai.provider.name` of Azure OpenAI.
pub const AZURE_OPENAI: &str = "azure.ai.openai";

/// `gen_ai.client.token.usage`'s advisory bucket boundaries ({token}).
pub const TOKEN_BUCKETS: [f64; 14] = [
    1.0, 4.0, 16.0, 64.0, 256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
    16777216.0, 67108864.0,
];
/// `gen_ai.client.operation.duration`'s advisory bucket boundaries (s).
pub const OPERATION_DURATION_BUCKETS: [f64; 14] = [
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
];
/// `gen_ai.server.time_to_first_token`'s advisory bucket boundaries (s).
pub const TIME_TO_FIRST_TOKEN_BUCKETS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
];

/// What a chat completion call asked its provider for.
#[derive(Debug, Clone, PartialEq)]
pub struct Request<'a> {
    /// `gen_ai.provider.name`: [`OPENAI`], [`AZURE_OPENAI`], or an offline model's own name.
    pub provider: &'a str,
    /// The model (or Azure deployment) asked for.
    pub model: &'a str,
    /// Sampling temperature, when given.
    pub temperature: Option<f32>,
    /// Nucleus sampling, when given.
    pub top_p: Option<f32>,
    /// Most tokens of the answer, when given.
    pub max_tokens: Option<u32>,
}

/// What the provider answered.
#[derive(Debug, Clone, PartialEq)]
pub struct Response<'a> {
    /// The provider's id of the answer, when it gives one.
    pub id: Option<&'a str>,
    /// The model that answered.
    pub model: &'a str,
    /// Why it ended, as OpenAI spells it (`stop`, `length`, `content_filter`).
    pub finish_reason: &'a str,
    /// Input and output tokens, when counted.
    pub usage: Option<(u32, u32)>,
}

/// The span's name: `chat {gen_ai.request.model}`.
pub fn span_name(request: &Request) -> String {
    format!("chat {}", request.model)
}

/// The span's attributes known before the call.
pub fn request_attributes(request: &Request) -> Vec<Attribute> {
    let mut attributes = vec![
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!(request.provider)),
        ("gen_ai.request.model", json!(request.model)),
    ];
    if let Some(t) = request.temperature {
        attributes.push(("gen_ai.request.temperature", json!(f64::from(t))));
    }
    if let Some(p) = request.top_p {
        attributes.push(("gen_ai.request.top_p", json!(f64::from(p))));
    }
    if let Some(max) = request.max_tokens {
        attributes.push(("gen_ai.request.max_tokens", json!(max)));
    }
    attributes
}

/// The span's attributes from the answer.
pub fn response_attributes(response: &Response) -> Vec<Attribute> {
    let mut attributes = Vec::with_capacity(5);
    if let Some(id) = response.id {
        attributes.push(("gen_ai.response.id", json!(id)));
    }
    attributes.push(("gen_ai.response.model", json!(response.model)));
    attributes.push((
        "gen_ai.response.finish_reasons",
        json!([response.finish_reason]),
    ));
    if let Some((input, output)) = response.usage {
        attributes.push(("gen_ai.usage.input_tokens", json!(input)));
        attributes.push(("gen_ai.usage.output_tokens", json!(output)));
    }
    attributes
}

/// The attributes every `gen_ai.client.*` data point of the call carries: operation,
/// provider, request model, and the response model or the error's type.
pub fn metric_attributes(
    request: &Request,
    response_model: Option<&str>,
    error_type: Option<&str>,
) -> Vec<Attribute> {
    let mut attributes = vec![
        ("gen_ai.operation.name", json!("chat")),
        ("gen_ai.provider.name", json!(request.provider)),
        ("gen_ai.request.model", json!(request.model)),
    ];
    if let Some(model) = response_model {
        attributes.push(("gen_ai.response.model", json!(model)));
    }
    if let Some(error) = error_type {
        attributes.push(("error.type", json!(error)));
    }
    attributes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> Request<'static> {
        Request {
            provider: AZURE_OPENAI,
            model: "gpt-4o-mini",
            temperature: Some(0.5),
            top_p: None,
            max_tokens: Some(300),
        }
    }

    #[test]
    fn the_request_names_the_provider_the_model_and_the_settings_given() {
        assert_eq!(span_name(&request()), "chat gpt-4o-mini");
        assert_eq!(
            request_attributes(&request()),
            vec![
                ("gen_ai.operation.name", json!("chat")),
                ("gen_ai.provider.name", json!("azure.ai.openai")),
                ("gen_ai.request.model", json!("gpt-4o-mini")),
                ("gen_ai.request.temperature", json!(0.5)),
                ("gen_ai.request.max_tokens", json!(300)),
            ]
        );
    }

    #[test]
    fn the_response_carries_id_model_finish_reason_and_usage_when_known() {
        let response = Response {
            id: Some("chatcmpl-1"),
            model: "gpt-4o-mini-2024-07-18",
            finish_reason: "length",
            usage: Some((812, 300)),
        };
        assert_eq!(
            response_attributes(&response),
            vec![
                ("gen_ai.response.id", json!("chatcmpl-1")),
                ("gen_ai.response.model", json!("gpt-4o-mini-2024-07-18")),
                ("gen_ai.response.finish_reasons", json!(["length"])),
                ("gen_ai.usage.input_tokens", json!(812)),
                ("gen_ai.usage.output_tokens", json!(300)),
            ]
        );
        let bare = response_attributes(&Response {
            id: None,
            usage: None,
            ..response
        });
        assert!(
            !bare
                .iter()
                .any(|(k, _)| k.starts_with("gen_ai.usage") || *k == "gen_ai.response.id")
        );
    }

    #[test]
    fn metric_points_name_the_response_model_or_the_error() {
        let ok = metric_attributes(&request(), Some("gpt-4o-mini-2024-07-18"), None);
        assert!(ok.contains(&("gen_ai.response.model", json!("gpt-4o-mini-2024-07-18"))));
        assert!(!ok.iter().any(|(k, _)| *k == "error.type"));
        let failed = metric_attributes(&request(), None, Some("timeout"));
        assert!(failed.contains(&("error.type", json!("timeout"))));
        assert!(failed.contains(&("gen_ai.provider.name", json!("azure.ai.openai"))));
    }
}
