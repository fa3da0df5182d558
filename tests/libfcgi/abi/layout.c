/*
 * Prints what libfcgi's headers define, one "name value" line each: the size and offset of
 * every structure field, whether each field has the expected type, and the value of every
 * numeric macro and constant. tests/libfcgi/abi.rs compiles it twice, against Debian's
 * headers (/usr/include) and against the project's (-I include), and requires identical
 * output apart from the first line, which says whose headers were used.
 *
 * GNU C (__builtin_types_compatible_p, __typeof__); nothing is linked but the C library.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/time.h>

/* The C library's FILE and printf, before fcgi_stdio.h renames them. */
typedef FILE libc_FILE;
static void line(const char *name, long long value)
{
    printf("%s %lld\n", name, value);
}
static void text(const char *name, const char *value)
{
    printf("%s \"%s\"\n", name, value);
}
static void field(const char *type, const char *name, size_t offset, size_t size, int type_ok)
{
    printf("%s.%s offset=%zu size=%zu type_ok=%d\n", type, name, offset, size, type_ok);
}

#include <fcgi_config.h>
#include <fcgimisc.h>
#include <fastcgi.h>
#include <fcgios.h>
#include <fcgiapp.h>
#include <fcgi_stdio.h>

/* Offset, size and type check of one field (printf is FCGI_printf from here on: the output
 * goes through the helpers above, which use the C library's). */
#define FIELD(T, f, type)                                                                      \
    field(#T, #f, offsetof(T, f), sizeof(((T *)0)->f),                                         \
          __builtin_types_compatible_p(__typeof__(((T *)0)->f), type))
#define SIZE(T) line("sizeof(" #T ")", (long long)sizeof(T))
#define VALUE(m) line(#m, (long long)(m))

typedef void (*fill_proc)(struct FCGX_Stream *);
typedef void (*empty_proc)(struct FCGX_Stream *, int);

int main(void)
{
#ifdef FCGI_RUNTIME_COMPAT
    line("FCGI_RUNTIME_COMPAT", FCGI_RUNTIME_COMPAT);
#else
    line("FCGI_RUNTIME_COMPAT", 0);
#endif

    /* fcgiapp.h */
    SIZE(FCGX_Stream);
    FIELD(FCGX_Stream, rdNext, unsigned char *);
    FIELD(FCGX_Stream, wrNext, unsigned char *);
    FIELD(FCGX_Stream, stop, unsigned char *);
    FIELD(FCGX_Stream, stopUnget, unsigned char *);
    FIELD(FCGX_Stream, isReader, int);
    FIELD(FCGX_Stream, isClosed, int);
    FIELD(FCGX_Stream, wasFCloseCalled, int);
    FIELD(FCGX_Stream, FCGI_errno, int);
    FIELD(FCGX_Stream, fillBuffProc, fill_proc);
    FIELD(FCGX_Stream, emptyBuffProc, empty_proc);
    FIELD(FCGX_Stream, data, void *);

    SIZE(FCGX_Request);
    FIELD(FCGX_Request, requestId, int);
    FIELD(FCGX_Request, role, int);
    FIELD(FCGX_Request, in, FCGX_Stream *);
    FIELD(FCGX_Request, out, FCGX_Stream *);
    FIELD(FCGX_Request, err, FCGX_Stream *);
    FIELD(FCGX_Request, envp, char **);
    FIELD(FCGX_Request, paramsPtr, struct Params *);
    FIELD(FCGX_Request, ipcFd, int);
    FIELD(FCGX_Request, isBeginProcessed, int);
    FIELD(FCGX_Request, keepConnection, int);
    FIELD(FCGX_Request, appStatus, int);
    FIELD(FCGX_Request, nWriters, int);
    FIELD(FCGX_Request, flags, int);
    FIELD(FCGX_Request, listen_sock, int);
    FIELD(FCGX_Request, detached, int);

    line("FCGX_ParamArray_is_char_pp", __builtin_types_compatible_p(FCGX_ParamArray, char **));
    VALUE(FCGX_UNSUPPORTED_VERSION);
    VALUE(FCGX_PROTOCOL_ERROR);
    VALUE(FCGX_PARAMS_ERROR);
    VALUE(FCGX_CALL_SEQ_ERROR);
    VALUE(FCGI_FAIL_ACCEPT_ON_INTR);

    /* fcgi_stdio.h */
    SIZE(FCGI_FILE);
    FIELD(FCGI_FILE, stdio_stream, libc_FILE *);
    FIELD(FCGI_FILE, fcgx_stream, FCGX_Stream *);
    line("sizeof(_fcgi_sF[0])", (long long)sizeof(_fcgi_sF[0]));
    line("_fcgi_sF_is_FCGI_FILE_array",
         __builtin_types_compatible_p(__typeof__(_fcgi_sF), FCGI_FILE[]));
    line("FILE_is_FCGI_FILE", __builtin_types_compatible_p(FILE, FCGI_FILE));
    line("stdout_is_FCGI_FILE_ptr", __builtin_types_compatible_p(__typeof__(stdout), FCGI_FILE *));
#ifdef _FCGI_STDIO
    VALUE(_FCGI_STDIO);
#endif

    /* fastcgi.h */
    VALUE(FCGI_LISTENSOCK_FILENO);
    VALUE(FCGI_MAX_LENGTH);
    VALUE(FCGI_HEADER_LEN);
    VALUE(FCGI_VERSION_1);
    VALUE(FCGI_BEGIN_REQUEST);
    VALUE(FCGI_ABORT_REQUEST);
    VALUE(FCGI_END_REQUEST);
    VALUE(FCGI_PARAMS);
    VALUE(FCGI_STDIN);
    VALUE(FCGI_STDOUT);
    VALUE(FCGI_STDERR);
    VALUE(FCGI_DATA);
    VALUE(FCGI_GET_VALUES);
    VALUE(FCGI_GET_VALUES_RESULT);
    VALUE(FCGI_UNKNOWN_TYPE);
    VALUE(FCGI_MAXTYPE);
    VALUE(FCGI_NULL_REQUEST_ID);
    VALUE(FCGI_KEEP_CONN);
    VALUE(FCGI_RESPONDER);
    VALUE(FCGI_AUTHORIZER);
    VALUE(FCGI_FILTER);
    VALUE(FCGI_REQUEST_COMPLETE);
    VALUE(FCGI_CANT_MPX_CONN);
    VALUE(FCGI_OVERLOADED);
    VALUE(FCGI_UNKNOWN_ROLE);
    text("FCGI_MAX_CONNS", FCGI_MAX_CONNS);
    text("FCGI_MAX_REQS", FCGI_MAX_REQS);
    text("FCGI_MPXS_CONNS", FCGI_MPXS_CONNS);

    SIZE(FCGI_Header);
    FIELD(FCGI_Header, version, unsigned char);
    FIELD(FCGI_Header, type, unsigned char);
    FIELD(FCGI_Header, requestIdB1, unsigned char);
    FIELD(FCGI_Header, requestIdB0, unsigned char);
    FIELD(FCGI_Header, contentLengthB1, unsigned char);
    FIELD(FCGI_Header, contentLengthB0, unsigned char);
    FIELD(FCGI_Header, paddingLength, unsigned char);
    FIELD(FCGI_Header, reserved, unsigned char);
    SIZE(FCGI_BeginRequestBody);
    FIELD(FCGI_BeginRequestBody, roleB1, unsigned char);
    FIELD(FCGI_BeginRequestBody, roleB0, unsigned char);
    FIELD(FCGI_BeginRequestBody, flags, unsigned char);
    FIELD(FCGI_BeginRequestBody, reserved, unsigned char[5]);
    SIZE(FCGI_BeginRequestRecord);
    FIELD(FCGI_BeginRequestRecord, header, FCGI_Header);
    FIELD(FCGI_BeginRequestRecord, body, FCGI_BeginRequestBody);
    SIZE(FCGI_EndRequestBody);
    FIELD(FCGI_EndRequestBody, appStatusB3, unsigned char);
    FIELD(FCGI_EndRequestBody, appStatusB2, unsigned char);
    FIELD(FCGI_EndRequestBody, appStatusB1, unsigned char);
    FIELD(FCGI_EndRequestBody, appStatusB0, unsigned char);
    FIELD(FCGI_EndRequestBody, protocolStatus, unsigned char);
    FIELD(FCGI_EndRequestBody, reserved, unsigned char[3]);
    SIZE(FCGI_EndRequestRecord);
    FIELD(FCGI_EndRequestRecord, header, FCGI_Header);
    FIELD(FCGI_EndRequestRecord, body, FCGI_EndRequestBody);
    SIZE(FCGI_UnknownTypeBody);
    FIELD(FCGI_UnknownTypeBody, type, unsigned char);
    FIELD(FCGI_UnknownTypeBody, reserved, unsigned char[7]);
    SIZE(FCGI_UnknownTypeRecord);
    FIELD(FCGI_UnknownTypeRecord, header, FCGI_Header);
    FIELD(FCGI_UnknownTypeRecord, body, FCGI_UnknownTypeBody);

    /* fcgios.h */
    line("ClientData_is_void_ptr", __builtin_types_compatible_p(ClientData, void *));
    line("OS_AsyncProc_ok",
         __builtin_types_compatible_p(OS_AsyncProc, void (*)(ClientData, int)));
    {
        struct timeval tv = {READABLE_UNIX_FD_DROP_DEAD_TIMEVAL};
        line("READABLE_UNIX_FD_DROP_DEAD_TIMEVAL.tv_sec", (long long)tv.tv_sec);
        line("READABLE_UNIX_FD_DROP_DEAD_TIMEVAL.tv_usec", (long long)tv.tv_usec);
    }
    VALUE(STDIN_FILENO);
    VALUE(STDOUT_FILENO);
    VALUE(STDERR_FILENO);
    VALUE(MAXPATHLEN);
    VALUE(X_OK);
    {
        int e;
        OS_SetErrno(42);
        e = OS_Errno;
        line("OS_Errno_after_OS_SetErrno(42)", e);
    }

    /* fcgimisc.h */
    VALUE(TRUE);
    VALUE(FALSE);
    line("min(3,-4)", min(3, -4));
    line("max(3,-4)", max(3, -4));

    /* fcgi_config.h */
    text("PACKAGE_VERSION", PACKAGE_VERSION);
    text("PACKAGE_NAME", PACKAGE_NAME);
    return 0;
}
