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

/// Hosts compare case-insensitively, and IP addresses by value (`0:0::1` is `::1`).
fn canonical_host(host: &str) -> String {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.to_string(),
        Err(_) => host.trim_end_matches('.').to_ascii_lowercase(),
    }
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
        let entry = entry.trim();
        let bad = |why: &str| format!("allowed outbound host `{entry}`: {why}");
        if entry.is_empty() {
            return Err("an allowed outbound host is empty".into());
        }
        let (scheme, rest) = entry
            .split_once("://")
            .ok_or_else(|| bad("must have the form scheme://host[:port]"))?;
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains('/') {
            return Err(bad(
                "must not contain a path (CIDR ranges are not supported by chatgate)",
            ));
        }
        if authority.contains('@') {
            return Err(bad("must not contain user information"));
        }
        let parse_port = |port: &str| match port {
            "*" => Ok(PortPattern::Any),
            p => p
                .parse()
                .map(PortPattern::Exact)
                .map_err(|_| bad("has a bad port (port ranges are not supported by chatgate)")),
        };
        let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| bad("has an unclosed `[`"))?;
            let port = match after {
                "" => PortPattern::SchemeDefault,
                after => parse_port(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| bad("has text after `]`"))?,
                )?,
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, parse_port(port)?),
                None => (authority, PortPattern::SchemeDefault),
            }
        };
        let scheme = match scheme {
            "*" => Pattern::Any,
            "http" | "https" => Pattern::Exact(scheme.to_string()),
            other => {
                return Err(bad(&format!(
                    "scheme `{other}` is not supported (http, https or *)"
                )));
            }
        };
        if port == PortPattern::SchemeDefault && scheme == Pattern::Any {
            return Err(bad("a `*` scheme needs an explicit port"));
        }
        let host = if host == "*" {
            Pattern::Any
        } else if let Some(suffix) = host.strip_prefix("*.") {
            Pattern::Suffix(suffix.to_string())
        } else if host.contains('*') || host.is_empty() {
            return Err(bad(
                "`*` may only stand for a whole host or a leading label",
            ));
        } else if host == "self" || host == "self.alt" {
            return Err(bad(
                "service chaining (`self`) is not supported by chatgate",
            ));
        } else {
            Pattern::Exact(canonical_host(host))
        };
        Ok(AllowedHost { scheme, host, port })
    }

    /// Parses a manifest entry given as written (`template`) and as resolved from the
    /// app's variables. As in Spin, an entry built from variables that resolves to
    /// nothing but an empty origin (`""`, `http://`, `https://`) is skipped, so that an
    /// endpoint can be optional; a literal entry is always parsed, so an empty one is
    /// still an error.
    pub fn parse_or_skip(template: &str, resolved: &str) -> Result<Option<Self>, String> {
        let is_template = template.contains("{{");
        if is_template && matches!(resolved, "" | "http://" | "https://") {
            return Ok(None);
        }
        Self::parse(resolved).map(Some)
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

impl FromIterator<AllowedHost> for OutboundPolicy {
    fn from_iter<I: IntoIterator<Item = AllowedHost>>(hosts: I) -> Self {
        OutboundPolicy {
            allowed: hosts.into_iter().collect(),
        }
    }
}

impl OutboundPolicy {
    pub fn parse(entries: &[String]) -> Result<Self, String> {
        let allowed = entries
            .iter()
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
        let host = canonical_host(host.trim_start_matches('[').trim_end_matches(']'));
        let host = host.as_str();
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
    fn ipv6_hosts_match_by_address() {
        let p = policy(&["http://[::1]:8080", "https://[2001:db8::1]"]);
        assert!(allowed(&p, "http://[::1]:8080/v1"));
        assert!(allowed(&p, "http://[0:0::1]:8080/v1"));
        assert!(allowed(&p, "https://[2001:db8:0::1]/"));
        assert!(!allowed(&p, "http://[::1]:8081/v1"));
        assert!(!allowed(&p, "http://127.0.0.1:8080/v1"));
    }

    #[test]
    fn a_template_resolving_to_an_empty_origin_is_skipped() {
        for resolved in ["", "http://", "https://"] {
            assert_eq!(
                AllowedHost::parse_or_skip("{{ optional_origin }}", resolved),
                Ok(None),
                "{resolved:?}"
            );
        }
        assert_eq!(
            AllowedHost::parse_or_skip("https://{{ host }}", "https://"),
            Ok(None)
        );
    }

    /// Secure by default: run on its embedded defaults, the shipped manifest lets `chat`
    /// (and the dependencies that inherit its hosts) reach the OpenAI API and nothing
    /// else; Entra ID, token endpoints and search services only once a variable names them.
    #[test]
    fn the_shipped_manifest_allows_only_the_openai_api_by_default() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spin.toml");
        let manifest = crate::manifest::Manifest::load(&path).unwrap();
        let variables = crate::variables::AppVariables::resolve(&manifest, |_| None).unwrap();
        let allowed: Vec<AllowedHost> = manifest.components["chat"]
            .allowed_outbound_hosts
            .iter()
            .filter_map(|template| {
                let entry = variables.expand(template).unwrap();
                AllowedHost::parse_or_skip(template, &entry).unwrap()
            })
            .collect();
        assert_eq!(
            allowed,
            [AllowedHost::parse("https://api.openai.com").unwrap()]
        );
        for (name, component) in &manifest.components {
            if name != "chat" {
                assert!(
                    component.allowed_outbound_hosts.is_empty(),
                    "{name} may reach {:?}",
                    component.allowed_outbound_hosts
                );
            }
        }
    }

    #[test]
    fn an_empty_literal_entry_stays_an_error() {
        for literal in ["", "http://", "https://"] {
            assert!(
                AllowedHost::parse_or_skip(literal, literal).is_err(),
                "{literal:?}"
            );
        }
    }

    #[test]
    fn a_template_resolving_to_an_origin_is_parsed_and_enforced() {
        let entry = AllowedHost::parse_or_skip("{{ origin }}", "https://api.openai.com")
            .unwrap()
            .expect("an origin is not skipped");
        let p: OutboundPolicy = [entry].into_iter().collect();
        assert!(allowed(&p, "https://api.openai.com/v1/models"));
        assert!(!allowed(&p, "https://example.com/"));
        // Only an empty origin is optional: anything else malformed is still an error.
        for resolved in ["ftp://", " ", "https://a.com/v1", "api.openai.com"] {
            assert!(
                AllowedHost::parse_or_skip("{{ origin }}", resolved).is_err(),
                "{resolved:?}"
            );
        }
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
