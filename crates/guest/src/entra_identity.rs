//! The Entra ID identity a component calls an Azure service with instead of a key: its
//! variables, their checks, and the [`TokenSource`] that fetches its tokens. Every
//! component with keyless calls (`completion-openai`, `retrieval-azure-search`,
//! `retrieval`'s query embeddings) reads the same six settings under its own prefix.

use crate::identity::{ManagedIdentity, is_client_id};
use crate::token_source::TokenSource;
use crate::workload_identity::{
    DEFAULT_AUTHORITY_HOST, DEFAULT_TOKEN_FILE, WorkloadIdentity, WorkloadVariables, is_tenant_id,
    is_token_file_path,
};

/// The names of the variables a component reads its identity from, e.g.
/// `azure_search_token_origin`, `azure_search_client_id`, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdentityVariables {
    /// `managed-identity`: the IMDS-shaped endpoint's origin.
    pub token_origin: &'static str,
    /// `managed-identity`: a user-assigned identity (empty: the system one);
    /// `workload-identity`: the federated identity (required).
    pub client_id: &'static str,
    /// `workload-identity`: the directory (tenant).
    pub tenant_id: &'static str,
    /// `workload-identity`: Entra ID's origin. No default: it must be named to be an
    /// allowed outbound host, so a deployment without workload identity never allows it.
    pub authority_host: &'static str,
    /// `workload-identity`: the projected service-account token (a `files` mount).
    pub token_file: &'static str,
}

/// An Entra ID identity, checked: only values that cannot reshape the token request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntraIdentity {
    /// Tokens from an IMDS-shaped managed-identity endpoint.
    Managed {
        /// `scheme://host[:port]` of the token endpoint.
        token_origin: String,
        /// A user-assigned identity; `None` is the system-assigned one.
        client_id: Option<String>,
    },
    /// The projected service-account token exchanged at Entra ID (AKS workload identity).
    Workload {
        /// `scheme://host[:port]` of Entra ID.
        authority_host: String,
        /// The directory (tenant) id or a verified domain.
        tenant_id: String,
        /// The client id of the federated identity.
        client_id: String,
        /// The token file, as the guest sees it.
        token_file: String,
    },
}

/// A setting that is missing or unusable; the message names the variable, never its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityError(pub String);

/// The `*_auth` value that selects [`EntraIdentity::Managed`].
pub const MANAGED_IDENTITY: &str = "managed-identity";
/// The `*_auth` value that selects [`EntraIdentity::Workload`].
pub const WORKLOAD_IDENTITY: &str = "workload-identity";

impl EntraIdentity {
    /// The identity `mode` (a `*_auth` value, compared without case) selects, read through
    /// `read` (a variable's trimmed value, `None` when unset or empty); `Ok(None)` for a
    /// mode that is not an identity (the caller's `api-key` or an unknown value).
    pub fn from_variables(
        mode: &str,
        names: &IdentityVariables,
        read: impl Fn(&'static str) -> Result<Option<String>, IdentityError>,
    ) -> Result<Option<EntraIdentity>, IdentityError> {
        let invalid = |name: &str, rule: &str| IdentityError(format!("{name} {rule}"));
        let origin = |name: &'static str, example: &str| -> Result<String, IdentityError> {
            let text = read(name)?.ok_or_else(|| {
                invalid(
                    name,
                    &format!("is not set; {mode} needs it ({example} on Azure) and it must be one of chat's allowed outbound hosts"),
                )
            })?;
            crate::parse_origin(&text).ok_or_else(|| {
                invalid(
                    name,
                    "must be scheme://host[:port] with scheme http or https",
                )
            })
        };
        let client_id = |required: bool| -> Result<Option<String>, IdentityError> {
            match read(names.client_id)? {
                Some(id) if is_client_id(&id) => Ok(Some(id)),
                Some(_) => Err(invalid(
                    names.client_id,
                    "must be a client id (letters, digits and dashes)",
                )),
                None if required => Err(invalid(
                    names.client_id,
                    "is not set; workload-identity needs the client id of the federated identity",
                )),
                None => Ok(None),
            }
        };
        if mode.eq_ignore_ascii_case(MANAGED_IDENTITY) {
            return Ok(Some(EntraIdentity::Managed {
                token_origin: origin(names.token_origin, "http://169.254.169.254")?,
                client_id: client_id(false)?,
            }));
        }
        if !mode.eq_ignore_ascii_case(WORKLOAD_IDENTITY) {
            return Ok(None);
        }
        let tenant_id = match read(names.tenant_id)? {
            Some(tenant) if is_tenant_id(&tenant) => tenant,
            Some(_) => {
                return Err(invalid(
                    names.tenant_id,
                    "must be a directory (tenant) id or a verified domain",
                ));
            }
            None => {
                return Err(invalid(
                    names.tenant_id,
                    "is not set; workload-identity needs the directory (tenant) id",
                ));
            }
        };
        let client_id = client_id(true)?.unwrap_or_default();
        let authority_host = origin(names.authority_host, DEFAULT_AUTHORITY_HOST)?;
        let token_file = read(names.token_file)?.unwrap_or_else(|| DEFAULT_TOKEN_FILE.into());
        if !is_token_file_path(&token_file) {
            return Err(invalid(
                names.token_file,
                "must be an absolute path without `.` or `..` parts",
            ));
        }
        Ok(Some(EntraIdentity::Workload {
            authority_host,
            tenant_id,
            client_id,
            token_file,
        }))
    }

    /// Where this identity's tokens for `resource` (the audience, e.g.
    /// `https://cognitiveservices.azure.com`) come from; `cache_owner` names the component
    /// in the cache key, `names` the variables failures point at.
    pub fn token_source<'a>(
        &'a self,
        resource: &'a str,
        cache_owner: &'a str,
        names: &IdentityVariables,
    ) -> TokenSource<'a> {
        match self {
            EntraIdentity::Managed {
                token_origin,
                client_id,
            } => TokenSource::Managed(ManagedIdentity {
                token_origin,
                client_id: client_id.as_deref(),
                resource,
                cache_owner,
                client_id_variable: names.client_id,
            }),
            EntraIdentity::Workload {
                authority_host,
                tenant_id,
                client_id,
                token_file,
            } => TokenSource::Workload(WorkloadIdentity {
                authority_host,
                tenant_id,
                client_id,
                token_file,
                resource,
                cache_owner,
                variables: WorkloadVariables {
                    authority_host: names.authority_host,
                    tenant_id: names.tenant_id,
                    client_id: names.client_id,
                    token_file: names.token_file,
                },
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: IdentityVariables = IdentityVariables {
        token_origin: "x_token_origin",
        client_id: "x_client_id",
        tenant_id: "x_tenant_id",
        authority_host: "x_authority_host",
        token_file: "x_token_file",
    };
    const CLIENT: &str = "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d";

    fn parse(mode: &str, pairs: &[(&str, &str)]) -> Result<Option<EntraIdentity>, IdentityError> {
        EntraIdentity::from_variables(mode, &NAMES, |name| {
            Ok(pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string()))
        })
    }

    fn refusal(mode: &str, pairs: &[(&str, &str)]) -> String {
        parse(mode, pairs).unwrap_err().0
    }

    #[test]
    fn other_modes_are_not_identities() {
        assert_eq!(parse("api-key", &[]), Ok(None));
        assert_eq!(parse("", &[]), Ok(None));
    }

    #[test]
    fn a_managed_identity_needs_its_endpoint_and_may_name_a_user_assigned_one() {
        let message = refusal("managed-identity", &[]);
        assert!(
            message.starts_with("x_token_origin is not set"),
            "{message}"
        );
        assert!(message.contains("http://169.254.169.254"), "{message}");
        assert_eq!(
            parse(
                "Managed-Identity",
                &[("x_token_origin", "http://169.254.169.254/")]
            ),
            Ok(Some(EntraIdentity::Managed {
                token_origin: "http://169.254.169.254".into(),
                client_id: None,
            }))
        );
        let user_assigned = parse(
            "managed-identity",
            &[
                ("x_token_origin", "http://169.254.169.254"),
                ("x_client_id", CLIENT),
            ],
        );
        assert!(matches!(
            user_assigned,
            Ok(Some(EntraIdentity::Managed { client_id: Some(id), .. })) if id == CLIENT
        ));
    }

    #[test]
    fn a_workload_identity_needs_tenant_client_and_authority_and_defaults_the_file() {
        let mut pairs = vec![];
        for (missing, value) in [
            ("x_tenant_id", "contoso.onmicrosoft.com"),
            ("x_client_id", CLIENT),
            ("x_authority_host", "https://login.microsoftonline.com"),
        ] {
            let message = refusal("workload-identity", &pairs);
            assert!(
                message.starts_with(&format!("{missing} is not set")),
                "{message}"
            );
            pairs.push((missing, value));
        }
        assert_eq!(
            parse("workload-identity", &pairs),
            Ok(Some(EntraIdentity::Workload {
                authority_host: "https://login.microsoftonline.com".into(),
                tenant_id: "contoso.onmicrosoft.com".into(),
                client_id: CLIENT.into(),
                token_file: DEFAULT_TOKEN_FILE.into(),
            }))
        );
    }

    #[test]
    fn values_that_could_reshape_the_token_request_are_refused_without_quoting_them() {
        let good = [
            ("x_tenant_id", "t"),
            ("x_client_id", CLIENT),
            ("x_authority_host", "https://login.microsoftonline.com"),
        ];
        for (name, value) in [
            ("x_tenant_id", "a/b-secret"),
            ("x_client_id", "a&scope=secret"),
            ("x_authority_host", "https://login.example/secret"),
            ("x_token_file", "../secret"),
        ] {
            let mut pairs: Vec<_> = good.iter().copied().filter(|(n, _)| *n != name).collect();
            pairs.push((name, value));
            let message = refusal("workload-identity", &pairs);
            assert!(message.starts_with(name), "{message}");
            assert!(!message.contains("secret"), "{message}");
        }
    }

    #[test]
    fn token_sources_carry_the_resource_owner_and_variable_names() {
        let managed = EntraIdentity::Managed {
            token_origin: "http://169.254.169.254".into(),
            client_id: None,
        };
        let TokenSource::Managed(source) =
            managed.token_source("https://search.azure.com", "owner", &NAMES)
        else {
            panic!("a managed identity's source");
        };
        assert_eq!(source.resource, "https://search.azure.com");
        assert_eq!(source.cache_owner, "owner");
        assert_eq!(source.client_id_variable, "x_client_id");
        let workload = EntraIdentity::Workload {
            authority_host: "https://login.microsoftonline.com".into(),
            tenant_id: "t".into(),
            client_id: CLIENT.into(),
            token_file: "/f".into(),
        };
        let TokenSource::Workload(source) = workload.token_source("r", "o", &NAMES) else {
            panic!("a workload identity's source");
        };
        assert_eq!(source.variables.token_file, "x_token_file");
        assert_eq!(source.variables.authority_host, "x_authority_host");
        assert_eq!(source.token_file, "/f");
    }
}
