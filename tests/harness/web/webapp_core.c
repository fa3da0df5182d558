/*
 * webapp_core.c - the request handler of the web-server matrix's test application, shared by
 * its two faces: webapp.c (the native API, fcgi.h) and lf_webapp.c (the libfcgi API,
 * fcgiapp.h). Each face #includes this file and supplies a `struct web_io`.
 *
 * What a request gets depends on its QUERY_STRING (an &-separated list of KEY=VALUE):
 *
 *   hold=PATH       first log "webapp: waiting at PATH" and wait until the file PATH exists
 *                   (the test opens the gate; gives up after 120 s)
 *   sleep_ms=N      then sleep N ms
 *   progress=N      log "webapp: body reached N" once N bytes of the body have been read
 *   bytes=N         answer N bytes of "abcdefghijklmnopqrstuvwxyz" repeated, with
 *                   Content-Length, in 64 KiB writes (the body is read and dropped first)
 *   pieces=K        answer "piece 0\n" ... "piece K-1\n", each written and flushed on its
 *   gates=PREFIX    own; before piece i > 0 wait (as hold=) for the file PREFIX.i
 *   hdr=N           add the response header "X-Big: " followed by N 'h' (echo answer)
 *   status=N        add the response header "Status: N" (echo answer)
 *
 * Otherwise (and with hdr=) the answer is c-examples/echo's, exactly:
 *   Content-Type: text/plain\r\n\r\n
 *   NAME=VALUE\n            one line per param, in the face's order: envp's (arrival order,
 *                           FCGI_ROLE first) for lf_webapp, fcgi_loadenv's (PHP's: the last
 *                           param to arrive first, FCGI_ROLE last) for webapp
 *   STDIN_LENGTH=<n>\n      bytes read from the body until the end (or an error)
 *   STDIN_FNV1A64=<hex>\n   64-bit FNV-1a of those bytes, 16 lowercase hex digits
 *
 * Failures are logged on stderr, which the tests read:
 *   "webapp: body cut after X of CONTENT_LENGTH bytes (read error|early end)"
 *                                                        the body failed or ended early
 *   "webapp: write failed after X of N bytes"            bytes= could not be sent
 *   "webapp: write failed at piece I"                    pieces= could not be sent
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "query.h"

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)
#define IN_SIZE (64 * 1024)
#define GATE_GIVE_UP_MS 120000

typedef void (*web_param_fn)(void *arg, const char *name, size_t nlen, const char *val,
                             size_t vlen);

/* One request, as a face presents it. */
struct web_io {
    void *ctx;
    /* > 0 bytes read, 0 at the end of the body, < 0 on an error or an aborted request */
    int (*read)(void *ctx, char *buf, int len);
    /* len, or -1 */
    int (*write)(void *ctx, const char *buf, int len);
    /* 0, or -1 */
    int (*flush)(void *ctx);
    /* the param's value or NULL */
    const char *(*getenv)(void *ctx, const char *name);
    /* calls fn for each param, in the face's order (envp's, or fcgi_loadenv's) */
    void (*each_param)(void *ctx, web_param_fn fn, void *arg);
};

struct buf {
    char *data;
    size_t len, cap;
    int oom;
};

static void buf_append(struct buf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n)
            cap *= 2;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

static void append_param(void *arg, const char *name, size_t nlen, const char *val, size_t vlen)
{
    struct buf *b = arg;
    buf_append(b, name, nlen);
    buf_append(b, "=", 1);
    buf_append(b, val, vlen);
    buf_append(b, "\n", 1);
}

static unsigned long long query_num(const char *qs, const char *key, unsigned long long dflt)
{
    char v[32];
    if (!query_param(qs, key, v, sizeof v))
        return dflt;
    return strtoull(v, NULL, 10);
}

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Logs, then waits until the file `path` exists. */
static void wait_gate(const char *path)
{
    fprintf(stderr, "webapp: waiting at %s\n", path);
    fflush(stderr);
    for (unsigned long waited = 0; access(path, F_OK) != 0; waited += 5) {
        if (waited >= GATE_GIVE_UP_MS) {
            fprintf(stderr, "webapp: gave up waiting at %s\n", path);
            fflush(stderr);
            return;
        }
        sleep_ms(5);
    }
}

static int write_all(struct web_io *io, const char *p, size_t n)
{
    while (n > 0) {
        int len = n > (1u << 20) ? (1 << 20) : (int)n;
        if (io->write(io->ctx, p, len) != len)
            return -1;
        p += len;
        n -= (size_t)len;
    }
    return 0;
}

/* Reads the body to its end; returns its length and sets *hash. Logs a cut body. */
static unsigned long long read_body(struct web_io *io, const char *qs, char *inbuf,
                                    uint64_t *hash)
{
    unsigned long long total = 0, progress = query_num(qs, "progress", 0);
    int reported = progress == 0;
    int failed = 0;
    *hash = FNV_OFFSET;
    for (;;) {
        int n = io->read(io->ctx, inbuf, IN_SIZE);
        if (n < 0)
            failed = 1;
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            *hash ^= (unsigned char)inbuf[i];
            *hash *= FNV_PRIME;
        }
        total += (unsigned long long)n;
        if (!reported && total >= progress) {
            fprintf(stderr, "webapp: body reached %llu\n", progress);
            fflush(stderr);
            reported = 1;
        }
    }
    const char *cl = io->getenv(io->ctx, "CONTENT_LENGTH");
    unsigned long long want = cl && *cl ? strtoull(cl, NULL, 10) : 0;
    if (failed || (cl && *cl && total != want)) {
        fprintf(stderr, "webapp: body cut after %llu of %s bytes (%s)\n", total, cl ? cl : "?",
                failed ? "read error" : "early end");
        fflush(stderr);
    }
    return total;
}

static void answer_bytes(struct web_io *io, unsigned long long n)
{
    static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz";
    static char chunk[64 * 26 * 40]; /* 66,560 bytes: whole alphabets, so chunks line up */
    if (chunk[0] == '\0')
        for (size_t i = 0; i < sizeof chunk; i++)
            chunk[i] = alphabet[i % 26];
    char head[128];
    int hl = snprintf(head, sizeof head,
                      "Content-Type: application/octet-stream\r\nContent-Length: %llu\r\n\r\n", n);
    if (write_all(io, head, (size_t)hl) != 0) {
        fprintf(stderr, "webapp: write failed after 0 of %llu bytes\n", n);
        return;
    }
    unsigned long long sent = 0;
    while (sent < n) {
        size_t len = n - sent < sizeof chunk ? (size_t)(n - sent) : sizeof chunk;
        if (write_all(io, chunk, len) != 0) {
            fprintf(stderr, "webapp: write failed after %llu of %llu bytes\n", sent, n);
            fflush(stderr);
            return;
        }
        sent += len;
    }
}

static void answer_pieces(struct web_io *io, unsigned long long k, const char *gates)
{
    static const char head[] = "Content-Type: text/plain\r\n\r\n";
    char line[64], gate[600];
    if (write_all(io, head, sizeof head - 1) != 0) {
        fprintf(stderr, "webapp: write failed at piece 0\n");
        return;
    }
    for (unsigned long long i = 0; i < k; i++) {
        if (i > 0) {
            snprintf(gate, sizeof gate, "%s.%llu", gates, i);
            wait_gate(gate);
        }
        int n = snprintf(line, sizeof line, "piece %llu\n", i);
        if (write_all(io, line, (size_t)n) != 0 || io->flush(io->ctx) != 0) {
            fprintf(stderr, "webapp: write failed at piece %llu\n", i);
            fflush(stderr);
            return;
        }
    }
}

/* Serves one request. `out` and `inbuf` (IN_SIZE bytes) belong to the calling thread. */
static void web_handle(struct web_io *io, struct buf *out, char *inbuf)
{
    const char *qs = io->getenv(io->ctx, "QUERY_STRING");
    char path[512];
    uint64_t hash;
    if (!qs)
        qs = "";

    if (query_param(qs, "hold", path, sizeof path))
        wait_gate(path);
    unsigned long long ms = query_num(qs, "sleep_ms", 0);
    if (ms > 0)
        sleep_ms((unsigned long)ms);

    unsigned long long k = query_num(qs, "pieces", 0);
    if (k > 0) {
        read_body(io, qs, inbuf, &hash);
        answer_pieces(io, k, query_param(qs, "gates", path, sizeof path) ? path : "/nonexistent");
        return;
    }
    if (query_param(qs, "bytes", path, sizeof path)) {
        read_body(io, qs, inbuf, &hash);
        answer_bytes(io, strtoull(path, NULL, 10));
        return;
    }

    out->len = 0;
    out->oom = 0;
    unsigned long long code = query_num(qs, "status", 0);
    if (code > 0) {
        char st[32];
        int n = snprintf(st, sizeof st, "Status: %llu\r\n", code);
        buf_append(out, st, (size_t)n);
    }
    unsigned long long big = query_num(qs, "hdr", 0);
    if (big > 0) {
        buf_append(out, "X-Big: ", 7);
        for (unsigned long long i = 0; i < big; i++)
            buf_append(out, "h", 1);
        buf_append(out, "\r\n", 2);
    }
    static const char head[] = "Content-Type: text/plain\r\n\r\n";
    buf_append(out, head, sizeof head - 1);
    io->each_param(io->ctx, append_param, out);
    unsigned long long total = read_body(io, qs, inbuf, &hash);
    char tail[96];
    int tlen = snprintf(tail, sizeof tail, "STDIN_LENGTH=%llu\nSTDIN_FNV1A64=%016" PRIx64 "\n",
                        total, hash);
    buf_append(out, tail, (size_t)tlen);
    if (out->oom) {
        static const char err[] = "Status: 500\r\nContent-Type: text/plain\r\n\r\nout of memory\n";
        write_all(io, err, sizeof err - 1);
    } else {
        write_all(io, out->data, out->len);
    }
}

/* Parses "-t THREADS -a ADDR"; returns 0, or 2 after printing usage. */
static int web_args(int argc, char **argv, long *threads, const char **addr)
{
    int opt;
    *threads = 1;
    *addr = NULL;
    while ((opt = getopt(argc, argv, "a:t:")) != -1) {
        if (opt == 'a') {
            *addr = optarg;
        } else if (opt == 't') {
            *threads = strtol(optarg, NULL, 10);
            if (*threads < 1 || *threads > 256) {
                fprintf(stderr, "%s: -t wants 1 to 256\n", argv[0]);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [-t THREADS] [-a ADDR]   (else fd 0 listens)\n", argv[0]);
            return 2;
        }
    }
    return 0;
}
