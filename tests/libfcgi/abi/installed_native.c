/*
 * A native-API program built from an installed fcgi-runtime with
 *   cc installed_native.c $(pkg-config --cflags --libs fcgi-runtime)
 * (or linked statically with --static). Prints "lib <path>" ("?" when linked statically) and
 * "max_reqs <n>", then exits 0.
 */
#include "libpath.h"

#include <fcgi.h>

int main(void)
{
    printf("lib %s\n", fcgi_lib_path());
    printf("max_reqs %lld\n", fcgi_get_limit(FCGI_LIMIT_MAX_REQS));
    return 0;
}
