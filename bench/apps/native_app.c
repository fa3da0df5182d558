/*
 * native_app.c - the benchmark application on fcgi-runtime's native API (include/fcgi.h).
 *
 *   native_app ADDR THREADS MODE [MAX]
 *
 * MODE: hello      answers "Hello, world!\n"
 *       big        answers 100 KiB of text in one fcgi_write
 *       pieces64k  the same 100 KiB after a printf-style header (snprintf + fcgi_write, the
 *                  native equivalent of FCGX_FPrintF), written in 64 KiB pieces
 *       pieces8k   the same, in 8 KiB pieces (how fcgiwrap forwards a CGI's output)
 *       pieces100  the same, in 100-byte pieces each formatted by snprintf (a printf loop)
 *       drain      reads the whole request body and answers "STDIN_LENGTH=<bytes>"
 * Every 100 KiB mode sends the same body, so one fcgi-bench --expect checks them all.
 * MAX: exit(0) once MAX requests are finished (0 or absent: serve until killed), so that
 * valgrind and strace see a clean exit after a known number of requests.
 * Mirrors lf_app.c (the libfcgi-API program) line for line.
 */
#include <fcgi.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BIG (100 * 1024)

enum mode { HELLO_MODE, BIG_MODE, PIECES64K, PIECES8K, PIECES100, DRAIN };
static const char *const MODES[] = {"hello", "big", "pieces64k", "pieces8k", "pieces100", "drain"};

static int listen_fd;
static enum mode mode;
static long max_requests;
static atomic_long served;
static char big_body[BIG];

static const char HELLO[] = "Content-Type: text/plain\r\n\r\nHello, world!\n";
static const char HEAD[] = "Content-Type: text/plain\r\n\r\n";

/* The body in pieces of `piece` bytes, after a formatted header. */
static void pieces(fcgi_request *req, int piece)
{
    char head[96];
    int len = snprintf(head, sizeof head, "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n",
                       BIG);
    fcgi_write(req, FCGI_STDOUT, head, len);
    for (int off = 0; off < BIG; off += piece) {
        int n = BIG - off < piece ? BIG - off : piece;
        if (piece <= 100) {
            char line[128];
            len = snprintf(line, sizeof line, "%.*s", n, big_body + off);
            fcgi_write(req, FCGI_STDOUT, line, len);
        } else {
            fcgi_write(req, FCGI_STDOUT, big_body + off, n);
        }
    }
}

static void serve(fcgi_request *req)
{
    if (mode == HELLO_MODE) {
        fcgi_write(req, FCGI_STDOUT, HELLO, (int)sizeof HELLO - 1);
    } else if (mode == BIG_MODE) {
        fcgi_write(req, FCGI_STDOUT, HEAD, (int)sizeof HEAD - 1);
        fcgi_write(req, FCGI_STDOUT, big_body, BIG);
    } else if (mode == PIECES64K) {
        pieces(req, 64 * 1024);
    } else if (mode == PIECES8K) {
        pieces(req, 8 * 1024);
    } else if (mode == PIECES100) {
        pieces(req, 100);
    } else {
        static __thread char buf[64 * 1024];
        long long total = 0;
        int n;
        while ((n = fcgi_read(req, buf, (int)sizeof buf)) > 0)
            total += n;
        char out[96];
        int len = snprintf(out, sizeof out, "Content-Type: text/plain\r\n\r\nSTDIN_LENGTH=%lld\n",
                           total);
        fcgi_write(req, FCGI_STDOUT, out, len);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    if (!req) {
        fprintf(stderr, "native_app: fcgi_init_request failed\n");
        exit(1);
    }
    while (fcgi_accept_request(req) >= 0) {
        serve(req);
        fcgi_finish_request(req, 0);
        if (max_requests > 0 && atomic_fetch_add(&served, 1) + 1 >= max_requests)
            exit(0);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int m = 0;
    while (argc >= 4 && m < (int)(sizeof MODES / sizeof MODES[0]) && strcmp(argv[3], MODES[m]))
        m++;
    if (argc < 4 || m == (int)(sizeof MODES / sizeof MODES[0])) {
        fprintf(stderr, "usage: native_app ADDR THREADS "
                        "hello|big|pieces64k|pieces8k|pieces100|drain [MAX]\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    mode = (enum mode)m;
    max_requests = argc > 4 ? atol(argv[4]) : 0;
    for (int i = 0; i < BIG; i++)
        big_body[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    fcgi_init();
    /* The suite multiplexes (S-rows with a depth): opt in, as the native face advertises
       FCGI_MPXS_CONNS=0 after fcgi_init, like PHP's layer. */
    fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1);
    listen_fd = fcgi_listen(argv[1], 1024);
    if (listen_fd < 0) {
        fprintf(stderr, "native_app: cannot listen on %s\n", argv[1]);
        return 1;
    }
    pthread_t tid[256];
    if (threads < 1 || threads > 256)
        threads = 1;
    for (int i = 1; i < threads; i++)
        pthread_create(&tid[i], NULL, worker, NULL);
    worker(NULL);
    return 0;
}
