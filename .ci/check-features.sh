#!/usr/bin/env bash
# `make up` builds only the host binary (`cargo build --release -p chatgate --bin chatgate`);
# `make test` then builds the whole workspace. Cargo resolves features per build, so unless
# every package the host binary uses gets the same features in both, the second build
# recompiles it and everything above it (wasmtime, Cranelift). host/Cargo.toml pins the
# features the rest of the workspace adds; this check fails when a dependency change
# makes the two resolutions differ again, and names the packages to pin.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO=${CARGO:-cargo}
tree() { "$CARGO" tree --prefix none -f '{p} [{f}]' "$@" | sed -e 's/ (\*)$//' -e 's/ (proc-macro)//' | sort -u; }
host=$(tree -p chatgate -e normal,build)
workspace=$(tree --workspace -e normal,build,dev)
# For each package (name and version) the host binary uses: its feature sets in both.
diff_out=$(join -t'|' \
  <(awk '{k=$1" "$2; $1=$2=""; s[k]=s[k] $0 ";"} END{for(k in s) print k "|" s[k]}' <<<"$host" | sort) \
  <(awk '{k=$1" "$2; $1=$2=""; s[k]=s[k] $0 ";"} END{for(k in s) print k "|" s[k]}' <<<"$workspace" | sort) \
  | awk -F'|' '$2 != $3 {print "  " $1 ": host binary alone" $2 "  workspace" $3}')
if [ -n "$diff_out" ]; then
  echo "These packages get other features in the workspace build than in the host binary's:"
  echo "$diff_out"
  echo "Pin the workspace's features in host/Cargo.toml (see the comment there), or"
  echo "\`make test\` after \`make up\` recompiles wasmtime."
  exit 1
fi
