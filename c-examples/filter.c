/*
 * filter.c - a FastCGI Filter (role FCGI_FILTER).
 *
 *   filter [-a ADDR]   (or FCGI_ADDR=ADDR, or a listening socket on fd 0)
 *
 * Reads STDIN to its end, then the DATA stream (the file to filter) with fcgi_read_data, and
 * answers "Content-Type: text/plain" followed by the DATA with ASCII letters uppercased, streamed
 * as it is read. The exit status sent in END_REQUEST is 0, or 1 when the FCGI_DATA_LENGTH param
 * disagrees with the number of DATA bytes received (a line then goes to FCGI_STDERR).
 * Exits 0 when fcgi_accept_request returns -1. Installs no signal handlers.
 */
#include <errno.h>
#include <fcgi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [-a ADDR]   (or FCGI_ADDR=ADDR, or a listening socket on fd 0)\n",
            argv0);
}

static int open_listener(int argc, char **argv)
{
    const char *addr = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "a:h")) != -1) {
        switch (opt) {
        case 'a':
            addr = optarg;
            break;
        case 'h':
            usage(argv[0]);
            exit(0);
        default:
            usage(argv[0]);
            exit(2);
        }
    }
    if (fcgi_is_fastcgi())
        return 0;
    if (!addr)
        addr = getenv("FCGI_ADDR");
    if (!addr || !*addr) {
        fprintf(stderr, "%s: fd 0 is not a listening socket and no address was given\n", argv[0]);
        usage(argv[0]);
        exit(2);
    }
    int fd = fcgi_listen(addr, 128);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot listen on %s\n", argv[0], addr);
        exit(1);
    }
    return fd;
}

static void upcase(char *p, int n)
{
    for (int i = 0; i < n; i++)
        if (p[i] >= 'a' && p[i] <= 'z')
            p[i] = (char)(p[i] - 'a' + 'A');
}

int main(int argc, char **argv)
{
    fcgi_init();
    int listen_fd = open_listener(argc, argv);

    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    char *buf = malloc(CHUNK);
    if (!req || !buf) {
        fprintf(stderr, "%s: initialisation failed\n", argv[0]);
        return 1;
    }

    while (fcgi_accept_request(req) >= 0) {
        int status = 0;

        /* A Filter's STDIN comes first and must be read to its end before DATA. */
        int n;
        while ((n = fcgi_read(req, buf, CHUNK)) > 0)
            ;
        int broken = n < 0;

        static const char head[] = "Content-Type: text/plain\r\n\r\n";
        if (!broken && fcgi_write(req, FCGI_STDOUT, head, (int)sizeof head - 1) < 0)
            broken = 1;

        unsigned long long got = 0;
        while (!broken && (n = fcgi_read_data(req, buf, CHUNK)) > 0) {
            got += (unsigned long long)n;
            upcase(buf, n);
            if (fcgi_write(req, FCGI_STDOUT, buf, n) != n)
                broken = 1;
        }
        if (n < 0)
            broken = 1;

        const char *want = fcgi_getenv(req, "FCGI_DATA_LENGTH", (int)strlen("FCGI_DATA_LENGTH"));
        if (!broken && want) {
            char *end;
            errno = 0;
            unsigned long long expected = strtoull(want, &end, 10);
            if (errno || end == want || *end || expected != got) {
                char msg[160];
                int len = snprintf(msg, sizeof msg,
                                   "filter: FCGI_DATA_LENGTH=%.40s but %llu bytes of DATA read\n",
                                   want, got);
                fcgi_write(req, FCGI_STDERR, msg, len);
                status = 1;
            }
        }
        if (broken)
            status = 1;

        fcgi_set_app_status(req, status);
        fcgi_finish_request(req, 0);
    }

    free(buf);
    fcgi_destroy_request(req);
    return 0;
}
