#!/usr/bin/python3
"""aiohttp_bench -- the peer of `http_client_bench URL --requests N --concurrency C`.

    /usr/bin/python3 bench/peers/aiohttp_bench.py URL --requests N --concurrency C [--warmup W]

One aiohttp.ClientSession whose connector allows C connections; C worker tasks share a
counter and each GETs URL (reading the whole body) until N requests have been started,
so C requests are in flight at a time. W untimed warm-up requests (at least C, so every
connection is open) run first. A response that is not a 200 counts as an error. Prints
`name: value unit` lines like the C bench; exits non-zero if there were errors.
"""
import argparse
import asyncio
import platform
import sys
import time

import aiohttp


def quantile(sorted_ns, q):
    """The q-th quantile (0..1) by the nearest-rank method, as http_client_bench.c."""
    if not sorted_ns:
        return 0
    rank = min(max(int(q * len(sorted_ns) + 0.999999), 1), len(sorted_ns))
    return sorted_ns[rank - 1]


async def batch(session, url, total, concurrency):
    """Run `total` GETs with `concurrency` workers; returns (elapsed_s, errors, latencies)."""
    state = {"started": 0, "errors": 0}
    lat = []

    async def worker():
        while state["started"] < total:
            state["started"] += 1
            t = time.perf_counter_ns()
            try:
                async with session.get(url) as r:
                    await r.read()
                    if r.status != 200:
                        state["errors"] += 1
            except (aiohttp.ClientError, asyncio.TimeoutError) as e:
                state["errors"] += 1
                if state["errors"] <= 5:
                    print(f"aiohttp_bench: {e!r}", file=sys.stderr)
            lat.append(time.perf_counter_ns() - t)

    t0 = time.perf_counter_ns()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return (time.perf_counter_ns() - t0) / 1e9, state["errors"], lat


async def run(args):
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        warm = max(args.warmup, args.concurrency) if args.warmup > 0 else 0
        if warm:
            await batch(session, args.url, warm, args.concurrency)
        return await batch(session, args.url, args.requests, args.concurrency)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    args = ap.parse_args()

    print("bench: aiohttp")
    print(f"aiohttp_version: {aiohttp.__version__}")
    print(f"python_version: {platform.python_version()}")
    print(f"url: {args.url}")

    elapsed, errors, lat = asyncio.run(run(args))
    lat.sort()
    print("mode: async")
    print(f"requests: {args.requests}")
    print(f"concurrency: {args.concurrency}")
    print(f"errors: {errors}")
    print(f"elapsed_s: {elapsed:.6f} s")
    print(f"requests_per_s: {args.requests / elapsed:.1f} req/s")
    print(f"latency_p50_us: {quantile(lat, 0.50) / 1e3:.1f} us")
    print(f"latency_p99_us: {quantile(lat, 0.99) / 1e3:.1f} us")
    print(f"latency_max_us: {lat[-1] / 1e3:.1f} us")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
