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

#[tokio::test(flavor = "multi_thread")]
async fn key_value_state_outlives_per_request_instances() {
    let extra = "key_value_stores = [\"default\"]\n";
    let manifest = single_route_manifest("hello", &[], "").replace(
        &format!("source = \"{}\"\n", wasm("hello").display()),
        &format!("source = \"{}\"\n{extra}", wasm("hello").display()),
    );
    let gateway = Gateway::start(&manifest, &[]).await.unwrap();
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
    assert!(err.contains("chatgate:rag/"), "{err}");
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
