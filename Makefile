# The two commands a newcomer needs: `make demo` and `make test`.
# Both install what a fresh Debian 12 machine lacks first (scripts/install-deps.sh).

SHELL := /bin/bash
CARGO ?= cargo
DEMO_DIR ?= media/demo

.PHONY: all deps build test lint demo bench clean-demo

all: build

deps:
	@./scripts/install-deps.sh

build: deps
	$(CARGO) build --release

lint: deps
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test: lint
	$(CARGO) test --workspace

demo: build
	@./scripts/demo.sh "$(DEMO_DIR)"

bench: build
	./bench/transcode.sh

clean-demo:
	rm -rf "$(DEMO_DIR)"
