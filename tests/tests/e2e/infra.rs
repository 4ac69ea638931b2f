//! `infra/scripts/render-overlay`: the Kubernetes overlay written from the Bicep
//! deployment's outputs, so that no manifest is edited by hand (issue 16 item 5); and
//! the checks that stand in for a Bicep compiler and a cluster (issue 16, "Checks"):
//! `infra/scripts/check-bicep-wiring`, checkov on the Bicep and on the rendered
//! manifests, and strict schema validation of every rendered object. checkov,
//! kubernetes-validate and pycep-parser come from `.sdk/infra-venv` (`make sdk`, pinned in
//! infra/scripts/requirements.txt).

use chatgate_tests::repo_root;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TENANT: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT: &str = "66666666-7777-8888-9999-000000000000";
const VAULT: &str = "kv-chatgate-abc123";
const ORIGIN: &str = "https://oai-chatgate-abc123.openai.azure.com";
const CONNECTION_STRING: &str = "InstrumentationKey=render-test-secret";
const SEARCH: &str = "https://srch-chatgate-abc123.search.windows.net";
const REGISTRY: &str = "acrchatgateabc123.azurecr.io";

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
        "searchEndpoint": {"type": "String", "value": SEARCH},
        "searchIndexName": {"type": "String", "value": "chatgate-docs"},
        "acrLoginServer": {"type": "String", "value": REGISTRY},
    });
    if let Some(name) = leave_out {
        outputs.as_object_mut().unwrap().remove(name);
    }
    let path = dir.join("outputs.json");
    std::fs::write(&path, outputs.to_string()).unwrap();
    path
}

/// A program of the infra venv; `make sdk` builds it.
fn infra_tool(name: &str) -> PathBuf {
    let tool = repo_root().join(".sdk/infra-venv/bin").join(name);
    assert!(
        tool.exists(),
        "{} is missing: run `make sdk` (pinned in infra/scripts/requirements.txt)",
        tool.display()
    );
    tool
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
            &format!("{REGISTRY}/otelcol@sha256:{}", "b".repeat(64)),
        ])
        .args(["--api-audience", "api://render-test"])
        .output()
        .expect("python3 runs infra/scripts/render-overlay")
}

#[test]
fn the_overlay_carries_every_output_and_leaves_no_placeholder() {
    let scratch = Scratch::new("render");
    let overlay = sample_overlay(&scratch);
    let written = std::fs::read_to_string(overlay.join("kustomization.yaml")).unwrap();
    assert!(
        !written.contains(CONNECTION_STRING),
        "a secret in a manifest"
    );

    // The whole set as kubectl would apply it (kubectl's built-in kustomize).
    let Some(manifests) = kustomize(&overlay) else {
        return;
    };
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
        format!("SPIN_VARIABLE_AZURE_SEARCH_ORIGIN: {SEARCH}"),
        "SPIN_VARIABLE_AZURE_SEARCH_INDEX: chatgate-docs".to_string(),
        format!("image: {}", sample_image()),
    ] {
        assert!(manifests.contains(&value), "`{value}` missing");
    }
    for placeholder in [
        "00000000-0000-0000-0000-000000000000",
        "keyvaultName: chatgate-kv\n",
        "chatgate-openai.openai.azure.com",
        "sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "opentelemetry-collector-contrib:0.114.0",
        "chatgate-search.search.windows.net",
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

/// The manifest the pods run: keyless Azure OpenAI and Azure AI Search, `chat` mounting
/// the projected token's directory, sources in the image; and the Deployment running it.
#[test]
fn the_overlay_runs_a_keyless_manifest_with_the_projected_token_mounted() {
    let scratch = Scratch::new("keyless");
    let overlay = sample_overlay(&scratch);
    let manifest = std::fs::read_to_string(overlay.join("spin.toml")).unwrap();
    let shipped = chatgate_tests::project_manifest();
    for line in [
        r#""chatgate:retriever/retriever" = { component = "retrieval-azure-search", inherit_configuration = ["variables", "allowed_outbound_hosts", "key_value_stores", "files"] }"#,
        r#""chatgate:completion/completion" = { component = "completion-openai", inherit_configuration = ["variables", "allowed_outbound_hosts", "key_value_stores", "files"] }"#,
        "[component.chat]\nfiles = [{ source = \"/var/run/secrets/azure/tokens\", destination = \"/var/run/secrets/azure/tokens\" }]\n",
        "source = \"/app/target/wasm32-wasip2/release/completion_openai.wasm\"",
        "source = \"/app/target/wasm32-wasip2/release/retrieval_azure_search.wasm\"",
    ] {
        assert!(
            manifest.contains(line),
            "`{line}` missing from the overlay's spin.toml"
        );
    }
    // Everything else is the shipped manifest: the same variables, routes and middleware.
    let rest = |text: &str| -> Vec<String> {
        text.lines()
            .filter(|line| {
                !line.starts_with('#')
                    && !line.starts_with("source = ")
                    && !line.starts_with("files = ")
                    && !line.starts_with("\"chatgate:")
            })
            .map(str::to_string)
            .collect()
    };
    assert_eq!(rest(&manifest), rest(&shipped));
    // The shipped manifest keeps running offline: no mount of a path a laptop lacks.
    assert!(
        !shipped.lines().any(|line| line.starts_with("files = ")),
        "spin.toml mounts a directory"
    );

    let Some(manifests) = kustomize(&overlay) else {
        return;
    };
    for value in [
        "- /etc/chatgate/spin.toml",
        "mountPath: /etc/chatgate",
        "name: chatgate-manifest-",
        "SPIN_VARIABLE_OPENAI_AUTH: workload-identity",
        "SPIN_VARIABLE_AZURE_SEARCH_AUTH: workload-identity",
        "azure.workload.identity/use: \"true\"",
        "name: chatgate-allow-egress-entra-id",
        &format!("SPIN_VARIABLE_OPENAI_TENANT_ID: {TENANT}"),
        &format!("SPIN_VARIABLE_OPENAI_CLIENT_ID: {CLIENT}"),
        &format!("SPIN_VARIABLE_AZURE_SEARCH_TENANT_ID: {TENANT}"),
        &format!("SPIN_VARIABLE_AZURE_SEARCH_CLIENT_ID: {CLIENT}"),
    ] {
        assert!(manifests.contains(value), "`{value}` missing");
    }
}

/// Every spin.toml variable the rest of infra sets is one spin.toml declares, a misspelt
/// name being silently ignored: `SPIN_VARIABLE_<NAME>` in render-overlay (the keyless
/// settings it fills in), the SpinKube manifests and the README, and the SpinApp's
/// `variables`. (`image.rs` checks infra/kubernetes the same way.)
#[test]
fn every_variable_the_scripts_spinkube_and_readme_set_is_declared_in_spin_toml() {
    let manifest =
        chatgate::manifest::Manifest::parse(&chatgate_tests::project_manifest(), repo_root())
            .unwrap();
    let mut files: Vec<PathBuf> = ["infra/spinkube", "infra/scripts"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo_root().join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .collect();
    files.push(repo_root().join("infra/README.md"));
    let mut checked = 0;
    for file in &files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        let mut names: Vec<String> = text
            .split("SPIN_VARIABLE_")
            .skip(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect::<String>()
                    .to_ascii_lowercase()
            })
            // `SPIN_VARIABLE_*` and `SPIN_VARIABLE_<NAME>` in prose.
            .filter(|name| !name.is_empty())
            .collect();
        if file.ends_with("spinapp.yaml") {
            names.extend(text.lines().filter_map(|line| {
                let name = line.trim().strip_prefix("- name: ")?;
                name.contains('_').then(|| name.to_string())
            }));
        }
        for name in names {
            assert!(
                manifest.variables.contains_key(&name),
                "{} sets `{name}`, which spin.toml does not declare",
                file.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "only {checked} variable names found");
}

#[test]
fn a_missing_output_or_an_unpinned_image_is_refused_by_name() {
    let scratch = Scratch::new("refuse");
    let image = format!("{REGISTRY}/chatgate@sha256:{}", "a".repeat(64));
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

    // Pinned, but from a registry the nodes cannot reach.
    let refused = render(
        &complete,
        &scratch.0.join("c"),
        &format!("docker.io/library/chatgate@sha256:{}", "a".repeat(64)),
    );
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains(REGISTRY));
    assert!(!scratch.0.join("c/kustomization.yaml").exists());
}

/// The overlay rendered from sample outputs and kustomized, as kubectl would apply it;
/// None where kubectl is not installed.
fn rendered_manifests(scratch: &Scratch) -> Option<PathBuf> {
    let manifests = kustomize(&sample_overlay(scratch))?;
    let path = scratch.0.join("manifests.yaml");
    std::fs::write(&path, manifests).unwrap();
    Some(path)
}

/// An image of the deployment's registry, pinned by digest.
fn sample_image() -> String {
    format!("{REGISTRY}/chatgate@sha256:{}", "a".repeat(64))
}

/// The overlay `render-overlay` writes from the sample outputs and a pinned image.
fn sample_overlay(scratch: &Scratch) -> PathBuf {
    let outputs = outputs(&scratch.0, None);
    let overlay = scratch.0.join("overlay");
    let rendered = render(&outputs, &overlay, &sample_image());
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    overlay
}

/// `overlay` as kubectl would apply it (kubectl's built-in kustomize); None, saying so,
/// where kubectl is not installed.
fn kustomize(overlay: &Path) -> Option<String> {
    let Ok(kustomized) = Command::new("kubectl")
        .args(["kustomize"])
        .arg(overlay)
        .output()
    else {
        println!("skipped: kubectl is not installed here, so the manifests were not rendered");
        return None;
    };
    assert!(
        kustomized.status.success(),
        "{}",
        String::from_utf8_lossy(&kustomized.stderr)
    );
    Some(String::from_utf8(kustomized.stdout).unwrap())
}

fn run(command: &mut Command) -> Output {
    let output = command.output().expect("the check runs");
    println!("{}", String::from_utf8_lossy(&output.stdout));
    eprintln!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

#[test]
fn the_bicep_parses_and_its_modules_are_wired_and_the_check_catches_miswiring() {
    let python = infra_tool("python");
    let checker = repo_root().join("infra/scripts/check-bicep-wiring");
    let wired = run(Command::new(&python).arg(&checker));
    assert!(wired.status.success(), "infra/bicep is miswired");

    // The same files with the mistakes the check exists for: a parameter the module
    // does not declare, a required one left out, an output that does not exist, a
    // parameter of main.bicepparam that main.bicep does not declare, and a parameter
    // nothing uses.
    let scratch = Scratch::new("wiring");
    let copy = scratch.0.join("bicep");
    std::fs::create_dir_all(copy.join("modules")).unwrap();
    for entry in ["main.bicep", "main.bicepparam"]
        .into_iter()
        .map(|f| (f.to_string(), repo_root().join("infra/bicep").join(f)))
        .chain(
            std::fs::read_dir(repo_root().join("infra/bicep/modules"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|p| {
                    (
                        format!("modules/{}", p.file_name().unwrap().to_string_lossy()),
                        p,
                    )
                }),
        )
    {
        std::fs::copy(entry.1, copy.join(entry.0)).unwrap();
    }
    let main = std::fs::read_to_string(copy.join("main.bicep")).unwrap();
    let broken = main
        .replacen(
            "    kubeletIdentityObjectId: aks.outputs.kubeletIdentityObjectId\n",
            "    kubeletIdentityObjectID: aks.outputs.kubeletIdentityObjectId\n",
            1,
        )
        .replacen(
            "firewall.outputs.privateIp",
            "firewall.outputs.privateIP",
            1,
        );
    assert_ne!(main, broken);
    std::fs::write(copy.join("main.bicep"), broken).unwrap();
    let acr = std::fs::read_to_string(copy.join("modules/acr.bicep")).unwrap();
    std::fs::write(
        copy.join("modules/acr.bicep"),
        acr + "param leftover string = ''\n",
    )
    .unwrap();
    let params = std::fs::read_to_string(copy.join("main.bicepparam")).unwrap();
    std::fs::write(
        copy.join("main.bicepparam"),
        params + "param searchReplicas = 3\n",
    )
    .unwrap();
    let miswired = run(Command::new(&python).arg(&checker).arg("--root").arg(&copy));
    assert!(!miswired.status.success());
    let report = String::from_utf8_lossy(&miswired.stdout);
    for problem in [
        "module `registry` is passed `kubeletIdentityObjectID`, which acr.bicep does not declare",
        "module `registry` is not passed `kubeletIdentityObjectId`, which acr.bicep requires",
        "reads `firewall.outputs.privateIP`, which firewall.bicep does not output",
        "sets `searchReplicas`, which main.bicep does not declare",
        "parameter `leftover` is declared but never used",
    ] {
        assert!(report.contains(problem), "`{problem}` not reported");
    }
}

/// checkov's JSON report: (passed, failed, parsing errors), with the failures printed.
fn checkov(args: &[&str], target: &Path) -> (u64, u64, u64) {
    let output = Command::new(infra_tool("checkov"))
        .current_dir(repo_root())
        .args(args)
        .arg(target)
        .args(["--config-file", ".checkov.yaml", "--output", "json"])
        .output()
        .expect("checkov runs");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "checkov wrote no JSON report ({e}): {}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    for failed in report["results"]["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        println!(
            "FAILED {} {} ({}:{:?})",
            failed["check_id"], failed["resource"], failed["file_path"], failed["file_line_range"]
        );
    }
    let summary = &report["summary"];
    let count = |key: &str| {
        summary[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key} in {summary}"))
    };
    (count("passed"), count("failed"), count("parsing_errors"))
}

#[test]
fn checkov_finds_nothing_in_the_bicep_or_the_rendered_manifests_that_is_not_skipped_with_a_reason()
{
    // Every skip is preceded by the comment that says why.
    let config = std::fs::read_to_string(repo_root().join(".checkov.yaml")).unwrap();
    let lines: Vec<&str> = config.lines().collect();
    let mut skips = 0;
    for (i, line) in lines.iter().enumerate() {
        if line.trim_start().starts_with("- CKV") {
            skips += 1;
            assert!(
                i > 0 && lines[i - 1].trim_start().starts_with('#'),
                ".checkov.yaml: `{}` has no reason above it",
                line.trim()
            );
        }
    }

    let (passed, failed, parsing_errors) = checkov(
        &["--framework", "bicep", "--directory"],
        &repo_root().join("infra/bicep"),
    );
    println!(
        "checkov bicep: {passed} passed, {failed} failed, {parsing_errors} parsing errors ({skips} check ids skipped in .checkov.yaml)"
    );
    assert_eq!(parsing_errors, 0, "checkov could not parse a Bicep file");
    assert!(passed > 0, "checkov checked nothing in infra/bicep");
    assert_eq!(failed, 0, "checkov failures in infra/bicep (listed above)");

    let scratch = Scratch::new("checkov");
    let Some(manifests) = rendered_manifests(&scratch) else {
        return;
    };
    let (passed, failed, parsing_errors) =
        checkov(&["--framework", "kubernetes", "--file"], &manifests);
    println!(
        "checkov kubernetes: {passed} passed, {failed} failed, {parsing_errors} parsing errors"
    );
    assert_eq!(parsing_errors, 0);
    assert!(
        passed > 0,
        "checkov checked nothing in the rendered manifests"
    );
    assert_eq!(
        failed, 0,
        "checkov failures in the rendered manifests (listed above)"
    );

    // Option (b)'s manifests as kustomize renders them (checkov knows no SpinApp, so this
    // covers their built-in objects).
    let spinkube = Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo_root().join("infra/spinkube"))
        .output()
        .expect("kubectl ran above");
    assert!(spinkube.status.success());
    let spinkube_manifests = scratch.0.join("spinkube.yaml");
    std::fs::write(&spinkube_manifests, spinkube.stdout).unwrap();
    let (passed, failed, parsing_errors) = checkov(
        &["--framework", "kubernetes", "--file"],
        &spinkube_manifests,
    );
    println!(
        "checkov kubernetes (infra/spinkube): {passed} passed, {failed} failed, {parsing_errors} parsing errors"
    );
    assert_eq!(parsing_errors, 0);
    assert_eq!(
        failed, 0,
        "checkov failures in infra/spinkube (listed above)"
    );
}

/// `kubernetes-validate --strict` on one rendered file: every object must pass, except
/// those of the custom kinds listed, for which it has no schema. Returns how many passed.
fn validate_strictly(manifests: &Path, kinds_without_schema: &[&str]) -> usize {
    // AKS's supported versions in 2026 start at 1.32; unknown fields are errors.
    let output = run(Command::new(infra_tool("kubernetes-validate"))
        .args(["--strict", "--kubernetes-version", "1.32.0"])
        .arg(manifests));
    assert!(
        output.status.success(),
        "an object fails its schema (above)"
    );
    let log = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    let passed = log.matches(" passed for resource ").count();
    let documents = std::fs::read_to_string(manifests)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("kind: "))
        .count();
    // Skipped objects must be of the custom kinds named, never a built-in one.
    let unvalidated: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("Couldn't find schema"))
        .collect();
    for line in &unvalidated {
        assert!(
            kinds_without_schema
                .iter()
                .any(|kind| line.contains(&format!("kind {kind} with api version"))),
            "no schema for: {line}"
        );
    }
    println!(
        "kubernetes-validate --strict {}: {passed} of {documents} objects validated, {} of the custom kinds {kinds_without_schema:?} not",
        manifests.display(),
        unvalidated.len()
    );
    assert_eq!(passed + unvalidated.len(), documents);
    passed
}

#[test]
fn every_rendered_kubernetes_object_validates_strictly_against_its_schema() {
    let scratch = Scratch::new("validate");
    let Some(manifests) = rendered_manifests(&scratch) else {
        return;
    };
    // The CSI driver's CRD is the one kind of option (a) kubernetes-validate has no
    // schema for.
    let passed = validate_strictly(&manifests, &["SecretProviderClass"]);
    assert!(passed >= 15, "only {passed} objects validated");

    // Option (b), as `kubectl apply -k infra/spinkube` would send it: its built-in
    // objects strictly too. SpinApp and SpinAppExecutor were checked against the
    // spin-operator CRDs by hand (infra/README.md), not here.
    let spinkube = Command::new("kubectl")
        .args(["kustomize"])
        .arg(repo_root().join("infra/spinkube"))
        .output()
        .expect("kubectl ran above");
    assert!(
        spinkube.status.success(),
        "{}",
        String::from_utf8_lossy(&spinkube.stderr)
    );
    let spinkube_manifests = scratch.0.join("spinkube.yaml");
    std::fs::write(&spinkube_manifests, spinkube.stdout).unwrap();
    let passed = validate_strictly(
        &spinkube_manifests,
        &["SecretProviderClass", "SpinApp", "SpinAppExecutor"],
    );
    assert!(passed >= 8, "only {passed} objects validated");
}
