# One profile (release) for everything: wasmtime is compiled once, and tests run
# the same host binary users run.
COMPONENTS := telemetry waf auth chat retrieval completion-extractive completion-openai retrieval-azure-search ui hello passthrough retrieval-probe capability-probe
CARGO ?= cargo
# The static target the image ships the host for. `make test` builds the host and every
# test for it, so that wasmtime is compiled once for the tests, the preloads and the
# image; `make up` builds the host for the machine's own target (no musl tools needed).
MUSL := x86_64-unknown-linux-musl
# Empty: the machine's own target. `make test` sets it to $(MUSL).
HOST_TRIPLE ?=
CHATGATE := ./target/$(if $(HOST_TRIPLE),$(HOST_TRIPLE)/)release/chatgate

.PHONY: toolchain musl-toolchain build components host index waf up test test-unit lint lint-tools bench sdk test-deps image image-host

build: components host index waf

# What the build and the lints need of the toolchain (idempotent; nothing to do when present).
toolchain:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	@rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt

components: toolchain
	@# One cargo invocation per component, as `spin build` does: a combined build would
	@# unify spin-sdk features across crates and give every component the middleware import.
	@set -e; for c in $(COMPONENTS); do $(CARGO) build --release --target wasm32-wasip2 -p $$c; done

# Only the binary serving needs; `make test` builds the rest of the workspace and reuses
# every dependency compiled here (wasmtime included): host/Cargo.toml pins the features
# the workspace adds, and `.ci/check-features.sh` (in `make lint`) keeps them in step.
host: $(if $(HOST_TRIPLE),musl-toolchain)
	$(CARGO) build --release $(if $(HOST_TRIPLE),--target $(HOST_TRIPLE)) -p chatgate --bin chatgate

# The index of data/ and the retrieval component preloaded with it, where spin.toml
# expects them (the same command as the component's build in spin.toml).
index: components host
	$(CHATGATE) index data --out target/chatgate-index --component target/wasm32-wasip2/release/retrieval.wasm

# The waf component with the default rule set compiled in, where spin.toml expects it
# (the same command as the component's build in spin.toml).
waf: components host
	$(CHATGATE) waf --rules components/waf/rules/default.conf --out target/chatgate-waf --component target/wasm32-wasip2/release/waf.wasm

# Serves spin.toml on http://127.0.0.1:3000 with its embedded defaults.
up: build
	./target/release/chatgate up

# Every test: component logic natively, the host, and the built components end to end;
# then the lints. This is the README's test command and all that CI (.ci/run) runs.
# The host and the tests are built for $(MUSL), the target of the image's static binary:
# the tests run the binary the image ships, and wasmtime is compiled once (building the
# host for the machine's own target as well was a second compile, ~874 CPU-s for musl).
# The set-up steps run side by side (-j3): the installs (apt, pip, npm) wait on the
# network while cargo compiles. cargo's lock on target/ keeps the workspace's builds one at
# a time; cargo-deny compiles beside them in its own directory. Output is grouped by step.
# Their order is in the prerequisites below (`| test-deps`).
test:
	$(MAKE) --no-print-directory -j3 --output-sync=target HOST_TRIPLE=$(MUSL) build test-deps lint-tools sdk image
	$(CARGO) test --release --workspace --target $(MUSL)
	$(MAKE) lint

# The native tests of components, crates and the host, without the end-to-end suite
# (tests/): seconds once built, and no built component needed.
test-unit: musl-toolchain
	$(CARGO) test --release --workspace --exclude chatgate-tests --target $(MUSL)

# System packages the tests need (OWASP CRS, nginx + ModSecurity, and python3-venv / npm for
# the SDK tests when missing); installs what is missing, before `sdk` uses them.
test-deps:
	./.ci/test-deps.sh

# The official OpenAI SDKs that tests/tests/e2e/sdk.rs runs, at the versions tests/sdk pins:
# Python's into .sdk/venv, npm's into tests/sdk/node_modules. Reinstalled only when a pin changes.
# Also Playwright for tests/tests/e2e/ui.rs, pinned in tests/ui/requirements.txt, into
# .sdk/ui-venv (it drives Debian's chromium, which `make test-deps` installs).
# And checkov + kubernetes-validate for tests/tests/e2e/infra.rs, pinned in
# infra/scripts/requirements.txt, into .sdk/infra-venv.
SDK_VENV := .sdk/venv
UI_VENV := .sdk/ui-venv
INFRA_VENV := .sdk/infra-venv
sdk: $(SDK_VENV)/.installed tests/sdk/node_modules/.package-lock.json $(UI_VENV)/.installed $(INFRA_VENV)/.installed

# A fresh venv, so that it holds exactly the pinned set.
$(SDK_VENV)/.installed: tests/sdk/requirements.txt | test-deps
	rm -rf $(SDK_VENV)
	python3 -m venv $(SDK_VENV)
	$(SDK_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/sdk/requirements.txt
	$(SDK_VENV)/bin/pip check --disable-pip-version-check
	touch $@

$(UI_VENV)/.installed: tests/ui/requirements.txt | test-deps
	rm -rf $(UI_VENV)
	python3 -m venv $(UI_VENV)
	$(UI_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r tests/ui/requirements.txt
	$(UI_VENV)/bin/pip check --disable-pip-version-check
	touch $@

$(INFRA_VENV)/.installed: infra/scripts/requirements.txt | test-deps
	rm -rf $(INFRA_VENV)
	python3 -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --disable-pip-version-check --no-deps -r infra/scripts/requirements.txt
	$(INFRA_VENV)/bin/pip check --disable-pip-version-check
	touch $@

tests/sdk/node_modules/.package-lock.json: tests/sdk/package.json tests/sdk/package-lock.json | test-deps
	npm ci --prefix tests/sdk --no-audit --no-fund
	touch $@

# `cargo deny` (deny.toml; installed by `make lint-tools`): duplicate versions, licenses and
# sources. Not advisories: `cargo deny check advisories` clones the RustSec database from
# github.com, which this CI cannot reach (it fails with "Could not resolve host:
# github.com"); run it where github.com is reachable. `.ci/check-module-cycles.py`: no two
# top-level modules of a crate depend on each other (issue 12).
# cargo-deny (pinned in the script), which `lint` runs.
lint-tools:
	./.ci/install-cargo-deny.sh

# The native clippy run checks for $(MUSL), as `make test` builds: it then reuses that
# build's build-script outputs and proc-macros (for the machine's own target it would
# compile and run ~50 build scripts, SQLite's and ring's C included, that nothing else needs).
lint: toolchain musl-toolchain lint-tools
	$(CARGO) fmt --all -- --check
	CARGO=$(CARGO) ./.ci/check-features.sh
	./.ci/check-module-cycles.py
	$(CARGO) clippy --release --workspace --all-targets --target $(MUSL) -- -D warnings
	@set -e; for c in $(COMPONENTS); do $(CARGO) clippy --release --target wasm32-wasip2 -p $$c -- -D warnings; done
	# The components' allocator: its global and its `Sync` exist for wasm32 only.
	$(CARGO) clippy --release --target wasm32-wasip2 -p chatgate-guest-alloc -- -D warnings
	$(CARGO) deny check bans licenses sources

# The OCI image of the gateway (image/Containerfile, built by image/build.sh with buildah
# into target/image/oci and target/image/chatgate-<version>.oci.tar, with its SBOM):
# the host built static for musl, the components and spin.toml as `make build` leaves them.
# Also the Spin OCI artifact of the same app, for SpinKube (target/image/spin, by
# `chatgate registry layout`). Needs buildah and musl-tools (`make test-deps` installs
# them, as root).
image: build image-host test-deps
	./image/build.sh

# The static host. After `make up` (host for the machine's own target) this compiles wasmtime
# and every other host dependency a second time; in `make test` it is the `host` build.
image-host: musl-toolchain
	$(CARGO) build --release --target $(MUSL) -p chatgate --bin chatgate

# The musl target and musl-tools (`make test-deps`: C dependencies such as SQLite need musl-gcc).
musl-toolchain: test-deps toolchain
	@rustup target list --installed 2>/dev/null | grep -qx $(MUSL) || rustup target add $(MUSL)

# The end-to-end benchmarks (each prints its figures; see README "Benchmarks").
bench: build
	$(CARGO) bench -p chatgate-tests
