//! The Spin OCI artifact of an application: what `spin registry push` sends to a
//! registry, written here as an OCI image layout directory (`chatgate registry layout`)
//! so `skopeo copy oci:<dir> docker://<registry>/<repo>:<tag>` can push it and SpinKube's
//! `SpinApp.spec.image` can name it; and read back into a runnable application
//! (`chatgate registry unpack`).
//!
//! The format, read in Spin's source at commit 94a8fc8a (2026-08-21, the first with
//! middleware; `client` is `crates/oci/src/client.rs`, `loader` `crates/loader/src/local.rs`,
//! `locked` `crates/locked-app/src/locked.rs`, `split` `crates/loader/src/local/trigger_components.rs`),
//! and what containerd-shim-spin reads of it (`containerd-shim-spin/src/source.rs` at
//! 56110186, 2026-05-12):
//!
//! * The image manifest's config is a plain OCI image config
//!   (`application/vnd.oci.image.config.v1+json`): architecture `wasm`, os `Wasip1`, and a
//!   label `com.fermyon.spin.lockedAppDigest` with the locked app's digest, so two apps
//!   never share an image id (client:233-267). Older Spin put the locked app itself in
//!   the config; Spin still reads both (client:553-556).
//! * The layers, in order: for each component of the locked app, its Wasm
//!   (`application/vnd.wasm.content.layer.v1+wasm`) and then one layer per file of its
//!   `files` (`application/vnd.wasm.content.layer.v1+data`), identical layers once
//!   (client:305); last the locked app as compact JSON
//!   (`application/vnd.fermyon.spin.application.v1+config`, client:233-237). The shim
//!   writes that layer to `/spin.json` and puts the others in Spin's cache by digest
//!   (source.rs:42-109).
//! * The locked app is `spin.toml` resolved (loader:87-173): metadata, variables,
//!   triggers with generated ids (`crates/manifest/src/normalize.rs`:75-109), components.
//!   A component named by several triggers of which some have middleware is cloned as
//!   `<component>-for-<trigger id>` for each such trigger, and the middleware moves from
//!   the trigger to that component, with the host requirement `middleware = "required"`
//!   (split:16-89).
//! * `spin registry push` composes by default (`--compose`, `src/commands/registry.rs`:57-64):
//!   each component's Wasm is the component with its dependencies and middleware
//!   composed in, and `dependencies` and `trigger_dependencies` are emptied (client:362-400).
//!   Composition is the only form that runs from a registry with middleware: Spin's OCI
//!   loader and the shim resolve only a component's source, dependencies and files by
//!   digest (`crates/oci/src/loader.rs`:113-172), never `trigger_dependencies`, and an
//!   uncomposed push leaves those as `file://` URLs of the pushing machine (client:310-360).
//!   chatgate composes with its own composer ([`crate::app::compose_trigger`], which
//!   follows Spin's: [`crate::compose`]), so a composed layer's bytes are chatgate's
//!   composition, not byte for byte what Spin's `wac` would write.
//! * A source becomes `{"content_type": "application/wasm", "digest": "sha256:…"}`; a file
//!   is `{"digest": …, "path": <path under the component's root>}`, its bytes inlined
//!   (base64, no padding) instead when 128 bytes or fewer, and then not pushed as a layer
//!   (client:498-540, 691-700). Paths are where `spin registry push`'s copy puts them: a
//!   mount's destination (or pattern) joined with the file's path in the directory
//!   (loader:248-263).
//! * Annotations: `org.opencontainers.image.title`, `.description`, `.version`,
//!   `.authors` from `[application]`, `.created`, and any given (client:875-944).
//!
//! Where this differs from Spin, by choice: `created` is given (the commit's time, for
//! reproducible digests) rather than the time of writing; components are in id order
//! (Spin: the manifest's order, which chatgate's parsed manifest does not keep), and
//! split-off components in the order of their triggers (Spin: a hash map's order); the
//! manifest carries its `mediaType` (Spin leaves it to the registry's Content-Type, a
//! layout has none); an application needing more than 499 layers is refused (Spin then
//! switches to gzip archive layers, client:219-229). A `files` directory outside the
//! application's folder is refused, as `spin registry push`'s copy refuses it
//! (loader:536-543).

use crate::manifest::{HttpTrigger, Manifest, TriggerDependencies};
use anyhow::{Context, bail, ensure};
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sha2::Digest;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The locked application's layer (client:31).
pub const SPIN_APPLICATION_MEDIA_TYPE: &str = "application/vnd.fermyon.spin.application.v1+config";
/// A component's Wasm (client:37).
pub const WASM_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// One file of a component's `files` (client:33).
pub const DATA_LAYER_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+data";
pub const IMAGE_MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const IMAGE_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const IMAGE_INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";
/// The config label naming the locked app's digest (client:241-245).
pub const LOCKED_APP_DIGEST_LABEL: &str = "com.fermyon.spin.lockedAppDigest";
/// The tag of a manifest in an image layout's `index.json` (OCI image-spec annotations).
pub const REF_NAME_ANNOTATION: &str = "org.opencontainers.image.ref.name";
/// Content of this size or less is inlined in the locked app (client:56).
const INLINE_MAX_BYTES: usize = 128;
/// Registries' smallest known limit of layers per image, the locked app's included
/// (client:47-52).
const MAX_LAYERS: usize = 500;
/// The host requirement a component with middleware carries (locked:25).
const MIDDLEWARE_REQUIREMENT: &str = "middleware";

/// `spin.lock`, as Spin serialises it (locked:48-158): the fields in this order, empty
/// ones left out, maps with sorted keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedApp {
    /// 1 when `must_understand` or `host_requirements` say anything, else 0 (locked:133-137).
    pub spin_lock_version: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_understand: Vec<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub host_requirements: Map<String, Value>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, LockedVariable>,
    pub triggers: Vec<LockedTrigger>,
    pub components: Vec<LockedComponent>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedVariable {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// None: the variable is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedTrigger {
    pub id: String,
    pub trigger_type: String,
    /// `route`, `component`, `executor`, ...: the trigger's table minus id and dependencies.
    pub trigger_config: Value,
    /// Empty once middleware has moved to the components (split:70-89).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub trigger_dependencies: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedComponent {
    pub id: String,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    pub source: LockedSource,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ContentPath>,
    /// The component's variables (templates over the application's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Empty in a composed artifact (client:390-391).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub dependencies: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub trigger_dependencies: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub host_requirements: Map<String, Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockedSource {
    pub content_type: String,
    #[serde(flatten)]
    pub content: ContentRef,
}

/// Where content is: a URL, the bytes themselves, or a digest naming a layer (locked:327-350).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContentRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Base64 without padding (`crates/serde/src/base64.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentPath {
    #[serde(flatten)]
    pub content: ContentRef,
    /// Relative to the component's root (`/`).
    pub path: String,
}

/// A blob and its media type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn digest(&self) -> String {
        sha256_digest(&self.bytes)
    }

    fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest(),
            "size": self.bytes.len(),
        })
    }
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = sha2::Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash.iter() {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// What to stamp on the artifact beside what `[application]` says.
#[derive(Debug, Clone, Default)]
pub struct ArtifactOptions {
    /// `org.opencontainers.image.created` (RFC 3339). Spin writes the time of pushing;
    /// give a fixed one for the same digests from the same inputs.
    pub created: String,
    /// Further manifest annotations; they win over the inferred ones, as in Spin.
    pub annotations: BTreeMap<String, String>,
}

/// The artifact: layers (the locked app last), config and manifest.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub locked: LockedApp,
    pub layers: Vec<Blob>,
    pub config: Blob,
    pub manifest: Blob,
}

/// The ids Spin gives triggers that have none (`normalize.rs`:74-107): `<component>-<type>-trigger`,
/// or `<type>-trigger<n>` when that is taken.
pub fn trigger_ids(triggers: &[HttpTrigger]) -> Vec<String> {
    let mut taken: BTreeSet<String> = triggers.iter().filter_map(|t| t.id.clone()).collect();
    let mut counter = 1;
    triggers
        .iter()
        .map(|trigger| {
            if let Some(id) = trigger.id.as_ref().filter(|id| !id.is_empty()) {
                return id.clone();
            }
            let natural = format!("{}-http-trigger", trigger.component);
            if taken.insert(natural.clone()) {
                return natural;
            }
            loop {
                let id = format!("http-trigger{counter}");
                if taken.insert(id.clone()) {
                    return id;
                }
                counter += 1;
            }
        })
        .collect()
}

/// Which component each trigger runs once middleware has been moved onto components
/// (split:16-55): a component named by more than one trigger, one of them with
/// middleware, is cloned as `<component>-for-<trigger id>` for each trigger with
/// middleware; the others keep their component.
fn split_components(triggers: &[HttpTrigger], ids: &[String]) -> Vec<String> {
    let has_middleware = |t: &HttpTrigger| !t.dependencies.middleware.is_empty();
    let mut taken = BTreeSet::new();
    let mut disambiguator = 0;
    triggers
        .iter()
        .zip(ids)
        .map(|(trigger, id)| {
            let sharing: Vec<&HttpTrigger> = triggers
                .iter()
                .filter(|t| t.component == trigger.component)
                .collect();
            let split = sharing.len() > 1 && sharing.iter().any(|t| has_middleware(t));
            if !split || !has_middleware(trigger) {
                return trigger.component.clone();
            }
            let mut synthetic = format!("{}-for-{id}", trigger.component);
            if !taken.insert(synthetic.clone()) {
                disambiguator += 1;
                synthetic = format!("{synthetic}-d{disambiguator}");
                taken.insert(synthetic.clone());
            }
            synthetic
        })
        .collect()
}

fn toml_to_json(value: &toml::Value) -> anyhow::Result<Value> {
    serde_json::to_value(value).context("a TOML value has no JSON form")
}

/// The component metadata Spin records (loader:224-231): empty strings and lists left out.
fn component_metadata(manifest: &Manifest, id: &str) -> anyhow::Result<Map<String, Value>> {
    let decl = &manifest.components[id];
    let mut metadata = Map::new();
    if let Some(description) = decl.description.as_ref().filter(|d| !d.is_empty()) {
        metadata.insert("description".into(), description.clone().into());
    }
    if !decl.allowed_outbound_hosts.is_empty() {
        metadata.insert(
            "allowed_outbound_hosts".into(),
            decl.allowed_outbound_hosts.clone().into(),
        );
    }
    if !decl.key_value_stores.is_empty() {
        metadata.insert(
            "key_value_stores".into(),
            decl.key_value_stores.clone().into(),
        );
    }
    if let Some(build) = &decl.build {
        let mut table = Map::new();
        let command = build.command.commands();
        table.insert(
            "command".into(),
            match &build.command {
                crate::manifest::BuildCommand::One(one) => one.clone().into(),
                crate::manifest::BuildCommand::Many(_) => command.into(),
            },
        );
        if let Some(workdir) = &build.workdir {
            table.insert("workdir".into(), workdir.clone().into());
        }
        if !build.watch.is_empty() {
            table.insert("watch".into(), build.watch.clone().into());
        }
        metadata.insert("build".into(), table.into());
    }
    Ok(metadata)
}

/// The application metadata Spin records (loader:683-707).
fn app_metadata(manifest: &Manifest) -> anyhow::Result<Map<String, Value>> {
    let app = &manifest.application;
    let mut metadata = Map::new();
    metadata.insert("name".into(), app.name.clone().into());
    if let Some(version) = app.version.as_ref().filter(|v| !v.is_empty()) {
        metadata.insert("version".into(), version.clone().into());
    }
    if let Some(description) = app.description.as_ref().filter(|d| !d.is_empty()) {
        metadata.insert("description".into(), description.clone().into());
    }
    if !app.authors.is_empty() {
        metadata.insert("authors".into(), app.authors.clone().into());
    }
    let global = match &app.trigger {
        Some(table) => toml_to_json(&toml::Value::Table(table.clone()))?,
        None => Value::Object(Map::new()),
    };
    // One trigger type: its global options again under `trigger`, with `type`
    // (loader:694-704, kept by Spin for older hosts).
    let mut single = global.get("http").cloned().unwrap_or_else(|| json!({}));
    if let Some(single) = single.as_object_mut() {
        single.insert("type".into(), "http".into());
    }
    metadata.insert("triggers".into(), global);
    metadata.insert("trigger".into(), single);
    Ok(metadata)
}

/// Every file under `dir`, as paths relative to it, sorted (Spin walks the directory in
/// the filesystem's order; sorted gives the same layer order everywhere).
fn files_under(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let entries = std::fs::read_dir(dir.join(&relative))
            .with_context(|| format!("cannot read {}", dir.join(&relative).display()))?;
        for entry in entries {
            let entry = entry?;
            let path = relative.join(entry.file_name());
            // Followed, as Spin's copy follows links (a link to a directory is a directory).
            let meta = std::fs::metadata(dir.join(&path))
                .with_context(|| format!("cannot read {}", dir.join(&path).display()))?;
            if meta.is_dir() {
                pending.push(path);
            } else if meta.is_file() {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// A component's `files` as Spin's copy lays them out (loader:248-263, 401-589) and
/// `spin registry push` records them (client:498-540): one entry per file, under its
/// mount's guest path; the data layers of those not inlined.
fn component_files(
    manifest: &Manifest,
    id: &str,
    layers: &mut Vec<Blob>,
) -> anyhow::Result<Vec<ContentPath>> {
    let mut files = Vec::new();
    let base = std::fs::canonicalize(&manifest.base_dir)
        .with_context(|| format!("cannot resolve {}", manifest.base_dir.display()))?;
    for mount in manifest.file_mounts(id)? {
        let host = std::fs::canonicalize(&mount.host)
            .with_context(|| format!("cannot resolve {}", mount.host.display()))?;
        ensure!(
            host.starts_with(&base),
            "component `{id}`: `files` directory {} is outside the application's folder {}, which `spin registry push` refuses to copy (it is mounted at run time, not shipped)",
            mount.host.display(),
            base.display()
        );
        let guest = mount.guest.trim_matches('/');
        for relative in files_under(&host)? {
            let relative = relative
                .to_str()
                .with_context(|| format!("{} is not UTF-8", relative.display()))?;
            let path = if guest.is_empty() {
                relative.to_string()
            } else {
                format!("{guest}/{relative}")
            };
            let bytes = std::fs::read(host.join(relative))
                .with_context(|| format!("cannot read {}", host.join(relative).display()))?;
            let blob = Blob {
                media_type: DATA_LAYER_MEDIA_TYPE.into(),
                bytes,
            };
            let inline = (blob.bytes.len() <= INLINE_MAX_BYTES)
                .then(|| base64::engine::general_purpose::STANDARD_NO_PAD.encode(&blob.bytes));
            files.push(ContentPath {
                content: ContentRef {
                    source: None,
                    inline: inline.clone(),
                    digest: Some(blob.digest()),
                },
                path,
            });
            // Inlined content is not pushed: some registries refuse very small blobs
            // (client:525-531).
            if inline.is_none() {
                layers.push(blob);
            }
        }
    }
    Ok(files)
}

fn read_wasm(path: &Path, id: &str) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).with_context(|| {
        format!(
            "component `{id}`: cannot read {}; build it first (`make build`)",
            path.display()
        )
    })?;
    // Spin checks every source is Wasm before pushing (`crates/oci/src/validate.rs`).
    ensure!(
        bytes.starts_with(b"\0asm"),
        "component `{id}`: {} is not a WebAssembly file",
        path.display()
    );
    Ok(bytes)
}

/// Builds the artifact `spin registry push` (composing, its default) would push for
/// `manifest`, with chatgate's composer.
pub fn build_artifact(manifest: &Manifest, options: &ArtifactOptions) -> anyhow::Result<Artifact> {
    let ids = trigger_ids(&manifest.http_triggers);
    let runs = split_components(&manifest.http_triggers, &ids);

    // Components in id order, then the split-off ones in trigger order; each with the
    // trigger whose middleware it carries, if any.
    let mut components: Vec<(String, String, Option<&HttpTrigger>)> = manifest
        .components
        .keys()
        .map(|id| (id.clone(), id.clone(), None))
        .collect();
    for (trigger, run) in manifest.http_triggers.iter().zip(&runs) {
        if trigger.dependencies.middleware.is_empty() {
            continue;
        }
        if run == &trigger.component {
            let entry = components
                .iter_mut()
                .find(|(id, _, _)| id == run)
                .expect("every trigger's component is declared");
            entry.2 = Some(trigger);
        } else {
            components.push((run.clone(), trigger.component.clone(), Some(trigger)));
        }
    }

    let mut layers: Vec<Blob> = Vec::new();
    let mut locked_components = Vec::new();
    for (id, declared, trigger) in &components {
        let decl = &manifest.components[declared];
        let source = manifest.component_source(declared).with_context(|| {
            format!("component `{declared}`: only local sources can be put in an artifact")
        })?;
        let has_dependencies = !decl.dependencies.is_empty();
        let bytes = match trigger {
            Some(trigger) => compose(manifest, trigger)?,
            // Composed with its dependencies as if one trigger ran it, without middleware.
            None if has_dependencies => compose(
                manifest,
                &HttpTrigger {
                    route: "/...".into(),
                    component: declared.clone(),
                    id: None,
                    executor: None,
                    dependencies: TriggerDependencies::default(),
                },
            )
            .with_context(|| format!("component `{declared}` with its dependencies"))?,
            None => read_wasm(&source, declared)?,
        };
        let wasm = Blob {
            media_type: WASM_LAYER_MEDIA_TYPE.into(),
            bytes,
        };
        let digest = wasm.digest();
        layers.push(wasm);
        let files = component_files(manifest, declared, &mut layers)?;
        let mut metadata = component_metadata(manifest, declared)?;
        let mut host_requirements = Map::new();
        if trigger.is_some() {
            metadata.insert("resolve-trigger-dependencies-using".into(), "http".into());
            host_requirements.insert(MIDDLEWARE_REQUIREMENT.into(), "required".into());
        }
        locked_components.push(LockedComponent {
            id: id.clone(),
            metadata,
            source: LockedSource {
                content_type: "application/wasm".into(),
                content: ContentRef {
                    digest: Some(digest),
                    ..ContentRef::default()
                },
            },
            env: decl.environment.clone(),
            files,
            config: decl.variables.clone(),
            dependencies: Map::new(),
            trigger_dependencies: Map::new(),
            host_requirements,
        });
    }
    // Identical layers once, the first kept (client:305).
    let mut seen = BTreeSet::new();
    layers.retain(|layer| seen.insert((layer.media_type.clone(), layer.digest())));
    ensure!(
        layers.len() < MAX_LAYERS,
        "{} layers: registries take at most {MAX_LAYERS} (the locked app included); Spin then packs each component's files into one archive layer, which chatgate does not write",
        layers.len()
    );

    let triggers = manifest
        .http_triggers
        .iter()
        .zip(ids.iter().zip(&runs))
        .map(|(trigger, (id, run))| {
            let mut config = Map::new();
            config.insert("route".into(), trigger.route.clone().into());
            config.insert("component".into(), run.clone().into());
            if let Some(executor) = &trigger.executor {
                config.insert(
                    "executor".into(),
                    toml_to_json(&toml::Value::Table(executor.clone()))?,
                );
            }
            Ok(LockedTrigger {
                id: id.clone(),
                trigger_type: "http".into(),
                trigger_config: Value::Object(config),
                trigger_dependencies: Map::new(),
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let variables = manifest
        .variables
        .iter()
        .map(|(name, decl)| {
            (
                name.clone(),
                LockedVariable {
                    description: decl.description.clone(),
                    default: decl.default.clone(),
                    secret: decl.secret,
                },
            )
        })
        .collect();
    let must_understand = if locked_components
        .iter()
        .any(|c| !c.host_requirements.is_empty())
    {
        vec!["component_host_requirements".to_string()]
    } else {
        Vec::new()
    };
    let locked = LockedApp {
        spin_lock_version: if must_understand.is_empty() { 0 } else { 1 },
        must_understand,
        metadata: app_metadata(manifest)?,
        host_requirements: Map::new(),
        variables,
        triggers,
        components: locked_components,
    };
    let locked_layer = Blob {
        media_type: SPIN_APPLICATION_MEDIA_TYPE.into(),
        bytes: serde_json::to_vec(&locked)?,
    };
    let config = Blob {
        media_type: IMAGE_CONFIG_MEDIA_TYPE.into(),
        bytes: serde_json::to_vec(&json!({
            "architecture": "wasm",
            "os": "Wasip1",
            "config": { "Labels": { LOCKED_APP_DIGEST_LABEL: locked_layer.digest() } },
            "rootfs": { "type": "layers", "diff_ids": [] },
        }))?,
    };
    layers.push(locked_layer);

    let mut annotations = BTreeMap::new();
    let app = &manifest.application;
    if !app.authors.is_empty() {
        annotations.insert(
            "org.opencontainers.image.authors".to_string(),
            app.authors.join(", "),
        );
    }
    annotations.insert("org.opencontainers.image.title".into(), app.name.clone());
    for (key, value) in [
        ("org.opencontainers.image.description", &app.description),
        ("org.opencontainers.image.version", &app.version),
    ] {
        if let Some(value) = value {
            annotations.insert(key.into(), value.clone());
        }
    }
    annotations.insert(
        "org.opencontainers.image.created".into(),
        options.created.clone(),
    );
    annotations.extend(options.annotations.clone());
    let manifest_blob = Blob {
        media_type: IMAGE_MANIFEST_MEDIA_TYPE.into(),
        bytes: serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST_MEDIA_TYPE,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
            "annotations": annotations,
        }))?,
    };
    Ok(Artifact {
        locked,
        layers,
        config,
        manifest: manifest_blob,
    })
}

fn compose(manifest: &Manifest, trigger: &HttpTrigger) -> anyhow::Result<Vec<u8>> {
    // The composer reports with wasmtime's error type; its message is kept whole.
    crate::app::compose_trigger(manifest, trigger)
        .map(|composed| composed.bytes)
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .with_context(|| format!("cannot compose the trigger of route `{}`", trigger.route))
}

/// Writes `artifact` as an OCI image layout at `out` (replacing what is there): `oci-layout`,
/// `index.json` naming the manifest with `tag`, and `blobs/sha256/<hex>`. Returns the
/// manifest's digest.
pub fn write_layout(artifact: &Artifact, out: &Path, tag: &str) -> anyhow::Result<String> {
    if out.exists() {
        std::fs::remove_dir_all(out)
            .with_context(|| format!("cannot replace {}", out.display()))?;
    }
    let blobs = out.join("blobs/sha256");
    std::fs::create_dir_all(&blobs)
        .with_context(|| format!("cannot create {}", blobs.display()))?;
    for blob in artifact
        .layers
        .iter()
        .chain([&artifact.config, &artifact.manifest])
    {
        let digest = blob.digest();
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(blobs.join(hex), &blob.bytes)?;
    }
    std::fs::write(
        out.join("oci-layout"),
        serde_json::to_vec(&json!({ "imageLayoutVersion": "1.0.0" }))?,
    )?;
    let mut descriptor = artifact.manifest.descriptor();
    descriptor["annotations"] = json!({ REF_NAME_ANNOTATION: tag });
    std::fs::write(
        out.join("index.json"),
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_INDEX_MEDIA_TYPE,
            "manifests": [descriptor],
        }))?,
    )?;
    Ok(artifact.manifest.digest())
}

/// A blob of the layout at `layout`, checked against its digest and size.
fn read_blob(layout: &Path, descriptor: &Value) -> anyhow::Result<Vec<u8>> {
    let digest = descriptor["digest"]
        .as_str()
        .context("a descriptor without a digest")?;
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .with_context(|| format!("`{digest}` is not a sha256 digest"))?;
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex))
        .with_context(|| format!("blob {digest} is missing from {}", layout.display()))?;
    ensure!(
        sha256_digest(&bytes) == digest,
        "blob {digest} does not match its digest"
    );
    if let Some(size) = descriptor["size"].as_u64() {
        ensure!(
            size == bytes.len() as u64,
            "blob {digest} is {} bytes, its descriptor says {size}",
            bytes.len()
        );
    }
    Ok(bytes)
}

/// The locked app of the Spin artifact at `layout` (an OCI image layout holding one
/// image, or the one tagged `tag`), and the layers by digest; every blob checked.
pub fn read_layout(
    layout: &Path,
    tag: Option<&str>,
) -> anyhow::Result<(LockedApp, BTreeMap<String, Blob>)> {
    let index: Value = serde_json::from_slice(
        &std::fs::read(layout.join("index.json"))
            .with_context(|| format!("{} is not an OCI image layout", layout.display()))?,
    )
    .context("index.json is not JSON")?;
    let manifests = index["manifests"]
        .as_array()
        .context("index.json lists no manifests")?;
    let chosen: Vec<&Value> = manifests
        .iter()
        .filter(|m| match tag {
            Some(tag) => m["annotations"][REF_NAME_ANNOTATION] == tag,
            None => true,
        })
        .collect();
    let [descriptor] = chosen[..] else {
        bail!(
            "{} holds {} images{}: name one with --tag",
            layout.display(),
            chosen.len(),
            tag.map(|t| format!(" tagged `{t}`")).unwrap_or_default()
        );
    };
    let manifest: Value = serde_json::from_slice(&read_blob(layout, descriptor)?)
        .context("the image manifest is not JSON")?;
    let mut layers = BTreeMap::new();
    let mut locked = None;
    for descriptor in manifest["layers"]
        .as_array()
        .context("the image manifest has no layers")?
    {
        let media_type = descriptor["mediaType"].as_str().unwrap_or_default();
        let bytes = read_blob(layout, descriptor)?;
        if media_type == SPIN_APPLICATION_MEDIA_TYPE {
            locked = Some(bytes);
            continue;
        }
        let blob = Blob {
            media_type: media_type.to_string(),
            bytes,
        };
        layers.insert(blob.digest(), blob);
    }
    // Older Spin put the locked app in the config (client:553-556).
    let locked = match locked {
        Some(bytes) => bytes,
        None => read_blob(layout, &manifest["config"])?,
    };
    let locked: LockedApp = serde_json::from_slice(&locked)
        .context("the Spin application layer is not a locked app")?;
    Ok((locked, layers))
}

/// The host requirements chatgate meets: middleware (it composes triggers' middleware).
/// Not `local_service_chaining` (`*.spin.internal`).
const SUPPORTED_HOST_REQUIREMENTS: &[&str] = &[MIDDLEWARE_REQUIREMENT];

/// Writes the Spin artifact at `layout` as an application chatgate (or `spin up`) runs:
/// `<out>/spin.toml` with each component's Wasm at `<out>/wasm/<hex>.wasm` and its files
/// under `<out>/files/<component>/`, mounted at `/` as Spin's OCI loader mounts them
/// (`crates/oci/src/loader.rs`:127-172). Only composed artifacts: a dependency or trigger
/// dependency left in the locked app is refused, as Spin's loader cannot resolve the
/// latter either. Returns the manifest path.
pub fn unpack(layout: &Path, tag: Option<&str>, out: &Path) -> anyhow::Result<PathBuf> {
    let (locked, layers) = read_layout(layout, tag)?;
    for requirement in locked
        .host_requirements
        .iter()
        .chain(locked.components.iter().flat_map(|c| &c.host_requirements))
        .filter(|(_, value)| value.as_str() != Some("optional"))
        .map(|(key, _)| key)
    {
        ensure!(
            SUPPORTED_HOST_REQUIREMENTS.contains(&requirement.as_str()),
            "the application requires `{requirement}`, which chatgate does not support"
        );
    }
    if out.exists() {
        std::fs::remove_dir_all(out)
            .with_context(|| format!("cannot replace {}", out.display()))?;
    }
    std::fs::create_dir_all(out.join("wasm"))?;

    let mut application = toml::Table::new();
    let text = |key: &str| locked.metadata.get(key).and_then(Value::as_str);
    application.insert(
        "name".into(),
        text("name").context("the locked app has no name")?.into(),
    );
    for key in ["version", "description"] {
        if let Some(value) = text(key) {
            application.insert(key.into(), value.into());
        }
    }
    if let Some(authors) = locked.metadata.get("authors") {
        application.insert("authors".into(), toml::Value::try_from(authors)?);
    }
    if let Some(global) = locked
        .metadata
        .get("triggers")
        .filter(|t| t.as_object().is_some_and(|t| !t.is_empty()))
    {
        application.insert("trigger".into(), toml::Value::try_from(global)?);
    }

    let mut variables = toml::Table::new();
    for (name, variable) in &locked.variables {
        let mut decl = toml::Table::new();
        match &variable.default {
            Some(default) => decl.insert("default".into(), default.clone().into()),
            None => decl.insert("required".into(), true.into()),
        };
        if variable.secret {
            decl.insert("secret".into(), true.into());
        }
        if let Some(description) = &variable.description {
            decl.insert("description".into(), description.clone().into());
        }
        variables.insert(name.clone(), decl.into());
    }

    let mut triggers = Vec::new();
    for trigger in &locked.triggers {
        ensure!(
            trigger.trigger_type == "http",
            "trigger `{}` is of type `{}`: chatgate runs only `http`",
            trigger.id,
            trigger.trigger_type
        );
        ensure!(
            trigger.trigger_dependencies.is_empty(),
            "trigger `{}` has trigger dependencies: the artifact was pushed without composing (`spin registry push --compose=false`), which neither Spin's loader nor chatgate can run",
            trigger.id
        );
        let mut table: toml::Table = toml::Value::try_from(&trigger.trigger_config)?
            .try_into()
            .context("a trigger's configuration is not a table")?;
        table.insert("id".into(), trigger.id.clone().into());
        triggers.push(toml::Value::Table(table));
    }

    let mut components = toml::Table::new();
    for component in &locked.components {
        let id = &component.id;
        ensure!(
            component.dependencies.is_empty() && component.trigger_dependencies.is_empty(),
            "component `{id}` has dependencies: the artifact was pushed without composing (`spin registry push --compose=false`); chatgate runs composed artifacts only"
        );
        let digest = component
            .source
            .content
            .digest
            .as_deref()
            .with_context(|| format!("component `{id}`: its source has no digest"))?;
        let wasm = layers
            .get(digest)
            .filter(|layer| layer.media_type == WASM_LAYER_MEDIA_TYPE)
            .with_context(|| format!("component `{id}`: no Wasm layer {digest}"))?;
        let wasm_path = format!("wasm/{}.wasm", digest.trim_start_matches("sha256:"));
        std::fs::write(out.join(&wasm_path), &wasm.bytes)?;

        let mut table = toml::Table::new();
        table.insert("source".into(), wasm_path.into());
        if let Some(description) = component
            .metadata
            .get("description")
            .and_then(Value::as_str)
        {
            table.insert("description".into(), description.into());
        }
        for key in ["allowed_outbound_hosts", "key_value_stores"] {
            if let Some(value) = component.metadata.get(key) {
                table.insert(key.into(), toml::Value::try_from(value)?);
            }
        }
        if !component.env.is_empty() {
            table.insert("environment".into(), toml::Value::try_from(&component.env)?);
        }
        if !component.config.is_empty() {
            table.insert(
                "variables".into(),
                toml::Value::try_from(&component.config)?,
            );
        }
        if !component.files.is_empty() {
            let root = format!("files/{id}");
            for file in &component.files {
                let relative = Path::new(&file.path);
                ensure!(
                    relative
                        .components()
                        .all(|c| matches!(c, std::path::Component::Normal(_))),
                    "component `{id}`: file path `{}` leaves its root",
                    file.path
                );
                let bytes = match (&file.content.inline, &file.content.digest) {
                    (Some(inline), _) => base64::engine::general_purpose::STANDARD_NO_PAD
                        .decode(inline)
                        .with_context(|| format!("component `{id}`: `{}`", file.path))?,
                    (None, Some(digest)) => layers
                        .get(digest.as_str())
                        .with_context(|| {
                            format!("component `{id}`: no layer {digest} for `{}`", file.path)
                        })?
                        .bytes
                        .clone(),
                    (None, None) => bail!("component `{id}`: `{}` has no content", file.path),
                };
                let target = out.join(&root).join(relative);
                std::fs::create_dir_all(target.parent().expect("a file has a parent"))?;
                std::fs::write(&target, bytes)?;
            }
            table.insert(
                "files".into(),
                toml::Value::Array(vec![toml::Value::Table(toml::Table::from_iter([
                    ("source".to_string(), root.into()),
                    ("destination".to_string(), "/".into()),
                ]))]),
            );
        }
        components.insert(id.clone(), table.into());
    }

    let mut document = toml::Table::new();
    document.insert("spin_manifest_version".into(), 2.into());
    document.insert("application".into(), application.into());
    document.insert("variables".into(), variables.into());
    document.insert(
        "trigger".into(),
        toml::Table::from_iter([("http".to_string(), toml::Value::Array(triggers))]).into(),
    );
    document.insert("component".into(), components.into());
    let manifest_path = out.join("spin.toml");
    std::fs::write(
        &manifest_path,
        format!(
            "# Unpacked by `chatgate registry unpack` from the Spin artifact in {}: each\n# component composed with its dependencies and middleware.\n{}",
            layout.display(),
            toml::to_string(&document)?
        ),
    )?;
    Ok(manifest_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triggers(text: &str) -> Vec<HttpTrigger> {
        let text = format!(
            "spin_manifest_version = 2\n[application]\nname = \"t\"\n{text}\n[component.a]\nsource = \"a.wasm\"\n[component.b]\nsource = \"b.wasm\"\n[component.m]\nsource = \"m.wasm\"\n"
        );
        Manifest::parse(&text, PathBuf::from("/app"))
            .unwrap()
            .http_triggers
    }

    #[test]
    fn triggers_get_spins_ids_and_shared_components_with_middleware_are_split() {
        let t = triggers(
            "[[trigger.http]]\nroute = \"/x\"\ncomponent = \"a\"\ndependencies.middleware = [{ component = \"m\" }]\n\
             [[trigger.http]]\nroute = \"/y\"\ncomponent = \"a\"\n\
             [[trigger.http]]\nid = \"named\"\nroute = \"/z\"\ncomponent = \"a\"\ndependencies.middleware = [{ component = \"m\" }]\n\
             [[trigger.http]]\nroute = \"/...\"\ncomponent = \"b\"\ndependencies.middleware = [{ component = \"m\" }]\n",
        );
        let ids = trigger_ids(&t);
        assert_eq!(
            ids,
            ["a-http-trigger", "http-trigger1", "named", "b-http-trigger"]
        );
        // `a` is shared and has middleware on two triggers: one clone for each of them; the
        // trigger without middleware keeps `a`; `b` is not shared and keeps its id.
        assert_eq!(
            split_components(&t, &ids),
            ["a-for-a-http-trigger", "a", "a-for-named", "b"]
        );
    }

    /// A directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let path = std::env::temp_dir()
                .join(format!("chatgate-spin-oci-{name}-{}", std::process::id()));
            _ = std::fs::remove_dir_all(&path);
            std::fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            _ = std::fs::remove_dir_all(&self.0);
        }
    }

    /// The Wasm header: all a component without dependencies needs to be packed.
    const WASM: &[u8] = b"\0asm\x0d\0\x01\0";

    fn app_with_files(dir: &Path) -> Manifest {
        std::fs::create_dir_all(dir.join("static/nested")).unwrap();
        std::fs::write(dir.join("static/small.txt"), "hello").unwrap();
        std::fs::write(dir.join("static/nested/large.bin"), vec![7u8; 300]).unwrap();
        std::fs::write(dir.join("web.wasm"), WASM).unwrap();
        let text = "spin_manifest_version = 2\n[application]\nname = \"files-app\"\nversion = \"1.2.3\"\n\
            [variables]\ngreeting = { default = \"hi\" }\ntoken = { required = true, secret = true }\n\
            [[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n\
            [component.web]\nsource = \"web.wasm\"\nfiles = [{ source = \"static\", destination = \"/assets\" }]\n\
            [component.web.variables]\ngreeting = \"{{ greeting }}\"\n";
        std::fs::write(dir.join("spin.toml"), text).unwrap();
        Manifest::load(&dir.join("spin.toml")).unwrap()
    }

    #[test]
    fn files_become_data_layers_or_inline_content_and_unpack_back() {
        let dir = TempDir::new("files");
        let manifest = app_with_files(&dir.0);
        let options = ArtifactOptions {
            created: "2026-01-01T00:00:00Z".into(),
            annotations: BTreeMap::from([("org.example.k".to_string(), "v".to_string())]),
        };
        let artifact = build_artifact(&manifest, &options).unwrap();
        let web = &artifact.locked.components[0];
        assert_eq!(web.id, "web");
        assert_eq!(web.files.len(), 2);
        // Sorted paths, under the mount's destination.
        assert_eq!(web.files[0].path, "assets/nested/large.bin");
        assert_eq!(web.files[1].path, "assets/small.txt");
        // 300 bytes: a data layer; 5 bytes: inlined, no layer (as Spin does).
        assert!(web.files[0].content.inline.is_none());
        assert_eq!(web.files[1].content.inline.as_deref(), Some("aGVsbG8"));
        let media_types: Vec<&str> = artifact
            .layers
            .iter()
            .map(|l| l.media_type.as_str())
            .collect();
        assert_eq!(
            media_types,
            [
                WASM_LAYER_MEDIA_TYPE,
                DATA_LAYER_MEDIA_TYPE,
                SPIN_APPLICATION_MEDIA_TYPE
            ]
        );
        assert_eq!(
            Some(artifact.layers[1].digest()),
            web.files[0].content.digest
        );
        // No middleware: version 0 and nothing to understand.
        assert_eq!(artifact.locked.spin_lock_version, 0);
        assert!(artifact.locked.must_understand.is_empty());
        let manifest_json: Value = serde_json::from_slice(&artifact.manifest.bytes).unwrap();
        assert_eq!(manifest_json["annotations"]["org.example.k"], "v");
        assert_eq!(
            manifest_json["annotations"]["org.opencontainers.image.version"],
            "1.2.3"
        );

        // The same inputs, the same bytes.
        let again = build_artifact(&manifest, &options).unwrap();
        assert_eq!(again.manifest, artifact.manifest);

        let layout = dir.0.join("layout");
        let digest = write_layout(&artifact, &layout, "1.2.3").unwrap();
        assert_eq!(digest, artifact.manifest.digest());
        let out = dir.0.join("unpacked");
        let unpacked = unpack(&layout, Some("1.2.3"), &out).unwrap();
        let back = Manifest::load(&unpacked).unwrap();
        assert_eq!(back.http_triggers[0].route, "/...");
        assert!(back.variables["token"].required);
        assert!(back.variables["token"].secret);
        assert_eq!(
            back.components["web"].variables["greeting"],
            "{{ greeting }}"
        );
        let mounts = back.file_mounts("web").unwrap();
        assert_eq!(mounts.len(), 1);
        assert_eq!(mounts[0].guest, "/");
        assert_eq!(
            std::fs::read(mounts[0].host.join("assets/small.txt")).unwrap(),
            b"hello"
        );
        assert_eq!(
            std::fs::read(mounts[0].host.join("assets/nested/large.bin")).unwrap(),
            vec![7u8; 300]
        );
        assert_eq!(
            std::fs::read(back.component_source("web").unwrap()).unwrap(),
            WASM
        );
    }

    #[test]
    fn a_changed_blob_or_an_uncomposed_app_is_refused() {
        let dir = TempDir::new("refused");
        let manifest = app_with_files(&dir.0);
        let mut artifact = build_artifact(&manifest, &ArtifactOptions::default()).unwrap();
        let layout = dir.0.join("layout");
        write_layout(&artifact, &layout, "t").unwrap();
        let data = artifact.layers[1].digest();
        let path = layout
            .join("blobs/sha256")
            .join(data.trim_start_matches("sha256:"));
        std::fs::write(&path, vec![8u8; 300]).unwrap();
        let err = unpack(&layout, None, &dir.0.join("out")).unwrap_err();
        assert!(
            format!("{err:#}").contains("does not match its digest"),
            "{err:#}"
        );

        // A component left with a dependency: pushed with --compose=false.
        let locked = artifact.layers.pop().unwrap();
        let mut app: LockedApp = serde_json::from_slice(&locked.bytes).unwrap();
        app.components[0].dependencies.insert(
            "a:b/c".into(),
            json!({"source": {"content_type": "application/wasm", "source": "file:///x.wasm"}}),
        );
        artifact.layers.push(Blob {
            media_type: SPIN_APPLICATION_MEDIA_TYPE.into(),
            bytes: serde_json::to_vec(&app).unwrap(),
        });
        let mut manifest_json: Value = serde_json::from_slice(&artifact.manifest.bytes).unwrap();
        manifest_json["layers"] = artifact.layers.iter().map(Blob::descriptor).collect();
        artifact.manifest.bytes = serde_json::to_vec(&manifest_json).unwrap();
        write_layout(&artifact, &layout, "t").unwrap();
        let err = unpack(&layout, None, &dir.0.join("out")).unwrap_err();
        assert!(format!("{err:#}").contains("without composing"), "{err:#}");
    }

    #[test]
    fn files_outside_the_application_folder_are_refused_as_spin_push_refuses_them() {
        let dir = TempDir::new("outside");
        let outside = TempDir::new("outside-files");
        std::fs::write(dir.0.join("web.wasm"), WASM).unwrap();
        let text = format!(
            "spin_manifest_version = 2\n[application]\nname = \"a\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n\
             [component.web]\nsource = \"web.wasm\"\nfiles = [{{ source = \"{}\", destination = \"/tokens\" }}]\n",
            outside.0.display()
        );
        std::fs::write(dir.0.join("spin.toml"), text).unwrap();
        let manifest = Manifest::load(&dir.0.join("spin.toml")).unwrap();
        let err = build_artifact(&manifest, &ArtifactOptions::default()).unwrap_err();
        assert!(
            format!("{err:#}").contains("outside the application's folder"),
            "{err:#}"
        );
    }
}
