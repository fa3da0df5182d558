/*
 * webapp.c - the web-server matrix's test application on the native API (fcgi.h). The
 * handler is webapp_core.c's; see there for what a request can ask.
 *
 *   webapp [-t THREADS] [-a ADDR]      (without -a, fd 0 must be the listening socket)
 *
 * Each of the THREADS threads owns one fcgi_request and runs its own accept loop.
 */
#include <fcgi.h>
#include <pthread.h>

#include "webapp_core.c"

static int listen_fd = -1;

static int native_read(void *ctx, char *buf, int len)
{
    return fcgi_read(ctx, buf, len);
}

static int native_write(void *ctx, const char *buf, int len)
{
    return fcgi_write(ctx, FCGI_STDOUT, buf, len);
}

static int native_flush(void *ctx)
{
    return fcgi_flush(ctx, 0) ? 0 : -1;
}

static const char *native_getenv(void *ctx, const char *name)
{
    return fcgi_getenv(ctx, name, (int)strlen(name));
}

struct each_arg {
    web_param_fn fn;
    void *arg;
};

static void native_param(const char *var, unsigned int var_len, char *val, unsigned int val_len,
                         void *arg)
{
    struct each_arg *e = arg;
    e->fn(e->arg, var, var_len, val, val_len);
}

static void native_each_param(void *ctx, web_param_fn fn, void *arg)
{
    struct each_arg e = {fn, arg};
    fcgi_loadenv(ctx, native_param, &e);
}

static void *serve(void *unused)
{
    (void)unused;
    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    char *inbuf = malloc(IN_SIZE);
    struct buf out = {0};
    if (!req || !inbuf) {
        fprintf(stderr, "webapp: cannot set up a thread\n");
        return NULL;
    }
    struct web_io io = {req, native_read, native_write, native_flush, native_getenv,
                        native_each_param};
    while (fcgi_accept_request(req) >= 0) {
        web_handle(&io, &out, inbuf);
        fcgi_finish_request(req, 0);
    }
    free(out.data);
    free(inbuf);
    fcgi_destroy_request(req);
    return NULL;
}

int main(int argc, char **argv)
{
    long threads;
    const char *addr;
    if (web_args(argc, argv, &threads, &addr) != 0)
        return 2;
    fcgi_init();
    if (addr) {
        listen_fd = fcgi_listen(addr, 1024);
        if (listen_fd < 0) {
            fprintf(stderr, "webapp: cannot listen on %s\n", addr);
            return 1;
        }
    } else if (fcgi_is_fastcgi()) {
        listen_fd = 0;
    } else {
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
