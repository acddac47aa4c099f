#!/usr/bin/env bash
# Run one example program against the local peer server (tests/peers/http_server.py):
#   run_example.sh /path/to/example [extra args]
# Starts the server on an ephemeral port, passes its base URL as the example's first
# argument, and stops the server (by the PID it started) when the example ends.
set -euo pipefail
example=$1
shift
src=${CIPC_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}

coproc PEER { exec /usr/bin/python3 "$src/tests/peers/http_server.py" --port 0; }
peer_pid=$PEER_PID
trap 'kill "$peer_pid" 2>/dev/null || true; wait "$peer_pid" 2>/dev/null || true' EXIT

line=""
if ! read -r -t 20 line <&"${PEER[0]}"; then
    echo "run_example: the peer server did not report its port within 20 s" >&2
    exit 1
fi
case "$line" in
PORT\ *) port=${line#PORT } ;;
*) echo "run_example: unexpected first line from the peer: $line" >&2; exit 1 ;;
esac

timeout 60 "$example" "http://127.0.0.1:$port" "$@"
