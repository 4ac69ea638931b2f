//! The chat web app end to end: the shipped `spin.toml` (its routes: the API to the whole
//! chain, everything else to `ui` behind telemetry and waf), and the app in Debian's
//! chromium driven by Playwright (`tests/ui/browser.py`, installed by `make sdk` into
//! `.sdk/ui-venv`), against `completion-openai` talking to the OpenAI-compatible test
//! double of `chatgate_tests::upstream`.

use chatgate::manifest::{DependencySource, Manifest};
use chatgate_tests::http_client::send;
use chatgate_tests::oidc::{Client, Fault, Provider};
use chatgate_tests::upstream::{Answer, Ending, Recorded, Upstream, openai_answer};
use chatgate_tests::{Gateway, OPENAI_COMPLETION_LINE, manifest_with_completion_line};
use chatgate_tests::{project_manifest, repo_root};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

const KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");

/// Which component answered: `ui`'s answers carry its Content-Security-Policy, `chat`'s
/// do not; both went through `telemetry` (its `x-request-id`).
async fn answered_by(gateway: &Gateway, method: &str, path: &str) -> (&'static str, u16) {
    let reply = send(method, &gateway.url(path), &[KEY], "").await;
    assert!(
        reply.header("x-request-id").is_some(),
        "{path}: not through telemetry"
    );
    let component = if reply.header("content-security-policy").is_some() {
        "ui"
    } else {
        "chat"
    };
    (component, reply.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_routes_send_the_api_to_chat_and_the_rest_to_the_page() {
    let manifest = Manifest::parse(&project_manifest(), repo_root()).unwrap();
    let routes: Vec<(&str, &str)> = manifest
        .http_triggers
        .iter()
        .map(|t| (t.route.as_str(), t.component.as_str()))
        .collect();
    assert_eq!(
        routes,
        [
            ("/v1/...", "chat"),
            ("/openai/...", "chat"),
            ("/healthz", "chat"),
            ("/...", "ui"),
        ]
    );
    // The page is public: its route has no `auth`; the API's routes have the whole chain.
    for trigger in &manifest.http_triggers {
        let middleware: Vec<&str> = trigger
            .dependencies
            .middleware
            .iter()
            .map(|m| match m {
                DependencySource::AppComponent { component, .. } => component.as_str(),
                other => panic!("{other:?}"),
            })
            .collect();
        let expected: &[&str] = if trigger.component == "ui" {
            &["telemetry", "waf"]
        } else {
            &["telemetry", "waf", "auth"]
        };
        assert_eq!(middleware, expected, "{}", trigger.route);
    }

    // Without the host's own probes (`chatgate up` answers `/healthz` and `/readyz` before
    // any route), so that the manifest's routes decide every path.
    let gateway = Gateway::start_with(&project_manifest(), &[], |options| options.probes = false)
        .await
        .unwrap();
    // The three API routes compose to the same bytes and share one compilation; the
    // page's chain is the other.
    assert_eq!(gateway.app().compositions(), 2);
    for (path, expected) in [
        ("/", ("ui", 200)),
        ("/index.html", ("ui", 200)),
        ("/healthz", ("chat", 200)),
        ("/readyz", ("ui", 404)),
        ("/v1/models", ("chat", 200)),
        ("/v1/models/chatgate-rag", ("chat", 200)),
        ("/openai/models?api-version=2024-10-21", ("chat", 200)),
        // Under the API's prefixes, unknown paths are the API's 404s, not the page's.
        ("/v1/nowhere", ("chat", 404)),
        ("/openai/nowhere?api-version=2024-10-21", ("chat", 404)),
        // A path that only starts like an API prefix is not under it.
        ("/v10/models", ("ui", 404)),
        ("/healthz/x", ("ui", 404)),
        ("/assets/missing.js", ("ui", 404)),
    ] {
        assert_eq!(answered_by(&gateway, "GET", path).await, expected, "{path}");
    }
    // The page's assets, by the names the page gives them.
    let page = send("GET", &gateway.url("/"), &[], "").await;
    let html = page.text();
    let assets: Vec<&str> = html
        .split('"')
        .filter(|part| part.starts_with("/assets/"))
        .collect();
    assert_eq!(assets.len(), 3, "{html}");
    for asset in assets {
        let reply = send("GET", &gateway.url(asset), &[("accept-encoding", "br")], "").await;
        assert_eq!(reply.status, 200, "{asset}");
        assert_eq!(reply.header("content-encoding"), Some("br"), "{asset}");
        assert_eq!(
            reply.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
    }
    // The page needs no credential; the API still does.
    assert_eq!(page.status, 200);
    let api = send("GET", &gateway.url("/v1/models"), &[], "").await;
    assert_eq!(api.status, 401);
    // The WAF stands in front of the page too: a scanner's signature is refused there.
    let scan = send("GET", &gateway.url("/?id=1%27%20OR%201%3D1--"), &[], "").await;
    assert_eq!(scan.status, 403, "{}", scan.text());
    assert!(
        scan.json()["error"]["code"]
            .as_str()
            .unwrap()
            .starts_with("waf_rule_"),
        "{}",
        scan.text()
    );
    gateway.stop().await;
}

/// The answers of the test double, chosen by a marker in the question.
const STREAMED: &str = "Requests are filtered by the WAF [doc1] and traced [doc2].";
const MALICIOUS: &str = "Look: <img src=x onerror=window.__pwned=1> and <script>window.__pwned=2</script> \
    [click me](javascript:window.__pwned=3) [docs](https://example.com/docs) \
    <a href=\"javascript:window.__pwned=4\">x</a> cites [doc1] and [doc99] end of answer";
const RETRIED: &str = "Retried answer [doc1].";

/// The last user message the gateway sent upstream.
fn question(request: &Recorded) -> String {
    request.body["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|m| m["role"] == "user")
        .map(|m| m["content"].to_string())
        .unwrap_or_default()
}

/// The byte offset just after the first `events` SSE events of `body`.
fn after_events(body: &str, events: usize) -> usize {
    body.match_indices("\n\n")
        .nth(events - 1)
        .map(|(i, _)| i + 2)
        .unwrap()
}

/// `answer` streamed, its role chunk and first word sent at once and the rest once
/// `gate` is notified (never, for a gate nobody opens).
fn held(request: &Recorded, answer: &str, gate: &Arc<tokio::sync::Notify>) -> Answer {
    let mut full = openai_answer(request, answer);
    assert_eq!(full.content_type, "text/event-stream", "the app streams");
    let split = after_events(&full.body, 2);
    let rest = full.body.split_off(split);
    full.held_back = Some((gate.clone(), rest));
    full
}

/// Runs `tests/ui/browser.py` with `args` until it exits, opening `gate` when it asks
/// (`OPEN stream`) and setting the `provider`'s fault when it asks (`FAULT <name>`);
/// fails unless it printed `OK` and exited 0. Returns the faults it set, in order.
async fn drive_browser(
    args: &[String],
    gate: Option<&Arc<tokio::sync::Notify>>,
    provider: Option<&Provider>,
) -> Vec<Fault> {
    let python = repo_root().join(".sdk/ui-venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run `make sdk` (Playwright, pinned in tests/ui/requirements.txt)",
        python.display()
    );
    let chromium =
        std::env::var("CHATGATE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} is missing: run `make test-deps` (Debian's chromium)"
    );
    let mut child = tokio::process::Command::new(&python)
        .arg(repo_root().join("tests/ui/browser.py"))
        .args(args)
        .env("CHATGATE_CHROMIUM", &chromium)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting browser.py");
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut passed = false;
    let mut faults = Vec::new();
    // A bound on a hung browser, not a measure of speed.
    let exit = tokio::time::timeout(Duration::from_secs(300), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let fault = line.strip_prefix("FAULT ").and_then(Fault::named);
            match (line.as_str(), gate, provider, fault) {
                ("OPEN stream", Some(gate), _, _) => gate.notify_one(),
                (_, _, Some(provider), Some(fault)) => {
                    provider.set_fault(fault);
                    faults.push(fault);
                }
                ("OK", ..) => {
                    passed = true;
                    continue;
                }
                (other, ..) => panic!("browser.py said {other:?}"),
            }
            stdin.write_all(b"OPENED\n").await.unwrap();
            stdin.flush().await.unwrap();
        }
        child.wait().await.unwrap()
    })
    .await
    .expect("browser.py finishes");
    assert!(exit.success() && passed, "browser.py failed ({exit})");
    faults
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_app_in_chromium() {
    let stream_gate = Arc::new(tokio::sync::Notify::new());
    let never = Arc::new(tokio::sync::Notify::new());
    let again = AtomicUsize::new(0);
    let upstream = {
        let stream_gate = stream_gate.clone();
        Upstream::start(move |request| {
            let question = question(request);
            if question.contains("malicious-case") {
                openai_answer(request, MALICIOUS)
            } else if question.contains("stop-case") {
                held(request, STREAMED, &never)
            } else if question.contains("rate-case") {
                error(request, 429, &[("retry-after", "7")])
            } else if question.contains("cut-case") {
                let mut cut = openai_answer(request, STREAMED);
                cut.body.truncate(after_events(&cut.body, 2));
                cut.ending = Ending::Cut;
                cut
            } else if question.contains("broken-case") {
                error(request, 500, &[])
            } else if question.contains("again-case") {
                if again.fetch_add(1, Ordering::SeqCst) == 0 {
                    openai_answer(request, STREAMED)
                } else {
                    openai_answer(request, RETRIED)
                }
            } else if question.contains("keyboard-case") {
                openai_answer(request, STREAMED)
            } else {
                held(request, STREAMED, &stream_gate)
            }
        })
        .await
    };
    let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
    let gateway = Gateway::start(
        &manifest,
        &[
            ("openai_origin", upstream.origin.as_str()),
            ("openai_api_key", "sk-test-double"),
            ("openai_max_retries", "0"),
        ],
    )
    .await
    .unwrap();

    let artifacts = repo_root().join("target/ui-screenshots");
    drive_browser(
        &[gateway.url("/"), artifacts.display().to_string()],
        Some(&stream_gate),
        None,
    )
    .await;

    // What reached the double: the questions the page sent, with the model it picked.
    let recorded = upstream.recorded();
    assert!(recorded.iter().all(|r| r.body["stream"] == true));
    // The WAF's 403 stopped the prompt injection before any model was asked.
    assert!(
        !recorded
            .iter()
            .any(|r| question(r).contains("Ignore all previous instructions")),
        "the blocked question reached the model"
    );
    for screenshot in [
        "desktop.png",
        "desktop-dark.png",
        "phone.png",
        "phone-conversations.png",
    ] {
        let written = artifacts.join(screenshot);
        assert!(
            std::fs::metadata(&written).is_ok_and(|m| m.len() > 0),
            "{}",
            written.display()
        );
    }
    gateway.stop().await;
}

/// An OpenAI-style error from the double.
fn error(_request: &Recorded, status: u16, headers: &[(&'static str, &str)]) -> Answer {
    let body = serde_json::json!({"error": {
        "message": format!("test double: status {status}"), "type": "server_error", "param": null, "code": null,
    }});
    let mut answer = Answer::json(status, &body);
    for (name, value) in headers {
        answer = answer.with_header(name, *value);
    }
    answer
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chat_app_signs_in_with_openid_connect() {
    const AUDIENCE: &str = "api://chatgate";
    let provider = Provider::start(Client {
        client_id: "chatgate-ui".into(),
        audience: AUDIENCE.into(),
        subject: "user-oidc@example.test".into(),
        // Short, so that the app's refresh is seen within the test.
        lifetime: 3,
    })
    .await;
    let upstream = Upstream::openai(STREAMED).await;
    let manifest = manifest_with_completion_line(OPENAI_COMPLETION_LINE);
    let jwks = provider.jwks();
    let gateway = Gateway::start(
        &manifest,
        &[
            ("openai_origin", upstream.origin.as_str()),
            ("openai_api_key", "sk-test-double"),
            ("auth_jwks", jwks.as_str()),
            ("auth_issuer", provider.origin.as_str()),
            ("auth_audience", AUDIENCE),
            ("ui_oidc_authority", provider.origin.as_str()),
            ("ui_oidc_client_id", "chatgate-ui"),
            (
                "ui_oidc_scopes",
                "openid offline_access api://chatgate/chat",
            ),
        ],
    )
    .await
    .unwrap();
    provider.register_redirect_uri(&gateway.url("/"));
    let artifacts = repo_root().join("target/ui-screenshots");
    let faults = drive_browser(
        &[
            gateway.url("/"),
            artifacts.display().to_string(),
            "oidc".into(),
        ],
        None,
        Some(&provider),
    )
    .await;

    // Every way of spoiling the ID token was tried, each by a sign-in of its own that the
    // app refused (browser.py checks the refusal and that no API call followed).
    let code_faults = [
        Fault::Tampered,
        Fault::ForeignKey,
        Fault::UnknownKid,
        Fault::Unsigned,
        Fault::WrongIssuer,
        Fault::WrongAudience,
        Fault::WrongNonce,
        Fault::Expired,
        Fault::NotYetValid,
        Fault::Missing,
    ];
    for fault in code_faults.iter().chain([&Fault::RefreshOtherSubject]) {
        assert!(
            faults.contains(fault),
            "{fault:?} was not tried: {faults:?}"
        );
    }
    let exchanges = provider.exchanges();
    // Each spoilt ID token went out once, in a code exchange of its own, in order; then
    // the refresh's (the app signs out at the first).
    let (by_code, by_refresh) = exchanges
        .spoilt
        .split_at(code_faults.len().min(exchanges.spoilt.len()));
    assert_eq!(by_code, code_faults, "{exchanges:?}");
    assert_eq!(by_refresh, [Fault::RefreshOtherSubject], "{exchanges:?}");
    // The refused sign-ins, then two good ones (before and after the refused refresh).
    assert_eq!(exchanges.codes, code_faults.len() + 2, "{exchanges:?}");
    assert!(exchanges.refreshes >= 2, "{exchanges:?}");
    assert!(exchanges.refused.is_empty(), "{exchanges:?}");
    // The three answered questions reached the model: the API accepted the tokens the
    // provider issued.
    assert!(upstream.hits() >= 3);
    gateway.stop().await;
}
