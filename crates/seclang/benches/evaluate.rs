//! Per-request cost of evaluating Debian's OWASP CRS 3.3 natively, at paranoia level 1,
//! for the two requests issue 11 measures: a 2 KB chat completion and a 1 KB query-string
//! GET. Prints p50 and p99 over many runs; `cargo bench -p chatgate-seclang`.

use std::time::{Duration, Instant};

use chatgate_seclang::{FileSystem, LoadOptions, Request, RuleSet};

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

fn chat_2kb() -> Request {
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

fn get_1kb() -> Request {
    let mut query = String::from("/search?");
    let mut n = 0;
    while query.len() < 1000 {
        query.push_str(&format!("field{n}=value+number+{n}&"));
        n += 1;
    }
    request("GET", query, String::new())
}

fn measure(rules: &RuleSet, name: &str, r: &Request) {
    for _ in 0..50 {
        std::hint::black_box(rules.evaluate(r));
    }
    let mut times: Vec<Duration> = (0..1000)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(rules.evaluate(r));
            start.elapsed()
        })
        .collect();
    times.sort();
    let outcome = rules.evaluate(r);
    println!(
        "{name:<24} p50 {:>9.1?}  p99 {:>9.1?}  (anomaly score {}, blocked: {})",
        times[times.len() / 2],
        times[times.len() * 99 / 100],
        outcome.tx("anomaly_score").unwrap_or("-"),
        outcome.blocking().is_some()
    );
}

fn main() {
    let entry = "/usr/share/modsecurity-crs/owasp-crs.load";
    let start = Instant::now();
    let rules = RuleSet::load_from(
        &FileSystem,
        entry,
        LoadOptions {
            skip_unsupported: true,
        },
    )
    .unwrap_or_else(|e| panic!("{e} (install Debian's modsecurity-crs: make test-deps)"));
    println!(
        "CRS 3.3 PL1: {} rules, loaded and compiled in {:?}",
        rules.len(),
        start.elapsed()
    );
    measure(&rules, "2 KB chat completion", &chat_2kb());
    measure(&rules, "1 KB query-string GET", &get_1kb());
}
