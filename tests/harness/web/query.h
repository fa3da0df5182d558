/*
 * query.h - reading KEY=VALUE parameters out of a QUERY_STRING, for the test applications
 * (webapp_core.c, tests/web_servers/multi_host/host_app.c). Included, not compiled alone.
 */
#ifndef TEST_WEB_QUERY_H
#define TEST_WEB_QUERY_H

#include <string.h>

/* The value of KEY in QS, copied into OUT (at most cap-1 bytes); NULL when missing. */
static const char *query_param(const char *qs, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    const char *p = qs;
    while (p && *p) {
        if (strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, "&");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return out;
        }
        p = strchr(p, '&');
        if (p)
            p++;
    }
    return NULL;
}

#endif
