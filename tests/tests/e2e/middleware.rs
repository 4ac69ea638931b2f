//! Each middleware alone in front of `hello`, which echoes what reached it as JSON
//! (`{"method","path","headers":[[name,value],...],"body_bytes"}`): the tests read as the
//! specification of what each middleware answers and what it passes inward.

use chatgate_tests::http_client::{Reply, get, post_json, send};
use chatgate_tests::jwt::{Issuer, now};
use chatgate_tests::{Gateway, preloaded_waf, single_route_manifest, wasm};
use serde_json::{Value, json};

/// `hello` behind one middleware, which sees `variables` (declared as application variables
/// with an empty default, i.e. the component's own default unless overridden).
fn behind(middleware: &str, variables: &[&str]) -> String {
    let mut extra = String::new();
    if !variables.is_empty() {
        extra.push_str("[component.hello.variables]\n");
        for name in variables {
            extra.push_str(&format!("{name} = \"{{{{ {name} }}}}\"\n"));
        }
        extra.push_str("\n[variables]\n");
        for name in variables {
            extra.push_str(&format!("{name} = {{ default = \"\" }}\n"));
        }
    }
    single_route_manifest("hello", &[middleware], &extra)
}

/// The host's own probes are off: these tests look at what the middleware does with
/// `/healthz`, as it does on Spin, where no host answers it first.
async fn start(middleware: &str, declared: &[&str], values: &[(&str, &str)]) -> Gateway {
    Gateway::start_with(&behind(middleware, declared), values, |options| {
        options.probes = false;
    })
    .await
    .unwrap_or_else(|e| panic!("gateway with {middleware}: {e}"))
}

/// The echo `hello` produced, failing with the reply when something else answered.
fn echo(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "expected hello's echo: {}", reply.text());
    let echo = reply.json();
    assert!(echo["headers"].is_array(), "not hello's echo: {echo}");
    echo
}

/// The values of header `name` (lowercase) that reached `hello`.
fn received(echo: &Value, name: &str) -> Vec<String> {
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|pair| pair[0].as_str().unwrap().eq_ignore_ascii_case(name))
        .map(|pair| pair[1].as_str().unwrap().to_string())
        .collect()
}

/// The single value of header `name` that reached `hello`.
fn received_one(echo: &Value, name: &str) -> String {
    let values = received(echo, name);
    assert_eq!(values.len(), 1, "`{name}` reached hello as {values:?}");
    values.into_iter().next().unwrap()
}

/// Asserts an OpenAI-style error `{"error":{"message","type","param","code"}}` and returns it.
fn openai_error(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{}", reply.text());
    let body = reply.json();
    let error = &body["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        error["type"].as_str().is_some_and(|t| !t.is_empty()),
        "{body}"
    );
    assert!(error.get("param").is_some(), "no `param`: {body}");
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{body}"
    );
    assert!(body.get("headers").is_none(), "hello ran: {body}");
    error.clone()
}

/// `(trace id, span id)` of a valid W3C `traceparent` (`00-<32 hex>-<16 hex>-<2 hex>`).
fn parse_traceparent(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    assert!(
        parts.len() == 4
            && parts[0] == "00"
            && hex(parts[1], 32)
            && hex(parts[2], 16)
            && hex(parts[3], 2)
            && parts[1] != "0".repeat(32)
            && parts[2] != "0".repeat(16),
        "not a valid traceparent: {value:?}"
    );
    (parts[1].to_string(), parts[2].to_string())
}

fn is_uuid_v4(value: &str) -> bool {
    let groups: Vec<&str> = value.split('-').collect();
    groups.iter().map(|g| g.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && groups
            .iter()
            .all(|g| g.bytes().all(|b| b.is_ascii_hexdigit()))
        && groups[2].starts_with('4')
}

fn chat(content: &str) -> Value {
    json!({"model": "chatgate-rag", "messages": [{"role": "user", "content": content}]})
}

// ---------------------------------------------------------------------------------------------
// telemetry

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_adds_traceparent_request_id_and_server_timing_to_the_response() {
    let gateway = start("telemetry", &[], &[]).await;
    let reply = get(&gateway.url("/anything"), &[]).await;
    let echo = echo(&reply);

    let traceparent = reply
        .header("traceparent")
        .expect("traceparent on the response");
    parse_traceparent(traceparent);
    let request_id = reply
        .header("x-request-id")
        .expect("x-request-id on the response");
    assert!(is_uuid_v4(request_id), "{request_id}");
    let timing = reply
        .header("server-timing")
        .expect("server-timing on the response");
    let duration = timing
        .split(',')
        .find_map(|metric| metric.trim().strip_prefix("total;dur="))
        .unwrap_or_else(|| panic!("no total;dur= in {timing}"));
    assert!(
        duration.parse::<f64>().is_ok_and(|ms| ms >= 0.0),
        "{timing}"
    );

    // The same identifiers were passed inward.
    assert_eq!(received_one(&echo, "traceparent"), traceparent);
    assert_eq!(received_one(&echo, "x-request-id"), request_id);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_continues_a_valid_incoming_trace_with_a_new_span_id() {
    let gateway = start("telemetry", &[], &[]).await;
    let incoming = format!("00-{TRACE_ID}-{PARENT_SPAN}-01");
    let reply = get(&gateway.url("/anything"), &[("traceparent", &incoming)]).await;
    let echo = echo(&reply);

    let (trace, span) = parse_traceparent(reply.header("traceparent").unwrap());
    assert_eq!(trace, TRACE_ID);
    assert_ne!(span, PARENT_SPAN);
    let inner = received_one(&echo, "traceparent");
    let (inner_trace, inner_span) = parse_traceparent(&inner);
    assert_eq!(
        (inner_trace.as_str(), inner_span.as_str()),
        (TRACE_ID, span.as_str())
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_replaces_an_invalid_incoming_traceparent_with_a_new_trace() {
    let gateway = start("telemetry", &[], &[]).await;
    for invalid in [
        format!("00-{}-{PARENT_SPAN}-01", "0".repeat(32)),
        format!("00-{}-{PARENT_SPAN}-01", TRACE_ID.to_ascii_uppercase()),
        format!("00-{TRACE_ID}-{}-01", "0".repeat(16)),
        format!("00-{TRACE_ID}-{PARENT_SPAN}"),
        "garbage".to_string(),
    ] {
        let reply = get(&gateway.url("/anything"), &[("traceparent", &invalid)]).await;
        let echo = echo(&reply);
        let outgoing = reply.header("traceparent").unwrap().to_string();
        let (trace, span) = parse_traceparent(&outgoing);
        assert_ne!(trace, TRACE_ID, "{invalid} was continued");
        assert_ne!(
            trace.to_ascii_lowercase(),
            TRACE_ID,
            "{invalid} was continued"
        );
        assert_ne!(span, PARENT_SPAN, "{invalid}");
        assert_eq!(received_one(&echo, "traceparent"), outgoing, "{invalid}");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_keeps_a_sane_client_request_id() {
    let gateway = start("telemetry", &[], &[]).await;
    let sane = "client-req_42.A";
    let reply = get(&gateway.url("/anything"), &[("x-request-id", sane)]).await;
    let echo = echo(&reply);
    assert_eq!(reply.header("x-request-id"), Some(sane));
    assert_eq!(received(&echo, "x-request-id"), [sane]);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_replaces_an_insane_client_request_id_with_a_uuid() {
    let gateway = start("telemetry", &[], &[]).await;
    let too_long = "a".repeat(300);
    for insane in [too_long.as_str(), "has spaces in it", "semi;colon"] {
        let reply = get(&gateway.url("/anything"), &[("x-request-id", insane)]).await;
        let echo = echo(&reply);
        let minted = reply.header("x-request-id").unwrap().to_string();
        assert!(is_uuid_v4(&minted), "{insane:?} became {minted:?}");
        assert_eq!(received(&echo, "x-request-id"), [minted], "{insane:?}");
    }
    gateway.stop().await;
}

// ---------------------------------------------------------------------------------------------
// waf: the component as `make build` writes it, preloaded with the default rules by
// `chatgate waf` (the one spin.toml serves); one test runs the raw component, which
// compiles the embedded defaults itself.

const WAF_VARS: [&str; 3] = ["waf_mode", "waf_max_body_bytes", "waf_max_header_bytes"];

async fn waf(values: &[(&str, &str)]) -> Gateway {
    let manifest = behind("waf", &WAF_VARS).replace(
        &wasm("waf").display().to_string(),
        &preloaded_waf().display().to_string(),
    );
    Gateway::start_with(&manifest, values, |options| options.probes = false)
        .await
        .unwrap_or_else(|e| panic!("gateway with the preloaded waf: {e}"))
}

/// The audit lines the WAF wrote so far.
fn audit_lines(gateway: &Gateway) -> Vec<Value> {
    gateway
        .guest_log()
        .into_iter()
        .filter(|line| line["msg"] == "waf_audit")
        .collect()
}

/// The one audit line of the request with `x-request-id: id`.
fn audit_of(gateway: &Gateway, id: &str) -> Value {
    let lines: Vec<Value> = audit_lines(gateway)
        .into_iter()
        .filter(|line| line["request_id"] == id)
        .collect();
    assert_eq!(lines.len(), 1, "audit lines of {id}: {lines:?}");
    lines.into_iter().next().unwrap()
}

/// A 403 from the rules: `waf_rule_<id>`, the rule ids named, the attack not echoed.
fn blocked(reply: &Reply, attack: &str) -> Value {
    let error = openai_error(reply, 403);
    assert!(
        error["code"].as_str().unwrap().starts_with("waf_rule_"),
        "{error}"
    );
    assert!(
        error["message"].as_str().unwrap().contains("rule"),
        "{error}"
    );
    assert!(
        !reply.text().contains(attack),
        "the attack is echoed: {}",
        reply.text()
    );
    error
}

#[tokio::test(flavor = "multi_thread")]
async fn waf_blocks_injection_outside_the_prompt_fields_before_the_handler_runs() {
    let gateway = waf(&[]).await;
    let url = gateway.url("/v1/chat/completions");
    for attack in ["x' OR 1=1 --", "<script>alert(1)</script>"] {
        let mut body = chat("hello");
        body["model"] = json!(attack);
        blocked(&post_json(&url, &[], &body).await, attack);
    }
    let sqli_query = "/v1/models?id=1%27%20UNION%20SELECT%20password%20FROM%20users--";
    blocked(&get(&gateway.url(sqli_query), &[]).await, "UNION SELECT");
    let header = "1' or '1'='1' --";
    blocked(
        &get(&gateway.url("/v1/models"), &[("user-agent", header)]).await,
        header,
    );
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waf_blocks_path_traversal_in_the_url() {
    let gateway = waf(&[]).await;
    for path in [
        "/files/..%2f..%2fetc%2fpasswd",
        "/x?file=../../etc/passwd",
        "/x?file=..%252f..%252fetc%252fpasswd",
    ] {
        blocked(&get(&gateway.url(path), &[]).await, "etc/passwd");
    }
    gateway.stop().await;
}

/// Code questions in a prompt reach the model: the prompt fields are exempt from the
/// injection families (components/waf/rules/chat-policy.conf), and the body is passed on
/// byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn waf_passes_code_questions_in_the_prompt_inward_byte_for_byte() {
    let gateway = waf(&[]).await;
    for question in [
        "What's the difference between <script defer> and <script async>?",
        "T-SQL: I tried WAITFOR DELAY '00:00:05' and SELECT name FROM a UNION ALL SELECT name FROM b -- how do I sort it?",
        "Why does ' OR 1=1 -- work as a SQL injection?",
        "My Dockerfile runs `cat /etc/passwd | grep root; rm -rf /tmp/x` -- is that safe?",
        "In React, <button onClick={() => alert(1)}> fires twice. Why?",
    ] {
        let mut body = chat(question);
        // The assistant's earlier answer, with code, must not block the next turn either.
        body["messages"] = json!([
            {"role": "user", "content": "Show me a PHP include."},
            {"role": "assistant", "content": "<?php include($_GET['page'] . '.php'); ?> is vulnerable to ../../etc/passwd"},
            {"role": "user", "content": question},
        ]);
        let body = body.to_string();
        let reply = send(
            "POST",
            &gateway.url("/v1/chat/completions"),
            &[("content-type", "application/json")],
            body.clone(),
        )
        .await;
        let echo = echo(&reply);
        assert_eq!(echo["method"], "POST");
        assert_eq!(echo["body_bytes"], body.len(), "{question}");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waf_in_detect_mode_logs_the_attack_and_lets_it_through() {
    let gateway = waf(&[("waf_mode", "detect")]).await;
    let mut body = chat("hello");
    body["model"] = json!("x' OR 1=1 --");
    let body = body.to_string();
    let reply = send(
        "POST",
        &gateway.url("/v1/chat/completions"),
        &[
            ("content-type", "application/json"),
            ("x-request-id", "detect-1"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(echo(&reply)["body_bytes"], body.len());
    let audit = audit_of(&gateway, "detect-1");
    assert_eq!(audit["verdict"], "detected");
    assert_eq!(audit["mode"], "detect");
    assert!(audit["status"].is_null(), "{audit}");
    assert!(!audit["rule_ids"].as_array().unwrap().is_empty(), "{audit}");
    gateway.stop().await;
}

/// The audit line names the rules, tags, variables and scores, and never a credential.
#[tokio::test(flavor = "multi_thread")]
async fn waf_audit_line_names_the_attack_and_redacts_credentials() {
    let gateway = waf(&[]).await;
    let secret = "sk-audit-secret-7f3a9c";
    let reply = send(
        "GET",
        &gateway.url("/v1/models?id=1%27%20or%20%271%27%3D%271%27--&q=secretless"),
        &[
            ("authorization", &format!("Bearer {secret}")),
            ("api-key", "azure-key-1b2c3d4e"),
            ("cookie", "session=cookie-value-9e8d7c"),
            ("x-request-id", "audit-1"),
        ],
        "",
    )
    .await;
    blocked(&reply, "or '1'='1");
    let audit = audit_of(&gateway, "audit-1");
    let line = audit.to_string();
    for credential in [secret, "azure-key-1b2c3d4e", "cookie-value-9e8d7c"] {
        assert!(!line.contains(credential), "{credential} in {line}");
    }
    assert_eq!(audit["verdict"], "blocked");
    assert_eq!(audit["status"], 403);
    assert_eq!(audit["method"], "GET");
    assert_eq!(audit["path"], "/v1/models", "the path without its query");
    assert_eq!(audit["mode"], "block");
    let code = openai_error(&reply, 403)["code"]
        .as_str()
        .unwrap()
        .to_string();
    let deciding: u64 = code.trim_start_matches("waf_rule_").parse().unwrap();
    assert_eq!(audit["intervention_rule"], deciding);
    let matches = audit["matches"].as_array().unwrap();
    let sqli = matches
        .iter()
        .find(|m| {
            m["tags"]
                .as_array()
                .unwrap()
                .contains(&json!("attack-sqli"))
        })
        .unwrap_or_else(|| panic!("no attack-sqli match: {audit}"));
    assert!(
        sqli["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "{sqli}"
    );
    assert!(
        sqli["matched"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["variable"].as_str().unwrap().starts_with("ARGS")),
        "{sqli}"
    );
    assert!(
        audit["scores"].as_object().is_some_and(|s| !s.is_empty()),
        "{audit}"
    );
    assert_eq!(audit["paranoia_level"]["blocking"], 1, "{audit}");
    gateway.stop().await;
}

/// Every request is scored before any other refusal (issue 11 §7): an attack is a 403
/// whatever else is wrong with the request.
#[tokio::test(flavor = "multi_thread")]
async fn waf_reports_an_attack_before_content_type_method_or_size() {
    let gateway = waf(&[("waf_max_body_bytes", "100")]).await;
    let url = gateway.url("/v1/chat/completions");
    let form = send(
        "POST",
        &url,
        &[("content-type", "application/x-www-form-urlencoded")],
        "q=1%27%20UNION%20SELECT%20password%20FROM%20users--",
    )
    .await;
    blocked(&form, "UNION SELECT");
    let xml = send(
        "POST",
        &url,
        &[("content-type", "application/xml")],
        "<q><![CDATA[<script>alert(document.cookie)</script>]]></q>",
    )
    .await;
    blocked(&xml, "<script>");
    let method = send(
        "DELETE",
        &gateway.url("/v1/models?id=1%27%20UNION%20SELECT%20password%20FROM%20users--"),
        &[],
        "",
    )
    .await;
    blocked(&method, "UNION SELECT");
    let oversized = send(
        "GET",
        &gateway.url("/x?file=../../../../etc/passwd"),
        &[("content-type", "application/json")],
        "x".repeat(200),
    )
    .await;
    blocked(&oversized, "etc/passwd");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waf_refuses_a_body_over_the_limit_with_413() {
    let gateway = waf(&[("waf_max_body_bytes", "100")]).await;
    let reply = post_json(
        &gateway.url("/v1/chat/completions"),
        &[],
        &chat(&"a".repeat(200)),
    )
    .await;
    assert_eq!(openai_error(&reply, 413)["code"], "request_too_large");

    let small = post_json(&gateway.url("/v1/chat/completions"), &[], &json!({"a": 1})).await;
    echo(&small);
    gateway.stop().await;
}

/// A declared body over the limit is answered before any of it is sent; a chunked one as
/// soon as it passes the limit, without waiting for its end.
#[tokio::test(flavor = "multi_thread")]
async fn waf_answers_413_without_reading_the_rest_of_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let gateway = waf(&[("waf_max_body_bytes", "100")]).await;
    let address = gateway.address();
    for (framing, first_bytes) in [
        ("content-length: 100000\r\n", String::new()),
        (
            "transfer-encoding: chunked\r\n",
            format!("40\r\n{}\r\n40\r\n{}\r\n", "a".repeat(64), "b".repeat(64)),
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n{framing}\r\n{first_bytes}"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        // The body is never finished: only an answer that does not wait for it arrives.
        // The head and the body may come in separate reads: read until the error code or
        // the end of the connection.
        let mut received = Vec::new();
        let read_answer = async {
            let mut buffer = vec![0; 4096];
            loop {
                let read = stream.read(&mut buffer).await.unwrap();
                received.extend_from_slice(&buffer[..read]);
                if read == 0 || String::from_utf8_lossy(&received).contains("request_too_large") {
                    break;
                }
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(30), read_answer)
            .await
            .unwrap_or_else(|_| panic!("no answer to an unfinished oversized body ({framing})"));
        let reply = String::from_utf8_lossy(&received);
        assert!(reply.starts_with("HTTP/1.1 413"), "{framing}: {reply}");
        assert!(reply.contains("request_too_large"), "{reply}");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waf_refuses_a_non_json_body_with_415() {
    let gateway = waf(&[]).await;
    let reply = send(
        "POST",
        &gateway.url("/v1/chat/completions"),
        &[("content-type", "text/plain")],
        "hello there",
    )
    .await;
    assert_eq!(openai_error(&reply, 415)["code"], "unsupported_media_type");
    gateway.stop().await;
}

/// A method the gateway does not serve is not an attack by itself: the default rules let
/// PATCH and DELETE through (`tx.allowed_methods`, components/waf/rules/setup.conf) and the
/// component answers 405 + `Allow` after inspecting the request. Probing methods (TRACE,
/// PUT, CONNECT, ...) still score critical (rule 11100, as CRS's 911100 does): refused as
/// an attack and audited.
#[tokio::test(flavor = "multi_thread")]
async fn waf_refuses_a_method_outside_the_allow_list() {
    let gateway = waf(&[]).await;
    let reply = send(
        "DELETE",
        &gateway.url("/v1/chat/completions"),
        &[("x-request-id", "delete-1")],
        "",
    )
    .await;
    assert_eq!(openai_error(&reply, 405)["code"], "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("GET, HEAD, POST, OPTIONS"));
    let reply = send(
        "TRACE",
        &gateway.url("/v1/chat/completions"),
        &[("x-request-id", "trace-1")],
        "",
    )
    .await;
    assert_eq!(openai_error(&reply, 403)["code"], "waf_rule_49100");
    let audit = audit_of(&gateway, "trace-1");
    assert_eq!(audit["rule_ids"][0], 11100, "{audit}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waf_refuses_invalid_json_with_400() {
    let gateway = waf(&[]).await;
    let reply = send(
        "POST",
        &gateway.url("/v1/chat/completions"),
        &[("content-type", "application/json")],
        "{\"messages\": [",
    )
    .await;
    assert_eq!(openai_error(&reply, 400)["code"], "invalid_json");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn waf_fails_closed_on_an_invalid_variable() {
    let gateway = waf(&[("waf_mode", "off")]).await;
    let reply = get(&gateway.url("/v1/models"), &[]).await;
    let error = openai_error(&reply, 500);
    assert_eq!(error["code"], "waf_misconfigured");
    assert!(error["message"].as_str().unwrap().contains("waf_mode"));
    gateway.stop().await;
}

/// The component as cargo builds it, not pre-initialised, compiles the embedded default
/// rules on first use and protects the same way.
#[tokio::test(flavor = "multi_thread")]
async fn waf_without_preloading_compiles_the_embedded_default_rules() {
    let gateway = start("waf", &WAF_VARS, &[]).await;
    let mut body = chat("What does <T> mean in Rust?");
    let reply = post_json(&gateway.url("/v1/chat/completions"), &[], &body).await;
    echo(&reply);
    body["model"] = json!("x' OR 1=1 --");
    blocked(
        &post_json(&gateway.url("/v1/chat/completions"), &[], &body).await,
        "OR 1=1",
    );
    gateway.stop().await;
}

// ---------------------------------------------------------------------------------------------
// auth

const AUTH_VARS: [&str; 6] = [
    "auth_mode",
    "auth_api_keys",
    "auth_jwks",
    "auth_issuer",
    "auth_audience",
    "auth_clock_skew_seconds",
];
const KEYS: &str = "dev=k1-secret,ci=k2-secret";
const ISSUER: &str = "https://login.example.test/tenant/v2.0";
const AUDIENCE: &str = "api://chatgate";

async fn auth(values: &[(&str, &str)]) -> Gateway {
    start("auth", &AUTH_VARS, values).await
}

/// A gateway trusting `issuer`'s JWKS, plus the API keys.
async fn auth_with_jwt(issuer: &Issuer) -> Gateway {
    auth(&[
        ("auth_api_keys", KEYS),
        ("auth_jwks", issuer.jwks()),
        ("auth_issuer", ISSUER),
        ("auth_audience", AUDIENCE),
    ])
    .await
}

fn claims(sub: &str, aud: &str, exp: i64) -> Value {
    json!({"sub": sub, "iss": ISSUER, "aud": aud, "exp": exp, "iat": now()})
}

/// A 401 with a Bearer challenge and an OpenAI-style body; returns the challenge.
fn refused(reply: &Reply) -> String {
    let error = openai_error(reply, 401);
    assert_eq!(error["type"], "invalid_request_error", "{error}");
    let challenge = reply
        .header("www-authenticate")
        .expect("www-authenticate")
        .to_string();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    challenge
}

/// Asserts what `hello` saw from auth: the verified identity and no credential headers.
fn assert_identity(echo: &Value, subject: &str, method: &str) {
    assert_eq!(received(echo, "x-chatgate-subject"), [subject], "{echo}");
    assert_eq!(received(echo, "x-chatgate-auth"), [method], "{echo}");
    assert!(received(echo, "authorization").is_empty(), "{echo}");
    assert!(received(echo, "api-key").is_empty(), "{echo}");
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_refuses_a_request_without_credentials_with_a_bearer_challenge() {
    let gateway = auth(&[("auth_api_keys", KEYS)]).await;
    let reply = get(&gateway.url("/v1/models"), &[]).await;
    refused(&reply);
    assert_eq!(reply.json()["error"]["code"], "invalid_api_key");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_refuses_a_wrong_api_key() {
    let gateway = auth(&[("auth_api_keys", KEYS)]).await;
    for headers in [
        [("authorization", "Bearer k1-wrong")],
        [("api-key", "k1-secre")],
        [("authorization", "Basic ZGV2OmsxLXNlY3JldA==")],
    ] {
        let reply = get(&gateway.url("/v1/models"), &headers).await;
        let challenge = refused(&reply);
        assert!(
            !reply.text().contains("k1-"),
            "credential echoed: {}",
            reply.text()
        );
        assert!(!challenge.contains("k1-"), "credential echoed: {challenge}");
    }
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_accepts_an_api_key_as_bearer_or_api_key_header_and_strips_it() {
    let gateway = auth(&[("auth_api_keys", KEYS)]).await;
    let bearer = get(
        &gateway.url("/v1/models"),
        &[("authorization", "Bearer k1-secret")],
    )
    .await;
    assert_identity(&echo(&bearer), "api-key:dev", "api-key");
    let azure = get(&gateway.url("/v1/models"), &[("api-key", "k2-secret")]).await;
    assert_identity(&echo(&azure), "api-key:ci", "api-key");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_never_passes_a_client_forged_identity_inward() {
    let gateway = auth(&[("auth_api_keys", KEYS)]).await;
    let reply = get(
        &gateway.url("/v1/models"),
        &[
            ("x-chatgate-subject", "admin"),
            ("x-chatgate-auth", "jwt"),
            ("x-chatgate-role", "root"),
            ("authorization", "Bearer k1-secret"),
        ],
    )
    .await;
    let echo = echo(&reply);
    assert_identity(&echo, "api-key:dev", "api-key");
    assert!(received(&echo, "x-chatgate-role").is_empty(), "{echo}");

    // Without a credential, a forged identity is simply refused.
    let forged = get(
        &gateway.url("/v1/models"),
        &[("x-chatgate-subject", "admin")],
    )
    .await;
    refused(&forged);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_accepts_a_valid_jwt_and_passes_its_subject() {
    let issuer = Issuer::new(ISSUER, "key-1");
    let gateway = auth_with_jwt(&issuer).await;
    let token = issuer.token(&claims("user-123@example.test", AUDIENCE, now() + 300));
    let reply = get(
        &gateway.url("/v1/models"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_identity(&echo(&reply), "user-123@example.test", "jwt");

    // `aud` may be an array containing the audience.
    let token = issuer.token(&json!({
        "sub": "user-456", "iss": ISSUER, "aud": ["other", AUDIENCE], "exp": now() + 300
    }));
    let reply = get(
        &gateway.url("/v1/models"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    assert_identity(&echo(&reply), "user-456", "jwt");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_refuses_an_expired_jwt_as_invalid_token() {
    let issuer = Issuer::new(ISSUER, "key-1");
    let gateway = auth_with_jwt(&issuer).await;
    let token = issuer.token(&claims("user-123", AUDIENCE, now() - 3600));
    let reply = get(
        &gateway.url("/v1/models"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    let challenge = refused(&reply);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    assert_eq!(reply.json()["error"]["code"], "invalid_token");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_refuses_a_jwt_for_another_audience() {
    let issuer = Issuer::new(ISSUER, "key-1");
    let gateway = auth_with_jwt(&issuer).await;
    let token = issuer.token(&claims("user-123", "api://someone-else", now() + 300));
    let reply = get(
        &gateway.url("/v1/models"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    let challenge = refused(&reply);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_refuses_a_jwt_signed_by_another_key_under_the_same_kid() {
    let trusted = Issuer::new(ISSUER, "key-1");
    let impostor = Issuer::new(ISSUER, "key-1");
    let gateway = auth_with_jwt(&trusted).await;
    let token = impostor.token(&claims("user-123", AUDIENCE, now() + 300));
    let reply = get(
        &gateway.url("/v1/models"),
        &[("authorization", &format!("Bearer {token}"))],
    )
    .await;
    let challenge = refused(&reply);
    assert!(challenge.contains("invalid_token"), "{challenge}");
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_lets_the_health_check_through_without_credentials() {
    let gateway = auth(&[("auth_api_keys", KEYS)]).await;
    let reply = get(&gateway.url("/healthz"), &[]).await;
    assert_eq!(echo(&reply)["path"], "/healthz");

    // Only exactly `GET /healthz` is exempt.
    refused(&get(&gateway.url("/healthz/x"), &[]).await);
    gateway.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn auth_disabled_passes_everyone_as_anonymous() {
    let gateway = auth(&[("auth_mode", "disabled"), ("auth_api_keys", KEYS)]).await;
    let reply = get(
        &gateway.url("/v1/models"),
        &[("x-chatgate-subject", "admin")],
    )
    .await;
    assert_identity(&echo(&reply), "anonymous", "disabled");
    gateway.stop().await;
}

/// A body of many stream chunks, with a byte pattern that shows loss or reordering in its count.
fn large_body() -> Vec<u8> {
    (0..600 * 1024).map(|i| (i % 251) as u8).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn telemetry_and_auth_forward_a_large_body_whole_with_their_edited_headers() {
    let body = large_body();
    let telemetry = start("telemetry", &[], &[]).await;
    let reply = send("POST", &telemetry.url("/upload"), &[], body.clone()).await;
    let seen = echo(&reply);
    assert_eq!(seen["body_bytes"], body.len(), "{seen}");
    assert_eq!(received(&seen, "traceparent").len(), 1, "{seen}");
    assert!(
        reply.header("traceparent").is_some(),
        "response not decorated"
    );
    telemetry.stop().await;

    let auth = auth(&[("auth_api_keys", KEYS)]).await;
    let reply = send(
        "POST",
        &auth.url("/upload"),
        &[("authorization", "Bearer k1-secret")],
        body.clone(),
    )
    .await;
    let seen = echo(&reply);
    assert_eq!(seen["body_bytes"], body.len(), "{seen}");
    assert_identity(&seen, "api-key:dev", "api-key");
    auth.stop().await;
}
