//! Entra ID access tokens for Azure OpenAI, from a managed-identity (IMDS-shaped)
//! endpoint or by workload identity federation (the projected service-account token
//! exchanged at Entra ID): what this component asks `chatgate-guest-io`'s `fetch_token`
//! for (its audience, cache owner and variables) and what a failed fetch means for it.
//!
//! Tokens are cached (in the key-value store) until
//! [`chatgate_guest::identity::REFRESH_MARGIN_SECONDS`] before they expire.

use crate::config::{AUTHORITY_HOST, Auth, IDENTITY_VARIABLES};
use crate::errors::transport_error;
use chatgate_guest::TransportFailure;
use chatgate_guest::identity::{FetchFailure, TokenFailure};
use chatgate_guest::token_source::TokenSource;
use chatgate_rag::completion::CompletionError;

pub use chatgate_guest::identity::Token;

/// The audience of Azure OpenAI (Azure AI services) tokens.
pub const RESOURCE: &str = "https://cognitiveservices.azure.com";
const CACHE_OWNER: &str = "completion-openai";

/// Where the token that authenticates the calls comes from, if `auth` uses one.
pub fn token_source(auth: &Auth) -> Option<TokenSource<'_>> {
    match auth {
        Auth::ApiKey => None,
        Auth::Entra(identity) => {
            Some(identity.token_source(RESOURCE, CACHE_OWNER, &IDENTITY_VARIABLES))
        }
    }
}

/// The error for a token from `source` that could not be had, `budget_ms` being how
/// long the fetch could wait for an answer. A refused identity (or an unusable token
/// file) is a credential problem, a denied request a configuration one; a failing
/// endpoint may recover.
pub fn token_error(failure: FetchFailure, budget_ms: u64, source: &TokenSource) -> CompletionError {
    let endpoint = source.endpoint();
    let origin_variable = match source {
        TokenSource::Managed(_) => "openai_token_origin",
        TokenSource::Workload(_) => AUTHORITY_HOST,
    };
    match failure {
        FetchFailure::Token(TokenFailure::Refused(message)) => {
            CompletionError::Unauthorized(message)
        }
        FetchFailure::Token(TokenFailure::Unavailable(message)) => {
            CompletionError::UpstreamUnavailable(message)
        }
        // The guest's timer and the host's timeout read the same.
        FetchFailure::TimedOut | FetchFailure::Transport(TransportFailure::TimedOut) => {
            CompletionError::Timeout(format!("{endpoint} did not answer within {budget_ms} ms"))
        }
        FetchFailure::Transport(TransportFailure::Denied) => CompletionError::Internal(format!(
            "the host denied the token request; {origin_variable} must be an allowed outbound host"
        )),
        FetchFailure::Transport(failure) => CompletionError::UpstreamUnavailable(format!(
            "{endpoint} is unreachable: {}",
            transport_error(&failure).message()
        )),
        FetchFailure::Unbuildable => {
            CompletionError::Internal("could not build the token request".into())
        }
        FetchFailure::Unreadable => {
            CompletionError::UpstreamUnavailable(format!("{endpoint}'s answer could not be read"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CLIENT_ID;
    use chatgate_guest::entra_identity::EntraIdentity;
    use chatgate_guest::identity::{ManagedIdentity, parse_token, token_error as answer_error};

    /// The managed identity of `auth`, if that is its source.
    fn managed_identity(auth: &Auth) -> Option<ManagedIdentity<'_>> {
        match token_source(auth)? {
            TokenSource::Managed(identity) => Some(identity),
            TokenSource::Workload(_) => None,
        }
    }

    fn workload() -> Auth {
        Auth::Entra(EntraIdentity::Workload {
            authority_host: "https://login.microsoftonline.com".into(),
            tenant_id: "contoso.onmicrosoft.com".into(),
            client_id: "client-a".into(),
            token_file: "/var/run/secrets/azure/tokens/azure-identity-token".into(),
        })
    }

    fn imds(client_id: Option<&str>) -> Auth {
        Auth::Entra(EntraIdentity::Managed {
            token_origin: "http://169.254.169.254".into(),
            client_id: client_id.map(str::to_string),
        })
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
            let auth = imds(None);
            match token_error(failure, 10, &token_source(&auth).unwrap()) {
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
        let source = TokenSource::Managed(identity);
        let token_error = |failure, budget| super::token_error(failure, budget, &source);
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
    fn workload_identity_tokens_are_exchanged_for_the_cognitive_services_scope() {
        let auth = workload();
        let Some(TokenSource::Workload(identity)) = token_source(&auth) else {
            panic!("not a workload identity")
        };
        assert_eq!(
            identity.scope(),
            "https://cognitiveservices.azure.com/.default"
        );
        assert_eq!(
            identity.url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        let source = TokenSource::Workload(identity);
        // A missing token file and an Entra refusal are credential problems (502 from
        // `chat`), an Entra outage may pass, a slow Entra is a timeout.
        assert!(matches!(
            token_error(FetchFailure::Token(identity.unreadable_file("no such file")), 10, &source),
            CompletionError::Unauthorized(m) if m.contains("openai_token_file")
        ));
        assert!(matches!(
            token_error(FetchFailure::Token(identity.exchange_error(400, b"{}", "jwt")), 10, &source),
            CompletionError::Unauthorized(m) if m.contains("openai_tenant_id, openai_client_id")
        ));
        assert!(matches!(
            token_error(
                FetchFailure::Token(identity.exchange_error(503, b"", "jwt")),
                10,
                &source
            ),
            CompletionError::UpstreamUnavailable(_)
        ));
        for timed_out in [
            FetchFailure::TimedOut,
            FetchFailure::Transport(TransportFailure::TimedOut),
        ] {
            assert_eq!(
                token_error(timed_out, 250, &source),
                CompletionError::Timeout(
                    "the Entra ID token endpoint did not answer within 250 ms".into()
                )
            );
        }
        assert!(matches!(
            token_error(FetchFailure::Transport(TransportFailure::Denied), 10, &source),
            CompletionError::Internal(m) if m.contains("openai_authority_host")
        ));
    }

    #[test]
    fn cache_keys_differ_per_identity_and_from_other_components() {
        let workload = token_source(&workload()).unwrap().cache_key();
        assert!(workload.starts_with("completion-openai/"), "{workload}");
        let system = managed_identity(&imds(None)).unwrap().cache_key();
        assert_ne!(system, workload);
        let user = managed_identity(&imds(Some("client-a")))
            .unwrap()
            .cache_key();
        assert_ne!(system, user);
        assert!(system.starts_with("completion-openai/"), "{system}");
    }
}
