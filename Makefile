# fcgi-runtime: top-level tasks.
#
#   make build          cargo build --release, then the C examples (c-examples/build/)
#   make demo           build, start c-examples/build/hello, query it with fcgi-client
#   make test           build, make php, cargo test --release (unit + integration, nginx and PHP
#                       included), check that the committed include/fcgi.h is up to date, the
#                       benchmark smoke, make php-test
#   make bench-smoke    the suite's S1 for a second per variant (part of make test)
#   make soak           fcgi-bench soak for SOAK_SECS (60) seconds: half against soak-echo (native
#                       API), half against lf-echo (libfcgi API on the project's libfcgi.so.0,
#                       via spawn-fcgi); fails on any error or server RSS/fd growth (docs/soak.md)
#   make check-header   fail when include/fcgi.h differs from what the build generates from src/ffi
#   make header         write include/fcgi.h from src/ffi (the build never rewrites it)
#   make lint           rustfmt --check and clippy -D warnings on every target (unsafe blocks need
#                       a SAFETY comment); no libc call outside crates/runtime/src/sys/ but those
#                       tools/syscall-fence.allow lists (tools/check-syscall-fence.sh); the
#                       ownership comments of include/fcgi.h (tools/check-header-docs.py)
#   make memsafe        only the C-boundary memory-safety tests (valgrind, ASan/UBSan, fd leaks,
#                       NULL/invalid arguments on every export); part of make test
#   make memsafe-asan-rust  the ASan runs again, on the Rust library itself built with
#                       -Zsanitizer=address (RUSTC_BOOTSTRAP, target/asan-rust); not in CI
#   make bench          the benchmark suite (bench/): rewrites BENCHMARKS.md and bench/chart.svg;
#                       needs libfcgi-dev, valgrind, strace, and nginx-light and wrk (N, NN:
#                       CPU per request behind nginx), and for its peers golang-go and
#                       crates.io (tokio-fastcgi, fetched once); BENCH_ARGS passes options
#   make php            PHP 8.2 from Debian's source package, stock (target/php-stock/) and with
#                       php-cgi and php-fpm relinked on the library (target/php/); php/build.sh,
#                       docs/sapi.md ("PHP itself"); a second run reuses what is built
#   make php-test       PHP's own FPM tests on both builds; fails when one passes on stock and not
#                       relinked (php/test.sh); part of make test
#   make install        install the library, headers and pkg-config files (docs/install.md)
#   make uninstall      remove what make install installed (same variables)
#
# Variables: CARGO (cargo), PYTHON (python3, for make lint), DEMO_HOST (127.0.0.1), DEMO_PORT
# (first free port from 9123).
# Installation: PREFIX (/usr/local), DESTDIR (empty), LIBDIR ($(PREFIX)/lib),
# INCLUDEDIR ($(PREFIX)/include), PKGCONFIGDIR ($(LIBDIR)/pkgconfig), BUILDLIBDIR (the
# directory holding the built libfcgi.so and libfcgi.a: target/release, built if missing).

SHELL       := /bin/bash
.SHELLFLAGS := -euo pipefail -c

CARGO       ?= cargo
DEMO_HOST   ?= 127.0.0.1
DEMO_PORT   ?=
RELEASE_DIR := target/release

.PHONY: all build demo test check-header header lint bench bench-smoke soak clean install uninstall memsafe memsafe-asan-rust php php-test

all: build

# cargo writes only libfcgi.so; programs linked against it ask for its SONAME, libfcgi.so.0.
build:
	$(CARGO) build --release
	ln -sfn libfcgi.so $(RELEASE_DIR)/libfcgi.so.0
	$(MAKE) -C c-examples
	$(MAKE) --no-print-directory $(GLUE)

# The object that hands a program's own fcgi_log to fcgi_set_logger (php/fcgi_log_glue.c; linked
# into the relinked php-fpm, where PHP's weak-symbol override is lost).
GLUE := $(RELEASE_DIR)/fcgi_log_glue.o
$(GLUE): php/fcgi_log_glue.c include/fcgi.h
	@mkdir -p $(@D)
	$(CC) -O2 -fPIC -Wall -Wextra -Werror -Iinclude -c -o $@ $<

# Not a test: nothing here passes or fails on timing (docs in BENCHMARKS.md).
bench: build
	$(CARGO) bench --bench suite -- $(BENCH_ARGS)

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

# make php comes first: tests/php.rs runs the relinked PHP (under CI=true it fails without it).
# make php-test runs after cargo test: PHP's FPM tests listen on fixed ports from 9008.
test: build
	$(MAKE) php
	$(CARGO) test --release
	$(MAKE) php-test
	$(MAKE) check-header
	$(MAKE) bench-smoke

# PHP_DEB_VERSION (8.2.32-1~deb12u1) and PHP_JOBS (nproc) pass to php/build.sh.
php: build
	php/build.sh

php-test: php
	php/test.sh

memsafe: build
	$(CARGO) test --release --test memcheck --test asan --test fd_leak --test ffi_args

# gcc's libasan (which the -fsanitize=address C programs load) serves the LLVM-instrumented
# library too (both ASan ABI v8).
ASAN_RUST_DIR := target/asan-rust/x86_64-unknown-linux-gnu/release
memsafe-asan-rust:
	RUSTC_BOOTSTRAP=1 RUSTFLAGS=-Zsanitizer=address CARGO_TARGET_DIR=target/asan-rust \
	    $(CARGO) build --release --lib --target x86_64-unknown-linux-gnu
	ln -sfn libfcgi.so $(ASAN_RUST_DIR)/libfcgi.so.0
	FCGI_MEMSAFE_LIB_DIR=$(CURDIR)/$(ASAN_RUST_DIR) $(CARGO) test --release --test asan
	FCGI_MEMSAFE_LIB_DIR=$(CURDIR)/$(ASAN_RUST_DIR) $(CARGO) test --release --test ffi_args \
	    invalid_arguments_under_asan

# The benchmark suite's S1 for one second per variant: checks that the suite, its C programs
# and both libraries still work together. No figure is judged. Without the peers (tokio-fastcgi,
# Go), so that make test neither compiles them nor needs golang-go.
bench-smoke:
	$(CARGO) bench --bench suite -- --quick --strict --peers none --only S1,S6 --out target/bench/smoke.md

# Each server gets a 1 s idle timeout so the soak's idle worker sees idle connections closed.
# SOAK_ARGS passes more options to fcgi-bench soak (e.g. --json).
SOAK_SECS ?= 60
SOAK_ARGS ?=
soak: build
	@command -v spawn-fcgi >/dev/null || { echo "soak: spawn-fcgi is missing (apt-get install spawn-fcgi)" >&2; exit 1; }; \
	secs=$$(( ($(SOAK_SECS) + 1) / 2 )); lib=$$PWD/$(RELEASE_DIR); fails=0; \
	free_port() { for p in $$(seq 9300 9399); do \
	    if ! (exec 3<>/dev/tcp/127.0.0.1/$$p) 2>/dev/null; then echo $$p; return; fi; done; return 1; }; \
	soak_one() { \
	    name=$$1; shift; port=$$(free_port) || { echo "soak: no free port" >&2; return 1; }; \
	    echo "==> soak $$name for $$secs s on 127.0.0.1:$$port"; \
	    PORT=$$port LD_LIBRARY_PATH=$$lib FCGI_RUNTIME_KEEPALIVE_TIMEOUT_MS=1000 "$$@" & pid=$$!; \
	    for i in $$(seq 1 200); do \
	        if (exec 3<>/dev/tcp/127.0.0.1/$$port) 2>/dev/null; then break; fi; \
	        kill -0 $$pid 2>/dev/null || { echo "soak: $$name exited before listening" >&2; return 1; }; \
	        sleep 0.05; \
	    done; \
	    rc=0; $(RELEASE_DIR)/fcgi-bench soak 127.0.0.1:$$port --secs $$secs \
	        --kinds keep,nokeep,mux,upload,abort,idle --server-pid $$pid $(SOAK_ARGS) || rc=$$?; \
	    kill -0 $$pid 2>/dev/null || { echo "soak: $$name died during the soak" >&2; rc=1; }; \
	    kill $$pid 2>/dev/null || true; wait $$pid 2>/dev/null || true; \
	    return $$rc; \
	}; \
	soak_one soak-echo sh -c 'exec c-examples/build/soak-echo -t 4 -a 127.0.0.1:$$PORT' || fails=$$((fails + 1)); \
	soak_one lf-echo sh -c 'exec spawn-fcgi -n -a 127.0.0.1 -p $$PORT -- c-examples/build/lf-echo' || fails=$$((fails + 1)); \
	[ $$fails -eq 0 ] || { echo "soak: $$fails of 2 soaks failed" >&2; exit 1; }; \
	echo "==> soak OK"

# build.rs regenerates include/fcgi.h on every build; the committed copy must match it.
check-header:
	@gen=$(RELEASE_DIR)/fcgi.h.generated; \
	if [ ! -f "$$gen" ]; then $(CARGO) build --release -p fcgi-runtime-capi --lib; fi; \
	if ! diff -u include/fcgi.h "$$gen"; then \
	    echo "check-header: include/fcgi.h differs from what src/ffi generates; run make header and commit it" >&2; \
	    exit 1; \
	fi; \
	echo "check-header: include/fcgi.h is up to date"

# Writes include/fcgi.h from src/ffi (cbindgen, in build.rs); the build itself only checks it.
header:
	FCGI_UPDATE_HEADER=1 $(CARGO) build --release -p fcgi-runtime-capi --lib


# tools/check-header-docs.py: every declaration of include/fcgi.h that takes or returns a
# pointer or a callback states ownership and lifetime ("Ownership:" lines; the convention is at
# the top of the header), and nothing follows the include guard. Its self-test first checks that
# broken copies of the header are rejected.
PYTHON ?= python3
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings
	tools/check-syscall-fence.sh
	$(PYTHON) tools/check-header-docs.py --self-test include/fcgi.h
	$(PYTHON) tools/check-header-docs.py include/fcgi.h

clean:
	$(CARGO) clean
	$(MAKE) -C c-examples clean

# ---- Installation ------------------------------------------------------------------------------
#
# Installs, under $(DESTDIR):
#   $(LIBDIR)/libfcgi.so.0.<minor>.<patch>  the shared library (0: libfcgi's ABI, the SONAME;
#                                           minor.patch: fcgi-runtime's version), with the links
#                                           libfcgi.so.0 (what programs load) and libfcgi.so (-lfcgi)
#   $(LIBDIR)/libfcgi.a                     the static library
#   $(INCLUDEDIR)/                          fcgi.h (native API) and libfcgi's headers: fcgiapp.h,
#                                           fcgi_stdio.h, fastcgi.h, fcgios.h, fcgi_config.h, fcgimisc.h
#   $(PKGCONFIGDIR)/fcgi-runtime.pc         pkg-config for the native API
#   $(PKGCONFIGDIR)/fcgi.pc                 pkg-config named like libfcgi's
# The .pc files name PREFIX/LIBDIR/INCLUDEDIR, never DESTDIR (a staging directory).

PREFIX       ?= /usr/local
DESTDIR      ?=
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
BUILDLIBDIR  ?= $(RELEASE_DIR)
INSTALL      ?= install
LDCONFIG     ?= ldconfig

VERSION      := $(shell sed -n 's/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml | head -n 1)
SO_REALNAME  := libfcgi.so.0.$(word 2,$(subst ., ,$(VERSION))).$(word 3,$(subst ., ,$(VERSION)))
HEADERS      := fcgi.h fcgiapp.h fcgi_stdio.h fastcgi.h fcgios.h fcgi_config.h fcgimisc.h
PC_FILES     := fcgi-runtime.pc fcgi.pc

# In the .pc files, libdir and includedir are written relative to ${prefix} when they lie
# below PREFIX, so `pkg-config --define-prefix` can relocate them.
pc_rel = $(if $(filter $(PREFIX)/%,$(1)),$${prefix}/$(patsubst $(PREFIX)/%,%,$(1)),$(1))

# Only when nothing was built yet (the release build, as `make build` does it).
$(RELEASE_DIR)/libfcgi.so $(RELEASE_DIR)/libfcgi.a:
	$(CARGO) build --release

install: $(BUILDLIBDIR)/libfcgi.so $(BUILDLIBDIR)/libfcgi.a $(addprefix include/,$(HEADERS)) \
         $(addprefix pkgconfig/,$(addsuffix .in,$(PC_FILES)))
	@[ -n '$(VERSION)' ] || { echo "install: no version in Cargo.toml" >&2; exit 1; }
	$(INSTALL) -d '$(DESTDIR)$(LIBDIR)' '$(DESTDIR)$(INCLUDEDIR)' '$(DESTDIR)$(PKGCONFIGDIR)'
	$(INSTALL) -m 755 '$(BUILDLIBDIR)/libfcgi.so' '$(DESTDIR)$(LIBDIR)/$(SO_REALNAME)'
	ln -sfn '$(SO_REALNAME)' '$(DESTDIR)$(LIBDIR)/libfcgi.so.0'
	ln -sfn '$(SO_REALNAME)' '$(DESTDIR)$(LIBDIR)/libfcgi.so'
	$(INSTALL) -m 644 '$(BUILDLIBDIR)/libfcgi.a' '$(DESTDIR)$(LIBDIR)/libfcgi.a'
	$(INSTALL) -m 644 $(addprefix include/,$(HEADERS)) '$(DESTDIR)$(INCLUDEDIR)/'
	@for pc in $(PC_FILES); do \
	    tmp='$(DESTDIR)$(PKGCONFIGDIR)/'".$$pc.tmp.$$$$"; \
	    sed -e 's|@PREFIX@|$(PREFIX)|g' \
	        -e 's|@LIBDIR@|$(call pc_rel,$(LIBDIR))|g' \
	        -e 's|@INCLUDEDIR@|$(call pc_rel,$(INCLUDEDIR))|g' \
	        -e 's|@VERSION@|$(VERSION)|g' "pkgconfig/$$pc.in" > "$$tmp"; \
	    echo "sed pkgconfig/$$pc.in > $(DESTDIR)$(PKGCONFIGDIR)/$$pc"; \
	    $(INSTALL) -m 644 "$$tmp" '$(DESTDIR)$(PKGCONFIGDIR)/'"$$pc"; rm -f "$$tmp"; \
	done
	@$(LDCONFIG_IF_LIVE)

# Removes only what install put there: the links when they still point at this library, and
# headers and .pc files that are still fcgi-runtime's (another package may have replaced them).
uninstall:
	rm -f '$(DESTDIR)$(LIBDIR)/$(SO_REALNAME)'
	@for l in libfcgi.so.0 libfcgi.so; do \
	    f='$(DESTDIR)$(LIBDIR)/'"$$l"; \
	    if [ -L "$$f" ] && [ "$$(readlink "$$f")" = '$(SO_REALNAME)' ]; then \
	        echo "rm -f $$f"; rm -f "$$f"; fi; \
	done
	rm -f '$(DESTDIR)$(LIBDIR)/libfcgi.a'
	@for f in $(addprefix '$(DESTDIR)$(INCLUDEDIR)'/,$(HEADERS)) \
	          $(addprefix '$(DESTDIR)$(PKGCONFIGDIR)'/,$(PC_FILES)); do \
	    if [ -f "$$f" ] && grep -qE 'FCGI_RUNTIME_COMPAT|fcgi-runtime' "$$f"; then \
	        echo "rm -f $$f"; rm -f "$$f"; \
	    elif [ -e "$$f" ]; then echo "uninstall: $$f is not fcgi-runtime's, kept" >&2; fi; \
	done
	@$(LDCONFIG_IF_LIVE)

# Refresh the dynamic loader's cache after a live (DESTDIR-less) install or uninstall as root.
LDCONFIG_IF_LIVE = if [ -z '$(DESTDIR)' ] && [ "$$(id -u)" = 0 ] && command -v $(LDCONFIG) >/dev/null; then \
	    echo "$(LDCONFIG)"; $(LDCONFIG); fi

# ---- Fuzzing (docs/fuzzing.md) -----------------------------------------------------------------
#
#   make fuzz-ci    every target for FUZZ_CI_SECS (60) seconds over a scratch copy of the
#                   committed corpus (target/fuzz-corpus-ci/); fails on any crash, timeout or OOM
#   make fuzz       long runs: FUZZ_SECS (600) per target, FUZZ_TARGETS (all), FUZZ_JOBS (1:
#                   more runs libFuzzer workers in parallel, logging to fuzz-N.log);
#                   the corpus grows in target/fuzz-corpus/<target> (outside git)
#   make fuzz-seeds regenerate the committed seed corpus (fuzz/corpus/) from its generator
#
# Works on stable Rust: RUSTC_BOOTSTRAP=1 lets stable rustc take the -Z flags cargo-fuzz
# passes (sanitizer, coverage); cargo-fuzz itself is installed from crates.io when missing.

FUZZ_TARGETS  ?= record nvpair engine engine_records framer acl
FUZZ_SECS     ?= 600
FUZZ_CI_SECS  ?= 60
FUZZ_JOBS     ?= 1
CARGO_FUZZ_VERSION := 0.13.1
FUZZ_FLAGS    := -rss_limit_mb=2048 -timeout=10 -max_len=65536 -print_final_stats=1
FUZZ_ENV      := RUSTC_BOOTSTRAP=1

.PHONY: fuzz fuzz-ci fuzz-build fuzz-seeds

fuzz-build:
	@if ! $(CARGO) fuzz --version 2>/dev/null | grep -q ' $(CARGO_FUZZ_VERSION)$$'; then \
	    echo "$(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION)"; \
	    $(CARGO) install cargo-fuzz --locked --version $(CARGO_FUZZ_VERSION); \
	fi
	$(FUZZ_ENV) $(CARGO) fuzz build

fuzz-ci: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    dir=target/fuzz-corpus-ci/$$t; rm -rf "$$dir"; mkdir -p "$$dir"; \
	    cp fuzz/corpus/$$t/* "$$dir"/ 2>/dev/null || true; \
	    echo "==> fuzz $$t for $(FUZZ_CI_SECS)s"; \
	    $(FUZZ_ENV) $(CARGO) fuzz run $$t "$$dir" -- $(FUZZ_FLAGS) \
	        -max_total_time=$(FUZZ_CI_SECS) >"target/fuzz-ci-$$t.log" 2>&1 || { \
	        tail -n 60 "target/fuzz-ci-$$t.log"; \
	        echo "fuzz-ci: $$t failed; the input is in fuzz/artifacts/$$t/ (docs/fuzzing.md)" >&2; \
	        exit 1; }; \
	    grep -E '^#[0-9]+[[:space:]]+DONE' "target/fuzz-ci-$$t.log" | tail -n 1 || true; \
	done

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	    dir=target/fuzz-corpus/$$t; mkdir -p "$$dir"; \
	    echo "==> fuzz $$t for $(FUZZ_SECS)s (corpus $$dir)"; \
	    $(FUZZ_ENV) $(CARGO) fuzz run $$t "$$dir" fuzz/corpus/$$t -- $(FUZZ_FLAGS) \
	        -max_total_time=$(FUZZ_SECS) \
	        $(if $(filter-out 1,$(FUZZ_JOBS)),-jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS)) || exit 1; \
	done

fuzz-seeds:
	rm -rf fuzz/corpus
	$(CARGO) run --release --manifest-path fuzz/Cargo.toml --example gen_corpus
