/*
 * lf-echo.c - libfcgi's classic echo program, written against fcgi_stdio.h.
 *
 *   lf-echo            (fd 0 must be the listening socket, as under spawn-fcgi or a web server)
 *
 * An unmodified libfcgi source: it uses only fcgi_stdio.h (FCGI_Accept, printf, fread, fwrite,
 * getenv, environ) and runs on Debian's libfcgi.so.0 or on fcgi-runtime's. For each request it
 * reads STDIN to its end and answers, exactly:
 *
 *   Content-Type: text/plain\r\n\r\n
 *   REQUEST=<n>\n             requests served by this process so far, this one included
 *   <environ[i]>\n            one line per environment entry, in order (FCGI_ROLE=... first)
 *   STDIN_LENGTH=<n>\n        bytes read from stdin with fread until it returned 0
 *   STDIN_FNV1A64=<hex>\n     64-bit FNV-1a of those bytes, 16 lowercase hex digits
 *   <the stdin bytes>
 *
 * Param ECHO_STDERR=<text>: also writes "stderr: <text>\n" to stderr (FCGI_STDERR records).
 * Param EXIT_STATUS=<n>: FCGI_SetExitStatus(n), the appStatus of END_REQUEST.
 * Exits 0 when FCGI_Accept fails (the listening socket closed, SIGTERM, ...).
 */
#include "fcgi_stdio.h"

#include <stdlib.h>
#include <string.h>

extern char **environ;

#define CHUNK 4096

int main(void)
{
    unsigned long served = 0;
    char *body = NULL;
    size_t cap = 0;

    while (FCGI_Accept() >= 0) {
        size_t len = 0;
        unsigned long long hash = 0xcbf29ce484222325ULL;
        char chunk[CHUNK];
        size_t n;

        served++;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0 && n <= sizeof chunk) {
            size_t i;
            if (len + n > cap) {
                size_t ncap = cap ? cap * 2 : 16 * CHUNK;
                while (ncap < len + n)
                    ncap *= 2;
                char *p = realloc(body, ncap);
                if (!p)
                    break;
                body = p;
                cap = ncap;
            }
            memcpy(body + len, chunk, n);
            len += n;
            for (i = 0; i < n; i++) {
                hash ^= (unsigned char)chunk[i];
                hash *= 0x100000001b3ULL;
            }
        }

        printf("Content-Type: text/plain\r\n\r\n");
        printf("REQUEST=%lu\n", served);
        for (char **e = environ; e && *e; e++)
            printf("%s\n", *e);
        printf("STDIN_LENGTH=%lu\n", (unsigned long)len);
        printf("STDIN_FNV1A64=%016llx\n", hash);
        if (len)
            fwrite(body, 1, len, stdout);

        const char *text = getenv("ECHO_STDERR");
        if (text)
            fprintf(stderr, "stderr: %s\n", text);
        const char *status = getenv("EXIT_STATUS");
        if (status)
            FCGI_SetExitStatus(atoi(status));
    }
    free(body);
    return 0;
}
