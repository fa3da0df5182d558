/*
 * host_app.c - the application of tests/web_servers/multi_host.rs: an unmodified libfcgi
 * program (fcgiapp.h) that says which host answered. It runs under fcgi-spawn (the listening
 * socket on fd 0), on the project's libfcgi.so.0.
 *
 *   host_app [-t THREADS]       (each thread loops on FCGX_Accept_r; default 2)
 *
 * HOST_NAME (from the environment) names the host. Every request is answered, whatever its
 * path, with
 *
 *   Status: 200 OK
 *   Content-Type: text/plain
 *   Content-Length: <n>
 *
 *   host=<HOST_NAME>
 *   pid=<this worker's pid>
 *   seq=<the query's seq value>
 *   <payload>
 *
 * where the query string (&-separated KEY=VALUE) may set:
 *   seq=S        echoed back (at most 63 bytes), so the client knows the answer is its own
 *   bytes=N      the payload: N bytes (at most 1 MiB), byte i being
 *                'a' + (i + S's leading number) % 26
 *   sleep_ms=N   sleep N ms (at most 10 s) before answering, so that requests are in flight
 *   trace=1      write "host_app: begin S" to stderr when the request arrives and
 *                "host_app: end S" once it is finished (FCGX_Finish_r returned), one write(2)
 *                each, so a test can tell which requests a killed host held
 *
 * A ping path is not answered here: with fcgi-spawn's `--set ping_path=/ping` the library
 * answers it before the program sees the request; without, /ping gets the answer above.
 */
#include "fcgiapp.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../../harness/web/query.h"

#define MAX_BYTES (1024 * 1024)
#define MAX_SLEEP_MS 10000

static const char *host_name = "unnamed";

static long query_num(const char *qs, const char *key, long max)
{
    char buf[32];
    if (!query_param(qs, key, buf, sizeof buf))
        return 0;
    long v = strtol(buf, NULL, 10);
    if (v < 0)
        return 0;
    return v > max ? max : v;
}

static void trace(const char *what, const char *seq)
{
    char line[128];
    int n = snprintf(line, sizeof line, "host_app: %s %s\n", what, seq);
    if (n > 0 && write(2, line, (size_t)n) < 0) {
        /* stderr gone: nothing to report it to */
    }
}

static void handle(FCGX_Request *req, char *payload)
{
    const char *qs = FCGX_GetParam("QUERY_STRING", req->envp);
    if (!qs)
        qs = "";
    char seq[64];
    if (!query_param(qs, "seq", seq, sizeof seq))
        seq[0] = '\0';
    char flag[4];
    int traced = query_param(qs, "trace", flag, sizeof flag) && strcmp(flag, "1") == 0;
    if (traced)
        trace("begin", seq);

    long bytes = query_num(qs, "bytes", MAX_BYTES);
    long sleep_ms = query_num(qs, "sleep_ms", MAX_SLEEP_MS);
    long shift = strtol(seq, NULL, 10);
    if (shift < 0)
        shift = 0;
    for (long i = 0; i < bytes; i++)
        payload[i] = (char)('a' + (i + shift) % 26);

    /* The request's body, if any, is read and dropped. */
    char sink[4096];
    while (FCGX_GetStr(sink, sizeof sink, req->in) > 0) {
    }

    if (sleep_ms > 0) {
        struct timespec ts = {sleep_ms / 1000, (sleep_ms % 1000) * 1000000L};
        while (nanosleep(&ts, &ts) != 0) {
        }
    }

    char head[256];
    int hlen = snprintf(head, sizeof head, "host=%s\npid=%ld\nseq=%s\n", host_name,
                        (long)getpid(), seq);
    FCGX_FPrintF(req->out,
                 "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %ld\r\n\r\n",
                 (long)hlen + bytes);
    FCGX_PutStr(head, hlen, req->out);
    if (bytes > 0)
        FCGX_PutStr(payload, (int)bytes, req->out);
    FCGX_Finish_r(req);
    if (traced)
        trace("end", seq);
}

static void *serve(void *unused)
{
    (void)unused;
    FCGX_Request req;
    char *payload = malloc(MAX_BYTES);
    if (!payload || FCGX_InitRequest(&req, 0, 0) != 0) {
        fprintf(stderr, "host_app: cannot set up a thread\n");
        return NULL;
    }
    while (FCGX_Accept_r(&req) >= 0)
        handle(&req, payload);
    FCGX_Free(&req, 1);
    free(payload);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 2;
    int opt;
    while ((opt = getopt(argc, argv, "t:")) != -1) {
        if (opt == 't') {
            threads = strtol(optarg, NULL, 10);
        } else {
            fprintf(stderr, "usage: host_app [-t THREADS]\n");
            return 2;
        }
    }
    if (threads < 1 || threads > 64) {
        fprintf(stderr, "host_app: -t takes 1 to 64\n");
        return 2;
    }
    const char *name = getenv("HOST_NAME");
    if (name && *name)
        host_name = name;
    if (FCGX_Init() != 0) {
        fprintf(stderr, "host_app: FCGX_Init failed\n");
        return 1;
    }
    pthread_t tids[64];
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, serve, NULL) != 0)
            return 1;
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
