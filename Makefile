# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NATIVE_STAMP := $(VENV)/.native-installed
NATIVE_SOURCES := $(wildcard native/src/*.rs) native/Cargo.toml native/Cargo.lock native/pyproject.toml
ARGS ?=
# rustup installs cargo here; make it visible even where a login shell did not add it.
export PATH := $(HOME)/.cargo/bin:$(PATH)
# Keep cargo's build products between installs, so a rebuild after a change is incremental.
export CARGO_TARGET_DIR := $(CURDIR)/native/target

.PHONY: run test test-native test-go test-rust test-typescript lint typecheck check gen gen-tools bench fuzz clean telemetrygen otlp-js
FUZZ_SECONDS ?= 60

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
		{ echo "make: $(PYTHON) is missing or older than Python 3.11, which log_server needs (PYTHON=python3.12 make ... picks another)"; exit 1; }
	@echo "make: creating the virtual environment $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); echo "make: could not create $(VENV): Python's venv module is missing (Debian: apt-get install python3-venv)"; exit 1; }

$(STAMP): $(BIN)/python pyproject.toml clients/python/pyproject.toml
	@echo "make: installing the server, the Python client and the test tools into $(VENV) (pip; about a minute the first time)"
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]' -e 'clients/python[grpc]'
	touch $(STAMP)

# The compiled TCP decoder (Rust, built by maturin from crates.io sources).
# Checked first: without cargo, maturin would quietly download a private Rust toolchain.
$(NATIVE_STAMP): $(STAMP) $(NATIVE_SOURCES)
	@command -v cargo >/dev/null || { echo "make: cargo not found: the compiled decoder (native/) needs Rust >= 1.87 with cargo (https://rustup.rs)"; exit 1; }
	@cargo --version | awk '{ split($$2, v, "."); if (v[1] == 1 && v[2] < 87) { print "make: " $$0 " is older than 1.87, which native/ needs (rustup update)"; exit 1 } }'
	@command -v cc >/dev/null || { echo "make: no C linker (cc) found: Rust needs one to link native/ (Debian: apt-get install gcc)"; exit 1; }
	@echo "make: building the compiled decoder native/ with cargo and maturin (a few minutes the first time)"
	$(BIN)/python -m pip install --quiet --force-reinstall --no-deps ./native
	touch $(NATIVE_STAMP)

run: $(NATIVE_STAMP)
	$(BIN)/log_server $(ARGS)

test: $(NATIVE_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The compiled decoder's own unit tests and lints (debug build, target dir shared).
test-native:
	cd native && cargo test --quiet && cargo clippy --quiet --all-targets -- -D warnings

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts bench clients/python fuzz
	$(BIN)/ruff format --check src tests scripts bench clients/python fuzz

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Every generated file from schema/ (scripts/gen.py). Needs Debian's capnproto for the
# Cap'n Proto compiler; capnpc-rust is built from crates.io into .tools/ at native's version.
CAPNPC_VERSION := 0.21.4
gen-tools: .tools/bin/capnpc-rust
.tools/bin/capnpc-rust:
	@command -v capnp >/dev/null || { echo "make gen: capnp not found (apt-get install capnproto)"; exit 1; }
	cargo install --quiet --locked capnpc --version =$(CAPNPC_VERSION) --root .tools
# The Rust client's gRPC generator (tonic-prost-build; needs Debian's protobuf-compiler).
gen-tools: .tools/bin/log_server_client_codegen
.tools/bin/log_server_client_codegen: clients/rust/codegen/Cargo.toml clients/rust/codegen/Cargo.lock clients/rust/codegen/src/main.rs
	@command -v protoc >/dev/null || { echo "make gen: protoc not found (apt-get install protobuf-compiler)"; exit 1; }
	cargo install --quiet --locked --force --path clients/rust/codegen --root .tools
# capnpc-go at the version of the Go capnp runtime that clients/go/go.mod pins.
gen-tools: .tools/bin/capnpc-go
CAPNPC_GO_VERSION = $(shell cd clients/go && go list -m -f '{{.Version}}' capnproto.org/go/capnp/v3)
.tools/bin/capnpc-go: clients/go/go.mod
	@command -v go >/dev/null || { echo "make gen: go not found (https://go.dev/dl/)"; exit 1; }
	GOBIN=$(CURDIR)/.tools/bin go install capnproto.org/go/capnp/v3/capnpc-go@$(CAPNPC_GO_VERSION)

gen: $(NATIVE_STAMP) gen-tools
	$(BIN)/python scripts/gen.py
	$(BIN)/python scripts/gen_vectors.py

# The Go client (clients/go): vet, then every test with the race detector.
test-go:
	cd clients/go && go vet ./... && go test -race ./...

# The TypeScript client (clients/typescript): npm ci when the lock file changes, tsc, then
# node's test runner (unit tests, the shared vectors, integrations) against the real server.
TS_DIR := clients/typescript
TS_STAMP := $(TS_DIR)/node_modules/.npm-ci-done
$(TS_STAMP): $(TS_DIR)/package.json $(TS_DIR)/package-lock.json
	@node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' || \
		{ echo "clients/typescript needs Node 20 or newer (https://nodejs.org), found $$(node --version 2>&1)"; exit 1; }
	cd $(TS_DIR) && npm ci --no-audit --no-fund
	touch $@
# protoc-gen-es, for make gen, comes from the package's node_modules.
gen-tools: $(TS_STAMP)

test-typescript: $(NATIVE_STAMP) $(TS_STAMP)
	cd $(TS_DIR) && npm run --silent build && npm test --silent

# The Rust client (clients/rust): tests and clippy with every feature. Its own target dir
# inside the crate (git-ignored), which the interop harness's build of the conformance
# program (`make test`) shares, so CI compiles tonic's debug build once.
RUST_CLIENT_TARGET := $(CURDIR)/clients/rust/target
test-rust:
	cd clients/rust && CARGO_TARGET_DIR=$(RUST_CLIENT_TARGET) cargo test --quiet --all-features \
		&& CARGO_TARGET_DIR=$(RUST_CLIENT_TARGET) cargo clippy --quiet --all-targets --all-features -- -D warnings

# Real OpenTelemetry clients for tests/sources/test_otlp_*.py (.ci/run installs both; the
# tests skip without them). telemetrygen: the Collector's load generator, from the Go proxy.
TELEMETRYGEN_VERSION := v0.161.0
telemetrygen: .tools/bin/telemetrygen
.tools/bin/telemetrygen: Makefile
	@command -v go >/dev/null || { echo "make telemetrygen: go not found (https://go.dev/dl/)"; exit 1; }
	GOBIN=$(CURDIR)/.tools/bin go install github.com/open-telemetry/opentelemetry-collector-contrib/cmd/telemetrygen@$(TELEMETRYGEN_VERSION)
	touch $@
# The JavaScript SDK's log exporters (tests/otlp_js): npm ci when the lock file changes.
OTLP_JS_STAMP := tests/otlp_js/node_modules/.npm-ci-done
otlp-js: $(OTLP_JS_STAMP)
$(OTLP_JS_STAMP): tests/otlp_js/package.json tests/otlp_js/package-lock.json
	cd tests/otlp_js && npm ci --no-audit --no-fund
	touch $@

bench: $(NATIVE_STAMP)
	bash bench/setup.sh
	cd bench && ../$(BIN)/python run.py $(BENCH_ARGS)

# Coverage-guided fuzzing of the TCP decoders for FUZZ_SECONDS (docs/reliability.md).
fuzz: $(NATIVE_STAMP)
	$(BIN)/python -m pip install --quiet 'atheris>=2.3'
	mkdir -p fuzz/corpus
	$(BIN)/python fuzz/fuzz_connection.py fuzz/corpus -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
		-print_final_stats=1

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
