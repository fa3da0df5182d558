/*
 * lf_webapp.c - the web-server matrix's test application on the libfcgi API (fcgiapp.h),
 * an unmodified libfcgi program linked against the project's libfcgi.so.0. The handler is
 * webapp_core.c's; see there for what a request can ask.
 *
 *   lf_webapp [-t THREADS] [-a ADDR]   (ADDR in FCGX_OpenSocket syntax; else fd 0 listens)
 *
 * Each of the THREADS threads owns one FCGX_Request and loops on FCGX_Accept_r. There is no
 * accept mutex: fcgi-runtime's FCGX_Accept_r is thread-safe (Debian's libfcgi wants one).
 */
#include "fcgiapp.h"

#include <pthread.h>

#include "webapp_core.c"

static int listen_sock = 0;

static int lf_read(void *ctx, char *buf, int len)
{
    FCGX_Request *r = ctx;
    int n = FCGX_GetStr(buf, len, r->in);
    if (n == 0 && FCGX_GetError(r->in) != 0)
        return -1;
    return n;
}

static int lf_write(void *ctx, const char *buf, int len)
{
    FCGX_Request *r = ctx;
    return FCGX_PutStr(buf, len, r->out);
}

static int lf_flush(void *ctx)
{
    FCGX_Request *r = ctx;
    return FCGX_FFlush(r->out) == 0 ? 0 : -1;
}

static const char *lf_getenv(void *ctx, const char *name)
{
    FCGX_Request *r = ctx;
    return FCGX_GetParam(name, r->envp);
}

static void lf_each_param(void *ctx, web_param_fn fn, void *arg)
{
    FCGX_Request *r = ctx;
    for (char **e = r->envp; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (eq)
            fn(arg, *e, (size_t)(eq - *e), eq + 1, strlen(eq + 1));
    }
}

static void *serve(void *unused)
{
    (void)unused;
    FCGX_Request req;
    char *inbuf = malloc(IN_SIZE);
    struct buf out = {0};
    if (!inbuf || FCGX_InitRequest(&req, listen_sock, 0) != 0) {
        fprintf(stderr, "webapp: cannot set up a thread\n");
        return NULL;
    }
    struct web_io io = {&req, lf_read, lf_write, lf_flush, lf_getenv, lf_each_param};
    while (FCGX_Accept_r(&req) >= 0) {
        web_handle(&io, &out, inbuf);
        FCGX_Finish_r(&req);
    }
    free(out.data);
    free(inbuf);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads;
    const char *addr;
    if (web_args(argc, argv, &threads, &addr) != 0)
        return 2;
    if (FCGX_Init() != 0) {
        fprintf(stderr, "webapp: FCGX_Init failed\n");
        return 1;
    }
    if (addr) {
        listen_sock = FCGX_OpenSocket(addr, 1024);
        if (listen_sock < 0) {
            fprintf(stderr, "webapp: cannot listen on %s\n", addr);
            return 1;
        }
    } else if (FCGX_IsCGI()) {
        fprintf(stderr, "webapp: no -a and fd 0 is not a listening socket\n");
        return 2;
    }
    pthread_t tids[256];
    for (long i = 0; i < threads; i++)
        if (pthread_create(&tids[i], NULL, serve, NULL) != 0)
            return 1;
    for (long i = 0; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
