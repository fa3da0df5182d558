/*
 * lf_app.c - the benchmark application on the libfcgi API (fcgiapp.h), built against Debian's
 * libfcgi-dev and run unchanged on Debian's libfcgi.so.0 and on fcgi-runtime's (the runner
 * swaps LD_LIBRARY_PATH).
 *
 *   lf_app ADDR THREADS MODE [MAX]
 *
 * MODE: hello      answers "Hello, world!\n"
 *       big        answers 100 KiB of text in one FCGX_PutStr
 *       pieces64k  the same 100 KiB after an FCGX_FPrintF header, in 64 KiB FCGX_PutStr pieces
 *       pieces8k   the same, in 8 KiB pieces (how fcgiwrap forwards a CGI's output)
 *       pieces100  the same, in 100-byte pieces each written by FCGX_FPrintF (a printf loop)
 *       drain      reads the whole request body and answers "STDIN_LENGTH=<bytes>"
 * Every 100 KiB mode sends the same body, so one fcgi-bench --expect checks them all.
 * MAX: exit(0) once MAX requests are finished (0 or absent: serve until killed).
 * Threads call FCGX_Accept_r concurrently (Linux needs no accept mutex).
 * Mirrors native_app.c line for line.
 */
#include <fcgiapp.h>
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
static void pieces(FCGX_Request *req, int piece)
{
    FCGX_FPrintF(req->out, "Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n", BIG);
    for (int off = 0; off < BIG; off += piece) {
        int n = BIG - off < piece ? BIG - off : piece;
        if (piece <= 100) {
            FCGX_FPrintF(req->out, "%.*s", n, big_body + off);
        } else {
            FCGX_PutStr(big_body + off, n, req->out);
        }
    }
}

static void serve(FCGX_Request *req)
{
    if (mode == HELLO_MODE) {
        FCGX_PutStr(HELLO, (int)sizeof HELLO - 1, req->out);
    } else if (mode == BIG_MODE) {
        FCGX_PutStr(HEAD, (int)sizeof HEAD - 1, req->out);
        FCGX_PutStr(big_body, BIG, req->out);
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
        while ((n = FCGX_GetStr(buf, (int)sizeof buf, req->in)) > 0)
            total += n;
        FCGX_FPrintF(req->out, "Content-Type: text/plain\r\n\r\nSTDIN_LENGTH=%lld\n", total);
    }
}

static void *worker(void *arg)
{
    (void)arg;
    FCGX_Request req;
    if (FCGX_InitRequest(&req, listen_fd, 0) != 0) {
        fprintf(stderr, "lf_app: FCGX_InitRequest failed\n");
        exit(1);
    }
    while (FCGX_Accept_r(&req) >= 0) {
        serve(&req);
        FCGX_Finish_r(&req);
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
        fprintf(stderr, "usage: lf_app ADDR THREADS "
                        "hello|big|pieces64k|pieces8k|pieces100|drain [MAX]\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    mode = (enum mode)m;
    max_requests = argc > 4 ? atol(argv[4]) : 0;
    for (int i = 0; i < BIG; i++)
        big_body[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    FCGX_Init();
    listen_fd = FCGX_OpenSocket(argv[1], 1024);
    if (listen_fd < 0) {
        fprintf(stderr, "lf_app: cannot listen on %s\n", argv[1]);
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
