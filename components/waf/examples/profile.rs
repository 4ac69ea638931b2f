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
//! `x-request-id` of its own per request, `CASE=traced` the `traceparent` alone. The rules are the default ones, compiled and warmed up as `wizer-initialize`
//! does. `ITERS` (default 20) requests are counted after as many uncounted ones; divide
//! the total by `ITERS`.

use http::HeaderValue;
use waf::Inspection;
use waf::config::Config;

fn parts(n: usize) -> http::request::Parts {
    let mut request = http::Request::builder()
        .method("GET")
        .uri("http://127.0.0.1:3999/v1/models");
    let case = std::env::var("CASE").unwrap_or_default();
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
fn measured(rules: &chatgate_seclang::RuleSet, config: &Config, iters: usize) -> usize {
    let mut refused = 0;
    for n in iters..2 * iters {
        refused += usize::from(one(rules, config, n));
    }
    refused
}

#[inline(never)]
fn warm_up(rules: &chatgate_seclang::RuleSet, config: &Config, iters: usize) {
    for n in 0..iters {
        one(rules, config, n);
    }
}

fn one(rules: &chatgate_seclang::RuleSet, config: &Config, n: usize) -> bool {
    // As `Incoming::read` makes them for every request.
    let parts = std::hint::black_box(parts(n));
    match Inspection::new(rules, config, &parts).headers() {
        Ok(inspection) => std::hint::black_box(inspection.body(&[])).refusal.is_some(),
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
    warm_up(&rules, &config, iters);
    let refused = measured(&rules, &config, iters);
    println!("{iters} requests counted, {refused} refused");
}
