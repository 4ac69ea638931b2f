//! The end-to-end suite: the built components served by the host, driven over HTTP, as
//! one test binary so that wasmtime and the test crate are linked once, not once per file.
//! Each module is one area (`cargo test -p chatgate-tests --test e2e <module>::` runs one).
//! `capacity` stays its own binary: it measures the process's resident memory.

chatgate_tests::host_allocator!();

mod api;
mod azure_search;
mod chain;
mod cli;
mod faults;
mod files;
mod host;
mod hybrid;
mod image;
mod index;
mod infra;
mod isolation;
mod middleware;
mod netns;
mod otel;
mod sdk;
mod spin_compat;
mod spin_parity;
mod swap;
mod ui;
mod waf_reference;
mod workload_identity;
