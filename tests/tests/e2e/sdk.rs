//! The official OpenAI SDKs, unmodified, against the gateway: the `openai` Python package
//! (tests/sdk/openai_python.py) and the `openai` npm package (tests/sdk/openai_node.mjs),
//! each with its `OpenAI` and `AzureOpenAI` clients, streaming and not.
//!
//! The scripts assert on the SDKs' parsed objects themselves; these tests start the gateway,
//! hand the scripts its address and credentials, and fail with everything they printed.
//! The SDKs are installed by `make sdk` (pinned versions, into `.sdk/venv` and
//! `tests/sdk/node_modules`).

use chatgate_tests::jwt::{Issuer, now};
use chatgate_tests::upstream::{Upstream, openai_answer};
use chatgate_tests::{
    Gateway, OPENAI_COMPLETION_LINE, manifest_with_completion_line, project_manifest, repo_root,
};
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

const API_KEY: &str = "chatgate-sdk-test-key";
const ISSUER: &str = "https://login.example.test/sdk-tenant/v2.0";
const AUDIENCE: &str = "api://chatgate";
/// The model id the shipped `spin.toml` serves, which the Azure clients use as deployment name.
const MODEL: &str = "chatgate-rag";

/// The Python checks that use `OpenAI(base_url=...)`.
const OPENAI_CHECKS: &[&str] = &[
    "openai-chat",
    "openai-options",
    "openai-max-tokens",
    "openai-stream",
    "openai-stream-helper",
    "openai-models",
    "errors",
    "gateway-extras",
];

#[derive(Clone, Copy)]
enum Sdk {
    Python,
    Node,
}

impl Sdk {
    /// The interpreter and script, failing with the install command when the SDK is missing
    /// or is not the version the lock files pin.
    fn command(self) -> Command {
        let sdk_dir = repo_root().join("tests/sdk");
        let (program, script) = match self {
            Sdk::Python => (
                repo_root().join(".sdk/venv/bin/python"),
                sdk_dir.join("openai_python.py"),
            ),
            Sdk::Node => (PathBuf::from("node"), sdk_dir.join("openai_node.mjs")),
        };
        let (installed, pinned) = match self {
            Sdk::Python => (python_sdk_version(&program), pinned_python_version()),
            Sdk::Node => (node_sdk_version(), pinned_node_version()),
        };
        assert!(
            installed.as_deref() == Some(pinned.as_str()),
            "the {} openai SDK {pinned} is not installed (found {installed:?}): run `make sdk`",
            self.name()
        );
        let mut command = Command::new(program);
        command.arg(script);
        command
    }

    fn name(self) -> &'static str {
        match self {
            Sdk::Python => "Python",
            Sdk::Node => "npm",
        }
    }
}

fn python_sdk_version(python: &std::path::Path) -> Option<String> {
    let output = Command::new(python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('openai'))",
        ])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

fn pinned_python_version() -> String {
    let requirements = std::fs::read_to_string(repo_root().join("tests/sdk/requirements.txt"))
        .expect("tests/sdk/requirements.txt");
    requirements
        .lines()
        .find_map(|line| line.trim().strip_prefix("openai=="))
        .expect("requirements.txt pins openai")
        .to_string()
}

fn package_version(path: &str, pointer: &str) -> Option<String> {
    let text = std::fs::read_to_string(repo_root().join(path)).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.pointer(pointer)?.as_str().map(str::to_string)
}

fn node_sdk_version() -> Option<String> {
    package_version("tests/sdk/node_modules/openai/package.json", "/version")
}

fn pinned_node_version() -> String {
    package_version(
        "tests/sdk/package-lock.json",
        "/packages/node_modules~1openai/version",
    )
    .expect("package-lock.json pins openai")
}

/// What a script needs to reach the gateway.
struct Target<'a> {
    gateway: &'a Gateway,
    jwt: Option<String>,
    /// The completion provider's exact answer, when it is known.
    expect_content: Option<&'static str>,
}

/// Runs `checks` of `sdk`'s script against `target`, failing with the script's output.
async fn run(sdk: Sdk, target: &Target<'_>, checks: &[&str]) {
    let mut command = sdk.command();
    command
        .args(checks)
        .current_dir(repo_root().join("tests/sdk"))
        .env("CHATGATE_BASE_URL", &target.gateway.base)
        .env("CHATGATE_API_KEY", API_KEY)
        .env("CHATGATE_MODEL", MODEL)
        // Only what is set here may steer the SDKs.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for ambient in [
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_API_VERSION",
        "AZURE_OPENAI_API_KEY",
        "AZURE_OPENAI_AD_TOKEN",
        "AZURE_OPENAI_ENDPOINT",
        "CHATGATE_JWT",
        "CHATGATE_EXPECT_CONTENT",
    ] {
        command.env_remove(ambient);
    }
    if let Some(jwt) = &target.jwt {
        command.env("CHATGATE_JWT", jwt);
    }
    if let Some(content) = target.expect_content {
        command.env("CHATGATE_EXPECT_CONTENT", content);
    }
    // The gateway serves on this runtime: wait for the script off its worker threads.
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("script task")
        .unwrap_or_else(|e| panic!("starting the {} SDK script: {e}", sdk.name()));
    assert!(
        output.status.success(),
        "the {} SDK script failed ({}) for checks {checks:?}\n--- stdout\n{}\n--- stderr\n{}",
        sdk.name(),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    // Shown with `--nocapture`: which checks ran, and how the SDK saw the gateway.
    println!("{}", String::from_utf8_lossy(&output.stdout));
}

/// The shipped gateway, accepting [`API_KEY`] and JWTs from `issuer`.
async fn gateway(manifest: &str, issuer: &Issuer, extra: &[(&str, &str)]) -> Gateway {
    let api_keys = format!("sdk={API_KEY}");
    let mut variables = vec![
        ("auth_api_keys", api_keys.as_str()),
        ("auth_jwks", issuer.jwks()),
        ("auth_issuer", ISSUER),
        ("auth_audience", AUDIENCE),
    ];
    variables.extend_from_slice(extra);
    Gateway::start(manifest, &variables).await.unwrap()
}

fn token(issuer: &Issuer) -> String {
    issuer.token(&json!({
        "sub": "sdk-user@example.test", "iss": ISSUER, "aud": AUDIENCE,
        "iat": now(), "exp": now() + 600,
    }))
}

async fn sdk_against_the_shipped_gateway(sdk: Sdk, checks: &[&str]) {
    let issuer = Issuer::new(ISSUER, "sdk-key");
    let gateway = gateway(&project_manifest(), &issuer, &[]).await;
    let target = Target {
        gateway: &gateway,
        jwt: Some(token(&issuer)),
        expect_content: None,
    };
    run(sdk, &target, checks).await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_openai_client_gets_grounded_answers_usage_citations_and_typed_errors() {
    let mut checks = OPENAI_CHECKS.to_vec();
    checks.push("openai-async");
    sdk_against_the_shipped_gateway(Sdk::Python, &checks).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_azure_openai_client_calls_the_deployment_route_with_api_key_or_entra_token() {
    sdk_against_the_shipped_gateway(Sdk::Python, &["azure", "azure-ad"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_openai_client_gets_grounded_answers_usage_citations_and_typed_errors() {
    sdk_against_the_shipped_gateway(Sdk::Node, OPENAI_CHECKS).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_azure_openai_client_calls_the_deployment_route_with_api_key_or_entra_token() {
    sdk_against_the_shipped_gateway(Sdk::Node, &["azure", "azure-ad"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn both_sdks_read_the_openai_upstreams_answer_through_the_completion_openai_swap() {
    const ANSWER: &str = "The firewall blocks SQL injection and cross-site scripting [doc1].";
    let upstream = Upstream::openai(ANSWER).await;
    let issuer = Issuer::new(ISSUER, "sdk-key");
    let gateway = gateway(
        &manifest_with_completion_line(OPENAI_COMPLETION_LINE),
        &issuer,
        &[
            ("openai_origin", &upstream.origin),
            ("openai_api_key", "sk-upstream-test"),
        ],
    )
    .await;
    let target = Target {
        gateway: &gateway,
        jwt: Some(token(&issuer)),
        expect_content: Some(ANSWER),
    };
    let checks = ["openai-chat", "openai-stream", "azure"];
    run(Sdk::Python, &target, &checks).await;
    run(Sdk::Node, &target, &checks).await;
    let recorded = upstream.recorded();
    assert!(
        recorded
            .iter()
            .all(|r| r.headers["authorization"] == "Bearer sk-upstream-test"),
        "the gateway called the upstream with its own key, never the client's"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn both_sdks_raise_an_error_when_the_upstream_stream_breaks_off() {
    // The upstream's role chunk and first two words, then the end of the body: no
    // finish_reason, no `[DONE]`, as when a connection drops mid-answer.
    let upstream = Upstream::start(|request| {
        let mut answer = openai_answer(request, "The firewall blocks SQL injection.");
        let kept: Vec<&str> = answer.body.split_inclusive("\n\n").take(3).collect();
        answer.body = kept.concat();
        answer
    })
    .await;
    let issuer = Issuer::new(ISSUER, "sdk-key");
    let gateway = gateway(
        &manifest_with_completion_line(OPENAI_COMPLETION_LINE),
        &issuer,
        &[("openai_origin", &upstream.origin)],
    )
    .await;
    let target = Target {
        gateway: &gateway,
        jwt: None,
        expect_content: None,
    };
    run(Sdk::Python, &target, &["stream-cut"]).await;
    run(Sdk::Node, &target, &["stream-cut"]).await;
    assert!(
        upstream.recorded().iter().all(|r| r.body["stream"] == true),
        "every upstream call was a streamed one"
    );
    gateway.stop().await;
}
