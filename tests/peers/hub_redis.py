"""tests/peers/hub_redis.py -- python3-redis against the hub's RESP port, for
tests/test_hub_it_resp.c and tests/test_hub_it_auth.c. Run with /usr/bin/python3.

    hub_redis.py sub PORT CHANNEL N [PASSWORD]   subscribe, print "READY", then one
                                                  "MSG <data>" line per message; exit 0
                                                  after N messages (FAIL after 20 s)
    hub_redis.py pub PORT CHANNEL PREFIX N        publish PREFIX1..PREFIXN; print "OK"
    hub_redis.py queue PORT QUEUE                 lpush/rpop/llen on QUEUE; prints "OK"
    hub_redis.py auth PORT PASSWORD               without AUTH: refused; wrong: refused;
                                                  right: works; prints "OK"

A failed check prints "FAIL <what>: expected <x>, got <y>" to stderr and exits 1.
"""
import sys
import time

import redis

HOST = "127.0.0.1"
DEADLINE_S = 20.0


def fail(what, want, got):
    sys.stderr.write(f"FAIL {what}: expected {want!r}, got {got!r}\n")
    sys.stderr.flush()
    sys.exit(1)


def eq(what, got, want):
    if got != want:
        fail(what, want, got)


def client(port, password=None):
    return redis.Redis(host=HOST, port=port, password=password, socket_timeout=DEADLINE_S,
                       socket_connect_timeout=DEADLINE_S)


def sub(port, channel, n, password=None):
    p = client(port, password).pubsub()
    p.subscribe(channel)
    end = time.monotonic() + DEADLINE_S
    m = None
    while m is None and time.monotonic() < end:
        m = p.get_message(timeout=1.0)
    eq("subscribe confirmation", m and m["type"], "subscribe")
    print("READY", flush=True)
    got = 0
    while got < n:
        if time.monotonic() > end:
            fail("messages", n, got)
        m = p.get_message(timeout=1.0)
        if m is None:
            continue
        eq("message type", m["type"], "message")
        eq("message channel", m["channel"], channel.encode())
        print("MSG " + m["data"].decode("utf-8", "replace"), flush=True)
        got += 1
    p.close()


def pub(port, channel, prefix, n):
    c = client(port)
    for i in range(1, n + 1):
        r = c.publish(channel, f"{prefix}{i}")
        if not isinstance(r, int) or r < 0:
            fail("publish reply", "a count", r)
    print("OK", flush=True)


def queue(port, name):
    c = client(port)
    eq("lpush", c.lpush(name, "x1", "x2"), 2)
    eq("rpush", c.rpush(name, "x0"), 3)
    eq("llen", c.llen(name), 3)
    eq("lrange", c.lrange(name, 0, -1), [b"x2", b"x1", b"x0"])
    eq("rpop", c.rpop(name), b"x0")
    print("OK", flush=True)


def auth(port, password):
    try:
        client(port).ping()
        fail("ping without AUTH", "an error", "PONG")
    except redis.exceptions.AuthenticationError:
        pass
    except redis.exceptions.ResponseError as e:
        if "NOAUTH" not in str(e):
            fail("ping without AUTH", "NOAUTH", str(e))
    try:
        client(port, "wrong-" + password).ping()
        fail("wrong password", "an error", "PONG")
    except (redis.exceptions.AuthenticationError, redis.exceptions.ResponseError):
        pass
    c = client(port, password)
    eq("ping with AUTH", c.ping(), True)
    eq("publish with AUTH", c.publish("authed", "x") >= 0, True)
    print("OK", flush=True)


def main():
    a = sys.argv[1:]
    if a[0] == "sub":
        sub(int(a[1]), a[2], int(a[3]), a[4] if len(a) > 4 else None)
    elif a[0] == "pub":
        pub(int(a[1]), a[2], a[3], int(a[4]))
    elif a[0] == "queue":
        queue(int(a[1]), a[2])
    elif a[0] == "auth":
        auth(int(a[1]), a[2])
    else:
        fail("usage", "sub|pub|queue|auth", a[0])


if __name__ == "__main__":
    main()
