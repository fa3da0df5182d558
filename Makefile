# fcgi-runtime: top-level tasks.
#
#   make build          cargo build --release, then the C examples (c-examples/build/)
#   make demo           build, start c-examples/build/hello, query it with fcgi-client
#   make test           build, cargo test --release (unit + integration, nginx included),
#                       then check that the committed include/fcgi.h is up to date
#   make check-header   fail when include/fcgi.h differs from what the build generated
#   make lint           rustfmt --check and clippy -D warnings on every target
#
# Variables: CARGO (cargo), DEMO_HOST (127.0.0.1), DEMO_PORT (first free port from 9123).

SHELL       := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO       ?= cargo
DEMO_HOST   ?= 127.0.0.1
DEMO_PORT   ?=
RELEASE_DIR := target/release

.PHONY: all build demo test check-header lint clean

all: build

build:
	$(CARGO) build --release
	$(MAKE) -C c-examples

# Runs without any web server: hello listens on TCP, fcgi-client speaks FastCGI to it.
demo: build
	@port='$(DEMO_PORT)'; \
	if [ -z "$$port" ]; then \
	    for p in $$(seq 9123 9199); do \
	        if ! (exec 3<>/dev/tcp/$(DEMO_HOST)/$$p) 2>/dev/null; then port=$$p; break; fi; \
	    done; \
	fi; \
	[ -n "$$port" ] || { echo "demo: no free port in 9123-9199" >&2; exit 1; }; \
	addr=$(DEMO_HOST):$$port; \
	echo "==> c-examples/build/hello -a $$addr &"; \
	c-examples/build/hello -a "$$addr" & pid=$$!; \
	trap 'kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true' EXIT; \
	for i in $$(seq 1 100); do \
	    if (exec 3<>/dev/tcp/$(DEMO_HOST)/$$port) 2>/dev/null; then break; fi; \
	    kill -0 $$pid 2>/dev/null || { echo "demo: hello exited before listening" >&2; exit 1; }; \
	    sleep 0.05; \
	done; \
	client=$(RELEASE_DIR)/fcgi-client; \
	query() { \
	    echo "==> $$client $$*"; \
	    out=$$(timeout 30 "$$client" "$$@" </dev/null) || { \
	        rc=$$?; echo "$$out"; echo "demo: fcgi-client failed (exit $$rc)" >&2; exit 1; }; \
	    echo "$$out"; \
	}; \
	query "$$addr" /hello; \
	grep -q 'Hello, World!' <<<"$$out" || { echo "demo: unexpected answer" >&2; exit 1; }; \
	query -n 3 --keep "$$addr" /hello; \
	[ "$$(grep -c 'Hello, World!' <<<"$$out")" -eq 3 ] || { echo "demo: want 3 answers" >&2; exit 1; }; \
	query --get-values "$$addr"; \
	echo "==> demo OK"

test: build
	$(CARGO) test --release
	$(MAKE) check-header

# build.rs regenerates include/fcgi.h on every build; the committed copy must match it.
check-header:
	@if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	    echo "check-header: not a git checkout, skipped"; exit 0; \
	fi; \
	if ! git ls-files --error-unmatch include/fcgi.h >/dev/null 2>&1; then \
	    echo "check-header: include/fcgi.h is not tracked by git; commit the generated header" >&2; \
	    exit 1; \
	fi; \
	if ! git diff --exit-code -- include/fcgi.h; then \
	    echo "check-header: include/fcgi.h is stale; commit the regenerated header" >&2; \
	    exit 1; \
	fi; \
	echo "check-header: include/fcgi.h is up to date"

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

clean:
	$(CARGO) clean
	$(MAKE) -C c-examples clean
