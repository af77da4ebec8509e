# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what a fresh Debian 12 machine lacks first (scripts/install-deps.sh).

SHELL := /bin/bash
CARGO ?= cargo

.PHONY: all deps build test lint demo bench fuzz deb

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --release

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	./web/vendor.sh --check

# The fuzz targets' CI-short run comes last (skipped, saying so, without nightly and cargo-fuzz).
test: lint
	$(CARGO) test --workspace
	FUZZ_SECONDS=30 FUZZ_BUILD_FLAGS="--dev --sanitizer none" ./scripts/fuzz.sh --if-available

# Every fuzz target for FUZZ_SECONDS (default 60) each: docs/FUZZING.md.
fuzz: deps
	./scripts/fuzz.sh

# A Debian 12 package in target/debian/ (release build, stripped): scripts/deb.sh, README
# "Install (Debian package)". lintian target/debian/*.deb judges it.
deb: deps
	./scripts/deb.sh

# The demo needs no test-only tools (Garage, cargo-deb): `install-deps.sh --demo`.
demo:
	@./scripts/install-deps.sh --demo
	$(CARGO) build --release
	@./scripts/demo.sh

bench: build
	SKIP_BUILD=1 ./bench/transcode.sh
	SKIP_BUILD=1 ./bench/serve.sh
	SKIP_BUILD=1 ./bench/storage.sh
