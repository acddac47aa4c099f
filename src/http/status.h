/* src/http/status.h -- HTTP status reason phrases, shared by the client and the server. */
#ifndef CIPC_SRC_HTTP_STATUS_H
#define CIPC_SRC_HTTP_STATUS_H

/* The RFC 9110 reason phrase for `status` ("Not Found"), or "" for an unknown code.
 * Returns a static string. Thread-safe. */
const char *cipc__http_reason(int status);

#endif
