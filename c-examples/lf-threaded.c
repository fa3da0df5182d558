/*
 * lf-threaded.c - libfcgi's threaded counter, with FCGX_Accept_r called from every thread at
 * once: no accept mutex (libfcgi's examples/threaded.c serialises the call; fcgi-runtime makes it
 * thread-safe).
 *
 *   lf-threaded [-t THREADS]     (FCGI_ADDR=ADDR in the environment, or fd 0 listening)
 *
 * ADDR is in FCGX_OpenSocket syntax ("host:port", ":port" or a Unix socket path). THREADS
 * (default 4, at most 256) threads each own one FCGX_Request on the shared socket and loop on
 * FCGX_Accept_r / FCGX_Finish_r. Every request takes the next value of one process-wide atomic
 * counter and is answered with, exactly:
 *
 *   Content-Type: text/plain\r\n\r\n
 *   COUNT=<n>\n            the counter value of this request (1, 2, 3, ... over the process)
 *   THREAD=<i>\n           index of the thread that served it (0 .. THREADS-1)
 *   STDIN_LENGTH=<n>\n     bytes of STDIN read (and discarded)
 *   QUERY_STRING=<qs>\n    the QUERY_STRING param, empty when missing
 *
 * Params BARRIER=<name> and BARRIER_SIZE=<k>: before answering, the request waits until k
 * requests naming the same barrier have arrived (a barrier is used once). k requests on one
 * barrier are therefore only answered if k threads hold them at the same time: a proof of
 * concurrency that does not depend on timing. The barrier itself uses a mutex; accepting does not.
 * Exits 0 when FCGX_Accept_r has failed in every thread.
 */
#include "fcgiapp.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 256
#define MAX_BARRIERS 64

static atomic_ulong counter;
static int listen_sock;

struct barrier {
    char name[64];
    unsigned long size, arrived;
};

static struct barrier barriers[MAX_BARRIERS];
static pthread_mutex_t barrier_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t barrier_cv = PTHREAD_COND_INITIALIZER;

/* Waits until `size` requests have arrived at the barrier `name`. Returns 0, or -1 when the
 * name is too long or the table is full. */
static int barrier_wait(const char *name, unsigned long size)
{
    struct barrier *b = NULL;
    int rc = 0;

    if (strlen(name) >= sizeof barriers[0].name)
        return -1;
    pthread_mutex_lock(&barrier_mu);
    for (int i = 0; i < MAX_BARRIERS; i++) {
        if (barriers[i].size && strcmp(barriers[i].name, name) == 0) {
            b = &barriers[i];
            break;
        }
        if (!b && !barriers[i].size) {
            b = &barriers[i];
            strcpy(b->name, name);
            b->size = size;
            b->arrived = 0;
            break;
        }
    }
    if (!b) {
        rc = -1;
    } else {
        b->arrived++;
        if (b->arrived >= b->size)
            pthread_cond_broadcast(&barrier_cv);
        while (b->arrived < b->size)
            pthread_cond_wait(&barrier_cv, &barrier_mu);
    }
    pthread_mutex_unlock(&barrier_mu);
    return rc;
}

static void *worker(void *arg)
{
    int thread = (int)(intptr_t)arg;
    FCGX_Request req;
    char buf[4096];

    if (FCGX_InitRequest(&req, listen_sock, 0) != 0)
        return NULL;
    while (FCGX_Accept_r(&req) == 0) {
        unsigned long count = atomic_fetch_add(&counter, 1) + 1;
        unsigned long in_len = 0;
        int n;

        while ((n = FCGX_GetStr(buf, sizeof buf, req.in)) > 0)
            in_len += (unsigned long)n;

        const char *name = FCGX_GetParam("BARRIER", req.envp);
        const char *size = FCGX_GetParam("BARRIER_SIZE", req.envp);
        if (name && size && barrier_wait(name, strtoul(size, NULL, 10)) != 0) {
            FCGX_PutS("Status: 500 Internal Server Error\r\n", req.out);
            FCGX_SetExitStatus(1, req.out);
        }

        const char *qs = FCGX_GetParam("QUERY_STRING", req.envp);
        FCGX_FPrintF(req.out,
                     "Content-Type: text/plain\r\n\r\n"
                     "COUNT=%lu\nTHREAD=%d\nSTDIN_LENGTH=%lu\nQUERY_STRING=%s\n",
                     count, thread, in_len, qs ? qs : "");
        FCGX_Finish_r(&req);
    }
    FCGX_Free(&req, 1);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads = 4;
    pthread_t ids[MAX_THREADS];
    int opt;

    while ((opt = getopt(argc, argv, "t:")) != -1) {
        if (opt == 't') {
            threads = strtol(optarg, NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [-t THREADS]\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "%s: THREADS must be 1..%d\n", argv[0], MAX_THREADS);
        return 2;
    }
    if (FCGX_Init() != 0) {
        fprintf(stderr, "%s: FCGX_Init failed\n", argv[0]);
        return 1;
    }
    const char *addr = getenv("FCGI_ADDR");
    if (addr && *addr) {
        listen_sock = FCGX_OpenSocket(addr, 128);
        if (listen_sock < 0) {
            fprintf(stderr, "%s: cannot listen on %s\n", argv[0], addr);
            return 1;
        }
    }
    for (long i = 0; i < threads; i++) {
        if (pthread_create(&ids[i], NULL, worker, (void *)(intptr_t)i) != 0) {
            fprintf(stderr, "%s: pthread_create failed\n", argv[0]);
            return 1;
        }
    }
    for (long i = 0; i < threads; i++)
        pthread_join(ids[i], NULL);
    return 0;
}
