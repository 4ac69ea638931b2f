//! The subset of Spin's `spin.toml` (manifest version 2) that chatgate runs.
//!
//! Field names and shapes follow Spin's v2 schema so the same file is valid for
//! Spin 4.x. Anything chatgate cannot honour is rejected here with an error that
//! names the field, rather than being silently ignored.

/// Re-exported: it is part of the manifest's schema, owned by the capability rules.
pub use crate::capabilities::InheritConfiguration;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why a manifest could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("cannot read manifest {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid manifest {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid manifest {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// A parsed and validated manifest, with the directory its relative paths resolve against.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub base_dir: PathBuf,
    pub application: Application,
    pub variables: BTreeMap<String, VariableDecl>,
    pub http_triggers: Vec<HttpTrigger>,
    pub components: BTreeMap<String, ComponentDecl>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Application {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub authors: Vec<String>,
    #[serde(default)]
    pub trigger: Option<toml::Table>,
}

/// An application variable: `[variables] name = { default = "...", secret = true }`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableDecl {
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub description: Option<String>,
}

/// `[[trigger.http]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpTrigger {
    pub route: String,
    pub component: String,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub executor: Option<toml::Table>,
    #[serde(default)]
    pub dependencies: TriggerDependencies,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriggerDependencies {
    /// Outermost first.
    #[serde(default)]
    pub middleware: Vec<DependencySource>,
}

/// `[component.<id>]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDecl {
    pub source: ComponentSource,
    #[serde(default)]
    pub description: Option<String>,
    /// Component variables: values are templates over application variables.
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default)]
    pub allowed_outbound_hosts: Vec<String>,
    #[serde(default)]
    pub key_value_stores: Vec<String>,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub build: Option<BuildConfig>,
    #[serde(default)]
    pub dependencies_inherit_configuration: Option<bool>,
    /// Import name (a WIT interface) to the component that satisfies it.
    #[serde(default)]
    pub dependencies: BTreeMap<String, DependencySource>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum ComponentSource {
    Local(String),
    Remote { url: String, digest: String },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BuildConfig {
    pub command: BuildCommand,
    #[serde(default)]
    pub workdir: Option<String>,
    #[serde(default)]
    pub watch: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BuildCommand {
    One(String),
    Many(Vec<String>),
}

impl BuildCommand {
    pub fn commands(&self) -> Vec<&str> {
        match self {
            BuildCommand::One(c) => vec![c.as_str()],
            BuildCommand::Many(cs) => cs.iter().map(String::as_str).collect(),
        }
    }
}

/// Where a dependency or middleware comes from, and what configuration it inherits.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum DependencySource {
    AppComponent {
        component: String,
        #[serde(default)]
        export: Option<String>,
        #[serde(default)]
        inherit_configuration: Option<InheritConfiguration>,
    },
    Local {
        path: String,
        #[serde(default)]
        export: Option<String>,
        #[serde(default)]
        inherit_configuration: Option<InheritConfiguration>,
    },
    /// Registry packages (`version`, `package`, ...): recognised so the error is precise.
    Registry {
        version: String,
        #[serde(default)]
        package: Option<String>,
        #[serde(default)]
        registry: Option<String>,
    },
}

impl DependencySource {
    pub fn export(&self) -> Option<&str> {
        match self {
            DependencySource::AppComponent { export, .. }
            | DependencySource::Local { export, .. } => export.as_deref(),
            DependencySource::Registry { .. } => None,
        }
    }

    pub fn inherit_configuration(&self) -> Option<&InheritConfiguration> {
        match self {
            DependencySource::AppComponent {
                inherit_configuration,
                ..
            }
            | DependencySource::Local {
                inherit_configuration,
                ..
            } => inherit_configuration.as_ref(),
            DependencySource::Registry { .. } => None,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    spin_manifest_version: toml::Value,
    application: Application,
    #[serde(default)]
    variables: BTreeMap<String, VariableDecl>,
    #[serde(default)]
    trigger: RawTriggers,
    #[serde(default)]
    component: BTreeMap<String, ComponentDecl>,
}

#[derive(Default, Deserialize)]
struct RawTriggers {
    #[serde(default)]
    http: Vec<HttpTrigger>,
    #[serde(flatten)]
    other: BTreeMap<String, toml::Value>,
}

impl Manifest {
    /// Reads and validates the manifest at `path`.
    pub fn load(path: &Path) -> Result<Self, ManifestError> {
        let text = std::fs::read_to_string(path).map_err(|source| ManifestError::Read {
            path: path.to_owned(),
            source,
        })?;
        // Absolute, so that caches and stores beside the manifest do not depend on the cwd.
        let base_dir = std::path::absolute(path)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        Self::parse(&text, base_dir).map_err(|e| match e {
            ManifestError::Parse { message, .. } => ManifestError::Parse {
                path: path.to_owned(),
                message,
            },
            ManifestError::Invalid { message, .. } => ManifestError::Invalid {
                path: path.to_owned(),
                message,
            },
            other => other,
        })
    }

    /// Parses manifest text; relative paths resolve against `base_dir`.
    pub fn parse(text: &str, base_dir: PathBuf) -> Result<Self, ManifestError> {
        let raw: RawManifest = toml::from_str(text).map_err(|e| ManifestError::Parse {
            path: PathBuf::new(),
            message: e.to_string(),
        })?;
        let invalid = |message: String| ManifestError::Invalid {
            path: PathBuf::new(),
            message,
        };
        if raw.spin_manifest_version.as_integer() != Some(2) {
            return Err(invalid(format!(
                "spin_manifest_version must be 2 (found {})",
                raw.spin_manifest_version
            )));
        }
        if let Some(kind) = raw.trigger.other.keys().next() {
            return Err(invalid(format!(
                "trigger type `{kind}` is not supported by chatgate (only `http`)"
            )));
        }
        let manifest = Manifest {
            base_dir,
            application: raw.application,
            variables: raw.variables,
            http_triggers: raw.trigger.http,
            components: raw.component,
        };
        manifest.validate().map_err(invalid)?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<(), String> {
        for name in self.variables.keys() {
            check_variable_name(name)?;
        }
        for (name, decl) in &self.variables {
            if decl.required && decl.default.is_some() {
                return Err(format!(
                    "variable `{name}` cannot be both required and have a default"
                ));
            }
        }
        for (id, component) in &self.components {
            check_kebab_id(id).map_err(|e| format!("component id `{id}`: {e}"))?;
            for name in component.variables.keys() {
                check_variable_name(name).map_err(|e| format!("component `{id}`: {e}"))?;
            }
            if let ComponentSource::Remote { .. } = component.source {
                return Err(format!(
                    "component `{id}`: remote `source` URLs are not supported by chatgate; build the component locally"
                ));
            }
            if component.dependencies_inherit_configuration.is_some()
                && component
                    .dependencies
                    .values()
                    .any(|d| d.inherit_configuration().is_some())
            {
                return Err(format!(
                    "component `{id}`: `dependencies_inherit_configuration` and a dependency's `inherit_configuration` are mutually exclusive"
                ));
            }
            for (import, dep) in &component.dependencies {
                self.check_dependency(dep)
                    .map_err(|e| format!("component `{id}` dependency `{import}`: {e}"))?;
            }
            check_dependency_names(&component.dependencies)
                .map_err(|e| format!("component `{id}` has invalid dependencies: {e}"))?;
        }
        if self.http_triggers.is_empty() {
            return Err("no `[[trigger.http]]` is declared".into());
        }
        let mut routes = std::collections::BTreeSet::new();
        for trigger in &self.http_triggers {
            if !self.components.contains_key(&trigger.component) {
                return Err(format!(
                    "trigger for route `{}` names component `{}`, which is not declared",
                    trigger.route, trigger.component
                ));
            }
            if !routes.insert(trigger.route.as_str()) {
                return Err(format!("route `{}` is declared twice", trigger.route));
            }
            crate::routes::Route::parse(&trigger.route)?;
            if let Some(executor) = &trigger.executor
                && executor.get("type").and_then(|t| t.as_str()) != Some("http")
            {
                return Err(format!(
                    "route `{}`: only the `http` executor (wasi:http) is supported by chatgate",
                    trigger.route
                ));
            }
            for dep in &trigger.dependencies.middleware {
                self.check_dependency(dep)
                    .map_err(|e| format!("middleware of route `{}`: {e}", trigger.route))?;
            }
        }
        Ok(())
    }

    fn check_dependency(&self, dep: &DependencySource) -> Result<(), String> {
        match dep {
            DependencySource::AppComponent { component, .. } => {
                if !self.components.contains_key(component) {
                    return Err(format!("component `{component}` is not declared"));
                }
            }
            DependencySource::Local { .. } => {}
            DependencySource::Registry { .. } => {
                return Err("registry packages are not supported by chatgate; use `component = \"...\"` or `path = \"...\"`".into());
            }
        }
        if let Some(InheritConfiguration::Some(sets)) = dep.inherit_configuration() {
            crate::capabilities::check_names(sets)?;
        }
        Ok(())
    }

    /// Resolves a path from the manifest against its directory.
    pub fn resolve_path(&self, relative: &str) -> PathBuf {
        self.base_dir.join(relative)
    }

    /// The `.wasm` file a component is loaded from.
    pub fn component_source(&self, id: &str) -> Option<PathBuf> {
        match &self.components.get(id)?.source {
            ComponentSource::Local(path) => Some(self.resolve_path(path)),
            ComponentSource::Remote { .. } => None,
        }
    }
}

/// Spin's checks of a component's dependency names (`crates/manifest/src/schema/v2.rs`:756-822
/// at spin commit 94a8fc8a): each parses as a dependency name; a whole-package name
/// (`ns:pkg`) may not pick an `export`; and two names of the same package must differ in
/// interface or in (semver-compatible) version.
fn check_dependency_names(dependencies: &BTreeMap<String, DependencySource>) -> Result<(), String> {
    use crate::dependency_name::DependencyName;
    let mut parsed = Vec::new();
    for (name, dependency) in dependencies {
        let parsed_name =
            DependencyName::parse(name).map_err(|e| format!("dependency `{name}`: {e}"))?;
        if let DependencyName::Package {
            interface: None, ..
        } = &parsed_name
            && dependency.export().is_some()
        {
            return Err(format!(
                "using an export to satisfy the package dependency `{name}` is not permitted"
            ));
        }
        parsed.push((name, parsed_name));
    }
    for (i, (this_name, this)) in parsed.iter().enumerate() {
        for (other_name, other) in &parsed[i + 1..] {
            let (
                DependencyName::Package {
                    package: this_package,
                    interface: this_interface,
                    version: this_version,
                },
                DependencyName::Package {
                    package: other_package,
                    interface: other_interface,
                    version: other_version,
                },
            ) = (this, other)
            else {
                continue;
            };
            if this_package != other_package {
                continue;
            }
            let versions_differ = matches!((this_version, other_version), (Some(a), Some(b))
                if compatible_version(a) != compatible_version(b));
            let interfaces_differ =
                matches!((this_interface, other_interface), (Some(a), Some(b)) if a != b);
            if !versions_differ && !interfaces_differ {
                return Err(format!(
                    "dependency `{this_name}` conflicts with `{other_name}`"
                ));
            }
        }
    }
    Ok(())
}

/// The version with what semver lets vary zeroed, as Spin's `normalize_compatible_version`.
fn compatible_version(version: &semver::Version) -> semver::Version {
    let mut version = version.clone();
    version.build = semver::BuildMetadata::EMPTY;
    if version.pre.is_empty() {
        if version.major > 0 {
            version.minor = 0;
            version.patch = 0;
        } else if version.minor > 0 {
            version.patch = 0;
        }
    }
    version
}

/// Spin variable names: lowercase ASCII letters, digits and underscores, starting with a letter.
pub fn check_variable_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "variable name `{name}` must be lowercase letters, digits and `_`, starting with a letter"
        ))
    }
}

fn check_kebab_id(id: &str) -> Result<(), String> {
    let valid = !id.is_empty()
        && id.split('-').all(|word| {
            let mut chars = word.chars();
            matches!(chars.next(), Some('a'..='z'))
                && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if valid {
        Ok(())
    } else {
        Err("must be kebab-case (lowercase words of letters and digits joined by `-`)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
spin_manifest_version = 2
[application]
name = "demo"
[[trigger.http]]
route = "/..."
component = "web"
dependencies.middleware = [{ component = "guard", inherit_configuration = ["variables"] }]
[component.web]
source = "web.wasm"
allowed_outbound_hosts = ["https://example.com"]
[component.web.dependencies]
"chatgate:retriever/retriever" = { component = "finder" }
[component.guard]
source = "guard.wasm"
[component.finder]
source = "finder.wasm"
"#;

    fn parse(text: &str) -> Result<Manifest, String> {
        Manifest::parse(text, PathBuf::from("/app")).map_err(|e| e.to_string())
    }

    #[test]
    fn parses_middleware_dependencies_and_inheritance() {
        let m = parse(MINIMAL).unwrap();
        let trigger = &m.http_triggers[0];
        assert_eq!(trigger.component, "web");
        let mw = &trigger.dependencies.middleware[0];
        assert_eq!(
            mw.inherit_configuration(),
            Some(&InheritConfiguration::Some(vec!["variables".into()]))
        );
        let dep = &m.components["web"].dependencies["chatgate:retriever/retriever"];
        assert!(
            matches!(dep, DependencySource::AppComponent { component, .. } if component == "finder")
        );
        assert_eq!(
            m.component_source("web"),
            Some(PathBuf::from("/app/web.wasm"))
        );
    }

    #[test]
    fn rejects_wrong_manifest_version() {
        let text = MINIMAL.replace("spin_manifest_version = 2", "spin_manifest_version = 1");
        assert!(
            parse(&text)
                .unwrap_err()
                .contains("spin_manifest_version must be 2")
        );
    }

    #[test]
    fn rejects_unknown_fields_by_name() {
        let text = MINIMAL.replace("[component.finder]", "[component.finder]\nsorce = \"x\"");
        assert!(parse(&text).unwrap_err().contains("sorce"));
    }

    #[test]
    fn rejects_dangling_component_references() {
        let text = MINIMAL.replace("{ component = \"finder\" }", "{ component = \"nobody\" }");
        let err = parse(&text).unwrap_err();
        assert!(err.contains("`nobody` is not declared"), "{err}");
        let text = MINIMAL.replace("component = \"web\"", "component = \"ghost\"");
        assert!(parse(&text).unwrap_err().contains("`ghost`"));
    }

    #[test]
    fn rejects_unknown_inherited_configuration() {
        let text = MINIMAL.replace("[\"variables\"]", "[\"variabels\"]");
        assert!(parse(&text).unwrap_err().contains("variabels"));
    }

    #[test]
    fn rejects_bad_variable_names_and_other_triggers() {
        let text = format!("{MINIMAL}\n[variables]\nApiKey = {{ default = \"x\" }}\n");
        assert!(parse(&text).unwrap_err().contains("ApiKey"));
        let text = format!("{MINIMAL}\n[[trigger.redis]]\nchannel = \"c\"\ncomponent = \"web\"\n");
        assert!(parse(&text).unwrap_err().contains("`redis`"));
    }

    #[test]
    fn whole_and_per_dependency_inheritance_are_mutually_exclusive() {
        let text = MINIMAL
            .replace(
                "[component.web.dependencies]",
                "dependencies_inherit_configuration = true\n[component.web.dependencies]",
            )
            .replace(
                "{ component = \"finder\" }",
                "{ component = \"finder\", inherit_configuration = [\"variables\"] }",
            );
        assert!(parse(&text).unwrap_err().contains("mutually exclusive"));
    }

    #[test]
    fn only_the_wasi_http_executor_runs() {
        let text = MINIMAL.replace(
            "component = \"web\"\n",
            "component = \"web\"\nexecutor = { type = \"wagi\" }\n",
        );
        assert!(parse(&text).unwrap_err().contains("executor"));
    }

    #[test]
    fn dependency_names_follow_spins_rules() {
        let with = |lines: &str| {
            MINIMAL.replace(
                "\"chatgate:retriever/retriever\" = { component = \"finder\" }",
                lines,
            )
        };
        // Two interfaces of one package pass the manifest (Spin refuses them when it
        // composes, see compose.rs).
        parse(&with(
            "\"a:b/c\" = { component = \"finder\" }\n\"a:b/d\" = { component = \"guard\" }",
        ))
        .unwrap();
        let err = parse(&with(
            "\"a:b\" = { component = \"finder\" }\n\"a:b/d\" = { component = \"guard\" }",
        ))
        .unwrap_err();
        assert!(err.contains("conflicts"), "{err}");
        let err = parse(&with(
            "\"a:b/c@1.0.0\" = { component = \"finder\" }\n\"a:b/c@1.2.0\" = { component = \"guard\" }",
        ))
        .unwrap_err();
        assert!(err.contains("conflicts"), "{err}");
        parse(&with(
            "\"a:b/c@1.0.0\" = { component = \"finder\" }\n\"a:b/c@2.0.0\" = { component = \"guard\" }",
        ))
        .unwrap();
        let err = parse(&with(
            "\"a:b\" = { component = \"finder\", export = \"x\" }",
        ))
        .unwrap_err();
        assert!(err.contains("export"), "{err}");
        let err = parse(&with("\"A:b/c\" = { component = \"finder\" }")).unwrap_err();
        assert!(err.contains("A:b"), "{err}");
    }

    #[test]
    fn build_commands_come_in_either_shape() {
        let one = BuildCommand::One("cargo build".into());
        assert_eq!(one.commands(), vec!["cargo build"]);
        let many = BuildCommand::Many(vec!["a".into(), "b".into()]);
        assert_eq!(many.commands(), vec!["a", "b"]);
    }
}
