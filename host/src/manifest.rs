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
    /// The manifest file, when loaded from one ([`Manifest::load`]); errors found after
    /// parsing (e.g. a `files` source that is not a directory) name it.
    pub path: Option<PathBuf>,
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
    /// Directories the component may read, mounted read-only (see [`FilesMount`]).
    #[serde(default)]
    pub files: Vec<FilesMount>,
    /// Spin's exclusions from `files`; refused by chatgate, which mounts directories
    /// directly as `spin up --direct-mounts` does (see [`FilesMount`]).
    #[serde(default)]
    pub exclude_files: Vec<String>,
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

/// One entry of a component's `files`: `"dir"` or `{ source = "dir", destination = "/guest/dir" }`,
/// the two shapes of Spin's `WasiFilesMount` (`crates/manifest/src/schema/common.rs`:129-158
/// at spin commit 94a8fc8a).
///
/// What Spin does with them, and what chatgate mirrors:
///
/// * `spin up` by default copies every entry (directories, single files, glob matches
///   minus `exclude_files`) into a temporary directory when the app loads and mounts that
///   copy at `/` (`crates/loader/src/local.rs`:244-261 and 400-589; `src/commands/up.rs`:532-536).
///   A file changed on the host afterwards is not seen by the guest, and a source outside
///   the application directory is refused (`local.rs`:539-543).
/// * `spin up --direct-mounts` mounts each entry's source directory itself at its
///   destination (`local.rs`:262-273 and 620-640, `crates/factor-wasi/src/spin.rs`:28-45),
///   so host changes are seen without a restart (the flag's help, `up.rs`:149-155). It
///   refuses anything but directories and any `exclude_files` (`local.rs`:263-266 and
///   630-634). A source is joined to the application directory, so an absolute one stays
///   absolute and is accepted (`local.rs`:630).
/// * Mounts are read-only (`DirPerms::READ`, `FilePerms::READ`) unless `spin up
///   --allow-transient-write` (`crates/factor-wasi/src/lib.rs`:443-457,
///   `crates/runtime-factors/src/lib.rs`:101-103).
///
/// chatgate implements the direct mounts only, always: a mounted directory is read live
/// (a projected service-account token the kubelet rotates is seen by the next read), so
/// the same manifest behaves as under `spin up --direct-mounts`; single files, globs and
/// `exclude_files`, which need the copy, are refused with Spin's `--direct-mounts`
/// reasons. Mounts are always read-only: chatgate has no `--allow-transient-write`. A
/// relative `source` resolves against the manifest's directory (Spin's direct mounts
/// check it there, `local.rs`:630, but record it against the process's working directory,
/// `local.rs`:637 and 1051-1055); an absolute one is used as is, as Spin's direct mounts
/// do. A `destination` must be absolute (Spin's schema says so, `common.rs`:151); a
/// `"dir"` entry is mounted at `/dir`, where `spin up`'s copy puts it (`local.rs`:455-457);
/// Spin's direct mounts pass the string itself as the guest path (`local.rs`:624 and 638),
/// which differs for a relative one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub enum FilesMount {
    /// `"dir"`: the directory `dir`, at `/dir` in the guest.
    Pattern(String),
    /// `{ source = "...", destination = "..." }`.
    Placement { source: String, destination: String },
}

impl TryFrom<toml::Value> for FilesMount {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, String> {
        match value {
            toml::Value::String(pattern) => Ok(FilesMount::Pattern(pattern)),
            toml::Value::Table(mut table) => {
                let mut take = |key: &str| match table.remove(key) {
                    Some(toml::Value::String(value)) => Ok(value),
                    Some(other) => Err(format!(
                        "`files` entry: `{key}` must be a string, found {}",
                        other.type_str()
                    )),
                    None => Err(format!(
                        "`files` entry: a table needs `source` and `destination` (missing `{key}`)"
                    )),
                };
                let source = take("source")?;
                let destination = take("destination")?;
                if let Some(unknown) = table.keys().next() {
                    return Err(format!(
                        "`files` entry: unknown field `{unknown}` (expected `source` and `destination`)"
                    ));
                }
                Ok(FilesMount::Placement {
                    source,
                    destination,
                })
            }
            other => Err(format!(
                "`files` entry: expected a path or {{ source = \"...\", destination = \"...\" }}, found {}",
                other.type_str()
            )),
        }
    }
}

impl FilesMount {
    /// The entry's host path, as written.
    pub fn source(&self) -> &str {
        match self {
            FilesMount::Pattern(source) | FilesMount::Placement { source, .. } => source,
        }
    }

    /// Where the guest sees it: `destination`, or `/` joined with the pattern.
    pub fn guest_path(&self) -> String {
        match self {
            FilesMount::Placement { destination, .. } => destination.clone(),
            FilesMount::Pattern(pattern) => format!("/{}", pattern.trim_start_matches('/')),
        }
    }

    /// The checks that need no filesystem.
    fn check(&self) -> Result<(), String> {
        let source = self.source();
        if source.is_empty() {
            return Err("`source` is empty".into());
        }
        if let FilesMount::Pattern(pattern) = self {
            // Spin's messages for these (`crates/loader/src/local.rs`:431-440).
            if pattern == ".." || pattern.ends_with("/..") {
                return Err("a file pattern can't end in a parent directory path (..); to include a directory, use the { source = \"...\", destination = \"...\" } form".into());
            }
            if pattern == "." || pattern.ends_with("/.") {
                return Err("a file pattern can't end in a current directory path (.); to include a directory, use the { source = \"...\", destination = \"...\" } form".into());
            }
        }
        // Spin's `looks_like_glob_pattern` (`local.rs`:1039-1042): what `glob` would escape.
        if source.contains(['*', '?', '[', ']']) {
            return Err(
                "glob patterns are not supported by chatgate, which mounts directories directly as `spin up --direct-mounts` does (Spin copies glob matches into a temporary directory, which a rotated file would not reach); name a directory".into(),
            );
        }
        let guest = self.guest_path();
        if !guest.starts_with('/') {
            return Err(format!("`destination` `{guest}` must be an absolute path"));
        }
        if guest.split('/').any(|part| part == ".." || part == ".") {
            return Err(format!(
                "`destination` `{guest}` must not contain `.` or `..`"
            ));
        }
        Ok(())
    }
}

/// A `files` entry resolved at load: a host directory and where the guest sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileMount {
    pub host: PathBuf,
    pub guest: String,
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
        Self::parse(&text, base_dir)
            .map(|manifest| Manifest {
                path: Some(path.to_owned()),
                ..manifest
            })
            .map_err(|e| match e {
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
            path: None,
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
            check_files(component).map_err(|e| format!("component `{id}`: {e}"))?;
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

    /// The directories component `id` mounts (its `files`), checked on the filesystem: each
    /// source must be a directory now (as Spin's direct mounts check,
    /// `crates/loader/src/local.rs`:630-635). The error names the manifest.
    pub fn file_mounts(&self, id: &str) -> Result<Vec<FileMount>, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: self
                .path
                .clone()
                .unwrap_or_else(|| self.base_dir.join("spin.toml")),
            message: format!("component `{id}`: {message}"),
        };
        let Some(component) = self.components.get(id) else {
            return Ok(Vec::new());
        };
        component
            .files
            .iter()
            .map(|mount| {
                let source = mount.source();
                let host = self.resolve_path(source);
                let entry = || format!("`files` entry `{source}`");
                match std::fs::metadata(&host) {
                    Ok(meta) if meta.is_dir() => Ok(FileMount {
                        host,
                        guest: mount.guest_path(),
                    }),
                    Ok(_) => Err(invalid(format!(
                        "{}: {} is not a directory; chatgate mounts only directories, as `spin up --direct-mounts` does (mount the directory that holds the file)",
                        entry(),
                        host.display()
                    ))),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(invalid(format!(
                        "{}: {} does not exist",
                        entry(),
                        host.display()
                    ))),
                    Err(e) => Err(invalid(format!(
                        "{}: cannot read {}: {e}",
                        entry(),
                        host.display()
                    ))),
                }
            })
            .collect()
    }

    /// The `.wasm` file a component is loaded from.
    pub fn component_source(&self, id: &str) -> Option<PathBuf> {
        match &self.components.get(id)?.source {
            ComponentSource::Local(path) => Some(self.resolve_path(path)),
            ComponentSource::Remote { .. } => None,
        }
    }
}

/// The checks of a component's `files` and `exclude_files` that need no filesystem.
fn check_files(component: &ComponentDecl) -> Result<(), String> {
    if !component.exclude_files.is_empty() {
        // Spin's `--direct-mounts` refuses them too (`crates/loader/src/local.rs`:263-266).
        return Err("`exclude_files` is not supported by chatgate, which mounts `files` directories directly as `spin up --direct-mounts` does; mount a directory that holds only what the component may read".into());
    }
    let mut destinations = std::collections::BTreeSet::new();
    for mount in &component.files {
        mount
            .check()
            .map_err(|e| format!("`files` entry `{}`: {e}", mount.source()))?;
        let guest = mount.guest_path();
        if !destinations.insert(guest.trim_end_matches('/').to_string()) {
            return Err(format!("`files`: two entries are mounted at `{guest}`"));
        }
    }
    Ok(())
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

    /// `MINIMAL` with `lines` added to `[component.web]`.
    fn with_web(lines: &str) -> String {
        MINIMAL.replace(
            "allowed_outbound_hosts = [\"https://example.com\"]\n",
            &format!("allowed_outbound_hosts = [\"https://example.com\"]\n{lines}\n"),
        )
    }

    #[test]
    fn files_take_spins_two_shapes() {
        let m = parse(&with_web(
            "files = [\"static\", { source = \"/var/run/secrets/azure/tokens\", destination = \"/var/run/secrets/azure/tokens\" }, { source = \"conf/\", destination = \"/\" }]",
        ))
        .unwrap();
        let files = &m.components["web"].files;
        assert_eq!(files[0], FilesMount::Pattern("static".into()));
        assert_eq!(files[0].guest_path(), "/static");
        assert_eq!(files[1].source(), "/var/run/secrets/azure/tokens");
        assert_eq!(files[1].guest_path(), "/var/run/secrets/azure/tokens");
        assert_eq!(files[2].guest_path(), "/");
        assert!(m.components["guard"].files.is_empty());
    }

    #[test]
    fn bad_files_entries_are_refused_by_name() {
        for (entry, expected) in [
            ("\"assets/*.png\"", "glob patterns are not supported"),
            ("\"assets/\"", ""),
            ("\"a/..\"", "parent directory"),
            ("\".\"", "current directory"),
            (
                "{ source = \"a\", destination = \"guest\" }",
                "must be an absolute path",
            ),
            (
                "{ source = \"a\", destination = \"/x/../y\" }",
                "must not contain",
            ),
            ("{ source = \"a\" }", "missing `destination`"),
            (
                "{ source = \"a\", destination = \"/a\", mode = \"rw\" }",
                "unknown field `mode`",
            ),
            (
                "{ source = 1, destination = \"/a\" }",
                "`source` must be a string",
            ),
            (
                "{ source = \"\", destination = \"/a\" }",
                "`source` is empty",
            ),
            ("3", "expected a path"),
        ] {
            let result = parse(&with_web(&format!("files = [{entry}]")));
            if expected.is_empty() {
                result.unwrap();
                continue;
            }
            let err = result.unwrap_err();
            assert!(err.contains(expected), "{entry}: {err}");
        }
        let err = parse(&with_web(
            "files = [{ source = \"a\", destination = \"/d\" }, { source = \"b\", destination = \"/d/\" }]",
        ))
        .unwrap_err();
        assert!(err.contains("two entries are mounted at `/d/`"), "{err}");
        let err = parse(&with_web("files = [\"a\"]\nexclude_files = [\"a/secret\"]")).unwrap_err();
        assert!(
            err.contains("component `web`: `exclude_files` is not supported"),
            "{err}"
        );
    }

    /// A directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir()
                .join(format!("chatgate-manifest-{name}-{}", std::process::id()));
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn file_mounts_resolve_relative_and_absolute_directories() {
        let app = TempDir::new("mounts");
        let outside = TempDir::new("mounts-outside");
        std::fs::create_dir_all(app.0.join("static")).unwrap();
        std::fs::write(app.0.join("static/file.txt"), "x").unwrap();
        let text = with_web(&format!(
            "files = [\"static\", {{ source = \"{}\", destination = \"/var/run/tokens\" }}]",
            outside.0.display()
        ));
        std::fs::write(app.0.join("spin.toml"), &text).unwrap();
        let m = Manifest::load(&app.0.join("spin.toml")).unwrap();
        let base = std::path::absolute(&app.0).unwrap();
        assert_eq!(
            m.file_mounts("web").unwrap(),
            vec![
                FileMount {
                    host: base.join("static"),
                    guest: "/static".into()
                },
                FileMount {
                    host: outside.0.clone(),
                    guest: "/var/run/tokens".into()
                },
            ]
        );
        assert_eq!(m.file_mounts("guard").unwrap(), vec![]);

        // A single file and a missing directory: refused with the manifest's path.
        for (source, expected) in [
            (
                "static/file.txt",
                "is not a directory; chatgate mounts only directories",
            ),
            ("missing", "does not exist"),
        ] {
            let text = with_web(&format!("files = [\"{source}\"]"));
            std::fs::write(app.0.join("spin.toml"), &text).unwrap();
            let m = Manifest::load(&app.0.join("spin.toml")).unwrap();
            let err = m.file_mounts("web").unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
            assert!(
                err.starts_with(&format!(
                    "invalid manifest {}: component `web`: `files` entry `{source}`",
                    app.0.join("spin.toml").display()
                )),
                "{err}"
            );
        }
    }

    #[test]
    fn build_commands_come_in_either_shape() {
        let one = BuildCommand::One("cargo build".into());
        assert_eq!(one.commands(), vec!["cargo build"]);
        let many = BuildCommand::Many(vec!["a".into(), "b".into()]);
        assert_eq!(many.commands(), vec!["a", "b"]);
    }
}
