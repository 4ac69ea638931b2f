//! The host itself: serving a bare component, Spin host interfaces, and the errors
//! a user sees for a bad application.

use chatgate_tests::http_client::{get, send};
use chatgate_tests::{Gateway, single_route_manifest, wasm};

#[tokio::test(flavor = "multi_thread")]
async fn serves_a_bare_wasip3_component_and_its_request_body() {
    let gateway = Gateway::start(&single_route_manifest("hello", &[], ""), &[])
        .await
        .unwrap();
    let reply = get(&gateway.url("/hello"), &[]).await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "hello"));

    let echo = send(
        "PUT",
        &gateway.url("/anything?q=1"),
        &[("x-test", "yes")],
        "12345",
    )
    .await;
    let echo = echo.json();
    assert_eq!(echo["method"], "PUT");
    assert_eq!(echo["path"], "/anything?q=1");
    assert_eq!(echo["body_bytes"], 5);
    assert!(
        echo["headers"]
            .as_array()
            .unwrap()
            .contains(&serde_json::json!(["x-test", "yes"]))
    );
    gateway.stop().await;
}

/// `hello` alone, granted the key-value store `default`.
fn hello_with_default_store() -> String {
    let extra = "key_value_stores = [\"default\"]\n";
    single_route_manifest("hello", &[], "").replace(
        &format!("source = \"{}\"\n", wasm("hello").display()),
        &format!("source = \"{}\"\n{extra}", wasm("hello").display()),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn key_value_state_outlives_per_request_instances() {
    let gateway = Gateway::start(&hello_with_default_store(), &[])
        .await
        .unwrap();
    for expected in ["1", "2", "3"] {
        let reply = send("POST", &gateway.url("/counter"), &[], "").await;
        assert_eq!((reply.status, reply.text().as_str()), (200, expected));
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn key_value_store_not_granted_is_access_denied() {
    let gateway = Gateway::start(&single_route_manifest("hello", &[], ""), &[])
        .await
        .unwrap();
    let reply = send("POST", &gateway.url("/counter"), &[], "").await;
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("AccessDenied"), "{}", reply.text());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wasi_keyvalue_increments_from_concurrent_requests_all_count() {
    // 50 bodies at once from one address: above the default per-client upload share (32),
    // which a loaded machine can reach while instances take the requests in turn.
    let gateway = Gateway::start_with(&hello_with_default_store(), &[], |options| {
        options.limits.max_uploads_per_client = 64;
    })
    .await
    .unwrap();
    // Request i adds i: a lost or doubled update changes the total, and every reply is
    // a distinct running total.
    let url = gateway.url("/incr/quota");
    let replies = futures_util::future::join_all(
        (1..=50).map(|delta: i64| send("POST", &url, &[], delta.to_string())),
    )
    .await;
    let mut totals: Vec<i64> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.text().parse().unwrap()
        })
        .collect();
    totals.sort_unstable();
    totals.dedup();
    assert_eq!(totals.len(), 50, "running totals repeat: {totals:?}");
    assert_eq!(totals.last(), Some(&1275));

    let reply = send("POST", &url, &[], "-275").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "1000"));
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_key_value_reads_a_wasi_keyvalue_counter_as_spin_stores_it() {
    let gateway = Gateway::start(&hello_with_default_store(), &[])
        .await
        .unwrap();
    assert_eq!(get(&gateway.url("/raw/n"), &[]).await.status, 404);
    send("POST", &gateway.url("/incr/n"), &[], "1275").await;
    // Spin's SQLite store keeps a counter as an i64, 8 bytes little-endian.
    let reply = get(&gateway.url("/raw/n"), &[]).await;
    assert_eq!(
        (reply.status, reply.text().as_str()),
        (200, "fb04000000000000")
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn incrementing_a_value_that_is_not_a_counter_fails_and_keeps_the_value() {
    let gateway = Gateway::start(&hello_with_default_store(), &[])
        .await
        .unwrap();
    // `/counter` stores `hits` as decimal text through spin:key-value.
    send("POST", &gateway.url("/counter"), &[], "").await;
    let reply = send("POST", &gateway.url("/incr/hits"), &[], "").await;
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("not a counter"), "{}", reply.text());
    let reply = get(&gateway.url("/raw/hits"), &[]).await;
    assert_eq!(reply.text(), "31", "still the text `1`");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wasi_keyvalue_compare_and_swap_lands_every_concurrent_update() {
    let gateway = Gateway::start(&hello_with_default_store(), &[])
        .await
        .unwrap();
    // Each request reads the counter and swaps in its successor, retrying with the
    // handle a failed swap returns: exactly one swap wins per value.
    let url = gateway.url("/cas/visits");
    let replies =
        futures_util::future::join_all((0..20).map(|_| send("POST", &url, &[], ""))).await;
    let mut values: Vec<u64> = replies
        .iter()
        .map(|reply| {
            assert_eq!(reply.status, 200, "{}", reply.text());
            reply.text().parse().unwrap()
        })
        .collect();
    values.sort_unstable();
    assert_eq!(values, (1..=20).collect::<Vec<u64>>());
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wasi_keyvalue_store_not_granted_is_access_denied() {
    let gateway = Gateway::start(&single_route_manifest("hello", &[], ""), &[])
        .await
        .unwrap();
    for route in ["/incr/n", "/cas/n"] {
        let reply = send("POST", &gateway.url(route), &[], "").await;
        assert_eq!(reply.status, 500, "{route}");
        assert!(reply.text().contains("AccessDenied"), "{}", reply.text());
    }
    gateway.stop().await;
}

/// `telemetry` granted the store `default`, calling `hello` as its dependency (with
/// `inherit`, its `inherit_configuration`), rather than as middleware.
fn hello_as_dependency(inherit: &str) -> String {
    format!(
        "spin_manifest_version = 2\n[application]\nname = \"test\"\n\
         [[trigger.http]]\nroute = \"/...\"\ncomponent = \"telemetry\"\n\
         [component.telemetry]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\n\
         [component.telemetry.dependencies]\n\
         \"wasi:http/handler@0.3.0\" = {{ component = \"hello\"{inherit} }}\n\
         [component.hello]\nsource = \"{}\"\n",
        wasm("telemetry").display(),
        wasm("hello").display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dependency_reaches_wasi_keyvalue_only_when_it_inherits_key_value_stores() {
    let denied = Gateway::start(&hello_as_dependency(""), &[]).await.unwrap();
    let reply = send("POST", &denied.url("/incr/n"), &[], "").await;
    assert_eq!(reply.status, 500);
    assert!(reply.text().contains("AccessDenied"), "{}", reply.text());
    denied.stop().await;

    let inheriting = Gateway::start(
        &hello_as_dependency(", inherit_configuration = [\"key_value_stores\"]"),
        &[],
    )
    .await
    .unwrap();
    let reply = send("POST", &inheriting.url("/incr/n"), &[], "").await;
    assert_eq!((reply.status, reply.text().as_str()), (200, "1"));
    inheriting.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_route_is_an_openai_style_404() {
    let manifest =
        single_route_manifest("hello", &[], "").replace("route = \"/...\"", "route = \"/hello\"");
    let gateway = Gateway::start(&manifest, &[]).await.unwrap();
    let reply = get(&gateway.url("/nowhere"), &[]).await;
    assert_eq!(reply.status, 404);
    assert_eq!(reply.json()["error"]["code"], "not_found");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_wasm_names_the_build_command() {
    let manifest = single_route_manifest("hello", &[], "").replace(
        &wasm("hello").display().to_string(),
        "target/nope/hello.wasm",
    );
    let err = Gateway::start(&manifest, &[]).await.err().unwrap();
    assert!(
        err.contains("target/nope/hello.wasm") && err.contains("make build"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_nobody_provides_is_named() {
    // `chat` imports the retriever and completion interfaces; without its dependencies
    // neither the app nor the host provides them.
    let err = Gateway::start(&single_route_manifest("chat", &[], ""), &[])
        .await
        .err()
        .unwrap();
    assert!(
        err.contains("chatgate:retriever/") || err.contains("chatgate:completion/"),
        "{err}"
    );
    assert!(err.contains("does not provide"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_component_that_is_not_middleware_is_refused_as_middleware() {
    let manifest = single_route_manifest("hello", &["chat"], "");
    let err = Gateway::start(&manifest, &[]).await.err().unwrap();
    assert!(
        err.contains("middleware `chat` must import and export `wasi:http/handler@0.3.0`"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_port_in_use_is_explained() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = chatgate::server::bind(taken.local_addr().unwrap())
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("already in use"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_required_variable_without_value_is_named() {
    let manifest = format!(
        "{}\n[variables]\nregion = {{ required = true }}\n",
        single_route_manifest("hello", &[], "")
    );
    let err = Gateway::start(&manifest, &[]).await.err().unwrap();
    assert!(err.contains("SPIN_VARIABLE_REGION"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_request_headers_are_set_by_the_host_and_cannot_be_spoofed() {
    let manifest =
        single_route_manifest("hello", &[], "").replace("route = \"/...\"", "route = \"/api/...\"");
    let gateway = Gateway::start(&manifest, &[]).await.unwrap();
    let echo = send(
        "GET",
        &gateway.url("/api/items/7?x=1"),
        &[
            ("spin-path-info", "/admin"),
            ("spin-client-addr", "10.0.0.1:1"),
        ],
        "",
    )
    .await
    .json();
    let header = |name: &str| -> Vec<String> {
        echo["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|pair| pair[0] == name)
            .map(|pair| pair[1].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(header("spin-path-info"), ["/items/7"]);
    assert_eq!(header("spin-matched-route"), ["/api/..."]);
    assert_eq!(header("spin-component-route"), ["/api"]);
    assert_eq!(header("spin-full-url"), [gateway.url("/api/items/7?x=1")]);
    let client = header("spin-client-addr");
    assert_eq!(client.len(), 1);
    assert!(client[0].starts_with("127.0.0.1:"), "{client:?}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_outbound_host_value_is_traced_to_its_template() {
    let manifest = format!(
        "{}allowed_outbound_hosts = [\"{{{{ origin }}}}\"]\n[variables]\norigin = {{ default = \"https://x.openai.azure.com/openai\" }}\n",
        single_route_manifest("hello", &[], "")
    );
    let err = Gateway::start(&manifest, &[]).await.err().unwrap();
    assert!(
        err.contains("`{{ origin }}`") && err.contains("must not contain a path"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_outbound_host_template_left_empty_is_an_optional_endpoint() {
    let manifest = |entry: &str| {
        format!(
            "{}allowed_outbound_hosts = [\"{entry}\"]\n[variables]\norigin = {{ default = \"\" }}\n",
            single_route_manifest("hello", &[], "")
        )
    };
    let gateway = Gateway::start(&manifest("{{ origin }}"), &[])
        .await
        .unwrap();
    assert_eq!(get(&gateway.url("/hello"), &[]).await.status, 200);
    gateway.stop().await;

    let err = Gateway::start(&manifest(""), &[]).await.err().unwrap();
    assert!(
        err.contains("entry ``") && err.contains("is empty"),
        "{err}"
    );
}
