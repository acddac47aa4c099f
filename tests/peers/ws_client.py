#!/usr/bin/python3
"""A real WebSocket client for cipc's WebSocket server tests: python3-websockets (10.4).

Usage: /usr/bin/python3 tests/peers/ws_client.py URL [options]

With no options it is the seed's client (shared/SEED.md): it connects, sends
"Hello server!" and prints "Received: <reply>" (against the seed's echo server:
"Received: Echo: Hello server!").

Options:
  --compression deflate|none   offer permessage-deflate (default, the library's default)
                               or not
  --max-size N                 largest incoming message in bytes (default 64 MiB)
  --send-size N --count K      instead of the hello: send K messages of N bytes, one at a
  [--binary] [--fragment F]    time, and check that each comes back identical; prints
                               "OK <K>". Text messages unless --binary. With --fragment F
                               each message goes out in fragments of F bytes (the last
                               one shorter). Message k (0-based), byte j: binary
                               (j + k) % 251; text chr(33 + (j + k) % 94) (printable ASCII)
  --subprotocol P              offer subprotocol P (repeat to offer several, in order);
                               prints "SUBPROTOCOL <negotiated>" ("none" if none) first
  --bcast N                    send "BCAST N" and expect N broadcast messages
                               ("BCAST %010d" % i padded with "." to 32 bytes, in order);
                               prints "OK bcast <N>"
  --listen N                   print "CONNECTED" as soon as the handshake is done, then
                               expect N broadcast messages as above, without sending;
                               prints "OK bcast <N>"
  --close-code C               close with code C (and --close-reason R, default empty)
  --close-reason R             instead of 1000; prints "CLOSED <code received> <reason
                               received>" (the server's close frame)
  --expect-close C             expect the server to close the connection with code C
                               during the exchange (e.g. 1009 for a message that is too
                               big); prints "CLOSED <code> <reason>" and succeeds if it
                               does, fails if the exchange completes or the code differs
  --timeout S                  give up after S seconds in all (default 60)

Exit status: 0 on success; 1 with a message on stderr on any mismatch, error or timeout;
2 for bad arguments. Proxies from the environment are not used (websockets 10 has none).
"""

import argparse
import asyncio
import sys

import websockets

HELLO = "Hello server!"


class Mismatch(Exception):
    pass


def payload(k, n, binary):
    """Message k of --send-size n: the deterministic pattern above."""
    if binary:
        base = bytes((j % 251) for j in range(251 * 2))
        off = k % 251
        reps = (n + 251 - 1) // 251 + 1
        return (base[off:off + 251] * reps)[:n]
    base = "".join(chr(33 + j % 94) for j in range(94 * 2))
    off = k % 94
    reps = (n + 94 - 1) // 94 + 1
    return (base[off:off + 94] * reps)[:n]


def bcast_message(i):
    return ("BCAST %010d" % i).ljust(32, ".")


def describe(msg):
    kind = "binary" if isinstance(msg, (bytes, bytearray)) else "text"
    head = msg[:40]
    return "%s of %d %s, starting %r" % (kind, len(msg), "bytes" if kind == "binary" else "chars",
                                         head)


def chunks(data, size):
    for i in range(0, len(data), size):
        yield data[i:i + size]


async def expect_bcast(ws, n):
    for i in range(n):
        got = await ws.recv()
        want = bcast_message(i)
        if got != want:
            raise Mismatch("broadcast message %d: got %s, want %r" % (i, describe(got), want))
    print("OK bcast %d" % n, flush=True)


async def exchange(ws, args):
    if args.listen is not None:
        print("CONNECTED", flush=True)
        await expect_bcast(ws, args.listen)
    elif args.bcast is not None:
        await ws.send("BCAST %d" % args.bcast)
        await expect_bcast(ws, args.bcast)
    elif args.send_size is not None:
        for k in range(args.count):
            data = payload(k, args.send_size, args.binary)
            if args.fragment and len(data) > args.fragment:
                await ws.send(chunks(data, args.fragment))
            else:
                await ws.send(data)
            got = await ws.recv()
            if isinstance(got, bytes) != args.binary:
                raise Mismatch("message %d came back as %s" % (k, describe(got)))
            if got != data:
                diff = next((j for j in range(min(len(got), len(data))) if got[j] != data[j]),
                            min(len(got), len(data)))
                raise Mismatch("message %d: sent %d, got %s; first difference at %d" %
                               (k, len(data), describe(got), diff))
        print("OK %d" % args.count, flush=True)
    else:
        await ws.send(HELLO)
        response = await ws.recv()
        print(f"Received: {response}", flush=True)


async def run(args):
    kw = dict(
        compression=None if args.compression == "none" else "deflate",
        max_size=args.max_size,
        ping_interval=None,
        close_timeout=5,
        open_timeout=10,
    )
    if args.subprotocol:
        kw["subprotocols"] = args.subprotocol
    async with websockets.connect(args.url, **kw) as ws:
        if args.subprotocol:
            print("SUBPROTOCOL %s" % (ws.subprotocol or "none"), flush=True)
        try:
            await exchange(ws, args)
        except websockets.ConnectionClosed as e:
            if args.expect_close is None:
                raise
            code, reason = ws.close_code, ws.close_reason or ""
            print_closed(code, reason)
            if code != args.expect_close:
                raise Mismatch("closed with %s, expected %d" % (code, args.expect_close)) from e
            return
        if args.expect_close is not None:
            raise Mismatch("the exchange completed; expected a close with %d" % args.expect_close)
        if args.close_code is not None:
            await ws.close(args.close_code, args.close_reason)
            print_closed(ws.close_code, ws.close_reason or "")


def print_closed(code, reason):
    print("CLOSED %s" % code + (" " + reason if reason else ""), flush=True)


def parse_args():
    ap = argparse.ArgumentParser(description="cipc WebSocket test client (python3-websockets)")
    ap.add_argument("url")
    ap.add_argument("--compression", choices=("deflate", "none"), default="deflate")
    ap.add_argument("--max-size", type=int, default=64 * 1024 * 1024)
    ap.add_argument("--send-size", type=int)
    ap.add_argument("--count", type=int, default=1)
    ap.add_argument("--binary", action="store_true")
    ap.add_argument("--fragment", type=int, default=0)
    ap.add_argument("--subprotocol", action="append", default=[])
    ap.add_argument("--bcast", type=int)
    ap.add_argument("--listen", type=int)
    ap.add_argument("--close-code", type=int)
    ap.add_argument("--close-reason", default="")
    ap.add_argument("--expect-close", type=int)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    if args.send_size is not None and args.send_size < 0:
        ap.error("--send-size wants N >= 0")
    if args.count < 1:
        ap.error("--count wants K >= 1")
    if args.fragment < 0:
        ap.error("--fragment wants F >= 1")
    if sum(x is not None for x in (args.send_size, args.bcast, args.listen)) > 1:
        ap.error("--send-size, --bcast and --listen exclude each other")
    return args


def main():
    args = parse_args()
    try:
        asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except asyncio.TimeoutError:
        print("ws_client: timed out after %g s" % args.timeout, file=sys.stderr)
        return 1
    except Mismatch as e:
        print("ws_client: %s" % e, file=sys.stderr)
        return 1
    except websockets.ConnectionClosed as e:
        print("ws_client: connection closed unexpectedly: %s" % e, file=sys.stderr)
        return 1
    except (OSError, websockets.WebSocketException) as e:
        print("ws_client: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
