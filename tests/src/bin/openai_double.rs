//! The OpenAI-compatible upstream double of `chatgate_tests::upstream` as a process of its
//! own, for tests that need it somewhere the test process is not: tests/tests/e2e/netns.rs
//! runs it in a network namespace with `ip netns exec`. It is a test double, not a model:
//! every chat completion is answered with the text given on the command line, in
//! OpenAI's wire format (JSON, or SSE word by word when `stream` is true).
//!
//! `openai_double <listen address> <answer>`: prints `listening on http://<address>` once
//! it accepts connections. A streamed answer stops after its first word until a line
//! arrives on standard input (one line releases one stream); the process exits when
//! standard input closes, so it does not outlive the test that started it.

use chatgate_tests::upstream::Upstream;
use std::io::BufRead;
use std::sync::Arc;

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(answer)) = (args.next(), args.next()) else {
        eprintln!("usage: openai_double <listen address> <answer>");
        std::process::exit(2);
    };
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .unwrap_or_else(|e| panic!("binding {address}: {e}"));
    let answer: &'static str = Box::leak(answer.into_boxed_str());
    let gate = Arc::new(tokio::sync::Notify::new());
    let upstream = Upstream::openai_held_on(listener, answer, gate.clone());
    println!("listening on {}", upstream.origin);
    let released = std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if line.is_err() {
                break;
            }
            gate.notify_one();
        }
    });
    tokio::task::spawn_blocking(move || released.join())
        .await
        .ok();
    drop(upstream);
}
