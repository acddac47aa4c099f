#!/usr/bin/python3
"""ws_echo_websockets -- the python3-websockets peer of cipc's WebSocket echo server benchmark.

    /usr/bin/python3 bench/peers/ws_echo_websockets.py [--port 0] [--host 127.0.0.1]
                                                       [--compression none|deflate]

Debian's python3-websockets (10.4) on asyncio's default event loop, one process, one
thread:
  - every message comes back unchanged (text as text, binary as binary);
  - no compression unless --compression deflate (the library's default
    permessage-deflate settings then);
  - messages up to 64 MiB (larger: close 1009); no keepalive pings; read and write
    buffers of 1 MiB instead of 64 KiB;
  - the text message "BCAST <n>" is not echoed: the server sends n text messages of 32
    bytes to every client connected at that moment (the sender included) with
    websockets.broadcast(), which prepares each message once and writes a frame per
    connection; message i (0-based) is "BCAST %010d" % i padded with "." to 32 bytes.
    Every 64 messages it waits for connections whose write buffer is above the
    high-water mark (drain()), so a large n does not pile up in memory.
Prints `PORT N` once listening; exits 0 on SIGTERM or SIGINT (connections are closed
with 1001, at most 2 s of waiting).
"""
import argparse
import asyncio
import re
import signal
import sys

import websockets

BCAST_RE = re.compile(r"BCAST (\d{1,9})\Z")
BCAST_BATCH = 64
BUFFER = 2**20
CLIENTS = set()


def bcast_message(i):
    return ("BCAST %010d" % i).ljust(32, ".")


async def broadcast(n):
    targets = [ws for ws in CLIENTS if ws.open]
    for start in range(0, n, BCAST_BATCH):
        for i in range(start, min(n, start + BCAST_BATCH)):
            websockets.broadcast(targets, bcast_message(i))
        waits = [ws.drain() for ws in targets if ws.open]
        if waits:
            await asyncio.gather(*waits, return_exceptions=True)


async def echo(websocket):
    CLIENTS.add(websocket)
    try:
        async for message in websocket:
            if isinstance(message, str) and message.startswith("BCAST "):
                m = BCAST_RE.match(message)
                if m:
                    await broadcast(int(m.group(1)))
                    continue
            await websocket.send(message)
    except websockets.ConnectionClosed:
        pass
    finally:
        CLIENTS.discard(websocket)


async def main(args):
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server = await websockets.serve(
        echo,
        args.host,
        args.port,
        compression="deflate" if args.compression == "deflate" else None,
        max_size=64 * 1024 * 1024,
        ping_interval=None,
        close_timeout=2,
        read_limit=BUFFER,
        write_limit=BUFFER,
        backlog=1024,
    )
    print("PORT %d" % server.sockets[0].getsockname()[1], flush=True)
    await stop.wait()
    server.close()
    try:
        await asyncio.wait_for(server.wait_closed(), 2)
    except asyncio.TimeoutError:
        pass


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--compression", choices=("none", "deflate"), default="none")
    return p.parse_args()


if __name__ == "__main__":
    try:
        asyncio.run(main(parse_args()))
    except KeyboardInterrupt:
        pass
    sys.exit(0)
