#!/usr/bin/env bash
# Run one example program in the test suite:
#   run_example.sh /path/to/example
# Client examples run against the local peer server (tests/peers/http_server.py), with
# its base URL as their first argument. The rest_server example is a server: it starts
# on a free port, then the seed's Python `requests` code (tests/peers/seed_requests.py,
# Debian's python3-requests) and the C client example (http_client) run against it.
# The WebSocket examples: ws_echo_server is checked with the seed's Python client and the
# C ws_client; ws_client runs against the seed's Python echo server.
# Every server started here is stopped by its PID when the script ends.
set -euo pipefail
example=$1
shift
src=${CIPC_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
bin=$(dirname "$example")

read_port() { # read_port FD -> prints the port from a "PORT n" line
    local line=""
    if ! read -r -t 20 line <&"$1"; then
        echo "run_example: the server did not report its port within 20 s" >&2
        return 1
    fi
    case "$line" in
    PORT\ *) echo "${line#PORT }" ;;
    *) echo "run_example: unexpected first line: $line" >&2; return 1 ;;
    esac
}

if [ "$(basename "$example")" = rest_server ]; then
    coproc SRV { exec "$example" --port 0; }
    srv_pid=$SRV_PID
    trap 'kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true' EXIT
    port=$(read_port "${SRV[0]}")
    timeout 60 /usr/bin/python3 "$src/tests/peers/seed_requests.py" "http://127.0.0.1:$port"
    timeout 60 "$bin/http_client" "http://127.0.0.1:$port"
    # Graceful shutdown on SIGTERM: the server exits 0 by itself.
    kill -TERM "$srv_pid"
    for _ in $(seq 100); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$srv_pid" 2>/dev/null; then
        echo "run_example: rest_server did not exit within 10 s of SIGTERM" >&2
        exit 1
    fi
    wait "$srv_pid"
    trap - EXIT
    exit 0
fi

# expect_line WANT CMD...: run CMD and require its output to be exactly the line WANT.
expect_line() {
    local want=$1 got
    shift
    got=$("$@")
    if [ "$got" != "$want" ]; then
        echo "run_example: '$*' printed '$got', expected '$want'" >&2
        return 1
    fi
}

# The seed's WebSocket echo server: the seed's Python client (python3-websockets) and the
# C client example both get "Echo: Hello server!" back.
if [ "$(basename "$example")" = ws_echo_server ]; then
    coproc SRV { exec "$example" --port 0; }
    srv_pid=$SRV_PID
    trap 'kill "$srv_pid" 2>/dev/null || true; wait "$srv_pid" 2>/dev/null || true' EXIT
    port=$(read_port "${SRV[0]}")
    expect_line "Received: Echo: Hello server!" \
        timeout 60 /usr/bin/python3 "$src/tests/peers/ws_client.py" "ws://localhost:$port"
    expect_line "Received: Echo: Hello server!" timeout 60 "$bin/ws_client" "ws://localhost:$port"
    kill -TERM "$srv_pid"
    for _ in $(seq 100); do kill -0 "$srv_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$srv_pid" 2>/dev/null; then
        echo "run_example: ws_echo_server did not exit within 10 s of SIGTERM" >&2
        exit 1
    fi
    wait "$srv_pid"
    trap - EXIT
    exit 0
fi

# The seed's WebSocket client against the seed's Python server (python3-websockets).
if [ "$(basename "$example")" = ws_client ]; then
    coproc PEER { exec /usr/bin/python3 "$src/tests/peers/ws_echo_server.py" --mode seed --port 0; }
    peer_pid=$PEER_PID
    trap 'kill "$peer_pid" 2>/dev/null || true; wait "$peer_pid" 2>/dev/null || true' EXIT
    port=$(read_port "${PEER[0]}")
    expect_line "Received: Echo: Hello server!" timeout 60 "$example" "ws://localhost:$port"
    exit 0
fi

# The seed's multiprocessing.Process example needs no peer: four children each print
# "Worker <i> PID: <pid>" (any order); the set of names must be 0..3 and the pids distinct
# and not the example's own.
if [ "$(basename "$example")" = process ]; then
    # sh prints its pid, then execs the example in the same process: that is the parent.
    all=$(timeout 60 sh -c 'echo "PARENT $$"; exec "$0"' "$example")
    parent=$(printf '%s\n' "$all" | sed -n 's/^PARENT //p')
    out=$(printf '%s\n' "$all" | grep -v '^PARENT ')
    if printf '%s\n' "$out" | grep -q " PID: $parent\$"; then
        echo "run_example: a worker printed the parent's pid $parent" >&2
        exit 1
    fi
    names=$(printf '%s\n' "$out" | sed -n 's/^Worker \([0-9]*\) PID: [0-9]*$/\1/p' | sort | tr '\n' ' ')
    pids=$(printf '%s\n' "$out" | sed -n 's/^Worker [0-9]* PID: \([0-9]*\)$/\1/p' | sort -u | wc -l)
    lines=$(printf '%s\n' "$out" | wc -l)
    if [ "$names" != "0 1 2 3 " ] || [ "$pids" != 4 ] || [ "$lines" != 4 ]; then
        echo "run_example: process printed unexpected output:" >&2
        printf '%s\n' "$out" >&2
        exit 1
    fi
    exit 0
fi

# The seed's Pool(4).map(square_number, [1, 2, 3, 4, 5]) needs no peer: exactly one line.
if [ "$(basename "$example")" = pool_map ]; then
    expect_line "[1, 4, 9, 16, 25]" timeout 60 "$example"
    exit 0
fi

# The pub/sub and work-queue examples run against the broker example (started here on a
# free port): the seed's subscriber prints one line; the work queue survives a consumer
# killed while it holds a job.
case "$(basename "$example")" in
pubsub | work_queue)
    coproc BRK { exec "$bin/broker" --port 0; }
    brk_pid=$BRK_PID
    trap 'kill "$brk_pid" 2>/dev/null || true; wait "$brk_pid" 2>/dev/null || true' EXIT
    port=$(read_port "${BRK[0]}")
    if [ "$(basename "$example")" = pubsub ]; then
        expect_line "Received: Hello, subscribers!" timeout 60 "$example" "redis://127.0.0.1:$port"
    else
        out=$(timeout 60 "$example" "redis://127.0.0.1:$port")
        if ! printf '%s\n' "$out" | grep -q '^all 20 jobs processed at least once'; then
            echo "run_example: work_queue printed unexpected output:" >&2
            printf '%s\n' "$out" >&2
            exit 1
        fi
    fi
    exit 0
    ;;
esac

# The broker example is a server: it starts on a free port, redis-cli talks to it (a push
# and a blocking pop, a publish), and SIGTERM stops it with exit status 0.
if [ "$(basename "$example")" = broker ]; then
    coproc BRK { exec "$example" --port 0; }
    brk_pid=$BRK_PID
    trap 'kill "$brk_pid" 2>/dev/null || true; wait "$brk_pid" 2>/dev/null || true' EXIT
    port=$(read_port "${BRK[0]}")
    expect_line "PONG" timeout 10 redis-cli -p "$port" ping
    expect_line "2" timeout 10 redis-cli -p "$port" rpush jobs job1 job2
    expect_line "$(printf 'jobs\njob1')" timeout 10 redis-cli -p "$port" blpop jobs 5
    expect_line "0" timeout 10 redis-cli -p "$port" publish channel "Hello, subscribers!"
    kill -TERM "$brk_pid"
    for _ in $(seq 100); do kill -0 "$brk_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$brk_pid" 2>/dev/null; then
        echo "run_example: broker did not exit within 10 s of SIGTERM" >&2
        exit 1
    fi
    wait "$brk_pid"
    trap - EXIT
    exit 0
fi

# The hub client runs against `cipc serve` (started here on free ports): a WebSocket
# subscriber gets a REST and a RESP publish, numbered 1 and 2. SIGTERM stops the hub, which
# exits 0.
if [ "$(basename "$example")" = hub_client ]; then
    pf=$(mktemp -u /tmp/cipc-hub-example.XXXXXX)
    "$bin/cipc" serve --http-port 0 --resp-port 0 --port-file "$pf" --log-level warn &
    hub_pid=$!
    trap 'kill "$hub_pid" 2>/dev/null || true; wait "$hub_pid" 2>/dev/null || true; rm -f "$pf"' EXIT
    for _ in $(seq 200); do [ -s "$pf" ] && break; sleep 0.05; done
    http=$(sed -n 's/^http=//p' "$pf")
    resp=$(sed -n 's/^resp=//p' "$pf")
    if [ -z "$http" ] || [ -z "$resp" ]; then
        echo "run_example: cipc serve did not write its ports within 10 s" >&2
        exit 1
    fi
    want=$(printf 'subscribed to news at seq 0
REST publish reached 1 subscriber(s)
#1 from REST
#2 from RESP')
    expect_line "$want" timeout 60 "$example" "$http" "$resp"
    kill -TERM "$hub_pid"
    for _ in $(seq 100); do kill -0 "$hub_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$hub_pid" 2>/dev/null; then
        echo "run_example: cipc serve did not exit within 10 s of SIGTERM" >&2
        exit 1
    fi
    wait "$hub_pid"
    trap - EXIT
    rm -f "$pf"
    exit 0
fi

# The thread-pool example needs no peer: the four results in submission order, then the
# summary line, whose time shows the four 200 ms waits overlapped (one after the other
# they would take 0.8 s; the bound is loose because a loaded machine adds latency).
if [ "$(basename "$example")" = thread_pool ]; then
    out=$(timeout 60 "$example")
    want=$(printf 'response %d\n' 0 1 2 3)
    secs=$(printf '%s\n' "$out" | sed -n 's/^4 I\/O-bound tasks took \([0-9.]*\) s on 4 threads$/\1/p')
    if [ "$(printf '%s\n' "$out" | head -4)" != "$want" ] || [ -z "$secs" ] ||
        ! awk -v s="$secs" 'BEGIN { exit !(s < 0.7) }'; then
        echo "run_example: thread_pool printed unexpected output:" >&2
        printf '%s\n' "$out" >&2
        exit 1
    fi
    exit 0
fi

coproc PEER { exec /usr/bin/python3 "$src/tests/peers/http_server.py" --port 0; }
peer_pid=$PEER_PID
trap 'kill "$peer_pid" 2>/dev/null || true; wait "$peer_pid" 2>/dev/null || true' EXIT
port=$(read_port "${PEER[0]}")
timeout 60 "$example" "http://127.0.0.1:$port" "$@"
