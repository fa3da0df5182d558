/*
 * An executable that holds a copy of _fcgi_sF (the R_X86_64_COPY relocation every program
 * using fcgi_stdio.h's stdin/stdout/stderr gets, fcgiwrap included) must share that one object
 * with the library, which reaches it through its GOT. Checked both ways:
 *   1. executable -> library: the program points its _fcgi_sF[1] at a temporary file and calls
 *      printf (FCGI_printf, in the library), which must write into that file;
 *   2. library -> executable: FCGI_Accept, run as plain CGI (stdin is not a socket), sets
 *      _fcgi_sF[0..2].stdio_stream to the C library's streams, which the program must see.
 * Prints "lib <path>" (the libfcgi it runs on), then "ok ..." or "FAIL ..." lines; exits 0 only
 * when everything holds.
 */
#include <stdio.h>
#include <string.h>

#include "libpath.h"

/* The C library's stdio, before fcgi_stdio.h renames it. */
typedef FILE libc_FILE;
static libc_FILE *libc_std(int i)
{
    return i == 0 ? stdin : i == 1 ? stdout : stderr;
}
static libc_FILE *libc_tmpfile(void)
{
    return tmpfile();
}
static size_t libc_read_back(libc_FILE *f, char *buf, size_t n)
{
    fflush(f);
    rewind(f);
    n = fread(buf, 1, n - 1, f);
    buf[n] = '\0';
    return n;
}
static void say_lib(void)
{
    printf("lib %s\n", fcgi_lib_path());
    fflush(stdout);
}
static int failures;
static void report(int ok, const char *what, const char *detail)
{
    printf("%s %s%s%s\n", ok ? "ok" : "FAIL", what, detail[0] ? ": " : "", detail);
    fflush(stdout);
    failures += !ok;
}

#include <fcgi_stdio.h>

int main(void)
{
    char buf[64];
    libc_FILE *t = libc_tmpfile();
    int i, ok;

    say_lib();
    if (t == NULL) {
        report(0, "tmpfile", "");
        return 1;
    }

    /* 1. executable -> library */
    _fcgi_sF[1].stdio_stream = t;
    _fcgi_sF[1].fcgx_stream = NULL;
    printf("copy-%d", 48);
    _fcgi_sF[1].stdio_stream = NULL;
    libc_read_back(t, buf, sizeof buf);
    report(strcmp(buf, "copy-48") == 0, "exe->lib (FCGI_printf wrote into the executable's _fcgi_sF[1] stream)", buf);

    /* 2. library -> executable */
    ok = FCGI_Accept() == 0;
    for (i = 0; i < 3; i++)
        ok = ok && _fcgi_sF[i].stdio_stream == libc_std(i) && _fcgi_sF[i].fcgx_stream == NULL;
    report(ok, "lib->exe (FCGI_Accept set the executable's _fcgi_sF to the C library's streams)", "");

    return failures != 0;
}
