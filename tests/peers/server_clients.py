#!/usr/bin/python3
"""Python clients for cipc's HTTP server interop test (tests/test_http_server_it_interop.c):
Debian's python3-requests and python3-aiohttp against a running cipc server.

Usage: /usr/bin/python3 tests/peers/server_clients.py requests|aiohttp BASE_URL

The server must have these routes (the C test sets them up):
  GET  /users/{id}?q=...  200 {"id": id, "q": q or null, "worker": n}
  POST /json              201 the posted JSON object plus "seen": true; 400 {"error"}
  POST /sha               200 {"len": n, "sha256": hex} of the request body
  GET  /stream            200 chunked: bytes(range(256)) * 64 in 16 chunks
Each check that fails is printed to stderr and the exit status is 1; success prints one
summary line to stdout and exits 0. Proxies from the environment are ignored.
"""
import asyncio
import hashlib
import sys

FAILURES = []


def check(cond, what):
    if not cond:
        FAILURES.append(what)
        print("FAIL: " + what, file=sys.stderr)


def run_requests(base):
    import requests

    s = requests.Session()
    s.trust_env = False
    # 100 requests on one kept-alive connection.
    for i in range(100):
        r = s.get(f"{base}/users/{i}", params={"q": f"a b+{i}&"}, timeout=10)
        check(r.status_code == 200, f"GET /users/{i}: {r.status_code}")
        j = r.json()
        check(j["id"] == str(i), f"id {j['id']!r} != {i}")
        check(j["q"] == f"a b+{i}&", f"q {j['q']!r}")
    pool = s.get_adapter(base).poolmanager.connection_from_url(base)
    check(pool.num_connections == 1, f"{pool.num_connections} connections for 100 requests")
    check(pool.num_requests >= 100, f"{pool.num_requests} requests counted")

    # JSON round trip.
    body = {"name": "caf\u00e9 \u2713", "n": [1, 2, 3], "nested": {"x": None, "y": 1.5}}
    r = s.post(f"{base}/json", json=body, timeout=10)
    check(r.status_code == 201, f"POST /json: {r.status_code}")
    check(r.headers.get("Content-Type") == "application/json", "Content-Type of /json")
    check(r.json() == dict(body, seen=True), f"JSON round trip: {r.text}")
    r = s.post(f"{base}/json", data=b"{oops", timeout=10)
    check(r.status_code == 400 and "error" in r.json(), f"bad JSON: {r.status_code}")

    # 404 and 405.
    check(s.get(f"{base}/nope", timeout=10).status_code == 404, "404")
    r = s.put(f"{base}/json", data=b"x", timeout=10)
    check(r.status_code == 405 and "POST" in r.headers.get("Allow", ""), "405 with Allow")

    # Uploads: Content-Length and chunked (a generator body).
    data = bytes(range(256)) * 4096
    digest = hashlib.sha256(data).hexdigest()
    r = s.post(f"{base}/sha", data=data, timeout=30)
    check(r.json() == {"len": len(data), "sha256": digest}, f"upload: {r.text}")

    def pieces():
        for k in range(0, len(data), 16384):
            yield data[k:k + 16384]

    r = s.post(f"{base}/sha", data=pieces(), timeout=30)
    check(r.request.headers.get("Transfer-Encoding") == "chunked", "requests sent chunked")
    check(r.json() == {"len": len(data), "sha256": digest}, f"chunked upload: {r.text}")

    # A streamed (chunked) response, and HEAD.
    r = s.get(f"{base}/stream", stream=True, timeout=10)
    got = b"".join(r.iter_content(None))
    check(r.headers.get("Transfer-Encoding") == "chunked", "stream is chunked")
    check(got == bytes(range(256)) * 64, f"stream body ({len(got)} bytes)")
    g = s.get(f"{base}/users/5", timeout=10)
    h = s.head(f"{base}/users/5", timeout=10)
    check(h.status_code == 200 and h.content == b"", "HEAD has no body")
    check(h.headers.get("Content-Length") == str(len(g.content)), "HEAD Content-Length")

    # Everything above still on the first connection.
    check(pool.num_connections == 1, f"{pool.num_connections} connections in the end")
    return f"requests: {pool.num_requests} requests on {pool.num_connections} connection(s)"


async def run_aiohttp_async(base):
    import aiohttp

    workers = set()
    conn = aiohttp.TCPConnector(limit=50)
    async with aiohttp.ClientSession(connector=conn) as s:

        async def get(i):
            async with s.get(f"{base}/users/{i}", params={"q": str(i)}) as r:
                check(r.status == 200, f"aiohttp GET {i}: {r.status}")
                j = await r.json()
                check(j["id"] == str(i) and j["q"] == str(i), f"aiohttp body {j}")
                workers.add(j["worker"])

        async def post(i):
            body = {"i": i, "s": "x" * i}
            async with s.post(f"{base}/json", json=body) as r:
                check(r.status == 201, f"aiohttp POST {i}: {r.status}")
                check(await r.json() == dict(body, seen=True), f"aiohttp JSON {i}")

        await asyncio.wait_for(asyncio.gather(*(get(i) for i in range(50))), 30)
        await asyncio.wait_for(asyncio.gather(*(post(i) for i in range(50))), 30)
        async with s.get(f"{base}/stream") as r:
            got = await r.read()
            check(got == bytes(range(256)) * 64, "aiohttp stream body")
    return f"aiohttp: 101 requests, workers seen {sorted(workers)}"


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("requests", "aiohttp"):
        print(__doc__, file=sys.stderr)
        return 2
    base = sys.argv[2]
    if sys.argv[1] == "requests":
        summary = run_requests(base)
    else:
        summary = asyncio.run(run_aiohttp_async(base))
    if FAILURES:
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
