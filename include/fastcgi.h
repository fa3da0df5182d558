/*
 * fastcgi.h: FastCGI 1.0 protocol definitions for fcgi-runtime's libfcgi compatibility layer.
 *
 * Source compatible with libfcgi's <fastcgi.h>: the same macro names and values, and the same
 * record structures (every field an unsigned char, so they have no padding and can be read from
 * or written to a socket as they are). Nothing here depends on the library; it only describes
 * the wire format (FastCGI specification, sections 3 to 5).
 *
 * A few names are also defined by fcgi-runtime's native header <fcgi.h> (FCGI_VERSION_1,
 * FCGI_MAX_LENGTH, the record types, roles and protocol status values). They are spelled here
 * exactly as there, so both headers can be included in one translation unit in either order.
 */

#ifndef _FASTCGI_H
#define _FASTCGI_H

/* Defined by every compatibility header of fcgi-runtime, never by libfcgi's own. */
#define FCGI_RUNTIME_COMPAT 1

#if defined(__cplusplus) || defined(c_plusplus)
extern "C" {
#endif

/* The listening socket a web server or spawner hands to a FastCGI application. */
#define FCGI_LISTENSOCK_FILENO 0

/* The 8-byte header in front of every record. Multi-byte fields are big-endian: B1 is the
 * high byte, B0 the low byte. */
typedef struct {
    unsigned char version;         /* FCGI_VERSION_1 */
    unsigned char type;            /* FCGI_BEGIN_REQUEST ... FCGI_UNKNOWN_TYPE */
    unsigned char requestIdB1;     /* 0 (FCGI_NULL_REQUEST_ID) for management records */
    unsigned char requestIdB0;
    unsigned char contentLengthB1; /* 0 .. FCGI_MAX_LENGTH bytes of content follow ... */
    unsigned char contentLengthB0;
    unsigned char paddingLength;   /* ... then this many bytes of padding, to be skipped */
    unsigned char reserved;
} FCGI_Header;

/* Largest content length of one record (spelled as <fcgi.h> spells it: 0xffff). */
#define FCGI_MAX_LENGTH 65535

/* Size of FCGI_Header on the wire; later protocol versions will not make it smaller. */
#define FCGI_HEADER_LEN 8

/* The only protocol version. */
#define FCGI_VERSION_1 1

/* Record types (FCGI_Header.type). */
#define FCGI_BEGIN_REQUEST 1
#define FCGI_ABORT_REQUEST 2
#define FCGI_END_REQUEST 3
#define FCGI_PARAMS 4
#define FCGI_STDIN 5
#define FCGI_STDOUT 6
#define FCGI_STDERR 7
#define FCGI_DATA 8
#define FCGI_GET_VALUES 9
#define FCGI_GET_VALUES_RESULT 10
#define FCGI_UNKNOWN_TYPE 11
#define FCGI_MAXTYPE (FCGI_UNKNOWN_TYPE)

/* Request id of management records (GET_VALUES, UNKNOWN_TYPE, ...). */
#define FCGI_NULL_REQUEST_ID 0

/* Body of FCGI_BEGIN_REQUEST. */
typedef struct {
    unsigned char roleB1; /* FCGI_RESPONDER, FCGI_AUTHORIZER or FCGI_FILTER */
    unsigned char roleB0;
    unsigned char flags;  /* FCGI_KEEP_CONN or 0 */
    unsigned char reserved[5];
} FCGI_BeginRequestBody;

typedef struct {
    FCGI_Header header;
    FCGI_BeginRequestBody body;
} FCGI_BeginRequestRecord;

/* FCGI_BeginRequestBody.flags: the application keeps the connection open after the request. */
#define FCGI_KEEP_CONN 1

/* Roles (FCGI_BeginRequestBody.roleB1/roleB0). */
#define FCGI_RESPONDER 1
#define FCGI_AUTHORIZER 2
#define FCGI_FILTER 3

/* Body of FCGI_END_REQUEST. */
typedef struct {
    unsigned char appStatusB3; /* the application's exit status, big-endian */
    unsigned char appStatusB2;
    unsigned char appStatusB1;
    unsigned char appStatusB0;
    unsigned char protocolStatus; /* FCGI_REQUEST_COMPLETE ... FCGI_UNKNOWN_ROLE */
    unsigned char reserved[3];
} FCGI_EndRequestBody;

typedef struct {
    FCGI_Header header;
    FCGI_EndRequestBody body;
} FCGI_EndRequestRecord;

/* FCGI_EndRequestBody.protocolStatus. */
#define FCGI_REQUEST_COMPLETE 0
#define FCGI_CANT_MPX_CONN 1
#define FCGI_OVERLOADED 2
#define FCGI_UNKNOWN_ROLE 3

/* Variable names a web server may ask for with FCGI_GET_VALUES. */
#define FCGI_MAX_CONNS "FCGI_MAX_CONNS"
#define FCGI_MAX_REQS "FCGI_MAX_REQS"
#define FCGI_MPXS_CONNS "FCGI_MPXS_CONNS"

/* Body of FCGI_UNKNOWN_TYPE: the management record type that was not understood. */
typedef struct {
    unsigned char type;
    unsigned char reserved[7];
} FCGI_UnknownTypeBody;

typedef struct {
    FCGI_Header header;
    FCGI_UnknownTypeBody body;
} FCGI_UnknownTypeRecord;

#if defined(__cplusplus) || defined(c_plusplus)
} /* extern "C" */
#endif

#endif /* _FASTCGI_H */
