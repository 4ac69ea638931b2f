//! Harness for the end-to-end tests: runs the real `chatgate` host on loopback with
//! the built components, speaks HTTP to it, and provides the external peers the
//! gateway talks to (an OpenAI-compatible upstream, an OIDC issuer's signing keys).

/// Declares the `chatgate` binary's global allocator ([`chatgate::Allocator`]) in a test
/// or bench crate that runs the host in-process, so that what it measures (instructions,
/// latency, resident memory) is what the binary does.
#[macro_export]
macro_rules! host_allocator {
    () => {
        #[global_allocator]
        static ALLOCATOR: ::chatgate::Allocator = ::chatgate::Allocator;
    };
}

pub mod double;
pub mod embeddings;
pub mod entra;
pub mod http_client;
pub mod jwt;
pub mod oidc;
pub mod search;
pub mod stats;
pub mod upstream;
pub mod waf_reference;

use chatgate::app::{App, AppOptions};
use chatgate::manifest::Manifest;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The repository root: `spin.toml` and `target/` live here.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Where cargo builds: `CARGO_TARGET_DIR` when the tests run with it set (cargo hands its
/// environment to the tests), so that a build in a directory of one's own is also the one
/// tested; else the repository's `target/`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => repo_root().join(dir),
        _ => repo_root().join("target"),
    }
}

/// The path of a built component, failing with the command that builds it.
pub fn wasm(crate_name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/release")
        .join(format!("{}.wasm", crate_name.replace('-', "_")));
    assert!(
        path.exists(),
        "{} is missing: build the components first with `make build` (or `make test`)",
        path.display()
    );
    path
}

/// Where cargo puts (under [`target_dir`]) the release `chatgate` binary built for the target these tests were
/// built for: `make test` builds the host and the tests for musl (the static binary the
/// image ships, compiled once for both), `make up` and `cargo bench` for the machine's
/// own target.
pub const CHATGATE_BINARY: &str = if cfg!(target_env = "musl") {
    "x86_64-unknown-linux-musl/release/chatgate"
} else {
    "release/chatgate"
};

/// The `chatgate` binary built for the same target as these tests, as users run it.
pub fn chatgate_binary() -> PathBuf {
    let path = target_dir().join(CHATGATE_BINARY);
    assert!(
        path.exists(),
        "{} is missing: run `make build` (or `make test`)",
        path.display()
    );
    path
}

/// The `waf` component preloaded with the default rules, as `make build` writes it (with
/// `chatgate waf`) and `spin.toml` serves it.
pub fn preloaded_waf() -> PathBuf {
    let path = repo_root().join("target/chatgate-waf/waf.wasm");
    assert!(
        path.exists(),
        "{} is missing: build it with `make build` (or `make waf`)",
        path.display()
    );
    path
}

/// The project's own `spin.toml`, as text.
pub fn project_manifest() -> String {
    std::fs::read_to_string(repo_root().join("spin.toml")).expect("reading spin.toml")
}

/// `manifest` with each `(from, to)` applied in turn; each `from` must occur exactly once.
pub fn replace_each_once(manifest: &str, edits: &[(String, String)]) -> String {
    let mut text = manifest.to_string();
    for (from, to) in edits {
        assert_eq!(
            text.matches(from.as_str()).count(),
            1,
            "spin.toml has {from}"
        );
        text = text.replace(from.as_str(), to);
    }
    text
}

/// The edit that gives `chat` a `files` mount of `source` at `destination`, as the
/// Kubernetes overlay does for the projected service-account token.
pub fn chat_files_mount(source: &Path, destination: &str) -> (String, String) {
    (
        "[component.chat]\n".to_string(),
        format!(
            "[component.chat]\nfiles = [{{ source = \"{}\", destination = \"{destination}\" }}]\n",
            source.display()
        ),
    )
}

/// The completion dependency line `spin.toml` ships with.
pub const SHIPPED_COMPLETION_LINE: &str =
    r#""chatgate:completion/completion" = { component = "completion-extractive" }"#;

/// The one-line swap to `completion-openai` that `spin.toml` and the README document.
pub const OPENAI_COMPLETION_LINE: &str = r#""chatgate:completion/completion" = { component = "completion-openai", inherit_configuration = ["variables", "allowed_outbound_hosts", "key_value_stores"] }"#;

/// The shipped manifest with its completion dependency line replaced by `line`,
/// and nothing else.
pub fn manifest_with_completion_line(line: &str) -> String {
    manifest_with_line_replaced(SHIPPED_COMPLETION_LINE, line)
}

/// The retriever dependency line `spin.toml` ships with.
pub const SHIPPED_RETRIEVER_LINE: &str =
    r#""chatgate:retriever/retriever" = { component = "retrieval" }"#;

/// The retriever line that gives `retrieval` its variables (score floors) and the
/// embeddings endpoint (hybrid search), as `spin.toml` documents.
pub const CONFIGURED_RETRIEVER_LINE: &str = r#""chatgate:retriever/retriever" = { component = "retrieval", inherit_configuration = ["variables", "allowed_outbound_hosts"] }"#;

/// The shipped manifest with the configured retriever line.
pub fn configured_retrieval_manifest() -> String {
    manifest_with_line_replaced(SHIPPED_RETRIEVER_LINE, CONFIGURED_RETRIEVER_LINE)
}

/// The one-line swap to `retrieval-azure-search` that `spin.toml` documents.
pub const AZURE_SEARCH_RETRIEVER_LINE: &str = r#""chatgate:retriever/retriever" = { component = "retrieval-azure-search", inherit_configuration = ["variables", "allowed_outbound_hosts", "key_value_stores"] }"#;

/// The shipped manifest with `shipped_line` (which must occur once) replaced by
/// `line`, and nothing else.
pub fn manifest_with_line_replaced(shipped_line: &str, line: &str) -> String {
    let shipped = project_manifest();
    assert_eq!(
        shipped.matches(shipped_line).count(),
        1,
        "spin.toml has {shipped_line}"
    );
    let edited = shipped.replace(shipped_line, line);
    let changed = shipped
        .lines()
        .zip(edited.lines())
        .filter(|(a, b)| a != b)
        .count();
    assert_eq!(changed, 1, "exactly one line differs");
    edited
}

/// `(name, value)` variables as the environment sets them: `SPIN_VARIABLE_<NAME>`.
pub fn spin_variables(variables: &[(&str, &str)]) -> Vec<(String, String)> {
    variables
        .iter()
        .map(|(k, v)| {
            (
                format!("SPIN_VARIABLE_{}", k.to_ascii_uppercase()),
                v.to_string(),
            )
        })
        .collect()
}

/// Sends the in-process gateways' warnings and errors (`CHATGATE_LOG` overrides the
/// filter, as for the binary) to libtest's captured output, so that a failed test shows
/// why its gateway refused or failed a request; a passing test's output is dropped.
fn show_gateway_logs() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_env("CHATGATE_LOG")
            .unwrap_or_else(|_| "chatgate=warn".into());
        // Fails only when another subscriber is already installed, which then stays.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .with_ansi(false)
            .try_init();
    });
}

/// A gateway serving one manifest on an ephemeral loopback port.
pub struct Gateway {
    pub base: String,
    app: Arc<App>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    served: Option<tokio::task::JoinHandle<()>>,
}

impl Gateway {
    /// Loads `manifest` (paths relative to the repository root) with variable overrides.
    pub async fn start(manifest: &str, variables: &[(&str, &str)]) -> Result<Gateway, String> {
        Gateway::start_with(manifest, variables, |_| {}).await
    }

    /// Like [`Gateway::start`], with the host's options (timeouts, limits) adjusted by `adjust`.
    pub async fn start_with(
        manifest: &str,
        variables: &[(&str, &str)],
        adjust: impl FnOnce(&mut AppOptions),
    ) -> Result<Gateway, String> {
        for (name, _) in &variables.iter().collect::<Vec<_>>() {
            assert!(
                !name.starts_with("SPIN_VARIABLE_"),
                "pass bare variable names"
            );
        }
        show_gateway_logs();
        let manifest = Manifest::parse(manifest, repo_root()).map_err(|e| e.to_string())?;
        let mut options = AppOptions {
            env_overrides: spin_variables(variables),
            compile_cache: Some(target_dir().join("chatgate-test-cache")),
            // Tests run many gateways in one process: a smaller pool keeps their
            // address-space reservations within the process's limit.
            limits: chatgate::admission::Limits {
                max_in_flight: 200,
                // Many gateways and clients share a loaded machine in a test run: the
                // scheduler lag of one is no sign of its own overload. The tests of
                // shedding turn it on.
                overload_lag: std::time::Duration::ZERO,
                ..Default::default()
            },
            capture_guest_stdout: true,
            ..AppOptions::default()
        };
        adjust(&mut options);
        let app = Arc::new(App::load(&manifest, &options).map_err(|e| format!("{e:#}"))?);
        let listener = chatgate::server::bind("127.0.0.1:0".parse().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        let served_app = app.clone();
        let served = tokio::spawn(async move {
            chatgate::server::serve(served_app, listener, async {
                let _ = stop.await;
            })
            .await
            .expect("serving");
        });
        Ok(Gateway {
            base,
            app,
            shutdown: Some(shutdown),
            served: Some(served),
        })
    }

    /// The running application: its live instances and admission budgets.
    pub fn app(&self) -> &App {
        &self.app
    }

    /// The address the gateway listens on.
    pub fn address(&self) -> std::net::SocketAddr {
        self.base
            .trim_start_matches("http://")
            .parse()
            .expect("the base URL is http://address")
    }

    /// The JSON lines guests have written to stdout so far.
    pub fn guest_log(&self) -> Vec<serde_json::Value> {
        guest_log(&self.app)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Stops accepting, drains in-flight requests and waits for the server to end.
    pub async fn stop(mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(served) = self.served.take() {
            served.await.expect("server task");
        }
    }
}

/// A manifest with one route, `/...`, served by `primary` behind `middleware`
/// (component ids, outermost first), all built from this repository.
pub fn single_route_manifest(primary: &str, middleware: &[&str], extra: &str) -> String {
    let mut components = String::new();
    let mut middleware_list = Vec::new();
    for id in middleware.iter().chain(std::iter::once(&primary)) {
        components.push_str(&format!(
            "[component.{id}]\nsource = \"{}\"\n",
            wasm(id).display()
        ));
    }
    for id in middleware {
        middleware_list.push(format!(
            "{{ component = \"{id}\", inherit_configuration = [\"variables\"] }}"
        ));
    }
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"test\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"{primary}\"\n\
         dependencies.middleware = [{}]\n{components}{extra}",
        middleware_list.join(", ")
    )
}

/// The JSON lines `app`'s guests have written to stdout so far (captured when
/// `capture_guest_stdout` is set).
pub fn guest_log(app: &chatgate::app::App) -> Vec<serde_json::Value> {
    app.guest_stdout()
        .unwrap_or_default()
        .lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}
