#!/usr/bin/python3
"""A real HTTP peer for cipc's HTTP client tests: an aiohttp (3.8) server.

Usage: /usr/bin/python3 tests/peers/http_server.py [--host 127.0.0.1] [--port 0]
                                                  [--tls-cert CERT --tls-key KEY] [--verbose]

It listens (port 0 = an ephemeral port), prints exactly one line "PORT <n>" to stdout,
flushes, and then serves until SIGTERM/SIGINT or until its stdin reaches EOF, so it dies
with the test that spawned it (run it with stdin piped, not from /dev/null). With --tls-*
it serves HTTPS only. Nothing else is ever written to stdout; --verbose logs to stderr.

Endpoints (JSON bodies unless said otherwise):
  GET  /users/{id}               200 {"id": id, "name": "user<id>"}; id 404 -> 404
  POST /users                    201 posted object + "id": 1; 400 if not a JSON object
  ANY  /echo                     200 {"method", "path", "url", "query" (dict of lists),
                                 "headers" (lower-case names; repeats joined by ", "),
                                 "body" (text), "json" (or null), "form" (dict of str)};
                                 also the header X-Echo-Method (useful for HEAD)
  GET  /sleep?ms=N               waits N ms, then 200 "slept" (text); stops early if the
                                 client goes away; counted by /inflight
  GET  /inflight                 {"current": n, "max": m} of concurrent /sleep handlers
  POST /inflight/reset           zero "max" (to the current count)
  GET  /status/{code}            that status with a small text body (none for 204/304)
  GET  /headers/repeat           two X-Multi headers ("a", "b") and two cookies (c1, c2)
  ANY  /flaky/{key}?fail=N&code=503&retry_after=S&slow_ms=M
                                 the first N requests for `key` wait M ms (default 0)
                                 and get `code` (with Retry-After: S when given; S=date
                                 sends an HTTP-date at least 1 s in the future), later
                                 ones get 200 {"attempts": count} (plus "bytes" and
                                 "sha256" of the request body when there is one)
  GET  /flaky/{key}/count        {"count": requests seen for key}
  GET  /redirect/{n}             302 to /redirect/{n-1}; /redirect/0 -> 200
                                 {"redirected": true}
  GET  /redirect-loop            302 to itself
  ANY  /redirect-to?url=U&code=C a redirect (default 302) to U
  GET  /cookies/set?name=value   sets each parameter as a cookie, 200 {"cookies": {...}}
  GET  /cookies                  {"cookies": {...cookies received...}}
  GET  /connections              {"connections": TCP connections accepted so far}
                                 (counted in the protocol factory, once per accept)
  POST /connections/reset        zero that count
  GET  /stream?mb=N[&kb=K]       N MiB (+ K KiB) of the pattern, chunked encoding
  GET  /big?mb=N[&kb=K]          the same with Content-Length
  GET  /truncated[?chunked=1]    declares Content-Length: 100000 (or chunked), sends
                                 1000 bytes, then closes the connection
  GET  /badjson                  application/json body '{"a": 1,'
  GET  /html                     text/html body
  GET  /problem                  application/problem+json; charset=utf-8 {"title": "x"}
  GET  /gzip                     a gzip-encoded JSON body {"compressed": true, "pad": ...}
  POST /upload                   {"bytes": length, "sha256": hex}, read streamingly

The byte pattern of /stream and /big: byte i of the body is i % 251, written in 64 KiB
pieces without holding the body in memory.
"""

import argparse
import asyncio
import email.utils
import hashlib
import json
import logging
import math
import os
import signal
import ssl
import sys
import threading
import time
import urllib.parse

from aiohttp import web

PIECE = 64 * 1024
PATTERN_MOD = 251
# Any piece of the pattern is a slice of this buffer starting at (offset % 251).
PATTERN = bytes(i % PATTERN_MOD for i in range(PIECE + PATTERN_MOD))


class State:
    def __init__(self):
        self.connections = 0
        self.flaky = {}
        self.inflight = 0
        self.inflight_max = 0


STATE = State()


def jresp(obj, status=200, **kw):
    return web.json_response(obj, status=status, **kw)


def int_param(request, name, default=0):
    try:
        return int(request.query.get(name, default))
    except ValueError:
        raise web.HTTPBadRequest(text="bad %s" % name)


def client_gone(request):
    t = request.transport
    return t is None or t.is_closing()


async def polite_sleep(request, ms):
    """Sleep `ms` milliseconds, stopping early once the client has disconnected
    (aiohttp 3.8 does not cancel handlers when the client goes away)."""
    end = time.monotonic() + ms / 1000.0
    while True:
        left = end - time.monotonic()
        if left <= 0:
            return True
        if client_gone(request):
            return False
        await asyncio.sleep(min(left, 0.02))


async def users_get(request):
    try:
        uid = int(request.match_info["id"])
    except ValueError:
        return jresp({"error": "bad id"}, status=400)
    if uid == 404:
        return jresp({"error": "not found"}, status=404)
    return jresp({"id": uid, "name": "user%d" % uid})


async def users_post(request):
    try:
        obj = json.loads(await request.read())
    except ValueError as e:
        return jresp({"error": "invalid JSON: %s" % e}, status=400)
    if not isinstance(obj, dict):
        return jresp({"error": "expected a JSON object"}, status=400)
    obj["id"] = 1
    return jresp(obj, status=201)


async def echo(request):
    raw = await request.read()
    body = raw.decode("utf-8", errors="replace")
    query = {}
    for k in request.query.keys():
        if k not in query:
            query[k] = request.query.getall(k)
    headers = {}
    for k, v in request.headers.items():
        k = k.lower()
        headers[k] = headers[k] + ", " + v if k in headers else v
    parsed = None
    if raw:
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
    form = {}
    if request.content_type == "application/x-www-form-urlencoded":
        for k, v in urllib.parse.parse_qsl(body, keep_blank_values=True):
            form.setdefault(k, v)
    out = {
        "method": request.method,
        "path": request.path,
        "url": str(request.url),
        "query": query,
        "headers": headers,
        "body": body,
        "json": parsed,
        "form": form,
    }
    return jresp(out, headers={"X-Echo-Method": request.method})


async def sleep(request):
    ms = int_param(request, "ms")
    STATE.inflight += 1
    STATE.inflight_max = max(STATE.inflight_max, STATE.inflight)
    try:
        await polite_sleep(request, ms)
    finally:
        STATE.inflight -= 1
    return web.Response(text="slept")


async def inflight(request):
    return jresp({"current": STATE.inflight, "max": STATE.inflight_max})


async def inflight_reset(request):
    STATE.inflight_max = STATE.inflight
    return jresp({"current": STATE.inflight, "max": STATE.inflight_max})


async def status(request):
    try:
        code = int(request.match_info["code"])
    except ValueError:
        return jresp({"error": "bad code"}, status=400)
    if code < 200 or code > 599:
        return jresp({"error": "bad code"}, status=400)
    if code in (204, 304):
        return web.Response(status=code)
    return web.Response(status=code, text="status %d\n" % code)


async def headers_repeat(request):
    resp = jresp({"ok": True})
    resp.headers.add("X-Multi", "a")
    resp.headers.add("X-Multi", "b")
    resp.set_cookie("c1", "v1")
    resp.set_cookie("c2", "v2")
    return resp


async def flaky(request):
    key = request.match_info["key"]
    fail = int_param(request, "fail")
    code = int_param(request, "code", 503)
    slow_ms = int_param(request, "slow_ms")
    retry_after = request.query.get("retry_after")
    count = STATE.flaky.get(key, 0) + 1
    STATE.flaky[key] = count
    body = await request.read()
    if count <= fail:
        if slow_ms > 0 and not await polite_sleep(request, slow_ms):
            return web.Response(status=code, text="gone\n")
        headers = {}
        if retry_after == "date":
            # Whole seconds, rounded up, so the date is at least 1 s away.
            when = math.ceil(time.time()) + 1
            headers["Retry-After"] = email.utils.formatdate(when, usegmt=True)
        elif retry_after is not None:
            headers["Retry-After"] = retry_after
        return web.Response(status=code, text="flaky %s attempt %d\n" % (key, count),
                            headers=headers)
    if body:
        return jresp({"attempts": count, "bytes": len(body),
                      "sha256": hashlib.sha256(body).hexdigest()})
    return jresp({"attempts": count})


async def flaky_count(request):
    return jresp({"count": STATE.flaky.get(request.match_info["key"], 0)})


async def redirect_n(request):
    try:
        n = int(request.match_info["n"])
    except ValueError:
        return jresp({"error": "bad n"}, status=400)
    if n <= 0:
        return jresp({"redirected": True})
    raise web.HTTPFound("/redirect/%d" % (n - 1))


async def redirect_loop(request):
    raise web.HTTPFound("/redirect-loop")


async def redirect_to(request):
    # Read the whole body first: answering a large upload early, before its body is in,
    # makes libcurl 7.88 reuse a connection the server is still draining (curl -L
    # --data-binary hangs on it too), which is not what these redirects test.
    await request.read()
    code = int_param(request, "code", 302)
    url = request.query.get("url", "/")
    return web.Response(status=code, headers={"Location": url}, text="redirect\n")


async def cookies_set(request):
    resp = jresp({"cookies": dict(request.query)})
    for k, v in request.query.items():
        resp.set_cookie(k, v)
    return resp


async def cookies(request):
    return jresp({"cookies": dict(request.cookies)})


async def connections(request):
    return jresp({"connections": STATE.connections})


async def connections_reset(request):
    STATE.connections = 0
    return jresp({"connections": 0})


def body_size(request):
    return int_param(request, "mb") * 1024 * 1024 + int_param(request, "kb") * 1024


async def send_pattern(request, resp, total):
    await resp.prepare(request)
    off = 0
    while off < total:
        n = min(PIECE, total - off)
        start = off % PATTERN_MOD
        await resp.write(PATTERN[start:start + n])
        off += n
    await resp.write_eof()
    return resp


async def stream(request):
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.enable_chunked_encoding()
    return await send_pattern(request, resp, body_size(request))


async def big(request):
    total = body_size(request)
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = total
    return await send_pattern(request, resp, total)


async def truncated(request):
    t = request.transport
    if request.query.get("chunked") == "1":
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 100000)
    else:
        head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Length: 100000\r\n\r\n")
    if t is not None:
        t.write(head + b"x" * 1000)
        t.close()  # flushes what was written, then FIN: the body stops at 1000 bytes
    # aiohttp fails quietly to write this to the closed transport.
    return web.Response(status=500)


async def badjson(request):
    return web.Response(text='{"a": 1,', content_type="application/json")


async def html(request):
    return web.Response(text="<html><body>hi</body></html>\n", content_type="text/html")


async def problem(request):
    return web.Response(body=b'{"title": "x"}',
                        headers={"Content-Type": "application/problem+json; charset=utf-8"})


async def gzipped(request):
    resp = jresp({"compressed": True, "pad": "x" * 1000})
    resp.enable_compression(web.ContentCoding.gzip)
    return resp


async def upload(request):
    h = hashlib.sha256()
    n = 0
    async for piece in request.content.iter_chunked(PIECE):
        h.update(piece)
        n += len(piece)
    return jresp({"bytes": n, "sha256": h.hexdigest()})


def make_app():
    app = web.Application(client_max_size=64 * 1024 * 1024)
    r = app.router
    r.add_get("/users/{id}", users_get)
    r.add_post("/users", users_post)
    r.add_route("*", "/echo", echo)
    r.add_get("/sleep", sleep)
    r.add_get("/inflight", inflight)
    r.add_post("/inflight/reset", inflight_reset)
    r.add_get("/status/{code}", status)
    r.add_get("/headers/repeat", headers_repeat)
    r.add_get("/flaky/{key}/count", flaky_count)
    r.add_route("*", "/flaky/{key}", flaky)
    r.add_get("/redirect/{n}", redirect_n)
    r.add_get("/redirect-loop", redirect_loop)
    r.add_route("*", "/redirect-to", redirect_to)
    r.add_get("/cookies/set", cookies_set)
    r.add_get("/cookies", cookies)
    r.add_get("/connections", connections)
    r.add_post("/connections/reset", connections_reset)
    r.add_get("/stream", stream)
    r.add_get("/big", big)
    r.add_get("/truncated", truncated)
    r.add_get("/badjson", badjson)
    r.add_get("/html", html)
    r.add_get("/problem", problem)
    r.add_get("/gzip", gzipped)
    r.add_post("/upload", upload)
    return app


def watch_stdin(loop, stop):
    """Block reading stdin in a thread; at EOF (the parent is gone) stop the server."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    loop.call_soon_threadsafe(stop.set)


async def main():
    ap = argparse.ArgumentParser(description="cipc HTTP test peer")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    logging.basicConfig(stream=sys.stderr,
                        level=logging.DEBUG if args.verbose else logging.CRITICAL)

    ctx = None
    if args.tls_cert:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    handler_factory = runner.server

    def factory():
        # asyncio calls the protocol factory once per accepted TCP connection.
        STATE.connections += 1
        return handler_factory()

    server = await loop.create_server(factory, args.host, args.port, ssl=ctx, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()

    threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()
    await stop.wait()
    # Exit at once: do not wait for keep-alive connections or sleeping handlers.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
