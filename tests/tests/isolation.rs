//! Dependency isolation: a dependency or middleware reaches a host capability only if it
//! inherits that configuration set, whatever its parent and siblings import.
//!
//! `capability-probe` is middleware that tries every capability and reports what it got
//! in an `x-probe` response header. Two probes wrap `hello` (the parent, which holds all
//! the grants): one inherits everything, the other everything but one set. For each set
//! and both orders, the second gets that set's refusals (as Spin's deny adapter answers
//! them) and everything else; the first gets everything. Before chatgate wired a deny
//! component into the graph, an un-inheriting probe read the parent's variables whenever
//! a sibling or the parent imported `spin:variables`.

use chatgate_tests::http_client::send;
use chatgate_tests::upstream::{Answer, Upstream};
use chatgate_tests::{Gateway, wasm};
use std::collections::BTreeMap;

const SETS: &[&str] = &[
    "variables",
    "key_value_stores",
    "allowed_outbound_hosts",
    "environment",
];

/// `hello` with every grant, wrapped by the probes `outer` then `inner`, each with its
/// `inherit_configuration` (TOML).
fn manifest(upstream: &str, outer: &str, inner: &str) -> String {
    let probe = wasm("capability-probe");
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"isolation\"\n\
         [variables]\nprobe_secret = {{ default = \"s3cret\", secret = true }}\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"hello\"\n\
         dependencies.middleware = [\n\
           {{ component = \"outer\", inherit_configuration = {outer} }},\n\
           {{ component = \"inner\", inherit_configuration = {inner} }},\n\
         ]\n\
         [component.hello]\nsource = \"{}\"\n\
         allowed_outbound_hosts = [\"{upstream}\"]\nkey_value_stores = [\"default\"]\n\
         environment = {{ PROBE_ENV = \"probe\" }}\n\
         [component.hello.variables]\nprobe_secret = \"{{{{ probe_secret }}}}\"\n\
         [component.outer]\nsource = \"{}\"\n\
         [component.inner]\nsource = \"{}\"\n",
        wasm("hello").display(),
        probe.display(),
        probe.display(),
    )
}

/// `inherit_configuration` with every set but `missing`.
fn all_but(missing: &str) -> String {
    let sets: Vec<String> = SETS
        .iter()
        .filter(|s| **s != missing)
        .map(|s| format!("\"{s}\""))
        .collect();
    format!("[{}]", sets.join(", "))
}

/// Each probe's report, outer first: capability -> outcome.
async fn probe(gateway: &Gateway, upstream: &Upstream) -> Vec<BTreeMap<String, String>> {
    let url = format!("{}/probe", upstream.origin);
    let reply = send(
        "GET",
        &gateway.url("/echo"),
        &[
            ("x-probe-url", &url),
            ("x-probe-tcp", &upstream.origin[7..]),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let mut reports: Vec<BTreeMap<String, String>> = reply
        .headers
        .get_all("x-probe")
        .iter()
        .map(|value| {
            value
                .to_str()
                .unwrap()
                .split(';')
                .filter_map(|pair| pair.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect();
    assert_eq!(reports.len(), 2, "{:?}", reply.headers);
    // The inner probe sees the response first and appends its header first.
    reports.reverse();
    reports
}

/// What a probe that inherits `set` gets from it.
fn assert_granted(report: &BTreeMap<String, String>, set: &str) {
    let get = |key: &str| report.get(key).map(String::as_str).unwrap_or("");
    match set {
        "variables" => assert_eq!(get("variables"), "ok:s3cret", "{report:?}"),
        "key_value_stores" => {
            assert_eq!(get("spin-kv"), "ok:open", "{report:?}");
            assert!(get("wasi-kv").starts_with("ok:"), "{report:?}");
        }
        "allowed_outbound_hosts" => assert_eq!(get("http"), "ok:200", "{report:?}"),
        "environment" => assert_eq!(get("env"), "ok:probe", "{report:?}"),
        _ => unreachable!(),
    }
}

/// What a probe that does not inherit `set` gets from it: Spin's deny adapter's answers.
fn assert_denied(report: &BTreeMap<String, String>, set: &str) {
    let get = |key: &str| report.get(key).map(String::as_str).unwrap_or("");
    match set {
        "variables" => assert_eq!(
            get("variables"),
            "err:Error::Undefined(probe_secret)",
            "{report:?}"
        ),
        "key_value_stores" => {
            assert_eq!(get("spin-kv"), "err:Error::AccessDenied", "{report:?}");
            assert_eq!(get("wasi-kv"), "err:Error::AccessDenied", "{report:?}");
        }
        "allowed_outbound_hosts" => {
            // The deny component's refusal, not the host's outbound policy.
            assert_eq!(
                get("http"),
                "err:ErrorCode::InternalError(Some(wasi:httpclient is not permitted))",
                "{report:?}"
            );
            assert!(get("tcp").starts_with("err:"), "{report:?}");
        }
        "environment" => assert_eq!(get("env"), "err:NotPresent", "{report:?}"),
        _ => unreachable!(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn each_capability_is_refused_to_exactly_the_dependency_that_does_not_inherit_it() {
    let upstream = Upstream::start(|_| Answer::new(200, "text/plain", "reached")).await;
    for set in SETS {
        for denied_outer in [true, false] {
            let (outer, inner) = if denied_outer {
                (all_but(set), "true".to_string())
            } else {
                ("true".to_string(), all_but(set))
            };
            let gateway = Gateway::start(&manifest(&upstream.origin, &outer, &inner), &[])
                .await
                .unwrap();
            let reports = probe(&gateway, &upstream).await;
            gateway.stop().await;
            let (denied, granted) = if denied_outer {
                (&reports[0], &reports[1])
            } else {
                (&reports[1], &reports[0])
            };
            assert_denied(denied, set);
            for other in SETS {
                assert_granted(granted, other);
                if other != set {
                    assert_granted(denied, other);
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_that_inherits_nothing_gets_refusals_not_traps() {
    let upstream = Upstream::start(|_| Answer::new(200, "text/plain", "reached")).await;
    let gateway = Gateway::start(&manifest(&upstream.origin, "false", "true"), &[])
        .await
        .unwrap();
    let reports = probe(&gateway, &upstream).await;
    gateway.stop().await;
    for set in SETS {
        assert_denied(&reports[0], set);
        assert_granted(&reports[1], set);
    }
    // No preopened directories either way (chatgate grants no `files`).
    assert!(reports[0]["files"].starts_with("err:"), "{:?}", reports[0]);
}

/// The case found on Spin: `retrieval` inherits nothing and `chat` imports
/// `spin:variables`. On Spin `retrieval` sees `retrieval_min_score` undefined and uses 0,
/// so a bad value there does not reach it; once it inherits `variables`, it does.
#[tokio::test(flavor = "multi_thread")]
async fn the_shipped_retriever_does_not_read_chats_variables() {
    use chatgate_tests::http_client::post_json;
    use chatgate_tests::{CONFIGURED_RETRIEVER_LINE, SHIPPED_RETRIEVER_LINE};
    let question = serde_json::json!({"messages": [{"role": "user", "content": "What does the web application firewall block?"}]});
    let key = ("authorization", "Bearer chatgate-dev-key");
    let shipped = chatgate_tests::project_manifest();
    let configured = chatgate_tests::manifest_with_line_replaced(
        SHIPPED_RETRIEVER_LINE,
        CONFIGURED_RETRIEVER_LINE,
    );
    for (manifest, expected) in [(shipped, 200), (configured, 503)] {
        let gateway = Gateway::start(&manifest, &[("retrieval_min_score", "abc")])
            .await
            .unwrap();
        let reply = post_json(&gateway.url("/v1/chat/completions"), &[key], &question).await;
        gateway.stop().await;
        assert_eq!(reply.status, expected, "{}", reply.text());
    }
}

/// Where the parent holds nothing in a set, no deny component is composed for it: the
/// host's own answers are the same refusals.
#[tokio::test(flavor = "multi_thread")]
async fn a_set_the_parent_holds_nothing_in_is_refused_by_the_host() {
    let upstream = Upstream::start(|_| Answer::new(200, "text/plain", "reached")).await;
    let bare = manifest(&upstream.origin, "false", "true")
        .replace("environment = { PROBE_ENV = \"probe\" }\n", "")
        .replace(
            "[component.hello.variables]\nprobe_secret = \"{{ probe_secret }}\"\n",
            "",
        );
    assert!(!bare.contains("PROBE_ENV") && !bare.contains("hello.variables"));
    let gateway = Gateway::start(&bare, &[]).await.unwrap();
    let reports = probe(&gateway, &upstream).await;
    gateway.stop().await;
    for report in &reports {
        assert_eq!(report["env"], "err:NotPresent", "{report:?}");
        assert!(
            report["variables"].starts_with("err:Error::Undefined("),
            "{report:?}"
        );
    }
    // The sets it holds are still denied to the probe that does not inherit them.
    assert_denied(&reports[0], "key_value_stores");
    assert_denied(&reports[0], "allowed_outbound_hosts");
}
