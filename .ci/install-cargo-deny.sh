#!/usr/bin/env bash
# cargo-deny for `make lint`'s dependency checks (deny.toml), pinned; installed with cargo
# (crates.io) when missing or another version, once. Built without the crate's own
# release profile (fat LTO, one codegen unit: made for a binary people download), because
# here it runs for a second per CI and its build is on CI's clock.
set -euo pipefail
cargo_deny_version=0.20.2
if [ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $cargo_deny_version" ]; then
  # 170 CPU-s with these settings against 204 with the crate's profile (2026-12-06, the
  # 2-core machine shared with other builds: `/usr/bin/time cargo install ...` into a
  # temporary root and target directory, one run each). The wall-clock gain should be
  # larger than the CPU one, as fat LTO with one codegen unit ends on one core; that was
  # not measured on an idle machine. `cargo deny check` then takes under 1 s either way.
  CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
    CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
    cargo install --locked "cargo-deny@$cargo_deny_version"
fi
