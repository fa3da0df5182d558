/*
 * A libfcgi program built from an installed fcgi-runtime with
 *   cc installed_compat.c $(pkg-config --cflags --libs fcgi)
 * Run as plain CGI (stdin not a socket), FCGI_Accept succeeds once: prints
 * "lib <path>" and "installed 1 <FCGI_RUNTIME_COMPAT>", then exits 0.
 */
#include "libpath.h"

#include <fcgi.h> /* the native header is installed too */
#include <fcgi_stdio.h>

#ifndef FCGI_RUNTIME_COMPAT
#error "fcgi_stdio.h is not fcgi-runtime's"
#endif

int main(void)
{
    char a[] = "A=1", who[] = "WHO=installed";
    char *env[] = {a, who, NULL};
    int n = 0;
    const char *lib = fcgi_lib_path();

    while (FCGI_Accept() >= 0) {
        printf("lib %s\n", lib);
        printf("%s %d %d\n", FCGX_GetParam("WHO", env), ++n, FCGI_RUNTIME_COMPAT);
    }
    return 0;
}
