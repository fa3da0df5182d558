#!/bin/sh
# A CGI script run by Debian's fcgiwrap in tests/libfcgi_binaries.rs.
#
# QUERY_STRING selects what it does. The request body is read to the end first (fcgiwrap writes
# all of it to the script before it reads any output), except with mode=noread:
#   mode=noread          answers 200 "ignored" without reading the body (fcgiwrap then fails to
#                        write a large body to the script and answers 502 itself)
#   mode=echo (default)  200, text/plain: the CGI variables below and the body's length and SHA-256
#   mode=status          "Status: 500 Internal Server Error" with a short body
#   mode=fail            no output at all, a line on stderr, exit status 3
#   mode=warn            a line on stderr, then 200 with the body "warned"
#   mode=big&bytes=N     200 with N bytes "7"
#   mode=barrier&n=N     creates a file barrier.<pid> in its directory (fcgiwrap runs scripts
#                        there) and waits (at most 10 s) until N such files exist, so N requests
#                        are in progress at once; answers WORKER=<its parent, the fcgiwrap
#                        process> and ARRIVED=<files seen>
set -eu

case "${QUERY_STRING:-}" in
*mode=noread*)
    printf 'Content-Type: text/plain\r\n\r\nignored\n'
    exit 0
    ;;
esac

sum=$(sha256sum | cut -d ' ' -f 1)
len=${CONTENT_LENGTH:-0}

case "${QUERY_STRING:-}" in
*mode=status*)
    printf 'Status: 500 Internal Server Error\r\n'
    printf 'Content-Type: text/plain\r\n\r\n'
    printf 'script failed on purpose\n'
    ;;
*mode=fail*)
    echo "echo.cgi: failing on purpose" >&2
    exit 3
    ;;
*mode=warn*)
    echo "echo.cgi: a warning on stderr" >&2
    printf 'Content-Type: text/plain\r\n\r\n'
    printf 'warned\n'
    ;;
*mode=barrier*)
    n=$(printf '%s' "$QUERY_STRING" | sed -n 's/.*&n=\([0-9]*\).*/\1/p')
    : >"barrier.$$"
    i=0
    while [ "$(ls barrier.* | wc -l)" -lt "$n" ] && [ "$i" -lt 100 ]; do
        sleep 0.1
        i=$((i + 1))
    done
    printf 'Content-Type: text/plain\r\n\r\n'
    printf 'WORKER=%s\n' "$PPID"
    printf 'ARRIVED=%s\n' "$(ls barrier.* | wc -l)"
    ;;
*mode=big*)
    bytes=$(printf '%s' "$QUERY_STRING" | sed -n 's/.*bytes=\([0-9]*\).*/\1/p')
    printf 'Content-Type: application/octet-stream\r\n\r\n'
    head -c "$bytes" /dev/zero | tr '\0' '7'
    ;;
*)
    printf 'Content-Type: text/plain\r\n'
    printf 'X-CGI: echo.cgi\r\n\r\n'
    printf 'REQUEST_METHOD=%s\n' "${REQUEST_METHOD:-}"
    printf 'QUERY_STRING=%s\n' "${QUERY_STRING:-}"
    printf 'CONTENT_LENGTH=%s\n' "$len"
    printf 'GATEWAY_INTERFACE=%s\n' "${GATEWAY_INTERFACE:-}"
    printf 'SCRIPT_NAME=%s\n' "${SCRIPT_NAME:-}"
    printf 'BODY_SHA256=%s\n' "$sum"
    ;;
esac
