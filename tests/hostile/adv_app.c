/*
 * adv_app.c - a native-API application for the tests of tests/hostile/.
 *
 *   adv_app ADDR THREADS [-p] [-s MODE OWNER]
 *
 * -p puts SIGPIPE back to its default disposition after fcgi_listen (which installs a no-op
 * handler): a write to a vanished peer must then still not kill the process.
 * -s calls fcgi_set_socket_permissions(MODE (octal; -1: default), OWNER ("-": NULL)) before
 * fcgi_listen; exits 3 if it fails.
 *
 * What a request does is chosen by QUERY_STRING (key=value&...):
 *   noread=1     never read STDIN
 *   sleep_ms=N   sleep N ms before anything else
 *   out=N        write N bytes of body ('x') in chunks of chunk=N bytes (16384), sleeping
 *                pause_ms=N between chunks; a failed write is reported on stderr as
 *                "write failed after N bytes (aborted=A)" and ends the request
 *   exec=1       fork, and exec `ls -l /proc/self/fd/` in the child: its open descriptors
 *                (ls's own directory descriptor among them) become the body
 * Otherwise STDIN is read to its end and the body is "STDIN_LENGTH=n\n".
 */
#include <errno.h>
#include <fcgi.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int listen_fd = -1;

static unsigned long long qnum(const char *qs, const char *key, unsigned long long dflt)
{
    size_t klen = strlen(key);
    const char *p = qs;
    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=')
            return strtoull(p + klen + 1, NULL, 10);
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return dflt;
}

static void sleep_ms(unsigned long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int put(fcgi_request *req, const char *s, int n)
{
    return fcgi_write(req, FCGI_STDOUT, s, n) == n ? 0 : -1;
}

static void list_fds_of_child(fcgi_request *req)
{
    int p[2];
    if (pipe(p) != 0) {
        put(req, "pipe failed\n", 12);
        return;
    }
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        execl("/bin/ls", "ls", "-l", "/proc/self/fd/", (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[4096];
    ssize_t n;
    while ((n = read(p[0], buf, sizeof buf)) > 0)
        put(req, buf, (int)n);
    close(p[0]);
    int st;
    waitpid(pid, &st, 0);
}

static void *serve(void *arg)
{
    (void)arg;
    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    if (!req)
        return NULL;
    static char chunkbuf[1 << 20];
    memset(chunkbuf, 'x', sizeof chunkbuf);
    char in[65536];
    while (fcgi_accept_request(req) >= 0) {
        const char *qs = fcgi_getenv(req, "QUERY_STRING", (int)strlen("QUERY_STRING"));
        if (!qs)
            qs = "";
        unsigned long long sl = qnum(qs, "sleep_ms", 0);
        if (sl)
            sleep_ms(sl);
        static const char head[] = "Content-Type: text/plain\r\n\r\n";
        if (qnum(qs, "exec", 0)) {
            put(req, head, (int)sizeof head - 1);
            list_fds_of_child(req);
        } else if (qnum(qs, "out", 0)) {
            unsigned long long want = qnum(qs, "out", 0), done = 0;
            unsigned long long chunk = qnum(qs, "chunk", 16384);
            unsigned long long pause = qnum(qs, "pause_ms", 0);
            if (chunk == 0 || chunk > sizeof chunkbuf)
                chunk = 16384;
            if (put(req, head, (int)sizeof head - 1) != 0)
                want = 0;
            while (done < want) {
                int n = (int)(want - done < chunk ? want - done : chunk);
                if (put(req, chunkbuf, n) != 0) {
                    fprintf(stderr, "adv_app: write failed after %llu bytes (aborted=%d)\n", done,
                            fcgi_is_aborted(req));
                    break;
                }
                done += (unsigned long long)n;
                if (pause)
                    sleep_ms(pause);
            }
        } else {
            unsigned long long total = 0;
            if (!qnum(qs, "noread", 0)) {
                int n;
                while ((n = fcgi_read(req, in, (int)sizeof in)) > 0)
                    total += (unsigned long long)n;
            }
            char body[128];
            int len = snprintf(body, sizeof body, "%sSTDIN_LENGTH=%llu\n", head, total);
            put(req, body, len);
        }
        fcgi_finish_request(req, 0);
    }
    fcgi_destroy_request(req);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s ADDR THREADS [-p]\n", argv[0]);
        return 2;
    }
    int threads = atoi(argv[2]);
    if (threads < 1 || threads > 256)
        threads = 1;
    fcgi_init();
    /* Multiplexed connections are part of the attack (abort storms): opt in, since the native
       face advertises FCGI_MPXS_CONNS=0, as PHP's layer does. */
    fcgi_set_limit(FCGI_LIMIT_MPXS_CONNS, 1);
    int dfl_pipe = 0;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "-p") == 0) {
            dfl_pipe = 1;
        } else if (strcmp(argv[i], "-s") == 0 && i + 2 < argc) {
            int mode = strcmp(argv[i + 1], "-1") == 0 ? -1 : (int)strtol(argv[i + 1], NULL, 8);
            const char *owner = strcmp(argv[i + 2], "-") == 0 ? NULL : argv[i + 2];
            if (fcgi_set_socket_permissions(mode, owner) != 0) {
                fprintf(stderr, "adv_app: fcgi_set_socket_permissions failed\n");
                return 3;
            }
            i += 2;
        }
    }
    listen_fd = fcgi_listen(argv[1], 1024);
    if (listen_fd < 0) {
        fprintf(stderr, "adv_app: cannot listen on %s\n", argv[1]);
        return 1;
    }
    if (dfl_pipe)
        signal(SIGPIPE, SIG_DFL);
    pthread_t t[256];
    for (int i = 1; i < threads; i++)
        pthread_create(&t[i], NULL, serve, NULL);
    serve(NULL);
    for (int i = 1; i < threads; i++)
        pthread_join(t[i], NULL);
    return 0;
}
