/* cipc/error.h -- error codes shared by every cipc module.
 *
 * Every fallible cipc call returns an int: >= 0 is success (sometimes a count) and < 0
 * is an error. Errors are either a cipc code below (-1000 and lower) or a negated errno
 * value passed through from the operating system (-ECONNREFUSED, -ENOMEM, -EINVAL, ...).
 * Handles keep a human-readable message about their last failure (for example
 * cipc_session_errmsg()); cipc_strerror() names a code.
 *
 * Codes are only ever appended, never renumbered.
 *
 * Threading: everything here is thread-safe. */
#ifndef CIPC_ERROR_H
#define CIPC_ERROR_H

#if defined(__GNUC__)
#define CIPC_API __attribute__((visibility("default")))
#else
#define CIPC_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* X(name, code, message) */
#define CIPC_ERR_LIST(X)                                                                           \
    X(EPROTO, -1001, "malformed message on the wire")                                              \
    X(ETOOBIG, -1002, "message exceeds configured limit")                                          \
    X(ECLOSING, -1003, "handle is closing")                                                        \
    X(EURL, -1004, "invalid URL")                                                                  \
    X(EDNS, -1005, "could not resolve host name")                                                  \
    X(ECONNECT, -1006, "could not connect")                                                        \
    X(ECONNTIMEOUT, -1007, "connect timed out")                                                    \
    X(ETIMEOUT, -1008, "operation timed out")                                                      \
    X(ETLS, -1009, "TLS handshake failed")                                                         \
    X(ECERT, -1010, "TLS certificate verification failed")                                         \
    X(EREDIRECTS, -1011, "too many redirects")                                                     \
    X(EJSON, -1012, "invalid JSON")                                                                \
    X(EHTTP, -1013, "HTTP error status")                                                           \
    X(ECANCELED, -1014, "operation canceled")                                                      \
    X(EAGAIN, -1015, "more input needed")                                                          \
    X(EHEADER, -1016, "invalid header name or value")                                              \
    X(ETRUNCATED, -1017, "connection closed before the message was complete")                      \
    X(ENET, -1018, "network send or receive failed")                                               \
    X(EBUSY, -1019, "resource busy or concurrency limit reached")                                  \
    X(EFILE, -1020, "could not read or write a local file")                                        \
    X(EABORTED, -1021, "aborted by a callback")                                                    \
    X(EINTERNAL, -1022, "internal error in a dependency")                                          \
    X(EWORKER, -1023, "worker process died")

enum cipc_err {
    CIPC_OK = 0,
#define CIPC_ERR_ENUM_(name, code, msg) CIPC_##name = code,
    CIPC_ERR_LIST(CIPC_ERR_ENUM_)
#undef CIPC_ERR_ENUM_
};

/* Name an error code: a cipc code's message, strerror() text for a negated errno, or
 * "success" for 0. Returns a static string, never NULL. Thread-safe. */
CIPC_API const char *cipc_strerror(int err);

/* The symbolic name of a code ("CIPC_ETIMEOUT", "ECONNREFUSED", "CIPC_OK"), or
 * "unknown". Returns a static string, never NULL. Thread-safe. */
CIPC_API const char *cipc_err_name(int err);

/* The library version as "MAJOR.MINOR.PATCH". Static string. */
CIPC_API const char *cipc_version(void);

#ifdef __cplusplus
}
#endif
#endif
