/*
 * native_app.c - the benchmark application on fcgi-runtime's native API (include/fcgi.h).
 *
 *   native_app ADDR THREADS MODE [MAX]
 *
 * MODE: hello  answers "Hello, world!\n"
 *       big    answers 100 KiB of text in one fcgi_write
 *       drain  reads the whole request body and answers "STDIN_LENGTH=<bytes>"
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

static int listen_fd;
static int mode; /* 0 hello, 1 big, 2 drain */
static long max_requests;
static atomic_long served;
static char big_body[BIG];

static const char HELLO[] = "Content-Type: text/plain\r\n\r\nHello, world!\n";
static const char HEAD[] = "Content-Type: text/plain\r\n\r\n";

static void serve(fcgi_request *req)
{
    if (mode == 0) {
        fcgi_write(req, FCGI_STDOUT, HELLO, (int)sizeof HELLO - 1);
    } else if (mode == 1) {
        fcgi_write(req, FCGI_STDOUT, HEAD, (int)sizeof HEAD - 1);
        fcgi_write(req, FCGI_STDOUT, big_body, BIG);
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
    if (argc < 4) {
        fprintf(stderr, "usage: native_app ADDR THREADS hello|big|drain [MAX]\n");
        return 2;
    }
    int threads = atoi(argv[2]);
    mode = strcmp(argv[3], "big") == 0 ? 1 : strcmp(argv[3], "drain") == 0 ? 2 : 0;
    max_requests = argc > 4 ? atol(argv[4]) : 0;
    for (int i = 0; i < BIG; i++)
        big_body[i] = (i % 64 == 63) ? '\n' : (char)('a' + i % 26);
    fcgi_init();
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
