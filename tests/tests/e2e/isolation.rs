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

use chatgate_tests::http_client::{Reply, send};
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
    reports(&reply)
}

/// The two capability probes' `x-probe` reports (key -> outcome) of a 200 answer, outer
/// probe first (the inner one sees the response first and appends its header first).
pub(crate) fn reports(reply: &Reply) -> Vec<BTreeMap<String, String>> {
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

// Instance reuse: one instance serves many requests, in turn and at once (Spin's
// defaults for WASIp3), so nothing one request sets may reach the next. `hello` behind
// `telemetry` and `auth` echoes what reached it; requests of two identities (an API
// key and a JWT), each with its own request id and trace, alternate on instances that
// live for the whole run.

const KEYS: &str = "dev=k1-secret";
const ISSUER: &str = "https://login.example.test/tenant/v2.0";
const AUDIENCE: &str = "api://chatgate";

fn reuse_manifest() -> String {
    let mut extra = String::from("[component.hello.variables]\n");
    for name in ["auth_api_keys", "auth_jwks", "auth_issuer", "auth_audience"] {
        extra.push_str(&format!("{name} = \"{{{{ {name} }}}}\"\n"));
    }
    extra.push_str("[variables]\n");
    for name in ["auth_api_keys", "auth_jwks", "auth_issuer", "auth_audience"] {
        extra.push_str(&format!("{name} = {{ default = \"\" }}\n"));
    }
    chatgate_tests::single_route_manifest("hello", &["telemetry", "auth"], &extra)
}

async fn reusing_gateway(issuer: &chatgate_tests::jwt::Issuer, concurrent: usize) -> Gateway {
    Gateway::start_with(
        &reuse_manifest(),
        &[
            ("auth_api_keys", KEYS),
            ("auth_jwks", issuer.jwks()),
            ("auth_issuer", ISSUER),
            ("auth_audience", AUDIENCE),
        ],
        |options| {
            options.reuse = chatgate::reuse::InstanceReuse {
                max_requests: 100_000.into(),
                max_concurrent: concurrent.into(),
                idle_timeout: std::time::Duration::from_secs(30).into(),
            };
        },
    )
    .await
    .expect("gateway starts")
}

/// What reached `hello` for one request: (subject, request id, trace id, credentials seen).
async fn identity_of(gateway: &Gateway, credential: (&str, &str), n: usize) -> [String; 4] {
    let request_id = format!("req-{n:05}");
    let trace_id = format!("{:032x}", 0xabc0_0000 + n);
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let reply = send(
        "GET",
        &gateway.url("/whoami"),
        &[
            credential,
            ("x-request-id", &request_id),
            ("traceparent", &traceparent),
        ],
        "",
    )
    .await;
    assert_eq!(reply.status, 200, "request {n}: {}", reply.text());
    let echo = reply.json();
    let headers = echo["headers"].as_array().expect("hello's echo").clone();
    let all = |name: &str| -> Vec<String> {
        headers
            .iter()
            .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
            .map(|pair| pair[1].as_str().unwrap().to_string())
            .collect()
    };
    let one = |name: &str| {
        let values = all(name);
        assert_eq!(
            values.len(),
            1,
            "request {n}: `{name}` reached hello as {values:?}"
        );
        values[0].clone()
    };
    let seen_trace = one("traceparent")[3..35].to_string();
    let credentials = all("authorization").len() + all("api-key").len();
    assert_eq!(one("x-request-id"), request_id, "request {n}");
    assert_eq!(seen_trace, trace_id, "request {n}");
    [
        one("x-chatgate-subject"),
        request_id,
        seen_trace,
        credentials.to_string(),
    ]
}

async fn interleaved_identities_stay_apart(concurrent: usize) {
    let issuer = chatgate_tests::jwt::Issuer::new(ISSUER, "key-1");
    let gateway = reusing_gateway(&issuer, concurrent).await;
    let token = issuer.token(&serde_json::json!({
        "sub": "user-b@example.test", "iss": ISSUER, "aud": AUDIENCE,
        "exp": chatgate_tests::jwt::now() + 600, "iat": chatgate_tests::jwt::now(),
    }));
    let bearer_b = format!("Bearer {token}");
    const ROUNDS: usize = 20;
    // Waves of `concurrent` requests at once, identities alternating within each wave.
    let wave = concurrent.max(2);
    for round in 0..ROUNDS {
        let requests = (0..wave).map(|i| {
            let n = round * wave + i;
            let (credential, subject) = if n.is_multiple_of(2) {
                (("authorization", "Bearer k1-secret"), "api-key:dev")
            } else {
                (("authorization", bearer_b.as_str()), "user-b@example.test")
            };
            let gateway = &gateway;
            async move { (identity_of(gateway, credential, n).await, subject) }
        });
        for (seen, subject) in futures_util::future::join_all(requests).await {
            assert_eq!(seen[0], subject, "request {} got another identity", seen[1]);
            assert_eq!(
                seen[3], "0",
                "request {}: a credential reached hello",
                seen[1]
            );
        }
    }
    let instances = gateway.app().instances();
    let served = ROUNDS * wave;
    // Reuse is what is under test: far fewer instances than requests.
    assert!(
        instances.created <= served / 4,
        "{served} requests took {instances:?}"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_serving_one_request_at_a_time_keeps_identities_apart() {
    interleaved_identities_stay_apart(1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_serving_sixteen_at_once_keeps_identities_apart() {
    interleaved_identities_stay_apart(16).await;
}

/// `auth` keeps its variables for the instance's later requests: what it keeps must be
/// configuration only, never a verdict. On one instance, good and bad credentials (a
/// wrong key, a token expired, one for another audience, one signed by another key, and
/// a good token with one byte of its signature changed) alternate, and each gets its own
/// answer, whatever the request before it got; and `auth`'s kept verified tokens give
/// each token its own subject.
#[tokio::test(flavor = "multi_thread")]
async fn a_reused_instance_judges_every_credential_afresh() {
    let issuer = chatgate_tests::jwt::Issuer::new(ISSUER, "key-1");
    let impostor = chatgate_tests::jwt::Issuer::new(ISSUER, "key-1");
    let gateway = reusing_gateway(&issuer, 1).await;
    let now = chatgate_tests::jwt::now();
    let claims = |aud: &str, exp: i64| serde_json::json!({"sub": "user-b@example.test", "iss": ISSUER, "aud": aud, "exp": exp, "iat": now - 10});
    let good = issuer.token(&claims(AUDIENCE, now + 600));
    let mut tampered = good.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(String, u16)> = vec![
        ("Bearer k1-secret".into(), 200),
        ("Bearer k1-wrong".into(), 401),
        (format!("Bearer {good}"), 200),
        (
            format!("Bearer {}", issuer.token(&claims(AUDIENCE, now - 3600))),
            401,
        ),
        (
            format!("Bearer {}", issuer.token(&claims("api://other", now + 600))),
            401,
        ),
        (
            format!("Bearer {}", impostor.token(&claims(AUDIENCE, now + 600))),
            401,
        ),
        (format!("Bearer {tampered}"), 401),
    ];
    for round in 0..3 {
        for (i, (authorization, status)) in cases.iter().enumerate() {
            let reply = send(
                "GET",
                &gateway.url("/whoami"),
                &[("authorization", authorization)],
                "",
            )
            .await;
            assert_eq!(
                reply.status,
                *status,
                "round {round}, case {i}: {}",
                reply.text()
            );
        }
    }
    // `auth` keeps verified tokens: two good ones for different subjects, alternating on
    // the same instance, each still gets its own subject.
    let other = issuer.token(&serde_json::json!({
        "sub": "user-c@example.test", "iss": ISSUER, "aud": AUDIENCE, "exp": now + 600, "iat": now - 10,
    }));
    for n in 0..6 {
        let (token, subject) = if n % 2 == 0 {
            (&good, "user-b@example.test")
        } else {
            (&other, "user-c@example.test")
        };
        let bearer = format!("Bearer {token}");
        let seen = identity_of(&gateway, ("authorization", &bearer), n).await;
        assert_eq!(seen[0], subject, "request {n}");
    }
    assert_eq!(
        gateway.app().instances().created,
        1,
        "one instance served them all"
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn reuse_count_one_gives_every_request_a_fresh_instance() {
    let gateway = Gateway::start_with(&reuse_manifest(), &[("auth_api_keys", KEYS)], |options| {
        options.reuse = chatgate::reuse::InstanceReuse::SINGLE_USE;
    })
    .await
    .expect("gateway starts");
    for n in 0..10 {
        let seen = identity_of(&gateway, ("api-key", "k1-secret"), n).await;
        assert_eq!(seen[0], "api-key:dev");
    }
    assert_eq!(gateway.app().instances().created, 10);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_is_kept_for_its_idle_timeout_then_dropped() {
    let idle = std::time::Duration::from_millis(300);
    let gateway = Gateway::start_with(&reuse_manifest(), &[("auth_api_keys", KEYS)], |options| {
        options.reuse.idle_timeout = idle.into();
    })
    .await
    .expect("gateway starts");
    for n in 0..5 {
        identity_of(&gateway, ("api-key", "k1-secret"), n).await;
    }
    let kept = gateway.app().instances();
    assert_eq!((kept.created, kept.live), (1, 1), "{kept:?}");
    let started = std::time::Instant::now();
    while gateway.app().instances().live > 0 {
        assert!(
            started.elapsed() < idle * 10,
            "the idle instance outlived its timeout: {:?}",
            gateway.app().instances()
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The next request gets a new instance.
    identity_of(&gateway, ("api-key", "k1-secret"), 99).await;
    assert_eq!(gateway.app().instances().created, 2);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_retires_after_its_reuse_count() {
    let gateway = Gateway::start_with(&reuse_manifest(), &[("auth_api_keys", KEYS)], |options| {
        options.reuse.max_requests = 4.into();
    })
    .await
    .expect("gateway starts");
    for n in 0..12 {
        identity_of(&gateway, ("api-key", "k1-secret"), n).await;
    }
    assert_eq!(gateway.app().instances().created, 3);
    gateway.stop().await;
}

/// An idle instance kept for reuse gives its pool slot up when another route needs a new
/// instance: with a pool of one, `/b` is served at once while `/a`'s instance idles
/// (for 30 s), instead of waiting for the idle timeout or being refused.
#[tokio::test(flavor = "multi_thread")]
async fn an_idle_instance_gives_its_pool_slot_to_another_route() {
    let hello = wasm("hello");
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"slots\"\n\
         [[trigger.http]]\nroute = \"/a/...\"\ncomponent = \"a\"\n\
         [[trigger.http]]\nroute = \"/b/...\"\ncomponent = \"b\"\n\
         [component.a]\nsource = \"{}\"\n[component.b]\nsource = \"{}\"\n",
        hello.display(),
        hello.display()
    );
    let gateway = Gateway::start_with(&manifest, &[], |options| {
        options.limits.max_in_flight = 1;
        options.reuse.idle_timeout = std::time::Duration::from_secs(30).into();
    })
    .await
    .expect("gateway starts");
    let a = send("GET", &gateway.url("/a/x"), &[], "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(gateway.app().instances().idle, 1);
    // Without reclaiming, `/b` would wait 2 s for a slot and get 503.
    let b = send("GET", &gateway.url("/b/x"), &[], "").await;
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(gateway.app().instances().created, 2);
    gateway.stop().await;
}
