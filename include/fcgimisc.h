/*
 * fcgimisc.h: small helper macros of libfcgi (TRUE, FALSE, min, max, ASSERT), for programs from
 * the libfcgi source tree such as cgi-fcgi. Same definitions as libfcgi's <fcgimisc.h>; none
 * of them depends on the library.
 *
 * ASSERT expands to assert(): include <assert.h> before using it, as with libfcgi.
 * min and max are function-like macros: they evaluate an argument twice, and they clash with
 * C++'s std::min/std::max when defined before <algorithm>.
 *
 * Macros only: nothing here needs extern "C".
 */

#ifndef _FCGIMISC_H
#define _FCGIMISC_H

/* Defined by every compatibility header of fcgi-runtime, never by libfcgi's own. */
#define FCGI_RUNTIME_COMPAT 1

#ifndef FALSE
#define FALSE (0)
#endif

#ifndef TRUE
#define TRUE (1)
#endif

#ifndef min
#define min(a, b) ((a) < (b) ? (a) : (b))
#endif

#ifndef max
#define max(a, b) ((a) > (b) ? (a) : (b))
#endif

#ifndef ASSERT
#define ASSERT(assertion) assert(assertion)
#endif

#endif /* _FCGIMISC_H */
