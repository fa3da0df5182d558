/*
 * fcgios.h: libfcgi's OS_* portability layer, as implemented by fcgi-runtime.
 *
 * Source and binary compatible with libfcgi 2.4.2's <fcgios.h>. The library uses these
 * internally in libfcgi; applications rarely call them, but cgi-fcgi does (sockets, spawning,
 * and the OS_Async* / OS_DoIo event loop), so they are exported and declared here.
 *
 * Where fcgi-runtime behaves differently (details: docs/libfcgi-compat.md):
 *  - OS_Async* and OS_DoIo are not limited to descriptors below FD_SETSIZE.
 */

#ifndef _FCGIOS_H
#define _FCGIOS_H

#include "fcgi_config.h"

#ifdef HAVE_SYS_TIME_H
#include <sys/time.h> /* struct timeval (OS_DoIo) */
#endif

#ifdef HAVE_SYS_TYPES_H
#include <sys/types.h>
#endif

#include <errno.h> /* OS_Errno */

/* Defined by every compatibility header of fcgi-runtime, never by libfcgi's own. */
#define FCGI_RUNTIME_COMPAT 1

#if defined(__cplusplus) || defined(c_plusplus)
extern "C" {
#endif

/* The error of the last failed call, and how to set it. */
#define OS_Errno errno
#define OS_SetErrno(err) errno = (err)

#ifndef DLLAPI
#if defined(_WIN32) && defined(_MSC_VER)
#define DLLAPI __declspec(dllimport)
#else
#define DLLAPI
#endif
#endif

/*
 * libfcgi's initializer of a struct timeval (2 s): how long it waits for the first bytes of a
 * connection accepted on a Unix-domain socket before dropping it.
 */
#define READABLE_UNIX_FD_DROP_DEAD_TIMEVAL 2,0

/* Fallbacks for systems without these in <unistd.h> and <sys/param.h> (spelled as glibc
 * spells them, so a later #include of those headers redefines nothing). */
#ifndef STDIN_FILENO
#define STDIN_FILENO 0
#endif

#ifndef STDOUT_FILENO
#define STDOUT_FILENO 1
#endif

#ifndef STDERR_FILENO
#define STDERR_FILENO 2
#endif

#ifndef MAXPATHLEN
#define MAXPATHLEN 1024
#endif

#ifndef X_OK
#define X_OK 1
#endif

/* The argument of an OS_AsyncProc: whatever the caller registered with the operation. */
#ifndef _CLIENTDATA
typedef void *ClientData;
#define _CLIENTDATA
#endif

/* Called by OS_DoIo when an asynchronous operation completes: len is the result of the
 * read() or write() (a byte count, 0 at end of file, or -1). */
typedef void (*OS_AsyncProc)(ClientData clientData, int len);

/* Initialises the layer (idempotent; stdioFds is ignored) and installs the SIGPIPE, SIGUSR1
 * and SIGTERM handlers. Returns 0, or -1. */
DLLAPI int OS_LibInit(int stdioFds[3]);

/* Releases what OS_LibInit allocated. */
DLLAPI void OS_LibShutdown(void);

/* A listening socket on bindPath ("host:port", ":port", or a Unix-domain socket path).
 * Returns the descriptor, or -1. */
DLLAPI int OS_CreateLocalIpcFd(const char *bindPath, int backlog);

/* A connection to a FastCGI application at bindPath (same syntax). Returns the descriptor,
 * or -1. */
DLLAPI int OS_FcgiConnect(char *bindPath);

/* One read() / write(). */
DLLAPI int OS_Read(int fd, char *buf, size_t len);
DLLAPI int OS_Write(int fd, char *buf, size_t len);

/* Forks a child running execPath with listenFd as its fd 0. Returns 0 in the parent. */
DLLAPI int OS_SpawnChild(char *execPath, int listenFd);

/* Register one read of fd 0 / one read or write of fd (offset is ignored); OS_DoIo performs it
 * when the descriptor is ready and then calls procPtr(clientData, result). Return 0, or -1. */
DLLAPI int OS_AsyncReadStdin(void *buf, int len, OS_AsyncProc procPtr, ClientData clientData);
DLLAPI int OS_AsyncRead(int fd, int offset, void *buf, int len, OS_AsyncProc procPtr,
                        ClientData clientData);
DLLAPI int OS_AsyncWrite(int fd, int offset, void *buf, int len, OS_AsyncProc procPtr,
                         ClientData clientData);

/* Closes fd, after shutting its writing side down and draining its input when shutdown is
 * non-zero. Returns close()'s result. */
DLLAPI int OS_Close(int fd, int shutdown);

/* Shuts the reading side of fd down. */
DLLAPI int OS_CloseRead(int fd);

/* Waits (at most *tmo; NULL: without limit) for registered operations and performs those
 * that are ready. Returns 0. */
DLLAPI int OS_DoIo(struct timeval *tmo);

/* Accepts a connection on listen_sock, keeping only peers listed in webServerAddrs (a
 * comma-separated list of IPv4 addresses; NULL or "": any). Returns the descriptor, or -1. */
DLLAPI int OS_Accept(int listen_sock, int fail_on_intr, const char *webServerAddrs);

/* OS_Close for a request's connection. */
DLLAPI int OS_IpcClose(int ipcFd, int shutdown);

/* 1 when sock is a listening socket (the process runs under FastCGI), else 0. */
DLLAPI int OS_IsFcgi(int sock);

/* Adds flags (e.g. O_NONBLOCK) to fd's file status flags. */
DLLAPI void OS_SetFlags(int fd, int flags);

/* Makes OS_Accept give up (FCGX_ShutdownPending calls it). */
DLLAPI void OS_ShutdownPending(void);

#if defined(__cplusplus) || defined(c_plusplus)
} /* extern "C" */
#endif

#endif /* _FCGIOS_H */
