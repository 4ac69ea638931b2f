//! Hybrid retrieval end to end: the real `chatgate index` binary embeds a small corpus
//! with `chatgate_tests::embeddings` (a local double of the OpenAI / Azure OpenAI
//! embeddings API whose vectors put synonyms together), preloads `retrieval` with the
//! index, and the gateway, with the shipped manifest serving that component, embeds
//! each question with the double and fuses BM25 with nearest neighbours.
//!
//! Needs the `chatgate` binary (`chatgate_binary()`) and `target/wasm32-wasip2/release/retrieval.wasm`
//! (`make build`).

use chatgate_tests::embeddings::{EmbeddingsDouble, Fault};
use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::{
    CONFIGURED_RETRIEVER_LINE, Gateway, chat_files_mount, chatgate_binary,
    configured_retrieval_manifest, replace_each_once, repo_root, wasm,
};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::Command;

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const EMBEDDINGS_KEY: &str = "sk-embed-test-5b2c91";
const MODEL: &str = "text-embedding-double";
const DIMENSIONS: usize = 256;
/// Cosine similarity under which a chunk is not a vector match: the double gives
/// unrelated texts (hash collisions aside) nothing, related ones well over this.
const MIN_SIMILARITY: &str = "0.3";

/// The corpus: one chunk per document, sorted by path as the index stores them.
const DOCS: &[(&str, &str)] = &[
    (
        "bills.md",
        "# Paying invoices\n\nInvoices from suppliers are paid within thirty days of receipt.\n",
    ),
    (
        "garage.md",
        "# Car care\n\nChange the engine oil of your car every 10,000 kilometres or once a year.\n",
    ),
    (
        "garden.md",
        "# Watering tomatoes\n\nWater tomato plants deeply twice a week in summer.\n",
    ),
    (
        "kitchen.md",
        "# Baking bread\n\nKnead the dough for ten minutes, then let it rise for an hour before baking.\n",
    ),
];

/// Shares no word with the corpus that BM25 would match (after stemming and stop
/// words), but means what `garage.md` says: the double maps "replace", "lubricant" and
/// "automobile" onto "change", "oil" and "car".
const SYNONYM_QUESTION: &str = "How often should I replace the lubricant in my automobile?";
/// Matches `kitchen.md` by its words.
const WORD_QUESTION: &str = "How long should bread dough rise?";

/// A fresh `docs` folder with `docs` in it, and the output folder beside it, under
/// `target/hybrid-test/<name>`.
fn corpus(name: &str, docs: &[(&str, &str)]) -> (PathBuf, PathBuf) {
    let root = repo_root().join("target/hybrid-test").join(name);
    let _ = std::fs::remove_dir_all(&root);
    let folder = root.join("docs");
    std::fs::create_dir_all(&folder).unwrap();
    for (path, text) in docs {
        std::fs::write(folder.join(path), text).unwrap();
    }
    (folder, root.join("index"))
}

/// What one run of the binary did.
struct Run {
    success: bool,
    /// stdout and stderr together.
    output: String,
}

/// Runs `chatgate index <folder> --out <out> --source-prefix docs/ <args>` with
/// `CHATGATE_EMBEDDINGS_API_KEY` set to `api_key` (and unset without one).
async fn index(folder: &Path, out: &Path, args: &[&str], api_key: Option<&str>) -> Run {
    let mut command = Command::new(chatgate_binary());
    command
        .arg("index")
        .arg(folder)
        .arg("--out")
        .arg(out)
        .args(["--source-prefix", "docs/"])
        .args(args)
        .env_remove("CHATGATE_EMBEDDINGS_API_KEY");
    if let Some(key) = api_key {
        command.env("CHATGATE_EMBEDDINGS_API_KEY", key);
    }
    // The double serves on this runtime's other threads while the binary runs.
    let output = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    Run {
        success: output.status.success(),
        output: format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

/// The flags that embed with `double` (OpenAI flavor) and preload the component.
fn embedding_args(double: &EmbeddingsDouble) -> Vec<String> {
    let component = wasm("retrieval").display().to_string();
    vec![
        "--embeddings-origin".into(),
        double.origin.clone(),
        "--embeddings-model".into(),
        MODEL.into(),
        "--component".into(),
        component,
    ]
}

async fn index_embedded(name: &str, double: &EmbeddingsDouble) -> PathBuf {
    let (folder, out) = corpus(name, DOCS);
    let args = embedding_args(double);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let run = index(&folder, &out, &args, Some(EMBEDDINGS_KEY)).await;
    assert!(run.success, "{}", run.output);
    out.join("retrieval.wasm")
}

/// The shipped manifest serving `component` as `retrieval`, and nothing else changed.
fn manifest(component: &Path) -> String {
    let shipped = configured_retrieval_manifest();
    let mut section = "";
    let mut sources_replaced = 0;
    let edited: Vec<String> = shipped
        .lines()
        .map(|line| {
            if line.starts_with('[') {
                section = line.trim();
            }
            if section == "[component.retrieval]" && line.starts_with("source = ") {
                sources_replaced += 1;
                format!("source = \"{}\"", component.display())
            } else {
                line.to_string()
            }
        })
        .collect();
    assert_eq!(
        sources_replaced, 1,
        "spin.toml has [component.retrieval] source"
    );
    edited.join("\n")
}

/// A gateway whose retriever embeds questions with `double` (OpenAI flavor) unless
/// `variables` say otherwise.
async fn hybrid_gateway(
    component: &Path,
    double: &EmbeddingsDouble,
    variables: &[(&str, &str)],
) -> Gateway {
    let mut all = vec![
        ("retrieval_embeddings_origin", double.origin.as_str()),
        ("retrieval_embeddings_api_key", EMBEDDINGS_KEY),
        ("retrieval_min_similarity", MIN_SIMILARITY),
    ];
    all.retain(|(name, _)| !variables.iter().any(|(n, _)| n == name));
    all.extend_from_slice(variables);
    Gateway::start(&manifest(component), &all).await.unwrap()
}

async fn ask(gateway: &Gateway, text: &str) -> Reply {
    let body = json!({"messages": [{"role": "user", "content": text}]});
    post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], &body).await
}

/// The cited paths, in order; none when the answer cites nothing.
fn cited_paths(reply: &Reply) -> Vec<String> {
    let body: Value = reply.json();
    body["choices"][0]["message"]["context"]["citations"]
        .as_array()
        .map(|cited| {
            cited
                .iter()
                .filter_map(|c| c["filepath"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn hybrid_search_finds_by_meaning_what_bm25_cannot_find_by_words() {
    let double = EmbeddingsDouble::start(DIMENSIONS, Some(EMBEDDINGS_KEY)).await;
    let component = index_embedded("meaning", &double).await;

    let hybrid = hybrid_gateway(&component, &double, &[]).await;
    double.clear();
    let reply = ask(&hybrid, SYNONYM_QUESTION).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        cited_paths(&reply),
        vec!["docs/garage.md"],
        "{}",
        reply.text()
    );

    // The question was embedded once, with the index's model and the runtime key.
    let requests = double.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].path_and_query, "/v1/embeddings");
    assert_eq!(requests[0].inputs, vec![SYNONYM_QUESTION]);
    assert_eq!(requests[0].model.as_deref(), Some(MODEL));
    assert_eq!(
        requests[0].header("authorization"),
        Some(format!("Bearer {EMBEDDINGS_KEY}").as_str())
    );
    hybrid.stop().await;

    // The same component without an embeddings origin: BM25 only, no request, and the
    // words of the question match nothing.
    let bm25 = Gateway::start(&manifest(&component), &[]).await.unwrap();
    double.clear();
    let reply = ask(&bm25, SYNONYM_QUESTION).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        cited_paths(&reply),
        Vec::<String>::new(),
        "{}",
        reply.text()
    );
    assert_eq!(double.requests().len(), 0);
    // Words still find their passage there.
    let reply = ask(&bm25, WORD_QUESTION).await;
    assert_eq!(
        cited_paths(&reply),
        vec!["docs/kitchen.md"],
        "{}",
        reply.text()
    );
    bm25.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn azure_openai_embeds_the_index_and_the_questions_by_deployment() {
    const DEPLOYMENT: &str = "embeddings-prod";
    let double = EmbeddingsDouble::start(DIMENSIONS, Some(EMBEDDINGS_KEY)).await;
    let (folder, out) = corpus("azure", DOCS);
    let component = wasm("retrieval").display().to_string();
    let run = index(
        &folder,
        &out,
        &[
            "--embeddings-origin",
            &double.origin,
            "--embeddings-flavor",
            "azure",
            "--embeddings-model",
            DEPLOYMENT,
            "--component",
            &component,
        ],
        Some(EMBEDDINGS_KEY),
    )
    .await;
    assert!(run.success, "{}", run.output);
    let indexed = double.requests();
    assert_eq!(indexed.len(), 1, "four chunks fit one batch");
    assert_eq!(
        indexed[0].path_and_query,
        format!("/openai/deployments/{DEPLOYMENT}/embeddings?api-version=2024-10-21")
    );
    assert_eq!(indexed[0].header("api-key"), Some(EMBEDDINGS_KEY));
    assert_eq!(indexed[0].header("authorization"), None);

    let gateway = hybrid_gateway(
        &out.join("retrieval.wasm"),
        &double,
        &[("retrieval_embeddings_api_flavor", "azure")],
    )
    .await;
    double.clear();
    let reply = ask(&gateway, SYNONYM_QUESTION).await;
    assert_eq!(
        cited_paths(&reply),
        vec!["docs/garage.md"],
        "{}",
        reply.text()
    );
    let asked = double.requests();
    assert_eq!(asked.len(), 1);
    assert_eq!(
        asked[0].path_and_query,
        format!("/openai/deployments/{DEPLOYMENT}/embeddings?api-version=2024-10-21"),
        "the deployment recorded in the index is the default"
    );
    assert_eq!(asked[0].header("api-key"), Some(EMBEDDINGS_KEY));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_embeddings_endpoint_leaves_bm25_answering() {
    let double = EmbeddingsDouble::start(DIMENSIONS, Some(EMBEDDINGS_KEY)).await;
    let component = index_embedded("failing", &double).await;
    let gateway = hybrid_gateway(
        &component,
        &double,
        &[("retrieval_embeddings_timeout_ms", "300")],
    )
    .await;
    for fault in [
        Fault::Status(500),
        Fault::Status(401),
        Fault::Stall,
        Fault::Dimensions(DIMENSIONS / 2),
    ] {
        double.clear();
        double.fail_always(fault.clone());
        let reply = ask(&gateway, WORD_QUESTION).await;
        assert_eq!(reply.status, 200, "{fault:?}: {}", reply.text());
        assert_eq!(
            cited_paths(&reply),
            vec!["docs/kitchen.md"],
            "{fault:?}: {}",
            reply.text()
        );
        let asked = double.requests();
        assert_eq!(asked.len(), 1, "{fault:?}: tried once, not retried");
        assert_eq!(asked[0].inputs, vec![WORD_QUESTION]);
    }

    // An unreachable endpoint too.
    let gone = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let unreachable = hybrid_gateway(
        &component,
        &double,
        &[("retrieval_embeddings_origin", gone.as_str())],
    )
    .await;
    let reply = ask(&unreachable, WORD_QUESTION).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(cited_paths(&reply), vec!["docs/kitchen.md"]);
    unreachable.stop().await;
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reindexing_embeds_only_the_chunks_of_changed_documents() {
    let double = EmbeddingsDouble::start(DIMENSIONS, Some(EMBEDDINGS_KEY)).await;
    let (folder, out) = corpus("incremental", DOCS);
    let origin = double.origin.clone();
    let args = [
        "--embeddings-origin",
        origin.as_str(),
        "--embeddings-model",
        MODEL,
    ];

    let first = index(&folder, &out, &args, Some(EMBEDDINGS_KEY)).await;
    assert!(first.success, "{}", first.output);
    assert_eq!(double.inputs().len(), DOCS.len(), "every chunk is embedded");
    assert!(
        first.output.contains(&format!(
            "embeddings: 4 chunks embedded, 0 reused (`{MODEL}`, {DIMENSIONS} dimensions)"
        )),
        "{}",
        first.output
    );

    // The first document in index order changes: if reused vectors were misplaced, the
    // ones after it would be.
    double.clear();
    std::fs::write(
        folder.join("bills.md"),
        "# Paying invoices\n\nInvoices from suppliers are paid within fourteen days.\n",
    )
    .unwrap();
    let component = wasm("retrieval").display().to_string();
    let mut with_component = args.to_vec();
    with_component.extend(["--component", component.as_str()]);
    let second = index(&folder, &out, &with_component, Some(EMBEDDINGS_KEY)).await;
    assert!(second.success, "{}", second.output);
    assert_eq!(
        double.inputs(),
        vec!["Paying invoices\n\nInvoices from suppliers are paid within fourteen days."],
        "only the changed document's chunk, heading path first"
    );
    assert!(
        second.output.contains("3 unchanged, 1 new or changed"),
        "{}",
        second.output
    );
    assert!(
        second
            .output
            .contains("embeddings: 1 chunks embedded, 3 reused"),
        "{}",
        second.output
    );

    // The reused vectors still find their passages.
    let gateway = hybrid_gateway(&out.join("retrieval.wasm"), &double, &[]).await;
    let reply = ask(&gateway, SYNONYM_QUESTION).await;
    assert_eq!(
        cited_paths(&reply),
        vec!["docs/garage.md"],
        "{}",
        reply.text()
    );
    gateway.stop().await;

    // Nothing changed: the indexer sends nothing. The gateway above also embedded the
    // question through this double, and once, in a loaded full run, one request arrived
    // after `clear` (what it held was not recorded): only inputs other than the question,
    // which can only come from the indexer, count.
    double.clear();
    let third = index(&folder, &out, &args, Some(EMBEDDINGS_KEY)).await;
    assert!(third.success, "{}", third.output);
    let sent: Vec<String> = double
        .inputs()
        .into_iter()
        .filter(|input| input != SYNONYM_QUESTION)
        .collect();
    assert!(sent.is_empty(), "the indexer sent {sent:?}");
    assert!(
        third
            .output
            .contains("embeddings: 0 chunks embedded, 4 reused"),
        "{}",
        third.output
    );

    // Another model: every chunk is embedded again, though no document is re-read.
    double.clear();
    let other = [
        "--embeddings-origin",
        origin.as_str(),
        "--embeddings-model",
        "text-embedding-other",
    ];
    let fourth = index(&folder, &out, &other, Some(EMBEDDINGS_KEY)).await;
    assert!(fourth.success, "{}", fourth.output);
    assert_eq!(double.inputs().len(), DOCS.len());
    assert!(
        fourth.output.contains("4 unchanged, 0 new or changed"),
        "{}",
        fourth.output
    );
    assert!(
        fourth.output.contains(&format!(
            "re-embedded every chunk: the embedding model changed from `{MODEL}` to `text-embedding-other`"
        )),
        "{}",
        fourth.output
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_key_comes_from_the_environment_and_never_shows() {
    let double = EmbeddingsDouble::start(DIMENSIONS, Some(EMBEDDINGS_KEY)).await;
    let (folder, out) = corpus("key", DOCS);
    let origin = double.origin.clone();
    let args = [
        "--embeddings-origin",
        origin.as_str(),
        "--embeddings-model",
        MODEL,
    ];

    let run = index(&folder, &out, &args, Some(EMBEDDINGS_KEY)).await;
    assert!(run.success, "{}", run.output);
    let requests = double.requests();
    assert!(!requests.is_empty());
    for request in &requests {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {EMBEDDINGS_KEY}").as_str())
        );
    }
    assert!(!run.output.contains(EMBEDDINGS_KEY), "{}", run.output);

    // A wrong key: the double quotes it back in its refusal, the binary must not.
    double.clear();
    let (folder, out) = corpus("wrong-key", DOCS);
    let wrong = "sk-wrong-key-77aa01";
    let run = index(&folder, &out, &args, Some(wrong)).await;
    assert!(!run.success);
    assert!(run.output.contains("HTTP 401"), "{}", run.output);
    assert!(
        run.output.contains("CHATGATE_EMBEDDINGS_API_KEY"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains("Incorrect API key provided: [redacted]"),
        "{}",
        run.output
    );
    assert!(!run.output.contains(wrong), "{}", run.output);
    assert_eq!(double.requests().len(), 1, "a refused key is not retried");
    assert!(
        !out.join("chatgate.idx").exists(),
        "no index without its vectors"
    );

    // No key in the environment: none is sent, and the double refuses.
    double.clear();
    let run = index(&folder, &out, &args, None).await;
    assert!(!run.success);
    assert_eq!(double.requests()[0].header("authorization"), None);

    // There is no flag for it.
    let mut flagged = args.to_vec();
    flagged.extend(["--embeddings-api-key", EMBEDDINGS_KEY]);
    let run = index(&folder, &out, &flagged, None).await;
    assert!(!run.success);
    assert!(
        run.output.contains("--embeddings-api-key"),
        "{}",
        run.output
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batches_follow_the_flag_and_throttling_is_waited_out() {
    let double = EmbeddingsDouble::start(DIMENSIONS, None).await;
    let (folder, out) = corpus("batches", DOCS);
    double.script(vec![
        Fault::Throttle { retry_after_ms: 1 },
        Fault::Status(503),
    ]);
    let run = index(
        &folder,
        &out,
        &[
            "--embeddings-origin",
            &double.origin,
            "--embeddings-model",
            MODEL,
            "--embeddings-batch",
            "3",
        ],
        None,
    )
    .await;
    assert!(run.success, "{}", run.output);
    let sizes: Vec<usize> = double.requests().iter().map(|r| r.inputs.len()).collect();
    // The first batch of three is refused twice, then answered; the last chunk follows.
    assert_eq!(sizes, vec![3, 3, 3, 1]);
    assert!(
        run.output.contains("embeddings: 4 chunks embedded"),
        "{}",
        run.output
    );
}

#[test]
fn embedding_flags_need_an_origin_and_a_model() {
    let (folder, out) = corpus("flags", DOCS);
    let run = |args: &[&str]| {
        Command::new(chatgate_binary())
            .arg("index")
            .arg(&folder)
            .arg("--out")
            .arg(&out)
            .args(args)
            .output()
            .unwrap()
    };
    let without_model = run(&["--embeddings-origin", "http://127.0.0.1:9"]);
    assert!(!without_model.status.success());
    assert!(String::from_utf8_lossy(&without_model.stderr).contains("--embeddings-model"));
    let without_origin = run(&["--embeddings-model", MODEL]);
    assert!(!without_origin.status.success());
    assert!(String::from_utf8_lossy(&without_origin.stderr).contains("--embeddings-origin"));
}

/// Keyless query embeddings with Azure OpenAI, as on AKS: `retrieval` (preloaded with
/// its index at build time) exchanges the projected service-account token at Entra ID
/// (the double in `chatgate_tests::entra`) and sends the access token as
/// `Authorization: Bearer`. The token file is read through `files` at run time, after
/// the build-time initialisation that read the index, so this also shows that the
/// preloaded component finds the directories it is given at run time.
#[tokio::test(flavor = "multi_thread")]
async fn a_workload_identity_embeds_questions_without_a_key() {
    use chatgate_tests::entra::EntraDouble;
    const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    const CLIENT: &str = "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d";
    const SCOPE: &str = "https://cognitiveservices.azure.com/.default";
    const SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2hhdGdhdGU6Y2hhdGdhdGUifQ.c2lnbmF0dXJl";
    const KEYLESS_LINE: &str = r#""chatgate:retriever/retriever" = { component = "retrieval", inherit_configuration = ["variables", "allowed_outbound_hosts", "key_value_stores", "files"] }"#;

    // The index is embedded with a key; the deployment that serves it has none, so
    // questions go to a double that requires no key (and records what it was sent):
    // the vectors are the same function of the text.
    let indexer = EmbeddingsDouble::start(DIMENSIONS, Some(EMBEDDINGS_KEY)).await;
    let (folder, out) = corpus("keyless", DOCS);
    let component = wasm("retrieval").display().to_string();
    let run = index(
        &folder,
        &out,
        &[
            "--embeddings-origin",
            &indexer.origin,
            "--embeddings-flavor",
            "azure",
            "--embeddings-model",
            "embeddings-prod",
            "--component",
            &component,
        ],
        Some(EMBEDDINGS_KEY),
    )
    .await;
    assert!(run.success, "{}", run.output);
    let keyless = EmbeddingsDouble::start(DIMENSIONS, None).await;
    let entra = EntraDouble::start(TENANT, CLIENT).await;

    let tokens = repo_root().join("target/hybrid-test/keyless/tokens");
    std::fs::create_dir_all(&tokens).unwrap();
    std::fs::write(tokens.join("azure-identity-token"), SA_TOKEN).unwrap();
    let text = replace_each_once(
        &manifest(&out.join("retrieval.wasm")),
        &[
            // The dependency, not the same text in spin.toml's comment.
            (
                format!("\n{CONFIGURED_RETRIEVER_LINE}\n"),
                format!("\n{KEYLESS_LINE}\n"),
            ),
            chat_files_mount(&tokens, "/var/run/secrets/azure/tokens"),
        ],
    );
    let gateway = Gateway::start(
        &text,
        &[
            ("retrieval_embeddings_origin", keyless.origin.as_str()),
            ("retrieval_embeddings_api_flavor", "azure"),
            ("retrieval_min_similarity", MIN_SIMILARITY),
            ("retrieval_embeddings_auth", "workload-identity"),
            ("retrieval_embeddings_tenant_id", TENANT),
            ("retrieval_embeddings_client_id", CLIENT),
            ("retrieval_embeddings_authority_host", entra.origin.as_str()),
        ],
    )
    .await
    .unwrap();

    for _ in 0..2 {
        let reply = ask(&gateway, SYNONYM_QUESTION).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(
            cited_paths(&reply),
            vec!["docs/garage.md"],
            "found by meaning, so the question was embedded: {}",
            reply.text()
        );
    }
    let asked = keyless.requests();
    assert_eq!(asked.len(), 2, "{asked:?}");
    for request in &asked {
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {}", EntraDouble::token(SCOPE, 1)).as_str())
        );
        assert_eq!(request.header("api-key"), None);
    }
    // One exchange: the second question used the token cached in the key-value store.
    let exchanges = entra.exchanges();
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert_eq!(exchanges[0].path, format!("/{TENANT}/oauth2/v2.0/token"));
    assert_eq!(exchanges[0].form["client_assertion"], SA_TOKEN);
    assert_eq!(exchanges[0].form["scope"], SCOPE);
    assert_eq!(exchanges[0].form["client_id"], CLIENT);
    gateway.stop().await;
}
