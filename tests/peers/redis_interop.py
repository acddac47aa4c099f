"""tests/peers/redis_interop.py -- python3-redis against a Redis-protocol server, for
tests/test_broker_it_interop.c. Run with /usr/bin/python3 (Debian's, with python3-redis).

    redis_interop.py seed PORT PATH       run the seed's snippet (PATH) unchanged, its
                                          redis.Redis(host='localhost', port=6379) sent
                                          to 127.0.0.1:PORT instead; loops forever
    redis_interop.py pubsub PORT          pub/sub and patterns
    redis_interop.py lists PORT           lists, blocking pops, admin commands, errors
    redis_interop.py auth PORT PASSWORD   AUTH (the server requires PASSWORD)
    redis_interop.py pipeline PORT        a pipeline of 1000 commands

Every section but `seed` checks what it gets and prints "OK <section>" as its last line
and exits 0; a failed check prints "FAIL <what>: expected <x>, got <y>" to stderr and
exits 1. Every wait has a deadline (socket timeouts, get_message timeouts, thread joins).
"""
import sys
import threading
import time

import redis

HOST = "127.0.0.1"
DEADLINE_S = 10.0


def fail(what, want, got):
    sys.stderr.write(f"FAIL {what}: expected {want!r}, got {got!r}\n")
    sys.stderr.flush()
    sys.exit(1)


def eq(what, got, want):
    if got != want:
        fail(what, want, got)


def raises(what, fn, exc, text):
    """fn() must raise exc (exactly that class or a subclass) with `text` in its message."""
    try:
        got = fn()
    except exc as e:
        if text not in str(e):
            fail(what, f"{exc.__name__} containing {text!r}", f"{type(e).__name__}: {e}")
        return e
    except Exception as e:  # noqa: BLE001 -- reported, not swallowed
        fail(what, f"{exc.__name__} containing {text!r}", f"{type(e).__name__}: {e}")
    fail(what, f"{exc.__name__} containing {text!r}", f"no exception, returned {got!r}")


def client(port, **kw):
    return redis.Redis(host=HOST, port=port, socket_timeout=DEADLINE_S,
                       socket_connect_timeout=DEADLINE_S, **kw)


def next_message(p, what, timeout=DEADLINE_S):
    """The next message of PubSub p (subscription confirmations included), or FAIL."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = p.get_message(timeout=max(0.01, end - time.monotonic()))
        if m is not None:
            return m
    fail(what, "a message", "nothing within %.1f s" % timeout)


def wait_until(what, cond, timeout=DEADLINE_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    fail(what, "condition true", "still false after %.1f s" % timeout)


# --- seed ---------------------------------------------------------------------------------

def seed(port, path):
    """Run the seed's snippet unchanged: only where redis.Redis connects is changed."""
    with open(path, "rb") as f:
        src = f.read()

    class ToTestServer(redis.Redis):
        def __init__(self, *args, **kwargs):
            kwargs["host"] = HOST  # the snippet's 'localhost', pinned to IPv4
            kwargs["port"] = port  # the snippet's 6379
            super().__init__(*args, **kwargs)

    redis.Redis = ToTestServer
    sys.stdout.reconfigure(line_buffering=True)  # the snippet's print() reaches the pipe
    exec(compile(src, path, "exec"), {"__name__": "__main__"})


# --- pub/sub ---------------------------------------------------------------------------------

def pubsub(port):
    r = client(port)
    eq("flushall", r.flushall(), True)
    p = r.pubsub()
    p.psubscribe("news.*")
    p.subscribe("a", "b")
    eq("psubscribe confirmation", next_message(p, "psubscribe"),
       {"type": "psubscribe", "pattern": None, "channel": b"news.*", "data": 1})
    eq("subscribe a confirmation", next_message(p, "subscribe a"),
       {"type": "subscribe", "pattern": None, "channel": b"a", "data": 2})
    eq("subscribe b confirmation", next_message(p, "subscribe b"),
       {"type": "subscribe", "pattern": None, "channel": b"b", "data": 3})

    # Introspection from another connection.
    eq("pubsub_channels()", sorted(r.pubsub_channels()), [b"a", b"b"])
    eq("pubsub_channels('a*')", r.pubsub_channels("a*"), [b"a"])
    eq("pubsub_numsub('a')", r.pubsub_numsub("a"), [(b"a", 1)])
    eq("pubsub_numsub('a', 'zz')", r.pubsub_numsub("a", "zz"), [(b"a", 1), (b"zz", 0)])
    eq("pubsub_numpat()", r.pubsub_numpat(), 1)

    # Messages: pattern, channel, binary data.
    pub = client(port)
    eq("publish news.sport", pub.publish("news.sport", "goal"), 1)
    eq("pmessage", next_message(p, "pmessage"),
       {"type": "pmessage", "pattern": b"news.*", "channel": b"news.sport", "data": b"goal"})
    eq("publish a", pub.publish("a", b"\x00\xff\r\nx"), 1)
    eq("message a", next_message(p, "message a"),
       {"type": "message", "pattern": None, "channel": b"a", "data": b"\x00\xff\r\nx"})
    eq("publish nobody", pub.publish("c", "y"), 0)
    eq("publish news", pub.publish("news", "z"), 0)  # 'news.*' does not match 'news'
    eq("get_message(timeout=0.1) with nothing sent", p.get_message(timeout=0.1), None)

    # PING in subscribed mode: a ['pong', arg] array, which redis-py returns as 'pong'.
    p.ping()
    eq("pubsub.ping()", next_message(p, "pong"),
       {"type": "pong", "pattern": None, "channel": None, "data": b""})
    p.ping("hi")
    eq("pubsub.ping('hi')", next_message(p, "pong hi"),
       {"type": "pong", "pattern": None, "channel": None, "data": b"hi"})

    # Another command on the subscribed connection: the server's error, raised.
    p.execute_command("LLEN", "q")
    raises("LLEN in subscribed mode", lambda: p.get_message(timeout=DEADLINE_S),
           redis.exceptions.ResponseError, "Can't execute 'llen'")

    # Still subscribed after the error.
    eq("publish b", pub.publish("b", "still"), 1)
    eq("message b", next_message(p, "message b"),
       {"type": "message", "pattern": None, "channel": b"b", "data": b"still"})

    # Unsubscribing: the counts go down.
    p.unsubscribe("a")
    eq("unsubscribe a", next_message(p, "unsubscribe a"),
       {"type": "unsubscribe", "pattern": None, "channel": b"a", "data": 2})
    eq("pubsub_numsub('a') after unsubscribe", r.pubsub_numsub("a"), [(b"a", 0)])
    p.punsubscribe()
    eq("punsubscribe", next_message(p, "punsubscribe"),
       {"type": "punsubscribe", "pattern": None, "channel": b"news.*", "data": 1})
    eq("pubsub_numpat() after punsubscribe", r.pubsub_numpat(), 0)
    p.unsubscribe()
    eq("unsubscribe all", next_message(p, "unsubscribe b"),
       {"type": "unsubscribe", "pattern": None, "channel": b"b", "data": 0})
    eq("pubsub_channels() at the end", r.pubsub_channels(), [])
    p.close()

    # listen() with ignore_subscribe_messages, fed from another thread.
    p = r.pubsub(ignore_subscribe_messages=True)
    p.subscribe("l1")
    p.psubscribe("l?")
    wait_until("two subscriptions registered",
               lambda: r.pubsub_numsub("l1") == [(b"l1", 1)] and r.pubsub_numpat() == 1)
    t = threading.Thread(target=lambda: [pub.publish("l1", str(i)) for i in range(3)])
    t.start()
    got = []
    for m in p.listen():
        got.append((m["type"], m["channel"], m["data"]))
        if len(got) == 6:
            break
    t.join(DEADLINE_S)
    eq("listen() messages",
       sorted(got), sorted([("message", b"l1", str(i).encode()) for i in range(3)]
                           + [("pmessage", b"l1", str(i).encode()) for i in range(3)]))
    # Per channel, in publish order.
    eq("listen() order", [d for ty, _, d in got if ty == "message"], [b"0", b"1", b"2"])
    p.close()
    print("OK pubsub", flush=True)


# --- lists, blocking pops, admin ---------------------------------------------------------------

def lists(port):
    r = client(port)
    eq("flushdb", r.flushdb(), True)
    eq("ping", r.ping(), True)
    eq("echo", r.echo("hi there"), b"hi there")
    eq("select(0)", r.select(0), True)
    eq("dbsize empty", r.dbsize(), 0)

    eq("rpush", r.rpush("q", "a", "b", "c"), 3)
    eq("lpush", r.lpush("q", "z"), 4)
    eq("lrange", r.lrange("q", 0, -1), [b"z", b"a", b"b", b"c"])
    eq("llen", r.llen("q"), 4)
    eq("type", r.type("q"), b"list")
    eq("type none", r.type("nosuch"), b"none")
    eq("exists", r.exists("q", "nosuch", "q"), 2)
    eq("lpop", r.lpop("q"), b"z")
    eq("rpop", r.rpop("q"), b"c")
    eq("lpop count", r.lpop("q", 1), [b"a"])
    eq("rpop count", r.rpop("q", 5), [b"b"])
    eq("lpop empty", r.lpop("q"), None)
    eq("lpop count empty", r.lpop("q", 2), None)
    eq("exists after pops", r.exists("q"), 0)

    eq("rpush for lrem", r.rpush("r", "x", "y", "x", "z", "x"), 5)
    eq("lrem 2", r.lrem("r", 2, "x"), 2)
    eq("lrange after lrem", r.lrange("r", 0, -1), [b"y", b"z", b"x"])
    eq("lrem -1", r.lrem("r", -1, "y"), 1)
    eq("lmove", r.lmove("r", "s", "LEFT", "RIGHT"), b"z")
    eq("rpoplpush", r.rpoplpush("r", "s"), b"x")
    eq("lrange s", r.lrange("s", 0, -1), [b"x", b"z"])
    eq("lmove from nothing", r.lmove("nosuch", "s"), None)

    # Blocking pops that find data, that time out, and BLMOVE.
    eq("rpush q2", r.rpush("q2", "j1", "j2", "j3"), 3)
    eq("blpop", r.blpop(["q1", "q2"], timeout=1), (b"q2", b"j1"))
    eq("brpop", r.brpop(["q1", "q2"], timeout=1), (b"q2", b"j3"))
    eq("blmove", r.blmove("q2", "done", 1, "LEFT", "RIGHT"), b"j2")
    eq("lrange done", r.lrange("done", 0, -1), [b"j2"])
    t0 = time.monotonic()
    eq("blpop timeout", r.blpop(["q1", "q2"], timeout=1), None)
    el = time.monotonic() - t0
    if not 0.8 <= el < 5:
        fail("blpop timeout duration (s)", "about 1", el)
    eq("brpop timeout", r.brpop("q1", timeout=0.1), None)
    eq("blmove timeout", r.blmove("q1", "done", 0.1), None)

    # A blocking pop in one thread, served by a push from another connection.
    got = {}
    waiter = client(port, client_name="waiter")

    def blocked():
        got["blpop"] = waiter.blpop(["tq1", "tq2"], timeout=DEADLINE_S)

    t = threading.Thread(target=blocked)
    t.start()
    wait_until("the waiter is blocked",
               lambda: r.info("clients")["blocked_clients"] == 1)
    blocked_names = [c["name"] for c in r.client_list() if "b" in c["flags"]]
    eq("client_list() of the blocked", blocked_names, ["waiter"])
    pusher = client(port)
    eq("push to the waiter", pusher.rpush("tq2", "work"), 1)
    t.join(DEADLINE_S)
    if t.is_alive():
        fail("blocked thread", "served", "still blocked")
    eq("threaded blpop", got["blpop"], (b"tq2", b"work"))
    eq("tq2 consumed", r.exists("tq2"), 0)

    # Keys, DEL, FLUSHDB.
    eq("dbsize", r.dbsize(), 2)  # s, done
    eq("delete", r.delete("s", "nosuch"), 1)
    eq("dbsize after delete", r.dbsize(), 1)
    eq("flushdb", r.flushdb(), True)
    eq("dbsize after flushdb", r.dbsize(), 0)

    # CLIENT and INFO.
    eq("client_setname", r.client_setname("py-main"), True)
    eq("client_getname", r.client_getname(), "py-main")
    cid = r.client_id()
    if not isinstance(cid, int) or cid <= 0:
        fail("client_id", "a positive int", cid)
    cl = r.client_list()
    if not isinstance(cl, list) or not all(isinstance(c, dict) for c in cl):
        fail("client_list() type", "a list of dicts", cl)
    me = [c for c in cl if c.get("name") == "py-main"]
    eq("client_list() entries named py-main", len(me), 1)
    eq("client_list() id of py-main", me[0]["id"], str(cid))
    for field in ("addr", "age", "idle", "flags", "db", "cmd"):
        if field not in me[0]:
            fail("client_list() fields", field, sorted(me[0]))
    info = r.info()
    if not isinstance(info, dict) or "redis_version" not in info:
        fail("info() redis_version", "present", info)
    if not str(info["redis_version"])[:1].isdigit():
        fail("info() redis_version", "a version number", info["redis_version"])
    cc = r.info("clients")["connected_clients"]
    if not isinstance(cc, int) or cc < 3:  # r, waiter, pusher at least
        fail("info('clients')['connected_clients']", ">= 3 (an int)", cc)
    srv = r.info("server")
    for field in ("redis_version", "tcp_port", "uptime_in_seconds"):
        if field not in srv:
            fail("info('server') fields", field, sorted(srv))
    eq("info('server')['tcp_port']", srv["tcp_port"], port)

    # Errors.
    raises("unknown command", lambda: r.execute_command("NOSUCH"),
           redis.exceptions.ResponseError, "unknown command 'NOSUCH'")
    raises("wrong arity", lambda: r.execute_command("LLEN"),
           redis.exceptions.ResponseError, "wrong number of arguments for 'llen' command")
    raises("bad integer", lambda: r.lrange("q", "x", 1),
           redis.exceptions.ResponseError, "value is not an integer or out of range")
    raises("bad direction", lambda: r.execute_command("LMOVE", "a", "b", "UP", "DOWN"),
           redis.exceptions.ResponseError, "syntax error")
    raises("negative timeout", lambda: r.blpop("q", timeout=-1),
           redis.exceptions.ResponseError, "timeout is negative")
    eq("ping after errors", r.ping(), True)
    for c in (waiter, pusher, r):
        c.close()
    print("OK lists", flush=True)


# --- AUTH -----------------------------------------------------------------------------------------

def auth(port, password):
    good = client(port, password=password)
    eq("ping with the password", good.ping(), True)
    eq("rpush with the password", good.rpush("authq", "x"), 1)
    eq("delete with the password", good.delete("authq"), 1)
    # redis-py 4.3.4 maps NOAUTH to AuthenticationError; WRONGPASS is not in its table, so
    # a wrong password surfaces as the server's ResponseError (as with Redis 7 itself).
    e = raises("wrong password", lambda: client(port, password="wrong-" + password).ping(),
               redis.exceptions.RedisError, "WRONGPASS")
    if isinstance(e, redis.exceptions.AuthenticationError):
        pass  # a newer redis-py
    elif not isinstance(e, redis.exceptions.ResponseError):
        fail("wrong password error class", "ResponseError or AuthenticationError", type(e))
    eq("wrong password text", str(e),
       "WRONGPASS invalid username-password pair or user is disabled.")
    raises("no password", lambda: client(port).ping(),
           redis.exceptions.AuthenticationError, "Authentication required")
    raises("no password, push", lambda: client(port).rpush("authq", "x"),
           redis.exceptions.AuthenticationError, "Authentication required")
    eq("nothing pushed without a password", good.exists("authq"), 0)
    # A username that does not exist, with the right password (redis-py sends AUTH u p).
    raises("wrong user", lambda: client(port, username="bob", password=password).ping(),
           redis.exceptions.RedisError, "WRONGPASS")
    eq("default user", client(port, username="default", password=password).ping(), True)
    # A pubsub connection authenticates too.
    p = good.pubsub()
    p.subscribe("authch")
    eq("authenticated subscribe", next_message(p, "subscribe"),
       {"type": "subscribe", "pattern": None, "channel": b"authch", "data": 1})
    eq("authenticated publish", good.publish("authch", "m"), 1)
    eq("authenticated message", next_message(p, "message"),
       {"type": "message", "pattern": None, "channel": b"authch", "data": b"m"})
    p.close()
    good.close()
    print("OK auth", flush=True)


# --- pipeline -------------------------------------------------------------------------------------

def pipeline(port):
    r = client(port)
    r.delete("pq")
    n = 1000
    pipe = r.pipeline(transaction=False)
    for i in range(n):
        if i % 4 == 0:
            pipe.rpush("pq", f"v{i}")
        elif i % 4 == 1:
            pipe.llen("pq")
        elif i % 4 == 2:
            pipe.echo(f"e{i}")
        else:
            pipe.lrange("pq", -1, -1)
    res = pipe.execute()
    eq("pipeline result count", len(res), n)
    for i, got in enumerate(res):
        k = i // 4 + 1  # pushes done so far
        if i % 4 == 0:
            want = k
        elif i % 4 == 1:
            want = k
        elif i % 4 == 2:
            want = f"e{i}".encode()
        else:
            want = [f"v{i - 3}".encode()]
        eq(f"pipeline result {i}", got, want)
    eq("llen after pipeline", r.llen("pq"), n // 4)
    eq("delete after pipeline", r.delete("pq"), 1)
    r.close()
    print("OK pipeline", flush=True)


def main(argv):
    if len(argv) < 3:
        sys.stderr.write(__doc__)
        return 2
    what, port = argv[1], int(argv[2])
    if what == "seed":
        seed(port, argv[3])
    elif what == "pubsub":
        pubsub(port)
    elif what == "lists":
        lists(port)
    elif what == "auth":
        auth(port, argv[3])
    elif what == "pipeline":
        pipeline(port)
    else:
        sys.stderr.write(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
