//! Composition of one HTTP trigger into a single component with `wac-graph`,
//! following Spin's semantics:
//!
//! * each of the primary component's `dependencies` is instantiated and its export
//!   plugged into the primary's import of the same (or the given `export`) name;
//! * the trigger's `dependencies.middleware` wrap the result, outermost first, each
//!   importing and exporting `wasi:http/handler@0.3.0`;
//! * the composed component runs with the *primary* component's configuration, and a
//!   dependency or middleware reaches a configuration-bearing host interface only if
//!   it inherits that configuration set (`inherit_configuration`). Every other such
//!   import is routed to a separate `chatgate-deny-*` import, which the host
//!   satisfies with functions that refuse (see `runtime`).

use crate::manifest::InheritConfiguration;
use std::collections::BTreeMap;
use wac_graph::types::{Package, are_semver_compatible};
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

/// The interface every middleware imports and exports, and the composed result exports.
pub const HANDLER_INTERFACE: &str = "wasi:http/handler@0.3.0";

/// Prefix of the imports that stand for configuration a dependency was not granted.
pub const DENY_PREFIX: &str = "chatgate-deny-";

/// Host interfaces, by configuration set, that a dependency reaches only when it inherits the set.
/// Matching is by interface name without version (`wasi:http/client@0.3.0` matches `wasi:http/client`).
const CAPABILITY_INTERFACES: &[(&str, &[&str])] = &[
    ("ai_models", &["fermyon:spin/llm"]),
    (
        "allowed_outbound_hosts",
        &[
            "wasi:http/client",
            "wasi:http/outgoing-handler",
            "wasi:sockets/types",
            "wasi:sockets/network",
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
    ("environment", &["wasi:cli/environment"]),
    ("files", &["wasi:filesystem/preopens"]),
    (
        "key_value_stores",
        // Spin's deny adapter covers only `wasi:keyvalue/store`, leaving atomics and batch
        // unusable for want of a bucket; denying all three keeps the bucket resource of a
        // dependency's imports in one place, the deny imports.
        &[
            "spin:key-value/key-value",
            "wasi:keyvalue/store",
            "wasi:keyvalue/batch",
            "wasi:keyvalue/atomics",
        ],
    ),
    ("sqlite_databases", &["spin:sqlite/sqlite"]),
    (
        "variables",
        &["spin:variables/variables", "wasi:config/store"],
    ),
];

/// Why a trigger could not be composed.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error("`{name}` is not a valid WebAssembly component: {message}")]
    NotAComponent { name: String, message: String },
    #[error(
        "`{component}` imports `{import}`, but no dependency provides it and the host does not either"
    )]
    Unsatisfied { component: String, import: String },
    #[error("dependency `{dependency}` does not export `{export}` (it exports: {available})")]
    MissingExport {
        dependency: String,
        export: String,
        available: String,
    },
    #[error("middleware `{0}` must import and export `wasi:http/handler@0.3.0`")]
    NotMiddleware(String),
    #[error("`{0}` does not export `wasi:http/handler@0.3.0`: it is not a WASIp3 HTTP component")]
    NotHttpComponent(String),
    #[error("composition failed: {0}")]
    Graph(String),
}

/// A valid plain import name, unique per part and interface version, e.g.
/// `chatgate-deny-p2-wasi-http-client-v030` for part 2's `wasi:http/client@0.3.0`.
fn deny_name(part_index: usize, interface: &str) -> String {
    let (unversioned, version) = interface.split_once('@').unwrap_or((interface, ""));
    let mut words: Vec<String> = unversioned
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| w.chars().next().is_some_and(|c| c.is_ascii_alphabetic()))
        .map(str::to_ascii_lowercase)
        .collect();
    let version: String = version
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    if !version.is_empty() {
        words.push(format!("v{}", version.to_ascii_lowercase()));
    }
    format!("{DENY_PREFIX}p{part_index}-{}", words.join("-"))
}

fn graph_error(e: impl std::fmt::Display) -> ComposeError {
    ComposeError::Graph(format!("{e:#}"))
}

/// One component to place in the composition.
pub struct Part {
    /// Name for messages (the manifest's component id or path).
    pub name: String,
    pub bytes: Vec<u8>,
    pub inherit: Inherit,
}

/// A primary component's dependency: the import it satisfies and what it exports for it.
pub struct Dependency {
    pub import: String,
    pub export: Option<String>,
    pub part: Part,
}

/// Which configuration sets a dependency inherits from the primary component.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inherit {
    All,
    Sets(Vec<String>),
}

impl Inherit {
    pub fn from_manifest(value: Option<&InheritConfiguration>) -> Self {
        match value {
            Some(InheritConfiguration::All(true)) => Inherit::All,
            Some(InheritConfiguration::Some(sets)) => Inherit::Sets(sets.clone()),
            Some(InheritConfiguration::All(false)) | None => Inherit::Sets(Vec::new()),
        }
    }

    fn grants(&self, set: &str) -> bool {
        match self {
            Inherit::All => true,
            Inherit::Sets(sets) => sets.iter().any(|s| s == set),
        }
    }
}

/// The names of the configuration sets a dependency can inherit (`inherit_configuration`).
pub fn capability_sets() -> impl Iterator<Item = &'static str> {
    CAPABILITY_INTERFACES.iter().map(|(set, _)| *set)
}

/// The configuration set an import belongs to, if it is configuration-bearing.
pub fn capability_set_of(import: &str) -> Option<&'static str> {
    let interface = import.split('@').next().unwrap_or(import);
    CAPABILITY_INTERFACES
        .iter()
        .find(|(_, interfaces)| interfaces.contains(&interface))
        .map(|(set, _)| *set)
}

/// The composed component, and for each deny import the interface it stands for.
pub struct Composed {
    pub bytes: Vec<u8>,
    pub denied: BTreeMap<String, String>,
}

struct Builder {
    graph: CompositionGraph,
    /// Deny import name -> the interface it stands for.
    denied: BTreeMap<String, String>,
}

impl Builder {
    fn register(&mut self, part: &Part, index: usize) -> Result<PackageId, ComposeError> {
        let package = Package::from_bytes(
            &format!("chatgate:part{index}"),
            None,
            part.bytes.clone(),
            self.graph.types_mut(),
        )
        .map_err(|e| ComposeError::NotAComponent {
            name: part.name.clone(),
            message: format!("{e:#}"),
        })?;
        self.graph.register_package(package).map_err(graph_error)
    }

    fn imports(&self, package: PackageId) -> Vec<(String, wac_graph::types::ItemKind)> {
        let ty = self.graph[package].ty();
        self.graph.types()[ty]
            .imports
            .iter()
            .map(|(name, kind)| (name.clone(), *kind))
            .collect()
    }

    fn exports(&self, package: PackageId) -> Vec<String> {
        let ty = self.graph[package].ty();
        self.graph.types()[ty].exports.keys().cloned().collect()
    }

    /// Instantiates a dependency or middleware, routing the configuration it does not
    /// inherit to deny imports of its own (typed by exactly what this part imports).
    fn instantiate_restricted(
        &mut self,
        package: PackageId,
        part_index: usize,
        inherit: &Inherit,
    ) -> Result<NodeId, ComposeError> {
        let instance = self.graph.instantiate(package);
        for (import, kind) in self.imports(package) {
            let Some(set) = capability_set_of(&import) else {
                continue;
            };
            if inherit.grants(set) {
                continue;
            }
            let name = deny_name(part_index, &import);
            let node = self.graph.import(&name, kind).map_err(graph_error)?;
            self.denied.insert(name, import.clone());
            self.graph
                .set_instantiation_argument(instance, &import, node)
                .map_err(graph_error)?;
        }
        Ok(instance)
    }

    fn alias_export(
        &mut self,
        instance: NodeId,
        package: PackageId,
        wanted: &str,
        part_name: &str,
    ) -> Result<NodeId, ComposeError> {
        let exports = self.exports(package);
        let name = exports
            .iter()
            .find(|e| *e == wanted)
            .or_else(|| exports.iter().find(|e| are_semver_compatible(e, wanted)))
            .ok_or_else(|| ComposeError::MissingExport {
                dependency: part_name.to_string(),
                export: wanted.to_string(),
                available: exports.join(", "),
            })?
            .clone();
        self.graph
            .alias_instance_export(instance, &name)
            .map_err(graph_error)
    }

    /// The primary's import name that `import` (from the manifest) refers to.
    fn matching_import(&self, package: PackageId, import: &str) -> Option<String> {
        let imports = self.imports(package);
        imports
            .iter()
            .find(|(name, _)| name == import)
            .or_else(|| {
                imports
                    .iter()
                    .find(|(name, _)| are_semver_compatible(name, import))
            })
            .or_else(|| {
                // `chatgate:rag/retriever` in a manifest names `chatgate:rag/retriever@0.1.0`.
                imports
                    .iter()
                    .find(|(name, _)| name.split('@').next() == Some(import))
            })
            .map(|(name, _)| name.clone())
    }
}

/// Composes a trigger's primary component with its dependencies and middleware.
pub fn compose(
    primary: Part,
    dependencies: Vec<Dependency>,
    middleware: Vec<Part>,
) -> Result<Composed, ComposeError> {
    let mut b = Builder {
        graph: CompositionGraph::new(),
        denied: BTreeMap::new(),
    };
    let primary_pkg = b.register(&primary, 0)?;
    if !b
        .exports(primary_pkg)
        .iter()
        .any(|e| are_semver_compatible(e, HANDLER_INTERFACE))
    {
        return Err(ComposeError::NotHttpComponent(primary.name));
    }

    let mut arguments = Vec::new();
    for (i, dep) in dependencies.iter().enumerate() {
        let import = b.matching_import(primary_pkg, &dep.import).ok_or_else(|| {
            ComposeError::Graph(format!(
                "`{}` declares a dependency on `{}`, but does not import it",
                primary.name, dep.import
            ))
        })?;
        let pkg = b.register(&dep.part, i + 1)?;
        let instance = b.instantiate_restricted(pkg, i + 1, &dep.part.inherit)?;
        let export = dep.export.clone().unwrap_or_else(|| import.clone());
        let wanted = if b.exports(pkg).iter().any(|e| e == &export) {
            export
        } else {
            b.exports(pkg)
                .into_iter()
                .find(|e| e.split('@').next() == export.split('@').next())
                .unwrap_or(export)
        };
        let node = b.alias_export(instance, pkg, &wanted, &dep.part.name)?;
        arguments.push((import, node));
    }

    let primary_instance = b.graph.instantiate(primary_pkg);
    for (import, node) in arguments {
        b.graph
            .set_instantiation_argument(primary_instance, &import, node)
            .map_err(graph_error)?;
    }
    let mut upstream = b.alias_export(
        primary_instance,
        primary_pkg,
        HANDLER_INTERFACE,
        &primary.name,
    )?;

    let offset = dependencies.len() + 1;
    for (i, mw) in middleware.iter().enumerate().rev() {
        let pkg = b.register(mw, offset + i)?;
        let handler_import = b
            .imports(pkg)
            .into_iter()
            .map(|(name, _)| name)
            .find(|name| are_semver_compatible(name, HANDLER_INTERFACE))
            .ok_or_else(|| ComposeError::NotMiddleware(mw.name.clone()))?;
        let instance = b.instantiate_restricted(pkg, offset + i, &mw.inherit)?;
        b.graph
            .set_instantiation_argument(instance, &handler_import, upstream)
            .map_err(graph_error)?;
        upstream = b.alias_export(instance, pkg, HANDLER_INTERFACE, &mw.name)?;
    }
    b.graph
        .export(upstream, HANDLER_INTERFACE)
        .map_err(graph_error)?;

    let bytes = b
        .graph
        .encode(EncodeOptions::default())
        .map_err(graph_error)?;
    Ok(Composed {
        bytes,
        denied: b.denied,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_sets_cover_spin_and_wasi_interfaces() {
        assert_eq!(
            capability_set_of("wasi:http/client@0.3.0"),
            Some("allowed_outbound_hosts")
        );
        assert_eq!(
            capability_set_of("spin:variables/variables@3.0.0"),
            Some("variables")
        );
        assert_eq!(
            capability_set_of("spin:key-value/key-value@3.0.0"),
            Some("key_value_stores")
        );
        assert_eq!(
            capability_set_of("wasi:cli/environment@0.3.0"),
            Some("environment")
        );
        assert_eq!(capability_set_of("wasi:http/types@0.3.0"), None);
        assert_eq!(capability_set_of("wasi:clocks/monotonic-clock@0.3.0"), None);
    }

    #[test]
    fn deny_names_are_valid_and_unique_per_part_and_version() {
        assert_eq!(
            deny_name(2, "wasi:http/client@0.3.0"),
            "chatgate-deny-p2-wasi-http-client-v030"
        );
        assert_ne!(
            deny_name(1, "wasi:cli/environment@0.2.6"),
            deny_name(1, "wasi:cli/environment@0.3.0")
        );
        assert_ne!(
            deny_name(1, "spin:variables/variables@3.0.0"),
            deny_name(2, "spin:variables/variables@3.0.0")
        );
        for name in [
            deny_name(3, "spin:key-value/key-value@3.0.0"),
            deny_name(1, "fermyon:spin/llm"),
        ] {
            // A plain import name is kebab-case: words that start with a letter.
            let kebab = name.split('-').all(|w| {
                w.chars().next().is_some_and(|c| c.is_ascii_lowercase())
                    && w.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            });
            assert!(kebab, "{name}");
        }
    }

    #[test]
    fn wasi_keyvalue_interfaces_need_key_value_stores() {
        for name in [
            "wasi:keyvalue/store@0.2.0-draft2",
            "wasi:keyvalue/atomics@0.2.0-draft2",
            "wasi:keyvalue/batch@0.2.0-draft2",
        ] {
            assert_eq!(capability_set_of(name), Some("key_value_stores"), "{name}");
        }
    }

    #[test]
    fn socket_interfaces_need_allowed_outbound_hosts() {
        for name in [
            "wasi:sockets/types@0.3.0",
            "wasi:sockets/tcp@0.2.6",
            "wasi:sockets/udp@0.2.6",
            "wasi:sockets/network@0.2.6",
        ] {
            assert_eq!(
                capability_set_of(name),
                Some("allowed_outbound_hosts"),
                "{name}"
            );
        }
    }

    #[test]
    fn inheritance_grants_only_named_sets() {
        let some =
            Inherit::from_manifest(Some(&InheritConfiguration::Some(vec!["variables".into()])));
        assert!(some.grants("variables"));
        assert!(!some.grants("allowed_outbound_hosts"));
        assert!(Inherit::from_manifest(Some(&InheritConfiguration::All(true))).grants("files"));
        assert!(
            !Inherit::from_manifest(Some(&InheritConfiguration::All(false))).grants("variables")
        );
        assert!(!Inherit::from_manifest(None).grants("variables"));
    }

    #[test]
    fn non_components_are_refused_by_name() {
        let err = compose(
            Part {
                name: "web".into(),
                bytes: b"\0asm\x01\0\0\0".to_vec(),
                inherit: Inherit::All,
            },
            vec![],
            vec![],
        )
        .err()
        .unwrap();
        assert!(
            err.to_string()
                .contains("`web` is not a valid WebAssembly component"),
            "{err}"
        );
    }
}
