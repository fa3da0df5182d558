/*
 * The variadic and va_list functions of libfcgi's API. Rust cannot define C-variadic functions
 * on stable, so these live here; src/ffi/libfcgi/trampolines.rs exports the public names as
 * one-instruction jumps to the fcgi_c_* functions below (a cdylib exports only Rust symbols).
 *
 * Formatting is the C library's vsnprintf/vfprintf, so the whole C99 format set works (%zu,
 * %jd, %hhd, %lc, %ls, %a, positional arguments), unlike libfcgi's own engine (fcgi2 #64).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#define HIDDEN __attribute__((visibility("hidden")))

typedef struct FCGX_Stream FCGX_Stream;
typedef struct {
    FILE *stdio_stream;
    FCGX_Stream *fcgx_stream;
} FCGI_FILE;

/* Exported by the Rust side (src/ffi/libfcgi/stream.rs, stdio.rs). */
extern int FCGX_PutStr(const char *str, int n, FCGX_Stream *stream);
extern FCGI_FILE _fcgi_sF[];

HIDDEN int fcgi_c_FCGX_VFPrintF(FCGX_Stream *stream, const char *format, va_list arg);

/* Formats into a stack buffer, or a heap one when the result is larger, then writes the bytes
 * with FCGX_PutStr. Returns the byte count, or -1 on a format or stream error. */
HIDDEN int fcgi_c_FCGX_VFPrintF(FCGX_Stream *stream, const char *format, va_list arg)
{
    char small[1024];
    va_list again;
    int n, r;
    char *buf = small;

    if (stream == NULL || format == NULL)
        return -1;
    va_copy(again, arg);
    n = vsnprintf(small, sizeof small, format, arg);
    if (n < 0) {
        va_end(again);
        return -1;
    }
    if ((size_t)n >= sizeof small) {
        buf = malloc((size_t)n + 1);
        if (buf == NULL) {
            va_end(again);
            return -1;
        }
        n = vsnprintf(buf, (size_t)n + 1, format, again);
    }
    va_end(again);
    r = n < 0 ? -1 : FCGX_PutStr(buf, n, stream);
    if (buf != small)
        free(buf);
    return r < 0 ? -1 : n;
}

HIDDEN int fcgi_c_FCGX_FPrintF(FCGX_Stream *stream, const char *format, ...)
{
    va_list ap;
    int n;
    va_start(ap, format);
    n = fcgi_c_FCGX_VFPrintF(stream, format, ap);
    va_end(ap);
    return n;
}

/* fcgi_stdio.h: a libc stream if set, else the FastCGI stream, else EOF. */
HIDDEN int fcgi_c_FCGI_vfprintf(FCGI_FILE *fp, const char *format, va_list ap)
{
    if (fp == NULL || format == NULL)
        return EOF;
    if (fp->stdio_stream)
        return vfprintf(fp->stdio_stream, format, ap);
    if (fp->fcgx_stream)
        return fcgi_c_FCGX_VFPrintF(fp->fcgx_stream, format, ap);
    return EOF;
}

HIDDEN int fcgi_c_FCGI_vprintf(const char *format, va_list ap)
{
    return fcgi_c_FCGI_vfprintf(&_fcgi_sF[1], format, ap);
}

/* As in libfcgi, fprintf returns 0 (not EOF) when the FILE has no stream; printf and vprintf
 * return EOF then. */
HIDDEN int fcgi_c_FCGI_fprintf(FCGI_FILE *fp, const char *format, ...)
{
    va_list ap;
    int n = 0;
    if (fp == NULL || format == NULL)
        return EOF;
    va_start(ap, format);
    if (fp->stdio_stream || fp->fcgx_stream)
        n = fcgi_c_FCGI_vfprintf(fp, format, ap);
    va_end(ap);
    return n;
}

HIDDEN int fcgi_c_FCGI_printf(const char *format, ...)
{
    va_list ap;
    int n;
    va_start(ap, format);
    n = fcgi_c_FCGI_vfprintf(&_fcgi_sF[1], format, ap);
    va_end(ap);
    return n;
}
