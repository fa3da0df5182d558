/*
 * hello.c - the smallest fcgi-runtime application: one thread, one request at a time.
 *
 *   hello                 fd 0 is a listening socket (spawned by a web server or spawner)
 *   hello -a ADDR         listen on ADDR: "port", "host:port", "[v6]:port" or a Unix path
 *   FCGI_ADDR=ADDR hello  same as -a
 *
 * Answers "Hello, World!\n". With QUERY_STRING containing bytes=N it answers a body of exactly
 * N bytes of "abcdefghijklmnopqrstuvwxyz" repeated, written in 64 KiB chunks (large responses).
 * Exits 0 when fcgi_accept_request returns -1 (shutdown). Installs no signal handlers.
 */
#include <errno.h>
#include <fcgi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHUNK (64 * 1024)
static const char ALPHABET[] = "abcdefghijklmnopqrstuvwxyz";
#define ALPHABET_LEN 26

/* Finds KEY=VALUE in an &-separated query string; returns a pointer to VALUE or NULL. */
static const char *query_param(const char *qs, const char *key)
{
    size_t klen = strlen(key);
    const char *p = qs;
    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=')
            return p + klen + 1;
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return NULL;
}

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

/* Writes exactly n bytes of the repeating alphabet; returns 0, or -1 if the request broke. */
static int write_pattern(fcgi_request *req, unsigned long long n)
{
    static char buf[CHUNK + ALPHABET_LEN];
    static int filled;
    if (!filled) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = ALPHABET[i % ALPHABET_LEN];
        filled = 1;
    }
    unsigned long long pos = 0;
    while (pos < n) {
        unsigned long long left = n - pos;
        int len = left < CHUNK ? (int)left : CHUNK;
        if (fcgi_write(req, FCGI_STDOUT, buf + (pos % ALPHABET_LEN), len) != len)
            return -1;
        pos += (unsigned long long)len;
    }
    return 0;
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
        const char *qs = fcgi_getenv(req, "QUERY_STRING", (int)strlen("QUERY_STRING"));
        const char *bytes = qs ? query_param(qs, "bytes") : NULL;
        if (bytes) {
            char *end;
            errno = 0;
            unsigned long long n = strtoull(bytes, &end, 10);
            if (errno || end == bytes || (*end && *end != '&')) {
                static const char bad[] = "Status: 400\r\nContent-Type: text/plain\r\n\r\n"
                                          "bad bytes= value\n";
                fcgi_write(req, FCGI_STDOUT, bad, (int)sizeof bad - 1);
            } else {
                char head[128];
                int hlen = snprintf(head, sizeof head,
                                    "Content-Type: text/plain\r\nContent-Length: %llu\r\n\r\n", n);
                if (fcgi_write(req, FCGI_STDOUT, head, hlen) == hlen)
                    write_pattern(req, n);
            }
        } else {
            static const char hello[] = "Content-Type: text/plain\r\n\r\nHello, World!\n";
            fcgi_write(req, FCGI_STDOUT, hello, (int)sizeof hello - 1);
        }
        fcgi_finish_request(req, 0);
    }

    fcgi_destroy_request(req);
    return 0;
}
