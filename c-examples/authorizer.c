/*
 * authorizer.c - a FastCGI Authorizer (role FCGI_AUTHORIZER).
 *
 *   authorizer [-a ADDR]   (or FCGI_ADDR=ADDR, or a listening socket on fd 0)
 *
 * Grants the request (Status: 200, and Variable-AUTH_USER: demo, which the web server passes on
 * to the application as AUTH_USER) when HTTP_AUTHORIZATION is exactly "Bearer letmein";
 * otherwise answers 403 with a short body, which the web server returns to the client.
 * Exits 0 when fcgi_accept_request returns -1. Installs no signal handlers.
 */
#include <fcgi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

int main(int argc, char **argv)
{
    fcgi_init();
    int listen_fd = open_listener(argc, argv);

    fcgi_request *req = fcgi_init_request(listen_fd, NULL, NULL, NULL);
    if (!req) {
        fprintf(stderr, "%s: fcgi_init_request failed\n", argv[0]);
        return 1;
    }

    while (fcgi_accept_request(req) >= 0) {
        const char *auth =
            fcgi_getenv(req, "HTTP_AUTHORIZATION", (int)strlen("HTTP_AUTHORIZATION"));
        if (auth && strcmp(auth, "Bearer letmein") == 0) {
            static const char ok[] = "Status: 200\r\nVariable-AUTH_USER: demo\r\n\r\n";
            fcgi_write(req, FCGI_STDOUT, ok, (int)sizeof ok - 1);
        } else {
            static const char no[] = "Status: 403\r\nContent-Type: text/plain\r\n\r\nforbidden\n";
            fcgi_write(req, FCGI_STDOUT, no, (int)sizeof no - 1);
        }
        fcgi_finish_request(req, 0);
    }

    fcgi_destroy_request(req);
    return 0;
}
