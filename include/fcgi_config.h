/*
 * fcgi_config.h: the configuration macros of libfcgi, for programs built on fcgi-runtime.
 *
 * libfcgi's <fcgi_config.h> is written by its configure script and records what the build
 * platform has. Programs from the libfcgi source tree (cgi-fcgi, the examples) include it and
 * test these HAVE_* macros to decide which system headers to include, so this header provides
 * the same macros with the values of a current Linux/glibc system, the platform fcgi-runtime
 * supports. PACKAGE_VERSION and VERSION name the libfcgi release whose interface fcgi-runtime
 * provides.
 *
 * Macros only: nothing here needs extern "C".
 */

#ifndef FCGI_RUNTIME_FCGI_CONFIG_H
#define FCGI_RUNTIME_FCGI_CONFIG_H

/* Defined by every compatibility header of fcgi-runtime, never by libfcgi's own. */
#define FCGI_RUNTIME_COMPAT 1

/* System headers that exist. */
#define HAVE_ARPA_INET_H 1
#define HAVE_DLFCN_H 1
#define HAVE_INTTYPES_H 1
#define HAVE_LIMITS_H 1
#define HAVE_NETDB_H 1
#define HAVE_NETINET_IN_H 1
#define HAVE_STDINT_H 1
#define HAVE_STDIO_H 1
#define HAVE_STDLIB_H 1
#define HAVE_STRINGS_H 1
#define HAVE_STRING_H 1
#define HAVE_SYS_PARAM_H 1
#define HAVE_SYS_SOCKET_H 1
#define HAVE_SYS_STAT_H 1
#define HAVE_SYS_TIME_H 1
#define HAVE_SYS_TYPES_H 1
#define HAVE_UNISTD_H 1
#define STDC_HEADERS 1

/* <stdio.h> declares fileno() and the fpos_t type. */
#define HAVE_FILENO_PROTO 1
#define HAVE_FPOS 1

/* strerror() exists. */
#define HAVE_STRERROR 1

/* libfcgi's build linked -lnsl (no -lsocket needed). */
#define HAVE_LIBNSL 1

/* C++ (libfcgi++'s <fcgio.h>): std::streambuf defines char_type. */
#define HAVE_STREAMBUF_CHAR_TYPE 1

/*
 * Not defined, as in libfcgi's Linux build: HAVE_IOSTREAM_WITHASSIGN_STREAMBUF,
 * HAVE_LIBSOCKET, HAVE_PTHREAD, HAVE_SOCKADDR_UN_SUN_LEN, HAVE_SOCKLEN,
 * HAVE_VA_ARG_LONG_DOUBLE_BUG, USE_LOCKING (serialising accept() with a lock; fcgi-runtime
 * never needs it).
 */

/* The package, named and versioned as libfcgi. */
#define PACKAGE "fcgi"
#define PACKAGE_BUGREPORT ""
#define PACKAGE_NAME "fcgi"
#define PACKAGE_STRING "fcgi 2.4.2"
#define PACKAGE_TARNAME "fcgi"
#define PACKAGE_URL ""
#define PACKAGE_VERSION "2.4.2"
#define VERSION "2.4.2"

#endif /* FCGI_RUNTIME_FCGI_CONFIG_H */
