/*
 * lf_app.c - the program tests/libfcgi/compare.rs runs on both libraries.
 *
 * Built once against Debian's fcgiapp.h and linked with Debian's libfcgi (NEEDED libfcgi.so.0),
 * then run as it is on Debian's library and, through LD_LIBRARY_PATH, on fcgi-runtime's.
 *
 *   FCGI_ADDR=host:port lf_app       (FCGX_OpenSocket syntax; without it fd 0 must listen)
 *
 * One thread, one FCGX_Request, an FCGX_Accept_r / FCGX_Finish_r loop. Each request is answered
 * with, exactly (tests/libfcgi/compare.rs `expected` builds the same bytes):
 *
 *   Content-Type: text/plain\r\n\r\n
 *   [<FLUSH_MARK>\n]            param FLUSH_MARK: written and flushed before anything is read
 *   [RELEASED\n]                param HOLD_FIFO=<path>: after the mark, blocks reading one byte
 *                               from that FIFO, then writes this line
 *   ROLE=<FCGI_ROLE>\n
 *   ENV <entry>\n               one per envp entry, in order (FCGI_ROLE=... comes first)
 *   STDIN_LENGTH=<n>\n          bytes read with FCGX_GetStr until it returned 0
 *   STDIN_FNV1A64=<hex>\n       64-bit FNV-1a of those bytes
 *   STDIN_ERROR=<n>\n           FCGX_GetError(in) after that
 *   for FCGI_ROLE=FILTER:
 *     START_FILTER_DATA=<rc>\n  FCGX_StartFilterData(in)
 *     DATA_LENGTH=<n>\n DATA_FNV1A64=<hex>\n DATA_ERROR=<n>\n   the DATA stream, likewise
 *
 * Param FLUSH_AFTER_STDIN (any value): FCGX_FFlush(out) after the STDIN_ERROR line (and the
 * DATA lines).
 * Param STDERR=<text>: FCGX_PutS(text, err) (nothing is written to err otherwise).
 * Param EXIT_STATUS=<n>: FCGX_SetExitStatus(n, out), the appStatus of END_REQUEST.
 * Exits 0 when FCGX_Accept_r fails.
 */
#include <fcgiapp.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct digest {
    unsigned long len;
    unsigned long long hash;
    int error;
};

static struct digest read_stream(FCGX_Stream *in)
{
    struct digest d = {0, 0xcbf29ce484222325ULL, 0};
    char buf[4096];
    int n;

    while ((n = FCGX_GetStr(buf, sizeof buf, in)) > 0) {
        d.len += (unsigned long)n;
        for (int i = 0; i < n; i++) {
            d.hash ^= (unsigned char)buf[i];
            d.hash *= 0x100000001b3ULL;
        }
    }
    d.error = FCGX_GetError(in);
    return d;
}

int main(void)
{
    FCGX_Request req;
    int sock = 0;
    const char *addr = getenv("FCGI_ADDR");

    if (FCGX_Init() != 0)
        return 1;
    if (addr && *addr) {
        sock = FCGX_OpenSocket(addr, 16);
        if (sock < 0)
            return 1;
    }
    FCGX_InitRequest(&req, sock, 0);

    while (FCGX_Accept_r(&req) == 0) {
        const char *role = FCGX_GetParam("FCGI_ROLE", req.envp);
        const char *mark = FCGX_GetParam("FLUSH_MARK", req.envp);
        const char *fifo = FCGX_GetParam("HOLD_FIFO", req.envp);
        const char *err_text = FCGX_GetParam("STDERR", req.envp);
        const char *status = FCGX_GetParam("EXIT_STATUS", req.envp);

        FCGX_PutS("Content-Type: text/plain\r\n\r\n", req.out);
        if (mark) {
            FCGX_FPrintF(req.out, "%s\n", mark);
            FCGX_FFlush(req.out);
        }
        if (fifo) {
            char c;
            int fd = open(fifo, O_RDONLY);
            if (fd >= 0) {
                while (read(fd, &c, 1) < 0)
                    ;
                close(fd);
            }
            FCGX_PutS("RELEASED\n", req.out);
        }

        FCGX_FPrintF(req.out, "ROLE=%s\n", role ? role : "");
        for (char **e = req.envp; e && *e; e++)
            FCGX_FPrintF(req.out, "ENV %s\n", *e);
        struct digest in = read_stream(req.in);
        FCGX_FPrintF(req.out, "STDIN_LENGTH=%lu\nSTDIN_FNV1A64=%016llx\nSTDIN_ERROR=%d\n", in.len,
                     in.hash, in.error);
        if (role && strcmp(role, "FILTER") == 0) {
            int rc = FCGX_StartFilterData(req.in);
            struct digest data = read_stream(req.in);
            FCGX_FPrintF(req.out,
                         "START_FILTER_DATA=%d\nDATA_LENGTH=%lu\nDATA_FNV1A64=%016llx\n"
                         "DATA_ERROR=%d\n",
                         rc, data.len, data.hash, data.error);
        }
        if (FCGX_GetParam("FLUSH_AFTER_STDIN", req.envp))
            FCGX_FFlush(req.out);
        if (err_text)
            FCGX_PutS(err_text, req.err);
        if (status)
            FCGX_SetExitStatus(atoi(status), req.out);
        FCGX_Finish_r(&req);
    }
    return 0;
}
