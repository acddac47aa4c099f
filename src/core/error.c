/* Error names and messages for cipc codes and negated errno values. */
#define _GNU_SOURCE /* strerrordesc_np, strerrorname_np */
#include <errno.h>
#include <string.h>

#include "cipc/error.h"

#ifndef CIPC_VERSION_STRING
#define CIPC_VERSION_STRING "0.0.0"
#endif

const char *cipc_strerror(int err)
{
    if (err == 0)
        return "success";
    switch (err) {
#define CIPC_ERR_MSG_(name, code, msg)                                                             \
    case code:                                                                                     \
        return msg;
        CIPC_ERR_LIST(CIPC_ERR_MSG_)
#undef CIPC_ERR_MSG_
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        /* strerrordesc_np returns a static string, unlike strerror. */
        const char *s = strerrordesc_np(-err);
        if (s)
            return s;
    }
    return "unknown error";
}

const char *cipc_err_name(int err)
{
    if (err == 0)
        return "CIPC_OK";
    switch (err) {
#define CIPC_ERR_NAME_(name, code, msg)                                                            \
    case code:                                                                                     \
        return "CIPC_" #name;
        CIPC_ERR_LIST(CIPC_ERR_NAME_)
#undef CIPC_ERR_NAME_
    default:
        break;
    }
    if (err < 0 && err > -4096) {
        const char *s = strerrorname_np(-err);
        if (s)
            return s;
    }
    return "unknown";
}

const char *cipc_version(void)
{
    return CIPC_VERSION_STRING;
}
