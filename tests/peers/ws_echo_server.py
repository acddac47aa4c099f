#!/usr/bin/python3
"""A real WebSocket peer for cipc's WebSocket client tests: a python3-websockets (10.4) server.

Usage: /usr/bin/python3 tests/peers/ws_echo_server.py [--host 127.0.0.1] [--port 0]
           [--mode echo|seed] [--compression deflate|none] [--max-size N]
           [--subprotocols a,b] [--ping-interval S] [--verbose]

It listens on 127.0.0.1 (port 0 = an ephemeral port), prints exactly one line "PORT <n>"
to stdout, flushes, and serves until SIGTERM/SIGINT, or until its stdin reaches EOF when
stdin is a pipe (so that it dies with a test that spawned it with stdin piped; started
with stdin from /dev/null or a terminal it ignores stdin). On SIGTERM it closes open
connections with 1001 (going away), waiting at most 2 s, and exits 0. Nothing else is
ever written to stdout; --verbose logs to stderr.

Modes:
  echo (default)  every message comes back unchanged, text as text, binary as binary
  seed            the seed's handler verbatim: each message comes back as the text
                  f"Echo: {message}" (the seed's `websocket_handler`)
In both modes the text message "BCAST <n>" is not echoed: the server sends n text
messages of 32 bytes each to every client connected at that moment (the sender
included), with websockets.broadcast(); message i (0-based) is
"BCAST %010d" % i padded with "." to 32 bytes, e.g. "BCAST 0000000007................".
A connection whose write buffer is above its high-water mark is waited for every 64
messages (backpressure), so a large n does not pile up in memory.

Options:
  --compression   deflate (default, the library's default: permessage-deflate offered and
                  accepted) or none
  --max-size N    largest incoming message in bytes (default 64 MiB); a larger one is
                  refused with close code 1009
  --subprotocols  comma-separated subprotocols the server supports; the one chosen is the
                  library's pick (lowest sum of positions in the client's and server's lists)
  --ping-interval seconds between keepalive pings (default 0: no pings, so tests are
                  deterministic)
Close codes: a client's close frame is answered with the same code and reason (RFC 6455
section 5.5.1), which is what websockets does.
"""

import argparse
import asyncio
import logging
import os
import re
import signal
import stat
import sys
import threading

import websockets

BCAST_RE = re.compile(r"BCAST (\d{1,9})\Z")
BCAST_BATCH = 64
CLIENTS = set()


def bcast_message(i):
    """Message i of a BCAST: 32 ASCII bytes."""
    return ("BCAST %010d" % i).ljust(32, ".")


async def broadcast(n):
    targets = [ws for ws in CLIENTS if ws.open]
    for start in range(0, n, BCAST_BATCH):
        for i in range(start, min(n, start + BCAST_BATCH)):
            websockets.broadcast(targets, bcast_message(i))
        # drain() returns at once unless the connection's buffer is above its
        # high-water mark (write_limit); a connection that died is just skipped.
        waits = [ws.drain() for ws in targets if ws.open]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)


async def bcast_command(message):
    """Run "BCAST n" and return True if `message` is one."""
    if isinstance(message, str):
        m = BCAST_RE.match(message)
        if m:
            await broadcast(int(m.group(1)))
            return True
    return False


# The seed's handler (shared/SEED.md), plus the BCAST command.
async def websocket_handler(websocket, path):
    async for message in websocket:
        if await bcast_command(message):
            continue
        await websocket.send(f"Echo: {message}")


async def echo_handler(websocket, path):
    async for message in websocket:
        if await bcast_command(message):
            continue
        await websocket.send(message)


def tracked(handler):
    async def run(websocket, path):
        CLIENTS.add(websocket)
        try:
            await handler(websocket, path)
        except websockets.ConnectionClosed:
            pass
        finally:
            CLIENTS.discard(websocket)

    return run


def watch_stdin(loop, stop):
    """Block reading stdin in a thread; at EOF (the parent is gone) stop the server."""
    try:
        while os.read(0, 4096):
            pass
    except OSError:
        pass
    loop.call_soon_threadsafe(stop.set)


def stdin_is_pipe():
    try:
        mode = os.fstat(0).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


async def main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    handler = websocket_handler if args.mode == "seed" else echo_handler
    subprotocols = [p for p in args.subprotocols.split(",") if p] if args.subprotocols else None
    server = await websockets.serve(
        tracked(handler),
        args.host,
        args.port,
        compression=None if args.compression == "none" else "deflate",
        max_size=args.max_size,
        subprotocols=subprotocols,
        ping_interval=args.ping_interval if args.ping_interval > 0 else None,
        close_timeout=2,
    )
    port = server.sockets[0].getsockname()[1]
    sys.stdout.write("PORT %d\n" % port)
    sys.stdout.flush()

    if stdin_is_pipe():
        threading.Thread(target=watch_stdin, args=(loop, stop), daemon=True).start()
    await stop.wait()
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 2)
    except asyncio.TimeoutError:
        pass


def parse_args():
    ap = argparse.ArgumentParser(description="cipc WebSocket test peer (python3-websockets)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--mode", choices=("echo", "seed"), default="echo")
    ap.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    ap.add_argument("--max-size", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--subprotocols", default="")
    ap.add_argument("--ping-interval", type=float, default=0)
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    if args.max_size <= 0:
        ap.error("--max-size wants a positive number of bytes")
    logging.basicConfig(stream=sys.stderr,
                        level=logging.DEBUG if args.verbose else logging.CRITICAL)
    return args


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        pass
    sys.exit(0)
