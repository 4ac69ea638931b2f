//! Embedding a query with the endpoint that embedded the index: the request to send and
//! the meaning of the answer, in the wire format `chatgate index` speaks too
//! ([`chatgate_embeddings`]). The `wasm` module only sends it.
//!
//! A failure is never fatal to a search: the caller falls back to BM25 and logs
//! [`EmbeddingFailure`]'s text, which holds no secret.

use crate::config::EmbeddingsConfig;
use chatgate_embeddings::Flavor;
use chatgate_guest::sanitize;
use std::fmt;

/// A query embedding larger than this is not one (3072 dimensions take about 70 KB).
pub const MAX_BODY_BYTES: usize = 4 << 20;
/// Error bodies are only read this far: the message that matters is at the start.
pub const MAX_ERROR_BODY_BYTES: usize = 64 << 10;

/// One embeddings request, ready to send. `Debug` is not derived: a header holds the key.
pub struct EmbeddingRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// The request that embeds `query` with `model` (for Azure, the deployment, which goes
/// into the URL path: one that could change it is refused), with `token` (an Entra ID
/// access token, when the deployment uses an identity) or else the key, if any.
pub fn request(
    config: &EmbeddingsConfig,
    model: &str,
    query: &str,
    token: Option<&str>,
) -> Result<EmbeddingRequest, EmbeddingFailure> {
    if matches!(config.flavor, Flavor::Azure { .. })
        && !chatgate_embeddings::valid_deployment(model)
    {
        return Err(EmbeddingFailure::BadDeployment(model.to_string()));
    }
    let mut headers = vec![
        ("content-type", "application/json".to_string()),
        ("accept", "application/json".to_string()),
    ];
    match (token, &config.api_key) {
        // Azure OpenAI takes Entra ID tokens as bearer tokens, whatever carries its keys.
        (Some(token), _) => headers.push(("authorization", format!("Bearer {token}"))),
        (None, Some(key)) => headers.push(config.flavor.credential_header(key.expose())),
        (None, None) => {}
    }
    Ok(EmbeddingRequest {
        url: format!("{}{}", config.origin, config.flavor.path_and_query(model)),
        headers,
        body: config.flavor.request_body(model, &[query]),
    })
}

/// Why a query was not embedded, worded for the deployment's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmbeddingFailure {
    /// The deployment names an Azure deployment that cannot be put in a URL.
    BadDeployment(String),
    /// The host refused the request: the origin is not an allowed outbound host.
    Denied,
    TimedOut {
        timeout_ms: u64,
    },
    Unreachable(String),
    /// A non-2xx answer, with the service's own message if it gave one.
    Status {
        status: u16,
        message: Option<String>,
    },
    /// A 2xx answer that holds no usable vector.
    Malformed(String),
    /// No Entra ID token could be had for the identity the deployment names.
    NoToken(String),
    /// The vector does not have the index's number of dimensions.
    WrongDimensions {
        expected: usize,
        found: usize,
    },
}

impl fmt::Display for EmbeddingFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmbeddingFailure::BadDeployment(name) => write!(
                f,
                "`{name}` is not an Azure OpenAI deployment name (letters, digits, `-`, `_`, `.`); set retrieval_embeddings_model"
            ),
            EmbeddingFailure::Denied => f.write_str(
                "the host refused the request: retrieval_embeddings_origin must be in chat's allowed_outbound_hosts",
            ),
            EmbeddingFailure::TimedOut { timeout_ms } => write!(
                f,
                "the embeddings endpoint did not answer within {timeout_ms} ms (retrieval_embeddings_timeout_ms)"
            ),
            EmbeddingFailure::Unreachable(why) => {
                write!(f, "the embeddings endpoint could not be reached: {why}")
            }
            EmbeddingFailure::Status { status, message } => {
                write!(f, "the embeddings endpoint answered HTTP {status}")?;
                if matches!(status, 401 | 403) {
                    f.write_str(" (check retrieval_embeddings_api_key, or the identity's role on the resource)")?;
                }
                match message {
                    Some(message) => write!(f, ": {message}"),
                    None => Ok(()),
                }
            }
            EmbeddingFailure::Malformed(why) => {
                write!(f, "the embeddings endpoint's answer is unusable: {why}")
            }
            EmbeddingFailure::NoToken(why) => {
                write!(f, "no Entra ID token for the embeddings endpoint: {why}")
            }
            EmbeddingFailure::WrongDimensions { expected, found } => write!(
                f,
                "the embeddings endpoint answered {found} dimensions but the index holds {expected}: is retrieval_embeddings_model the model the index was built with?"
            ),
        }
    }
}

/// The line the component logs when a search goes without its vector half.
pub fn fallback_line(failure: &EmbeddingFailure) -> String {
    format!("retrieval: answering from BM25 only: the query was not embedded: {failure}")
}

/// The query vector in a 2xx answer `body`, which must have `dimensions` components.
pub fn parse_vector(body: &[u8], dimensions: usize) -> Result<Vec<f32>, EmbeddingFailure> {
    let vector = chatgate_embeddings::parse_vectors(body, 1)
        .map_err(|error| EmbeddingFailure::Malformed(error.to_string()))?
        .pop()
        .unwrap_or_default();
    if vector.len() != dimensions {
        return Err(EmbeddingFailure::WrongDimensions {
            expected: dimensions,
            found: vector.len(),
        });
    }
    Ok(vector)
}

/// The failure for a non-2xx answer; `secret` (the key that was sent) is redacted from
/// the service's message should it be echoed.
pub fn status_failure(status: u16, body: &[u8], secret: Option<&str>) -> EmbeddingFailure {
    let message = chatgate_embeddings::error_message(body)
        .map(|message| sanitize(&message, secret))
        .filter(|message| !message.is_empty());
    EmbeddingFailure::Status { status, message }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_guest::ApiKey;
    use serde_json::{Value, json};

    fn openai(key: Option<&str>) -> EmbeddingsConfig {
        EmbeddingsConfig {
            origin: "https://api.example.com".into(),
            flavor: Flavor::OpenAi {
                path_prefix: "/v1".into(),
            },
            api_key: key.map(|k| ApiKey::new(k.into())),
            identity: None,
            model: None,
            timeout_ms: 3000,
        }
    }

    fn azure(key: Option<&str>) -> EmbeddingsConfig {
        EmbeddingsConfig {
            origin: "https://contoso.openai.azure.com".into(),
            flavor: Flavor::Azure {
                api_version: "2024-10-21".into(),
            },
            ..openai(key)
        }
    }

    fn header<'r>(request: &'r EmbeddingRequest, name: &str) -> Option<&'r str> {
        request
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn openai_requests_name_the_model_and_send_the_key_as_a_bearer_token() {
        let request = request(
            &openai(Some("sk-1")),
            "text-embedding-3-small",
            "why \"tusks\"?",
            None,
        )
        .unwrap();
        assert_eq!(request.url, "https://api.example.com/v1/embeddings");
        assert_eq!(header(&request, "authorization"), Some("Bearer sk-1"));
        assert_eq!(header(&request, "api-key"), None);
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(
            body,
            json!({"model": "text-embedding-3-small", "input": ["why \"tusks\"?"], "encoding_format": "float"})
        );
    }

    #[test]
    fn azure_requests_name_the_deployment_in_the_path_and_send_an_api_key_header() {
        let request = request(&azure(Some("azure-key")), "embed-small", "q", None).unwrap();
        assert_eq!(
            request.url,
            "https://contoso.openai.azure.com/openai/deployments/embed-small/embeddings?api-version=2024-10-21"
        );
        assert_eq!(header(&request, "api-key"), Some("azure-key"));
        assert_eq!(header(&request, "authorization"), None);
        let body: Value = serde_json::from_str(&request.body).unwrap();
        assert_eq!(body, json!({"input": ["q"], "encoding_format": "float"}));
    }

    #[test]
    fn an_entra_token_is_sent_as_a_bearer_token_instead_of_any_key() {
        for config in [azure(Some("azure-key")), openai(Some("sk-1")), azure(None)] {
            let request = request(&config, "m", "q", Some("eyJ0.e.s")).unwrap();
            assert_eq!(header(&request, "authorization"), Some("Bearer eyJ0.e.s"));
            assert_eq!(header(&request, "api-key"), None);
        }
    }

    #[test]
    fn without_a_key_no_credential_is_sent() {
        for config in [openai(None), azure(None)] {
            let request = request(&config, "m", "q", None).unwrap();
            assert_eq!(header(&request, "authorization"), None);
            assert_eq!(header(&request, "api-key"), None);
        }
    }

    #[test]
    fn an_azure_deployment_that_would_change_the_path_is_never_sent() {
        for bad in ["../admin", "a/b", "a?x=1", ""] {
            assert_eq!(
                request(&azure(Some("azure-key")), bad, "q", None).err(),
                Some(EmbeddingFailure::BadDeployment(bad.to_string())),
                "{bad}"
            );
        }
        // The OpenAI flavour names the model in the body, where any text is fine.
        assert!(request(&openai(None), "org/model:latest", "q", None).is_ok());
    }

    #[test]
    fn the_vector_at_index_zero_is_taken() {
        let body = br#"{"object":"list","data":[{"object":"embedding","index":0,"embedding":[0.5,-1,2e-3]}],"model":"m","usage":{"prompt_tokens":2,"total_tokens":2}}"#;
        assert_eq!(parse_vector(body, 3).unwrap(), vec![0.5, -1.0, 0.002]);
    }

    #[test]
    fn a_vector_of_the_wrong_size_is_refused() {
        let body = br#"{"data":[{"index":0,"embedding":[1,2]}]}"#;
        assert_eq!(
            parse_vector(body, 3),
            Err(EmbeddingFailure::WrongDimensions {
                expected: 3,
                found: 2
            })
        );
    }

    #[test]
    fn unusable_answers_are_malformed() {
        for body in [
            &b"<html>"[..],
            br#"{"data":[]}"#,
            br#"{"error":{"message":"x"}}"#,
            br#"{"data":[{"index":0,"embedding":"AAAAAA=="}]}"#,
            br#"{"data":[{"index":0,"embedding":[1,"two",3]}]}"#,
        ] {
            assert!(
                matches!(parse_vector(body, 3), Err(EmbeddingFailure::Malformed(_))),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn refusals_carry_the_services_message_without_the_key() {
        let body = br#"{"error":{"message":"Incorrect API key provided: sk-secret-1","type":"invalid_request_error","code":"invalid_api_key"}}"#;
        let failure = status_failure(401, body, Some("sk-secret-1"));
        let line = fallback_line(&failure);
        assert_eq!(
            line,
            "retrieval: answering from BM25 only: the query was not embedded: the embeddings endpoint answered HTTP 401 (check retrieval_embeddings_api_key, or the identity's role on the resource): Incorrect API key provided: [redacted]"
        );
        assert_eq!(
            status_failure(503, b"", None).to_string(),
            "the embeddings endpoint answered HTTP 503"
        );
    }

    #[test]
    fn failure_lines_are_single_lines() {
        let failure = status_failure(500, br#"{"error":{"message":"boom\nsecond line"}}"#, None);
        assert!(!fallback_line(&failure).contains('\n'));
        let timed_out = EmbeddingFailure::TimedOut { timeout_ms: 3000 };
        assert!(timed_out.to_string().contains("3000 ms"));
    }
}
