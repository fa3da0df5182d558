/*
 * soak-echo.c - the native-API test subject of `fcgi-bench soak` (docs/soak.md): a
 * multi-threaded echo that answers like lf-echo.c, so one checker serves both APIs.
 *
 *   soak-echo [-t THREADS] [-a ADDR] [-L BYTES] [-C N]
 *                                      (or FCGI_ADDR=ADDR, or a listening socket on fd 0)
 *
 * Each of the THREADS threads (default 4) owns one fcgi_request. The response is, exactly:
 *
 *   Content-Type: text/plain\r\n\r\n
 *   NAME=VALUE\n            one line per variable, in fcgi_loadenv's order (PHP's: the
 *                           last param to arrive first, FCGI_ROLE last)
 *   STDIN_LENGTH=<n>\n      bytes read from STDIN until fcgi_read returned 0 (or < 0)
 *   STDIN_FNV1A64=<hex>\n   64-bit FNV-1a of those bytes, 16 lowercase hex digits
 *   <the STDIN bytes>
 *
 * Faults, for testing that the soak notices them (tests/tools/fcgi_bench.rs; never use them otherwise):
 *   -L BYTES   leak that many bytes (written, so resident) per request
 *   -C N       every N-th request (per thread) echoes its body one byte short
 * Exits 0 once every thread's fcgi_accept_request has returned -1.
 */
#include <fcgi.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 256
#define IN_SIZE (64 * 1024)

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

static void append_param(const char *var, unsigned int var_len, char *val, unsigned int val_len,
                         void *arg)
{
    struct buf *b = arg;
    buf_append(b, var, var_len);
    buf_append(b, "=", 1);
    buf_append(b, val, val_len);
    buf_append(b, "\n", 1);
}

static int write_all(fcgi_request *req, const char *p, size_t n)
{
    while (n > 0) {
        int len = n > (1u << 20) ? (1 << 20) : (int)n;
        if (fcgi_write(req, FCGI_STDOUT, p, len) != len)
            return -1;
        p += len;
        n -= (size_t)len;
    }
    return 0;
}

static int listen_fd = -1;
static size_t leak_bytes;
static unsigned long corrupt_every;

static void *serve(void *arg)
{
    (void)arg;
    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    struct buf head = {0}, body = {0};
    char *in = malloc(IN_SIZE);
    unsigned long served = 0;
    if (!req || !in) {
        fprintf(stderr, "soak-echo: cannot set up a request\n");
        free(in);
        if (req)
            fcgi_destroy_request(req);
        return NULL;
    }
    while (fcgi_accept_request(req) >= 0) {
        served++;
        head.len = body.len = 0;
        head.oom = body.oom = 0;
        static const char ct[] = "Content-Type: text/plain\r\n\r\n";
        buf_append(&head, ct, sizeof ct - 1);
        fcgi_loadenv(req, append_param, &head);
        uint64_t hash = UINT64_C(0xcbf29ce484222325);
        for (;;) {
            int n = fcgi_read(req, in, IN_SIZE);
            if (n <= 0)
                break;
            for (int i = 0; i < n; i++) {
                hash ^= (unsigned char)in[i];
                hash *= UINT64_C(0x100000001b3);
            }
            buf_append(&body, in, (size_t)n);
        }
        char tail[96];
        int tlen = snprintf(tail, sizeof tail, "STDIN_LENGTH=%zu\nSTDIN_FNV1A64=%016" PRIx64 "\n",
                            body.len, hash);
        buf_append(&head, tail, (size_t)tlen);
        if (leak_bytes) {
            char *p = malloc(leak_bytes);
            if (p)
                memset(p, 0x5a, leak_bytes); /* deliberately never freed */
        }
        size_t blen = body.len;
        if (corrupt_every && served % corrupt_every == 0 && blen > 0)
            blen--;
        if (head.oom || body.oom) {
            static const char err[] = "Status: 500\r\nContent-Type: text/plain\r\n\r\nout of memory\n";
            fcgi_write(req, FCGI_STDOUT, err, (int)sizeof err - 1);
        } else if (write_all(req, head.data, head.len) == 0) {
            write_all(req, body.data, blen);
        }
        fcgi_finish_request(req, 0);
    }
    free(head.data);
    free(body.data);
    free(in);
    fcgi_destroy_request(req);
    return NULL;
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    long threads = 4;
    int opt;
    while ((opt = getopt(argc, argv, "a:t:L:C:")) != -1) {
        if (opt == 'L') {
            leak_bytes = strtoul(optarg, NULL, 10);
        } else if (opt == 'C') {
            corrupt_every = strtoul(optarg, NULL, 10);
        } else if (opt == 'a') {
            addr = optarg;
        } else if (opt == 't') {
            threads = strtol(optarg, NULL, 10);
            if (threads < 1 || threads > MAX_THREADS) {
                fprintf(stderr, "%s: -t wants 1..%d\n", argv[0], MAX_THREADS);
                return 2;
            }
        } else {
            fprintf(stderr, "usage: %s [-t THREADS] [-a ADDR] [-L BYTES] [-C N]\n", argv[0]);
            return 2;
        }
    }
    fcgi_init();
    /* The soak multiplexes (its mux kind): say so, since the native face advertises
       FCGI_MPXS_CONNS=0, as PHP's layer does, unless the application opts in. */
    fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1);
    if (!addr)
        addr = getenv("FCGI_ADDR");
    if (addr && *addr) {
        listen_fd = fcgi_listen(addr, 128);
        if (listen_fd < 0) {
            fprintf(stderr, "%s: cannot listen on %s\n", argv[0], addr);
            return 1;
        }
    } else if (fcgi_is_fastcgi()) {
        listen_fd = 0;
    } else {
        fprintf(stderr, "%s: no address given and fd 0 is not a listening socket\n", argv[0]);
        return 2;
    }
    pthread_t tids[MAX_THREADS];
    long started = 0;
    for (; started < threads; started++)
        if (pthread_create(&tids[started], NULL, serve, NULL) != 0)
            break;
    for (long i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return started == threads ? 0 : 1;
}
