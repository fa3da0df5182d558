/*
 * fcgi_stdio.h: libfcgi's stdio-compatible FastCGI interface, as implemented by fcgi-runtime.
 *
 * Source and binary compatible with libfcgi 2.4.2's <fcgi_stdio.h>. A CGI program that
 * includes this header (before any use of stdio) and loops on FCGI_Accept() becomes a FastCGI
 * application: unless NO_FCGI_DEFINES is defined, the macros at the end replace FILE, stdin,
 * stdout, stderr and the stdio functions with the FCGI_* wrappers below, which use the current
 * request's streams under FastCGI and the C library's streams when run as a plain CGI program.
 * Link with -lfcgi (pkg-config: fcgi).
 *
 * Where fcgi-runtime behaves differently (details: docs/libfcgi-compat.md):
 *  - When FCGI_Accept fails (shutdown, signal), stdin/stdout/stderr are detached from the
 *    finished request (writes fail, reads see EOF) instead of pointing at freed streams.
 *  - printf, fprintf, vprintf and vfprintf accept the whole C99 format set.
 * Kept as in libfcgi: fileno() is -1 for FastCGI streams (fcgiwrap closes that descriptor).
 *
 * C++: the header compiles as C++, but its macros rename standard names (FILE, printf, fileno,
 * ...) everywhere after it, so qualified uses such as std::printf no longer compile. Define
 * NO_FCGI_DEFINES and use the FCGI_* names where that matters.
 */

#ifndef _FCGI_STDIO
#define _FCGI_STDIO 1

#include <stdio.h>
#include <sys/types.h>
#include "fcgiapp.h"

/* Defined by every compatibility header of fcgi-runtime, never by libfcgi's own. */
#define FCGI_RUNTIME_COMPAT 1

#ifndef DLLAPI
#if defined(_WIN32) && defined(_MSC_VER)
#define DLLAPI __declspec(dllimport)
#else
#define DLLAPI
#endif
#endif

#if defined(__cplusplus) || defined(c_plusplus)
extern "C" {
#endif

/*
 * The FILE of this interface: a C library stream (plain CGI, files opened with fopen, ...) or
 * a FastCGI stream of the current request. Exactly one of the pointers is set on a usable
 * stream.
 */
typedef struct {
    FILE *stdio_stream;
    FCGX_Stream *fcgx_stream;
} FCGI_FILE;

/*
 * Waits for the next request and connects stdin, stdout, stderr and environ to it; finishes
 * the previous request first. Run as a plain CGI program, the first call returns 0 with the
 * C library's streams and environment, and later calls return -1. Returns 0, or a negative
 * value when there is no further request.
 */
DLLAPI int FCGI_Accept(void);

/* Finishes the current request (FCGI_Accept does it too). */
DLLAPI void FCGI_Finish(void);

/* Filter role: after stdin has been read to its end, makes stdin read FCGI_DATA. Returns 0,
 * or -1 when called out of order. */
DLLAPI int FCGI_StartFilterData(void);

/* Sets the application status sent in FCGI_END_REQUEST for the current request. */
DLLAPI void FCGI_SetExitStatus(int status);

/* The underlying streams of an FCGI_FILE (NULL when it is not of that kind). */
#define FCGI_ToFILE(fcgi_file) (fcgi_file->stdio_stream)
#define FCGI_ToFcgiStream(fcgi_file) (fcgi_file->fcgx_stream)

/* stdin, stdout and stderr: three FCGI_FILEs (48 bytes in all on x86_64) owned by the library
 * and updated by FCGI_Accept and FCGI_Finish. */
DLLAPI extern FCGI_FILE _fcgi_sF[];
#define FCGI_stdin (&_fcgi_sF[0])
#define FCGI_stdout (&_fcgi_sF[1])
#define FCGI_stderr (&_fcgi_sF[2])

/*
 * The wrappers: each behaves like the stdio function of the same name on a C library stream.
 * On a FastCGI stream, positioning (fseek, ftell, rewind, fgetpos, fsetpos) fails with ESPIPE,
 * setvbuf returns -1, setbuf does nothing and fileno returns -1.
 */
DLLAPI void FCGI_perror(const char *str);

DLLAPI FCGI_FILE *FCGI_fopen(const char *path, const char *mode);
DLLAPI int FCGI_fclose(FCGI_FILE *fp);
DLLAPI int FCGI_fflush(FCGI_FILE *fp);
DLLAPI FCGI_FILE *FCGI_freopen(const char *path, const char *mode, FCGI_FILE *fp);

DLLAPI int FCGI_setvbuf(FCGI_FILE *fp, char *buf, int bufmode, size_t size);
DLLAPI void FCGI_setbuf(FCGI_FILE *fp, char *buf);

DLLAPI int FCGI_fseek(FCGI_FILE *fp, long offset, int whence);
DLLAPI int FCGI_ftell(FCGI_FILE *fp); /* int, as in libfcgi */
DLLAPI void FCGI_rewind(FCGI_FILE *fp);
/* libfcgi declares these two only #ifdef HAVE_FPOS; fpos_t always exists here. */
DLLAPI int FCGI_fgetpos(FCGI_FILE *fp, fpos_t *pos);
DLLAPI int FCGI_fsetpos(FCGI_FILE *fp, const fpos_t *pos);

DLLAPI int FCGI_fgetc(FCGI_FILE *fp);
DLLAPI int FCGI_getchar(void);
DLLAPI int FCGI_ungetc(int c, FCGI_FILE *fp);

DLLAPI char *FCGI_fgets(char *str, int size, FCGI_FILE *fp);
DLLAPI char *FCGI_gets(char *str);

/* (libfcgi has no scanf family, and neither has fcgi-runtime.) */

DLLAPI int FCGI_fputc(int c, FCGI_FILE *fp);
DLLAPI int FCGI_putchar(int c);

DLLAPI int FCGI_fputs(const char *str, FCGI_FILE *fp);
DLLAPI int FCGI_puts(const char *str);

DLLAPI int FCGI_fprintf(FCGI_FILE *fp, const char *format, ...);
DLLAPI int FCGI_printf(const char *format, ...);

DLLAPI int FCGI_vfprintf(FCGI_FILE *fp, const char *format, va_list ap);
DLLAPI int FCGI_vprintf(const char *format, va_list ap);

/* ptr is not const in FCGI_fwrite, as in libfcgi. */
DLLAPI size_t FCGI_fread(void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp);
DLLAPI size_t FCGI_fwrite(void *ptr, size_t size, size_t nmemb, FCGI_FILE *fp);

DLLAPI int FCGI_feof(FCGI_FILE *fp);
DLLAPI int FCGI_ferror(FCGI_FILE *fp);
DLLAPI void FCGI_clearerr(FCGI_FILE *fp);

DLLAPI FCGI_FILE *FCGI_tmpfile(void);

DLLAPI int FCGI_fileno(FCGI_FILE *fp);
DLLAPI FCGI_FILE *FCGI_fdopen(int fd, const char *mode);
DLLAPI FCGI_FILE *FCGI_popen(const char *cmd, const char *type);
DLLAPI int FCGI_pclose(FCGI_FILE *fp);

#ifndef NO_FCGI_DEFINES

/*
 * The renaming: standard names become the wrappers. Each is #undef'd first because the C
 * library may define it as a macro.
 */
#undef FILE
#define FILE FCGI_FILE

#undef stdin
#define stdin FCGI_stdin
#undef stdout
#define stdout FCGI_stdout
#undef stderr
#define stderr FCGI_stderr

#undef perror
#define perror FCGI_perror

#undef fopen
#define fopen FCGI_fopen
#undef fclose
#define fclose FCGI_fclose
#undef fflush
#define fflush FCGI_fflush
#undef freopen
#define freopen FCGI_freopen

#undef setvbuf
#define setvbuf FCGI_setvbuf
#undef setbuf
#define setbuf FCGI_setbuf

#undef fseek
#define fseek FCGI_fseek
#undef ftell
#define ftell FCGI_ftell
#undef rewind
#define rewind FCGI_rewind
#undef fgetpos
#define fgetpos FCGI_fgetpos
#undef fsetpos
#define fsetpos FCGI_fsetpos

#undef fgetc
#define fgetc FCGI_fgetc
#undef getc
#define getc FCGI_fgetc
#undef getchar
#define getchar FCGI_getchar
#undef ungetc
#define ungetc FCGI_ungetc

#undef fgets
#define fgets FCGI_fgets
#undef gets
#define gets FCGI_gets

#undef fputc
#define fputc FCGI_fputc
#undef putc
#define putc FCGI_fputc
#undef putchar
#define putchar FCGI_putchar

#undef fputs
#define fputs FCGI_fputs
#undef puts
#define puts FCGI_puts

#undef fprintf
#define fprintf FCGI_fprintf
#undef printf
#define printf FCGI_printf

#undef vfprintf
#define vfprintf FCGI_vfprintf
#undef vprintf
#define vprintf FCGI_vprintf

#undef fread
#define fread FCGI_fread
#undef fwrite
#define fwrite FCGI_fwrite

#undef feof
#define feof FCGI_feof
#undef ferror
#define ferror FCGI_ferror
#undef clearerr
#define clearerr FCGI_clearerr

#undef tmpfile
#define tmpfile FCGI_tmpfile

#undef fileno
#define fileno FCGI_fileno
#undef fdopen
#define fdopen FCGI_fdopen
#undef popen
#define popen FCGI_popen
#undef pclose
#define pclose FCGI_pclose

#endif /* NO_FCGI_DEFINES */

#if defined(__cplusplus) || defined(c_plusplus)
} /* extern "C" */
#endif

#endif /* _FCGI_STDIO */
