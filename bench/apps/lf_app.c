/*
 * lf_app.c - the benchmark application on the libfcgi API (fcgiapp.h), built against Debian's
 * libfcgi-dev and run unchanged on Debian's libfcgi.so.0 and on fcgi-runtime's (the runner
 * swaps LD_LIBRARY_PATH).
 *
 *   lf_app ADDR THREADS MODE [MAX]
 *
 * MODE: hello  answers "Hello, world!\n"
 *       big    answers 100 KiB of text in one FCGX_PutStr
 *       drain  reads the whole request body and answers "STDIN_LENGTH=<bytes>"
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

static int listen_fd;
static int mode; /* 0 hello, 1 big, 2 drain */
static long max_requests;
static atomic_long served;
static char big_body[BIG];

static const char HELLO[] = "Content-Type: text/plain\r\n\r\nHello, world!\n";
static const char HEAD[] = "Content-Type: text/plain\r\n\r\n";

static void serve(FCGX_Request *req)
{
    if (mode == 0) {
        FCGX_PutStr(HELLO, (int)sizeof HELLO - 1, req->out);
    } else if (mode == 1) {
        FCGX_PutStr(HEAD, (int)sizeof HEAD - 1, req->out);
        FCGX_PutStr(big_body, BIG, req->out);
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
    if (argc < 4) {
        fprintf(stderr, "usage: lf_app ADDR THREADS hello|big|drain [MAX]\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    mode = strcmp(argv[3], "big") == 0 ? 1 : strcmp(argv[3], "drain") == 0 ? 2 : 0;
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
