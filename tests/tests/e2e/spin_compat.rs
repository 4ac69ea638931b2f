//! The shipped `spin.toml` composes the way Spin's composer composes it, and chatgate
//! refuses what Spin refuses, with the same cause.
//!
//! Spin's composer (`crates/compose/src/lib.rs` at spin commit 94a8fc8a: `compose`,
//! `prepare_dependencies`, `register_dependency`, lines 206-451) registers the component
//! in a wac graph under its id and each dependency under its package name without
//! version, then plugs each import with the dependency's export of the same name.
//! `compose_like_spin` below does exactly that, independently of the host's composer.

use chatgate::app::compose_trigger;
use chatgate::compose::{Dependency, Holds, Inherit, Part, compose_dependencies};
use chatgate::deny::stub_component;
use chatgate::manifest::Manifest;
use chatgate_tests::{project_manifest, repo_root};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};

/// Composes `component` of `manifest` with its dependencies as Spin's composer does.
fn compose_like_spin(manifest: &Manifest, component: &str) -> Result<Vec<u8>, String> {
    let read = |id: &str| {
        std::fs::read(manifest.component_source(id).unwrap())
            .map_err(|e| format!("reading `{id}`: {e} (build the components: `make build`)"))
    };
    let mut graph = CompositionGraph::new();
    let primary = Package::from_bytes(component, None, read(component)?, graph.types_mut())
        .map_err(|e| e.to_string())?;
    let primary = graph.register_package(primary).map_err(|e| e.to_string())?;
    let primary_world = graph[primary].ty();
    let primary_instance = graph.instantiate(primary);
    for (name, source) in &manifest.components[component].dependencies {
        let chatgate::manifest::DependencySource::AppComponent {
            component: dependency,
            ..
        } = source
        else {
            return Err(format!("`{name}` is not an app component"));
        };
        // compose:420-423: the package name, without interface or version.
        let package_name = name.split('@').next().unwrap().split('/').next().unwrap();
        let package = Package::from_bytes(package_name, None, read(dependency)?, graph.types_mut())
            .map_err(|e| e.to_string())?;
        let package = graph.register_package(package).map_err(|e| e.to_string())?;
        let instance = graph.instantiate(package);
        let import = graph.types()[primary_world]
            .imports
            .keys()
            .find(|import| import.split('@').next() == Some(name.as_str()))
            .cloned()
            .ok_or_else(|| format!("`{component}` does not import `{name}`"))?;
        // compose:363-376: the export named exactly as the import.
        let export = graph
            .alias_instance_export(instance, &import)
            .map_err(|e| e.to_string())?;
        graph
            .set_instantiation_argument(primary_instance, &import, export)
            .map_err(|e| e.to_string())?;
    }
    let exports: Vec<String> = graph.types()[primary_world]
        .exports
        .keys()
        .cloned()
        .collect();
    for name in exports {
        let export = graph
            .alias_instance_export(primary_instance, &name)
            .map_err(|e| e.to_string())?;
        graph.export(export, &name).map_err(|e| e.to_string())?;
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| e.to_string())
}

fn parse(text: &str) -> Manifest {
    Manifest::parse(text, repo_root()).unwrap()
}

/// The swap lines documented in `spin.toml`'s comments: `#   "<dependency>" = { ... }`.
fn documented_swap_lines(manifest: &str) -> Vec<String> {
    manifest
        .lines()
        .filter_map(|line| line.strip_prefix("#   \"chatgate:"))
        .map(|rest| format!("\"chatgate:{rest}"))
        .collect()
}

/// `manifest` with the dependency line of the same key as `line` replaced by `line`.
fn with_dependency_line(manifest: &str, line: &str) -> String {
    let key = line.split(" = ").next().unwrap();
    let mut replaced = 0;
    let text: Vec<String> = manifest
        .lines()
        .map(|current| {
            if current.starts_with(&format!("{key} = ")) {
                replaced += 1;
                line.to_string()
            } else {
                current.to_string()
            }
        })
        .collect();
    assert_eq!(replaced, 1, "one dependency line for {key}");
    text.join("\n")
}

#[test]
fn the_shipped_manifest_and_every_documented_swap_compose_as_on_spin() {
    let shipped = project_manifest();
    let swaps = documented_swap_lines(&shipped);
    assert_eq!(swaps.len(), 3, "{swaps:?}");
    let mut variants = vec![shipped.clone()];
    variants.extend(
        swaps
            .iter()
            .map(|line| with_dependency_line(&shipped, line)),
    );
    for text in variants {
        let manifest = parse(&text);
        compose_like_spin(&manifest, "chat").unwrap_or_else(|e| panic!("Spin's way: {e}\n{text}"));
        compose_trigger(&manifest, &manifest.http_triggers[0])
            .unwrap_or_else(|e| panic!("chatgate: {e:#}\n{text}"));
    }
}

/// The contracts as they were before the split: two interfaces of one package.
const ONE_PACKAGE: &str = r#"
package chatgate:rag@0.1.0;

interface retriever {
    search: func(query: string) -> list<string>;
}

interface completion {
    complete: func(prompt: string) -> string;
}

world orchestrator {
    import retriever;
    import completion;
}

world retrieval-provider {
    export retriever;
}

world completion-provider {
    export completion;
}
"#;

/// The same contracts in two packages, as `wit/` has them now.
const TWO_PACKAGES: &str = r#"
package chatgate:worlds@0.2.0;

package chatgate:retriever@0.3.0 {
    interface retriever {
        search: func(query: string) -> list<string>;
    }
}

package chatgate:completion@0.3.0 {
    interface completion {
        complete: func(prompt: string) -> string;
    }
}

world orchestrator {
    import chatgate:retriever/retriever@0.3.0;
    import chatgate:completion/completion@0.3.0;
}

world retrieval-provider {
    export chatgate:retriever/retriever@0.3.0;
}

world completion-provider {
    export chatgate:completion/completion@0.3.0;
}
"#;

/// Writes stub components of `wit` to a fresh directory and returns a manifest of an
/// orchestrator with its two dependencies named `retriever` and `completion` there.
fn stub_app(wit: &str, retriever: &str, completion: &str) -> (tempdir::Dir, String) {
    let dir = tempdir::Dir::new();
    for (file, world) in [
        ("chat.wasm", "orchestrator"),
        ("retrieval.wasm", "retrieval-provider"),
        ("completion.wasm", "completion-provider"),
    ] {
        std::fs::write(dir.path.join(file), stub_component(wit, world).unwrap()).unwrap();
    }
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"stub\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"chat\"\n\
         [component.chat]\nsource = \"chat.wasm\"\n\
         [component.chat.dependencies]\n\
         \"{retriever}\" = {{ component = \"retrieval\" }}\n\
         \"{completion}\" = {{ component = \"completion\" }}\n\
         [component.retrieval]\nsource = \"retrieval.wasm\"\n\
         [component.completion]\nsource = \"completion.wasm\"\n"
    );
    (dir, manifest)
}

/// chatgate's composition of the stub app's dependencies (its HTTP trigger needs a
/// `wasi:http` export the stubs do not have).
fn compose_with_chatgate(manifest: &Manifest) -> Result<Vec<u8>, String> {
    let part = |id: &str| Part {
        name: id.to_string(),
        bytes: std::fs::read(manifest.component_source(id).unwrap()).unwrap(),
        inherit: Inherit::Sets(Vec::new()),
    };
    let dependencies = manifest.components["chat"]
        .dependencies
        .iter()
        .map(|(name, source)| {
            let chatgate::manifest::DependencySource::AppComponent { component, .. } = source
            else {
                unreachable!()
            };
            Dependency {
                import: name.clone(),
                export: None,
                part: part(component),
            }
        })
        .collect::<Vec<_>>();
    compose_dependencies(&part("chat"), &Holds::everything(), &dependencies)
        .map_err(|e| e.to_string())
}

#[test]
fn two_dependencies_from_one_package_are_refused_as_spin_refuses_them() {
    let (dir, text) = stub_app(
        ONE_PACKAGE,
        "chatgate:rag/retriever",
        "chatgate:rag/completion",
    );
    let manifest = Manifest::parse(&text, dir.path.clone()).unwrap();
    let spin = compose_like_spin(&manifest, "chat").unwrap_err();
    assert!(
        spin.contains("package `chatgate:rag` has already been registered in the graph"),
        "{spin}"
    );
    let chatgate = compose_with_chatgate(&manifest).unwrap_err();
    assert!(
        chatgate.contains("package `chatgate:rag` has already been registered in the graph"),
        "{chatgate}"
    );
    assert!(
        chatgate.contains("`chatgate:rag/completion`")
            && chatgate.contains("`chatgate:rag/retriever`"),
        "{chatgate}"
    );

    let (dir, text) = stub_app(
        TWO_PACKAGES,
        "chatgate:retriever/retriever",
        "chatgate:completion/completion",
    );
    let manifest = Manifest::parse(&text, dir.path.clone()).unwrap();
    compose_like_spin(&manifest, "chat").unwrap();
    compose_with_chatgate(&manifest).unwrap();
}

#[test]
fn a_dependency_name_that_matches_no_import_is_refused_as_in_spin() {
    let (dir, text) = stub_app(
        TWO_PACKAGES,
        "chatgate:retriever/retriever",
        "chatgate:completion/completion@0.4.0",
    );
    let manifest = Manifest::parse(&text, dir.path.clone()).unwrap();
    let err = compose_with_chatgate(&manifest).unwrap_err();
    assert!(
        err.contains(
            "dependency `chatgate:completion/completion@0.4.0` doesn't match any imports of component `chat`"
        ),
        "{err}"
    );
}

mod tempdir {
    /// A directory under the system's temporary directory, removed on drop.
    pub struct Dir {
        pub path: std::path::PathBuf,
    }

    impl Dir {
        pub fn new() -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static NEXT: AtomicU32 = AtomicU32::new(0);
            let path = std::env::temp_dir().join(format!(
                "chatgate-spin-compat-{}-{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&path).unwrap();
            Dir { path }
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
