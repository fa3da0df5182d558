/*
 * fcgiapp.h: libfcgi's FCGX_* interface, as implemented by fcgi-runtime.
 *
 * Source and binary compatible with libfcgi 2.4.2's <fcgiapp.h>: the same macros, types,
 * structure layouts (x86_64: FCGX_Stream 72 bytes, FCGX_Request 80) and prototypes, so programs
 * written for libfcgi compile unchanged against this header, and programs built against libfcgi
 * run unchanged on fcgi-runtime's libfcgi.so.0. Link with -lfcgi (pkg-config: fcgi).
 *
 * Where fcgi-runtime behaves differently (details: docs/libfcgi-compat.md):
 *  - FCGX_Accept_r is thread-safe: threads may call it at once on the same listening socket
 *    without a mutex around it. Requests come from fcgi-runtime's event loop, so one
 *    connection may carry several requests (multiplexing), and its limits apply.
 *  - FCGX_ShutdownPending, SIGTERM and SIGUSR1 wake a blocked FCGX_Accept_r at once.
 *  - FCGX_FPrintF/FCGX_VFPrintF accept the whole C99 printf format set (%zu, %jd, %hhd, ...).
 *  - The fields of FCGX_Request after envp, and FCGX_Stream.data, belong to the library; the
 *    library's own state lives behind paramsPtr and data. Read the public fields only.
 */

#ifndef _FCGIAPP_H
#define _FCGIAPP_H

#include <stdarg.h>

/* Defined by every compatibility header of fcgi-runtime, never by libfcgi's own. */
#define FCGI_RUNTIME_COMPAT 1

/* libfcgi marks its functions with DLLAPI (a Windows import attribute); empty here. */
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
 * Stream error codes (FCGX_GetError). A stream's error is 0, a positive errno value from a
 * failed system call, or one of these.
 */
#define FCGX_UNSUPPORTED_VERSION (-2) /* a record with a protocol version other than 1 */
#define FCGX_PROTOCOL_ERROR (-3)      /* malformed input, or the peer closed or aborted */
#define FCGX_PARAMS_ERROR (-4)        /* malformed FCGI_PARAMS name-value pairs */
#define FCGX_CALL_SEQ_ERROR (-5)      /* a call out of order, e.g. FCGX_StartFilterData */

/*
 * A byte stream: a request's input (FCGI_STDIN, then FCGI_DATA for filters) or output
 * (FCGI_STDOUT, FCGI_STDERR). The buffer pointers let callers read and write it directly, as
 * libfcgi's own inline code did: a reader keeps wrNext == stop, a writer keeps rdNext == stop.
 */
typedef struct FCGX_Stream {
    unsigned char *rdNext;    /* reader: next byte to read; writer: == stop */
    unsigned char *wrNext;    /* writer: next free byte; reader: == stop */
    unsigned char *stop;      /* reader: end of the valid bytes; writer: end of the free space */
    unsigned char *stopUnget; /* reader: start of the current buffer (limit of FCGX_UnGetChar) */
    int isReader;             /* 1 for an input stream, 0 for an output stream */
    int isClosed;             /* set at end of input, after FCGX_FClose, and on error */
    int wasFCloseCalled;
    int FCGI_errno;           /* the stream's error (see FCGX_GetError) */
    void (*fillBuffProc)(struct FCGX_Stream *stream);              /* refills a reader */
    void (*emptyBuffProc)(struct FCGX_Stream *stream, int doClose); /* drains a writer */
    void *data;               /* private to the library */
} FCGX_Stream;

/* A request's environment: "NAME=value" strings followed by a NULL pointer. */
typedef char **FCGX_ParamArray;

/* FCGX_InitRequest flag: return from FCGX_Accept_r when a signal interrupts the wait. */
#define FCGI_FAIL_ACCEPT_ON_INTR 1

/*
 * The state of one request, allocated by the caller (statically, on the stack or with
 * malloc(sizeof(FCGX_Request))) and prepared with FCGX_InitRequest.
 */
typedef struct FCGX_Request {
    int requestId;      /* FastCGI request id of the current request */
    int role;           /* FCGI_RESPONDER, FCGI_AUTHORIZER or FCGI_FILTER */
    FCGX_Stream *in;    /* FCGI_STDIN (and FCGI_DATA after FCGX_StartFilterData) */
    FCGX_Stream *out;   /* FCGI_STDOUT */
    FCGX_Stream *err;   /* FCGI_STDERR */
    char **envp;        /* the request's parameters, FCGX_ParamArray style */

    /* The library's bookkeeping: do not use (Perl's FCGI module reads listen_sock). */
    struct Params *paramsPtr;
    int ipcFd;          /* the request's connection, -1 when none */
    int isBeginProcessed;
    int keepConnection;
    int appStatus;      /* sent in FCGI_END_REQUEST (FCGX_SetExitStatus) */
    int nWriters;
    int flags;          /* FCGX_InitRequest's flags */
    int listen_sock;    /* FCGX_InitRequest's sock */
    int detached;       /* FCGX_Detach was called */
} FCGX_Request;

/* ---- Setting up and accepting requests ---------------------------------------------------- */

/* 1 when the process runs as a CGI program, 0 when fd 0 is a FastCGI listening socket. */
DLLAPI int FCGX_IsCGI(void);

/* Initialises the library (idempotent); call before FCGX_OpenSocket or FCGX_Accept_r.
 * Returns 0 on success. */
DLLAPI int FCGX_Init(void);

/* Creates a listening socket: "host:port", ":port" or "*:port" for TCP, otherwise the path
 * of a Unix-domain socket. Returns the descriptor, or -1. */
DLLAPI int FCGX_OpenSocket(const char *path, int backlog);

/* Prepares a caller-allocated request to accept on sock (0: the inherited socket) with
 * flags (0 or FCGI_FAIL_ACCEPT_ON_INTR). Returns 0. */
DLLAPI int FCGX_InitRequest(FCGX_Request *request, int sock, int flags);

/* Finishes the previous request, if any, then waits for the next one and fills in the
 * public fields. Returns 0, or a negative value (-errno, or -9999 on shutdown) when no
 * request can be accepted any more. */
DLLAPI int FCGX_Accept_r(FCGX_Request *request);

/* Completes the request: flushes and closes its output streams, sends FCGI_END_REQUEST with
 * the exit status, and releases the streams and parameters. */
DLLAPI void FCGX_Finish_r(FCGX_Request *request);

/* Releases the request's streams and parameters without sending anything; closes the
 * connection too when close is non-zero. */
DLLAPI void FCGX_Free(FCGX_Request *request, int close);

/* FCGX_Accept_r on a library-owned request listening on fd 0 (single-threaded programs). */
DLLAPI int FCGX_Accept(FCGX_Stream **in, FCGX_Stream **out, FCGX_Stream **err,
                       FCGX_ParamArray *envp);

/* FCGX_Finish_r on the request of FCGX_Accept. */
DLLAPI void FCGX_Finish(void);

/* Filter role: after reading stream (the request's input) to its end, switches it to the
 * FCGI_DATA stream. Returns 0, or -1 (error FCGX_CALL_SEQ_ERROR) when called out of order. */
DLLAPI int FCGX_StartFilterData(FCGX_Stream *stream);

/* Sets the application status that FCGI_END_REQUEST reports for the request owning stream. */
DLLAPI void FCGX_SetExitStatus(int status, FCGX_Stream *stream);

/* ---- Parameters --------------------------------------------------------------------------- */

/* The value of the parameter called name in envp, or NULL. */
DLLAPI char *FCGX_GetParam(const char *name, FCGX_ParamArray envp);

/* ---- Reading ------------------------------------------------------------------------------ */

/* The next byte (0..255), or EOF. */
DLLAPI int FCGX_GetChar(FCGX_Stream *stream);

/* Pushes c back (only within the bytes read from the current buffer). Returns c, or EOF. */
DLLAPI int FCGX_UnGetChar(int c, FCGX_Stream *stream);

/* Reads up to n bytes into str. Returns the count; fewer than n means end of input or an
 * error. */
DLLAPI int FCGX_GetStr(char *str, int n, FCGX_Stream *stream);

/* Reads a line of at most n-1 bytes (keeping the '\n') into str and NUL-terminates it.
 * Returns str, or NULL when the input ended before any byte. */
DLLAPI char *FCGX_GetLine(char *str, int n, FCGX_Stream *stream);

/* EOF once the input has ended (or failed), else 0. */
DLLAPI int FCGX_HasSeenEOF(FCGX_Stream *stream);

/* ---- Writing ------------------------------------------------------------------------------ */

/* Writes one byte. Returns it, or EOF. */
DLLAPI int FCGX_PutChar(int c, FCGX_Stream *stream);

/* Writes n bytes. Returns n, or -1. */
DLLAPI int FCGX_PutStr(const char *str, int n, FCGX_Stream *stream);

/* Writes a NUL-terminated string (without the NUL). Returns its length, or -1. */
DLLAPI int FCGX_PutS(const char *str, FCGX_Stream *stream);

/* printf to a stream. Returns the number of bytes written, or -1. */
DLLAPI int FCGX_FPrintF(FCGX_Stream *stream, const char *format, ...);
DLLAPI int FCGX_VFPrintF(FCGX_Stream *stream, const char *format, va_list arg);

/* Sends what the stream has buffered. Returns 0, or -1 on error. */
DLLAPI int FCGX_FFlush(FCGX_Stream *stream);

/* ---- Closing and errors ------------------------------------------------------------------- */

/* Closes a stream (an output stream is flushed and terminated). Returns 0, or EOF when the
 * stream had an error. */
DLLAPI int FCGX_FClose(FCGX_Stream *stream);

/* The stream's error: 0, a positive errno value, or an FCGX_*_ERROR code. */
DLLAPI int FCGX_GetError(FCGX_Stream *stream);

/* Clears the stream's error code. */
DLLAPI void FCGX_ClearError(FCGX_Stream *stream);

/* An output stream of records of type streamType for requestId written to socket, outside
 * any accepted request (cgi-fcgi sends FCGI_PARAMS with it). Free it with FCGX_FreeStream. */
DLLAPI FCGX_Stream *FCGX_CreateWriter(int socket, int requestId, int bufflen, int streamType);

/* Frees a stream made by FCGX_CreateWriter and sets *stream to NULL. */
DLLAPI void FCGX_FreeStream(FCGX_Stream **stream);

/* ---- Shutdown and fork -------------------------------------------------------------------- */

/* Asks the library to stop accepting: FCGX_Accept_r returns an error from now on. */
DLLAPI void FCGX_ShutdownPending(void);

/* Around fork(): FCGX_Detach marks the request's connection so that the process finishing
 * it closes it without shutting it down for the other; FCGX_Attach undoes that. Return 0, or
 * -1 (FCGX_Detach) when the request has no connection. */
DLLAPI int FCGX_Attach(FCGX_Request *r);
DLLAPI int FCGX_Detach(FCGX_Request *r);

#if defined(__cplusplus) || defined(c_plusplus)
} /* extern "C" */
#endif

#endif /* _FCGIAPP_H */
