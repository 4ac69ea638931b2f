//! Per-request cost of evaluating Debian's OWASP CRS 3.3 natively, at paranoia level 1,
//! for the requests issue 11 measures: a 2 KB chat completion (with plain CRS and with
//! CRS behind a prompt-field policy), a 1 KB query-string GET and `GET /v1/models`, and the
//! same requests under chatgate's default rules. Prints p50 and p99;
//! `cargo bench -p chatgate-seclang`. The same measurement inside Wasm is
//! `examples/evaluate.rs` (see the README).

mod common;

fn main() {
    common::run();
}
