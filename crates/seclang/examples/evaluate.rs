//! The evaluation benchmark of `benches/evaluate.rs` as a program, to be built for
//! `wasm32-wasip2` and run under a Wasm runtime with CRS's directories preopened at the
//! same paths (see the README):
//!
//! ```text
//! cargo build --release --target wasm32-wasip2 -p chatgate-seclang --example evaluate
//! ```

#[path = "../benches/common/mod.rs"]
mod common;

fn main() {
    common::run();
}
