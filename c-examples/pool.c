/*
 * pool.c - a pre-forked pool run by the library: the parent supervises, workers serve.
 *
 *   pool [NAME=VALUE ...]     pool settings (pm=dynamic, max_children=8, max_requests=500, ...)
 *
 * Listens on FCGI_ADDR when set; otherwise the pool serves the sockets systemd passes
 * (LISTEN_FDS) or the socket on fd 0. PHP_FCGI_CHILDREN and PHP_FCGI_MAX_REQUESTS give the
 * defaults, as with php-cgi. Signals to the parent: SIGTERM fast stop, SIGQUIT graceful stop,
 * SIGHUP reload. Each response is "PID=<worker pid>\nWORKER=<index>\n".
 *
 * For the tests, QUERY_STRING may hold: sleep_ms=N (answer after N ms), hold=PATH (answer once
 * the file PATH exists), crash=1 (abort() mid-request).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcgi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The value of NAME=... in a query string, copied into buf (empty if absent). */
static const char *query_value(const char *qs, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    buf[0] = '\0';
    for (const char *p = qs; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
        if (strncmp(p, name, n) == 0 && p[n] == '=') {
            size_t v = strcspn(p + n + 1, "&");
            if (v >= len)
                v = len - 1;
            memcpy(buf, p + n + 1, v);
            buf[v] = '\0';
            break;
        }
    }
    return buf;
}

/* Sleeps the whole time: a signal (the pool's SIGUSR1 or SIGCHLD) resumes the sleep with what
 * is left instead of cutting it short. */
static void pause_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

static void serve(int fd, int index)
{
    fcgi_request *req = fcgi_init_request(fd, NULL, NULL, NULL);
    char out[256], v[256];
    if (!req)
        return;
    while (fcgi_accept_request(req) >= 0) {
        const char *qs = fcgi_getenv(req, "QUERY_STRING", (int)strlen("QUERY_STRING"));
        if (*query_value(qs, "crash", v, sizeof v))
            abort();
        if (*query_value(qs, "sleep_ms", v, sizeof v))
            pause_ms(atol(v));
        if (*query_value(qs, "hold", v, sizeof v)) {
            fprintf(stderr, "pool: %d waiting at %s\n", (int)getpid(), v);
            while (access(v, F_OK) != 0)
                pause_ms(10);
        }
        int n = snprintf(out, sizeof out, "Content-Type: text/plain\r\n\r\nPID=%d\nWORKER=%d\n",
                         (int)getpid(), index);
        fcgi_write(req, FCGI_STDOUT, out, n);
        fcgi_finish_request(req, 0);
    }
    fcgi_destroy_request(req);
}

int main(int argc, char **argv)
{
    fcgi_pool *pool = fcgi_pool_new();
    if (!pool)
        return 1;
    for (int i = 1; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        if (!eq) {
            fprintf(stderr, "usage: %s [NAME=VALUE ...]\n", argv[0]);
            return 2;
        }
        *eq = '\0';
        if (fcgi_pool_set(pool, argv[i], eq + 1) < 0)
            return 2;
    }
    const char *addr = getenv("FCGI_ADDR");
    if (addr && fcgi_pool_listen(pool, addr, 128) < 0)
        return 1;
    switch (fcgi_pool_run(pool)) {
    case 1: /* a worker: serve until recycled, reloaded or stopped */
        serve(fcgi_pool_socket(pool, 0), fcgi_pool_worker_index(pool));
        fcgi_pool_free(pool);
        return 0;
    case 0: /* the parent, after the pool stopped */
        fcgi_pool_free(pool);
        return 0;
    default:
        fcgi_pool_free(pool);
        return 1;
    }
}
