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
//! (`crates/capabilities/src/lib.rs`:16-17). The sets and inheritance are
//! [`crate::capabilities`]; dependency names are [`crate::dependency_name`].

// Re-exported: the composer's callers name these with the parts they pass in.
pub use crate::capabilities::{Holds, Inherit};
pub use crate::dependency_name::DependencyName;
use std::collections::{BTreeMap, BTreeSet};
use wac_graph::types::{Package, SubtypeChecker, Types};
use wac_graph::{CompositionGraph, EncodeOptions, PackageId};

/// The interface every middleware imports and exports, and the composed result exports.
pub const HANDLER_INTERFACE: &str = "wasi:http/handler@0.3.0";

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

/// The part's imports of configuration sets it does not inherit, where the primary holds
/// something to protect ([`Holds::denies`]): `telemetry`, `waf`, `auth` and
/// `completion-extractive` import `wasi:cli/environment`, and `chat` has no
/// `environment`, so none of them needs a deny component for it.
fn denied_imports(part: &Part, holds: &Holds) -> Result<BTreeSet<String>, ComposeError> {
    let (imports, _) = interface_names(&part.name, &part.bytes)?;
    Ok(imports
        .into_iter()
        .filter(|import| holds.denies(&part.inherit, import))
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
