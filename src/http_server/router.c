/* Routes: method + path template ("/users/{id}") -> handler. Matching walks the route
 * list comparing segments; the list is small for REST APIs and read-only once the server
 * runs, so every worker reads it without locks. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "http_server/internal.h"

static int valid_method(const char *m)
{
    if (!m || !*m)
        return 0;
    if (!strcmp(m, "*"))
        return 1;
    for (const char *p = m; *p; p++) {
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '-' || *p == '_'))
            return 0;
    }
    return 1;
}

/* Split a template into segments; "{name}" segments become parameters. Returns 0 or
 * -EINVAL / -ENOMEM. */
static int parse_template(struct route *r, const char *path)
{
    if (!path || path[0] != '/')
        return -EINVAL;
    size_t n = 0;
    for (const char *p = path; *p; p++)
        n += *p == '/';
    r->segs = calloc(n, sizeof *r->segs);
    r->par = calloc(n, 1);
    if (!r->segs || !r->par)
        return -ENOMEM;
    const char *p = path + 1;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(p, '/');
        size_t seg_len = end ? (size_t)(end - p) : strlen(p);
        const char *name = p;
        size_t len = seg_len;
        if (len >= 2 && p[0] == '{' && p[len - 1] == '}') {
            r->par[i] = 1;
            name = p + 1;
            len -= 2;
            if (len == 0)
                return -EINVAL;
        }
        for (size_t k = 0; k < len; k++) {
            if (name[k] == '{' || name[k] == '}' || name[k] == '?' || name[k] == '#' ||
                name[k] <= ' ')
                return -EINVAL;
        }
        r->segs[i] = strndup(name, len);
        if (!r->segs[i])
            return -ENOMEM;
        r->nsegs++;
        p += seg_len;
        if (*p == '/')
            p++;
    }
    return 0;
}

static void route_clear(struct route *r)
{
    if (r->ud_free)
        r->ud_free(r->ud);
    free(r->method);
    free(r->tmpl);
    for (size_t i = 0; i < r->nsegs; i++)
        free(r->segs[i]);
    free(r->segs);
    free(r->par);
}

int cipc__route_add(cipc_server *s, const char *method, const char *path, cipc_http_handler h,
                    void *ud, int streaming, void (*ud_free)(void *))
{
    if (s->started)
        return CIPC_EBUSY;
    if (!valid_method(method) || !h)
        return -EINVAL;
    for (size_t i = 0; i < s->nroutes; i++) {
        if (!strcmp(s->routes[i].method, method) && path && !strcmp(s->routes[i].tmpl, path))
            return -EEXIST;
    }
    struct route r = {0};
    int rc = parse_template(&r, path);
    if (rc < 0) {
        route_clear(&r);
        return rc;
    }
    r.method = strdup(method);
    r.tmpl = strdup(path);
    r.h = h;
    r.ud = ud;
    r.streaming = streaming;
    r.ud_free = ud_free;
    struct route *nr = realloc(s->routes, (s->nroutes + 1) * sizeof *nr);
    if (!r.method || !r.tmpl || !nr) {
        r.ud_free = NULL; /* the caller still owns ud */
        route_clear(&r);
        if (nr)
            s->routes = nr;
        return -ENOMEM;
    }
    s->routes = nr;
    s->routes[s->nroutes++] = r;
    return 0;
}

int cipc_route(cipc_server *s, const char *method, const char *path, cipc_http_handler h, void *ud)
{
    return cipc__route_add(s, method, path, h, ud, 0, NULL);
}

int cipc_route_stream(cipc_server *s, const char *method, const char *path, cipc_http_handler h,
                      void *ud)
{
    return cipc__route_add(s, method, path, h, ud, 1, NULL);
}

static int path_matches(const struct route *r, const struct cipc__slice *segs, size_t nsegs)
{
    if (r->nsegs != nsegs)
        return 0;
    for (size_t i = 0; i < nsegs; i++) {
        if (r->par[i]) {
            if (segs[i].n == 0)
                return 0;
            continue;
        }
        size_t len = strlen(r->segs[i]);
        if (len != segs[i].n || memcmp(r->segs[i], segs[i].p, len) != 0)
            return 0;
    }
    return 1;
}

/* The route for method + path segments, or NULL; *method_mismatch is set when some
 * route matches the path with another method (-> 405). HEAD falls back to GET. */
const struct route *cipc__route_match(const cipc_server *s, const char *method, size_t mlen,
                                      const struct cipc__slice *segs, size_t nsegs,
                                      int *method_mismatch)
{
    const struct route *get = NULL, *any = NULL;
    int is_head = mlen == 4 && !memcmp(method, "HEAD", 4);
    *method_mismatch = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (!path_matches(r, segs, nsegs))
            continue;
        if (strlen(r->method) == mlen && !memcmp(r->method, method, mlen))
            return r;
        if (!strcmp(r->method, "*"))
            any = any ? any : r;
        else if (is_head && !strcmp(r->method, "GET"))
            get = get ? get : r;
        else
            *method_mismatch = 1;
    }
    if (get)
        return get;
    if (any)
        return any;
    return NULL;
}

/* The Allow header value for a path: the methods of every route matching it. */
int cipc__route_allow(const cipc_server *s, const struct cipc__slice *segs, size_t nsegs,
                      cipc_buf *out)
{
    int has_get = 0, has_head = 0;
    for (size_t i = 0; i < s->nroutes; i++) {
        const struct route *r = &s->routes[i];
        if (!path_matches(r, segs, nsegs))
            continue;
        has_get |= !strcmp(r->method, "GET");
        has_head |= !strcmp(r->method, "HEAD");
        if ((out->len && cipc_buf_append(out, ", ", 2) < 0) ||
            cipc_buf_append_str(out, r->method) < 0)
            return -ENOMEM;
    }
    if (has_get && !has_head && cipc_buf_append_str(out, ", HEAD") < 0)
        return -ENOMEM;
    return 0;
}

void cipc__routes_free(cipc_server *s)
{
    for (size_t i = 0; i < s->nroutes; i++)
        route_clear(&s->routes[i]);
    free(s->routes);
    s->routes = NULL;
    s->nroutes = 0;
}
