//! `allowed_outbound_hosts`: which URLs a component may send requests to.
//! Everything not listed is refused; the list is empty by default.
//!
//! Entries follow Spin's syntax: `scheme://host[:port]`, where the scheme may be
//! `*`, the host may be `*` or `*.suffix`, and the port may be `*` (any) or
//! omitted (the scheme's default port).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(String),
    /// `*.example.com`: any subdomain, not the apex.
    Suffix(String),
}

impl Pattern {
    fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Any => true,
            Pattern::Exact(v) => v.eq_ignore_ascii_case(value),
            Pattern::Suffix(s) => {
                value.len() > s.len() + 1
                    && value[value.len() - s.len()..].eq_ignore_ascii_case(s)
                    && value.as_bytes()[value.len() - s.len() - 1] == b'.'
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PortPattern {
    Any,
    Exact(u16),
    SchemeDefault,
}

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Pattern,
    host: Pattern,
    port: PortPattern,
}

fn default_port(scheme: &str) -> Option<u16> {
    match scheme.to_ascii_lowercase().as_str() {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

impl AllowedHost {
    pub fn parse(entry: &str) -> Result<Self, String> {
        let (scheme, rest) = entry.split_once("://").ok_or_else(|| {
            format!("allowed outbound host `{entry}` must have the form scheme://host[:port]")
        })?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.is_empty() {
            return Err(format!(
                "allowed outbound host `{entry}` must not contain a path"
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
                let port =
                    if port == "*" {
                        PortPattern::Any
                    } else {
                        PortPattern::Exact(port.parse().map_err(|_| {
                            format!("allowed outbound host `{entry}` has a bad port")
                        })?)
                    };
                (host, port)
            }
            _ => (authority, PortPattern::SchemeDefault),
        };
        let scheme = match scheme {
            "*" => Pattern::Any,
            "http" | "https" => Pattern::Exact(scheme.to_string()),
            other => {
                return Err(format!(
                    "allowed outbound host `{entry}`: scheme `{other}` is not supported (http, https or *)"
                ));
            }
        };
        if port == PortPattern::SchemeDefault && scheme == Pattern::Any {
            return Err(format!(
                "allowed outbound host `{entry}`: a `*` scheme needs an explicit port"
            ));
        }
        let host = if host == "*" {
            Pattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            Pattern::Suffix(suffix.to_string())
        } else if host.contains('*') || host.is_empty() {
            return Err(format!(
                "allowed outbound host `{entry}`: `*` may only stand for a whole host or a leading label"
            ));
        } else {
            Pattern::Exact(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_string(),
            )
        };
        Ok(AllowedHost { scheme, host, port })
    }

    fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        let port_ok = match self.port {
            PortPattern::Any => true,
            PortPattern::Exact(p) => p == port,
            PortPattern::SchemeDefault => default_port(scheme) == Some(port),
        };
        port_ok && self.scheme.matches(scheme) && self.host.matches(host)
    }
}

/// A component's outbound policy.
#[derive(Debug, Clone, Default)]
pub struct OutboundPolicy {
    allowed: Vec<AllowedHost>,
}

/// An outbound request the policy refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    pub origin: String,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "outbound request to {} denied: not in allowed_outbound_hosts",
            self.origin
        )
    }
}

impl OutboundPolicy {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let allowed = entries
            .iter()
            .filter(|e| !e.is_empty())
            .map(|e| AllowedHost::parse(e))
            .collect::<Result<_, _>>()?;
        Ok(OutboundPolicy { allowed })
    }

    /// Checks a request URI; a URI without scheme or host is refused.
    pub fn check(&self, uri: &http::Uri) -> Result<(), Denied> {
        let scheme = uri.scheme_str().unwrap_or("");
        let host = uri.host().unwrap_or("");
        let port = uri.port_u16().or_else(|| default_port(scheme));
        let origin = match uri.port_u16() {
            Some(p) => format!("{scheme}://{host}:{p}"),
            None => format!("{scheme}://{host}"),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match port {
            Some(port)
                if !host.is_empty()
                    && self.allowed.iter().any(|a| a.allows(scheme, host, port)) =>
            {
                Ok(())
            }
            _ => Err(Denied { origin }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(entries: &[&str]) -> OutboundPolicy {
        OutboundPolicy::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn allowed(p: &OutboundPolicy, uri: &str) -> bool {
        p.check(&uri.parse().unwrap()).is_ok()
    }

    #[test]
    fn empty_policy_denies_everything() {
        let p = policy(&[]);
        assert!(!allowed(&p, "https://api.openai.com/v1/chat/completions"));
    }

    #[test]
    fn exact_origin_with_default_port() {
        let p = policy(&["https://api.openai.com"]);
        assert!(allowed(&p, "https://api.openai.com/v1/models"));
        assert!(allowed(&p, "https://API.openai.com:443/v1/models"));
        assert!(!allowed(&p, "http://api.openai.com/v1/models"));
        assert!(!allowed(&p, "https://api.openai.com:8443/"));
        assert!(!allowed(&p, "https://api.openai.com.evil.example/"));
    }

    #[test]
    fn wildcards_for_subdomains_and_ports() {
        let p = policy(&["https://*.openai.azure.com", "http://127.0.0.1:*"]);
        assert!(allowed(
            &p,
            "https://contoso.openai.azure.com/openai/deployments/x"
        ));
        assert!(!allowed(&p, "https://openai.azure.com/"));
        assert!(!allowed(&p, "https://evilopenai.azure.com/"));
        assert!(allowed(&p, "http://127.0.0.1:8080/v1"));
        assert!(!allowed(&p, "http://localhost:8080/v1"));
    }

    #[test]
    fn denial_names_the_origin_only() {
        let p = policy(&["https://example.com"]);
        let err = p
            .check(&"http://10.0.0.1:81/secret?key=abc".parse().unwrap())
            .unwrap_err();
        assert_eq!(err.origin, "http://10.0.0.1:81");
        assert!(!err.to_string().contains("key=abc"));
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [
            "api.openai.com",
            "https://a.com/v1",
            "ftp://a.com",
            "*://a.com",
            "https://a*.com",
            "https://a.com:x",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }
}
