#!/usr/bin/env bash
# make php: PHP 8.2 from Debian's source package with cgi, fpm, cli, pcntl, posix and session,
# compiled once and linked twice:
#
#   target/php-stock/   bin/php, bin/php-cgi and sbin/php-fpm as PHP's own Makefile links them
#                       (FastCGI layer: main/fastcgi.c), copied from the tree;
#   target/php/         the same objects with php-cgi and php-fpm relinked on the project's
#                       libfcgi.so (PHP_FASTCGI_OBJS emptied) plus php/fcgi_log_glue.o, installed
#                       by PHP's make install (etc/, lib/php/, ... with them).
#
# The two builds differ in nothing but the link of php-cgi and php-fpm (both have target/php as
# their compiled-in prefix; every test and benchmark names its configuration). Steps, each
# skipped when its result is already there (a second run only lets PHP's make find nothing to
# do):
#
#   1. the source: `apt-get source --download-only php8.2=$PHP_DEB_VERSION` into
#      target/php-src/; when that fails, a deb-src entry is added for the Debian archives of
#      the existing deb entries (root, or sudo) and the package lists are updated;
#   2. the orig tarball extracted into target/php-build/php-<version>/ (its generated configure
#      and parsers are used; Debian's patches are not needed);
#   3. ./configure --prefix=target/php $PHP_CONFIGURE_ARGS, again only when the arguments
#      changed;
#   4. make -j$PHP_JOBS, which links php-cgi and php-fpm the stock way; those two and the cli
#      are copied to target/php-stock/;
#   5. php-cgi and php-fpm relinked in the tree (when they are not on libfcgi.so.0 or are older
#      than the glue object), and make install with the same variables into target/php/;
#   6. a check that the relinked binaries need libfcgi.so.0 and define no fcgi_* function
#      themselves, and that the stock ones need no libfcgi.
#
# Variables: PHP_DEB_VERSION (8.2.32-1~deb12u1: the newest security version's source is not
# always on the mirror), PHP_JOBS (nproc), FCGI_LIB_DIR (target/release: libfcgi.so and
# fcgi_log_glue.o, built by `make build`).
#
# Usage: php/build.sh [source] (source: step 1 only, as .ci/run does before the long steps).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PHP_DEB_VERSION=${PHP_DEB_VERSION:-8.2.32-1~deb12u1}
PHP_JOBS=${PHP_JOBS:-$(nproc)}
FCGI_LIB_DIR=$(realpath -m "${FCGI_LIB_DIR:-target/release}")
SRC_DIR=$ROOT/target/php-src
BUILD_DIR=$ROOT/target/php-build
GLUE=$FCGI_LIB_DIR/fcgi_log_glue.o
PHP_CONFIGURE_ARGS=(--disable-all --enable-cgi --enable-fpm --enable-pcntl --enable-posix
    --enable-session --disable-phpdbg --without-pear)

upstream=${PHP_DEB_VERSION#*:}   # no epoch
upstream=${upstream%-*}          # no Debian revision
TARBALL=$SRC_DIR/php8.2_$upstream.orig.tar.xz

log() { printf '==> php: %s\n' "$*"; }
die() { printf 'php: %s\n' "$*" >&2; exit 1; }

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

# deb-src twins of the Debian archive entries (URIs containing /debian) of the deb lines and
# deb822 stanzas in apt's configuration, written to sources.list.d/fcgi-runtime-src.{list,sources}.
add_deb_src() {
    local dir=/etc/apt/sources.list.d lines stanzas
    lines=$(for f in /etc/apt/sources.list "$dir"/*.list; do [ ! -f "$f" ] || cat "$f"; done |
        sed -n 's/^[[:space:]]*deb\([[:space:]].*\/debian.*\)$/deb-src\1/p')
    stanzas=$(for f in "$dir"/*.sources; do [ ! -f "$f" ] || { cat "$f"; echo; }; done |
        awk -v RS= -v ORS='\n\n' '
            /(^|\n)Types:[^\n]*(^|[ \t])deb([ \t]|\n|$)/ && /(^|\n)URIs:[^\n]*\/debian/ &&
            !/(^|\n)Enabled:[ \t]*no/ {
                sub(/(^|\n)Types:[^\n]*/, "\nTypes: deb-src"); sub(/^\n/, ""); print }')
    [ -n "$lines$stanzas" ] || die "no Debian deb entry in /etc/apt to derive a deb-src one from"
    if [ -n "$lines" ]; then
        log "adding $dir/fcgi-runtime-src.list"
        printf '%s\n' "$lines" | $SUDO tee "$dir/fcgi-runtime-src.list" >/dev/null
    fi
    if [ -n "$stanzas" ]; then
        log "adding $dir/fcgi-runtime-src.sources"
        printf '%s\n' "$stanzas" | $SUDO tee "$dir/fcgi-runtime-src.sources" >/dev/null
    fi
}

fetch_source() {
    [ -f "$TARBALL" ] && return
    command -v apt-get >/dev/null || die "apt-get is missing: put $TARBALL there by hand"
    mkdir -p "$SRC_DIR"
    local get=(apt-get source --download-only "php8.2=$PHP_DEB_VERSION")
    log "${get[*]} (in $SRC_DIR)"
    if ! (cd "$SRC_DIR" && "${get[@]}"); then
        if ! grep -qsE '^[[:space:]]*(deb-src[[:space:]]|Types:.*deb-src)' \
            /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources
        then
            add_deb_src
        fi
        $SUDO apt-get update -q
        (cd "$SRC_DIR" && "${get[@]}") || die "cannot download the source of php8.2=$PHP_DEB_VERSION \
(set PHP_DEB_VERSION to a version apt-cache showsrc php8.2 lists)"
    fi
    [ -f "$TARBALL" ] || die "apt-get source left no $TARBALL"
}

# The source tree $1, extracted once (into a temporary name, renamed when complete).
extract() {
    local tree=$1
    [ ! -d "$tree" ] || return 0
    log "extracting $(basename "$TARBALL") into $tree"
    rm -rf "$tree.tmp" && mkdir -p "$tree.tmp"
    tar -xf "$TARBALL" -C "$tree.tmp" --strip-components=1
    mv "$tree.tmp" "$tree"
}

configure() {
    local tree=$1 prefix=$2 args
    args="--prefix=$prefix ${PHP_CONFIGURE_ARGS[*]}"
    if [ -f "$tree/config.status" ] && [ "$(cat "$tree/.configure-args" 2>/dev/null)" = "$args" ]; then
        return
    fi
    log "configure $args"
    rm -f "$tree/.configure-args"
    # shellcheck disable=SC2086 # word splitting intended: the arguments have no spaces
    (cd "$tree" && ./configure $args >configure.log 2>&1) ||
        { tail -n 30 "$tree/configure.log"; die "configure failed (log: $tree/configure.log)"; }
    echo "$args" >"$tree/.configure-args"
}

# EXTRA_LIBS of the generated Makefile with the library, its rpath and the glue object added.
relink_vars() {
    local tree=$1 extra
    extra=$(sed -n 's/^EXTRA_LIBS = //p' "$tree/Makefile")
    echo "PHP_FASTCGI_OBJS="
    echo "EXTRA_LIBS=$extra $GLUE -L$FCGI_LIB_DIR -lfcgi -Wl,-rpath,$FCGI_LIB_DIR"
}

# (grep reads everything: with grep -q, pipefail would see the writer's SIGPIPE.)
needs_libfcgi() { readelf -d "$1" 2>/dev/null | grep 'NEEDED.*\[libfcgi\.so\.0\]' >/dev/null; }
defines_fcgi() { nm "$1" 2>/dev/null | grep -E ' [Tt] fcgi_accept_request$' >/dev/null; }

# Copies $1 to $2 when $2 is missing or differs.
copy_if_changed() {
    if ! cmp -s "$1" "$2"; then
        mkdir -p "$(dirname "$2")"
        cp "$1" "$2.tmp" && mv "$2.tmp" "$2"
    fi
}

build() {
    local tree=$BUILD_DIR/php-$upstream stock=$ROOT/target/php-stock prefix=$ROOT/target/php
    local cgi=$tree/sapi/cgi/php-cgi fpm=$tree/sapi/fpm/php-fpm b
    [ -f "$FCGI_LIB_DIR/libfcgi.so" ] && [ -f "$GLUE" ] ||
        die "no libfcgi.so or fcgi_log_glue.o in $FCGI_LIB_DIR: run make build first"
    extract "$tree"
    configure "$tree" "$prefix"

    # The stock binaries come from PHP's own link: redo it when the copies are gone and the tree
    # holds the relinked ones.
    if [ ! -x "$stock/bin/php-cgi" ] || [ ! -x "$stock/sbin/php-fpm" ]; then
        for b in "$cgi" "$fpm"; do
            if needs_libfcgi "$b"; then rm -f "$b"; fi
        done
    fi
    log "make -j$PHP_JOBS"
    make -C "$tree" -j"$PHP_JOBS" >"$tree/make.log" 2>&1 ||
        { tail -n 30 "$tree/make.log"; die "make failed (log: $tree/make.log)"; }
    copy_if_changed "$tree/sapi/cli/php" "$stock/bin/php"
    # Freshly linked by PHP's make: the stock binaries, to copy and then relink.
    local stale=
    if ! needs_libfcgi "$cgi"; then copy_if_changed "$cgi" "$stock/bin/php-cgi"; stale=1; fi
    if ! needs_libfcgi "$fpm"; then copy_if_changed "$fpm" "$stock/sbin/php-fpm"; stale=1; fi
    if [ "$GLUE" -nt "$cgi" ] || [ "$GLUE" -nt "$fpm" ]; then stale=1; fi

    local vars=()
    mapfile -t vars < <(relink_vars "$tree")
    if [ -n "$stale" ]; then
        log "relink php-cgi and php-fpm: make ${vars[*]}"
        rm -f "$cgi" "$fpm"
        make -C "$tree" "${vars[@]}" sapi/cgi/php-cgi sapi/fpm/php-fpm >>"$tree/make.log" 2>&1 ||
            { tail -n 30 "$tree/make.log"; die "relink failed (log: $tree/make.log)"; }
    fi
    if [ ! -f "$prefix/.installed" ] || [ "$tree/sapi/cli/php" -nt "$prefix/.installed" ] ||
        [ "$cgi" -nt "$prefix/.installed" ] || [ "$fpm" -nt "$prefix/.installed" ]; then
        log "make install (prefix $prefix)"
        # The relink variables again, so that make install never links stock binaries here.
        make -C "$tree" "${vars[@]}" install >"$tree/install.log" 2>&1 ||
            { tail -n 30 "$tree/install.log"; die "make install failed (log: $tree/install.log)"; }
        touch "$prefix/.installed"
    fi

    for b in "$prefix/bin/php-cgi" "$prefix/sbin/php-fpm"; do
        needs_libfcgi "$b" || die "$b does not need libfcgi.so.0"
        ! defines_fcgi "$b" || die "$b still contains PHP's FastCGI layer"
    done
    for b in "$stock/bin/php-cgi" "$stock/sbin/php-fpm"; do
        ! needs_libfcgi "$b" || die "$b (stock) needs libfcgi.so.0"
        defines_fcgi "$b" || die "$b (stock) lacks PHP's FastCGI layer"
    done
    log "stock:    $stock/bin/php $stock/bin/php-cgi $stock/sbin/php-fpm"
    log "relinked: $prefix/bin/php $prefix/bin/php-cgi $prefix/sbin/php-fpm"
}

case "${1:-}" in
    "") fetch_source; build ;;
    source) fetch_source ;;
    *) die "usage: php/build.sh [source]" ;;
esac
