//! Composition of one HTTP trigger into a single component with `wac-graph`, following
//! Spin's composer closely enough that a manifest Spin refuses is refused here, with the
//! same cause named.
//!
//! The Spin rules mirrored here, with where Spin implements them (spin commit 94a8fc8a,
//! 2026-08-21; `compose` is `crates/compose/src/lib.rs`, `middleware` is
//! `crates/trigger-http/src/middleware.rs`, `deny` is `crates/capabilities/src/deny.rs`):
//!
//! 1. A component's dependencies are composed only if it has some (compose:218); the
//!    component is registered in a wac graph under its component id (compose:221-223).
//! 2. A dependency name is a plain kebab name or `ns:pkg[/interface][@version]`
//!    (`crates/serde/src/dependencies.rs`:51-79, 128-140) and matches the component's
//!    imports as `matches_import` does (compose:532-572): the package must be equal, and
//!    the interface and version too when the name gives them. A name that matches no
//!    import is an error (compose:285-290); an import matched by two names is a conflict
//!    (compose:306-322).
//! 3. Each dependency is registered in the graph under its **package name without
//!    version** (compose:420-429), and a wac graph holds a package name once
//!    (wac-graph `graph.rs`, `register_package`): two dependencies of one component from
//!    the same package (e.g. `chatgate:rag/retriever` and `chatgate:rag/completion`) are
//!    refused with "package `chatgate:rag` has already been registered in the graph".
//! 4. A dependency satisfies an import with its export named `export`, or else with the
//!    export named exactly as the import (compose:348-376), whose type must be a subtype of
//!    the import's (compose:384-396). The composition exports all of the component's
//!    exports (compose:453-473).
//! 5. Before it is registered, a dependency is wrapped with a deny component for every
//!    configuration set it does not inherit (compose:425-426; deny:20-100, the allow list
//!    deny:102-129 and the sets in `crates/capabilities/src/lib.rs`:21-89). See [`crate::deny`].
//! 6. Middleware (the HTTP trigger's only trigger dependency, middleware:20-25) wraps the
//!    composed component: each is deny-wrapped likewise (middleware:100), registered as
//!    `middleware<i>` with the component as `primary` (middleware:101-110), and chained
//!    through imports and exports named exactly `wasi:http/handler@0.3.0`, outermost first
//!    (middleware:49-77, 85, 113-121).
//!
//! 7. The manifest (`crate::manifest`): dependency names must parse, a whole-package name
//!    may not pick an `export`, and two names of one package must differ in interface or
//!    compatible version (`crates/manifest/src/schema/v2.rs`:756-845);
//!    `dependencies_inherit_configuration` and a dependency's `inherit_configuration` are
//!    mutually exclusive (`crates/manifest/src/normalize.rs`:156-172).
//!
//! Where chatgate is stricter than Spin it says so at the rule: it denies
//! `wasi:keyvalue/atomics` and `batch` with `store`, and WASI 0.3 sockets; and it refuses
//! an unknown set name in `inherit_configuration`, which Spin ignores
//! (`crates/capabilities/src/lib.rs`:16-17).

use crate::manifest::InheritConfiguration;
use std::collections::{BTreeMap, BTreeSet};
use wac_graph::types::{Package, SubtypeChecker, Types};
use wac_graph::{CompositionGraph, EncodeOptions, PackageId};

/// The interface every middleware imports and exports, and the composed result exports.
pub const HANDLER_INTERFACE: &str = "wasi:http/handler@0.3.0";

/// Host interfaces, by configuration set, that a dependency reaches only when it inherits the set.
/// Matching is by interface name without version (`wasi:http/client@0.3.0` matches `wasi:http/client`).
/// Spin's lists (`crates/capabilities/src/lib.rs`:31-89) name each version; chatgate
/// matches every version of the same interfaces.
const CAPABILITY_INTERFACES: &[(&str, &[&str])] = &[
    ("ai_models", &["fermyon:spin/llm"]),
    (
        "allowed_outbound_hosts",
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
    ("environment", &["wasi:cli/environment"]),
    ("files", &["wasi:filesystem/preopens"]),
    (
        "key_value_stores",
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
    #[error("component `{component}`: dependency name `{dependency}` is invalid: {message}")]
    InvalidDependencyName {
        component: String,
        dependency: String,
        message: String,
    },
    #[error("dependency `{dependency}` doesn't match any imports of component `{component}`")]
    UnmatchedDependency {
        component: String,
        dependency: String,
    },
    #[error("component `{component}` has dependency conflicts: {conflicts}")]
    DependencyConflicts {
        component: String,
        conflicts: String,
    },
    #[error(
        "component `{component}`: dependencies `{first}` and `{second}` both come from package `{package}`. \
         Spin registers each dependency of a component under its package name, once, so it refuses \
         this manifest (\"package `{package}` has already been registered in the graph\"); \
         take them from interfaces of different WIT packages"
    )]
    SamePackage {
        component: String,
        package: String,
        first: String,
        second: String,
    },
    #[error(
        "dependency `{dependency}` doesn't export `{export}` to satisfy import `{import}` (it exports: {available})"
    )]
    MissingExport {
        dependency: String,
        export: String,
        import: String,
        available: String,
    },
    #[error(
        "dependency `{dependency}` exports `{export}` which is not compatible with import `{import}`: {message}"
    )]
    IncompatibleExport {
        dependency: String,
        export: String,
        import: String,
        message: String,
    },
    #[error("cannot deny `{name}` what it does not inherit: {message}")]
    Deny { name: String, message: String },
    #[error("middleware `{0}` must import and export `wasi:http/handler@0.3.0`")]
    NotMiddleware(String),
    #[error("`{0}` does not export `wasi:http/handler@0.3.0`: it is not a WASIp3 HTTP component")]
    NotHttpComponent(String),
    #[error("composition failed: {0}")]
    Graph(String),
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

/// A primary component's dependency: its name in the manifest (`import`, e.g.
/// `chatgate:retriever/retriever`) and what it exports for it.
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

/// A dependency's name in the manifest, as Spin parses it
/// (`crates/serde/src/dependencies.rs`:51-79, 128-140).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DependencyName {
    /// `foo-bar`: matches the plain import of that name.
    Plain(String),
    /// `ns:pkg`, `ns:pkg@1.2.3`, `ns:pkg/interface`, `ns:pkg/interface@1.2.3`.
    Package {
        package: String,
        interface: Option<String>,
        version: Option<semver::Version>,
    },
}

/// Lowercase kebab-case, as Spin's `KebabId` and package names (`wasm-pkg-common`) require.
fn is_kebab(word: &str) -> bool {
    !word.is_empty()
        && word.split('-').all(|part| {
            let mut chars = part.chars();
            chars.next().is_some_and(|c| c.is_ascii_lowercase())
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

impl DependencyName {
    pub fn parse(name: &str) -> Result<Self, String> {
        if !name.contains([':', '/']) {
            return if is_kebab(name) {
                Ok(DependencyName::Plain(name.to_string()))
            } else {
                Err("a plain name must be kebab-case".into())
            };
        }
        let (unversioned, version) = match name.split_once('@') {
            Some((unversioned, version)) => (
                unversioned,
                Some(
                    semver::Version::parse(version)
                        .map_err(|e| format!("invalid version `{version}`: {e}"))?,
                ),
            ),
            None => (name, None),
        };
        let (package, interface) = match unversioned.split_once('/') {
            Some((package, interface)) => (package, Some(interface)),
            None => (unversioned, None),
        };
        let valid_package = package
            .split_once(':')
            .is_some_and(|(ns, pkg)| is_kebab(ns) && is_kebab(pkg));
        if !valid_package {
            return Err(format!(
                "`{package}` is not a package name (`namespace:name`)"
            ));
        }
        if let Some(interface) = interface
            && !is_kebab(interface)
        {
            return Err(format!("`{interface}` is not an interface name"));
        }
        Ok(DependencyName::Package {
            package: package.to_string(),
            interface: interface.map(str::to_string),
            version,
        })
    }

    /// The name Spin registers the dependency under in its composition graph: the
    /// package without version, or the plain name (compose:420-423).
    pub fn registered_name(&self) -> &str {
        match self {
            DependencyName::Plain(name) => name,
            DependencyName::Package { package, .. } => package,
        }
    }

    /// Whether this name satisfies the import `import`, as Spin's `matches_import`
    /// (compose:532-572).
    pub fn matches_import(&self, import: &str) -> bool {
        match self {
            DependencyName::Plain(name) => !import.contains([':', '/']) && name == import,
            DependencyName::Package {
                package,
                interface,
                version,
            } => {
                let Some((import_package, rest)) = import.split_once('/') else {
                    return false;
                };
                let (import_interface, import_version) = match rest.split_once('@') {
                    Some((interface, version)) => {
                        let Ok(version) = semver::Version::parse(version) else {
                            return false;
                        };
                        (interface, Some(version))
                    }
                    None => (rest, None),
                };
                import_package == package
                    && interface.as_deref().is_none_or(|i| i == import_interface)
                    && version
                        .as_ref()
                        .is_none_or(|v| Some(v) == import_version.as_ref())
            }
        }
    }
}

/// The composed component.
pub struct Composed {
    pub bytes: Vec<u8>,
}

/// The import and export names of a component, without placing it in a graph.
fn interface_names(name: &str, bytes: &[u8]) -> Result<(Vec<String>, Vec<String>), ComposeError> {
    let mut types = Types::default();
    let package = Package::from_bytes(name, None, bytes.to_vec(), &mut types).map_err(|e| {
        ComposeError::NotAComponent {
            name: name.to_string(),
            message: format!("{e:#}"),
        }
    })?;
    let world = &types[package.ty()];
    Ok((
        world.imports.keys().cloned().collect(),
        world.exports.keys().cloned().collect(),
    ))
}

/// The configuration sets the primary component holds something in (variables, stores,
/// outbound hosts, environment), that is, what a dependency could reach through the host.
#[derive(Debug, Clone, Default)]
pub struct Holds(pub BTreeSet<&'static str>);

impl Holds {
    /// Every set: every dependency is denied all it does not inherit.
    pub fn everything() -> Self {
        Holds(capability_sets().collect())
    }
}

/// The part's imports of configuration sets it does not inherit, where the primary holds
/// something to protect. A set the primary holds nothing in answers a dependency's calls
/// with the same refusals from the host (no variable, no store, no outbound host, an
/// empty environment), so it needs no deny component: that saves the component's instance
/// and memory on every request (`telemetry`, `waf`, `auth` and `completion-extractive`
/// import `wasi:cli/environment`, and `chat` has no `environment`).
fn denied_imports(part: &Part, holds: &Holds) -> Result<BTreeSet<String>, ComposeError> {
    let (imports, _) = interface_names(&part.name, &part.bytes)?;
    Ok(imports
        .into_iter()
        .filter(|import| {
            capability_set_of(import)
                .is_some_and(|set| !part.inherit.grants(set) && holds.0.contains(set))
        })
        .collect())
}

/// The part's bytes, wrapped with a deny component for what it does not inherit.
fn restricted(part: &Part, holds: &Holds) -> Result<Vec<u8>, ComposeError> {
    let denied = denied_imports(part, holds)?;
    crate::deny::restrict(&part.bytes, &denied).map_err(|e| ComposeError::Deny {
        name: part.name.clone(),
        message: format!("{e:#}"),
    })
}

fn register(
    graph: &mut CompositionGraph,
    key: &str,
    name: &str,
    bytes: Vec<u8>,
) -> Result<PackageId, ComposeError> {
    let package = Package::from_bytes(key, None, bytes, graph.types_mut()).map_err(|e| {
        ComposeError::NotAComponent {
            name: name.to_string(),
            message: format!("{e:#}"),
        }
    })?;
    graph.register_package(package).map_err(graph_error)
}

/// Composes a trigger's primary component with its dependencies and middleware.
pub fn compose(
    primary: Part,
    holds: &Holds,
    dependencies: Vec<Dependency>,
    middleware: Vec<Part>,
) -> Result<Composed, ComposeError> {
    let (_, exports) = interface_names(&primary.name, &primary.bytes)?;
    if !exports.iter().any(|e| e == HANDLER_INTERFACE) {
        return Err(ComposeError::NotHttpComponent(primary.name));
    }
    let with_dependencies = compose_dependencies(&primary, holds, &dependencies)?;
    let bytes = compose_middleware(&primary.name, holds, with_dependencies, &middleware)?;
    Ok(Composed { bytes })
}

/// Rules 1-5: the primary component with its dependencies, as Spin's `crates/compose`.
pub fn compose_dependencies(
    primary: &Part,
    holds: &Holds,
    dependencies: &[Dependency],
) -> Result<Vec<u8>, ComposeError> {
    if dependencies.is_empty() {
        return Ok(primary.bytes.clone());
    }
    let mut graph = CompositionGraph::new();
    let primary_pkg = register(
        &mut graph,
        &primary.name,
        &primary.name,
        primary.bytes.clone(),
    )?;
    let primary_world = graph[primary_pkg].ty();
    let primary_instance = graph.instantiate(primary_pkg);
    let imports: Vec<String> = graph.types()[primary_world]
        .imports
        .keys()
        .cloned()
        .collect();

    // Import name -> the dependencies (by index) whose names match it.
    let mut mappings: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    // Registered name -> the first dependency registered under it.
    let mut registered: BTreeMap<String, &str> = BTreeMap::new();
    let mut instances = Vec::new();
    for (index, dependency) in dependencies.iter().enumerate() {
        let name = DependencyName::parse(&dependency.import).map_err(|message| {
            ComposeError::InvalidDependencyName {
                component: primary.name.clone(),
                dependency: dependency.import.clone(),
                message,
            }
        })?;
        let matched: Vec<&String> = imports.iter().filter(|i| name.matches_import(i)).collect();
        if matched.is_empty() {
            return Err(ComposeError::UnmatchedDependency {
                component: primary.name.clone(),
                dependency: dependency.import.clone(),
            });
        }
        let bytes = restricted(&dependency.part, holds)?;
        let key = name.registered_name();
        if let Some(first) = registered.get(key) {
            return Err(ComposeError::SamePackage {
                component: primary.name.clone(),
                package: key.to_string(),
                first: first.to_string(),
                second: dependency.import.clone(),
            });
        }
        let package = register(&mut graph, key, &dependency.part.name, bytes)?;
        registered.insert(key.to_string(), &dependency.import);
        instances.push((package, graph.instantiate(package)));
        for import in matched {
            mappings.entry(import.clone()).or_default().push(index);
        }
    }

    let conflicts: Vec<String> = mappings
        .iter()
        .filter(|(_, satisfied_by)| satisfied_by.len() > 1)
        .map(|(import, satisfied_by)| {
            let names: Vec<&str> = satisfied_by
                .iter()
                .map(|i| dependencies[*i].import.as_str())
                .collect();
            format!(
                "import `{import}` satisfied by dependencies: `{}`",
                names.join("`, `")
            )
        })
        .collect();
    if !conflicts.is_empty() {
        return Err(ComposeError::DependencyConflicts {
            component: primary.name.clone(),
            conflicts: conflicts.join("; "),
        });
    }

    let mut cache = Default::default();
    for (import, satisfied_by) in mappings {
        let index = satisfied_by[0];
        let dependency = &dependencies[index];
        let (package, instance) = instances[index];
        let export = dependency.export.clone().unwrap_or_else(|| import.clone());
        let dependency_world = graph[package].ty();
        let Some(export_ty) = graph.types()[dependency_world]
            .exports
            .get(&export)
            .copied()
        else {
            let available: Vec<String> = graph.types()[dependency_world]
                .exports
                .keys()
                .cloned()
                .collect();
            return Err(ComposeError::MissingExport {
                dependency: dependency.import.clone(),
                export,
                import,
                available: available.join(", "),
            });
        };
        let import_ty = graph.types()[primary_world].imports[&import];
        SubtypeChecker::new(&mut cache)
            .is_subtype(export_ty, graph.types(), import_ty, graph.types())
            .map_err(|e| ComposeError::IncompatibleExport {
                dependency: dependency.import.clone(),
                export: export.clone(),
                import: import.clone(),
                message: format!("{e:#}"),
            })?;
        let node = graph
            .alias_instance_export(instance, &export)
            .map_err(graph_error)?;
        graph
            .set_instantiation_argument(primary_instance, &import, node)
            .map_err(graph_error)?;
    }

    let exports: Vec<String> = graph.types()[primary_world]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let node = graph
            .alias_instance_export(primary_instance, &name)
            .map_err(graph_error)?;
        graph.export(node, &name).map_err(graph_error)?;
    }
    graph.encode(EncodeOptions::default()).map_err(graph_error)
}

/// Rule 6: the middleware chain around the composed component, as Spin's HTTP trigger.
fn compose_middleware(
    primary_name: &str,
    holds: &Holds,
    primary: Vec<u8>,
    middleware: &[Part],
) -> Result<Vec<u8>, ComposeError> {
    if middleware.is_empty() {
        return Ok(primary);
    }
    let mut graph = CompositionGraph::new();
    let mut packages = Vec::new();
    for (index, part) in middleware.iter().enumerate() {
        let (imports, exports) = interface_names(&part.name, &part.bytes)?;
        if !imports.iter().any(|i| i == HANDLER_INTERFACE)
            || !exports.iter().any(|e| e == HANDLER_INTERFACE)
        {
            return Err(ComposeError::NotMiddleware(part.name.clone()));
        }
        let bytes = restricted(part, holds)?;
        packages.push(register(
            &mut graph,
            &format!("middleware{index}"),
            &part.name,
            bytes,
        )?);
    }
    let primary_pkg = register(&mut graph, "primary", primary_name, primary)?;
    let mut instance = graph.instantiate(primary_pkg);
    let mut upstream = graph
        .alias_instance_export(instance, HANDLER_INTERFACE)
        .map_err(graph_error)?;
    for package in packages.into_iter().rev() {
        instance = graph.instantiate(package);
        graph
            .set_instantiation_argument(instance, HANDLER_INTERFACE, upstream)
            .map_err(graph_error)?;
        upstream = graph
            .alias_instance_export(instance, HANDLER_INTERFACE)
            .map_err(graph_error)?;
    }
    graph
        .export(upstream, HANDLER_INTERFACE)
        .map_err(graph_error)?;
    graph.encode(EncodeOptions::default()).map_err(graph_error)
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
            "wasi:sockets/tcp-create-socket@0.2.6",
            "wasi:sockets/ip-name-lookup@0.3.0",
        ] {
            assert_eq!(
                capability_set_of(name),
                Some("allowed_outbound_hosts"),
                "{name}"
            );
        }
        // Only names the network: it stays with the host, as in Spin's list, so that every
        // sockets interface a dependency imports agrees on one `network` type.
        assert_eq!(capability_set_of("wasi:sockets/network@0.2.6"), None);
    }

    #[test]
    fn dependency_names_match_imports_as_in_spin() {
        // The cases of Spin's `test_matches_import` (compose:578-605).
        for (name, imports) in [
            ("foo:bar/baz@0.1.0", vec!["foo:bar/baz@0.1.0"]),
            ("foo:bar/baz", vec!["foo:bar/baz@0.1.0", "foo:bar/baz"]),
            ("foo:bar", vec!["foo:bar/baz@0.1.0", "foo:bar/baz"]),
            ("foo:bar@0.1.0", vec!["foo:bar/baz@0.1.0"]),
            ("foo-bar", vec!["foo-bar"]),
        ] {
            let name = DependencyName::parse(name).unwrap();
            for import in imports {
                assert!(name.matches_import(import), "{name:?} {import}");
            }
        }
        for (name, imports) in [
            ("foo:bar/baz@0.1.0", vec!["foo:bar/baz"]),
            ("foo:bar/baz", vec!["foo:bar/bub", "foo:bar/bub@0.1.0"]),
            ("foo:bar", vec!["foo:bub/bib"]),
            ("foo:bar@0.1.0", vec!["foo:bar/baz"]),
            ("foo:bar/baz", vec!["foo:bar/baz-bub", "foo-bar"]),
        ] {
            let name = DependencyName::parse(name).unwrap();
            for import in imports {
                assert!(!name.matches_import(import), "{name:?} {import}");
            }
        }
    }

    #[test]
    fn dependencies_register_under_their_package_without_version() {
        let name = DependencyName::parse("chatgate:retriever/retriever@0.2.0").unwrap();
        assert_eq!(name.registered_name(), "chatgate:retriever");
        assert_eq!(
            DependencyName::parse("my-dep").unwrap().registered_name(),
            "my-dep"
        );
        for bad in ["Foo:bar", "foo:bar/Baz", "foo:bar@x", "foo/bar", "foo_bar"] {
            assert!(DependencyName::parse(bad).is_err(), "{bad}");
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
            &Holds::everything(),
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
