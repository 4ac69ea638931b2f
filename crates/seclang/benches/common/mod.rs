//! The requests and rule sets the evaluation benchmark measures, shared by the native
//! bench (`benches/evaluate.rs`) and the same measurement compiled to `wasm32-wasip2`
//! (`examples/evaluate.rs`), so both time exactly the same work.

use std::time::{Duration, Instant};

use chatgate_seclang::{EvalMemo, FileSystem, LoadOptions, Request, RuleSet};

/// Debian's entry point for CRS 3.3 (crs-setup.conf, the exclusion files, `rules/*.conf`).
pub const CRS: &str = "/usr/share/modsecurity-crs/owasp-crs.load";

/// The attack families the prompt-field policy takes the chat messages' `content` away
/// from (issue 11): prose for a model, never input to an interpreter.
const POLICY_TAGS: &[&str] = &[
    "attack-sqli",
    "attack-xss",
    "attack-rce",
    "attack-lfi",
    "attack-rfi",
    "attack-injection-php",
    "attack-injection-nodejs",
    "attack-generic",
    "attack-fixation",
];

/// A small stand-in for the project's prompt-field policy, loaded before CRS: one phase-1
/// `SecAction` whose `ctl:ruleRemoveTargetByTag`s exclude `messages[*].content` from the
/// attack families, as an operator would write it for CRS.
pub fn policy() -> String {
    let ctls: Vec<String> = POLICY_TAGS
        .iter()
        .map(|tag| {
            format!(r"ctl:ruleRemoveTargetByTag={tag};ARGS:/^json\.messages\.\d+\.content$/")
        })
        .collect();
    format!(
        "SecAction \"id:1000,phase:1,pass,nolog,{}\"\nInclude {CRS}\n",
        ctls.join(",")
    )
}

/// chatgate's own default rule set (`components/waf/rules/default.conf`), which the `waf`
/// component loads when no other rule set is configured; `None` where the file cannot be
/// read (inside Wasm the runner opens only CRS's directories).
pub fn default_rules() -> Option<RuleSet> {
    let entry = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../components/waf/rules/default.conf"
    );
    if std::fs::metadata(entry).is_err() {
        println!("default rules not measured: {entry} is not readable here");
        return None;
    }
    let rules = RuleSet::load_from(&FileSystem, entry, LoadOptions::default());
    Some(rules.unwrap_or_else(|e| panic!("loading {entry}: {e}")))
}

/// CRS at paranoia level 1 (its default), optionally behind the prompt-field policy.
pub fn load(with_policy: bool) -> RuleSet {
    let options = LoadOptions {
        skip_unsupported: true,
    };
    let loaded = if with_policy {
        RuleSet::from_text(
            &FileSystem,
            "/usr/share/modsecurity-crs/policy.conf",
            &policy(),
            options,
        )
    } else {
        RuleSet::load_from(&FileSystem, CRS, options)
    };
    loaded.unwrap_or_else(|e| panic!("{e} (install Debian's modsecurity-crs: make test-deps)"))
}

fn request(method: &str, uri: String, body: String) -> Request {
    let mut headers = vec![
        ("Host".to_string(), "chat.example.com".to_string()),
        ("User-Agent".to_string(), "OpenAI/Python 1.54.0".to_string()),
        ("Accept".to_string(), "application/json".to_string()),
        ("Accept-Encoding".to_string(), "gzip, deflate".to_string()),
        (
            "Authorization".to_string(),
            "Bearer sk-test-0123456789abcdef".to_string(),
        ),
    ];
    if !body.is_empty() {
        headers.push(("Content-Type".to_string(), "application/json".to_string()));
        headers.push(("Content-Length".to_string(), body.len().to_string()));
    }
    Request {
        method: method.into(),
        uri,
        protocol: "HTTP/1.1".into(),
        headers,
        body: body.into_bytes(),
        remote_addr: "203.0.113.9".into(),
        remote_port: 40000,
        unique_id: "bench".into(),
    }
}

/// A 2 KB chat completion: a system prompt and a multi-turn history of prose.
pub fn chat_2kb() -> Request {
    let history = "How do I configure the retrieval index so that answers cite the right documents? \
                   I have a folder of markdown files and want incremental updates. ";
    let mut messages = vec![
        r#"{"role":"system","content":"You are a helpful assistant for engineers."}"#.to_string(),
    ];
    while messages.iter().map(String::len).sum::<usize>() < 1900 {
        messages.push(format!(r#"{{"role":"user","content":"{history}"}}"#));
        messages.push(r#"{"role":"assistant","content":"Run the index command over the folder, then restart."}"#.into());
    }
    let body = format!(
        r#"{{"model":"chatgate-rag","messages":[{}],"temperature":0.2}}"#,
        messages.join(",")
    );
    request("POST", "/v1/chat/completions".into(), body)
}

/// Words the varied chats are written with: prose a user or a model might write.
const WORDS: &[&str] = &[
    "the",
    "index",
    "answer",
    "documents",
    "folder",
    "update",
    "retrieval",
    "model",
    "please",
    "how",
    "can",
    "I",
    "configure",
    "markdown",
    "files",
    "incremental",
    "cite",
    "right",
    "should",
    "we",
    "restart",
    "service",
    "after",
    "changing",
    "settings",
    "why",
    "does",
    "it",
    "take",
    "so",
    "long",
    "to",
    "build",
    "embeddings",
    "for",
    "a",
    "thousand",
    "pages",
    "is",
    "there",
    "way",
    "limit",
    "tokens",
    "per",
    "request",
    "and",
    "what",
    "happens",
    "when",
    "quota",
    "runs",
    "out",
    "thanks",
    "explain",
    "difference",
    "between",
    "streaming",
    "batch",
    "responses",
    "my",
    "team",
    "wants",
    "summaries",
    "of",
    "meeting",
    "notes",
    "in",
    "French",
    "German",
    "also",
    "translate",
    "them",
    "into",
    "English",
    "keep",
    "original",
    "formatting",
    "headings",
    "lists",
    "tables",
    "could",
    "you",
    "write",
    "short",
    "paragraph",
    "about",
    "our",
    "deployment",
    "plan",
    "next",
    "week",
    "with",
    "three",
    "stages",
    "rollout",
    "monitoring",
    "rollback",
    "customer",
    "support",
    "ticket",
    "says",
    "login",
    "fails",
    "sometimes",
    "on",
    "mobile",
    "browsers",
    "but",
    "works",
    "desktop",
    "which",
    "logs",
    "look",
    "at",
    "first",
    "cache",
    "memory",
    "latency",
    "p99",
    "dashboard",
    "alert",
    "threshold",
];

/// A fixed pseudo-random sequence (xorshift64), so that runs draw the same requests.
fn pseudo_random() -> impl FnMut() -> u64 {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// `n` distinct 2 KB chat completions: the headers, roles, model and structure of
/// [`chat_2kb`], with message contents drawn from a word list by a fixed pseudo-random
/// sequence (different in every request), as a client's successive chats would be.
pub fn varied_chats(n: usize) -> Vec<Request> {
    let mut next = pseudo_random();
    let mut text = |min: usize, max: usize| {
        let len = min + (next() as usize) % (max - min);
        let mut s = String::new();
        while s.len() < len {
            if !s.is_empty() {
                s.push(' ');
            }
            s.push_str(WORDS[(next() as usize) % WORDS.len()]);
        }
        s.push('.');
        s
    };
    (0..n)
        .map(|_| {
            let mut messages = vec![
                r#"{"role":"system","content":"You are a helpful assistant for engineers."}"#
                    .to_string(),
            ];
            while messages.iter().map(String::len).sum::<usize>() < 1900 {
                messages.push(format!(
                    r#"{{"role":"user","content":"{}"}}"#,
                    text(30, 300)
                ));
                messages.push(format!(
                    r#"{{"role":"assistant","content":"{}"}}"#,
                    text(30, 300)
                ));
            }
            let body = format!(
                r#"{{"model":"chatgate-rag","messages":[{}],"temperature":0.2}}"#,
                messages.join(",")
            );
            request("POST", "/v1/chat/completions".into(), body)
        })
        .collect()
}

/// A 1 KB query-string GET.
pub fn get_1kb() -> Request {
    let mut query = String::from("/search?");
    let mut n = 0;
    while query.len() < 1000 {
        query.push_str(&format!("field{n}=value+number+{n}&"));
        n += 1;
    }
    request("GET", query, String::new())
}

/// The smallest API call a client makes through the chain: `GET /v1/models`.
pub fn get_models() -> Request {
    request("GET", "/v1/models".into(), String::new())
}

/// `GET /v1/models` as `waf` sees it in the chain: behind `telemetry`, which gives every
/// request a `traceparent` (a new trace or span id) and an `x-request-id` of its own, so
/// two header values are new to the memo each time. `n` distinct requests.
pub fn get_models_behind_telemetry(n: usize) -> Vec<Request> {
    let mut next = pseudo_random();
    (0..n)
        .map(|_| {
            let mut request = get_models();
            let (a, b, c) = (next(), next(), next());
            request.headers.push((
                "traceparent".into(),
                format!("00-{a:016x}{b:016x}-{c:016x}-00"),
            ));
            let (d, e) = (next(), next());
            request.headers.push((
                "x-request-id".into(),
                format!(
                    "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
                    d >> 32,
                    (d >> 16) & 0xffff,
                    d & 0xfff,
                    (e >> 48) & 0x3fff | 0x8000,
                    e & 0xffff_ffff_ffff
                ),
            ));
            request
        })
        .collect()
}

/// Runs `evaluate` `runs` times after a warm-up and prints the minimum, p50 and p99 of one
/// evaluation (on a shared machine the minimum is the figure least disturbed by others).
/// The requests are taken in turn from `requests`, each at most once when there are
/// enough of them (the warm-up takes the first ones); with `memo`, evaluation uses one
/// memo across all of them (`RuleSet::evaluate_with`), warmed up by the warm-up.
pub fn measure(rules: &RuleSet, name: &str, requests: &[Request], memo: bool, runs: usize) {
    let mut m = memo.then(EvalMemo::new);
    // With the memo, each outcome goes back to it once read, as the `waf` component does
    // (`EvalMemo::reuse`: the next evaluation writes its match records into its buffers).
    let mut eval = |r: &Request| match &mut m {
        Some(m) => {
            let outcome = rules.evaluate_with(r, m);
            let blocked = std::hint::black_box(outcome.blocking().is_some());
            m.reuse(outcome);
            blocked
        }
        None => std::hint::black_box(rules.evaluate(r)).blocking().is_some(),
    };
    let warm = runs.div_ceil(20);
    let mut next = (0..).map(|i| &requests[i % requests.len()]);
    for r in next.by_ref().take(warm) {
        std::hint::black_box(eval(r));
    }
    let mut times: Vec<Duration> = next
        .take(runs)
        .map(|r| {
            let start = Instant::now();
            std::hint::black_box(eval(r));
            start.elapsed()
        })
        .collect();
    times.sort();
    let outcome = match &mut m {
        Some(m) => rules.evaluate_with(&requests[0], m),
        None => rules.evaluate(&requests[0]),
    };
    println!(
        "{name:<44} min {:>9.1?}  p50 {:>9.1?}  p99 {:>9.1?}  (anomaly score {}, blocked: {})",
        times[0],
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        outcome.tx("anomaly_score").unwrap_or("-"),
        outcome.blocking().is_some()
    );
}

/// Inside Wasm: the linear memory's size, what a snapshot of the instance holds (it
/// never shrinks, so the growth over loading also counts what loading freed again).
#[cfg(target_arch = "wasm32")]
fn memory() -> usize {
    core::arch::wasm32::memory_size::<0>() * 65536
}

#[cfg(target_arch = "wasm32")]
const MEMORY: &str = "Wasm linear memory";

/// Natively: the resident set size (Linux), a rougher figure.
#[cfg(not(target_arch = "wasm32"))]
fn memory() -> usize {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<usize>().ok())
        .map_or(0, |pages| pages * 4096)
}

#[cfg(not(target_arch = "wasm32"))]
const MEMORY: &str = "resident set size";

/// The whole benchmark. `BENCH_RUNS` sets the number of timed evaluations per request
/// (default 1000); `BENCH_ONLY` keeps the cases whose name contains it (for profiling).
pub fn run() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let before = memory();
    let start = Instant::now();
    let plain = load(false);
    let took = start.elapsed();
    println!(
        "CRS 3.3 PL1: {} rules, loaded and compiled in {took:?}; memory grew by {:.1} MiB ({})",
        plain.len(),
        memory().saturating_sub(before) as f64 / (1 << 20) as f64,
        MEMORY
    );
    let policy = load(true);
    // Distinct chats, each evaluated once (warm-up included).
    let varied = varied_chats(runs + runs.div_ceil(20) + 1);
    let one = |r: Request| vec![r];
    let mut cases = vec![
        ("2 KB chat, CRS PL1", &plain, one(chat_2kb())),
        ("2 KB chat, CRS PL1 + policy", &policy, one(chat_2kb())),
        ("varied 2 KB chats, CRS PL1", &plain, varied.clone()),
        (
            "varied 2 KB chats, CRS PL1 + policy",
            &policy,
            varied.clone(),
        ),
        ("1 KB query GET, CRS PL1", &plain, one(get_1kb())),
        ("GET /v1/models, CRS PL1", &plain, one(get_models())),
    ];
    let defaults = default_rules();
    if let Some(defaults) = &defaults {
        cases.push(("2 KB chat, default rules", defaults, one(chat_2kb())));
        cases.push(("varied 2 KB chats, default rules", defaults, varied.clone()));
        cases.push(("1 KB query GET, default rules", defaults, one(get_1kb())));
        cases.push(("GET /v1/models, default rules", defaults, one(get_models())));
        cases.push((
            "GET /v1/models behind telemetry, default rules",
            defaults,
            get_models_behind_telemetry(runs + runs.div_ceil(20) + 1),
        ));
    }
    // `BENCH_MEMO=0` measures without the memo only, `1` with it only; both by default.
    let memo = std::env::var("BENCH_MEMO").unwrap_or_default();
    for (name, rules, requests) in &cases {
        for with in [false, true] {
            if memo == if with { "0" } else { "1" } {
                continue;
            }
            let name = format!("{name}{}", if with { ", memo" } else { "" });
            if name.contains(only.as_str()) {
                measure(rules, &name, requests, with, runs);
            }
        }
    }
}
