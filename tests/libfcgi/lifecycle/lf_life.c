/*
 * A libfcgi-API program for tests/libfcgi/lifecycle.rs: N threads in FCGX_Accept_r at once,
 * no mutex. Behaviour per request comes from parameters:
 *   BARRIER=k   wait until k requests are being served at once, then answer (concurrency proof)
 *   SHUTDOWN=1  call FCGX_ShutdownPending() before finishing
 *   FREE=1      FCGX_Free(request, 1) without finishing (drop the connection, no END_REQUEST)
 *   FCLOSE=1    FCGX_FClose err and out explicitly before FCGX_Finish_r
 *   SEQ=1       call FCGX_StartFilterData on a Responder (must fail with FCGX_CALL_SEQ_ERROR)
 *   STATUS=n    FCGX_SetExitStatus(n)
 *   ANNOUNCE=1  write and flush "reading" before reading stdin
 * Filters: stdin is read to its end, then FCGX_StartFilterData, then DATA.
 * Every request reads stdin to its end and answers "stdin=<bytes> err=<GetError(in)>";
 * a read error is also printed to the process's stderr as "read-error=<code>".
 * When accept fails, the thread prints "accept rc=<rc>" to stderr and ends; main exits 0.
 *
 * usage: lf_life ADDRESS THREADS
 */
#include <fcgiapp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int inside;
static int listen_fd;

static int param_int(FCGX_Request *r, const char *name)
{
    const char *v = FCGX_GetParam(name, r->envp);
    return v ? atoi(v) : 0;
}

static void *serve(void *arg)
{
    FCGX_Request r;
    int rc;
    (void)arg;
    FCGX_InitRequest(&r, listen_fd, 0);
    while ((rc = FCGX_Accept_r(&r)) == 0) {
        char buf[4096];
        long total = 0, data = -1;
        int n, barrier = param_int(&r, "BARRIER"), seq = -2, seq_err = 0;
        const char *role = FCGX_GetParam("FCGI_ROLE", r.envp);

        if (param_int(&r, "ANNOUNCE")) {
            FCGX_PutS("Content-Type: text/plain\r\n\r\nreading\n", r.out);
            FCGX_FFlush(r.out);
        }
        while ((n = FCGX_GetStr(buf, sizeof buf, r.in)) > 0)
            total += n;
        if (FCGX_GetError(r.in)) {
            fprintf(stderr, "read-error=%d\n", FCGX_GetError(r.in));
            fflush(stderr);
        }
        if (role && strcmp(role, "FILTER") == 0) {
            if (FCGX_StartFilterData(r.in) == 0) {
                data = 0;
                while ((n = FCGX_GetStr(buf, sizeof buf, r.in)) > 0)
                    data += n;
            }
        }
        if (param_int(&r, "SEQ")) {
            seq = FCGX_StartFilterData(r.in);
            seq_err = FCGX_GetError(r.in);
        }
        if (param_int(&r, "FREE")) {
            FCGX_PutS("Content-Type: text/plain\r\n\r\npartial\n", r.out);
            FCGX_FFlush(r.out);
            FCGX_Free(&r, 1);
            continue;
        }
        if (barrier > 0) {
            pthread_mutex_lock(&lock);
            inside++;
            pthread_cond_broadcast(&cond);
            while (inside < barrier)
                pthread_cond_wait(&cond, &lock);
            pthread_mutex_unlock(&lock);
        }
        FCGX_FPrintF(r.out, "Content-Type: text/plain\r\n\r\nstdin=%ld data=%ld err=%d seq=%d/%d id=%d\n",
                     total, data, FCGX_GetError(r.in), seq, seq_err, r.requestId);
        if (param_int(&r, "STATUS"))
            FCGX_SetExitStatus(param_int(&r, "STATUS"), r.out);
        if (param_int(&r, "SHUTDOWN"))
            FCGX_ShutdownPending();
        if (param_int(&r, "FCLOSE")) {
            FCGX_PutS("to stderr\n", r.err);
            if (FCGX_FClose(r.err) != 0 || FCGX_FClose(r.out) != 0)
                fprintf(stderr, "fclose failed\n");
            /* Writes after the close fail. */
            if (FCGX_PutS("late\n", r.out) != -1)
                fprintf(stderr, "write after fclose succeeded\n");
        }
        FCGX_Finish_r(&r);
    }
    fprintf(stderr, "accept rc=%d\n", rc);
    fflush(stderr);
    return NULL;
}

int main(int argc, char **argv)
{
    int i, n;
    pthread_t *t;
    if (argc != 3) {
        fprintf(stderr, "usage: %s ADDRESS THREADS\n", argv[0]);
        return 2;
    }
    FCGX_Init();
    listen_fd = FCGX_OpenSocket(argv[1], 128);
    if (listen_fd < 0)
        return 1;
    n = atoi(argv[2]);
    t = calloc((size_t)n, sizeof *t);
    for (i = 0; i < n; i++)
        pthread_create(&t[i], NULL, serve, NULL);
    for (i = 0; i < n; i++)
        pthread_join(t[i], NULL);
    free(t);
    return 0;
}
