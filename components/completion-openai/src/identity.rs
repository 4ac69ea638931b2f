//! Entra ID access tokens for Azure OpenAI from a managed-identity (IMDS-shaped)
//! endpoint: what this component asks `chatgate-guest-io`'s `fetch_token` for (its
//! audience, cache owner and variable) and what a failed fetch means for it.
//!
//! Tokens are cached (in the key-value store) until
//! [`chatgate_guest::identity::REFRESH_MARGIN_SECONDS`] before they expire.

use crate::config::{Auth, CLIENT_ID};
use crate::errors::transport_error;
use chatgate_guest::TransportFailure;
use chatgate_guest::identity::{FetchFailure, ManagedIdentity, TokenFailure};
use chatgate_rag::completion::CompletionError;

pub use chatgate_guest::identity::Token;

/// The audience of Azure OpenAI (Azure AI services) tokens.
pub const RESOURCE: &str = "https://cognitiveservices.azure.com";

/// The identity whose token authenticates the calls, if `auth` uses one.
pub fn managed_identity(auth: &Auth) -> Option<ManagedIdentity<'_>> {
    match auth {
        Auth::ApiKey => None,
        Auth::ManagedIdentity {
            token_origin,
            client_id,
        } => Some(ManagedIdentity {
            token_origin,
            client_id: client_id.as_deref(),
            resource: RESOURCE,
            cache_owner: "completion-openai",
            client_id_variable: CLIENT_ID,
        }),
    }
}

/// The error for a token that could not be had, `budget_ms` being how long the fetch
/// could wait for an answer. A refused identity is a credential problem, a denied
/// request a configuration one; a failing endpoint may recover.
pub fn token_error(failure: FetchFailure, budget_ms: u64) -> CompletionError {
    match failure {
        FetchFailure::Token(TokenFailure::Refused(message)) => {
            CompletionError::Unauthorized(message)
        }
        FetchFailure::Token(TokenFailure::Unavailable(message)) => {
            CompletionError::UpstreamUnavailable(message)
        }
        FetchFailure::TimedOut => CompletionError::Timeout(format!(
            "the managed identity endpoint did not answer within {budget_ms} ms"
        )),
        FetchFailure::Transport(TransportFailure::Denied) => CompletionError::Internal(
            "the host denied the token request; openai_token_origin must be an allowed outbound host".into(),
        ),
        FetchFailure::Transport(failure) => CompletionError::UpstreamUnavailable(format!(
            "the managed identity endpoint is unreachable: {}",
            transport_error(&failure).message()
        )),
        FetchFailure::Unbuildable => {
            CompletionError::Internal("could not build the token request".into())
        }
        FetchFailure::Unreadable => CompletionError::UpstreamUnavailable(
            "the managed identity endpoint answer could not be read".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chatgate_guest::identity::{parse_token, token_error as answer_error};

    fn imds(client_id: Option<&str>) -> Auth {
        Auth::ManagedIdentity {
            token_origin: "http://169.254.169.254".into(),
            client_id: client_id.map(str::to_string),
        }
    }

    #[test]
    fn tokens_are_asked_for_the_cognitive_services_audience() {
        assert_eq!(managed_identity(&Auth::ApiKey), None);
        assert_eq!(
            managed_identity(&imds(None)).unwrap().url(),
            "http://169.254.169.254/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https://cognitiveservices.azure.com"
        );
        assert!(
            managed_identity(&imds(Some("0f5e-11")))
                .unwrap()
                .url()
                .ends_with("&resource=https://cognitiveservices.azure.com&client_id=0f5e-11")
        );
    }

    #[test]
    fn unusable_answers_are_unauthorized_without_echoing_them() {
        for body in [
            &b"<html>"[..],
            br#"{"expires_on":"1"}"#,
            br#"{"access_token":"secret-token","expires_on":"09/14/2017 00:00:00 PM +00:00"}"#,
        ] {
            let failure = FetchFailure::Token(parse_token(body, 0).unwrap_err());
            match token_error(failure, 10) {
                CompletionError::Unauthorized(message) => {
                    assert!(!message.contains("secret-token"), "{message}")
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn token_endpoint_failures_say_what_happened() {
        let body = br#"{"error":"invalid_request","error_description":"Identity not found"}"#;
        let auth = imds(None);
        let identity = managed_identity(&auth).unwrap();
        let refused = answer_error(400, body, identity.client_id_variable);
        assert_eq!(
            token_error(FetchFailure::Token(refused), 10),
            CompletionError::Unauthorized(
                "the managed identity endpoint refused the token request (HTTP 400): Identity not found; check openai_client_id".into()
            )
        );
        assert!(matches!(
            token_error(FetchFailure::Token(answer_error(503, b"", CLIENT_ID)), 10),
            CompletionError::UpstreamUnavailable(m) if m.contains("503")
        ));
        assert_eq!(
            token_error(FetchFailure::TimedOut, 250),
            CompletionError::Timeout(
                "the managed identity endpoint did not answer within 250 ms".into()
            )
        );
        assert!(matches!(
            token_error(FetchFailure::Transport(TransportFailure::Denied), 10),
            CompletionError::Internal(m) if m.contains("openai_token_origin")
        ));
        assert!(matches!(
            token_error(
                FetchFailure::Transport(TransportFailure::Unreachable("connection refused".into())),
                10
            ),
            CompletionError::UpstreamUnavailable(m)
                if m.starts_with("the managed identity endpoint is unreachable")
                    && m.contains("connection refused")
        ));
        assert!(matches!(
            token_error(FetchFailure::Unreadable, 10),
            CompletionError::UpstreamUnavailable(m) if m.contains("could not be read")
        ));
    }

    #[test]
    fn cache_keys_differ_per_identity_and_from_other_components() {
        let system = managed_identity(&imds(None)).unwrap().cache_key();
        let user = managed_identity(&imds(Some("client-a")))
            .unwrap()
            .cache_key();
        assert_ne!(system, user);
        assert!(system.starts_with("completion-openai/"), "{system}");
    }
}
