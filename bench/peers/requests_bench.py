#!/usr/bin/python3
"""requests_bench -- the peer of `http_client_bench URL --requests N` (concurrency 1).

    /usr/bin/python3 bench/peers/requests_bench.py URL --requests N [--warmup W]

One requests.Session performs W untimed warm-up GETs and then N timed sequential GETs
of URL over one kept-alive connection. A response that is not a 200 counts as an error.
Prints `name: value unit` lines like the C bench; exits non-zero if there were errors.
"""
import argparse
import platform
import sys
import time

import requests


def quantile(sorted_ns, q):
    """The q-th quantile (0..1) by the nearest-rank method, as http_client_bench.c."""
    if not sorted_ns:
        return 0
    rank = min(max(int(q * len(sorted_ns) + 0.999999), 1), len(sorted_ns))
    return sorted_ns[rank - 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("url")
    ap.add_argument("--requests", type=int, required=True)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--timeout", type=float, default=30.0, help="per request, seconds")
    args = ap.parse_args()

    print("bench: requests")
    print(f"requests_version: {requests.__version__}")
    print(f"python_version: {platform.python_version()}")
    print(f"url: {args.url}")

    errors = 0
    with requests.Session() as s:
        for _ in range(args.warmup):
            s.get(args.url, timeout=args.timeout).content
        lat = []
        t0 = prev = time.perf_counter_ns()
        for _ in range(args.requests):
            try:
                r = s.get(args.url, timeout=args.timeout)
                r.content
                if r.status_code != 200:
                    errors += 1
            except requests.RequestException as e:
                errors += 1
                if errors <= 5:
                    print(f"requests_bench: {e}", file=sys.stderr)
            now = time.perf_counter_ns()
            lat.append(now - prev)
            prev = now
        elapsed = (prev - t0) / 1e9

    lat.sort()
    print("mode: sync")
    print(f"requests: {args.requests}")
    print("concurrency: 1")
    print(f"errors: {errors}")
    print(f"elapsed_s: {elapsed:.6f} s")
    print(f"requests_per_s: {args.requests / elapsed:.1f} req/s")
    print(f"latency_p50_us: {quantile(lat, 0.50) / 1e3:.1f} us")
    print(f"latency_p99_us: {quantile(lat, 0.99) / 1e3:.1f} us")
    print(f"latency_max_us: {lat[-1] / 1e3:.1f} us")
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
