//! The `chatgate` binary as users run it: start-up, a bad manifest, and graceful shutdown.

use chatgate_tests::http_client::get;
use chatgate_tests::{repo_root, single_route_manifest};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn binary() -> std::path::PathBuf {
    let path = repo_root().join("target/release/chatgate");
    assert!(
        path.exists(),
        "{} is missing: run `make build`",
        path.display()
    );
    path
}

fn write_manifest(name: &str, text: &str) -> std::path::PathBuf {
    let dir = repo_root().join("target/cli-test").join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("spin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn up_serves_then_drains_and_exits_cleanly_on_sigterm() {
    let manifest = write_manifest("up", &single_route_manifest("hello", &[], ""));
    let mut child = Command::new(binary())
        .args(["up", "--listen", "127.0.0.1:0", "--manifest"])
        .arg(&manifest)
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

    let reply = get(&format!("http://{address}/hello"), &[]).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "hello"));

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
}

#[test]
fn a_bad_manifest_is_reported_with_its_path_and_the_offending_field() {
    let manifest = write_manifest(
        "bad",
        "spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[component.web]\nsource = \"web.wasm\"\nallowed_outbund_hosts = []\n",
    );
    let output = Command::new(binary())
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
