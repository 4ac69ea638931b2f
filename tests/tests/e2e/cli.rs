//! The `chatgate` binary as users run it: start-up, a bad manifest, and graceful shutdown.

use chatgate_tests::http_client::get;
use chatgate_tests::{chatgate_binary, repo_root, single_route_manifest};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn write_manifest(name: &str, text: &str) -> std::path::PathBuf {
    let dir = repo_root().join("target/cli-test").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Runs `chatgate up` on `manifest` (extra `args` after it), answers one GET of `path`
/// with `headers` (which must be 200 with `expected` as its body, if given), then sends
/// SIGTERM; returns what the gateway wrote to stderr after its banner, once it exited
/// successfully.
async fn serve_one_then_sigterm(
    manifest: &std::path::Path,
    args: &[&str],
    path: &str,
    headers: &[(&str, &str)],
    expected: Option<&str>,
) -> String {
    let mut child = Command::new(chatgate_binary())
        .args(["up", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(manifest)
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut banner = String::new();
    stderr.read_line(&mut banner).unwrap();
    let address = banner
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {banner:?}"))
        .to_string();

    let reply = get(&format!("http://{address}{path}"), headers).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    if let Some(expected) = expected {
        assert_eq!(reply.text(), expected);
    }

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert!(rest.contains("shutting down"), "{rest}");
    rest
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_then_drains_and_exits_cleanly_on_sigterm() {
    let manifest = write_manifest("up", &single_route_manifest("hello", &[], ""));
    serve_one_then_sigterm(&manifest, &[], "/hello", &[], Some("hello")).await;
}

/// The shipped chain's instances are still alive (idle, or finishing their post-return
/// work) when SIGTERM comes: ending them is not an error. wasmtime-wasi-http reports each
/// as "worker panicked", which the gateway logged as a warning before.
#[tokio::test(flavor = "multi_thread")]
async fn shutdown_ends_the_shipped_chains_instances_without_a_warning() {
    let key_value = repo_root().join("target/cli-test/shutdown/key_value.db");
    std::fs::create_dir_all(key_value.parent().unwrap()).unwrap();
    let rest = serve_one_then_sigterm(
        &repo_root().join("spin.toml"),
        &["--key-value", key_value.to_str().unwrap()],
        "/v1/models",
        &[("authorization", "Bearer chatgate-dev-key")],
        None,
    )
    .await;
    assert!(!rest.contains("WARN"), "{rest}");
}

#[test]
fn a_bad_manifest_is_reported_with_its_path_and_the_offending_field() {
    let manifest = write_manifest(
        "bad",
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[component.web]\nsource = \"web.wasm\"\nallowed_outbund_hosts = []\n",
    );
    let output = Command::new(chatgate_binary())
        .arg("up")
        .arg("--manifest")
        .arg(&manifest)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("allowed_outbund_hosts"), "{stderr}");
    assert!(stderr.contains(&manifest.display().to_string()), "{stderr}");
}

/// `chatgate waf` with rule files in `name`'s folder; returns the folder and the output.
fn waf_build(
    name: &str,
    files: &[(&str, &str)],
    args: &[&str],
) -> (std::path::PathBuf, std::process::Output) {
    let dir = repo_root().join("target/cli-test/waf").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (file, text) in files {
        std::fs::write(dir.join(file), text).unwrap();
    }
    let output = Command::new(chatgate_binary())
        .arg("waf")
        .args(args)
        .arg("--out")
        .arg(dir.join("out"))
        .arg("--component")
        .arg(chatgate_tests::wasm("waf"))
        .current_dir(&dir)
        .output()
        .unwrap();
    (dir, output)
}

#[test]
fn waf_build_stops_on_a_bad_rule_file_naming_file_and_line() {
    let (dir, output) = waf_build(
        "broken",
        &[
            ("main.conf", "# the entry\nInclude extra.conf\n"),
            (
                "extra.conf",
                "SecRule ARGS \"@rx ok\" \"id:1,phase:2,pass\"\n\n# line 4 is broken:\nSecRule ARGS \"@rx (unclosed\" \"id:2,phase:2,deny\"\n",
            ),
        ],
        &["--rules", "main.conf"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("extra.conf:4:"), "{stderr}");
    assert!(stderr.contains("does not compile"), "{stderr}");
    assert!(!dir.join("out/waf.wasm").exists(), "nothing written");

    let (_, output) = waf_build(
        "unsupported",
        &[(
            "r.conf",
            // Look-behind on a byte above 0x7f: neither regex engine can express it.
            "SecRule ARGS \"@rx (?<=\\xff)b\" \"id:7,phase:2,deny\"\n",
        )],
        &["--rules", "r.conf"],
    );
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("r.conf:1 rule 7"), "{stderr}");
    assert!(stderr.contains("--allow-unsupported"), "{stderr}");
}

/// The component `chatgate waf` writes holds the rule set it was given (not the embedded
/// defaults): a request only that set blocks is refused by the rule's id, and rule files
/// deleted after the build are not needed.
#[tokio::test(flavor = "multi_thread")]
async fn waf_build_writes_a_component_preloaded_with_the_given_rules() {
    let (dir, output) = waf_build(
        "custom",
        &[
            ("setup.conf", "SecRuleEngine On\nSecRequestBodyAccess On\n"),
            (
                "custom.conf",
                "SecRule ARGS:probe \"@pmFromFile words.data\" \"id:4242,phase:2,deny,status:403,log,msg:'custom word'\"\n",
            ),
            ("words.data", "preload-proof\n"),
        ],
        &["--rules", "setup.conf", "--rules", "custom.conf"],
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("compiled 1 rules from 3 files"), "{stderr}");
    let component = dir.join("out/waf.wasm");
    for file in ["setup.conf", "custom.conf", "words.data"] {
        std::fs::remove_file(dir.join(file)).unwrap();
    }
    let manifest = single_route_manifest("hello", &["waf"], "").replace(
        &chatgate_tests::wasm("waf").display().to_string(),
        &component.display().to_string(),
    );
    let gateway = chatgate_tests::Gateway::start(&manifest, &[])
        .await
        .unwrap();
    let blocked = get(&gateway.url("/x?probe=preload-proof"), &[]).await;
    assert_eq!(blocked.status, 403, "{}", blocked.text());
    assert_eq!(blocked.json()["error"]["code"], "waf_rule_4242");
    let passed = get(&gateway.url("/x?probe=other"), &[]).await;
    assert_eq!(passed.status, 200, "{}", passed.text());
    // These rules do not score methods: the component's own refusal answers.
    let method = chatgate_tests::http_client::send("DELETE", &gateway.url("/x"), &[], "").await;
    assert_eq!(method.status, 405, "{}", method.text());
    assert_eq!(method.json()["error"]["code"], "method_not_allowed");
    assert_eq!(method.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    gateway.stop().await;
}
