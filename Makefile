# One profile (release) for everything: wasmtime is compiled once, and tests run
# the same host binary users run.
COMPONENTS := telemetry waf auth chat retrieval completion-extractive completion-openai retrieval-azure-search ui hello passthrough retrieval-probe capability-probe
CARGO ?= cargo

.PHONY: toolchain build components host index waf up test test-unit lint lint-tools bench sdk test-deps image image-host

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
host:
	$(CARGO) build --release -p chatgate --bin chatgate

# The index of data/ and the retrieval component preloaded with it, where spin.toml
# expects them (the same command as the component's build in spin.toml).
index: components host
	./target/release/chatgate index data --out target/chatgate-index --component target/wasm32-wasip2/release/retrieval.wasm

# The waf component with the default rule set compiled in, where spin.toml expects it
# (the same command as the component's build in spin.toml).
waf: components host
	./target/release/chatgate waf --rules components/waf/rules/default.conf --out target/chatgate-waf --component target/wasm32-wasip2/release/waf.wasm

# Serves spin.toml on http://127.0.0.1:3000 with its embedded defaults.
up: build
	./target/release/chatgate up

# Every test: component logic natively, the host, and the built components end to end;
# then the lints. This is the README's test command and all that CI (.ci/run) runs.
# The set-up steps run side by side (-j3): the installs (apt, pip, npm) wait on the
# network while cargo compiles. cargo's lock on target/ keeps the workspace's builds one at
# a time; cargo-deny compiles beside them in its own directory. Output is grouped by step.
# Their order is in the prerequisites below (`| test-deps`).
test:
	$(MAKE) --no-print-directory -j3 --output-sync=target build test-deps lint-tools sdk image
	$(CARGO) test --release --workspace
	$(MAKE) lint

# The native tests of components, crates and the host, without the end-to-end suite
# (tests/): seconds once built, and no built component needed.
test-unit:
	$(CARGO) test --release --workspace --exclude chatgate-tests

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

lint: toolchain lint-tools
	$(CARGO) fmt --all -- --check
	CARGO=$(CARGO) ./.ci/check-features.sh
	./.ci/check-module-cycles.py
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	@set -e; for c in $(COMPONENTS); do $(CARGO) clippy --release --target wasm32-wasip2 -p $$c -- -D warnings; done
	$(CARGO) deny check bans licenses sources

# The OCI image of the gateway (image/Containerfile, built by image/build.sh with buildah
# into target/image/oci and target/image/chatgate-<version>.oci.tar, with its SBOM):
# the host built static for musl, the components and spin.toml as `make build` leaves them.
# Also the Spin OCI artifact of the same app, for SpinKube (target/image/spin, by
# `chatgate registry layout`). Needs buildah and musl-tools (`make test-deps` installs
# them, as root).
image: build image-host test-deps
	./image/build.sh

# The static host: wasmtime and every other host dependency compiled a second time, for musl.
image-host: test-deps toolchain
	@rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl || rustup target add x86_64-unknown-linux-musl
	$(CARGO) build --release --target x86_64-unknown-linux-musl -p chatgate --bin chatgate

# The end-to-end benchmarks (each prints its figures; see README "Benchmarks").
bench: build
	$(CARGO) bench -p chatgate-tests
