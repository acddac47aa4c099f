#!/usr/bin/python3
"""aiohttp_server -- the aiohttp peer of build/bin/http_bench_server.

    /usr/bin/python3 bench/peers/aiohttp_server.py --port N [--host H]

aiohttp.web on asyncio's default event loop, the same three routes:
    GET  /      200 text/plain        "Hello, World!" (13 bytes)
    GET  /json  200 application/json  {"message":"Hello, World!"} (27 bytes)
    POST /echo  200, the request body back with the request's Content-Type
One process, one thread (aiohttp has no worker option of its own: more cores need more
processes behind a balancer). No access log. Keep-alive timeout 60 s, as the other
servers. Prints `PORT N` once listening; exits on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import signal
import sys

from aiohttp import web

HELLO = b"Hello, World!"
JSON_BODY = b'{"message":"Hello, World!"}'


async def root(_request):
    return web.Response(body=HELLO, content_type="text/plain")


async def json_route(_request):
    return web.Response(body=JSON_BODY, content_type="application/json")


async def echo(request):
    body = await request.read()
    headers = {}
    ctype = request.headers.get("Content-Type")
    if ctype is not None:
        headers["Content-Type"] = ctype
    return web.Response(body=body, headers=headers)


async def main(args):
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_get("/", root)
    app.router.add_get("/json", json_route)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=60.0)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, backlog=1024)
    await site.start()
    print(f"PORT {args.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--host", default="127.0.0.1")
    return p.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
    sys.exit(0)
