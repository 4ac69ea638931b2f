//! `chatgate index` as users run it, and the `retrieval` component it preloads, served
//! by the gateway with the shipped `spin.toml` (only `[component.retrieval]`'s `source`
//! is pointed at the component a test built).
//!
//! Each test works in its own folder, `target/index-test/<test>/`, and runs the binary
//! there as `chatgate index docs --out index ...`, so every document's `source` is
//! `docs/<path>`, as a user indexing `docs` from their project folder would see it.
//!
//! Needs the `chatgate` binary (`chatgate_binary()`), `target/wasm32-wasip2/release/retrieval.wasm` and,
//! for the shipped index of `data/`, `target/chatgate-index/retrieval.wasm` (`make build`).

use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::{Gateway, chatgate_binary, configured_retrieval_manifest, repo_root, wasm};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const NOTHING_RELEVANT: &str =
    "I could not find anything relevant to your question in the documents.";
/// The line of `spin.toml` that serves the component `make index` preloads with `data/`.
const SHIPPED_RETRIEVAL_SOURCE: &str = r#"source = "target/chatgate-index/retrieval.wasm""#;

/// A fresh project folder, `target/index-test/<name>`, with the documents in `docs/`.
struct Project {
    root: PathBuf,
}

/// What one run of `chatgate index` did.
struct Run {
    success: bool,
    stderr: String,
}

impl Project {
    fn new(name: &str) -> Project {
        let root = repo_root().join("target/index-test").join(name);
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("docs")).unwrap();
        Project { root }
    }

    /// Writes `docs/<path>`.
    fn write(&self, path: &str, contents: impl AsRef<[u8]>) {
        let path = self.root.join("docs").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }

    fn remove(&self, path: &str) {
        std::fs::remove_file(self.root.join("docs").join(path)).unwrap();
    }

    /// `chatgate index docs --out index <args>`, run in the project folder.
    fn index(&self, args: &[&str]) -> Run {
        self.index_folder("docs", args)
    }

    /// `chatgate index <folder> --out index <args>`, run in the project folder.
    fn index_folder(&self, folder: &str, args: &[&str]) -> Run {
        let output = Command::new(chatgate_binary())
            .current_dir(&self.root)
            .args(["index", folder, "--out", "index"])
            .args(args)
            .output()
            .unwrap();
        Run {
            success: output.status.success(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Indexes `docs` and preloads the built `retrieval` component with it.
    fn index_and_preload(&self) -> Run {
        let component = wasm("retrieval").display().to_string();
        let run = self.index(&["--component", &component]);
        assert!(run.success, "{}", run.stderr);
        run
    }

    fn artifact(&self) -> PathBuf {
        self.root.join("index/chatgate.idx")
    }

    fn preloaded_component(&self) -> PathBuf {
        self.root.join("index/retrieval.wasm")
    }
}

/// The shipped manifest with the configured retriever line, and `component` serving
/// as `retrieval`.
fn manifest_serving(component: &Path) -> String {
    let manifest = configured_retrieval_manifest();
    assert_eq!(manifest.matches(SHIPPED_RETRIEVAL_SOURCE).count(), 1);
    manifest.replace(
        SHIPPED_RETRIEVAL_SOURCE,
        &format!("source = \"{}\"", component.display()),
    )
}

async fn gateway_serving(component: &Path, variables: &[(&str, &str)]) -> Gateway {
    Gateway::start(&manifest_serving(component), variables)
        .await
        .unwrap()
}

/// Asks `question`, with `chatgate` as the request's `chatgate` field when given.
async fn ask(gateway: &Gateway, question: &str, chatgate: Option<Value>) -> Reply {
    let mut body = json!({"messages": [{"role": "user", "content": question}]});
    if let Some(options) = chatgate {
        body["chatgate"] = options;
    }
    post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], &body).await
}

fn citations(reply: &Reply) -> Vec<Value> {
    reply.json()["choices"][0]["message"]["context"]["citations"]
        .as_array()
        .unwrap_or_else(|| panic!("no citations in {}", reply.text()))
        .clone()
}

/// The distinct files the answer cites, in citation order.
fn cited_files(reply: &Reply) -> Vec<String> {
    let mut files: Vec<String> = Vec::new();
    for citation in citations(reply) {
        let file = citation["filepath"]
            .as_str()
            .unwrap_or_else(|| panic!("a citation without filepath: {citation}"))
            .to_string();
        if !files.contains(&file) {
            files.push(file);
        }
    }
    files
}

/// A 200 answer grounded on sources (not the "nothing relevant" one).
fn assert_grounded(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("x-chatgate-grounding"),
        None,
        "{}",
        reply.text()
    );
    assert!(!citations(reply).is_empty(), "{}", reply.text());
}

fn assert_nothing_relevant(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.header("x-chatgate-grounding"),
        Some("nothing-relevant")
    );
    let body = reply.json();
    assert_eq!(body["choices"][0]["message"]["content"], NOTHING_RELEVANT);
    assert_eq!(
        body["choices"][0]["message"]["context"]["citations"],
        json!([])
    );
}

/// An OpenAI-style JSON error with `status` and `code`; its body.
fn assert_error(reply: &Reply, status: u16, code: &str) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.header("content-type"), Some("application/json"));
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(body["error"].get("param").is_some(), "{body}");
    body
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// Markdown with front matter and headings, text, HTML, and every kind of file that
/// cannot be indexed.
fn mixed_folder(project: &Project) {
    project.write(
        "guides/deploy.md",
        "---\ntitle: Deploying the gateway\nteam: platform\n---\n\n## Rollout\n\nCanary releases shift traffic gradually.\n\n## Rollback\n\nA failed canary is rolled back automatically.\n",
    );
    project.write(
        "notes.txt",
        "Meeting notes\n\nThe quarterly review moved to Thursday.\n",
    );
    project.write(
        "site/faq.html",
        "<html><head><title>Frequently asked questions</title>\
         <style>.scrollbarvanish { color: red }</style>\
         <script>window.trackingbeacon = true;</script></head>\
         <body><h1>Frequently asked questions</h1><p>Passwords expire every ninety days.</p>\
         <script>console.log('analyticsonly')</script></body></html>",
    );
    project.write(
        ".draft.md",
        "# Draft\n\nUnpublished embargoed announcement.\n",
    );
    project.write("papers/whitepaper.pdf", b"%PDF-1.7 binary");
    project.write("legacy/latin1.md", b"# Caf\xe9 menu\n\nCr\xeapes.\n");
    project.write("empty.md", "");
}

#[test]
fn bad_files_are_reported_by_path_with_their_reason_and_skipped() {
    let project = Project::new("bad-files");
    mixed_folder(&project);

    let run = project.index(&[]);
    assert!(run.success, "{}", run.stderr);
    let stderr = &run.stderr;
    for line in [
        "skipped empty.md: no text to index (the file is empty or holds only markup, headings or front matter)",
        "skipped legacy/latin1.md: not UTF-8 text: invalid byte sequence at byte offset 5",
        "skipped papers/whitepaper.pdf: unsupported file type `.pdf`",
    ] {
        assert!(
            stderr.lines().any(|l| l == line),
            "no line {line:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr
            .contains("indexed 3 documents (0 unchanged, 3 new or changed, 0 removed, 3 skipped)"),
        "{stderr}"
    );
    // Hidden files are not documents: left out, and not reported as skipped either.
    assert!(!stderr.contains(".draft.md"), "{stderr}");

    let artifact = std::fs::read(project.artifact()).unwrap();
    for indexed in [
        "Canary releases shift traffic gradually.",
        "The quarterly review moved to Thursday.",
        "Passwords expire every ninety days.",
    ] {
        assert!(
            contains(&artifact, indexed),
            "{indexed:?} is not in the index"
        );
    }
    for left_out in [
        "scrollbarvanish",
        "trackingbeacon",
        "analyticsonly",
        "embargoed",
    ] {
        assert!(!contains(&artifact, left_out), "{left_out:?} was indexed");
    }
}

#[test]
fn strict_indexing_fails_after_reporting_every_skipped_file() {
    let project = Project::new("strict");
    mixed_folder(&project);

    let run = project.index(&["--strict"]);
    assert!(!run.success, "{}", run.stderr);
    let stderr = &run.stderr;
    for path in ["empty.md", "legacy/latin1.md", "papers/whitepaper.pdf"] {
        assert!(stderr.contains(&format!("skipped {path}: ")), "{stderr}");
    }
    assert!(stderr.contains("indexed 3 documents ("), "{stderr}");
    assert!(
        stderr.contains("error: 3 files were skipped (--strict): nothing was written"),
        "{stderr}"
    );
    assert!(!project.root.join("index").join("chatgate.idx").exists());

    // A clean folder passes under --strict.
    let clean = Project::new("strict-clean");
    clean.write("only.md", "# Only\n\nOne clean document.\n");
    let run = clean.index(&["--strict"]);
    assert!(run.success, "{}", run.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn reindexing_reuses_unchanged_documents_and_searches_see_every_change() {
    let project = Project::new("incremental");
    project.write(
        "lighthouse.md",
        "# Lighthouses\n\nThe keeper trims the lamp wick every evening.\n",
    );
    project.write(
        "bees.md",
        "# Bees\n\nHoneybees dance to show nectar sources.\n",
    );
    project.write(
        "glaciers.md",
        "# Glaciers\n\nGlaciers carve fjords over millennia.\n",
    );

    let first = project.index(&[]);
    assert!(first.success, "{}", first.stderr);
    assert!(
        first
            .stderr
            .contains("indexed 3 documents (0 unchanged, 3 new or changed, 0 removed, 0 skipped)"),
        "{}",
        first.stderr
    );

    let again = project.index(&[]);
    assert!(again.success, "{}", again.stderr);
    assert!(
        again
            .stderr
            .contains("indexed 3 documents (3 unchanged, 0 new or changed, 0 removed, 0 skipped)"),
        "{}",
        again.stderr
    );
    assert!(
        !again.stderr.contains("rebuilt every document"),
        "{}",
        again.stderr
    );

    project.write(
        "bees.md",
        "# Bees\n\nBumblebees nest underground in abandoned burrows.\n",
    );
    project.write(
        "volcanoes.md",
        "# Volcanoes\n\nBasalt lava cools into hexagonal columns.\n",
    );
    project.remove("glaciers.md");
    let changed = project.index_and_preload();
    assert!(
        changed
            .stderr
            .contains("indexed 3 documents (1 unchanged, 2 new or changed, 1 removed, 0 skipped)"),
        "{}",
        changed.stderr
    );

    let gateway = gateway_serving(&project.preloaded_component(), &[]).await;
    let added = ask(&gateway, "Basalt columns?", None).await;
    assert_grounded(&added);
    assert_eq!(cited_files(&added), ["docs/volcanoes.md"]);

    let edited = ask(&gateway, "Bumblebees burrows?", None).await;
    assert_grounded(&edited);
    assert_eq!(cited_files(&edited), ["docs/bees.md"]);
    assert!(
        citations(&edited)[0]["content"]
            .as_str()
            .unwrap()
            .contains("Bumblebees nest underground"),
        "{}",
        edited.text()
    );

    assert_nothing_relevant(&ask(&gateway, "Glaciers fjords?", None).await);
    assert_nothing_relevant(&ask(&gateway, "Honeybees nectar?", None).await);
    gateway.stop().await;

    let rechunked = project.index(&["--max-words", "50"]);
    assert!(rechunked.success, "{}", rechunked.stderr);
    assert!(
        rechunked
            .stderr
            .contains("rebuilt every document: the chunking changed"),
        "{}",
        rechunked.stderr
    );
    assert!(
        rechunked
            .stderr
            .contains("indexed 3 documents (0 unchanged, 3 new or changed, 0 removed, 0 skipped)"),
        "{}",
        rechunked.stderr
    );
}

#[test]
fn an_unusable_artifact_is_rebuilt_and_says_why() {
    let project = Project::new("versioned");
    project.write(
        "alpha.md",
        "# Alpha\n\nAlpha particles are helium nuclei.\n",
    );
    project.write("beta.md", "# Beta\n\nBeta decay emits an electron.\n");
    let first = project.index(&[]);
    assert!(first.success, "{}", first.stderr);
    let built = std::fs::read(project.artifact()).unwrap();

    // Bytes 8..12 hold the format version, right after the magic bytes.
    let mut future_version = built.clone();
    future_version[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    std::fs::write(project.artifact(), &future_version).unwrap();
    let run = project.index(&[]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "rebuilt every document: the previous index is unusable: index format version {} is not supported",
            u32::MAX
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("indexed 2 documents (0 unchanged, 2 new or changed, 0 removed, 0 skipped)"),
        "{}",
        run.stderr
    );
    let rebuilt = std::fs::read(project.artifact()).unwrap();
    assert_eq!(
        rebuilt[8..12],
        built[8..12],
        "the version is this build's again"
    );

    // The rebuilt artifact is usable: the next run reuses every document.
    let run = project.index(&[]);
    assert!(
        run.stderr
            .contains("indexed 2 documents (2 unchanged, 0 new or changed, 0 removed, 0 skipped)"),
        "{}",
        run.stderr
    );

    std::fs::write(project.artifact(), b"not an index at all").unwrap();
    let run = project.index(&[]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "rebuilt every document: the previous index is unusable: not a chatgate index"
        ),
        "{}",
        run.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_preloaded_component_grounds_answers_on_the_folder_as_given() {
    let project = Project::new("preloaded");
    std::fs::create_dir_all(project.root.join("handbook/ops")).unwrap();
    std::fs::write(
        project.root.join("handbook/ops/restarts.md"),
        "---\ntitle: On-call runbook\n---\n\n## Restarting the ingest worker\n\nDrain the ingest worker queue before restarting it.\n",
    )
    .unwrap();
    std::fs::write(
        project.root.join("handbook/holidays.txt"),
        "Holidays\n\nStaff accrue holiday allowance monthly.\n",
    )
    .unwrap();
    // An artifact left behind that cannot be opened does not stop the preload: it is rebuilt.
    std::fs::create_dir_all(project.root.join("index")).unwrap();
    std::fs::write(project.artifact(), b"garbage").unwrap();

    let component = wasm("retrieval").display().to_string();
    // The folder as a user may type it: its `source` prefix drops `./` and the trailing `/`.
    let run = project.index_folder("./handbook/", &["--component", &component]);
    assert!(run.success, "{}", run.stderr);
    assert!(
        run.stderr.contains("the previous index is unusable"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("wrote index/retrieval.wasm ("),
        "{}",
        run.stderr
    );

    let gateway = gateway_serving(&project.preloaded_component(), &[]).await;
    let reply = ask(&gateway, "How do I restart the ingest worker?", None).await;
    assert_grounded(&reply);
    let first = &citations(&reply)[0];
    assert_eq!(first["filepath"], "handbook/ops/restarts.md", "{first}");
    assert_eq!(
        first["title"],
        "On-call runbook > Restarting the ingest worker"
    );
    assert_eq!(
        first["content"],
        "Drain the ingest worker queue before restarting it."
    );
    let answer = reply.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(answer.contains("Drain the ingest worker queue"), "{answer}");
    assert!(answer.contains("[doc1]"), "{answer}");

    let reply = ask(&gateway, "How is holiday allowance accrued?", None).await;
    assert_grounded(&reply);
    assert_eq!(cited_files(&reply)[0], "handbook/holidays.txt");
    gateway.stop().await;
}

/// Shares only "which" and "cache" with `data/`, in passing: its best passage there
/// scores about 5 (BM25), where [`STRONG_QUESTION`]'s scores about 15.
const WEAK_QUESTION: &str = "Which cache?";
const STRONG_QUESTION: &str = "What does the web application firewall block?";
/// Between the two best scores above, with a wide margin either side.
const MIN_SCORE_BETWEEN: &str = "10";

#[tokio::test(flavor = "multi_thread")]
async fn a_minimum_score_turns_weak_matches_into_nothing_relevant() {
    let shipped = Gateway::start(&configured_retrieval_manifest(), &[])
        .await
        .unwrap();
    assert_grounded(&ask(&shipped, WEAK_QUESTION, None).await);
    shipped.stop().await;

    let floored = Gateway::start(
        &configured_retrieval_manifest(),
        &[("retrieval_min_score", MIN_SCORE_BETWEEN)],
    )
    .await
    .unwrap();
    assert_nothing_relevant(&ask(&floored, WEAK_QUESTION, None).await);
    let strong = ask(&floored, STRONG_QUESTION, None).await;
    assert_grounded(&strong);
    assert_eq!(cited_files(&strong)[0], "data/application-gateway-waf.md");
    floored.stop().await;

    let above_everything = Gateway::start(
        &configured_retrieval_manifest(),
        &[("retrieval_min_score", "1000")],
    )
    .await
    .unwrap();
    assert_nothing_relevant(&ask(&above_everything, STRONG_QUESTION, None).await);
    above_everything.stop().await;
}

/// A misconfigured retriever answers `index-unavailable` with the variable at fault;
/// `chat` answers clients with its generic 503 and never forwards retrieval's text.
#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_minimum_score_is_a_503_that_reveals_nothing() {
    const SECRET: &str = "sk-upstream-secret-7f3a";
    for invalid in ["-1", "lots"] {
        let gateway = Gateway::start(
            &configured_retrieval_manifest(),
            &[("retrieval_min_score", invalid), ("openai_api_key", SECRET)],
        )
        .await
        .unwrap();
        let reply = ask(&gateway, STRONG_QUESTION, None).await;
        let body = assert_error(&reply, 503, "retrieval_unavailable");
        assert_eq!(body["error"]["type"], "server_error", "{body}");
        let text = reply.text();
        assert!(!text.contains(SECRET), "{text}");
        assert!(!text.contains("chatgate-dev-key"), "{text}");
        gateway.stop().await;
    }
}

/// The component as cargo builds it, never passed through `chatgate index`, holds no
/// index: it answers `index-unavailable` (telling to run `chatgate index`), which
/// `chat` turns into its generic 503.
#[tokio::test(flavor = "multi_thread")]
async fn a_retrieval_component_never_preloaded_answers_503() {
    let gateway = gateway_serving(&wasm("retrieval"), &[]).await;
    let reply = ask(&gateway, STRONG_QUESTION, None).await;
    let body = assert_error(&reply, 503, "retrieval_unavailable");
    assert_eq!(body["error"]["type"], "server_error", "{body}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn front_matter_filters_restrict_the_sources_and_unknown_fields_are_named() {
    let project = Project::new("filters");
    project.write(
        "payments.md",
        "---\nteam: payments\n---\n\n# Refunds\n\nRefunds reach the original card within five days.\n",
    );
    project.write(
        "support.md",
        "---\nteam: support\n---\n\n# Refunds\n\nSupport agents approve refunds above fifty euros.\n",
    );
    project.index_and_preload();
    let gateway = gateway_serving(&project.preloaded_component(), &[]).await;
    let question = "How are refunds handled?";

    let unfiltered = ask(&gateway, question, None).await;
    assert_grounded(&unfiltered);
    let mut files = cited_files(&unfiltered);
    files.sort();
    assert_eq!(files, ["docs/payments.md", "docs/support.md"]);

    let filtered = ask(
        &gateway,
        question,
        Some(json!({"filters": [{"field": "team", "value": "payments"}]})),
    )
    .await;
    assert_grounded(&filtered);
    assert_eq!(cited_files(&filtered), ["docs/payments.md"]);

    let no_such_team = ask(
        &gateway,
        question,
        Some(json!({"filters": [{"field": "team", "value": "legal"}]})),
    )
    .await;
    assert_nothing_relevant(&no_such_team);

    let unknown = ask(
        &gateway,
        question,
        Some(json!({"filters": [{"field": "colour", "value": "red"}]})),
    )
    .await;
    let body = assert_error(&unknown, 400, "invalid_filter");
    assert_eq!(body["error"]["type"], "invalid_request_error", "{body}");
    assert_eq!(body["error"]["param"], "chatgate.filters", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`colour`"), "{message}");
    // It also says which fields the index does support.
    assert!(message.contains("`team`"), "{message}");
    gateway.stop().await;
}
