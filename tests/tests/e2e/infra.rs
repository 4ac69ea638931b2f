//! `infra/scripts/render-overlay`: the Kubernetes overlay written from the Bicep
//! deployment's outputs, so that no manifest is edited by hand (issue 16 item 5).

use chatgate_tests::repo_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "66666666-7777-8888-9999-000000000000";
const VAULT: &str = "kv-chatgate-abc123";
const ORIGIN: &str = "https://oai-chatgate-abc123.openai.azure.com";
const CONNECTION_STRING: &str = "InstrumentationKey=render-test-secret";

/// A scratch directory under target/, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = repo_root()
            .join("target")
            .join(format!("infra-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `az deployment group show --query properties.outputs`, as the script reads it.
fn outputs(dir: &Path, leave_out: Option<&str>) -> PathBuf {
    let mut outputs = serde_json::json!({
        "tenantId": {"type": "String", "value": TENANT},
        "workloadIdentityClientId": {"type": "String", "value": CLIENT},
        "keyVaultName": {"type": "String", "value": VAULT},
        "openAiOrigin": {"type": "String", "value": ORIGIN},
        "openAiDeploymentName": {"type": "String", "value": "gpt-4o-mini"},
        "appInsightsConnectionString": {"type": "String", "value": CONNECTION_STRING},
    });
    if let Some(name) = leave_out {
        outputs.as_object_mut().unwrap().remove(name);
    }
    let path = dir.join("outputs.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    path
}

fn render(outputs: &Path, out: &Path, image: &str) -> Output {
    Command::new(repo_root().join("infra/scripts/render-overlay"))
        .arg("--outputs")
        .arg(outputs)
        .arg("--out")
        .arg(out)
        .args(["--image", image])
        .args([
            "--collector-image",
            &format!("acr.example.io/otelcol@sha256:{}", "b".repeat(64)),
        ])
        .args(["--api-audience", "api://render-test"])
        .output()
        .expect("python3 runs infra/scripts/render-overlay")
}

#[test]
fn the_overlay_carries_every_output_and_leaves_no_placeholder() {
    let scratch = Scratch::new("render");
    let outputs = outputs(&scratch.0, None);
    let overlay = scratch.0.join("overlay");
    let image = format!("acr.example.io/chatgate@sha256:{}", "a".repeat(64));
    let rendered = render(&outputs, &overlay, &image);
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let written = std::fs::read_to_string(overlay.join("kustomization.yaml")).unwrap();
    assert!(
        !written.contains(CONNECTION_STRING),
        "a secret in a manifest"
    );

    // The whole set as kubectl would apply it (kubectl's built-in kustomize).
    let Ok(kustomized) = Command::new("kubectl")
        .args(["kustomize"])
        .arg(&overlay)
        .output()
    else {
        println!("kubectl is not installed here: the overlay was written, not rendered");
        return;
    };
    assert!(
        kustomized.status.success(),
        "{}",
        String::from_utf8_lossy(&kustomized.stderr)
    );
    let manifests = String::from_utf8(kustomized.stdout).unwrap();
    for value in [
        format!("client-id: {CLIENT}"),
        format!("tenant-id: {TENANT}"),
        format!("clientID: {CLIENT}"),
        format!("keyvaultName: {VAULT}"),
        format!("tenantId: {TENANT}"),
        format!("SPIN_VARIABLE_OPENAI_ORIGIN: {ORIGIN}"),
        "SPIN_VARIABLE_OPENAI_MODEL: gpt-4o-mini".to_string(),
        format!("SPIN_VARIABLE_AUTH_ISSUER: https://login.microsoftonline.com/{TENANT}/v2.0"),
        "SPIN_VARIABLE_AUTH_AUDIENCE: api://render-test".to_string(),
        format!("image: {image}"),
    ] {
        assert!(manifests.contains(&value), "`{value}` missing");
    }
    for placeholder in [
        "00000000-0000-0000-0000-000000000000",
        "keyvaultName: chatgate-kv\n",
        "chatgate-openai.openai.azure.com",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "opentelemetry-collector-contrib:0.114.0",
    ] {
        assert!(
            !manifests.contains(placeholder),
            "placeholder `{placeholder}` left"
        );
    }
    assert!(
        !manifests.contains(CONNECTION_STRING),
        "a secret in a manifest"
    );
}

#[test]
fn a_missing_output_or_an_unpinned_image_is_refused_by_name() {
    let scratch = Scratch::new("refuse");
    let image = format!("acr.example.io/chatgate@sha256:{}", "a".repeat(64));
    let incomplete = outputs(&scratch.0, Some("keyVaultName"));
    let refused = render(&incomplete, &scratch.0.join("a"), &image);
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("keyVaultName"));
    assert!(!scratch.0.join("a/kustomization.yaml").exists());

    let complete = outputs(&scratch.0, None);
    let refused = render(
        &complete,
        &scratch.0.join("b"),
        "acr.example.io/chatgate:latest",
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--image"));
}
