/*
 * prefork.c - a pre-forking server: the parent opens the listening socket and creates its
 * request object, then forks worker processes that serve on the shared socket.
 *
 *   prefork [-w WORKERS]   listens on FCGI_ADDR (default 2 workers)
 *
 * fcgi-runtime starts no thread and opens no poll before the first fcgi_accept_request, so
 * forking after fcgi_listen and fcgi_init_request is safe: each worker gets its own reactor.
 * The parent checks that it is still single-threaded when it forks (exit 3 otherwise).
 * Each response is "Content-Type: text/plain\r\n\r\nPID=<worker pid>\n"; QUERY_STRING
 * sleep_ms=N delays it. The parent forwards SIGTERM to the workers and exits 0 when they have.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcgi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int thread_count(void)
{
    DIR *d = opendir("/proc/self/task");
    int n = 0;
    struct dirent *e;
    if (!d)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void serve(fcgi_request *req)
{
    char out[128];
    while (fcgi_accept_request(req) >= 0) {
        const char *qs = fcgi_getenv(req, "QUERY_STRING", (int)strlen("QUERY_STRING"));
        const char *ms = qs ? strstr(qs, "sleep_ms=") : NULL;
        if (ms) {
            long v = strtol(ms + strlen("sleep_ms="), NULL, 10);
            struct timespec ts = {v / 1000, (v % 1000) * 1000000L};
            nanosleep(&ts, NULL);
        }
        int n = snprintf(out, sizeof out, "Content-Type: text/plain\r\n\r\nPID=%d\n", (int)getpid());
        fcgi_write(req, FCGI_STDOUT, out, n);
        fcgi_finish_request(req, 0);
    }
}

int main(int argc, char **argv)
{
    int workers = 2, opt;
    while ((opt = getopt(argc, argv, "w:")) != -1) {
        if (opt == 'w')
            workers = atoi(optarg);
        else
            return 2;
    }
    const char *addr = getenv("FCGI_ADDR");
    if (!addr || workers < 1) {
        fprintf(stderr, "usage: FCGI_ADDR=ADDR %s [-w WORKERS]\n", argv[0]);
        return 2;
    }
    int fd = fcgi_listen(addr, 128);
    if (fd < 0)
        return 1;
    fcgi_request *req = fcgi_init_request(fd, NULL, NULL, NULL);
    if (!req)
        return 1;
    if (thread_count() != 1) {
        fprintf(stderr, "prefork: %d threads before fork\n", thread_count());
        return 3;
    }
    pid_t *pids = calloc((size_t)workers, sizeof *pids);
    for (int i = 0; i < workers; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            serve(req);
            fcgi_destroy_request(req);
            _exit(0);
        }
    }
    /* fcgi_listen installed the shutdown handler; the parent waits for it, then stops the
     * workers. */
    while (!fcgi_in_shutdown())
        pause();
    for (int i = 0; i < workers; i++)
        kill(pids[i], SIGTERM);
    int failed = 0, status;
    for (int i = 0; i < workers; i++)
        if (waitpid(pids[i], &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            failed = 1;
    free(pids);
    return failed;
}
