/*
 * sapi.c - a minimal SAPI-shaped FastCGI program: an "interpreter" embedded the way php-cgi
 * embeds PHP (sapi/cgi/cgi_main.c over main/fastcgi.h), on fcgi-runtime's fcgi.h.
 * docs/sapi.md walks through it.
 *
 *   sapi [-b ADDR] [-t THREADS]
 *
 * Like php-cgi: FastCGI mode when fd 0 is a listening socket (the web server or spawn-fcgi
 * started it), else when -b ADDR names one to open ("port", "host:port", "[v6]:port" or a Unix
 * path; FCGI_WEB_SERVER_ADDRS then restricts TCP clients); otherwise one plain CGI request
 * from the environment and stdin/stdout. With PHP_FCGI_CHILDREN=N (N > 0) the process becomes
 * a supervisor of N pre-forked workers (fcgi_pool_*); PHP_FCGI_MAX_REQUESTS recycles them.
 * With -t THREADS each worker runs THREADS accept loops (one fcgi_request each).
 *
 * The toy language. A script is the file named by SCRIPT_FILENAME, one command a line:
 *   header Name: value   adds a response header (a warning on stderr once output started)
 *   status CODE          the HTTP status (sent as "Status: CODE")
 *   echo TEXT            writes TEXT and a newline
 *   env NAME             writes the request variable NAME (else the process's) and a newline
 *   body                 writes the request body (at most CONTENT_LENGTH bytes, up to 64 MiB)
 *   error TEXT           logs TEXT to the web server's error log (FCGI_STDERR)
 *   flush                sends what was written so far
 *   wait_abort           waits (at most 10 s) until the web server aborted the request
 *   exit CODE            stops the script; CODE becomes END_REQUEST's appStatus
 *   # ...                a comment; empty lines are ignored too
 * A missing or unreadable script answers 404 "No input file specified.", as php-cgi does.
 * Unknown commands are logged as errors and skipped. When the web server aborts the request
 * (or the connection breaks) the script stops and "sapi: request aborted at line N" goes to
 * the process's stderr. Exits 0 once fcgi_accept_request returns -1 (SIGTERM, SIGUSR1).
 */
#include <errno.h>
#include <fcgi.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64
#define MAX_HEADERS 32
#define MAX_BODY (64LL * 1024 * 1024)

/* ---------------------------------------------------------------------------------------
 * The interpreter's side: it knows nothing about FastCGI, only this module of callbacks
 * (PHP's sapi_module_struct, cut down to what the toy language needs).
 * ------------------------------------------------------------------------------------- */

struct sapi_module {
    const char *name;
    /* Writes response body bytes; returns the count or -1 when the client went away. */
    int (*ub_write)(void *ctx, const char *str, size_t len);
    /* Sends the buffered output. */
    void (*flush)(void *ctx);
    /* Reads up to len bytes of the request body; 0 at its end, -1 on error. */
    int (*read_post)(void *ctx, char *buf, size_t len);
    /* A request variable (CGI environment), or NULL. */
    const char *(*getenv)(void *ctx, const char *name);
    /* A message for the web server's error log. */
    void (*log_message)(void *ctx, const char *msg);
    /* 1 once the web server aborted the request. */
    int (*connection_aborted)(void *ctx);
    /* The script's exit status. */
    void (*set_exit_status)(void *ctx, int status);
};

/* The state of one request inside the interpreter (PHP's SG(sapi_headers) and friends). */
struct script_state {
    const struct sapi_module *sapi;
    void *ctx;
    int status;
    int headers_sent;
    int aborted;
    int nheaders;
    char *headers[MAX_HEADERS];
};

static const char *status_text(int code)
{
    switch (code) {
    case 200: return "OK";
    case 201: return "Created";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Unknown";
    }
}

/* The CGI response head: Status (unless 200), the script's headers, a default Content-Type. */
static int send_headers(struct script_state *st)
{
    char head[8192];
    size_t n = 0;
    int has_type = 0;
    if (st->status != 200)
        n += (size_t)snprintf(head + n, sizeof head - n, "Status: %d %s\r\n", st->status,
                              status_text(st->status));
    for (int i = 0; i < st->nheaders && n < sizeof head; i++) {
        if (strncasecmp(st->headers[i], "Content-Type:", 13) == 0)
            has_type = 1;
        n += (size_t)snprintf(head + n, sizeof head - n, "%s\r\n", st->headers[i]);
    }
    if (!has_type && n < sizeof head)
        n += (size_t)snprintf(head + n, sizeof head - n, "Content-Type: text/plain\r\n");
    if (n < sizeof head)
        n += (size_t)snprintf(head + n, sizeof head - n, "\r\n");
    if (n >= sizeof head)
        n = sizeof head - 1;
    st->headers_sent = 1;
    return st->sapi->ub_write(st->ctx, head, n) < 0 ? -1 : 0;
}

/* PHP's php_output_write: the first output sends the headers. */
static int out(struct script_state *st, const char *s, size_t len)
{
    if (!st->headers_sent && send_headers(st) < 0)
        return -1;
    if (len > 0 && st->sapi->ub_write(st->ctx, s, len) < 0)
        return -1;
    return 0;
}

static void script_warning(struct script_state *st, const char *what, unsigned line, const char *text)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "sapi: %s on line %u: %s", what, line, text);
    st->sapi->log_message(st->ctx, msg);
}

/* Runs one line; returns 0 to go on, 1 when the script ends (exit), -1 on an aborted write. */
static int run_line(struct script_state *st, char *line, unsigned lineno)
{
    char *arg = strchr(line, ' ');
    if (arg)
        *arg++ = '\0';
    else
        arg = line + strlen(line);

    if (strcmp(line, "echo") == 0) {
        if (out(st, arg, strlen(arg)) < 0 || out(st, "\n", 1) < 0)
            return -1;
    } else if (strcmp(line, "header") == 0) {
        if (st->headers_sent)
            script_warning(st, "cannot add header, output already started", lineno, arg);
        else if (st->nheaders < MAX_HEADERS && strchr(arg, ':'))
            st->headers[st->nheaders++] = strdup(arg);
        else
            script_warning(st, "bad header", lineno, arg);
    } else if (strcmp(line, "status") == 0) {
        int code = atoi(arg);
        if (st->headers_sent)
            script_warning(st, "cannot set status, output already started", lineno, arg);
        else if (code >= 100 && code <= 999)
            st->status = code;
        else
            script_warning(st, "bad status", lineno, arg);
    } else if (strcmp(line, "env") == 0) {
        const char *v = st->sapi->getenv(st->ctx, arg);
        if (out(st, v ? v : "", v ? strlen(v) : 0) < 0 || out(st, "\n", 1) < 0)
            return -1;
    } else if (strcmp(line, "body") == 0) {
        /* read_post: the whole body first (at most CONTENT_LENGTH bytes), then the output, as
         * PHP reads POST data before the script writes. Writing while the web server still
         * sends the body can block both sides: nginx reads no response before it sent the
         * whole request. */
        const char *cl = st->sapi->getenv(st->ctx, "CONTENT_LENGTH");
        long long want = cl ? atoll(cl) : 0;
        if (want < 0 || want > MAX_BODY) {
            script_warning(st, "body too large", lineno, cl);
            want = 0;
        }
        char *buf = want > 0 ? malloc((size_t)want) : NULL;
        size_t have = 0;
        while (buf && have < (size_t)want) {
            int n = st->sapi->read_post(st->ctx, buf + have, (size_t)want - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        int rc = out(st, buf ? buf : "", have);
        free(buf);
        if (rc < 0)
            return -1;
    } else if (strcmp(line, "error") == 0) {
        st->sapi->log_message(st->ctx, arg);
    } else if (strcmp(line, "flush") == 0) {
        if (out(st, "", 0) < 0)
            return -1;
        st->sapi->flush(st->ctx);
    } else if (strcmp(line, "wait_abort") == 0) {
        for (int i = 0; i < 1000 && !st->sapi->connection_aborted(st->ctx); i++) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    } else if (strcmp(line, "exit") == 0) {
        st->sapi->set_exit_status(st->ctx, atoi(arg));
        return 1;
    } else if (line[0] != '\0' && line[0] != '#') {
        script_warning(st, "unknown command", lineno, line);
    }
    return 0;
}

/*
 * The interpreter's entry point (PHP's php_execute_script): runs the script at `path`.
 * Returns 0, or -1 if the script could not be opened (the caller answers 404).
 */
static int interp_run(const struct sapi_module *sapi, void *ctx, const char *path)
{
    FILE *f = path && *path ? fopen(path, "r") : NULL;
    struct stat sb;
    if (f && (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))) {
        fclose(f); /* a directory opens, but is no script */
        f = NULL;
    }
    if (!f)
        return -1;
    struct script_state st = {.sapi = sapi, .ctx = ctx, .status = 200};
    char line[8192];
    unsigned lineno = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        lineno++;
        line[strcspn(line, "\r\n")] = '\0';
        if (sapi->connection_aborted(ctx)) {
            rc = -1;
            break;
        }
        rc = run_line(&st, line, lineno);
    }
    if (rc == -1) {
        /* php_handle_aborted_connection: stop the script, note it in the process's log. */
        fprintf(stderr, "sapi: request aborted at line %u of %s\n", lineno, path);
    } else if (!st.headers_sent) {
        out(&st, "", 0); /* a script without output still sends its headers */
    }
    fclose(f);
    for (int i = 0; i < st.nheaders; i++)
        free(st.headers[i]);
    return 0;
}

/* ---------------------------------------------------------------------------------------
 * The FastCGI SAPI: the module's callbacks on fcgi.h (cgi_main.c's sapi_cgi_* functions).
 * ------------------------------------------------------------------------------------- */

static int sapi_fcgi_ub_write(void *ctx, const char *str, size_t len)
{
    fcgi_request *req = ctx;
    size_t done = 0;
    while (done < len) {
        int chunk = len - done > 65536 ? 65536 : (int)(len - done);
        if (fcgi_write(req, FCGI_STDOUT, str + done, chunk) <= 0)
            return -1; /* aborted, or the connection broke */
        done += (size_t)chunk;
    }
    return (int)done;
}

static void sapi_fcgi_flush(void *ctx)
{
    fcgi_flush(ctx, 0);
}

static int sapi_fcgi_read_post(void *ctx, char *buf, size_t len)
{
    return fcgi_read(ctx, buf, len > 65536 ? 65536 : (int)len);
}

static const char *sapi_fcgi_getenv(void *ctx, const char *name)
{
    const char *v = fcgi_getenv(ctx, name, (int)strlen(name));
    return v ? v : getenv(name);
}

static void sapi_fcgi_log_message(void *ctx, const char *msg)
{
    /* sapi_cgi_log_message with fastcgi.logging=1: the message and a newline on FCGI_STDERR. */
    fcgi_request *req = ctx;
    size_t len = strlen(msg);
    if (fcgi_write(req, FCGI_STDERR, msg, (int)len) < 0 ||
        fcgi_write(req, FCGI_STDERR, "\n", 1) < 0)
        fprintf(stderr, "%s\n", msg);
}

static int sapi_fcgi_connection_aborted(void *ctx)
{
    return fcgi_is_aborted(ctx);
}

static void sapi_fcgi_set_exit_status(void *ctx, int status)
{
    fcgi_set_app_status(ctx, status);
}

static const struct sapi_module fcgi_sapi = {
    .name = "fcgi",
    .ub_write = sapi_fcgi_ub_write,
    .flush = sapi_fcgi_flush,
    .read_post = sapi_fcgi_read_post,
    .getenv = sapi_fcgi_getenv,
    .log_message = sapi_fcgi_log_message,
    .connection_aborted = sapi_fcgi_connection_aborted,
    .set_exit_status = sapi_fcgi_set_exit_status,
};

/* The answer php-cgi gives when SCRIPT_FILENAME names no readable file. */
static void not_found(const struct sapi_module *sapi, void *ctx)
{
    static const char msg[] = "Status: 404 Not Found\r\n"
                              "Content-Type: text/html; charset=UTF-8\r\n\r\n"
                              "No input file specified.\n";
    sapi->ub_write(ctx, msg, sizeof msg - 1);
    sapi->log_message(ctx, "Primary script unknown");
}

/* One accept loop: what cgi_main.c's main() does per request in FastCGI mode. */
static int listen_fd;

static void *serve(void *arg)
{
    (void)arg;
    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    if (!req) {
        fprintf(stderr, "sapi: fcgi_init_request failed\n");
        return NULL;
    }
    while (fcgi_accept_request(req) >= 0) {
        const char *script = FCGI_GETENV(req, "SCRIPT_FILENAME");
        if (interp_run(&fcgi_sapi, req, script) < 0)
            not_found(&fcgi_sapi, req);
        fcgi_finish_request(req, 0);
    }
    fcgi_destroy_request(req);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * The plain CGI SAPI: the same interpreter on the process's environment and stdio.
 * ------------------------------------------------------------------------------------- */

static int cgi_ub_write(void *ctx, const char *str, size_t len)
{
    (void)ctx;
    return fwrite(str, 1, len, stdout) == len ? (int)len : -1;
}

static void cgi_flush(void *ctx)
{
    (void)ctx;
    fflush(stdout);
}

static int cgi_read_post(void *ctx, char *buf, size_t len)
{
    (void)ctx;
    size_t n = fread(buf, 1, len, stdin);
    return n > 0 ? (int)n : (ferror(stdin) ? -1 : 0);
}

static const char *cgi_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static void cgi_log_message(void *ctx, const char *msg)
{
    (void)ctx;
    fprintf(stderr, "%s\n", msg);
}

static int cgi_connection_aborted(void *ctx)
{
    (void)ctx;
    return 0;
}

static int cgi_exit_status;

static void cgi_set_exit_status(void *ctx, int status)
{
    (void)ctx;
    cgi_exit_status = status;
}

static const struct sapi_module cgi_sapi = {
    .name = "cgi",
    .ub_write = cgi_ub_write,
    .flush = cgi_flush,
    .read_post = cgi_read_post,
    .getenv = cgi_getenv,
    .log_message = cgi_log_message,
    .connection_aborted = cgi_connection_aborted,
    .set_exit_status = cgi_set_exit_status,
};

/* ---------------------------------------------------------------------------------------
 * Start-up: cgi_main.c's main(), FastCGI detection, -b, PHP_FCGI_CHILDREN.
 * ------------------------------------------------------------------------------------- */

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-b ADDR] [-t THREADS]\n", argv0);
}

int main(int argc, char **argv)
{
    const char *bindpath = NULL;
    int threads = 1;
    int opt;
    while ((opt = getopt(argc, argv, "b:t:h")) != -1) {
        switch (opt) {
        case 'b':
            bindpath = optarg;
            break;
        case 't':
            threads = atoi(optarg);
            break;
        case 'h':
            usage(argv[0]);
            return 0;
        default:
            usage(argv[0]);
            return 1;
        }
    }
    if (threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "sapi: -t wants 1..%d\n", MAX_THREADS);
        return 1;
    }

    /* php-cgi ignores SIGPIPE itself, before fcgi_init; fcgi_init then leaves it alone. */
    signal(SIGPIPE, SIG_IGN);

    int fastcgi = fcgi_is_fastcgi(); /* fd 0 is a listening socket */
    if (!fastcgi && !bindpath) {
        /* Plain CGI: one request, the same interpreter, other callbacks. */
        const char *script = getenv("SCRIPT_FILENAME");
        if (interp_run(&cgi_sapi, NULL, script) < 0)
            not_found(&cgi_sapi, NULL);
        fflush(stdout);
        return cgi_exit_status;
    }

    /* php-cgi also calls fcgi_set_mgmt_var("FCGI_MAX_CONNS"/"FCGI_MAX_REQS", children or "1")
     * here. In fcgi-runtime those names set enforced limits (connections past FCGI_MAX_CONNS
     * wait in the listen backlog, as under PHP), and one thread serves many connections, so
     * this SAPI leaves them at the library's defaults; GET_VALUES reports those. */
    const char *env_children = getenv("PHP_FCGI_CHILDREN");
    int children = env_children ? atoi(env_children) : 0;

    const char *env_backlog = getenv("PHP_FCGI_BACKLOG");
    int backlog = env_backlog ? atoi(env_backlog) : 128;
    fcgi_pool *pool = NULL;
    listen_fd = 0;
    if (children > 0) {
        /* php-cgi forks PHP_FCGI_CHILDREN children and re-forks them itself; here the
         * library's pool does (its defaults come from PHP_FCGI_CHILDREN and
         * PHP_FCGI_MAX_REQUESTS). Without fcgi_pool_listen it serves fd 0. */
        pool = fcgi_pool_new();
        if (!pool || fcgi_pool_set(pool, "name", "sapi") < 0)
            return 1;
        if (!fastcgi && fcgi_pool_listen(pool, bindpath, backlog) < 0) {
            fprintf(stderr, "Couldn't create FastCGI listen socket on port %s\n", bindpath);
            return 1;
        }
        int r = fcgi_pool_run(pool); /* forks; 1 in each worker */
        if (r <= 0) {
            fcgi_pool_free(pool);
            return r < 0 ? 1 : 0; /* the supervisor, once the pool stopped */
        }
        listen_fd = fcgi_pool_socket(pool, 0);
    } else if (!fastcgi) {
        listen_fd = fcgi_listen(bindpath, backlog);
        if (listen_fd < 0) {
            fprintf(stderr, "Couldn't create FastCGI listen socket on port %s\n", bindpath);
            return 1;
        }
    }

    pthread_t tids[MAX_THREADS];
    for (int i = 1; i < threads; i++) {
        if (pthread_create(&tids[i], NULL, serve, NULL) != 0) {
            fprintf(stderr, "sapi: pthread_create failed\n");
            threads = i;
            break;
        }
    }
    serve(NULL);
    for (int i = 1; i < threads; i++)
        pthread_join(tids[i], NULL);
    fcgi_pool_free(pool);
    fcgi_shutdown();
    return 0;
}
