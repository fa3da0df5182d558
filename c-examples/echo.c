/*
 * echo.c - a multi-threaded fcgi-runtime application that echoes what it received.
 *
 *   echo [-t THREADS] [-a ADDR]
 *
 * ADDR is "port", "host:port", "[v6]:port" or a Unix path; without -a the address comes from
 * the environment variable FCGI_ADDR, else fd 0 must be a listening socket. Each of the THREADS
 * threads (default 1) owns one fcgi_request and runs its own accept loop on the shared socket.
 *
 * The response is, exactly:
 *   Content-Type: text/plain\r\n\r\n
 *   NAME=VALUE\n            one line per variable, in fcgi_loadenv's order (PHP's: the
 *                           last param to arrive first, FCGI_ROLE last)
 *   STDIN_LENGTH=<n>\n      bytes read from STDIN with fcgi_read until it returned 0 (or < 0)
 *   STDIN_FNV1A64=<hex>\n   64-bit FNV-1a of those bytes, 16 lowercase hex digits
 *
 * With QUERY_STRING containing sleep_ms=N the thread sleeps N ms before reading the body.
 * Like every native-API program it advertises FCGI_MPXS_CONNS=0 (fcgi_init does, as PHP's
 * layer): a second request on a busy connection is refused. FCGI_RUNTIME_MPXS_CONNS=1 in the
 * environment lets web servers multiplex (a program can also call
 * fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1) itself).
 * Exits 0 once every thread's fcgi_accept_request has returned -1. Installs no signal handlers.
 */
#include <errno.h>
#include <fcgi.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FNV_OFFSET UINT64_C(0xcbf29ce484222325)
#define FNV_PRIME UINT64_C(0x100000001b3)
#define MAX_THREADS 1024
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

static const char *query_param(const char *qs, const char *key)
{
    size_t klen = strlen(key);
    const char *p = qs;
    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=')
            return p + klen + 1;
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return NULL;
}

static void sleep_ms(unsigned long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Writes the whole buffer; fcgi_write takes an int length, so large buffers go in pieces. */
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

static void *serve(void *arg)
{
    (void)arg;
    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    if (!req) {
        fprintf(stderr, "echo: fcgi_init_request failed\n");
        return NULL;
    }
    struct buf out = {0};
    char *inbuf = malloc(IN_SIZE);
    if (!inbuf) {
        fprintf(stderr, "echo: out of memory\n");
        fcgi_destroy_request(req);
        return NULL;
    }

    while (fcgi_accept_request(req) >= 0) {
        out.len = 0;
        out.oom = 0;

        const char *qs = fcgi_getenv(req, "QUERY_STRING", (int)strlen("QUERY_STRING"));
        const char *sl = qs ? query_param(qs, "sleep_ms") : NULL;
        if (sl) {
            unsigned long ms = strtoul(sl, NULL, 10);
            if (ms > 0)
                sleep_ms(ms);
        }

        static const char head[] = "Content-Type: text/plain\r\n\r\n";
        buf_append(&out, head, sizeof head - 1);
        fcgi_loadenv(req, append_param, &out);

        uint64_t hash = FNV_OFFSET;
        unsigned long long total = 0;
        for (;;) {
            int n = fcgi_read(req, inbuf, IN_SIZE);
            if (n <= 0)
                break;
            for (int i = 0; i < n; i++) {
                hash ^= (unsigned char)inbuf[i];
                hash *= FNV_PRIME;
            }
            total += (unsigned long long)n;
        }

        char tail[96];
        int tlen = snprintf(tail, sizeof tail, "STDIN_LENGTH=%llu\nSTDIN_FNV1A64=%016" PRIx64 "\n",
                            total, hash);
        buf_append(&out, tail, (size_t)tlen);

        if (out.oom) {
            static const char err[] = "Status: 500\r\nContent-Type: text/plain\r\n\r\nout of memory\n";
            fcgi_write(req, FCGI_STDOUT, err, (int)sizeof err - 1);
        } else {
            write_all(req, out.data, out.len);
        }
        fcgi_finish_request(req, 0);
    }

    free(out.data);
    free(inbuf);
    fcgi_destroy_request(req);
    return NULL;
}

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s [-t THREADS] [-a ADDR]   (or FCGI_ADDR=ADDR, or a listening socket on fd 0)\n",
            argv0);
}

int main(int argc, char **argv)
{
    const char *addr = NULL;
    long threads = 1;
    int opt;
    while ((opt = getopt(argc, argv, "a:t:h")) != -1) {
        switch (opt) {
        case 'a':
            addr = optarg;
            break;
        case 't': {
            char *end;
            threads = strtol(optarg, &end, 10);
            if (*optarg == '\0' || *end != '\0' || threads < 1 || threads > MAX_THREADS) {
                fprintf(stderr, "%s: -t wants a number from 1 to %d\n", argv[0], MAX_THREADS);
                return 2;
            }
            break;
        }
        case 'h':
            usage(argv[0]);
            return 0;
        default:
            usage(argv[0]);
            return 2;
        }
    }

    fcgi_init();
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
        usage(argv[0]);
        return 2;
    }

    pthread_t tids[MAX_THREADS];
    long started = 0;
    for (long i = 0; i < threads; i++) {
        int rc = pthread_create(&tids[i], NULL, serve, NULL);
        if (rc != 0) {
            fprintf(stderr, "%s: pthread_create: %s\n", argv[0], strerror(rc));
            break;
        }
        started++;
    }
    for (long i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    return started == threads ? 0 : 1;
}
