/*
 * fpm_worker.c - a native-API program that uses the library the way a PHP-FPM worker uses
 * PHP's FastCGI layer (sapi/fpm), for tests/native/php_behaviour.rs:
 *   - the layer's log lines reach its logger (fcgi_set_logger), written to stderr as FPM's
 *     zlog writes them: "LEVEL: message";
 *   - fcgi_init first; the allowed clients from FPM's listen.allowed_clients are given with
 *     fcgi_set_allowed_clients (-c LIST);
 *   - SIGTERM back at its default action once the listening socket is open (fcgi_listen
 *     installed PHP's handler; FPM's workers reset SIGTERM to SIG_DFL);
 *   - one thread and one fcgi_request.
 *
 *   fpm_worker ADDR [-c ALLOWED_CLIENTS] [-m]
 *
 *   -m   opts in to multiplexing: fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1)
 *
 * The QUERY_STRING of a request says what it wants:
 *   block_sigterm  blocks SIGTERM in this thread (the process's only application thread)
 *                  with sigprocmask, as a worker does while it works; answers "SIGTERM blocked"
 *   sigpending     answers "SIGTERM pending: yes" or "SIGTERM pending: no" (sigpending)
 *   hooks          answers "tasks at first on_accept: N" (the process's threads, from
 *                  /proc/self/task, when the on_accept hook was first called),
 *                  "on_accept calls: A" and "on_read calls: R" (the hooks of fcgi_init_request,
 *                  counted as a PHP-FPM worker's stage changes are)
 *   loadenv        applies the body's lines to the environment, "NAME=VALUE" with fcgi_putenv
 *                  and "NAME" (no '=') deleting it, then answers the variables in the order
 *                  fcgi_loadenv visits them, "NAME=VALUE" a line, and a last line
 *                  "allocations: N": the heap allocations this thread made during 100 more
 *                  fcgi_loadenv calls
 *   anything else  answers "ok"
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcgi.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Heap allocations of the calling thread: malloc, calloc and realloc are this program's, so
 * the library's allocations (Rust's allocator calls malloc) are counted too. */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
static __thread unsigned long allocations;

void *malloc(size_t n)
{
    allocations++;
    return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    allocations++;
    return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    allocations++;
    return __libc_realloc(p, n);
}

static void zlog(int level, const char *fmt, ...)
{
    static const char *const names[] = {"", "DEBUG", "NOTICE", "WARNING", "ERROR", "ALERT"};
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s: %s\n", level >= 1 && level <= 5 ? names[level] : "?", msg);
}

/* The hooks: PHP-FPM's worker sets its scoreboard stage in them ("accepting", "reading
 * headers"), and its ondemand manager reads those stages. */
static int tasks_at_first_accept = -1;
static unsigned long accept_calls, read_calls;

static int count_tasks(void)
{
    DIR *d = opendir("/proc/self/task");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void on_accept(void)
{
    if (accept_calls++ == 0)
        tasks_at_first_accept = count_tasks();
}

static void on_read(void)
{
    read_calls++;
}

struct out {
    char buf[16384];
    size_t len;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (n > sizeof o->buf - o->len)
        n = sizeof o->buf - o->len;
    memcpy(o->buf + o->len, s, n);
    o->len += n;
}

static void putz(struct out *o, const char *s)
{
    put(o, s, strlen(s));
}

static void add_var(const char *var, unsigned int var_len, char *val, unsigned int val_len,
                    void *arg)
{
    struct out *o = arg;
    put(o, var, var_len);
    put(o, "=", 1);
    put(o, val, val_len);
    put(o, "\n", 1);
}

static void count_nothing(const char *var, unsigned int var_len, char *val,
                          unsigned int val_len, void *arg)
{
    (void)var;
    (void)var_len;
    (void)val;
    (void)val_len;
    ++*(unsigned long *)arg;
}

/* The body's putenv script: "NAME=VALUE" sets, "NAME" deletes. */
static void apply_script(fcgi_request *req, char *body)
{
    for (char *line = strtok(body, "\n"); line; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (eq) {
            *eq = '\0';
            fcgi_putenv(req, line, (int)strlen(line), eq + 1);
        } else {
            fcgi_putenv(req, line, (int)strlen(line), NULL);
        }
    }
}

static void loadenv(fcgi_request *req, struct out *o)
{
    static char body[4096];
    size_t len = 0;
    int n;
    while (len < sizeof body - 1 &&
           (n = fcgi_read(req, body + len, (int)(sizeof body - 1 - len))) > 0)
        len += (size_t)n;
    body[len] = '\0';
    apply_script(req, body);
    fcgi_loadenv(req, add_var, o);
    unsigned long visits = 0, before = allocations;
    for (int i = 0; i < 100; i++)
        fcgi_loadenv(req, count_nothing, &visits);
    char line[64];
    snprintf(line, sizeof line, "allocations: %lu\n", allocations - before);
    putz(o, line);
}

int main(int argc, char **argv)
{
    const char *allowed = NULL;
    int multiplex = 0, opt;
    while ((opt = getopt(argc, argv, "c:m")) != -1) {
        switch (opt) {
        case 'c':
            allowed = optarg;
            break;
        case 'm':
            multiplex = 1;
            break;
        default:
            fprintf(stderr, "usage: %s ADDR [-c ALLOWED_CLIENTS] [-m]\n", argv[0]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        fprintf(stderr, "usage: %s ADDR [-c ALLOWED_CLIENTS] [-m]\n", argv[0]);
        return 2;
    }
    fcgi_set_logger(zlog);
    fcgi_init();
    if (multiplex)
        fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1);
    int fd = fcgi_listen(argv[optind], 128);
    if (fd < 0)
        return 1;
    signal(SIGTERM, SIG_DFL);
    if (allowed)
        fcgi_set_allowed_clients((char *)allowed);

    fcgi_request *req = fcgi_init_request(fd, on_accept, on_read, NULL);
    static struct out o;
    while (fcgi_accept_request(req) >= 0) {
        o.len = 0;
        const char *qs = fcgi_getenv(req, "QUERY_STRING", (int)strlen("QUERY_STRING"));
        qs = qs ? qs : "";
        putz(&o, "Content-Type: text/plain\r\n\r\n");
        if (strcmp(qs, "block_sigterm") == 0) {
            sigset_t term;
            sigemptyset(&term);
            sigaddset(&term, SIGTERM);
            sigprocmask(SIG_BLOCK, &term, NULL);
            putz(&o, "SIGTERM blocked\n");
        } else if (strcmp(qs, "sigpending") == 0) {
            sigset_t pending;
            sigpending(&pending);
            putz(&o, sigismember(&pending, SIGTERM) ? "SIGTERM pending: yes\n"
                                                     : "SIGTERM pending: no\n");
        } else if (strcmp(qs, "hooks") == 0) {
            char line[160];
            snprintf(line, sizeof line,
                     "tasks at first on_accept: %d\non_accept calls: %lu\non_read calls: %lu\n",
                     tasks_at_first_accept, accept_calls, read_calls);
            putz(&o, line);
        } else if (strcmp(qs, "loadenv") == 0) {
            loadenv(req, &o);
        } else {
            putz(&o, "ok\n");
        }
        fcgi_write(req, FCGI_STDOUT, o.buf, (int)o.len);
        fcgi_finish_request(req, 0);
    }
    fcgi_destroy_request(req);
    return 0;
}
