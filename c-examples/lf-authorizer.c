/*
 * lf-authorizer.c - a FastCGI Authorizer written against fcgi_stdio.h, after libfcgi's
 * examples/authorizer.c.
 *
 *   lf-authorizer USER PASSWORD   (fd 0 must be the listening socket)
 *
 * A request with FCGI_ROLE=AUTHORIZER whose params REMOTE_USER and REMOTE_PASSWD equal USER and
 * PASSWORD is allowed:
 *
 *   Status: 200 OK\r\n
 *   Variable-AUTH_TYPE: Basic\r\n
 *   Variable-AUTH_USER: <user>\r\n
 *   Variable-AUTH_GRANTS: <n>\r\n      requests allowed by this process so far, this one included
 *   \r\n
 *
 * Any other authorizer request is denied:
 *
 *   Status: 403 Forbidden\r\n
 *   Content-Type: text/plain\r\n
 *   \r\n
 *   access denied for <user or "(anonymous)">\n
 *
 * and the same with "Status: 500 Internal Server Error" and "not an authorizer: FCGI_ROLE=<role>"
 * for a request of another role. STDIN is read to its end first (an authorizer's is empty).
 * Exits 0 when FCGI_Accept fails.
 */
#include "fcgi_stdio.h"

#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    unsigned long grants = 0;

    if (argc != 3) {
        fprintf(stderr, "usage: %s USER PASSWORD\n", argv[0]);
        return 2;
    }
    /* FCGI_Accept replaces environ: keep what the command line gave. */
    const char *user = argv[1];
    const char *password = argv[2];

    while (FCGI_Accept() >= 0) {
        char buf[1024];
        while (fread(buf, 1, sizeof buf, stdin) == sizeof buf)
            ;

        const char *role = getenv("FCGI_ROLE");
        const char *remote_user = getenv("REMOTE_USER");
        const char *remote_password = getenv("REMOTE_PASSWD");
        if (!role || strcmp(role, "AUTHORIZER") != 0) {
            printf("Status: 500 Internal Server Error\r\n"
                   "Content-Type: text/plain\r\n"
                   "\r\n"
                   "not an authorizer: FCGI_ROLE=%s\n",
                   role ? role : "");
        } else if (remote_user && remote_password && strcmp(remote_user, user) == 0 &&
                   strcmp(remote_password, password) == 0) {
            grants++;
            printf("Status: 200 OK\r\n"
                   "Variable-AUTH_TYPE: Basic\r\n"
                   "Variable-AUTH_USER: %s\r\n"
                   "Variable-AUTH_GRANTS: %lu\r\n"
                   "\r\n",
                   remote_user, grants);
        } else {
            printf("Status: 403 Forbidden\r\n"
                   "Content-Type: text/plain\r\n"
                   "\r\n"
                   "access denied for %s\n",
                   remote_user ? remote_user : "(anonymous)");
        }
    }
    return 0;
}
