/*
 * lf-filter.c - a FastCGI Filter written against fcgiapp.h's single-request API (FCGX_Accept,
 * FCGX_StartFilterData).
 *
 *   lf-filter          (fd 0 must be the listening socket)
 *
 * Reads STDIN to its end, calls FCGX_StartFilterData, reads the DATA stream to its end, and
 * answers, exactly:
 *
 *   Content-Type: text/plain\r\n\r\n
 *   FCGI_ROLE=<role>\n
 *   STDIN_LENGTH=<n>\n
 *   STDIN_FNV1A64=<hex>\n
 *   START_FILTER_DATA=<rc>\n      what FCGX_StartFilterData returned (0, or -1)
 *   then, if it returned 0:
 *     DATA_LENGTH=<n>\n
 *     DATA_FNV1A64=<hex>\n
 *     FCGI_DATA_LENGTH=<param>\n  the param, empty when missing
 *     DATA_LENGTH_OK=<yes|no>\n    whether the param equals the bytes read
 *   or, if it failed:
 *     ERROR=<n>\n                  FCGX_GetError(in) (FCGX_CALL_SEQ_ERROR, -5, for a non-filter)
 *   --STDIN--\n<stdin bytes>\n--DATA--\n<data bytes>\n
 *
 * The exit status sent in END_REQUEST is 0, or 3 when DATA_LENGTH_OK is no or the call failed.
 * Exits 0 when FCGX_Accept fails.
 */
#include "fcgiapp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sink {
    char *data;
    size_t len, cap;
    unsigned long long hash;
};

static int read_all(FCGX_Stream *in, struct sink *s)
{
    char buf[4096];
    int n;

    s->len = 0;
    s->hash = 0xcbf29ce484222325ULL;
    while ((n = FCGX_GetStr(buf, sizeof buf, in)) > 0) {
        if (s->len + (size_t)n > s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 64 * 1024;
            while (cap < s->len + (size_t)n)
                cap *= 2;
            char *p = realloc(s->data, cap);
            if (!p)
                return -1;
            s->data = p;
            s->cap = cap;
        }
        memcpy(s->data + s->len, buf, (size_t)n);
        s->len += (size_t)n;
        for (int i = 0; i < n; i++) {
            s->hash ^= (unsigned char)buf[i];
            s->hash *= 0x100000001b3ULL;
        }
    }
    return 0;
}

int main(void)
{
    FCGX_Stream *in, *out, *err;
    FCGX_ParamArray envp;
    struct sink stdin_bytes = {0}, data_bytes = {0};

    while (FCGX_Accept(&in, &out, &err, &envp) >= 0) {
        int status = 0;
        const char *role = FCGX_GetParam("FCGI_ROLE", envp);

        read_all(in, &stdin_bytes);
        data_bytes.len = 0;
        int rc = FCGX_StartFilterData(in);

        FCGX_FPrintF(out,
                     "Content-Type: text/plain\r\n\r\n"
                     "FCGI_ROLE=%s\nSTDIN_LENGTH=%lu\nSTDIN_FNV1A64=%016llx\n"
                     "START_FILTER_DATA=%d\n",
                     role ? role : "", (unsigned long)stdin_bytes.len, stdin_bytes.hash, rc);
        if (rc == 0) {
            read_all(in, &data_bytes);
            const char *want = FCGX_GetParam("FCGI_DATA_LENGTH", envp);
            char got[32];
            snprintf(got, sizeof got, "%lu", (unsigned long)data_bytes.len);
            int ok = want && strcmp(want, got) == 0;
            FCGX_FPrintF(out,
                         "DATA_LENGTH=%s\nDATA_FNV1A64=%016llx\nFCGI_DATA_LENGTH=%s\n"
                         "DATA_LENGTH_OK=%s\n",
                         got, data_bytes.hash, want ? want : "", ok ? "yes" : "no");
            if (!ok)
                status = 3;
        } else {
            FCGX_FPrintF(out, "ERROR=%d\n", FCGX_GetError(in));
            status = 3;
        }
        FCGX_PutS("--STDIN--\n", out);
        if (stdin_bytes.len)
            FCGX_PutStr(stdin_bytes.data, (int)stdin_bytes.len, out);
        FCGX_PutS("\n--DATA--\n", out);
        if (data_bytes.len)
            FCGX_PutStr(data_bytes.data, (int)data_bytes.len, out);
        FCGX_PutS("\n", out);
        FCGX_SetExitStatus(status, out);
    }
    free(stdin_bytes.data);
    free(data_bytes.data);
    return 0;
}
