/* cipc_session: the blocking client (requests.Session). One curl easy handle per session,
 * reused for every request so its connection cache keeps connections alive. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cipc/time.h"
#include "http_client/internal.h"

struct cipc_session {
    CURL *easy;
    CURLSH *share;
    struct http_cfg cfg;
    struct errbox *err;
};

int cipc_session_new(const cipc_session_opts *opts, cipc_session **out)
{
    int rc = cipc__curl_global_init();
    if (rc < 0)
        return rc;
    cipc_session *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->err = cipc__errbox_new();
    if (!s->err) {
        free(s);
        return -ENOMEM;
    }
    rc = cipc__http_cfg_init(&s->cfg, opts, s->err);
    if (rc < 0) {
        cipc__errbox_unref(s->err);
        free(s);
        return rc;
    }
    s->easy = curl_easy_init();
    s->share = cipc__share_new(&s->cfg);
    if (!s->easy || !s->share || cipc__easy_setup(s->easy, &s->cfg, s->share) < 0) {
        if (s->easy)
            curl_easy_cleanup(s->easy);
        if (s->share)
            curl_share_cleanup(s->share);
        cipc__http_cfg_free(&s->cfg);
        cipc__errbox_unref(s->err);
        free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void cipc_session_free(cipc_session *s)
{
    if (!s)
        return;
    curl_easy_cleanup(s->easy);
    curl_share_cleanup(s->share);
    cipc__http_cfg_free(&s->cfg);
    cipc__errbox_unref(s->err);
    free(s);
}

int cipc_session_header(cipc_session *s, const char *name, const char *value)
{
    return cipc__http_cfg_header(&s->cfg, name, value, s->err);
}

const char *cipc_session_errmsg(const cipc_session *s)
{
    return s->err->msg;
}

int cipc_request(cipc_session *s, const char *method, const char *url,
                 const cipc_request_opts *opts, cipc_response **out)
{
    *out = NULL;
    s->err->msg[0] = '\0';
    struct xfer x;
    int rc = cipc__xfer_prepare(&x, &s->cfg, s->err, method, url, opts, 0);
    if (rc < 0)
        goto done;
    x.easy = s->easy;
    for (;;) {
        rc = cipc__xfer_arm(&x);
        if (rc < 0)
            break;
        CURLcode res = curl_easy_perform(s->easy);
        rc = cipc__xfer_result(&x, res);
        if (rc == 0) {
            int follow = cipc__xfer_redirect(&x);
            if (follow > 0) {
                cipc__xfer_end_attempt(&x);
                continue;
            }
            if (follow < 0) {
                rc = follow;
                break;
            }
        }
        int64_t delay = cipc__xfer_retry_delay(&x, rc);
        if (delay < 0)
            break;
        cipc__xfer_end_attempt(&x);
        cipc_sleep_ms(delay);
    }
    if (rc == 0)
        *out = cipc__xfer_take_response(&x);
done:
    cipc__xfer_free(&x);
    return rc;
}

int cipc_get(cipc_session *s, const char *url, const cipc_request_opts *opts, cipc_response **out)
{
    return cipc_request(s, "GET", url, opts, out);
}

int cipc_post(cipc_session *s, const char *url, const cipc_request_opts *opts, cipc_response **out)
{
    return cipc_request(s, "POST", url, opts, out);
}

int cipc_put(cipc_session *s, const char *url, const cipc_request_opts *opts, cipc_response **out)
{
    return cipc_request(s, "PUT", url, opts, out);
}

int cipc_patch(cipc_session *s, const char *url, const cipc_request_opts *opts, cipc_response **out)
{
    return cipc_request(s, "PATCH", url, opts, out);
}

int cipc_delete(cipc_session *s, const char *url, const cipc_request_opts *opts,
                cipc_response **out)
{
    return cipc_request(s, "DELETE", url, opts, out);
}

int cipc_head(cipc_session *s, const char *url, const cipc_request_opts *opts, cipc_response **out)
{
    return cipc_request(s, "HEAD", url, opts, out);
}

int cipc_options(cipc_session *s, const char *url, const cipc_request_opts *opts,
                 cipc_response **out)
{
    return cipc_request(s, "OPTIONS", url, opts, out);
}

int cipc_post_json(cipc_session *s, const char *url, json_t *body, cipc_response **out)
{
    cipc_request_opts o = {.size = sizeof o, .json = body};
    return cipc_request(s, "POST", url, &o, out);
}
