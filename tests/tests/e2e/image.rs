//! The OCI image `make image` writes (image/build.sh) to `target/image/oci`, checked the way
//! a container runtime would use it: the layout's index, manifest and config are read and
//! every blob checked against its digest; the layers are unpacked into a root filesystem;
//! the config's entrypoint runs from it as its (non-root) user, with the config's
//! environment and working directory, the root filesystem mounted read-only, in a mount
//! namespace of its own (`unshare`, `mount`, util-linux), and answers over HTTP.
//!
//! Running the image needs root (mounts and chroot); elsewhere those tests say they are
//! skipped. Podman is not used: its runtime (crun) refuses this machine's cgroups.

use chatgate_tests::http_client::{get, post_json};
use chatgate_tests::repo_root;
use serde_json::{Value, json};
use sha2::Digest;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The image layout `make image` writes.
fn layout() -> PathBuf {
    let layout = repo_root().join("target/image/oci");
    assert!(
        layout.join("index.json").exists(),
        "{} is missing: run `make image` (make test runs it)",
        layout.display()
    );
    layout
}

/// A blob of the layout, checked against its digest.
fn blob(layout: &Path, digest: &str) -> Vec<u8> {
    let hex = digest
        .strip_prefix("sha256:")
        .unwrap_or_else(|| panic!("{digest} is not a sha256 digest"));
    let bytes = std::fs::read(layout.join("blobs/sha256").join(hex)).unwrap();
    let actual = sha256_hex(&bytes);
    assert_eq!(actual, hex, "blob {digest} does not match its digest");
    bytes
}

/// A folder of this test run under target/image-test, removed when dropped, failed or not.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        Scratch(repo_root().join(format!("target/image-test/{name}-{}", std::process::id())))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

struct Image {
    layout: PathBuf,
    manifest: Value,
    config: Value,
}

fn image() -> Image {
    let layout = layout();
    let index: Value = serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap())
        .expect("index.json is JSON");
    let manifests = index["manifests"]
        .as_array()
        .expect("index.json lists manifests");
    assert_eq!(manifests.len(), 1, "one image in the layout: {index}");
    assert_eq!(
        manifests[0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    let manifest: Value =
        serde_json::from_slice(&blob(&layout, manifests[0]["digest"].as_str().unwrap())).unwrap();
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.oci.image.config.v1+json"
    );
    let config: Value = serde_json::from_slice(&blob(
        &layout,
        manifest["config"]["digest"].as_str().unwrap(),
    ))
    .unwrap();
    Image {
        layout,
        manifest,
        config,
    }
}

impl Image {
    /// Unpacks the layers, in order, into a fresh `dir`/rootfs (owned by root when run as root).
    fn unpack(&self, dir: &Path) -> PathBuf {
        let rootfs = dir.join("rootfs");
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(&rootfs).unwrap();
        for layer in self.manifest["layers"].as_array().unwrap() {
            let media_type = layer["mediaType"].as_str().unwrap();
            assert_eq!(media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
            let path = dir.join("layer.tar.gz");
            std::fs::write(&path, blob(&self.layout, layer["digest"].as_str().unwrap())).unwrap();
            let status = Command::new("tar")
                .arg("-xzf")
                .arg(&path)
                .arg("-C")
                .arg(&rootfs)
                .status()
                .unwrap();
            assert!(status.success(), "unpacking {layer}");
            std::fs::remove_file(&path).unwrap();
        }
        rootfs
    }

    fn env(&self) -> Vec<(String, String)> {
        self.config["config"]["Env"]
            .as_array()
            .map(|env| {
                env.iter()
                    .filter_map(|e| e.as_str()?.split_once('='))
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The config's user as numbers: `uid:gid` (the image gives numbers; it has no
    /// /etc/passwd to look names up in).
    fn user(&self) -> (u32, u32) {
        let user = self.config["config"]["User"].as_str().unwrap_or("");
        let (uid, gid) = user.split_once(':').unwrap_or((user, user));
        (
            uid.parse()
                .unwrap_or_else(|_| panic!("User {user:?} is not numeric")),
            gid.parse()
                .unwrap_or_else(|_| panic!("User {user:?} is not numeric")),
        )
    }
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// An absolute path of `program`, found in PATH (the image's process gets the image's
/// environment only, so the tools that start it are named by path).
fn which(program: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|path| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(program))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| panic!("{program} is not installed"))
}

/// The image's entrypoint, running.
struct Container {
    child: Child,
    address: String,
    stderr: BufReader<std::process::ChildStderr>,
}

impl Container {
    /// Runs the config's entrypoint from `rootfs` as the config's user, in its working
    /// directory, with its environment plus `env` (as `-e` would), the root filesystem
    /// read-only; with `tmpfs`, a tmpfs at /tmp (as a Kubernetes emptyDir or
    /// `--tmpfs /tmp` gives). Returns once it serves.
    fn start(image: &Image, rootfs: &Path, env: &[(&str, &str)], tmpfs: bool) -> Container {
        let config = &image.config["config"];
        let entrypoint: Vec<String> = config["Entrypoint"]
            .as_array()
            .expect("the image has an entrypoint")
            .iter()
            .map(|a| a.as_str().unwrap().to_string())
            .collect();
        let workdir = config["WorkingDir"].as_str().unwrap_or("/");
        let (uid, gid) = image.user();
        // In a private mount namespace: the root filesystem bound read-only onto itself,
        // /tmp on a tmpfs if asked, then chroot, working directory, and the user's ids
        // (util-linux `unshare --setgid` drops supplementary groups).
        let script = format!(
            "set -e; root=$1; wd=$2; uid=$3; gid=$4; shift 4\n\
             {mount} --bind \"$root\" \"$root\"\n\
             {mount} -o remount,bind,ro \"$root\"\n\
             {tmpfs}\
             exec {unshare} --root=\"$root\" --wd=\"$wd\" --setgid \"$gid\" --setuid \"$uid\" -- \"$@\"",
            mount = which("mount").display(),
            unshare = which("unshare").display(),
            tmpfs = if tmpfs {
                format!(
                    "{} -t tmpfs -o mode=1777,size=512m tmpfs \"$root/tmp\"\n",
                    which("mount").display()
                )
            } else {
                String::new()
            },
        );
        let mut command = Command::new(which("unshare"));
        command
            .args(["--mount", "--propagation", "private", "--"])
            .arg(which("sh"))
            .arg("-c")
            .arg(script)
            .arg("sh")
            .arg(rootfs)
            .arg(workdir)
            .arg(uid.to_string())
            .arg(gid.to_string())
            .args(&entrypoint)
            .env_clear()
            .envs(image.env())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut seen = String::new();
        let address = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let status = child.wait().unwrap();
                panic!("the entrypoint exited ({status}) before serving:\n{seen}");
            }
            seen.push_str(&line);
            if let Some(rest) = line.split("://").nth(1)
                && line.contains("serving")
            {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Container {
            child,
            address,
            stderr,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `/proc/<pid>/status` of the serving process: the entrypoint replaced `unshare`
    /// and `sh` by exec, so it is the child.
    fn status(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap()
    }

    /// SIGTERM; the gateway must drain and exit 0. Returns what it wrote to stderr.
    fn stop(mut self) -> String {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        let status = self.child.wait().unwrap();
        let mut rest = String::new();
        self.stderr.read_to_string(&mut rest).unwrap();
        assert!(status.success(), "exit status {status}: {rest}");
        rest
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(status: &'a str, name: &str) -> Vec<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .split_whitespace()
        .collect()
}

async fn chat(container: &Container, key: &str) -> chatgate_tests::http_client::Reply {
    let authorization = format!("Bearer {key}");
    post_json(
        &container.url("/v1/chat/completions"),
        &[("authorization", &authorization)],
        &json!({"model": "chatgate-rag", "messages": [{"role": "user", "content": "What does the web application firewall block?"}]}),
    )
    .await
}

#[test]
fn the_config_runs_the_host_as_a_non_root_user_with_oci_annotations() {
    let image = image();
    let (uid, gid) = image.user();
    assert_ne!(uid, 0, "the image runs as root");
    assert_ne!(gid, 0, "the image runs in group root");
    let config = &image.config["config"];
    assert_eq!(
        config["Entrypoint"],
        json!([
            "/usr/local/bin/chatgate",
            "up",
            "--manifest",
            "/app/spin.toml"
        ])
    );
    assert_eq!(image.config["os"], "linux");
    assert_eq!(image.config["architecture"], "amd64");
    let env = image.env();
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(var("CHATGATE_LISTEN"), Some("0.0.0.0:8080"));
    // No credential is accepted until one is configured.
    assert_eq!(var("SPIN_VARIABLE_AUTH_API_KEYS"), Some(""));
    let version = env!("CARGO_PKG_VERSION");
    for (key, expected) in [
        ("org.opencontainers.image.title", Some("chatgate")),
        ("org.opencontainers.image.version", Some(version)),
        ("org.opencontainers.image.licenses", Some("Apache-2.0")),
        ("org.opencontainers.image.revision", None),
        ("org.opencontainers.image.created", None),
        ("org.opencontainers.image.description", None),
    ] {
        for (place, values) in [
            ("manifest annotations", &image.manifest["annotations"]),
            ("config labels", &config["Labels"]),
        ] {
            let value = values[key]
                .as_str()
                .unwrap_or_else(|| panic!("{place} lack {key}: {values}"));
            assert!(!value.is_empty(), "{place}: {key} is empty");
            if let Some(expected) = expected {
                assert_eq!(value, expected, "{place}: {key}");
            }
        }
    }
    // Reproducible: the image's times are the source's (SOURCE_DATE_EPOCH), not the build's.
    let created = image.manifest["annotations"]["org.opencontainers.image.created"]
        .as_str()
        .unwrap();
    assert_eq!(image.config["created"].as_str().unwrap(), created);
}

#[test]
fn the_layers_hold_a_static_host_the_built_components_and_an_sbom_and_no_shell() {
    let image = image();
    let dir = Scratch::new("contents");
    let rootfs = image.unpack(&dir.0);
    for shell in ["bin/sh", "usr/bin/sh", "bin/busybox", "bin/bash"] {
        assert!(!rootfs.join(shell).exists(), "the image has /{shell}");
    }
    // Static: no program interpreter (dynamic loader) in the ELF program headers.
    let host = std::fs::read(rootfs.join("usr/local/bin/chatgate")).expect("the host binary");
    assert_eq!(&host[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes([host[o], host[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(host[0x20..0x28].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(0x36), u16_at(0x38));
    let interpreters = (0..phnum)
        .filter(|i| {
            let at = phoff + i * phentsize;
            u32::from_le_bytes(host[at..at + 4].try_into().unwrap()) == 3 // PT_INTERP
        })
        .count();
    assert_eq!(interpreters, 0, "the host binary needs a dynamic loader");

    // Every component source the shipped manifest names is there, byte for byte as built.
    let manifest = std::fs::read_to_string(rootfs.join("app/spin.toml")).unwrap();
    assert!(
        manifest == chatgate_tests::project_manifest(),
        "/app/spin.toml differs from spin.toml: run `make image` again"
    );
    let sources: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("source = \""))
        .map(|l| l.trim_end_matches('"'))
        .collect();
    assert!(sources.len() >= 8, "{sources:?}");
    for source in &sources {
        let inside = std::fs::read(rootfs.join("app").join(source))
            .unwrap_or_else(|e| panic!("/app/{source}: {e}"));
        let built = std::fs::read(repo_root().join(source)).unwrap();
        assert!(inside == built, "/app/{source} differs from the build's");
    }

    // The SBOM names every file with its digest and the crates each was built from.
    let sbom: Value = serde_json::from_slice(
        &std::fs::read(rootfs.join("usr/share/doc/chatgate/sbom.spdx.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(sbom["spdxVersion"], "SPDX-2.3");
    let files = sbom["files"].as_array().unwrap();
    let host_entry = files
        .iter()
        .find(|f| f["fileName"] == "./usr/local/bin/chatgate")
        .expect("the SBOM lists the host binary");
    let sha256 = host_entry["checksums"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["algorithm"] == "SHA256")
        .expect("the host binary's SHA-256 in the SBOM");
    assert_eq!(sha256["checksumValue"], sha256_hex(&host));
    let relationships = sbom["relationships"].as_array().unwrap();
    for source in &sources {
        let entry = files
            .iter()
            .find(|f| f["fileName"] == format!("./app/{source}"))
            .unwrap_or_else(|| panic!("the SBOM lacks /app/{source}"));
        assert!(
            relationships
                .iter()
                .any(|r| r["spdxElementId"] == entry["SPDXID"]
                    && r["relationshipType"] == "GENERATED_FROM"),
            "/app/{source} has no GENERATED_FROM"
        );
    }
    let packages = sbom["packages"].as_array().unwrap();
    for crate_name in ["chatgate", "wasmtime", "rusqlite", "spin-sdk", "chat"] {
        assert!(
            packages.iter().any(|p| p["name"] == crate_name),
            "the SBOM lacks {crate_name}"
        );
    }
}

/// As a Kubernetes pod with `readOnlyRootFilesystem` and an emptyDir at /tmp would run
/// it: the image's own environment, serving on an address the test picks.
#[tokio::test(flavor = "multi_thread")]
async fn the_entrypoint_serves_health_and_refuses_the_dev_key_from_a_read_only_root() {
    if !running_as_root() {
        eprintln!("skipped: running the image needs root (mount namespace, chroot)");
        return;
    }
    let image = image();
    let dir = Scratch::new("readonly");
    let rootfs = image.unpack(&dir.0);
    let container = Container::start(&image, &rootfs, &[("CHATGATE_LISTEN", "127.0.0.1:0")], true);
    let status = container.status();
    assert_eq!(field(&status, "Uid:")[0], "65532", "{status}");
    assert_eq!(field(&status, "Gid:")[0], "65532", "{status}");
    assert!(field(&status, "Groups:").is_empty(), "{status}");

    let health = get(&container.url("/healthz"), &[]).await;
    assert_eq!(health.status, 200, "{}", health.text());
    // The image sets no API key: the development key of spin.toml is refused.
    let refused = chat(&container, "chatgate-dev-key").await;
    assert_eq!(refused.status, 401, "{}", refused.text());
    // What it wrote went to the tmpfs, as configured.
    let store = PathBuf::from(format!(
        "/proc/{}/root/tmp/chatgate/key_value.db",
        container.child.id()
    ));
    assert!(store.exists(), "no key-value store at {}", store.display());
    let stderr = container.stop();
    assert!(!stderr.contains("ERROR"), "{stderr}");
    // Nothing of that is in the root filesystem.
    assert!(
        std::fs::read_dir(rootfs.join("tmp"))
            .unwrap()
            .next()
            .is_none()
    );
}

/// A read-only root and nothing writable at all: with the store in memory and no compile
/// cache (`none`), the host writes no file; configured with a key, it answers a chat.
#[tokio::test(flavor = "multi_thread")]
async fn the_entrypoint_answers_a_chat_with_nothing_writable() {
    if !running_as_root() {
        eprintln!("skipped: running the image needs root (mount namespace, chroot)");
        return;
    }
    let image = image();
    let dir = Scratch::new("nowrite");
    let rootfs = image.unpack(&dir.0);
    let container = Container::start(
        &image,
        &rootfs,
        &[
            ("CHATGATE_LISTEN", "127.0.0.1:0"),
            ("CHATGATE_KEY_VALUE", "none"),
            ("CHATGATE_COMPILE_CACHE", "none"),
            ("SPIN_VARIABLE_AUTH_API_KEYS", "image-test=image-test-key"),
        ],
        false,
    );
    let reply = chat(&container, "image-test-key").await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let message = &reply.json()["choices"][0]["message"];
    assert!(
        message["content"].as_str().unwrap().contains("[doc1]"),
        "{message}"
    );
    assert_eq!(
        message["context"]["citations"][0]["filepath"],
        "data/application-gateway-waf.md"
    );
    let stderr = container.stop();
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

/// As a Kubernetes pod with the certificate of `--tls-cert`/`--tls-key` mounted from a
/// Secret would run it: HTTPS only, on the same port.
#[tokio::test(flavor = "multi_thread")]
async fn the_entrypoint_serves_https_with_a_mounted_certificate() {
    if !running_as_root() {
        eprintln!("skipped: running the image needs root (mount namespace, chroot)");
        return;
    }
    let image = image();
    let dir = Scratch::new("tls");
    let rootfs = image.unpack(&dir.0);
    // A self-signed certificate for 127.0.0.1, "mounted" at /run/tls (files the image's
    // user can read, as a Secret volume gives).
    let tls = rootfs.join("run/tls");
    std::fs::create_dir_all(&tls).unwrap();
    let made = Command::new(which("openssl"))
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=chatgate-image-test"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(tls.join("tls.key"))
        .arg("-out")
        .arg(tls.join("tls.crt"))
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for file in ["tls.key", "tls.crt"] {
        let status = Command::new("chmod")
            .arg("0444")
            .arg(tls.join(file))
            .status()
            .unwrap();
        assert!(status.success());
    }
    let container = Container::start(
        &image,
        &rootfs,
        &[
            ("CHATGATE_LISTEN", "127.0.0.1:0"),
            ("CHATGATE_KEY_VALUE", "none"),
            ("CHATGATE_COMPILE_CACHE", "none"),
            ("CHATGATE_TLS_CERT", "/run/tls/tls.crt"),
            ("CHATGATE_TLS_KEY", "/run/tls/tls.key"),
        ],
        false,
    );
    let curl = |url: String, ca: bool| {
        let mut command = Command::new(which("curl"));
        command.args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--max-time",
            "30",
        ]);
        if ca {
            command.arg("--cacert").arg(tls.join("tls.crt"));
        }
        command.arg(url).output().unwrap()
    };
    let https = curl(format!("https://{}/healthz", container.address), true);
    assert!(https.status.success(), "{https:?}");
    assert_eq!(String::from_utf8_lossy(&https.stdout), "200");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let plain = curl(format!("http://{}/healthz", container.address), false);
    assert_eq!(String::from_utf8_lossy(&plain.stdout), "000", "{plain:?}");
    let stderr = container.stop();
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

/// infra/kubernetes runs this image as it is built: its user, port and writable /tmp,
/// and only names the host and spin.toml know (a misspelt SPIN_VARIABLE_* would
/// silently leave the spin.toml default in force).
#[test]
fn the_kubernetes_deployment_matches_the_image_and_names_only_known_settings() {
    let image = image();
    let dir = repo_root().join("infra/kubernetes");
    let mut texts = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            texts.push((path.clone(), std::fs::read_to_string(&path).unwrap()));
        }
    }
    let deployment = &texts
        .iter()
        .find(|(p, _)| p.ends_with("deployment.yaml"))
        .expect("infra/kubernetes/deployment.yaml")
        .1;
    let (uid, gid) = image.user();
    assert!(deployment.contains(&format!("runAsUser: {uid}\n")));
    assert!(deployment.contains(&format!("runAsGroup: {gid}\n")));
    for required in [
        "runAsNonRoot: true",
        "readOnlyRootFilesystem: true",
        "allowPrivilegeEscalation: false",
        "drop: [\"ALL\"]",
        "type: RuntimeDefault",
        "mountPath: /tmp\n",
        "scheme: HTTPS",
    ] {
        assert!(
            deployment.contains(required),
            "deployment.yaml lacks {required}"
        );
    }
    let env = image.env();
    let var = |name: &str| env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    let port = var("CHATGATE_LISTEN").unwrap();
    let port = port.rsplit(':').next().unwrap();
    assert!(deployment.contains(&format!("containerPort: {port}\n")));
    for writable in ["CHATGATE_KEY_VALUE", "CHATGATE_COMPILE_CACHE"] {
        assert!(var(writable).unwrap().starts_with("/tmp/"), "{writable}");
    }

    let manifest =
        chatgate::manifest::Manifest::parse(&chatgate_tests::project_manifest(), repo_root())
            .unwrap();
    let help = Command::new(chatgate_tests::chatgate_binary())
        .args(["up", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for (path, text) in &texts {
        for name in words_with_prefix(text, "SPIN_VARIABLE_") {
            let variable = name["SPIN_VARIABLE_".len()..].to_ascii_lowercase();
            assert!(
                manifest.variables.contains_key(&variable),
                "{}: {name} is not a spin.toml variable",
                path.display()
            );
        }
        for name in words_with_prefix(text, "CHATGATE_") {
            assert!(
                help.contains(&format!("env: {name}=")),
                "{}: {name} is not a `chatgate up` setting",
                path.display()
            );
        }
        // The OpenTelemetry variables the host reads itself (README "Observability").
        use chatgate::otel::*;
        let otel = [
            OTEL_EXPORTER_OTLP_ENDPOINT,
            OTEL_EXPORTER_OTLP_TRACES_ENDPOINT,
            OTEL_EXPORTER_OTLP_METRICS_ENDPOINT,
            OTEL_EXPORTER_OTLP_LOGS_ENDPOINT,
            OTEL_EXPORTER_OTLP_PROTOCOL,
            OTEL_EXPORTER_OTLP_TRACES_PROTOCOL,
            OTEL_METRIC_EXPORT_INTERVAL,
            OTEL_SERVICE_NAME,
            OTEL_RESOURCE_ATTRIBUTES,
            OTEL_SDK_DISABLED,
        ];
        for name in words_with_prefix(text, "OTEL_") {
            assert!(
                otel.contains(&name),
                "{}: {name} is not an OpenTelemetry variable the host reads",
                path.display()
            );
        }
    }
}

/// Every word of `text` (letters, digits, `_`) that starts with `prefix`.
fn words_with_prefix<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with(prefix) && w.len() > prefix.len())
        .collect()
}

/// The Spin OCI artifact `make image` writes to `target/image/spin` (`chatgate registry
/// layout`, host/src/spin_oci.rs): what `spin registry push` would push, for SpinKube's
/// `SpinApp.spec.image`. Checked as a layout (every blob against its digest and size),
/// against spin.toml and the built components, by a real consumer (skopeo, which copies
/// it only if every blob matches), for reproducibility, and by running it: unpacked by
/// `chatgate registry unpack` and served.
mod spin_artifact {
    use super::*;

    const LOCKED_APP_MEDIA_TYPE: &str = "application/vnd.fermyon.spin.application.v1+config";
    const WASM_MEDIA_TYPE: &str = "application/vnd.wasm.content.layer.v1+wasm";

    fn spin_layout() -> PathBuf {
        let layout = repo_root().join("target/image/spin");
        assert!(
            layout.join("index.json").exists(),
            "{} is missing: run `make image` (make test runs it)",
            layout.display()
        );
        layout
    }

    struct Artifact {
        layout: PathBuf,
        manifest_digest: String,
        manifest: Value,
        config: Value,
        locked: Value,
    }

    fn artifact() -> Artifact {
        let layout = spin_layout();
        let oci_layout: Value =
            serde_json::from_slice(&std::fs::read(layout.join("oci-layout")).unwrap()).unwrap();
        assert_eq!(oci_layout, json!({"imageLayoutVersion": "1.0.0"}));
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["schemaVersion"], 2);
        let manifests = index["manifests"].as_array().unwrap();
        assert_eq!(manifests.len(), 1, "one artifact in the layout: {index}");
        let descriptor = &manifests[0];
        assert_eq!(
            descriptor["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            descriptor["annotations"]["org.opencontainers.image.ref.name"],
            env!("CARGO_PKG_VERSION")
        );
        let manifest_digest = descriptor["digest"].as_str().unwrap().to_string();
        let manifest_bytes = sized_blob(&layout, descriptor);
        let manifest: Value = serde_json::from_slice(&manifest_bytes).unwrap();
        assert_eq!(manifest["schemaVersion"], 2);
        let config: Value =
            serde_json::from_slice(&sized_blob(&layout, &manifest["config"])).unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        let last = layers.last().unwrap();
        assert_eq!(
            last["mediaType"], LOCKED_APP_MEDIA_TYPE,
            "the locked app is the last layer"
        );
        let locked: Value = serde_json::from_slice(&sized_blob(&layout, last)).unwrap();
        Artifact {
            layout,
            manifest_digest,
            manifest,
            config,
            locked,
        }
    }

    /// The blob a descriptor names, checked against its digest (by [`blob`]) and its size.
    fn sized_blob(layout: &Path, descriptor: &Value) -> Vec<u8> {
        let bytes = blob(layout, descriptor["digest"].as_str().unwrap());
        assert_eq!(
            descriptor["size"].as_u64(),
            Some(bytes.len() as u64),
            "size of {descriptor}"
        );
        bytes
    }

    fn project() -> chatgate::manifest::Manifest {
        chatgate::manifest::Manifest::load(&repo_root().join("spin.toml")).unwrap()
    }

    #[test]
    fn the_layout_names_every_blob_by_its_digest_and_the_config_names_the_locked_app() {
        let artifact = artifact();
        let layers = artifact.manifest["layers"].as_array().unwrap();
        let mut named = std::collections::BTreeSet::new();
        named.insert(artifact.manifest_digest.clone());
        named.insert(
            artifact.manifest["config"]["digest"]
                .as_str()
                .unwrap()
                .to_string(),
        );
        for layer in layers {
            sized_blob(&artifact.layout, layer);
            let media_type = layer["mediaType"].as_str().unwrap();
            assert!(
                [WASM_MEDIA_TYPE, LOCKED_APP_MEDIA_TYPE].contains(&media_type),
                "a layer of another type: {layer} (spin.toml mounts no `files`)"
            );
            assert!(
                named.insert(layer["digest"].as_str().unwrap().to_string()),
                "layer {layer} twice"
            );
        }
        // Nothing in blobs/ that nothing names.
        for entry in std::fs::read_dir(artifact.layout.join("blobs/sha256")).unwrap() {
            let name = entry.unwrap().file_name().into_string().unwrap();
            assert!(
                named.contains(&format!("sha256:{name}")),
                "stray blob {name}"
            );
        }
        // A plain OCI image config (as Spin writes it) whose label names the locked app, so
        // two applications never share an image id.
        assert_eq!(
            artifact.manifest["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(artifact.config["architecture"], "wasm");
        assert_eq!(artifact.config["os"], "Wasip1");
        assert_eq!(
            artifact.config["config"]["Labels"]["com.fermyon.spin.lockedAppDigest"],
            layers.last().unwrap()["digest"]
        );
        // Annotations as `spin registry push` infers them, with the container image's
        // time and revision (one SOURCE_DATE_EPOCH for both).
        let annotations = &artifact.manifest["annotations"];
        let image = image();
        assert_eq!(annotations["org.opencontainers.image.title"], "chatgate");
        assert_eq!(
            annotations["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(
            annotations["org.opencontainers.image.authors"],
            "chatgate developers"
        );
        for key in [
            "org.opencontainers.image.created",
            "org.opencontainers.image.revision",
        ] {
            assert_eq!(
                annotations[key], image.manifest["annotations"][key],
                "{key}"
            );
        }
    }

    #[test]
    fn the_locked_app_is_spin_toml_with_each_component_composed_as_spin_pushes_it() {
        let artifact = artifact();
        let project = project();
        let locked = &artifact.locked;
        // Components with middleware carry it as a host requirement, which a host must
        // understand or refuse the app.
        assert_eq!(locked["spin_lock_version"], 1);
        assert_eq!(
            locked["must_understand"],
            json!(["component_host_requirements"])
        );
        assert_eq!(locked["metadata"]["name"], "chatgate");
        assert!(locked["metadata"].get("origin").is_none(), "no local path");

        // Variables: spin.toml's, each with its default and secrecy.
        let variables = locked["variables"].as_object().unwrap();
        assert_eq!(
            variables.keys().collect::<Vec<_>>(),
            project.variables.keys().collect::<Vec<_>>()
        );
        for (name, declared) in &project.variables {
            let variable = &variables[name];
            assert_eq!(
                variable["default"].as_str(),
                declared.default.as_deref(),
                "{name}"
            );
            assert_eq!(
                variable["secret"].as_bool().unwrap_or(false),
                declared.secret,
                "{name}"
            );
        }

        // Triggers: spin.toml's routes in order, with the ids Spin gives triggers without
        // one (`<component>-http-trigger`, then `http-trigger<n>`), and `chat`, which three
        // triggers with middleware share, split into one component per trigger.
        let triggers: Vec<(&str, &str, &str)> = locked["triggers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                assert_eq!(t["trigger_type"], "http");
                assert!(t.get("trigger_dependencies").is_none(), "{t}");
                (
                    t["id"].as_str().unwrap(),
                    t["trigger_config"]["route"].as_str().unwrap(),
                    t["trigger_config"]["component"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            triggers,
            [
                ("chat-http-trigger", "/v1/...", "chat-for-chat-http-trigger"),
                ("http-trigger1", "/openai/...", "chat-for-http-trigger1"),
                ("http-trigger2", "/healthz", "chat-for-http-trigger2"),
                ("ui-http-trigger", "/...", "ui"),
            ]
        );
        let routes: Vec<&str> = project
            .http_triggers
            .iter()
            .map(|t| t.route.as_str())
            .collect();
        assert_eq!(
            routes,
            triggers.iter().map(|t| t.1).collect::<Vec<_>>(),
            "spin.toml's routes"
        );

        // Each component: its source a Wasm layer holding the component as spin.toml builds
        // it, composed with its dependencies and its trigger's middleware where it has them.
        let layers: std::collections::BTreeMap<&str, &Value> = artifact.manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["digest"].as_str().unwrap(), l))
            .collect();
        let components = locked["components"].as_array().unwrap();
        let ids: Vec<&str> = components
            .iter()
            .map(|c| c["id"].as_str().unwrap())
            .collect();
        let mut expected_ids: Vec<String> = project.components.keys().cloned().collect();
        expected_ids.extend(triggers[..3].iter().map(|t| t.2.to_string()));
        assert_eq!(ids, expected_ids);
        for component in components {
            let id = component["id"].as_str().unwrap();
            assert!(
                component.get("dependencies").is_none()
                    && component.get("trigger_dependencies").is_none(),
                "{id}: composed, so nothing left to resolve"
            );
            assert_eq!(component["source"]["content_type"], "application/wasm");
            let digest = component["source"]["digest"].as_str().unwrap();
            let layer = layers
                .get(digest)
                .unwrap_or_else(|| panic!("{id}: no layer {digest}"));
            assert_eq!(layer["mediaType"], WASM_MEDIA_TYPE, "{id}");
            let bytes = blob(&artifact.layout, digest);
            let trigger = project
                .http_triggers
                .iter()
                .zip(&triggers)
                .find(|(_, t)| t.2 == id)
                .map(|(trigger, _)| trigger);
            let declared_id = trigger.map_or(id, |t| t.component.as_str());
            let declared = &project.components[declared_id];
            let with_middleware = trigger.is_some_and(|t| !t.dependencies.middleware.is_empty());
            let expected = if with_middleware {
                chatgate::app::compose_trigger(&project, trigger.unwrap())
                    .unwrap()
                    .bytes
            } else if !declared.dependencies.is_empty() {
                let alone = chatgate::manifest::HttpTrigger {
                    route: "/...".into(),
                    component: id.to_string(),
                    id: None,
                    executor: None,
                    dependencies: Default::default(),
                };
                chatgate::app::compose_trigger(&project, &alone)
                    .unwrap()
                    .bytes
            } else {
                std::fs::read(project.component_source(id).unwrap()).unwrap()
            };
            assert!(
                bytes == expected,
                "{id}: the layer is not the component as built (or `make image` is older than it)"
            );
            assert_eq!(
                component["host_requirements"]["middleware"].as_str(),
                with_middleware.then_some("required"),
                "{id}"
            );
            let config: std::collections::BTreeMap<String, String> =
                serde_json::from_value(component.get("config").cloned().unwrap_or(json!({})))
                    .unwrap();
            assert_eq!(config, declared.variables, "{id}: its variables");
            assert_eq!(
                component["metadata"]["allowed_outbound_hosts"]
                    .as_array()
                    .map(|hosts| hosts
                        .iter()
                        .map(|h| h.as_str().unwrap())
                        .collect::<Vec<_>>())
                    .unwrap_or_default(),
                declared.allowed_outbound_hosts,
                "{id}"
            );
        }
        // The preloaded components go in as spin.toml names them.
        for (id, built) in [
            ("waf", "target/chatgate-waf/waf.wasm"),
            ("retrieval", "target/chatgate-index/retrieval.wasm"),
        ] {
            let component = components.iter().find(|c| c["id"] == id).unwrap();
            let digest = component["source"]["digest"].as_str().unwrap();
            let built = std::fs::read(repo_root().join(built)).unwrap();
            assert_eq!(digest, format!("sha256:{}", sha256_hex(&built)), "{id}");
        }
    }

    fn skopeo(args: &[&str]) -> std::process::Output {
        Command::new("skopeo")
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("skopeo: {e}; `make test-deps` (as root) installs it"))
    }

    #[test]
    fn skopeo_reads_and_copies_the_layout_and_its_tar_and_refuses_a_changed_blob() {
        let artifact = artifact();
        let version = env!("CARGO_PKG_VERSION");
        let scratch = Scratch::new("spin-skopeo");
        std::fs::create_dir_all(&scratch.0).unwrap();
        let version_line = skopeo(&["--version"]);
        eprintln!("{}", String::from_utf8_lossy(&version_line.stdout).trim());

        let source = format!("oci:{}:{version}", artifact.layout.display());
        let tar = repo_root().join(format!("target/image/chatgate-spin-{version}.oci.tar"));
        for reference in [
            source.clone(),
            format!("oci-archive:{}:{version}", tar.display()),
        ] {
            let inspected = skopeo(&["inspect", &reference]);
            assert!(
                inspected.status.success(),
                "skopeo inspect {reference}: {}",
                String::from_utf8_lossy(&inspected.stderr)
            );
            let inspected: Value = serde_json::from_slice(&inspected.stdout).unwrap();
            assert_eq!(inspected["Digest"], artifact.manifest_digest, "{reference}");
            assert_eq!(inspected["Architecture"], "wasm");
        }

        // A copy (what pushing to a registry does) reads every blob against its digest and
        // keeps the manifest's.
        let copy = scratch.0.join("copy");
        let copied = skopeo(&[
            "copy",
            "--quiet",
            "--preserve-digests",
            &source,
            &format!("oci:{}:{version}", copy.display()),
        ]);
        assert!(
            copied.status.success(),
            "{}",
            String::from_utf8_lossy(&copied.stderr)
        );
        let index: Value =
            serde_json::from_slice(&std::fs::read(copy.join("index.json")).unwrap()).unwrap();
        assert_eq!(index["manifests"][0]["digest"], artifact.manifest_digest);

        // The same layout with one byte of a component changed is refused.
        let tampered = scratch.0.join("tampered");
        let status = Command::new("cp")
            .arg("-r")
            .arg(&artifact.layout)
            .arg(&tampered)
            .status()
            .unwrap();
        assert!(status.success());
        let layer = artifact.manifest["layers"][0]["digest"].as_str().unwrap();
        let path = tampered
            .join("blobs/sha256")
            .join(layer.trim_start_matches("sha256:"));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let refused = skopeo(&[
            "copy",
            "--quiet",
            &format!("oci:{}:{version}", tampered.display()),
            &format!(
                "oci:{}:{version}",
                scratch.0.join("from-tampered").display()
            ),
        ]);
        assert!(!refused.status.success(), "a changed blob was copied");
        let stderr = String::from_utf8_lossy(&refused.stderr);
        assert!(stderr.contains("Digest did not match"), "{stderr}");
    }

    #[test]
    fn the_same_inputs_give_the_same_digests() {
        let artifact = artifact();
        let scratch = Scratch::new("spin-again");
        let annotations = artifact.manifest["annotations"].as_object().unwrap();
        let mut command = Command::new(chatgate_tests::chatgate_binary());
        command
            .args(["registry", "layout", "--manifest"])
            .arg(repo_root().join("spin.toml"))
            .arg("--out")
            .arg(&scratch.0)
            .args(["--tag", env!("CARGO_PKG_VERSION"), "--created"])
            .arg(
                annotations["org.opencontainers.image.created"]
                    .as_str()
                    .unwrap(),
            );
        for key in [
            "org.opencontainers.image.revision",
            "org.opencontainers.image.licenses",
        ] {
            command
                .arg("--annotation")
                .arg(format!("{key}={}", annotations[key].as_str().unwrap()));
        }
        let output = command.output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            std::fs::read(scratch.0.join("index.json")).unwrap(),
            std::fs::read(artifact.layout.join("index.json")).unwrap(),
            "a second layout of the same spin.toml and components differs (or `make image` is older than them)"
        );
    }

    /// `infra/spinkube/render` pins the SpinApp to this artifact by digest in the
    /// deployment's registry and fills the placeholders from the outputs; rendered with
    /// kustomize where kubectl is installed.
    #[test]
    fn the_spinkube_overlay_pins_the_spinapp_to_this_artifact() {
        let artifact = artifact();
        let scratch = Scratch::new("spinkube-overlay");
        std::fs::create_dir_all(&scratch.0).unwrap();
        let outputs = scratch.0.join("outputs.json");
        let tenant = "11111111-2222-3333-4444-555555555555";
        let client = "66666666-7777-8888-9999-000000000000";
        std::fs::write(
            &outputs,
            json!({
                "tenantId": {"type": "String", "value": tenant},
                "workloadIdentityClientId": {"type": "String", "value": client},
                "keyVaultName": {"type": "String", "value": "kv-chatgate-test"},
                "openAiOrigin": {"type": "String", "value": "https://oai-test.openai.azure.com"},
                "openAiDeploymentName": {"type": "String", "value": "gpt-test"},
                "acrLoginServer": {"type": "String", "value": "acrtest.azurecr.io"},
            })
            .to_string(),
        )
        .unwrap();
        let overlay = scratch.0.join("overlay");
        let rendered = Command::new(repo_root().join("infra/spinkube/render"))
            .arg("--outputs")
            .arg(&outputs)
            .arg("--layout")
            .arg(&artifact.layout)
            .arg("--out")
            .arg(&overlay)
            .args(["--api-audience", "api://chatgate-test-api"])
            .output()
            .unwrap();
        assert!(
            rendered.status.success(),
            "{}",
            String::from_utf8_lossy(&rendered.stderr)
        );
        let image = format!(
            "acrtest.azurecr.io/chatgate-spin@{}",
            artifact.manifest_digest
        );
        let printed = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            printed.contains(&format!(
                "skopeo copy --preserve-digests oci:{}:{}",
                artifact.layout.display(),
                env!("CARGO_PKG_VERSION")
            )),
            "{printed}"
        );
        let Ok(kustomized) = Command::new("kubectl")
            .arg("kustomize")
            .arg(&overlay)
            .output()
        else {
            println!("skipped: kubectl is not installed here, so the overlay was not rendered");
            let text = std::fs::read_to_string(overlay.join("kustomization.yaml")).unwrap();
            assert!(text.contains(&image), "{text}");
            return;
        };
        assert!(
            kustomized.status.success(),
            "{}",
            String::from_utf8_lossy(&kustomized.stderr)
        );
        let manifests = String::from_utf8_lossy(&kustomized.stdout);
        assert!(
            manifests.contains(&format!("image: {image}\n")),
            "{manifests}"
        );
        for value in [
            tenant,
            client,
            "kv-chatgate-test",
            "https://oai-test.openai.azure.com",
            "gpt-test",
            "api://chatgate-test-api",
        ] {
            assert!(manifests.contains(value), "{value} is not in the overlay");
        }
        assert!(
            !manifests.contains("00000000-0000-0000-0000-000000000000"),
            "a placeholder id is left: {manifests}"
        );
    }

    /// `chatgate up` on what `chatgate registry unpack` wrote, stopped when dropped.
    struct Served {
        child: Child,
        address: String,
    }

    impl Drop for Served {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    fn serve_unpacked(manifest: &Path) -> Served {
        let child = Command::new(chatgate_tests::chatgate_binary())
            .args(["up", "--listen", "127.0.0.1:0", "--manifest"])
            .arg(manifest)
            .env("CHATGATE_KEY_VALUE", "none")
            .env(
                "CHATGATE_COMPILE_CACHE",
                repo_root().join("target/chatgate-test-cache"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut served = Served {
            child,
            address: String::new(),
        };
        let mut stderr = BufReader::new(served.child.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let status = served.child.wait().unwrap();
                panic!("chatgate exited ({status}) before serving:\n{seen}");
            }
            seen.push_str(&line);
            if line.contains("serving") {
                served.address = line
                    .split("http://")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                    .unwrap()
                    .to_string();
                // Keep reading stderr so the gateway never blocks writing to it.
                std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
                return served;
            }
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_unpacked_artifact_answers_health_and_a_chat_through_its_middleware() {
        let artifact = artifact();
        let scratch = Scratch::new("spin-unpack");
        let unpacked = Command::new(chatgate_tests::chatgate_binary())
            .args(["registry", "unpack", "--layout"])
            .arg(&artifact.layout)
            .arg("--out")
            .arg(&scratch.0)
            .output()
            .unwrap();
        assert!(
            unpacked.status.success(),
            "{}",
            String::from_utf8_lossy(&unpacked.stderr)
        );
        let served = serve_unpacked(&scratch.0.join("spin.toml"));
        let url = |path: &str| format!("http://{}{path}", served.address);

        let health = get(&url("/healthz"), &[]).await;
        assert_eq!(health.status, 200, "{}", health.text());

        let question = json!({"model": "chatgate-rag", "messages": [{"role": "user", "content": "What does the web application firewall block?"}]});
        let answer = post_json(
            &url("/v1/chat/completions"),
            &[("authorization", "Bearer chatgate-dev-key")],
            &question,
        )
        .await;
        assert_eq!(answer.status, 200, "{}", answer.text());
        // telemetry, composed in, names the request and its trace.
        assert!(answer.header("x-request-id").is_some());
        assert!(answer.header("traceparent").is_some());
        let answer = answer.json();
        assert!(
            !answer["choices"][0]["message"]["context"]["citations"]
                .as_array()
                .unwrap()
                .is_empty(),
            "{answer}"
        );
        // auth, composed in: no credential, no answer.
        let refused = post_json(&url("/v1/chat/completions"), &[], &question).await;
        assert_eq!(refused.status, 401, "{}", refused.text());
        // waf, composed in: SQL outside the prompt is refused.
        let attack =
            json!({"model": "x' OR 1=1 --", "messages": [{"role": "user", "content": "hello"}]});
        let blocked = post_json(
            &url("/v1/chat/completions"),
            &[("authorization", "Bearer chatgate-dev-key")],
            &attack,
        )
        .await;
        assert_eq!(blocked.status, 403, "{}", blocked.text());
        // ui, with its own middleware, on every other path.
        let page = get(&url("/"), &[]).await;
        assert_eq!(page.status, 200);
        assert!(page.text().contains("<html"), "{}", page.text());
    }
}
