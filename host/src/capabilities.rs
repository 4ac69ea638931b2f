//! Configuration sets (capabilities): their names, the host interfaces each one covers,
//! and what a dependency inherits of them from its primary component.
//!
//! This is the one place these rules live, as in Spin's `crates/capabilities/src/lib.rs`:
//! the manifest checks `inherit_configuration` against the names, the composer decides
//! which imports to deny from the interfaces and the inheritance, and the loader records
//! which sets a component holds something in. Keeping them here, with no dependency on
//! either the manifest or the composer, is what lets those two not depend on each other.

use serde::Deserialize;
use std::collections::BTreeSet;

/// `variables`: `spin:variables` and `wasi:config/store`.
pub const VARIABLES: &str = "variables";
/// `key_value_stores`: `spin:key-value` and `wasi:keyvalue`.
pub const KEY_VALUE_STORES: &str = "key_value_stores";
/// `allowed_outbound_hosts`: outbound HTTP, sockets and Spin's database clients.
pub const ALLOWED_OUTBOUND_HOSTS: &str = "allowed_outbound_hosts";
/// `environment`: `wasi:cli/environment`.
pub const ENVIRONMENT: &str = "environment";
/// `files`: `wasi:filesystem/preopens`.
pub const FILES: &str = "files";
/// `ai_models`: Spin's LLM interface.
pub const AI_MODELS: &str = "ai_models";
/// `sqlite_databases`: Spin's SQLite interface.
pub const SQLITE_DATABASES: &str = "sqlite_databases";

/// Host interfaces, by configuration set, that a dependency reaches only when it inherits the set.
/// Matching is by interface name without version (`wasi:http/client@0.3.0` matches `wasi:http/client`).
/// Spin's lists (`crates/capabilities/src/lib.rs`:31-89 at spin commit 94a8fc8a) name
/// each version; chatgate matches every version of the same interfaces.
const SETS: &[(&str, &[&str])] = &[
    (AI_MODELS, &["fermyon:spin/llm"]),
    (
        ALLOWED_OUTBOUND_HOSTS,
        // As Spin: what makes a connection or a lookup. `wasi:sockets/network` and
        // `instance-network` only name the network and its types (they stay with the
        // host, so that the sockets interfaces keep one `network` type). WASI 0.3 creates
        // sockets with `wasi:sockets/types`, which Spin does not list; chatgate denies it.
        &[
            "wasi:http/client",
            "wasi:http/outgoing-handler",
            "wasi:sockets/types",
            "wasi:sockets/tcp",
            "wasi:sockets/udp",
            "wasi:sockets/tcp-create-socket",
            "wasi:sockets/udp-create-socket",
            "wasi:sockets/ip-name-lookup",
            "spin:mqtt/mqtt",
            "spin:mysql/mysql",
            "spin:postgres/postgres",
            "spin:redis/redis",
        ],
    ),
    (ENVIRONMENT, &["wasi:cli/environment"]),
    (FILES, &["wasi:filesystem/preopens"]),
    (
        KEY_VALUE_STORES,
        // Spin's deny adapter covers only `wasi:keyvalue/store`; `atomics` and `batch`
        // take the store's `bucket`, so chatgate denies all three together, keeping each
        // interface's resource types in one place (the deny component).
        &[
            "spin:key-value/key-value",
            "wasi:keyvalue/store",
            "wasi:keyvalue/batch",
            "wasi:keyvalue/atomics",
        ],
    ),
    (SQLITE_DATABASES, &["spin:sqlite/sqlite"]),
    (
        VARIABLES,
        &["spin:variables/variables", "wasi:config/store"],
    ),
];

// `wasi:otel` (tracing, logs, metrics) is in no set, so it is never denied: a dependency
// importing it (the completion components report their GenAI span and metrics through
// it, composed into `chat`) reaches the host as the primary does, whatever it inherits.
// That is Spin's rule too, read at commit 94a8fc8a: `crates/capabilities/src/lib.rs`
// (`CAPABILITY_SETS`, no `wasi:otel` in any set), `crates/capabilities/src/deny.rs`
// (`apply_deny_adapter` plugs only the adapter's exports outside the allow list) and
// `crates/capabilities/deny-adapter/src/lib.rs` (the adapter's world exports no
// `wasi:otel` interface); `crates/compose/src/lib.rs` (`register_dependency`, then
// `graph.encode`) leaves a dependency's unplugged imports to the composed component,
// which `crates/factor-otel/src/lib.rs` links when Spin runs with
// `--experimental-wasi-otel`. Not run on a Spin binary.

/// The names of the configuration sets a dependency can inherit (`inherit_configuration`).
pub fn sets() -> impl Iterator<Item = &'static str> {
    SETS.iter().map(|(set, _)| *set)
}

/// The configuration set an import belongs to, if it is configuration-bearing.
pub fn set_of(import: &str) -> Option<&'static str> {
    let interface = import.split('@').next().unwrap_or(import);
    SETS.iter()
        .find(|(_, interfaces)| interfaces.contains(&interface))
        .map(|(set, _)| *set)
}

/// Checks the names in an `inherit_configuration` list. Spin ignores an unknown name
/// (`crates/capabilities/src/lib.rs`:16-17); chatgate refuses it, since a misspelt set
/// would silently deny what the author meant to grant.
pub fn check_names(names: &[String]) -> Result<(), String> {
    match names.iter().find(|name| set_of_name(name).is_none()) {
        None => Ok(()),
        Some(unknown) => Err(format!(
            "unknown configuration `{unknown}` in inherit_configuration (known: {})",
            sets().collect::<Vec<_>>().join(", ")
        )),
    }
}

fn set_of_name(name: &str) -> Option<&'static str> {
    sets().find(|known| *known == name)
}

/// `inherit_configuration = true | false | ["variables", "allowed_outbound_hosts", ...]`,
/// as the manifest spells it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum InheritConfiguration {
    All(bool),
    Some(Vec<String>),
}

/// Which configuration sets a dependency inherits from the primary component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inherit {
    All,
    Sets(Vec<String>),
}

impl Inherit {
    /// Absent and `false` both inherit nothing, as in Spin.
    pub fn from_manifest(value: Option<&InheritConfiguration>) -> Self {
        match value {
            Some(InheritConfiguration::All(true)) => Inherit::All,
            Some(InheritConfiguration::Some(sets)) => Inherit::Sets(sets.clone()),
            Some(InheritConfiguration::All(false)) | None => Inherit::Sets(Vec::new()),
        }
    }

    /// Whether the set named `set` is inherited.
    pub fn grants(&self, set: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Sets(sets) => sets.iter().any(|s| s == set),
        }
    }
}

/// The configuration sets the primary component holds something in (variables, stores,
/// outbound hosts, environment), that is, what a dependency could reach through the host.
#[derive(Debug, Clone, Default)]
pub struct Holds(pub BTreeSet<&'static str>);

impl Holds {
    /// Every set: every dependency is denied all it does not inherit.
    pub fn everything() -> Self {
        Holds(sets().collect())
    }

    /// The sets among `held` whose flag is set (a component's `variables` non-empty, ...).
    pub fn from_flags(held: impl IntoIterator<Item = (&'static str, bool)>) -> Self {
        Holds(
            held.into_iter()
                .filter_map(|(set, held)| held.then_some(set))
                .collect(),
        )
    }

    /// Whether a part inheriting `inherit` must be kept from `import` by a deny component.
    /// A set the primary holds nothing in answers a dependency's calls with the same
    /// refusals from the host (no variable, no store, no outbound host, an empty
    /// environment), so it needs no deny component: that saves the component's instance
    /// and memory on every request.
    pub fn denies(&self, inherit: &Inherit, import: &str) -> bool {
        set_of(import).is_some_and(|set| !inherit.grants(set) && self.0.contains(set))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_sets_cover_spin_and_wasi_interfaces() {
        assert_eq!(
            set_of("wasi:http/client@0.3.0"),
            Some(ALLOWED_OUTBOUND_HOSTS)
        );
        assert_eq!(set_of("spin:variables/variables@3.0.0"), Some(VARIABLES));
        assert_eq!(
            set_of("spin:key-value/key-value@3.0.0"),
            Some(KEY_VALUE_STORES)
        );
        assert_eq!(set_of("wasi:cli/environment@0.3.0"), Some(ENVIRONMENT));
        assert_eq!(set_of("wasi:http/types@0.3.0"), None);
        assert_eq!(set_of("wasi:clocks/monotonic-clock@0.3.0"), None);
    }

    #[test]
    fn wasi_keyvalue_interfaces_need_key_value_stores() {
        for name in [
            "wasi:keyvalue/store@0.2.0-draft2",
            "wasi:keyvalue/atomics@0.2.0-draft2",
            "wasi:keyvalue/batch@0.2.0-draft2",
        ] {
            assert_eq!(set_of(name), Some(KEY_VALUE_STORES), "{name}");
        }
    }

    #[test]
    fn socket_interfaces_need_allowed_outbound_hosts() {
        for name in [
            "wasi:sockets/types@0.3.0",
            "wasi:sockets/tcp@0.2.6",
            "wasi:sockets/udp@0.2.6",
            "wasi:sockets/tcp-create-socket@0.2.6",
            "wasi:sockets/ip-name-lookup@0.3.0",
        ] {
            assert_eq!(set_of(name), Some(ALLOWED_OUTBOUND_HOSTS), "{name}");
        }
        // Only names the network: it stays with the host, as in Spin's list, so that every
        // sockets interface a dependency imports agrees on one `network` type.
        assert_eq!(set_of("wasi:sockets/network@0.2.6"), None);
    }

    #[test]
    fn inheritance_grants_only_named_sets() {
        let some =
            Inherit::from_manifest(Some(&InheritConfiguration::Some(vec!["variables".into()])));
        assert!(some.grants(VARIABLES));
        assert!(!some.grants(ALLOWED_OUTBOUND_HOSTS));
        assert!(Inherit::from_manifest(Some(&InheritConfiguration::All(true))).grants(FILES));
        assert!(!Inherit::from_manifest(Some(&InheritConfiguration::All(false))).grants(VARIABLES));
        assert!(!Inherit::from_manifest(None).grants(VARIABLES));
    }

    #[test]
    fn unknown_set_names_are_refused_with_the_known_ones() {
        assert!(check_names(&["variables".into(), "files".into()]).is_ok());
        let err = check_names(&["variable".into()]).unwrap_err();
        assert!(err.contains("`variable`"), "{err}");
        assert!(err.contains("key_value_stores"), "{err}");
    }

    #[test]
    fn wasi_otel_is_never_denied_to_a_dependency() {
        let holds = Holds::everything();
        for name in [
            "wasi:otel/tracing@0.2.0-rc.2",
            "wasi:otel/logs@0.2.0-rc.2",
            "wasi:otel/metrics@0.2.0-rc.2",
            "wasi:otel/types@0.2.0-rc.2",
        ] {
            assert_eq!(set_of(name), None, "{name}");
            assert!(!holds.denies(&Inherit::Sets(Vec::new()), name), "{name}");
        }
    }

    #[test]
    fn only_held_sets_a_part_does_not_inherit_are_denied() {
        let holds = Holds::from_flags([(VARIABLES, true), (ENVIRONMENT, false)]);
        let inherits_nothing = Inherit::Sets(Vec::new());
        assert!(holds.denies(&inherits_nothing, "spin:variables/variables@3.0.0"));
        // Held nothing in: the host's own answer is already a refusal.
        assert!(!holds.denies(&inherits_nothing, "wasi:cli/environment@0.3.0"));
        // Not configuration-bearing at all.
        assert!(!holds.denies(&inherits_nothing, "wasi:clocks/monotonic-clock@0.3.0"));
        assert!(!holds.denies(
            &Inherit::Sets(vec![VARIABLES.into()]),
            "spin:variables/variables@3.0.0"
        ));
        assert!(!holds.denies(&Inherit::All, "spin:variables/variables@3.0.0"));
    }
}
