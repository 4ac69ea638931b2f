//! A local embeddings endpoint (the test double for OpenAI / Azure OpenAI embeddings): it
//! answers the real wire formats of both,
//! - OpenAI-compatible `POST {prefix}/embeddings` with `Authorization: Bearer <key>` and
//!   `{"model", "input": string | [string], "encoding_format"}`,
//! - Azure OpenAI `POST /openai/deployments/{deployment}/embeddings?api-version=…` with
//!   `api-key: <key>` and `{"input", …}`,
//!
//! with `{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model",
//! "usage"}`, and refuses what they refuse (`401` for a missing or wrong key, `404` for
//! another path, `400` for a body without `input` or with an empty string in it).
//! It records every request ([`EmbeddingsDouble::requests`]) and can be scripted to fail
//! ([`Fault`]: an error status, throttling with `retry-after-ms`, a delay, a stall,
//! vectors of the wrong size).
//!
//! It is a test double, not a model. Its "embedding" of a text is deterministic feature
//! hashing: lowercase words, minus a few function words, with an English plural `s`
//! folded, each mapped through [`SYNONYMS`] to a canonical word, hashed (FNV-1a) into one
//! of `dimensions` counters; the counts are scaled to unit length. So texts sharing
//! words, or words of one synonym group ("automobile" and "car"), have a positive cosine
//! similarity and unrelated texts have (hash collisions aside) none: enough for a test
//! to show hybrid search finding a passage that BM25, which matches words, cannot.

use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Groups of words the double treats as one (the first is the canonical word).
pub const SYNONYMS: &[&[&str]] = &[
    &["car", "automobile", "vehicle", "auto"],
    &["oil", "lubricant"],
    &["change", "replace", "swap", "renew"],
    &["doctor", "physician"],
    &["buy", "purchase"],
    &["big", "large", "huge"],
    &["fast", "quick", "rapid"],
    &["house", "home", "dwelling"],
];

/// Words that carry no topic; a real model gives them little weight too.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "and", "are", "be", "can", "do", "does", "for", "how", "i", "in", "is", "it", "my",
    "of", "on", "or", "should", "the", "to", "what", "when", "with", "you", "your",
];

/// The double's vector for `text`: see the module documentation.
pub fn embed(text: &str, dimensions: usize) -> Vec<f32> {
    let mut vector = vec![0f32; dimensions];
    for word in text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        let word = word.to_lowercase();
        if FUNCTION_WORDS.contains(&word.as_str()) {
            continue;
        }
        let word = match word.strip_suffix('s') {
            Some(stem) if stem.chars().count() >= 3 && !stem.ends_with('s') => stem.to_string(),
            _ => word,
        };
        let canonical = SYNONYMS
            .iter()
            .find(|group| group.contains(&word.as_str()))
            .map_or(word.as_str(), |group| group[0]);
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in canonical.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        vector[(hash % dimensions as u64) as usize] += 1.0;
    }
    let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|v| *v /= norm);
    }
    vector
}

/// Cosine similarity of two unit vectors.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// How the double answers one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// An OpenAI-style error body with this status.
    Status(u16),
    /// `429` with `retry-after-ms`.
    Throttle { retry_after_ms: u64 },
    /// The normal answer, after this long.
    Delay(Duration),
    /// The request is accepted and never answered.
    Stall,
    /// Vectors of this many dimensions instead of the configured number.
    Dimensions(usize),
}

/// Which wire format a request used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    OpenAi,
    Azure {
        deployment: String,
        api_version: String,
    },
}

/// One request the double received.
#[derive(Debug, Clone)]
pub struct EmbeddingRequest {
    pub path_and_query: String,
    pub headers: http::HeaderMap,
    pub body: Value,
    pub flavor: Option<Flavor>,
    /// `model` of the body (OpenAI) or the deployment (Azure).
    pub model: Option<String>,
    /// `input`, as a list even when a single string was sent.
    pub inputs: Vec<String>,
}

impl EmbeddingRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

struct State {
    requests: Vec<EmbeddingRequest>,
    script: VecDeque<Fault>,
    always: Option<Fault>,
}

/// A running double; it stops when dropped.
pub struct EmbeddingsDouble {
    pub origin: String,
    pub dimensions: usize,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EmbeddingsDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What the double accepts.
#[derive(Debug, Clone)]
struct Settings {
    dimensions: usize,
    api_key: Option<String>,
    path_prefix: String,
}

impl EmbeddingsDouble {
    /// Serves vectors of `dimensions` on an ephemeral loopback port. With `api_key`,
    /// requests must carry it (`Authorization: Bearer` for OpenAI, `api-key` for Azure).
    /// OpenAI-style requests are served under `/v1`.
    pub async fn start(dimensions: usize, api_key: Option<&str>) -> EmbeddingsDouble {
        EmbeddingsDouble::start_with_prefix(dimensions, api_key, "/v1").await
    }

    /// Like [`EmbeddingsDouble::start`], with OpenAI-style requests under `path_prefix`.
    pub async fn start_with_prefix(
        dimensions: usize,
        api_key: Option<&str>,
        path_prefix: &str,
    ) -> EmbeddingsDouble {
        assert!(dimensions > 0);
        let settings = Arc::new(Settings {
            dimensions,
            api_key: api_key.map(str::to_string),
            path_prefix: path_prefix.trim_end_matches('/').to_string(),
        });
        let state = Arc::new(Mutex::new(State {
            requests: Vec::new(),
            script: VecDeque::new(),
            always: None,
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let served_state = state.clone();
        let task = crate::double::serve_buffered(listener, move |parts, body| {
            let (settings, state) = (settings.clone(), served_state.clone());
            async move {
                let (status, headers, text) = serve(&settings, &state, parts, &body).await;
                let mut response = http::Response::builder()
                    .status(status)
                    .header("content-type", "application/json");
                for (name, value) in headers {
                    response = response.header(name, value);
                }
                response.body(Full::new(Bytes::from(text))).unwrap()
            }
        });
        EmbeddingsDouble {
            origin,
            dimensions,
            state,
            task,
        }
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<EmbeddingRequest> {
        self.state.lock().unwrap().requests.clone()
    }

    /// The inputs of every request so far, in order.
    pub fn inputs(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .flat_map(|request| request.inputs)
            .collect()
    }

    /// Forgets the requests received so far.
    pub fn clear(&self) {
        self.state.lock().unwrap().requests.clear();
    }

    /// The next requests get these faults, one each, before the double answers normally.
    pub fn script(&self, faults: Vec<Fault>) {
        self.state.lock().unwrap().script.extend(faults);
    }

    /// Every request gets `fault` (after any scripted ones) until [`EmbeddingsDouble::heal`].
    pub fn fail_always(&self, fault: Fault) {
        self.state.lock().unwrap().always = Some(fault);
    }

    pub fn heal(&self) {
        let mut state = self.state.lock().unwrap();
        state.always = None;
        state.script.clear();
    }
}

type Served = (u16, Vec<(&'static str, String)>, String);

fn error(status: u16, message: &str, code: &str) -> Served {
    let body = json!({"error": {"message": message, "type": "invalid_request_error", "param": null, "code": code}});
    (status, Vec::new(), body.to_string())
}

async fn serve(
    settings: &Settings,
    state: &Mutex<State>,
    parts: http::request::Parts,
    body: &[u8],
) -> Served {
    let path_and_query = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let flavor = flavor_of(settings, parts.uri.path(), parts.uri.query());
    let inputs: Vec<String> = match &body["input"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many
            .iter()
            .map(|i| i.as_str().unwrap_or_default().to_string())
            .collect(),
        _ => Vec::new(),
    };
    let model = match &flavor {
        Some(Flavor::Azure { deployment, .. }) => Some(deployment.clone()),
        _ => body["model"].as_str().map(str::to_string),
    };
    let request = EmbeddingRequest {
        path_and_query,
        headers: parts.headers.clone(),
        body: body.clone(),
        flavor: flavor.clone(),
        model: model.clone(),
        inputs: inputs.clone(),
    };
    let fault = {
        let mut state = state.lock().unwrap();
        state.requests.push(request);
        state.script.pop_front().or_else(|| state.always.clone())
    };

    if parts.method != http::Method::POST {
        return error(405, "Only POST is supported.", "method_not_allowed");
    }
    let Some(flavor) = flavor else {
        return error(404, "Resource not found", "404");
    };
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(key) = &settings.api_key {
        let presented = match flavor {
            Flavor::OpenAi => header("authorization").and_then(|v| v.strip_prefix("Bearer ")),
            Flavor::Azure { .. } => header("api-key"),
        };
        if presented != Some(key.as_str()) {
            // Services quote (part of) the key they were given; the double quotes all of
            // it, so that a client that shows this message must redact it.
            let message = match presented {
                Some(wrong) => format!("Incorrect API key provided: {wrong}."),
                None => "You didn't provide an API key.".to_string(),
            };
            return error(401, &message, "invalid_api_key");
        }
    }
    if matches!(flavor, Flavor::OpenAi) && model.is_none() {
        return error(400, "you must provide a model parameter", "missing_model");
    }
    if inputs.is_empty() || inputs.iter().any(|i| i.is_empty()) {
        return error(
            400,
            "'$.input' is invalid. Please check the API reference.",
            "invalid_input",
        );
    }

    let mut dimensions = settings.dimensions;
    match fault {
        None => {}
        Some(Fault::Status(status)) => {
            return error(status, &format!("scripted failure {status}"), "scripted");
        }
        Some(Fault::Throttle { retry_after_ms }) => {
            let (status, mut headers, body) =
                error(429, "Rate limit reached.", "rate_limit_exceeded");
            headers.push(("retry-after-ms", retry_after_ms.to_string()));
            return (status, headers, body);
        }
        Some(Fault::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(Fault::Stall) => std::future::pending::<()>().await,
        Some(Fault::Dimensions(other)) => dimensions = other,
    }
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| json!({"object": "embedding", "index": index, "embedding": embed(input, dimensions)}))
        .collect();
    let tokens: usize = inputs.iter().map(|i| i.split_whitespace().count()).sum();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model.unwrap_or_default(),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    });
    (200, Vec::new(), body.to_string())
}

fn flavor_of(settings: &Settings, path: &str, query: Option<&str>) -> Option<Flavor> {
    if path == format!("{}/embeddings", settings.path_prefix) {
        return Some(Flavor::OpenAi);
    }
    let deployment = path
        .strip_prefix("/openai/deployments/")?
        .strip_suffix("/embeddings")?;
    let api_version = query?
        .split('&')
        .find_map(|pair| pair.strip_prefix("api-version="))?;
    (!deployment.is_empty() && !deployment.contains('/') && !api_version.is_empty()).then(|| {
        Flavor::Azure {
            deployment: deployment.to_string(),
            api_version: api_version.to_string(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synonyms_and_plurals_land_on_the_same_dimensions() {
        let a = embed("Automobile lubricants", 64);
        let b = embed("car oil", 64);
        assert!((cosine(&a, &b) - 1.0).abs() < 1e-6);
    }

    #[test]
    fn vectors_are_unit_length_and_deterministic() {
        let v = embed("Change the engine oil", 32);
        assert_eq!(v, embed("Change the engine oil", 32));
        let norm: f32 = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6);
        assert!(embed("the of and", 8).iter().all(|x| *x == 0.0));
    }

    #[test]
    fn the_wire_format_is_recognised_by_path() {
        let settings = Settings {
            dimensions: 4,
            api_key: None,
            path_prefix: "/v1".into(),
        };
        assert_eq!(
            flavor_of(&settings, "/v1/embeddings", None),
            Some(Flavor::OpenAi)
        );
        assert_eq!(
            flavor_of(
                &settings,
                "/openai/deployments/emb/embeddings",
                Some("api-version=2024-10-21")
            ),
            Some(Flavor::Azure {
                deployment: "emb".into(),
                api_version: "2024-10-21".into()
            })
        );
        assert_eq!(
            flavor_of(&settings, "/openai/deployments/emb/embeddings", None),
            None
        );
        assert_eq!(flavor_of(&settings, "/v2/embeddings", None), None);
    }
}
