/*
 * ffi_args.c - calls every exported function of the project's libfcgi.so with NULL pointers,
 * negative and huge lengths, invalid descriptors, zeroed (never initialised) libfcgi structs,
 * request objects that never accepted anything, and double finish/free; then once more on a
 * real accepted request (a client thread sends it over a Unix socket). Driven by
 * tests/memsafe/ffi_args.rs, which also runs it under valgrind.
 *
 *   ffi_args SOCKET_PATH
 *
 * Every check names the export it calls; the name is written to stderr ("call NAME") before
 * the call, so a crash shows which one. At the end it writes "covered NAME" for each export it
 * called and "failures=N", and exits 0 only when every returned value was the documented one.
 * The test compares the covered names with `nm -D --defined-only` of the library.
 */
#define _GNU_SOURCE
#define NO_FCGI_DEFINES
#include <fcgi.h>
#include <fcgiapp.h>
#include <fcgios.h>
#include <fcgi_stdio.h>

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_NAMES 256
static const char *covered[MAX_NAMES];
static int n_covered;
static int failures;

static void mark(const char *name)
{
    int i;
    fprintf(stderr, "call %s\n", name);
    for (i = 0; i < n_covered; i++)
        if (strcmp(covered[i], name) == 0)
            return;
    if (n_covered < MAX_NAMES)
        covered[n_covered++] = name;
}

static void fail(const char *name, const char *what, long long got, int line)
{
    fprintf(stderr, "FAIL %s: %s (got %lld, line %d)\n", name, what, got, line);
    failures++;
}

/* An int-returning call; `ok` is a condition on r. */
#define CHECK(fn, call, ok)                                                          \
    do {                                                                             \
        long long r;                                                                 \
        mark(#fn);                                                                   \
        r = (long long)(call);                                                       \
        if (!(ok))                                                                   \
            fail(#fn, #call " -> want " #ok, r, __LINE__);                           \
    } while (0)
/* A pointer-returning call that must return NULL. */
#define CHECK_NULL(fn, call)                                                         \
    do {                                                                             \
        const void *p;                                                               \
        mark(#fn);                                                                   \
        p = (const void *)(call);                                                    \
        if (p != NULL)                                                               \
            fail(#fn, #call " -> want NULL", (long long)(intptr_t)p, __LINE__);       \
    } while (0)
/* A void call: it must return. */
#define CALL(fn, call)                                                               \
    do {                                                                             \
        mark(#fn);                                                                   \
        call;                                                                        \
    } while (0)

static void apply(const char *var, unsigned int var_len, char *val, unsigned int val_len,
                  void *arg)
{
    (void)var, (void)var_len, (void)val, (void)val_len;
    ++*(int *)arg;
}

/* fcgi_set_log_func's hook: keeps the last message and the arg it was given. */
static char logged[256];
static void *logged_arg;
static int logged_level;
static void log_hook(int level, const char *msg, size_t len, void *arg)
{
    if (len >= sizeof logged)
        len = sizeof logged - 1;
    memcpy(logged, msg, len);
    logged[len] = 0;
    logged_level = level;
    logged_arg = arg;
}

static void async_done(ClientData cd, int len)
{
    (void)cd, (void)len;
}

static int vfprintf_null(const char *fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = FCGX_VFPrintF(NULL, fmt, ap);
    va_end(ap);
    return r;
}

static int fcgi_vfprintf_null(const char *fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = FCGI_vfprintf(NULL, fmt, ap);
    va_end(ap);
    return r;
}

static int fcgi_vprintf_nullfmt(int dummy, ...)
{
    va_list ap;
    int r;
    va_start(ap, dummy);
    r = FCGI_vprintf(NULL, ap);
    va_end(ap);
    return r;
}

/* ---- Part 1: nothing accepted ---------------------------------------------------------- */

/* The pool API: NULL, bad settings and indexes, and fcgi_pool_run refusing to start (bad
 * settings; no socket, since stdin is /dev/null). No call here forks. */
static void native_pool(void)
{
    fcgi_pool *pl;

    CHECK(fcgi_pool_set, fcgi_pool_set(NULL, "pm", "static"), r == -1);
    CHECK(fcgi_pool_listen, fcgi_pool_listen(NULL, "ffi_args_pool.sock", 5), r == -1);
    CHECK(fcgi_pool_run, fcgi_pool_run(NULL), r == -1);
    CHECK(fcgi_pool_socket, fcgi_pool_socket(NULL, 0), r == -1);
    CHECK(fcgi_pool_worker_index, fcgi_pool_worker_index(NULL), r == -1);
    CALL(fcgi_pool_free, fcgi_pool_free(NULL));
    CHECK(fcgi_pool_new, (pl = fcgi_pool_new()) != NULL, r == 1);
    if (pl == NULL)
        return;
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, NULL, "1"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "pm", NULL), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "pm", "lazy"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "", ""), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "no_such_setting", "1"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "max_children", "-1"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "max_children", "0"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "max_children", "99999999999999999999999"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "reuseport", "maybe"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "status_path", "status"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "status_path", "/status"), r == 0);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "slowlog_timeout_ms", "x"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "name", ""), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "name", "two words"), r == -1);
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "max_children", "2"), r == 0);
    CHECK(fcgi_pool_worker_index, fcgi_pool_worker_index(pl), r == -1);
    CHECK(fcgi_pool_socket, fcgi_pool_socket(pl, 0), r == -1);
    /* No socket opened, none inherited: refused without forking. */
    CHECK(fcgi_pool_run, fcgi_pool_run(pl), r == -1);
    CHECK(fcgi_pool_listen, fcgi_pool_listen(pl, NULL, 5), r == -1);
    CHECK(fcgi_pool_listen, fcgi_pool_listen(pl, "", 5), r == -1);
    CHECK(fcgi_pool_listen, fcgi_pool_listen(pl, "[::1", INT_MAX), r == -1);
    CHECK(fcgi_pool_listen, fcgi_pool_listen(pl, "ffi_args_pool.sock", -1), r == 0);
    CHECK(fcgi_pool_socket, fcgi_pool_socket(pl, 0), r >= 0);
    CHECK(fcgi_pool_socket, fcgi_pool_socket(pl, -1), r == -1);
    CHECK(fcgi_pool_socket, fcgi_pool_socket(pl, 1), r == -1);
    CHECK(fcgi_pool_socket, fcgi_pool_socket(pl, INT_MAX), r == -1);
    /* Inconsistent dynamic settings (max_spare_servers 3 > max_children 2): refused. */
    CHECK(fcgi_pool_set, fcgi_pool_set(pl, "pm", "dynamic"), r == 0);
    CHECK(fcgi_pool_run, fcgi_pool_run(pl), r == -1);
    CALL(fcgi_pool_free, fcgi_pool_free(pl));
    unlink("ffi_args_pool.sock");
}

static void native_without_request(void)
{
    char buf[16];
    int n = 0;
    fcgi_request *q;

    CALL(fcgi_set_logger, fcgi_set_logger(NULL));
    CHECK(fcgi_init, fcgi_init(), r == 0);
    CHECK(fcgi_is_fastcgi, fcgi_is_fastcgi(), r == 0);
    CHECK(fcgi_listen, fcgi_listen(NULL, 5), r == -1);
    CHECK(fcgi_listen, fcgi_listen("", 5), r == -1);
    CHECK(fcgi_listen, fcgi_listen("99999999", -1), r == -1);
    CHECK(fcgi_listen, fcgi_listen("[::1", INT_MAX), r == -1);
    CALL(fcgi_set_allowed_clients, fcgi_set_allowed_clients(NULL));
    CALL(fcgi_set_allowed_clients, fcgi_set_allowed_clients((char *)",,300.1.2.3/99,::g,"));
    CHECK(fcgi_set_socket_permissions, fcgi_set_socket_permissions(-2, NULL), r == -1);
    CHECK(fcgi_set_socket_permissions, fcgi_set_socket_permissions(01000, NULL), r == -1);
    CHECK(fcgi_set_socket_permissions, fcgi_set_socket_permissions(INT_MAX, NULL), r == -1);
    CHECK(fcgi_set_socket_permissions, fcgi_set_socket_permissions(0660, ""), r == -1);
    CHECK(fcgi_set_socket_permissions, fcgi_set_socket_permissions(0660, ":"), r == -1);
    CHECK(fcgi_set_socket_permissions,
          fcgi_set_socket_permissions(0660, "no-such-user-fcgi:no-such-group-fcgi"), r == -1);
    CHECK(fcgi_set_socket_permissions, fcgi_set_socket_permissions(-1, NULL), r == 0);
    /* That list refuses every client: forget it (and leave FastCGI mode). */
    CALL(fcgi_shutdown, fcgi_shutdown());
    CALL(fcgi_destroy_request, fcgi_destroy_request(NULL));
    CHECK(fcgi_accept_request, fcgi_accept_request(NULL), r == -1);
    CHECK(fcgi_finish_request, fcgi_finish_request(NULL, 0), r == 0);
    CHECK(fcgi_finish_request, fcgi_finish_request(NULL, 1), r == 0);
    CALL(fcgi_close, fcgi_close(NULL, 1, 1));
    CHECK(fcgi_is_closed, fcgi_is_closed(NULL), r == 1);
    CHECK(fcgi_end, fcgi_end(NULL), r == 0);
    CHECK(fcgi_flush, fcgi_flush(NULL, 1), r == 0);
    CHECK(fcgi_read, fcgi_read(NULL, buf, sizeof buf), r == -1);
    CHECK(fcgi_read_data, fcgi_read_data(NULL, buf, sizeof buf), r == -1);
    CHECK(fcgi_write, fcgi_write(NULL, FCGI_STDOUT, "x", 1), r == -1);
    CHECK_NULL(fcgi_getenv, fcgi_getenv(NULL, "A", 1));
    CHECK_NULL(fcgi_quick_getenv, fcgi_quick_getenv(NULL, "A", 1, 0));
    CHECK_NULL(fcgi_putenv, fcgi_putenv(NULL, (char *)"A", 1, (char *)"v"));
    CHECK_NULL(fcgi_quick_putenv, fcgi_quick_putenv(NULL, (char *)"A", 1, 0, (char *)"v"));
    CHECK(fcgi_has_env, fcgi_has_env(NULL), r == 0);
    CALL(fcgi_loadenv, fcgi_loadenv(NULL, apply, &n));
    CALL(fcgi_loadenv, fcgi_loadenv(NULL, NULL, NULL));
    CHECK(fcgi_getenv_all, fcgi_getenv_all(NULL, logged, sizeof logged), r == -1);
    CALL(fcgi_set_log_func, fcgi_set_log_func(NULL, NULL));
    /* The non-variadic log hook gets each message with its length and the arg given. */
    CALL(fcgi_set_log_func, fcgi_set_log_func(log_hook, &n));
    CHECK(fcgi_listen, fcgi_listen("/nonexistent-dir/x.sock", 5), r == -1);
    /* PHP's line for a failed bind (ENOENT: the directory does not exist). */
    if (logged_arg != &n || logged_level != FCGI_ERROR ||
        !strstr(logged, "Cannot bind/listen socket - [2] "))
        fail("fcgi_set_log_func", "hook not called with the message", logged_level, __LINE__);
    CALL(fcgi_set_log_func, fcgi_set_log_func(NULL, NULL));
    CALL(fcgi_request_set_keep, fcgi_request_set_keep(NULL, 1));
    CHECK(fcgi_is_aborted, fcgi_is_aborted(NULL), r == 0);
    CHECK(fcgi_request_id, fcgi_request_id(NULL), r == -1);
    CHECK(fcgi_request_role, fcgi_request_role(NULL), r == -1);
    CALL(fcgi_set_app_status, fcgi_set_app_status(NULL, 3));
    CHECK_NULL(fcgi_request_client_ip, fcgi_request_client_ip(NULL));
    CHECK_NULL(fcgi_get_last_client_ip, fcgi_get_last_client_ip());
    CALL(fcgi_set_mgmt_var, fcgi_set_mgmt_var(NULL, 5, NULL, 5));
    CALL(fcgi_set_mgmt_var, fcgi_set_mgmt_var("X", 1, NULL, 5));
    CALL(fcgi_set_mgmt_var, fcgi_set_mgmt_var("", 0, "", 0));
    CALL(fcgi_free_mgmt_var_cb, fcgi_free_mgmt_var_cb(NULL));
    CHECK(fcgi_set_limit, fcgi_set_limit(-1, 5), r == -1);
    CHECK(fcgi_set_limit, fcgi_set_limit(1000, 5), r == -1);
    CHECK(fcgi_set_limit, fcgi_set_limit(FCGI_LIMIT_MAX_CONNS, -5), r == -1);
    CHECK(fcgi_get_limit, fcgi_get_limit(-1), r == -1);
    CHECK(fcgi_get_limit, fcgi_get_limit(INT_MAX), r == -1);
    CHECK(fcgi_in_shutdown, fcgi_in_shutdown(), r == 0);
    CALL(fcgi_set_in_shutdown, fcgi_set_in_shutdown(0));
    /* The non-blocking face without a loop or request. */
    CHECK_NULL(fcgi_loop_new, fcgi_loop_new(-1));
    CHECK_NULL(fcgi_loop_new, fcgi_loop_new(1000));
    CHECK_NULL(fcgi_loop_new, fcgi_loop_new(2)); /* stderr: no listening socket */
    CALL(fcgi_loop_free, fcgi_loop_free(NULL));
    CHECK(fcgi_loop_fd, fcgi_loop_fd(NULL), r == -1);
    CHECK(fcgi_loop_work, fcgi_loop_work(NULL), r == -1);
    CHECK_NULL(fcgi_loop_accept, fcgi_loop_accept(NULL));
    CHECK_NULL(fcgi_loop_woken, fcgi_loop_woken(NULL));
    CHECK(fcgi_loop_read, fcgi_loop_read(NULL, buf, sizeof buf), r == -1);
    CHECK(fcgi_loop_write, fcgi_loop_write(NULL, FCGI_STDOUT, "x", 1), r == -1);
    CHECK(fcgi_loop_finish, fcgi_loop_finish(NULL), r == -1);
    CHECK(fcgi_loop_flush, fcgi_loop_flush(NULL), r == -1);
    CHECK(fcgi_peer_closed, fcgi_peer_closed(NULL), r == 0);
    CALL(fcgi_set_request_data, fcgi_set_request_data(NULL, &n));
    CHECK_NULL(fcgi_get_request_data, fcgi_get_request_data(NULL));
    native_pool();
    if (n != 0)
        fail("fcgi_loadenv", "called the function for a NULL request", n, __LINE__);

    /* A request object on a descriptor that is no socket, never accepted. */
    CHECK(fcgi_init_request, (q = fcgi_init_request(-1, NULL, NULL, NULL)) != NULL, 1);
    if (q != NULL) {
        CHECK(fcgi_accept_request, fcgi_accept_request(q), r == -1);
        CHECK(fcgi_is_closed, fcgi_is_closed(q), r == 1);
        CHECK(fcgi_finish_request, fcgi_finish_request(q, 0), r == 1);
        CHECK(fcgi_finish_request, fcgi_finish_request(q, 1), r == 1);
        CHECK(fcgi_end, fcgi_end(q), r == 1);
        CHECK(fcgi_flush, fcgi_flush(q, 0), r == 0);
        CHECK(fcgi_read, fcgi_read(q, buf, sizeof buf), r == -1);
        CHECK(fcgi_read_data, fcgi_read_data(q, buf, sizeof buf), r == -1);
        /* No request in progress: a small write is dropped and reports success, as in PHP. */
        CHECK(fcgi_write, fcgi_write(q, FCGI_STDOUT, "x", 1), r == 1);
        CHECK_NULL(fcgi_getenv, fcgi_getenv(q, "A", 1));
        CHECK(fcgi_has_env, fcgi_has_env(q), r == 0);
        CALL(fcgi_loadenv, fcgi_loadenv(q, apply, &n));
        CHECK(fcgi_getenv_all, fcgi_getenv_all(q, NULL, 0), r == 0);
        CHECK(fcgi_is_aborted, fcgi_is_aborted(q), r == 0);
        CHECK(fcgi_peer_closed, fcgi_peer_closed(q), r == 0);
        /* A blocking request is no loop's. */
        CHECK(fcgi_loop_read, fcgi_loop_read(q, buf, sizeof buf), r == -1);
        CHECK(fcgi_loop_write, fcgi_loop_write(q, FCGI_STDOUT, "x", 1), r == -1);
        CHECK(fcgi_loop_finish, fcgi_loop_finish(q), r == -1);
        CHECK(fcgi_loop_flush, fcgi_loop_flush(q), r == -1);
        CALL(fcgi_set_request_data, fcgi_set_request_data(q, &n));
        CHECK(fcgi_get_request_data, fcgi_get_request_data(q) == (void *)&n, r == 1);
        CHECK(fcgi_request_id, fcgi_request_id(q), r == -1);
        CHECK_NULL(fcgi_request_client_ip, fcgi_request_client_ip(q));
        CALL(fcgi_set_app_status, fcgi_set_app_status(q, 7));
        CALL(fcgi_request_set_keep, fcgi_request_set_keep(q, 0));
        CALL(fcgi_close, fcgi_close(q, 1, 1));
        CALL(fcgi_close, fcgi_close(q, 0, 0));
        CALL(fcgi_destroy_request, fcgi_destroy_request(q));
    }
    /* A descriptor number nothing has open. */
    q = fcgi_init_request(1000, NULL, NULL, NULL);
    if (q != NULL) {
        CHECK(fcgi_accept_request, fcgi_accept_request(q), r == -1);
        fcgi_destroy_request(q);
    }
}

static void fcgx_without_request(void)
{
    FCGX_Request zero, req;
    FCGX_Stream zs, *in = NULL, *out = NULL, *err = NULL, *w;
    char *empty_env[] = {NULL};
    char *env1[] = {(char *)"A=1", NULL};
    char buf[16];

    memset(&zero, 0, sizeof zero);
    memset(&zs, 0, sizeof zs);
    CHECK(FCGX_IsCGI, FCGX_IsCGI(), r == 1);
    CHECK(FCGX_Init, FCGX_Init(), r == 0);
    CHECK(FCGX_OpenSocket, FCGX_OpenSocket(NULL, 5), r == -1);
    CHECK(FCGX_OpenSocket, FCGX_OpenSocket("", 5), r == -1);
    CHECK(FCGX_OpenSocket, FCGX_OpenSocket("/nonexistent/dir/h:99999999", -1), r == -1);
    CHECK(FCGX_InitRequest, FCGX_InitRequest(NULL, 0, 0), r == -1);
    CHECK(FCGX_Accept_r, FCGX_Accept_r(NULL), r < 0);
    CALL(FCGX_Finish_r, FCGX_Finish_r(NULL));
    CALL(FCGX_Free, FCGX_Free(NULL, 1));
    CHECK(FCGX_Attach, FCGX_Attach(NULL), r == -1);
    CHECK(FCGX_Detach, FCGX_Detach(NULL), r == -1);
    CHECK(FCGX_Accept, FCGX_Accept(NULL, NULL, NULL, NULL), r < 0);
    CHECK(FCGX_Accept, FCGX_Accept(&in, &out, &err, NULL), r < 0);
    CALL(FCGX_Finish, FCGX_Finish());

    /* Zeroed (never initialised) request. */
    CALL(FCGX_Finish_r, FCGX_Finish_r(&zero));
    CALL(FCGX_Free, FCGX_Free(&zero, 1));
    CHECK(FCGX_Attach, FCGX_Attach(&zero), r == 0); /* libfcgi: always 0 */
    CHECK(FCGX_Detach, FCGX_Detach(&zero), r == -1);

    /* Initialised on descriptors that cannot accept: fails, does not hang. */
    CHECK(FCGX_InitRequest, FCGX_InitRequest(&req, -1, 0), r == 0);
    CHECK(FCGX_Accept_r, FCGX_Accept_r(&req), r < 0);
    CALL(FCGX_Finish_r, FCGX_Finish_r(&req));
    CALL(FCGX_Finish_r, FCGX_Finish_r(&req));
    CALL(FCGX_Free, FCGX_Free(&req, 1));
    CALL(FCGX_Free, FCGX_Free(&req, 0));
    CHECK(FCGX_InitRequest, FCGX_InitRequest(&req, 1000, FCGI_FAIL_ACCEPT_ON_INTR), r == 0);
    CHECK(FCGX_Accept_r, FCGX_Accept_r(&req), r < 0);
    CALL(FCGX_Free, FCGX_Free(&req, 1));
    CHECK(FCGX_InitRequest, FCGX_InitRequest(&req, 2, 0), r == 0);
    CHECK(FCGX_Accept_r, FCGX_Accept_r(&req), r < 0);
    CALL(FCGX_Free, FCGX_Free(&req, 1));

    /* Streams: NULL, and a zeroed struct with no buffer and no procs. */
    CHECK(FCGX_StartFilterData, FCGX_StartFilterData(NULL), r == -1);
    CHECK(FCGX_StartFilterData, FCGX_StartFilterData(&zs), r == -1);
    CALL(FCGX_SetExitStatus, FCGX_SetExitStatus(3, NULL));
    CALL(FCGX_SetExitStatus, FCGX_SetExitStatus(3, &zs));
    CHECK_NULL(FCGX_GetParam, FCGX_GetParam(NULL, NULL));
    CHECK_NULL(FCGX_GetParam, FCGX_GetParam("A", NULL));
    CHECK_NULL(FCGX_GetParam, FCGX_GetParam(NULL, env1));
    CHECK_NULL(FCGX_GetParam, FCGX_GetParam("A", empty_env));
    CHECK(FCGX_GetChar, FCGX_GetChar(NULL), r == EOF);
    CHECK(FCGX_GetChar, FCGX_GetChar(&zs), r == EOF);
    CHECK(FCGX_UnGetChar, FCGX_UnGetChar('a', NULL), r == EOF);
    CHECK(FCGX_UnGetChar, FCGX_UnGetChar('a', &zs), r == EOF);
    CHECK(FCGX_GetStr, FCGX_GetStr(buf, sizeof buf, NULL), r <= 0);
    CHECK(FCGX_GetStr, FCGX_GetStr(buf, sizeof buf, &zs), r <= 0);
    CHECK(FCGX_GetStr, FCGX_GetStr(NULL, 5, &zs), r <= 0);
    CHECK_NULL(FCGX_GetLine, FCGX_GetLine(buf, sizeof buf, NULL));
    CHECK_NULL(FCGX_GetLine, FCGX_GetLine(buf, sizeof buf, &zs));
    CHECK_NULL(FCGX_GetLine, FCGX_GetLine(NULL, 5, &zs));
    CHECK(FCGX_HasSeenEOF, FCGX_HasSeenEOF(NULL), r == EOF);
    CHECK(FCGX_HasSeenEOF, FCGX_HasSeenEOF(&zs), r == EOF || r == 0);
    CHECK(FCGX_PutChar, FCGX_PutChar('a', NULL), r == EOF);
    CHECK(FCGX_PutChar, FCGX_PutChar('a', &zs), r == EOF);
    CHECK(FCGX_PutStr, FCGX_PutStr("a", 1, NULL), r == -1);
    CHECK(FCGX_PutStr, FCGX_PutStr("a", 1, &zs), r == -1);
    CHECK(FCGX_PutStr, FCGX_PutStr(NULL, 5, &zs), r == -1);
    CHECK(FCGX_PutS, FCGX_PutS("a", NULL), r == -1);
    CHECK(FCGX_PutS, FCGX_PutS(NULL, &zs), r == -1);
    CHECK(FCGX_FPrintF, FCGX_FPrintF(NULL, "%d", 1), r == -1);
    CHECK(FCGX_FPrintF, FCGX_FPrintF(&zs, "%d", 1), r == -1);
    CHECK(FCGX_VFPrintF, vfprintf_null("%d", 1), r == -1);
    CHECK(FCGX_FFlush, FCGX_FFlush(NULL), r == 0 || r == -1);
    CHECK(FCGX_FFlush, FCGX_FFlush(&zs), r == 0 || r == -1);
    CHECK(FCGX_FClose, FCGX_FClose(NULL), r == 0 || r == -1);
    CHECK(FCGX_FClose, FCGX_FClose(&zs), r == 0 || r == -1);
    CHECK(FCGX_GetError, FCGX_GetError(NULL), r == 0);
    CHECK(FCGX_GetError, FCGX_GetError(&zs), 1);
    CALL(FCGX_ClearError, FCGX_ClearError(NULL));
    CALL(FCGX_ClearError, FCGX_ClearError(&zs));
    CALL(FCGX_FreeStream, FCGX_FreeStream(NULL));
    w = NULL;
    CALL(FCGX_FreeStream, FCGX_FreeStream(&w));

    /* A writer on a descriptor that is not open; odd buffer sizes and stream types. */
    w = FCGX_CreateWriter(1000, 1, 0, FCGI_STDOUT);
    mark("FCGX_CreateWriter");
    if (w != NULL) {
        CHECK(FCGX_PutS, FCGX_PutS("hello", w), r == 5 || r == -1);
        CHECK(FCGX_FFlush, FCGX_FFlush(w), r == -1);
        CHECK(FCGX_GetError, FCGX_GetError(w), r != 0);
        CHECK(FCGX_GetChar, FCGX_GetChar(w), r == EOF);
        CHECK(FCGX_FClose, FCGX_FClose(w), r == -1);
        CHECK(FCGX_FClose, FCGX_FClose(w), r == -1 || r == 0);
        CALL(FCGX_FreeStream, FCGX_FreeStream(&w));
        if (w != NULL)
            fail("FCGX_FreeStream", "left the pointer set", 0, __LINE__);
        CALL(FCGX_FreeStream, FCGX_FreeStream(&w));
    }
    w = FCGX_CreateWriter(-1, -1, -100, 99);
    mark("FCGX_CreateWriter");
    FCGX_FreeStream(&w);
    w = FCGX_CreateWriter(-1, 70000, INT_MAX, FCGI_STDERR);
    mark("FCGX_CreateWriter");
    FCGX_FreeStream(&w);
}

static void os_without_request(void)
{
    char buf[16];
    struct timeval tv = {0, 0};
    int fds[2];

    memset(buf, 'x', sizeof buf);

    CHECK(OS_LibInit, OS_LibInit(NULL), r == 0);
    CHECK(OS_CreateLocalIpcFd, OS_CreateLocalIpcFd(NULL, 5), r == -1);
    CHECK(OS_CreateLocalIpcFd, OS_CreateLocalIpcFd("", -5), r == -1);
    CHECK(OS_FcgiConnect, OS_FcgiConnect(NULL), r == -1);
    CHECK(OS_FcgiConnect, OS_FcgiConnect((char *)"/nonexistent/dir/sock"), r == -1);
    CHECK(OS_Read, OS_Read(-1, buf, sizeof buf), r == -1);
    CHECK(OS_Read, OS_Read(1000, buf, sizeof buf), r == -1);
    CHECK(OS_Write, OS_Write(-1, buf, sizeof buf), r == -1);
    CHECK(OS_SpawnChild, OS_SpawnChild(NULL, -1), r == -1);
    CHECK(OS_AsyncReadStdin, OS_AsyncReadStdin(NULL, 5, NULL, NULL), r == -1);
    CHECK(OS_AsyncReadStdin, OS_AsyncReadStdin(buf, -5, async_done, NULL), r == -1);
    CHECK(OS_AsyncRead, OS_AsyncRead(-1, 0, buf, 5, async_done, NULL), r == -1);
    CHECK(OS_AsyncRead, OS_AsyncRead(1000, 0, NULL, 5, NULL, NULL), r == -1);
    CHECK(OS_AsyncWrite, OS_AsyncWrite(-1, 0, buf, 5, async_done, NULL), r == -1);
    CHECK(OS_AsyncWrite, OS_AsyncWrite(1000, 0, NULL, -5, NULL, NULL), r == -1);
    CHECK(OS_DoIo, OS_DoIo(&tv), r == 0);
    CHECK(OS_Close, OS_Close(-1, 0), r == 0); /* libfcgi: -1 is "nothing to close" */
    CHECK(OS_Close, OS_Close(1000, 1), r == -1);
    CHECK(OS_CloseRead, OS_CloseRead(-1), r == -1);
    CHECK(OS_Accept, OS_Accept(-1, 1, NULL), r == -1);
    CHECK(OS_Accept, OS_Accept(1000, 0, "garbage"), r == -1);
    CHECK(OS_IpcClose, OS_IpcClose(-1, 0), r == 0);
    CHECK(OS_IpcClose, OS_IpcClose(1000, 1), r == -1);
    CHECK(OS_IsFcgi, OS_IsFcgi(-1), r == 0);
    CHECK(OS_IsFcgi, OS_IsFcgi(1000), r == 0);
    CALL(OS_SetFlags, OS_SetFlags(-1, 0));
    CALL(OS_SetFlags, OS_SetFlags(1000, -1));
    /* A pipe: not a socket. */
    if (pipe(fds) == 0) {
        CHECK(OS_Accept, OS_Accept(fds[0], 1, NULL), r == -1);
        CHECK(OS_IsFcgi, OS_IsFcgi(fds[0]), r == 0);
        CHECK(OS_CloseRead, OS_CloseRead(fds[0]), r == -1 || r == 0);
        CHECK(OS_Close, OS_Close(fds[0], 1), r == 0);
        CHECK(OS_Close, OS_Close(fds[1], 0), r == 0);
    }
    CALL(OS_LibShutdown, OS_LibShutdown());
}

static void stdio_without_request(void)
{
    FCGI_FILE zf, *f;
    char buf[16];
    fpos_t pos;

    memset(&zf, 0, sizeof zf);
    memset(&pos, 0, sizeof pos);
    CHECK(FCGI_StartFilterData, FCGI_StartFilterData(), r == -1);
    CALL(FCGI_SetExitStatus, FCGI_SetExitStatus(3));
    CALL(FCGI_Finish, FCGI_Finish());
    CALL(FCGI_perror, FCGI_perror(NULL));
    CHECK_NULL(FCGI_fopen, FCGI_fopen(NULL, "r"));
    CHECK_NULL(FCGI_fopen, FCGI_fopen("/dev/null", NULL));
    CHECK_NULL(FCGI_fopen, FCGI_fopen("/nonexistent/file", "r"));
    CHECK(FCGI_fclose, FCGI_fclose(NULL), r == EOF);
    CHECK(FCGI_fflush, FCGI_fflush(NULL), r == 0);
    CHECK(FCGI_fflush, FCGI_fflush(&zf), r == EOF);
    CHECK_NULL(FCGI_freopen, FCGI_freopen(NULL, "r", NULL));
    CHECK_NULL(FCGI_freopen, FCGI_freopen("/dev/null", NULL, NULL));
    CHECK(FCGI_setvbuf, FCGI_setvbuf(NULL, NULL, _IONBF, 0), r != 0);
    CHECK(FCGI_setvbuf, FCGI_setvbuf(&zf, buf, 12345, SIZE_MAX), r != 0);
    CALL(FCGI_setbuf, FCGI_setbuf(NULL, NULL));
    CALL(FCGI_setbuf, FCGI_setbuf(&zf, buf));
    CHECK(FCGI_fseek, FCGI_fseek(NULL, 0, SEEK_SET), r == -1);
    CHECK(FCGI_fseek, FCGI_fseek(&zf, -5, 99), r == -1);
    CHECK(FCGI_ftell, FCGI_ftell(NULL), r == -1);
    CHECK(FCGI_ftell, FCGI_ftell(&zf), r == -1);
    CALL(FCGI_rewind, FCGI_rewind(NULL));
    CALL(FCGI_rewind, FCGI_rewind(&zf));
    CHECK(FCGI_fgetpos, FCGI_fgetpos(NULL, &pos), r == -1);
    CHECK(FCGI_fgetpos, FCGI_fgetpos(&zf, NULL), r == -1);
    CHECK(FCGI_fsetpos, FCGI_fsetpos(NULL, &pos), r == -1);
    CHECK(FCGI_fsetpos, FCGI_fsetpos(&zf, NULL), r == -1);
    CHECK(FCGI_fgetc, FCGI_fgetc(NULL), r == EOF);
    CHECK(FCGI_fgetc, FCGI_fgetc(&zf), r == EOF);
    CHECK(FCGI_ungetc, FCGI_ungetc('a', NULL), r == EOF);
    CHECK(FCGI_ungetc, FCGI_ungetc('a', &zf), r == EOF);
    CHECK_NULL(FCGI_fgets, FCGI_fgets(buf, sizeof buf, NULL));
    CHECK_NULL(FCGI_fgets, FCGI_fgets(buf, -1, &zf));
    CHECK_NULL(FCGI_fgets, FCGI_fgets(NULL, 5, &zf));
    CHECK_NULL(FCGI_gets, FCGI_gets(NULL));
    CHECK(FCGI_fputc, FCGI_fputc('a', NULL), r == EOF);
    CHECK(FCGI_fputc, FCGI_fputc('a', &zf), r == EOF);
    CHECK(FCGI_fputs, FCGI_fputs(NULL, NULL), r == EOF);
    CHECK(FCGI_fputs, FCGI_fputs("a", &zf), r == EOF);
    CHECK(FCGI_puts, FCGI_puts(NULL), r == EOF);
    CHECK(FCGI_fprintf, FCGI_fprintf(NULL, "%d", 1), r < 0);
    CHECK(FCGI_fprintf, FCGI_fprintf(&zf, NULL), r < 0);
    CHECK(FCGI_printf, FCGI_printf(NULL), r < 0);
    CHECK(FCGI_vfprintf, fcgi_vfprintf_null("%d", 1), r < 0);
    CHECK(FCGI_vprintf, fcgi_vprintf_nullfmt(0), r < 0);
    CHECK(FCGI_fread, FCGI_fread(buf, 1, sizeof buf, NULL), r == 0);
    CHECK(FCGI_fread, FCGI_fread(NULL, 1, 5, &zf), r == 0);
    CHECK(FCGI_fwrite, FCGI_fwrite(buf, 1, sizeof buf, NULL), r == 0);
    CHECK(FCGI_fwrite, FCGI_fwrite(NULL, 1, 5, &zf), r == 0);
    CHECK(FCGI_feof, FCGI_feof(NULL), r == EOF);
    CHECK(FCGI_feof, FCGI_feof(&zf), r == EOF);
    CHECK(FCGI_ferror, FCGI_ferror(NULL), r != 0);
    CHECK(FCGI_ferror, FCGI_ferror(&zf), r != 0);
    CALL(FCGI_clearerr, FCGI_clearerr(NULL));
    CALL(FCGI_clearerr, FCGI_clearerr(&zf));
    CHECK(FCGI_fileno, FCGI_fileno(NULL), r == -1);
    CHECK(FCGI_fileno, FCGI_fileno(&zf), r == -1);
    CHECK_NULL(FCGI_fdopen, FCGI_fdopen(-1, "r"));
    CHECK_NULL(FCGI_fdopen, FCGI_fdopen(0, NULL));
    CHECK_NULL(FCGI_popen, FCGI_popen(NULL, "r"));
    CHECK_NULL(FCGI_popen, FCGI_popen("true", NULL));
    CHECK(FCGI_pclose, FCGI_pclose(NULL), r == -1);

    /* A real temporary file: huge counts must not overflow size * nmemb. */
    f = FCGI_tmpfile();
    mark("FCGI_tmpfile");
    if (f == NULL) {
        fail("FCGI_tmpfile", "returned NULL", 0, __LINE__);
    } else {
        CHECK(FCGI_fwrite, FCGI_fwrite((void *)"abc", SIZE_MAX, 2, f), r == 0);
        CHECK(FCGI_fread, FCGI_fread(buf, SIZE_MAX, 2, f), r == 0);
        CHECK(FCGI_fgets, FCGI_fgets(buf, 0, f) == NULL, 1);
        CHECK(FCGI_fclose, FCGI_fclose(f), r == 0);
    }
    /* FCGI_Accept was never called: no stdin or stdout stream yet. */
    CHECK(FCGI_getchar, FCGI_getchar(), r == EOF);
    CHECK(FCGI_putchar, FCGI_putchar('\n'), r == EOF);
}

/* ---- Part 2: an accepted request -------------------------------------------------------- */

static const char *sock_path;

static void put_header(unsigned char *p, int type, int len)
{
    p[0] = 1, p[1] = (unsigned char)type, p[2] = 0, p[3] = 1;
    p[4] = (unsigned char)(len >> 8), p[5] = (unsigned char)len, p[6] = 0, p[7] = 0;
}

/* Connects, sends one Responder request (params A=1, stdin "line1\nrest"), reads to EOF. */
static void *client(void *arg)
{
    static const unsigned char begin[8] = {0, 1, 0, 0, 0, 0, 0, 0};
    static const unsigned char params[] = {1, 1, 'A', '1', 12, 3, 'Q', 'U', 'E', 'R', 'Y', '_',
                                           'S', 'T', 'R', 'I', 'N', 'G', 'x', '=', '1'};
    static const char body[] = "line1\nrest";
    unsigned char msg[256];
    size_t n = 0;
    struct sockaddr_un sa;
    char sink[4096];
    struct timeval tmo = {20, 0};
    int fd, i;

    (void)arg;
    put_header(msg + n, 1, 8), n += 8, memcpy(msg + n, begin, 8), n += 8;
    put_header(msg + n, 4, sizeof params), n += 8, memcpy(msg + n, params, sizeof params);
    n += sizeof params;
    put_header(msg + n, 4, 0), n += 8;
    put_header(msg + n, 5, sizeof body - 1), n += 8, memcpy(msg + n, body, sizeof body - 1);
    n += sizeof body - 1;
    put_header(msg + n, 5, 0), n += 8;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", sock_path);
    for (i = 0; i < 200; i++) {
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
            break;
        if (fd >= 0)
            close(fd);
        fd = -1;
        usleep(10000);
    }
    if (fd < 0)
        return NULL;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof tmo);
    if (write(fd, msg, n) != (ssize_t)n)
        fprintf(stderr, "client: short write\n");
    while (read(fd, sink, sizeof sink) > 0) {
    }
    close(fd);
    return NULL;
}

static pthread_t start_client(void)
{
    pthread_t t;
    if (pthread_create(&t, NULL, client, NULL) != 0) {
        perror("pthread_create");
        exit(2);
    }
    return t;
}

/* fcgi_getenv_all on a real request: the size query, a short buffer left untouched, and a
 * block holding exactly fcgi_loadenv's variables with fcgi_getenv's values, a putenv
 * addition included (first: fcgi_loadenv's order is PHP's, newest first). */
static void env_block(fcgi_request *q, int n_vars)
{
    static char block[65536];
    char one[1] = {'#'};
    long need, got;
    int pairs = 0;
    CHECK(fcgi_getenv_all, need = fcgi_getenv_all(q, NULL, 0), r > 0);
    CHECK(fcgi_getenv_all, fcgi_getenv_all(q, NULL, 5), r == -1);
    CHECK(fcgi_getenv_all, fcgi_getenv_all(q, one, sizeof one), r == need && one[0] == '#');
    if (fcgi_putenv(q, (char *)"ZZ_ADDED", 8, (char *)"added") == NULL)
        fail("fcgi_putenv", "no copy stored", 0, __LINE__);
    /* ZZ_ADDED NUL added NUL: 15 more bytes. */
    CHECK(fcgi_getenv_all, got = fcgi_getenv_all(q, block, sizeof block), r == need + 15);
    for (long at = 0; at < got;) {
        const char *name = block + at;
        const char *val = name + strlen(name) + 1;
        const char *want = fcgi_getenv(q, name, (int)strlen(name));
        if (!want || strcmp(want, val) != 0)
            fail("fcgi_getenv_all", "a value differs from fcgi_getenv's", at, __LINE__);
        at = (val - block) + (long)strlen(val) + 1;
        pairs++;
    }
    if (pairs != n_vars + 1 || strcmp(block, "ZZ_ADDED") != 0)
        fail("fcgi_getenv_all", "not loadenv's variables plus the addition", pairs, __LINE__);
}

static void native_with_request(int lfd)
{
    fcgi_request *q = fcgi_init_request(lfd, NULL, NULL, NULL);
    pthread_t t = start_client();
    char buf[16];
    int n = 0;

    if (q == NULL || fcgi_accept_request(q) < 0) {
        fail("fcgi_accept_request", "no request accepted", 0, __LINE__);
        pthread_join(t, NULL);
        return;
    }
    CHECK(fcgi_read, fcgi_read(q, NULL, 5), r == -1);
    CHECK(fcgi_read, fcgi_read(q, buf, -1), r == -1 || r == 0);
    CHECK(fcgi_read, fcgi_read(q, buf, 0), r == 0);
    CHECK(fcgi_read_data, fcgi_read_data(q, buf, sizeof buf), r == -1);
    CHECK(fcgi_write, fcgi_write(q, 99, "x", 1), r == -1);
    CHECK(fcgi_write, fcgi_write(q, FCGI_STDOUT, NULL, 5), r == -1);
    CHECK(fcgi_write, fcgi_write(q, FCGI_STDOUT, "x", -5), r == 0);
    CHECK_NULL(fcgi_getenv, fcgi_getenv(q, NULL, 5));
    CHECK_NULL(fcgi_getenv, fcgi_getenv(q, "A", -1));
    CHECK_NULL(fcgi_quick_getenv, fcgi_quick_getenv(q, NULL, 3, 0));
    CHECK_NULL(fcgi_putenv, fcgi_putenv(q, NULL, 3, (char *)"v"));
    CHECK_NULL(fcgi_putenv, fcgi_putenv(q, (char *)"A", -1, (char *)"v"));
    CHECK_NULL(fcgi_quick_putenv, fcgi_quick_putenv(q, (char *)"A", 1, 0, NULL));
    CALL(fcgi_loadenv, fcgi_loadenv(q, NULL, NULL));
    CALL(fcgi_loadenv, fcgi_loadenv(q, apply, &n));
    if (n < 2)
        fail("fcgi_loadenv", "too few variables", n, __LINE__);
    env_block(q, n);
    CHECK(fcgi_request_id, fcgi_request_id(q), r == 1);
    CHECK(fcgi_write, fcgi_write(q, FCGI_STDOUT, "Status: 200\r\n\r\nok", 17), r == 17);
    CHECK(fcgi_finish_request, fcgi_finish_request(q, 0), r == 1);
    CHECK(fcgi_finish_request, fcgi_finish_request(q, 0), r == 1);
    CHECK(fcgi_end, fcgi_end(q), r == 1);
    /* After the request: a small write is dropped (PHP's layer), a large one fails. */
    CHECK(fcgi_write, fcgi_write(q, FCGI_STDOUT, "x", 1), r == 1);
    {
        static char big[10000];
        CHECK(fcgi_write, fcgi_write(q, FCGI_STDOUT, big, (int)sizeof big), r == -1);
    }
    CHECK_NULL(fcgi_getenv, fcgi_getenv(q, "A", 1));
    fcgi_destroy_request(q);
    pthread_join(t, NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits (at most 20 s) until the loop hands out a request: work, then accept. */
static fcgi_request *loop_wait_accept(fcgi_loop *lp)
{
    struct pollfd pfd = {fcgi_loop_fd(lp), POLLIN, 0};
    double until = now_s() + 20;
    while (now_s() < until) {
        fcgi_loop_work(lp);
        fcgi_request *q = fcgi_loop_accept(lp);
        if (q != NULL)
            return q;
        poll(&pfd, 1, 10);
    }
    return NULL;
}

/* The non-blocking face on real requests: invalid arguments on a loop request, the body
 * read to its end through FCGI_WOULD_BLOCK, the answer, a second finish refused, and a loop
 * freed while it still holds a request (which it ends). */
static void loop_with_request(int lfd)
{
    fcgi_loop *lp;
    fcgi_request *q;
    pthread_t t = start_client();
    char buf[64];
    size_t got = 0;
    int n, tag;

    CHECK(fcgi_loop_new, (lp = fcgi_loop_new(lfd)) != NULL, r == 1);
    if (lp == NULL) {
        pthread_join(t, NULL);
        return;
    }
    CHECK(fcgi_loop_fd, fcgi_loop_fd(lp), r >= 0);
    CHECK(fcgi_loop_work, fcgi_loop_work(lp), r >= -1);
    CHECK(fcgi_loop_accept, (q = loop_wait_accept(lp)) != NULL, r == 1);
    if (q == NULL) {
        fcgi_loop_free(lp);
        pthread_join(t, NULL);
        return;
    }
    CHECK_NULL(fcgi_get_request_data, fcgi_get_request_data(q));
    CALL(fcgi_set_request_data, fcgi_set_request_data(q, &tag));
    CHECK(fcgi_get_request_data, fcgi_get_request_data(q) == (void *)&tag, r == 1);
    CHECK(fcgi_loop_read, fcgi_loop_read(q, NULL, 5), r == -1);
    CHECK(fcgi_loop_read, fcgi_loop_read(q, buf, -1), r == 0);
    CHECK(fcgi_loop_write, fcgi_loop_write(q, 99, "x", 1), r == -1);
    CHECK(fcgi_loop_write, fcgi_loop_write(q, FCGI_STDOUT, NULL, 5), r == -1);
    CHECK(fcgi_loop_write, fcgi_loop_write(q, FCGI_STDOUT, "x", -5), r == 0);
    CHECK(fcgi_accept_request, fcgi_accept_request(q), r == -1);
    CALL(fcgi_destroy_request, fcgi_destroy_request(q)); /* refused: the loop owns it */
    CHECK(fcgi_request_id, fcgi_request_id(q), r == 1);
    CHECK(fcgi_getenv, fcgi_getenv(q, "A", 1) != NULL, r == 1);
    for (double until = now_s() + 20; now_s() < until;) {
        n = fcgi_loop_read(q, buf + got, (int)(sizeof buf - got));
        if (n == 0)
            break;
        if (n == FCGI_WOULD_BLOCK) {
            struct pollfd pfd = {fcgi_loop_fd(lp), POLLIN, 0};
            poll(&pfd, 1, 10);
            fcgi_loop_work(lp);
            fcgi_request *w;
            while ((w = fcgi_loop_woken(lp)) != NULL)
                if (w != q)
                    fail("fcgi_loop_woken", "another request woken", 0, __LINE__);
            continue;
        }
        if (n < 0) {
            fail("fcgi_loop_read", "read failed", n, __LINE__);
            break;
        }
        got += (size_t)n;
    }
    if (got != 10 || memcmp(buf, "line1\nrest", 10) != 0)
        fail("fcgi_loop_read", "not the body sent", (long long)got, __LINE__);
    CHECK(fcgi_peer_closed, fcgi_peer_closed(q), r == 0);
    CHECK(fcgi_loop_write, fcgi_loop_write(q, FCGI_STDOUT, "Status: 200\r\n\r\nok", 17),
          r == 17);
    CHECK(fcgi_loop_flush, fcgi_loop_flush(q), r == 0);
    CHECK(fcgi_write, fcgi_write(q, FCGI_STDOUT, "!", 1), r == 1);
    CHECK(fcgi_loop_flush, fcgi_loop_flush(q), r == 0);
    CHECK(fcgi_loop_finish, fcgi_loop_finish(q), r == 0);
    CHECK(fcgi_loop_flush, fcgi_loop_flush(q), r == -1);
    CHECK(fcgi_loop_finish, fcgi_loop_finish(q), r == -1);
    pthread_join(t, NULL);

    /* A request still held when the loop is freed: ended by fcgi_loop_free. */
    t = start_client();
    q = loop_wait_accept(lp);
    if (q == NULL)
        fail("fcgi_loop_accept", "no second request", 0, __LINE__);
    CALL(fcgi_loop_free, fcgi_loop_free(lp));
    pthread_join(t, NULL);
}

static void fcgx_with_request(int lfd)
{
    FCGX_Request req;
    pthread_t t = start_client();
    char buf[16];

    if (FCGX_InitRequest(&req, lfd, 0) != 0 || FCGX_Accept_r(&req) != 0) {
        fail("FCGX_Accept_r", "no request accepted", 0, __LINE__);
        pthread_join(t, NULL);
        return;
    }
    /* Invalid arguments first: they fail without spoiling the streams. */
    CHECK(FCGX_GetStr, FCGX_GetStr(NULL, 5, req.in), r == 0);
    CHECK(FCGX_GetStr, FCGX_GetStr(buf, -1, req.in), r == 0);
    CHECK(FCGX_GetStr, FCGX_GetStr(buf, INT_MIN, req.in), r == 0);
    CHECK_NULL(FCGX_GetLine, FCGX_GetLine(buf, 0, req.in));
    CHECK_NULL(FCGX_GetLine, FCGX_GetLine(buf, -1, req.in));
    CHECK_NULL(FCGX_GetLine, FCGX_GetLine(NULL, 5, req.in));
    CHECK(FCGX_UnGetChar, FCGX_UnGetChar(EOF, req.in), r == EOF);
    CHECK(FCGX_PutStr, FCGX_PutStr(NULL, 5, req.out), r == -1);
    CHECK(FCGX_PutStr, FCGX_PutStr("x", -1, req.out), r == -1);
    CHECK(FCGX_PutS, FCGX_PutS(NULL, req.out), r == -1);
    CHECK(FCGX_FPrintF, FCGX_FPrintF(req.out, NULL), r == -1);
    CHECK_NULL(FCGX_GetParam, FCGX_GetParam(NULL, req.envp));
    CHECK(FCGX_GetError, FCGX_GetError(req.in), r == 0);
    CHECK(FCGX_GetError, FCGX_GetError(req.out), r == 0);
    /* The streams still work. */
    CHECK(FCGX_GetParam, FCGX_GetParam("A", req.envp) != NULL, r == 1);
    CHECK(FCGX_GetLine, FCGX_GetLine(buf, sizeof buf, req.in) != NULL, r == 1);
    CHECK(FCGX_GetStr, FCGX_GetStr(buf, sizeof buf, req.in), r == 4);
    CHECK(FCGX_HasSeenEOF, FCGX_HasSeenEOF(req.in), r == EOF);
    CHECK(FCGX_PutS, FCGX_PutS("Status: 200\r\n\r\nok", req.out), r == 17);
    /* Wrong direction: a writer is not read, a reader not written. */
    CHECK(FCGX_UnGetChar, FCGX_UnGetChar('a', req.out), r == EOF);
    CHECK(FCGX_GetChar, FCGX_GetChar(req.out), r == EOF);
    CHECK(FCGX_PutChar, FCGX_PutChar('a', req.in), r == EOF);
    CHECK(FCGX_PutStr, FCGX_PutStr("abc", 3, req.in), r == -1);
    /* Call-sequence errors: recorded on the stream, as libfcgi does. */
    CHECK(FCGX_StartFilterData, FCGX_StartFilterData(req.in), r == -1);
    CHECK(FCGX_GetError, FCGX_GetError(req.in), r == FCGX_CALL_SEQ_ERROR);
    CALL(FCGX_ClearError, FCGX_ClearError(req.in));
    CHECK(FCGX_GetError, FCGX_GetError(req.in), r == 0);
    CHECK(FCGX_Detach, FCGX_Detach(&req), r == 0);
    CHECK(FCGX_Detach, FCGX_Detach(&req), r == -1 || r == 0);
    CHECK(FCGX_Attach, FCGX_Attach(&req), r == 0);
    CHECK(FCGX_Attach, FCGX_Attach(&req), r == -1 || r == 0);
    CHECK(FCGX_FClose, FCGX_FClose(req.err), r == 0);
    CHECK(FCGX_FClose, FCGX_FClose(req.err), r == 0 || r == -1);
    CHECK(FCGX_PutS, FCGX_PutS("x", req.err), r == -1);
    CALL(FCGX_Finish_r, FCGX_Finish_r(&req));
    CALL(FCGX_Finish_r, FCGX_Finish_r(&req));
    CHECK(FCGX_Detach, FCGX_Detach(&req), r == -1);
    CHECK(FCGX_Attach, FCGX_Attach(&req), r == 0);
    CALL(FCGX_Free, FCGX_Free(&req, 1));
    CALL(FCGX_Free, FCGX_Free(&req, 1));
    pthread_join(t, NULL);
}

int main(int argc, char **argv)
{
    int lfd, i;

    if (argc != 2) {
        fprintf(stderr, "usage: ffi_args SOCKET_PATH\n");
        return 2;
    }
    sock_path = argv[1];
    alarm(60); /* a hang fails the test (SIGALRM) instead of blocking it */
    native_without_request();
    fcgx_without_request();
    os_without_request();
    stdio_without_request();

    unlink(sock_path);
    lfd = fcgi_listen(sock_path, 16);
    if (lfd < 0) {
        fprintf(stderr, "fcgi_listen(%s) failed\n", sock_path);
        return 2;
    }
    native_with_request(lfd);
    loop_with_request(lfd);
    fcgx_with_request(lfd);

    /* Shutdown last: these change the process's state for good. */
    CALL(FCGX_ShutdownPending, FCGX_ShutdownPending());
    CALL(OS_ShutdownPending, OS_ShutdownPending());
    CALL(fcgi_terminate, fcgi_terminate());
    CHECK(fcgi_in_shutdown, fcgi_in_shutdown(), r == 1);
    {
        fcgi_request *q = fcgi_init_request(lfd, NULL, NULL, NULL);
        CHECK(fcgi_accept_request, fcgi_accept_request(q), r == -1);
        fcgi_destroy_request(q);
    }
    /* FCGI_Accept in CGI mode (stdin is no socket): one CGI request, then -1. */
    CHECK(FCGI_Accept, FCGI_Accept(), r == 0);
    CALL(FCGI_Finish, FCGI_Finish());
    CHECK(FCGI_Accept, FCGI_Accept(), r == -1);
    CALL(fcgi_shutdown, fcgi_shutdown());
    close(lfd);
    unlink(sock_path);

    for (i = 0; i < n_covered; i++)
        fprintf(stderr, "covered %s\n", covered[i]);
    fprintf(stderr, "failures=%d\n", failures);
    return failures == 0 ? 0 : 1;
}
