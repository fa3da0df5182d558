/*
 * fcgx_echo.c - a classic libfcgi application (fcgiapp.h, FCGX_Accept_r), used by
 * tests/libfcgi_cgi_fcgi.rs. It is compiled against Debian's /usr/include/fcgiapp.h and linked
 * with Debian's -lfcgi, then run unmodified on either library (LD_LIBRARY_PATH picks one).
 *
 *   fcgx_echo [SOCKET]
 *
 * With SOCKET ("path" or "host:port") it listens there through FCGX_OpenSocket; without it the
 * listening socket is fd 0, as set up by a spawner (cgi-fcgi -start, spawn-fcgi). It answers
 * every request with, exactly (the format of c-examples/echo.c):
 *
 *   Content-Type: text/plain\r\n\r\n
 *   NAME=VALUE\n            one line per envp entry, in order
 *   STDIN_LENGTH=<n>\n      bytes read with FCGX_GetStr until it returned short
 *   STDIN_FNV1A64=<hex>\n   64-bit FNV-1a of those bytes, 16 lowercase hex digits
 *
 * QUERY_STRING may contain "exit=N" (FCGX_SetExitStatus(N): the appStatus of END_REQUEST) and
 * "stderr=1" (one line "fcgx_echo: stderr line" on the error stream).
 */
#include <fcgiapp.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int main(int argc, char **argv)
{
    int sock = 0;
    FCGX_Request req;
    static char buf[4096];

    if (FCGX_Init() != 0) {
        fprintf(stderr, "fcgx_echo: FCGX_Init failed\n");
        return 1;
    }
    if (argc > 1) {
        sock = FCGX_OpenSocket(argv[1], 64);
        if (sock < 0) {
            fprintf(stderr, "fcgx_echo: FCGX_OpenSocket(%s) failed\n", argv[1]);
            return 1;
        }
    }
    if (FCGX_InitRequest(&req, sock, 0) != 0) {
        fprintf(stderr, "fcgx_echo: FCGX_InitRequest failed\n");
        return 1;
    }
    while (FCGX_Accept_r(&req) >= 0) {
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        unsigned long long total = 0;
        const char *qs = FCGX_GetParam("QUERY_STRING", req.envp);
        const char *exit_status = qs ? query_param(qs, "exit") : NULL;
        const char *err_line = qs ? query_param(qs, "stderr") : NULL;
        char **e;
        int n;

        FCGX_PutS("Content-Type: text/plain\r\n\r\n", req.out);
        for (e = req.envp; *e; e++) {
            FCGX_PutS(*e, req.out);
            FCGX_PutChar('\n', req.out);
        }
        do {
            int i;
            n = FCGX_GetStr(buf, sizeof buf, req.in);
            for (i = 0; i < n; i++) {
                h ^= (unsigned char)buf[i];
                h *= UINT64_C(0x100000001b3);
            }
            total += (unsigned long long)(n > 0 ? n : 0);
        } while (n == (int)sizeof buf);
        FCGX_FPrintF(req.out, "STDIN_LENGTH=%llu\nSTDIN_FNV1A64=%016" PRIx64 "\n", total, h);
        if (err_line && *err_line == '1')
            FCGX_FPrintF(req.err, "fcgx_echo: stderr line\n");
        if (exit_status)
            FCGX_SetExitStatus(atoi(exit_status), req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
