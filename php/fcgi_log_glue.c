/*
 * fcgi_log_glue.o: hands the application's own fcgi_log to the library as its logger.
 *
 * PHP's main/fastcgi.c defines fcgi_log weak (where the compiler has weak symbols, which gcc
 * and clang do) and calls it for its log lines; php-fpm defines a strong fcgi_log that writes
 * into FPM's log, and the static link picks it. PHP then never calls fcgi_set_logger. Linked on
 * libfcgi.so instead, nothing calls that fcgi_log: the library's lines go to stderr as
 * "fcgi-runtime: ...", and with FPM's daemonized master to /dev/null.
 *
 * This object, linked into the program beside -lfcgi, closes the gap without a change to the
 * program's sources: a constructor passes the program's fcgi_log to fcgi_set_logger. The
 * reference is weak, so a program without an fcgi_log (php-cgi, which used fastcgi.c's
 * default) links too and keeps the library's default logger. The library does not define
 * fcgi_log, so the reference can only find the program's.
 *
 * Build: cc -c -fPIC -I include php/fcgi_log_glue.c (make build puts it in target/release/).
 */
#include "fcgi.h"

/* The application's logger, as PHP declares it: void fcgi_log(int type, const char *fmt, ...). */
extern void fcgi_log(int type, const char *fmt, ...) __attribute__((weak));

__attribute__((constructor)) static void fcgi_log_glue(void)
{
    if (fcgi_log)
        fcgi_set_logger(fcgi_log);
}
