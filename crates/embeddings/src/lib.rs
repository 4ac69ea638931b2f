//! The embeddings API's wire format, without I/O: where a request goes, the header that
//! carries the key, the body, and what the answer (or the refusal) means. `chatgate
//! index` (which embeds chunks) and the `retrieval` component (which embeds queries)
//! both speak it, so an index and its queries are embedded the same way.
//!
//! Two flavours:
//! - OpenAI-compatible (OpenAI, and local servers such as Ollama or vLLM):
//!   `POST {origin}{path_prefix}/embeddings`, `Authorization: Bearer <key>`, body
//!   `{"model", "input": [...], "encoding_format": "float"}`;
//! - Azure OpenAI: `POST {origin}/openai/deployments/{deployment}/embeddings?api-version=…`,
//!   `api-key: <key>`, body `{"input": [...], "encoding_format": "float"}` (the model is
//!   the deployment, named in the path).
//!
//! Both answer `{"data": [{"index", "embedding": [f32, ...]}, ...]}`, and refuse with
//! `{"error": {"message": ...}}`.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use serde::Serialize;
use serde_json::Value;
use std::fmt;

/// The OpenAI flavour's path before `/embeddings` unless told otherwise.
pub const DEFAULT_PATH_PREFIX: &str = "/v1";
/// The Azure OpenAI `api-version` unless told otherwise.
pub const DEFAULT_AZURE_API_VERSION: &str = "2024-10-21";

/// Which wire format the endpoint speaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flavor {
    /// OpenAI-compatible. `path_prefix` is empty or starts with `/`, without a trailing
    /// one (as [`path_prefix`] returns it).
    OpenAi {
        /// Between the origin and `/embeddings`: `/v1` for OpenAI
        /// ([`DEFAULT_PATH_PREFIX`]), a server's own for others.
        path_prefix: String,
    },
    /// Azure OpenAI; the model is the deployment.
    Azure {
        /// The `api-version` query parameter ([`valid_api_version`]).
        api_version: String,
    },
}

impl Flavor {
    /// The path and query of the request that embeds with `model` (for Azure, the
    /// deployment, which must pass [`valid_deployment`]).
    pub fn path_and_query(&self, model: &str) -> String {
        match self {
            Flavor::OpenAi { path_prefix } => format!("{path_prefix}/embeddings"),
            Flavor::Azure { api_version } => {
                format!("/openai/deployments/{model}/embeddings?api-version={api_version}")
            }
        }
    }

    /// The header that carries `api_key`: its name and value.
    pub fn credential_header(&self, api_key: &str) -> (&'static str, String) {
        match self {
            Flavor::OpenAi { .. } => ("authorization", format!("Bearer {api_key}")),
            Flavor::Azure { .. } => ("api-key", api_key.to_string()),
        }
    }

    /// The JSON body that asks for the vectors of `inputs`, as floats.
    pub fn request_body<S: Serialize>(&self, model: &str, inputs: &[S]) -> String {
        #[derive(Serialize)]
        struct Body<'a, S: Serialize> {
            #[serde(skip_serializing_if = "Option::is_none")]
            model: Option<&'a str>,
            input: &'a [S],
            encoding_format: &'static str,
        }
        let model = match self {
            Flavor::OpenAi { .. } => Some(model),
            // Azure names the deployment in the path.
            Flavor::Azure { .. } => None,
        };
        serde_json::to_string(&Body {
            model,
            input: inputs,
            encoding_format: "float",
        })
        // Strings and a static name: there is nothing serde_json could refuse.
        .expect("an embeddings request body always serialises")
    }
}

/// `text` as an OpenAI path prefix (`/v1`, `/openai/v1`, or empty; `/` alone also means
/// empty), without trailing slashes; `None` if it is not a plain URL path.
pub fn path_prefix(text: &str) -> Option<String> {
    let prefix = text.trim_end_matches('/');
    let valid = prefix.is_empty()
        || (prefix.starts_with('/')
            && prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.' | '~')));
    valid.then(|| prefix.to_string())
}

/// Whether `name` can be an Azure OpenAI deployment: it goes into the URL path, so only
/// letters, digits, `-`, `_` and `.` may (and not `.` or `..` alone).
pub fn valid_deployment(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 256
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != ".."
}

/// Whether `version` can be an Azure OpenAI `api-version` (it goes into the query).
pub fn valid_api_version(version: &str) -> bool {
    !version.is_empty()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
}

/// Why a 2xx answer holds no usable vectors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnswerError {
    /// The body does not parse as JSON.
    NotJson,
    /// The JSON has no `data` list.
    NoData,
    /// The answer holds `found` embeddings for `expected` inputs.
    WrongCount {
        /// Entries in `data`.
        found: usize,
        /// Inputs sent.
        expected: usize,
    },
    /// An embedding's `index` (as the answer writes it) names no input.
    BadIndex(String),
    /// Two embeddings claim the same input; one input would then have none.
    DuplicateIndex(usize),
    /// Not a list of numbers: base64, when `encoding_format` was ignored.
    NotNumbers,
    /// An element is not a number, or is NaN or infinite once narrowed to `f32`: such
    /// a vector would poison every cosine it takes part in.
    NotFinite,
    /// An embedding with no elements.
    Empty,
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::NotJson => f.write_str("not JSON"),
            AnswerError::NoData => f.write_str("no `data` list"),
            AnswerError::WrongCount { found, expected } => {
                write!(f, "{found} embeddings for {expected} inputs")
            }
            AnswerError::BadIndex(index) => write!(f, "an embedding has index {index}"),
            AnswerError::DuplicateIndex(index) => write!(f, "two embeddings have index {index}"),
            AnswerError::NotNumbers => {
                f.write_str("an embedding is not a list of numbers (was encoding_format ignored?)")
            }
            AnswerError::NotFinite => {
                f.write_str("an embedding holds something other than finite numbers")
            }
            AnswerError::Empty => f.write_str("an embedding is empty"),
        }
    }
}

impl std::error::Error for AnswerError {}

/// The vectors of a 2xx answer to a request of `count` inputs, in input order (the
/// answer's `index` says which input a vector belongs to; without it, the answer's
/// order is the inputs' order).
pub fn parse_vectors(body: &[u8], count: usize) -> Result<Vec<Vec<f32>>, AnswerError> {
    let value: Value = serde_json::from_slice(body).map_err(|_| AnswerError::NotJson)?;
    let data = value
        .get("data")
        .and_then(Value::as_array)
        .ok_or(AnswerError::NoData)?;
    if data.len() != count {
        return Err(AnswerError::WrongCount {
            found: data.len(),
            expected: count,
        });
    }
    let mut vectors: Vec<Option<Vec<f32>>> = vec![None; count];
    for (position, item) in data.iter().enumerate() {
        let index = match item.get("index") {
            None => position,
            Some(index) => index
                .as_u64()
                .and_then(|i| usize::try_from(i).ok())
                .filter(|&i| i < count)
                .ok_or_else(|| AnswerError::BadIndex(index.to_string()))?,
        };
        let embedding = item
            .get("embedding")
            .and_then(Value::as_array)
            .ok_or(AnswerError::NotNumbers)?;
        let vector = embedding
            .iter()
            .map(|v| v.as_f64().map(|v| v as f32).filter(|v| v.is_finite()))
            .collect::<Option<Vec<f32>>>()
            .ok_or(AnswerError::NotFinite)?;
        if vector.is_empty() {
            return Err(AnswerError::Empty);
        }
        if vectors[index].replace(vector).is_some() {
            return Err(AnswerError::DuplicateIndex(index));
        }
    }
    // `count` entries, no index twice: every slot is filled.
    Ok(vectors.into_iter().flatten().collect())
}

/// The service's own message in a refusal's body (`error.message`), as sent: it may
/// echo the key, so redact it before showing it.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    value
        .get("error")?
        .get("message")?
        .as_str()
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn openai() -> Flavor {
        Flavor::OpenAi {
            path_prefix: "/v1".into(),
        }
    }

    fn azure() -> Flavor {
        Flavor::Azure {
            api_version: "2024-10-21".into(),
        }
    }

    fn body(flavor: &Flavor, model: &str, inputs: &[&str]) -> Value {
        serde_json::from_str(&flavor.request_body(model, inputs)).unwrap()
    }

    #[test]
    fn openai_requests_name_the_model_in_the_body_and_send_a_bearer_key() {
        let flavor = openai();
        assert_eq!(
            flavor.path_and_query("text-embedding-3-small"),
            "/v1/embeddings"
        );
        assert_eq!(
            flavor.credential_header("sk-1"),
            ("authorization", "Bearer sk-1".to_string())
        );
        assert_eq!(
            body(&flavor, "text-embedding-3-small", &["why \"tusks\"?", "b"]),
            json!({"model": "text-embedding-3-small", "input": ["why \"tusks\"?", "b"], "encoding_format": "float"})
        );
        let bare = Flavor::OpenAi {
            path_prefix: String::new(),
        };
        assert_eq!(bare.path_and_query("m"), "/embeddings");
    }

    #[test]
    fn azure_requests_name_the_deployment_and_version_in_the_url_and_send_an_api_key() {
        let flavor = azure();
        assert_eq!(
            flavor.path_and_query("embed-small"),
            "/openai/deployments/embed-small/embeddings?api-version=2024-10-21"
        );
        assert_eq!(
            flavor.credential_header("azure-key"),
            ("api-key", "azure-key".to_string())
        );
        assert_eq!(
            body(&flavor, "embed-small", &["q"]),
            json!({"input": ["q"], "encoding_format": "float"})
        );
    }

    #[test]
    fn settings_that_would_change_the_url_are_refused() {
        assert_eq!(path_prefix("/api/v2/").as_deref(), Some("/api/v2"));
        assert_eq!(path_prefix("/").as_deref(), Some(""));
        assert_eq!(path_prefix("").as_deref(), Some(""));
        for bad in ["v1", "/v1?x=1", "/v 1", "/v1#a", "//evil.example@x"] {
            assert_eq!(path_prefix(bad), None, "{bad}");
        }
        assert!(valid_deployment("text-embedding-3-small"));
        assert!(valid_deployment("embed_v1.2"));
        for bad in ["", ".", "..", "a/b", "a?x=1", "a b", "é", &"a".repeat(257)] {
            assert!(!valid_deployment(bad), "{bad}");
        }
        assert!(valid_api_version("2024-10-21"));
        assert!(valid_api_version("2024-05-01-preview"));
        for bad in ["", "2024&x=1", "2024/10"] {
            assert!(!valid_api_version(bad), "{bad}");
        }
    }

    #[test]
    fn vectors_are_put_back_in_input_order() {
        let answer = br#"{"object":"list","data":[{"object":"embedding","index":1,"embedding":[3,4]},{"object":"embedding","index":0,"embedding":[0.5,-1]}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        assert_eq!(
            parse_vectors(answer, 2).unwrap(),
            vec![vec![0.5, -1.0], vec![3.0, 4.0]]
        );
        let without_index = br#"{"data":[{"embedding":[1]},{"embedding":[2e-3]}]}"#;
        assert_eq!(
            parse_vectors(without_index, 2).unwrap(),
            vec![vec![1.0], vec![0.002]]
        );
    }

    #[test]
    fn answers_that_do_not_fit_the_inputs_are_refused() {
        let cases: [(&[u8], AnswerError); 9] = [
            (b"<html>", AnswerError::NotJson),
            (br#"{"error":{"message":"x"}}"#, AnswerError::NoData),
            (
                br#"{"data":[]}"#,
                AnswerError::WrongCount {
                    found: 0,
                    expected: 1,
                },
            ),
            (
                br#"{"data":[{"index":3,"embedding":[1]}]}"#,
                AnswerError::BadIndex("3".into()),
            ),
            (
                br#"{"data":[{"index":-1,"embedding":[1]}]}"#,
                AnswerError::BadIndex("-1".into()),
            ),
            (
                br#"{"data":[{"index":0,"embedding":"AAAAAA=="}]}"#,
                AnswerError::NotNumbers,
            ),
            (
                br#"{"data":[{"index":0,"embedding":[1,"two",3]}]}"#,
                AnswerError::NotFinite,
            ),
            (
                br#"{"data":[{"index":0,"embedding":[]}]}"#,
                AnswerError::Empty,
            ),
            (
                br#"{"data":[{"index":0,"embedding":[1,null]}]}"#,
                AnswerError::NotFinite,
            ),
        ];
        for (answer, expected) in cases {
            assert_eq!(
                parse_vectors(answer, 1),
                Err(expected),
                "{}",
                String::from_utf8_lossy(answer)
            );
        }
        let twice = br#"{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[2]}]}"#;
        assert_eq!(parse_vectors(twice, 2), Err(AnswerError::DuplicateIndex(0)));
        assert_eq!(
            AnswerError::WrongCount {
                found: 0,
                expected: 1
            }
            .to_string(),
            "0 embeddings for 1 inputs"
        );
        assert!(
            AnswerError::NotNumbers
                .to_string()
                .contains("encoding_format")
        );
    }

    #[test]
    fn the_message_of_a_refusal_is_read_from_its_error_body() {
        let refusal = br#"{"error":{"message":"Incorrect API key provided: sk-1","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;
        assert_eq!(
            error_message(refusal).as_deref(),
            Some("Incorrect API key provided: sk-1")
        );
        for other in [
            &b""[..],
            b"<html>",
            br#"{"error":"busy"}"#,
            br#"{"message":"x"}"#,
        ] {
            assert_eq!(error_message(other), None);
        }
    }
}
