//! Entra ID access tokens by workload identity federation, as on AKS: the pod's projected
//! service-account token (a JWT the kubelet writes to a file and rotates) is exchanged at
//! the Entra v2.0 token endpoint with the client credentials grant,
//!
//! ```text
//! POST {authority_host}/{tenant_id}/oauth2/v2.0/token
//! content-type: application/x-www-form-urlencoded
//!
//! grant_type=client_credentials&client_id=..&scope={resource}/.default
//! &client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer
//! &client_assertion={the file's contents}
//! ```
//!
//! answered by `{token_type, expires_in, access_token}` or, refused, by
//! `{error, error_description, error_codes, ...}`.
//!
//! Only the pure parts live here (URL, form body, cache key, what a file's contents or an
//! answer mean); `chatgate-guest-io`'s `fetch_token` reads the file, sends the request and
//! caches the token exactly as it does a managed-identity token
//! ([`crate::token_source::TokenSource`]). The file is read only when a token is exchanged,
//! that is when the cached one nears its expiry, so a token the kubelet rotated is the
//! one sent.

use crate::identity::TokenFailure;
use serde_json::Value;

/// Entra ID's public cloud; sovereign clouds and test doubles override it.
pub const DEFAULT_AUTHORITY_HOST: &str = "https://login.microsoftonline.com";
/// Where the AKS workload identity webhook projects the token
/// (`AZURE_FEDERATED_TOKEN_FILE` in the pod).
pub const DEFAULT_TOKEN_FILE: &str = "/var/run/secrets/azure/tokens/azure-identity-token";
/// RFC 7523's assertion type: the assertion is a JWT.
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// The headers of the exchange request.
pub const EXCHANGE_HEADERS: [(&str, &str); 2] = [
    ("content-type", "application/x-www-form-urlencoded"),
    ("accept", "application/json"),
];
/// A projected service-account token is about 1 KiB; a file much larger is not one.
pub const MAX_TOKEN_FILE_BYTES: u64 = 64 << 10;
/// What operators are told to look at when Entra refuses the exchange.
const FEDERATION_HINT: &str = "and the identity's federated credential (issuer: the cluster's OIDC issuer, subject: system:serviceaccount:<namespace>:<service account>)";

/// Whose token a component asks for, where the assertion is, and the variables an
/// operator checks when it fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadIdentity<'a> {
    /// `scheme://host[:port]` of Entra ID, as [`crate::parse_origin`] gives it.
    pub authority_host: &'a str,
    /// The directory (tenant) id or a verified domain ([`is_tenant_id`]).
    pub tenant_id: &'a str,
    /// The client id of the identity the service account is federated with.
    pub client_id: &'a str,
    /// The projected service-account token, as the guest sees it (a `files` mount).
    pub token_file: &'a str,
    /// The audience, e.g. `https://search.azure.com`; the scope is `{resource}/.default`.
    pub resource: &'a str,
    /// The component, in the cache key: components may share a store.
    pub cache_owner: &'a str,
    /// The variables behind the fields above, for error messages.
    pub variables: WorkloadVariables,
}

/// The names of the variables a component reads its [`WorkloadIdentity`] from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkloadVariables {
    /// Of [`WorkloadIdentity::authority_host`].
    pub authority_host: &'static str,
    /// Of [`WorkloadIdentity::tenant_id`].
    pub tenant_id: &'static str,
    /// Of [`WorkloadIdentity::client_id`].
    pub client_id: &'static str,
    /// Of [`WorkloadIdentity::token_file`].
    pub token_file: &'static str,
}

impl WorkloadIdentity<'_> {
    /// The token endpoint of the tenant.
    pub fn url(&self) -> String {
        format!(
            "{}/{}/oauth2/v2.0/token",
            self.authority_host, self.tenant_id
        )
    }

    /// The one scope asked for: every role the identity holds on the resource.
    pub fn scope(&self) -> String {
        format!("{}/.default", self.resource.trim_end_matches('/'))
    }

    /// The form body of the exchange, `assertion` being the token file's contents.
    pub fn form_body(&self, assertion: &str) -> String {
        form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("client_id", self.client_id)
            .append_pair("scope", &self.scope())
            .append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE)
            .append_pair("client_assertion", assertion)
            .finish()
    }

    /// The key-value key the token is cached under: one per component, resource,
    /// tenant, identity and authority, and never one a managed-identity token uses.
    pub fn cache_key(&self) -> String {
        format!(
            "{}/entra-federated-token/{}/{}/{}/{}",
            self.cache_owner, self.tenant_id, self.client_id, self.resource, self.authority_host
        )
    }

    /// The assertion in the token file's `contents`: a JWT (three base64url parts)
    /// without the surrounding whitespace. Neither failure quotes the contents.
    pub fn assertion(&self, contents: &[u8]) -> Result<String, TokenFailure> {
        let text = std::str::from_utf8(contents).unwrap_or_default().trim();
        let jwt = text.split('.').count() == 3
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='));
        if text.is_empty() {
            return Err(self.unreadable_file("it is empty"));
        }
        if !jwt {
            return Err(self.unreadable_file("it does not hold a JWT"));
        }
        Ok(text.to_string())
    }

    /// The failure for a token file that could not be used, `why` saying how (e.g.
    /// "not found"): a deployment problem, so a refusal.
    pub fn unreadable_file(&self, why: &str) -> TokenFailure {
        TokenFailure::Refused(format!(
            "the workload identity token file {} could not be used: {why}; check {}, that the pod has the label azure.workload.identity/use=true and that the component inherits `files` from a component that mounts the token's directory",
            self.token_file, self.variables.token_file
        ))
    }

    /// The failure for a non-2xx answer of the token endpoint. Entra explains itself in
    /// `error` and `error_description` (`AADSTS<code>: ...`); only the description's
    /// first sentence group is kept (not its trace and correlation ids), and
    /// `assertion` is redacted should it be echoed.
    pub fn exchange_error(&self, status: u16, body: &[u8], assertion: &str) -> TokenFailure {
        let answer = serde_json::from_slice::<Value>(body).ok();
        let field = |name: &str| {
            answer
                .as_ref()
                .and_then(|v| v.get(name)?.as_str().map(str::to_string))
        };
        let description = field("error_description")
            .map(|d| first_part(&d).to_string())
            .map(|d| crate::sanitize(&d, Some(assertion)))
            .filter(|d| !d.is_empty());
        let code = field("error")
            .map(|e| crate::sanitize(&e, Some(assertion)))
            .filter(|e| !e.is_empty() && e.len() <= 64);
        let code = code.map(|c| format!(", {c}")).unwrap_or_default();
        let detail = description.map(|d| format!(": {d}")).unwrap_or_default();
        let WorkloadVariables {
            tenant_id,
            client_id,
            ..
        } = self.variables;
        match status {
            429 | 500..=599 => TokenFailure::Unavailable(format!(
                "the Entra ID token endpoint failed (HTTP {status}{code}){detail}"
            )),
            _ => TokenFailure::Refused(format!(
                "the Entra ID token endpoint refused the workload identity (HTTP {status}{code}){detail}; check {tenant_id}, {client_id} {FEDERATION_HINT}"
            )),
        }
    }
}

/// Entra's descriptions end with `\r\nTrace ID: ...\r\nCorrelation ID: ...\r\nTimestamp: ...`.
fn first_part(description: &str) -> &str {
    let end = [
        description.find(['\r', '\n']),
        description.find("Trace ID:"),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(description.len());
    &description[..end]
}

/// A tenant id is a GUID or a verified domain (`contoso.onmicrosoft.com`); either is
/// safe in the URL path.
pub fn is_tenant_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && !text.starts_with(['.', '-'])
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
        && !text.contains("..")
}

/// A guest path to the token file: absolute, without `.` or `..` parts.
pub fn is_token_file_path(text: &str) -> bool {
    text.starts_with('/')
        && text.len() <= 1024
        && !text.chars().any(char::is_control)
        && text.split('/').all(|part| part != "." && part != "..")
        && !text.ends_with('/')
}

#[cfg(test)]
mod tests {
    use super::*;

    const JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2EifQ.c2lnbmF0dXJl";
    const VARIABLES: WorkloadVariables = WorkloadVariables {
        authority_host: "x_authority_host",
        tenant_id: "x_tenant_id",
        client_id: "x_client_id",
        token_file: "x_token_file",
    };

    fn identity() -> WorkloadIdentity<'static> {
        WorkloadIdentity {
            authority_host: DEFAULT_AUTHORITY_HOST,
            tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47",
            client_id: "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d",
            token_file: DEFAULT_TOKEN_FILE,
            resource: "https://cognitiveservices.azure.com",
            cache_owner: "completion-openai",
            variables: VARIABLES,
        }
    }

    #[test]
    fn the_exchange_goes_to_the_tenants_v2_token_endpoint() {
        assert_eq!(
            identity().url(),
            "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/oauth2/v2.0/token"
        );
    }

    #[test]
    fn the_form_is_a_client_credentials_grant_with_the_assertion() {
        let body = identity().form_body(JWT);
        let pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        let expected = [
            ("grant_type", "client_credentials"),
            ("client_id", "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d"),
            ("scope", "https://cognitiveservices.azure.com/.default"),
            ("client_assertion_type", CLIENT_ASSERTION_TYPE),
            ("client_assertion", JWT),
        ];
        assert_eq!(pairs, expected.map(|(k, v)| (k.to_string(), v.to_string())));
        // Reserved characters are percent-encoded, not passed through.
        assert!(
            body.contains("scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default"),
            "{body}"
        );
    }

    #[test]
    fn the_assertion_is_the_trimmed_jwt_and_nothing_else() {
        assert_eq!(
            identity().assertion(format!("{JWT}\n").as_bytes()),
            Ok(JWT.into())
        );
        for bad in [&b""[..], b" \n", b"not-a-jwt", b"a.b.c d", b"\xff.\xfe.x"] {
            match identity().assertion(bad) {
                Err(TokenFailure::Refused(message)) => {
                    assert!(message.contains("x_token_file"), "{message}");
                    assert!(message.contains(DEFAULT_TOKEN_FILE), "{message}");
                    assert!(!message.contains("not-a-jwt"), "{message}");
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn entra_refusals_keep_the_aadsts_sentence_and_hide_the_assertion() {
        let body = serde_json::json!({
            "error": "invalid_client",
            "error_description": format!("AADSTS700213: No matching federated identity record found for presented assertion subject 'system:serviceaccount:chatgate:other'. Assertion {JWT}\r\nTrace ID: 0b3c\r\nCorrelation ID: 9f1e\r\nTimestamp: 2026-12-06 03:00:00Z"),
            "error_codes": [700213],
            "timestamp": "2026-12-06 03:00:00Z",
            "trace_id": "0b3c",
            "correlation_id": "9f1e",
        });
        let failure = identity().exchange_error(400, body.to_string().as_bytes(), JWT);
        let TokenFailure::Refused(message) = failure else {
            panic!("{failure:?}")
        };
        assert!(
            message.starts_with(
                "the Entra ID token endpoint refused the workload identity (HTTP 400, invalid_client): AADSTS700213: No matching federated identity record"
            ),
            "{message}"
        );
        assert!(
            message.contains("check x_tenant_id, x_client_id"),
            "{message}"
        );
        assert!(!message.contains(JWT), "{message}");
        assert!(message.contains("[redacted]"), "{message}");
        assert!(!message.contains("Trace ID"), "{message}");
    }

    #[test]
    fn entra_outages_may_recover_and_bodies_that_are_not_json_still_fail_clearly() {
        assert_eq!(
            identity().exchange_error(503, b"<html>", JWT),
            TokenFailure::Unavailable("the Entra ID token endpoint failed (HTTP 503)".into())
        );
        assert!(matches!(
            identity().exchange_error(429, b"{}", JWT),
            TokenFailure::Unavailable(_)
        ));
        assert!(matches!(
            identity().exchange_error(401, b"", JWT),
            TokenFailure::Refused(m) if m.contains("HTTP 401")
        ));
    }

    #[test]
    fn an_entra_v2_answer_is_a_token_expiring_expires_in_seconds_from_now() {
        let body = br#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"eyJ0.eyJ1.sig"}"#;
        let token =
            crate::identity::parse_token_from(body, 1_000, crate::identity::ENTRA_TOKEN_ENDPOINT)
                .unwrap();
        assert_eq!(token.expose(), "eyJ0.eyJ1.sig");
        assert_eq!(token.expires_on(), 4_599);
        let failure = crate::identity::parse_token_from(
            br#"{"token_type":"Bearer"}"#,
            0,
            crate::identity::ENTRA_TOKEN_ENDPOINT,
        );
        assert_eq!(
            failure,
            Err(TokenFailure::Refused(
                "the Entra ID token endpoint answered without a usable token: no access_token"
                    .into()
            ))
        );
    }

    #[test]
    fn cache_keys_differ_per_owner_resource_tenant_identity_and_authority() {
        let base = identity();
        let variants = [
            base,
            WorkloadIdentity {
                cache_owner: "retrieval-azure-search",
                ..base
            },
            WorkloadIdentity {
                resource: "https://search.azure.com",
                ..base
            },
            WorkloadIdentity {
                tenant_id: "contoso.onmicrosoft.com",
                ..base
            },
            WorkloadIdentity {
                client_id: "other",
                ..base
            },
            WorkloadIdentity {
                authority_host: "http://127.0.0.1:9",
                ..base
            },
        ];
        let keys: Vec<String> = variants.iter().map(WorkloadIdentity::cache_key).collect();
        for (i, a) in keys.iter().enumerate() {
            for b in &keys[i + 1..] {
                assert_ne!(a, b);
            }
        }
        let imds = crate::identity::cache_key("completion-openai", DEFAULT_AUTHORITY_HOST, None);
        assert!(!keys.contains(&imds));
    }

    #[test]
    fn tenant_ids_and_token_paths_cannot_change_the_url_or_leave_the_mount() {
        assert!(is_tenant_id("72f988bf-86f1-41af-91ab-2d7cd011db47"));
        assert!(is_tenant_id("contoso.onmicrosoft.com"));
        for bad in ["", "a/b", "a?b", "a#b", "..", ".a", "a b", "a..b"] {
            assert!(!is_tenant_id(bad), "{bad}");
        }
        assert!(is_token_file_path(DEFAULT_TOKEN_FILE));
        for bad in [
            "relative/token",
            "/a/../etc/passwd",
            "/a/./b",
            "/dir/",
            "/a\nb",
        ] {
            assert!(!is_token_file_path(bad), "{bad}");
        }
    }
}
