# One profile (release) for everything: wasmtime is compiled once, and tests run
# the same host binary users run.
COMPONENTS := telemetry waf auth chat retrieval completion-extractive completion-openai hello
CARGO ?= cargo

.PHONY: build components host up test lint bench

build: components host

components:
	@rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
	$(CARGO) build --release --target wasm32-wasip2 $(addprefix -p ,$(COMPONENTS))

host:
	$(CARGO) build --release -p chatgate

# Serves spin.toml on http://127.0.0.1:3000 with its embedded defaults.
up: build
	./target/release/chatgate up

# Every test: component logic natively, the host, and the built components end to end.
test: build
	$(CARGO) test --release --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --workspace --all-targets -- -D warnings
	$(CARGO) clippy --release --target wasm32-wasip2 $(addprefix -p ,$(COMPONENTS)) -- -D warnings

bench: build
	./bench/load.sh
