//! Keyless calls to Azure OpenAI and Azure AI Search by workload identity federation, as
//! on AKS: `chat` mounts the directory of the projected service-account token (`files`),
//! `completion-openai` and `retrieval-azure-search` inherit it and exchange the token at
//! Entra ID's v2.0 token endpoint (the double in `chatgate_tests::entra`) for access
//! tokens, which the OpenAI and Azure AI Search doubles require as `Authorization: Bearer`.
//!
//! The manifest is the shipped one with both dependencies swapped and the mount added to
//! `chat`, as `infra/scripts/render-overlay` writes it for the Kubernetes Deployment.

use chatgate_tests::entra::{EntraDouble, Mode};
use chatgate_tests::http_client::{Reply, post_json};
use chatgate_tests::search::{self, Document, SearchIndex};
use chatgate_tests::upstream::{Answer, Recorded, Upstream, openai_answer};
use chatgate_tests::{
    Gateway, SHIPPED_COMPLETION_LINE, SHIPPED_RETRIEVER_LINE, chat_files_mount, project_manifest,
    replace_each_once,
};
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const DEV_KEY: (&str, &str) = ("authorization", "Bearer chatgate-dev-key");
const TENANT: &str = "72f988bf-86f1-41af-91ab-2d7cd011db47";
const CLIENT: &str = "6c1e0f2a-7d3b-4e5b-9d7c-5a2f1e0b9c8d";
const TOKENS: &str = "/var/run/secrets/azure/tokens";
const OPENAI_SCOPE: &str = "https://cognitiveservices.azure.com/.default";
const SEARCH_SCOPE: &str = "https://search.azure.com/.default";
const INDEX: &str = "fleet-handbook";
/// Two service-account tokens as the kubelet projects them (JWT-shaped; the double does
/// not verify signatures), the second after a rotation.
const FIRST_SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImszIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2hhdGdhdGU6Y2hhdGdhdGUiLCJuIjoxfQ.Zmlyc3Qtc2lnbmF0dXJl";
const ROTATED_SA_TOKEN: &str = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImszIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2hhdGdhdGU6Y2hhdGdhdGUiLCJuIjoyfQ.cm90YXRlZC1zaWduYXR1cmU";

const COMPLETION_LINE: &str = r#""chatgate:completion/completion" = { component = "completion-openai", inherit_configuration = ["variables", "allowed_outbound_hosts", "key_value_stores", "files"] }"#;
const RETRIEVER_LINE: &str = r#""chatgate:retriever/retriever" = { component = "retrieval-azure-search", inherit_configuration = ["variables", "allowed_outbound_hosts", "key_value_stores", "files"] }"#;

/// The directory the kubelet would project the token into, removed on drop.
struct TokenDir(PathBuf);

impl TokenDir {
    fn new(name: &str) -> TokenDir {
        let path = std::env::temp_dir().join(format!(
            "chatgate-workload-identity-{name}-{}",
            std::process::id()
        ));
        _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TokenDir(path)
    }

    /// Writes the token file whole, then renames it into place, so that no read sees
    /// half of it (the kubelet swaps a symlink for the same reason).
    fn project(&self, token: &str) {
        let staged = self.0.join(".azure-identity-token.new");
        std::fs::write(&staged, token).unwrap();
        std::fs::rename(&staged, self.file()).unwrap();
    }

    fn file(&self) -> PathBuf {
        self.0.join("azure-identity-token")
    }
}

impl Drop for TokenDir {
    fn drop(&mut self) {
        _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The shipped manifest with both Azure components swapped in, inheriting `files`, and
/// `chat` mounting `tokens` where AKS projects the token.
fn manifest(tokens: &Path) -> String {
    replace_each_once(
        &project_manifest(),
        &[
            (SHIPPED_COMPLETION_LINE.into(), COMPLETION_LINE.into()),
            (SHIPPED_RETRIEVER_LINE.into(), RETRIEVER_LINE.into()),
            chat_files_mount(tokens, TOKENS),
        ],
    )
}

fn fleet_index(bearer_tokens: Vec<String>) -> SearchIndex {
    SearchIndex {
        name: INDEX,
        // Never sent: the deployment has no key (local auth is disabled in Azure).
        api_key: "not-configured",
        bearer_tokens,
        documents: vec![Document {
            id: "pumps-1",
            title: "Bilge pumps",
            content: "The bilge pumps of the fleet are tested every Monday at dawn.",
            filepath: "fleet/pumps.md",
        }],
        vector_fields: Vec::new(),
    }
}

/// Azure OpenAI that accepts only the bearer tokens in `accepted`, answering anything
/// else as Azure does: 401 with its error object.
async fn azure_openai(accepted: Arc<Mutex<Vec<String>>>) -> Upstream {
    Upstream::start(move |request| {
        let bearer = authorization(request).and_then(|v| v.strip_prefix("Bearer "));
        if bearer.is_some_and(|token| accepted.lock().unwrap().iter().any(|t| t == token)) {
            openai_answer(request, "Every Monday at dawn.")
        } else {
            Answer::json(
                401,
                &json!({"error": {"code": "401", "message": "Unauthorized. Access token is missing, invalid, audience is incorrect (https://cognitiveservices.azure.com), or have expired."}}),
            )
        }
    })
    .await
}

async fn start_gateway(
    tokens: &TokenDir,
    entra: &EntraDouble,
    openai: &Upstream,
    search: &Upstream,
    extra: &[(&str, &str)],
) -> Gateway {
    let mut variables = vec![
        ("openai_api_flavor", "azure"),
        ("openai_origin", openai.origin.as_str()),
        ("openai_model", "gpt-4o-mini"),
        ("openai_auth", "workload-identity"),
        ("openai_tenant_id", TENANT),
        ("openai_client_id", CLIENT),
        ("openai_authority_host", entra.origin.as_str()),
        ("azure_search_origin", search.origin.as_str()),
        ("azure_search_index", INDEX),
        ("azure_search_auth", "workload-identity"),
        ("azure_search_tenant_id", TENANT),
        ("azure_search_client_id", CLIENT),
        ("azure_search_authority_host", entra.origin.as_str()),
    ];
    variables.extend_from_slice(extra);
    Gateway::start(&manifest(&tokens.0), &variables)
        .await
        .unwrap()
}

async fn ask(gateway: &Gateway, retrieval: bool) -> Reply {
    let body = json!({
        "messages": [{"role": "user", "content": "When are the bilge pumps tested?"}],
        "chatgate": {"retrieval": retrieval},
    });
    post_json(&gateway.url("/v1/chat/completions"), &[DEV_KEY], &body).await
}

fn authorization(request: &Recorded) -> Option<&str> {
    request
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
}

/// The bearer tokens `upstream` received, in order; and that no `api-key` came with them.
fn bearers(upstream: &Upstream) -> Vec<String> {
    upstream
        .recorded()
        .iter()
        .map(|request| {
            assert!(request.headers.get("api-key").is_none(), "{request:?}");
            authorization(request)
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

fn tokens(scope: &str, numbers: std::ops::RangeInclusive<u32>) -> Vec<String> {
    numbers.map(|n| EntraDouble::token(scope, n)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_projected_token_is_exchanged_once_per_resource_and_its_access_tokens_are_cached() {
    let dir = TokenDir::new("cached");
    dir.project(FIRST_SA_TOKEN);
    let entra = EntraDouble::start(TENANT, CLIENT).await;
    let accepted = Arc::new(Mutex::new(tokens(OPENAI_SCOPE, 1..=1)));
    let openai = azure_openai(accepted.clone()).await;
    let search = search::start(fleet_index(tokens(SEARCH_SCOPE, 1..=1))).await;
    let gateway = start_gateway(&dir, &entra, &openai, &search, &[]).await;

    for _ in 0..3 {
        let reply = ask(&gateway, true).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let cited = &reply.json()["choices"][0]["message"]["context"]["citations"];
        assert_eq!(cited[0]["filepath"], "fleet/pumps.md", "{cited}");
    }
    // One exchange per resource for three requests, each a client credentials grant
    // carrying the file's contents as the assertion.
    let exchanges = entra.exchanges();
    assert_eq!(exchanges.len(), 2, "{exchanges:?}");
    let scopes: BTreeSet<&str> = exchanges.iter().map(|e| e.form["scope"].as_str()).collect();
    assert_eq!(scopes, BTreeSet::from([OPENAI_SCOPE, SEARCH_SCOPE]));
    for exchange in &exchanges {
        assert_eq!(exchange.method, "POST");
        assert_eq!(exchange.path, format!("/{TENANT}/oauth2/v2.0/token"));
        assert_eq!(
            exchange.content_type.as_deref(),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(exchange.form["grant_type"], "client_credentials");
        assert_eq!(exchange.form["client_id"], CLIENT);
        assert_eq!(
            exchange.form["client_assertion_type"],
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        );
        assert_eq!(exchange.form["client_assertion"], FIRST_SA_TOKEN);
    }
    assert_eq!(
        bearers(&search),
        vec![EntraDouble::token(SEARCH_SCOPE, 1); 3]
    );
    assert_eq!(
        bearers(&openai),
        vec![EntraDouble::token(OPENAI_SCOPE, 1); 3]
    );

    // The kubelet rotates the file; Azure OpenAI stops accepting the first token (as
    // after a revocation). The refused token is dropped, and the one new exchange reads
    // the rotated file; the request still succeeds.
    dir.project(ROTATED_SA_TOKEN);
    *accepted.lock().unwrap() = tokens(OPENAI_SCOPE, 2..=2);
    let reply = ask(&gateway, false).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let exchanges = entra.exchanges();
    assert_eq!(exchanges.len(), 3, "{exchanges:?}");
    assert_eq!(exchanges[2].form["scope"], OPENAI_SCOPE);
    assert_eq!(exchanges[2].form["client_assertion"], ROTATED_SA_TOKEN);
    let sent = bearers(&openai);
    assert_eq!(sent[3..], tokens(OPENAI_SCOPE, 1..=2));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_near_its_expiry_is_exchanged_again_with_the_rotated_file() {
    let dir = TokenDir::new("rotated");
    dir.project(FIRST_SA_TOKEN);
    let entra = EntraDouble::start(TENANT, CLIENT).await;
    // Tokens valid for two minutes are within the refresh margin (five minutes): each
    // is used for the request that fetched it and never taken from the cache.
    entra.set_mode(Mode::Issue { expires_in: 120 });
    let openai = azure_openai(Arc::new(Mutex::new(tokens(OPENAI_SCOPE, 1..=2)))).await;
    let search = search::start(fleet_index(tokens(SEARCH_SCOPE, 1..=2))).await;
    let gateway = start_gateway(&dir, &entra, &openai, &search, &[]).await;

    let reply = ask(&gateway, true).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    dir.project(ROTATED_SA_TOKEN);
    let reply = ask(&gateway, true).await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let assertions: Vec<(String, String)> = entra
        .exchanges()
        .iter()
        .map(|e| (e.form["scope"].clone(), e.form["client_assertion"].clone()))
        .collect();
    let expected = |assertion: &str| {
        [SEARCH_SCOPE, OPENAI_SCOPE].map(|scope| (scope.to_string(), assertion.to_string()))
    };
    assert_eq!(
        assertions,
        [expected(FIRST_SA_TOKEN), expected(ROTATED_SA_TOKEN)].concat()
    );
    assert_eq!(bearers(&search), tokens(SEARCH_SCOPE, 1..=2));
    assert_eq!(bearers(&openai), tokens(OPENAI_SCOPE, 1..=2));
    gateway.stop().await;
}

/// What a client may see of a failure: the status, the error's code and message, and
/// that no secret is in the reply.
fn assert_error(reply: &Reply, status: u16, code: &str, message: &str) {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    assert_eq!(body["error"]["code"], code, "{body}");
    assert_eq!(body["error"]["message"], message, "{body}");
    let text = reply.text();
    for secret in [FIRST_SA_TOKEN, "eyJ", "entra-double."] {
        assert!(!text.contains(secret), "{text} leaks {secret}");
    }
}

const NOT_AUTHENTICATED: &str = "The chat service could not authenticate with the language model.";
const INDEX_UNAVAILABLE: &str = "The document index is unavailable; the gateway log says why.";

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_file_and_entra_failures_give_clear_errors_that_leak_nothing() {
    let dir = TokenDir::new("failures");
    let entra = EntraDouble::start(TENANT, CLIENT).await;
    let openai = azure_openai(Arc::new(Mutex::new(tokens(OPENAI_SCOPE, 1..=1)))).await;
    let search = search::start(fleet_index(tokens(SEARCH_SCOPE, 1..=1))).await;
    let timeouts = [
        ("openai_timeout_ms", "3000"),
        ("openai_connect_timeout_ms", "500"),
        ("openai_first_byte_timeout_ms", "1000"),
        ("openai_max_retries", "0"),
        ("azure_search_timeout_ms", "1500"),
    ];
    let gateway = start_gateway(&dir, &entra, &openai, &search, &timeouts).await;

    // No token file (the pod lacks the workload identity label): nothing is exchanged.
    assert!(!dir.file().exists());
    assert_error(
        &ask(&gateway, false).await,
        502,
        "upstream_unauthorized",
        NOT_AUTHENTICATED,
    );
    assert_error(
        &ask(&gateway, true).await,
        503,
        "retrieval_unavailable",
        INDEX_UNAVAILABLE,
    );
    assert!(entra.exchanges().is_empty());

    // Entra refuses the federation (AADSTS700213): the assertion was sent, and is in no reply.
    dir.project(FIRST_SA_TOKEN);
    entra.set_mode(Mode::RefuseFederation);
    assert_error(
        &ask(&gateway, false).await,
        502,
        "upstream_unauthorized",
        NOT_AUTHENTICATED,
    );
    assert_error(
        &ask(&gateway, true).await,
        503,
        "retrieval_unavailable",
        INDEX_UNAVAILABLE,
    );
    assert_eq!(entra.exchanges().len(), 2);
    assert!(
        entra
            .exchanges()
            .iter()
            .all(|e| e.form["client_assertion"] == FIRST_SA_TOKEN)
    );

    // Entra fails (503): the model is unavailable, not misconfigured.
    entra.set_mode(Mode::Unavailable);
    assert_error(
        &ask(&gateway, false).await,
        503,
        "upstream_unavailable",
        "The language model is unavailable; retry later.",
    );

    // Entra does not answer: each component's own deadline ends the wait.
    entra.set_mode(Mode::Stall);
    assert_error(
        &ask(&gateway, false).await,
        504,
        "upstream_timeout",
        "The language model did not answer in time; retry later.",
    );
    assert_error(
        &ask(&gateway, true).await,
        504,
        "retrieval_timeout",
        "The document index did not answer in time; retry later.",
    );
    // Neither upstream was called without a token.
    assert_eq!(openai.hits(), 0);
    assert_eq!(search.hits(), 0);

    // Entra recovers: the next request is answered, nothing failed was cached.
    entra.set_mode(Mode::Issue { expires_in: 3599 });
    let reply = ask(&gateway, true).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    gateway.stop().await;
}
