//! One benchmark case evaluated `ITERS` times inside [`measured`], for counting the
//! instructions of an evaluation with callgrind (load-independent, unlike timings on a
//! shared machine):
//!
//! ```text
//! cargo build --profile profiling -p chatgate-seclang --example profile
//! CASE=varied MEMO=1 valgrind --tool=callgrind --toggle-collect='*measured*' \
//!     target/profiling/examples/profile
//! ```
//!
//! `CASE` is `chat`, `chat-policy`, `varied`, `varied-policy`, `get` or `models` (CRS PL1;
//! `-policy`: behind the prompt-field policy of `benches/common`; `-component`: behind the
//! `waf` component's `chat-policy.conf`, as it ships), or `models-default`: `GET
//! /v1/models` with the six headers a client sends through the gateway, under the `waf`
//! component's default rules (`components/waf/rules/default.conf`, not CRS); `SNAPSHOT=0` turns the start
//! snapshot off (`RuleSet::set_start_snapshot`); `ITERS` (default 20)
//! evaluations are counted after as many uncounted ones (the warm-up fills the memo with
//! `MEMO=1`; varied chats are distinct in every evaluation). Divide the total by `ITERS`.

#[path = "../benches/common/mod.rs"]
#[allow(dead_code)]
mod common;

use chatgate_seclang::{EvalMemo, Request, RuleSet};

#[inline(never)]
fn measured(rules: &RuleSet, requests: &[Request], memo: &mut Option<EvalMemo>) -> usize {
    let mut blocked = 0;
    for r in requests {
        let outcome = match memo {
            Some(m) => rules.evaluate_with(r, m),
            None => rules.evaluate(r),
        };
        blocked += usize::from(outcome.blocking().is_some());
        let outcome = std::hint::black_box(outcome);
        // As the `waf` component does: the outcome's buffers go back to the memo.
        if let Some(m) = memo {
            m.reuse(outcome);
        }
    }
    blocked
}

fn main() {
    let case = std::env::var("CASE").unwrap_or_else(|_| "varied".into());
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let mut memo = (std::env::var("MEMO").as_deref() == Ok("1")).then(EvalMemo::new);
    let mut rules = if case == "models-default" {
        default_rules()
    } else if case.ends_with("-component") {
        component()
    } else {
        common::load(case.ends_with("-policy"))
    };
    rules.set_start_snapshot(std::env::var("SNAPSHOT").as_deref() != Ok("0"));
    let base = case
        .trim_end_matches("-policy")
        .trim_end_matches("-component")
        .trim_end_matches("-default");
    let requests: Vec<Request> = match base {
        "chat" => vec![common::chat_2kb(); 2 * iters],
        "varied" => common::varied_chats(2 * iters),
        "get" => vec![common::get_1kb(); 2 * iters],
        "models" if case == "models-default" => vec![gateway_models(); 2 * iters],
        "models" => vec![common::get_models(); 2 * iters],
        other => panic!("unknown CASE {other}"),
    };
    let (warm, counted) = requests.split_at(iters);
    warm_up(&rules, warm, &mut memo);
    let blocked = measured(&rules, counted, &mut memo);
    println!("{case}: {iters} evaluations counted, {blocked} blocked");
}

/// The uncounted warm-up (a separate function so that callgrind's toggle leaves it out).
#[inline(never)]
fn warm_up(rules: &RuleSet, requests: &[Request], memo: &mut Option<EvalMemo>) {
    for r in requests {
        let outcome = std::hint::black_box(match memo {
            Some(m) => rules.evaluate_with(r, m),
            None => rules.evaluate(r),
        });
        if let Some(m) = memo {
            m.reuse(outcome);
        }
    }
}

/// The `waf` component's configuration with CRS: its chat policy, then CRS PL1.
fn component() -> RuleSet {
    let policy = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../components/waf/rules/chat-policy.conf"
    );
    let text = format!("Include {policy}\nInclude {}\n", common::CRS);
    chatgate_seclang::RuleSet::from_text(
        &chatgate_seclang::FileSystem,
        policy,
        &text,
        chatgate_seclang::LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The `waf` component's default rules (`components/waf/rules/default.conf`), as it ships
/// them when no rule bundle is configured.
fn default_rules() -> RuleSet {
    let entry = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../components/waf/rules/default.conf"
    );
    let text = std::fs::read_to_string(entry).unwrap_or_else(|e| panic!("{entry}: {e}"));
    RuleSet::from_text(
        &chatgate_seclang::FileSystem,
        entry,
        &text,
        chatgate_seclang::LoadOptions {
            skip_unsupported: false,
        },
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

/// `GET /v1/models` as the `waf` component hands it to the engine (`rules_request`): the
/// headers an OpenAI client sends through the gateway, lowercased by `http`.
fn gateway_models() -> Request {
    let headers = [
        ("host", "127.0.0.1:3999"),
        ("accept-encoding", "identity"),
        ("authorization", "Bearer chatgate-dev-key"),
        ("user-agent", "Python-urllib/3.13"),
        (
            "traceparent",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ),
        ("x-request-id", "0af7651916cd43dd8448eb211c80319c"),
    ];
    Request {
        method: "GET".into(),
        uri: "/v1/models".into(),
        protocol: "HTTP/1.1".into(),
        headers: headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect(),
        unique_id: "0af7651916cd43dd8448eb211c80319c".into(),
        ..Request::default()
    }
}
