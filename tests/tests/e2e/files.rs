//! Spin's component `files`, mounted by the host as `spin up --direct-mounts` mounts them
//! (see `chatgate::manifest::FilesMount`): a directory is read live and read-only, nothing
//! outside it is reachable, and a dependency reaches it only if it inherits `files`.
//!
//! The token directory is laid out as the kubelet writes a projected service-account
//! token: the file is a symlink through `..data` to a timestamped directory, and rotation
//! swaps `..data` atomically (Kubernetes' `AtomicWriter`). Two `capability-probe`
//! middleware wrap `hello`, which holds the mounts: `outer` inherits `files`, `inner`
//! nothing, and each reports what its reads and writes got.

use chatgate_tests::http_client::send;
use chatgate_tests::{Gateway, wasm};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const TOKENS: &str = "/var/run/secrets/azure/tokens";
const TOKEN: &str = "/var/run/secrets/azure/tokens/azure-identity-token";

/// A directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path =
            std::env::temp_dir().join(format!("chatgate-files-{name}-{}", std::process::id()));
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

/// Writes `token` as the kubelet does: a new timestamped directory, then `..data`
/// swapped to it with a rename (atomic), the token file being a symlink through `..data`.
fn project_token(dir: &Path, generation: u32, token: &str) {
    use std::os::unix::fs::symlink;
    let data = format!("..2026_12_06_00_00_0{generation}.000000000");
    std::fs::create_dir_all(dir.join(&data)).unwrap();
    std::fs::write(dir.join(&data).join("azure-identity-token"), token).unwrap();
    symlink(&data, dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    let link = dir.join("azure-identity-token");
    if std::fs::symlink_metadata(&link).is_err() {
        symlink("..data/azure-identity-token", &link).unwrap();
    }
}

fn manifest(files: &str) -> String {
    let probe = wasm("capability-probe");
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"files\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n\
         dependencies.middleware = [\n\
           {{ component = \"outer\", inherit_configuration = [\"files\"] }},\n\
           {{ component = \"inner\", inherit_configuration = false }},\n\
         ]\n\
         [component.hello]\nsource = \"{}\"\n{files}\n\
         [component.outer]\nsource = \"{}\"\n\
         [component.inner]\nsource = \"{}\"\n",
        wasm("hello").display(),
        probe.display(),
        probe.display(),
    )
}

/// Each probe's report, outer first.
async fn probe(gateway: &Gateway, headers: &[(&str, &str)]) -> Vec<BTreeMap<String, String>> {
    let reply = send("GET", &gateway.url("/echo"), headers, "").await;
    crate::isolation::reports(&reply)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_mounted_directory_is_read_live_read_only_and_only_by_who_inherits_it() {
    let tokens = TempDir::new("tokens");
    let conf = TempDir::new("conf");
    project_token(&tokens.0, 1, "token-one\n");
    std::fs::write(conf.0.join("settings.txt"), "first").unwrap();
    // A symlink out of the mount: the host must not follow it.
    std::os::unix::fs::symlink("/etc/hostname", conf.0.join("escape")).unwrap();
    let files = format!(
        "files = [\n\
           {{ source = \"{}\", destination = \"{TOKENS}\" }},\n\
           {{ source = \"{}\", destination = \"/conf\" }},\n\
           \"tests/components/capability-probe/src\",\n\
         ]",
        tokens.0.display(),
        conf.0.display()
    );
    // An idle instance is kept long enough for the second request to reuse it.
    let gateway = Gateway::start_with(&manifest(&files), &[], |options| {
        options.reuse.idle_timeout =
            chatgate::reuse::Range::Value(std::time::Duration::from_secs(30));
    })
    .await
    .unwrap();
    let reads = [
        TOKEN,
        "/conf/settings.txt",
        "/etc/hostname",
        "/conf/escape",
        "/conf/../../../../etc/hostname",
        // The string form, relative to the manifest's directory (here the repository).
        "/tests/components/capability-probe/src/lib.rs",
    ]
    .join(",");
    let headers = [
        ("x-probe-read", reads.as_str()),
        ("x-probe-write", "/conf/settings.txt"),
    ];

    let reports = probe(&gateway, &headers).await;
    let (outer, inner) = (&reports[0], &reports[1]);
    assert_eq!(outer["read0"], "ok:token-one", "{outer:?}");
    assert_eq!(outer["read1"], "ok:first", "{outer:?}");
    // No mount covers it; the others leave their mount, which wasmtime refuses.
    assert!(outer["read2"].contains("NotFound"), "{outer:?}");
    for escape in ["read3", "read4"] {
        assert!(
            outer[escape].contains("PermissionDenied"),
            "{escape}: {outer:?}"
        );
    }
    assert!(
        outer["read5"].starts_with("ok: HTTP middleware"),
        "{outer:?}"
    );
    // Read-only.
    assert!(outer["write"].contains("PermissionDenied"), "{outer:?}");
    assert_eq!(
        std::fs::read_to_string(conf.0.join("settings.txt")).unwrap(),
        "first"
    );
    // `inner` does not inherit `files`: the deny component gives it no directories.
    assert!(inner["files"].starts_with("err:"), "{inner:?}");
    for i in 0..6 {
        assert!(inner[&format!("read{i}")].starts_with("err:"), "{inner:?}");
    }
    assert!(inner["write"].starts_with("err:"), "{inner:?}");

    // Rotated as the kubelet rotates, and a file rewritten in place: the next request
    // reads the new content, on the same instance (no restart, no new instance).
    project_token(&tokens.0, 2, "token-two\n");
    std::fs::write(conf.0.join("settings.txt"), "second").unwrap();
    let reports = probe(&gateway, &headers).await;
    assert_eq!(reports[0]["read0"], "ok:token-two", "{:?}", reports[0]);
    assert_eq!(reports[0]["read1"], "ok:second", "{:?}", reports[0]);
    assert_eq!(gateway.app().instances().created, 1);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_files_there_is_no_filesystem_and_a_bad_source_stops_the_load() {
    let gateway = Gateway::start(&manifest(""), &[]).await.unwrap();
    let reports = probe(&gateway, &[("x-probe-read", TOKEN)]).await;
    gateway.stop().await;
    for report in &reports {
        assert!(report["files"].starts_with("err:"), "{report:?}");
        assert!(report["read0"].starts_with("err:"), "{report:?}");
    }

    let missing = TempDir::new("missing");
    let source = missing.0.join("nothing-here");
    let err = Gateway::start(
        &manifest(&format!(
            "files = [{{ source = \"{}\", destination = \"{TOKENS}\" }}]",
            source.display()
        )),
        &[],
    )
    .await
    .err()
    .unwrap();
    assert!(
        err.contains("component `hello`: `files` entry") && err.contains("does not exist"),
        "{err}"
    );
}
