//! Where a component's Entra ID tokens come from: an IMDS-shaped managed-identity
//! endpoint ([`crate::identity`]) or workload identity federation
//! ([`crate::workload_identity`]). `chatgate-guest-io`'s `fetch_token` takes either and
//! caches both the same way.

use crate::identity::{ENTRA_TOKEN_ENDPOINT, MANAGED_IDENTITY_ENDPOINT, ManagedIdentity};
use crate::workload_identity::WorkloadIdentity;

/// Where a component's tokens come from: both are fetched, cached and forgotten by the
/// same code (`chatgate-guest-io`'s `fetch_token`), only the request differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSource<'a> {
    /// An IMDS-shaped managed-identity endpoint.
    Managed(ManagedIdentity<'a>),
    /// Workload identity federation: a projected token exchanged at Entra ID.
    Workload(WorkloadIdentity<'a>),
}

impl TokenSource<'_> {
    /// The key-value key the token is cached under; the two kinds never share one.
    pub fn cache_key(&self) -> String {
        match self {
            TokenSource::Managed(identity) => identity.cache_key(),
            TokenSource::Workload(identity) => identity.cache_key(),
        }
    }

    /// How failures name the endpoint that hands out the tokens.
    pub fn endpoint(&self) -> &'static str {
        match self {
            TokenSource::Managed(_) => MANAGED_IDENTITY_ENDPOINT,
            TokenSource::Workload(_) => ENTRA_TOKEN_ENDPOINT,
        }
    }
}
