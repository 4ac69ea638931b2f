//! The component's own path for one request (`Inspection::new`, phase 1, the empty body,
//! phase 2, the audit decision) run natively `ITERS` times inside [`measured`], for
//! counting its instructions with callgrind next to the engine's alone
//! (`crates/seclang/examples/profile.rs`, `CASE=models-default`):
//!
//! ```text
//! cargo build --profile profiling -p waf --example profile
//! valgrind --tool=callgrind --toggle-collect='*measured*' target/profiling/examples/profile
//! ```
//!
//! The request is the gateway bench's `chat behind waf` one as the component receives it:
//! `GET /v1/models` with the authority apart, `authorization` and the `spin-*` headers the
//! host sets; `CASE=chain` adds what `telemetry` in front adds, a `traceparent` and an
//! `x-request-id` of its own per request, `CASE=traced` the `traceparent` alone;
//! `CASE=sdk` is the same `GET /v1/models` with the headers the OpenAI Python SDK sends
//! (`user-agent`, `accept`, the `x-stainless-*` set) and `CASE=chat` a 2 KB chat
//! completion `POST` with those headers and a JSON body (`BODY` replaces it). The rules are the default ones, compiled and warmed up as `wizer-initialize`
//! does. `ITERS` (default 20) requests are counted after as many uncounted ones; divide
//! the total by `ITERS`.

use http::HeaderValue;
use waf::Inspection;
use waf::config::Config;

/// The headers the OpenAI Python SDK (1.x) sends with every request.
const SDK_HEADERS: &[(&str, &str)] = &[
    ("accept-encoding", "gzip, deflate"),
    ("accept", "application/json"),
    ("user-agent", "OpenAI/Python 1.54.0"),
    ("x-stainless-lang", "python"),
    ("x-stainless-package-version", "1.54.0"),
    ("x-stainless-os", "Linux"),
    ("x-stainless-arch", "x64"),
    ("x-stainless-runtime", "CPython"),
    ("x-stainless-runtime-version", "3.13.1"),
    ("x-stainless-async", "false"),
    ("x-stainless-retry-count", "0"),
    ("x-stainless-read-timeout", "600"),
];

/// A 2 KB chat completion body: a system prompt and a multi-turn history of prose (the
/// engine benchmark's `chat_2kb`).
fn chat_body() -> String {
    let history = "How do I configure the retrieval index so that answers cite the right documents? \
                   I have a folder of markdown files and want incremental updates. ";
    let mut messages = vec![
        r#"{"role":"system","content":"You are a helpful assistant for engineers."}"#.to_string(),
    ];
    while messages.iter().map(String::len).sum::<usize>() < 1900 {
        messages.push(format!(r#"{{"role":"user","content":"{history}"}}"#));
        messages.push(r#"{"role":"assistant","content":"Run the index command over the folder, then restart."}"#.into());
    }
    format!(
        r#"{{"model":"chatgate-rag","messages":[{}],"temperature":0.2}}"#,
        messages.join(",")
    )
}

fn parts(n: usize, case: &str, body: &str) -> http::request::Parts {
    let chat = case == "chat";
    let mut request = http::Request::builder()
        .method(if chat { "POST" } else { "GET" })
        .uri(if chat {
            "http://127.0.0.1:3999/v1/chat/completions"
        } else {
            "http://127.0.0.1:3999/v1/models"
        });
    let id = format!(
        "{:032x}",
        (n as u128 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835)
    );
    if case == "chain" || case == "traced" {
        request = request.header("traceparent", format!("00-{id}-{}-01", &id[..16]));
    }
    if case == "chain" {
        request = request.header("x-request-id", id);
    }
    if chat || case == "sdk" {
        for (name, value) in SDK_HEADERS {
            request = request.header(*name, HeaderValue::from_static(value));
        }
    }
    if chat {
        request = request
            .header("content-type", "application/json")
            .header("content-length", body.len());
    }
    for (name, value) in [
        ("authorization", "Bearer chatgate-dev-key"),
        ("spin-full-url", "http://127.0.0.1:3999/v1/models"),
        ("spin-path-info", ""),
        ("spin-matched-route", "/v1/models"),
        ("spin-base-path", "/"),
        ("spin-raw-component-route", "/v1/models"),
        ("spin-component-route", "/v1/models"),
        ("spin-client-addr", "127.0.0.1:45678"),
    ] {
        request = request.header(name, HeaderValue::from_static(value));
    }
    request.body(()).unwrap().into_parts().0
}

#[inline(never)]
fn measured(rules: &chatgate_seclang::RuleSet, config: &Config, case: &Case) -> usize {
    let mut refused = 0;
    for n in case.iters..2 * case.iters {
        refused += usize::from(one(rules, config, case, n));
    }
    refused
}

#[inline(never)]
fn warm_up(rules: &chatgate_seclang::RuleSet, config: &Config, case: &Case) {
    for n in 0..case.iters {
        one(rules, config, case, n);
    }
}

struct Case {
    name: String,
    iters: usize,
    body: String,
}

fn one(rules: &chatgate_seclang::RuleSet, config: &Config, case: &Case, n: usize) -> bool {
    // As `Incoming::read` makes them for every request.
    let parts = std::hint::black_box(parts(n, &case.name, &case.body));
    let body = if case.name == "chat" {
        case.body.as_bytes()
    } else {
        &[]
    };
    match Inspection::new(rules, config, &parts).headers() {
        Ok(inspection) => std::hint::black_box(inspection.body(body))
            .refusal
            .is_some(),
        Err(_) => true,
    }
}

fn main() {
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let rules = waf::default_rules::compile().unwrap();
    for request in waf::warm_up_requests() {
        rules.evaluate(&request);
    }
    let config = Config::default();
    let case = Case {
        name: std::env::var("CASE").unwrap_or_default(),
        iters,
        body: std::env::var("BODY").unwrap_or_else(|_| chat_body()),
    };
    warm_up(&rules, &config, &case);
    let refused = measured(&rules, &config, &case);
    println!("{iters} requests counted, {refused} refused");
}
