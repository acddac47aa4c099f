#!/usr/bin/node
// A real WebSocket peer for cipc's WebSocket client tests: a Node.js `ws` (8.x) server.
//
//     /usr/bin/node tests/node/ws_echo_server.js [--host 127.0.0.1] [--port 0]
//         [--mode echo|seed] [--compression deflate|none] [--max-payload N]
//         [--subprotocols a,b]
//
// `ws` comes from tests/node/node_modules (scripts/bootstrap runs `npm ci` there, from
// the committed package-lock.json). The contract is tests/peers/ws_echo_server.py's:
// it listens on 127.0.0.1 (port 0 = an ephemeral port), prints exactly one line
// "PORT <n>" to stdout and serves until SIGTERM/SIGINT, or until its stdin reaches EOF
// when stdin is a pipe (started with stdin from /dev/null or a terminal it ignores
// stdin). On SIGTERM it closes open connections with 1001 (going away), waits at most
// 2 s, and exits 0.
//
// Modes:
//   echo (default)  every message comes back unchanged, text as text, binary as binary
//   seed            each message comes back as the text `Echo: ${message}`
// In both modes the text message "BCAST <n>" is not echoed: the server sends n text
// messages of 32 bytes to every client connected at that moment (the sender included):
// message i (0-based) is "BCAST %010d" % i padded with "." to 32 bytes. A client whose
// buffered amount is above 1 MiB is waited for every 64 messages (backpressure).
//
// Options:
//   --compression  deflate (default): permessage-deflate accepted, every message
//                  compressed (threshold 0); none: not negotiated
//   --max-payload  largest incoming message in bytes (default 64 MiB); a larger one is
//                  refused with close code 1009
//   --subprotocols comma-separated subprotocols the server supports; the pick is
//                  python3-websockets' (lowest sum of positions in the client's and the
//                  server's lists); none negotiated when the option is absent
// Close codes: a client's close frame is answered with the same code and reason, which
// is what ws does.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));

const BCAST_RE = /^BCAST (\d{1,9})$/;
const BCAST_BATCH = 64;
const BCAST_HIGH_WATER = 1 << 20;

function usage(msg) {
    process.stderr.write(`ws_echo_server: ${msg}\n` +
        'usage: node ws_echo_server.js [--host H] [--port N] [--mode echo|seed] ' +
        '[--compression deflate|none] [--max-payload N] [--subprotocols a,b]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const opts = {
        host: '127.0.0.1', port: 0, mode: 'echo', compression: 'deflate',
        maxPayload: 64 * 1024 * 1024, subprotocols: [],
    };
    for (let i = 2; i < argv.length; i += 2) {
        const v = argv[i + 1];
        if (v === undefined) {
            usage(`${argv[i]} needs a value`);
        }
        switch (argv[i]) {
        case '--host': opts.host = v; break;
        case '--port': opts.port = Number(v); break;
        case '--mode': opts.mode = v; break;
        case '--compression': opts.compression = v; break;
        case '--max-payload': opts.maxPayload = Number(v); break;
        case '--subprotocols': opts.subprotocols = v.split(',').filter((p) => p); break;
        default: usage(`unknown option ${argv[i]}`);
        }
    }
    if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) {
        usage('--port wants 0..65535');
    }
    if (!['echo', 'seed'].includes(opts.mode)) {
        usage('--mode wants echo or seed');
    }
    if (!['deflate', 'none'].includes(opts.compression)) {
        usage('--compression wants deflate or none');
    }
    if (!Number.isInteger(opts.maxPayload) || opts.maxPayload <= 0) {
        usage('--max-payload wants a positive number of bytes');
    }
    return opts;
}

function bcastMessage(i) {
    return Buffer.from(`BCAST ${String(i).padStart(10, '0')}`.padEnd(32, '.'));
}

// Send n broadcast messages to every client open now.
async function broadcast(wss, n) {
    const targets = [...wss.clients].filter((c) => c.readyState === WebSocket.OPEN);
    for (let start = 0; start < n; start += BCAST_BATCH) {
        const end = Math.min(n, start + BCAST_BATCH);
        const waits = [];
        for (const c of targets) {
            if (c.readyState !== WebSocket.OPEN) {
                continue;
            }
            for (let i = start; i < end - 1; i++) {
                c.send(bcastMessage(i), { binary: false });
            }
            if (c.bufferedAmount > BCAST_HIGH_WATER) {
                // The callback runs once the last frame of the batch is written out.
                waits.push(new Promise((resolve) => {
                    c.send(bcastMessage(end - 1), { binary: false }, () => resolve());
                }));
            } else {
                c.send(bcastMessage(end - 1), { binary: false });
            }
        }
        if (waits.length) {
            await Promise.all(waits);
        }
    }
}

// python3-websockets' choice: the common subprotocol with the lowest sum of positions.
function pickSubprotocol(offered, supported) {
    const client = [...offered];
    let best = false;
    let bestScore = Infinity;
    client.forEach((p, i) => {
        const j = supported.indexOf(p);
        if (j >= 0 && i + j < bestScore) {
            best = p;
            bestScore = i + j;
        }
    });
    return best;
}

function stdinIsPipe() {
    try {
        const st = fs.fstatSync(0);
        return st.isFIFO() || st.isSocket();
    } catch (e) {
        return false;
    }
}

function main() {
    const opts = parseArgs(process.argv);
    const wss = new WebSocket.Server({
        host: opts.host,
        port: opts.port,
        backlog: 1024,
        maxPayload: opts.maxPayload,
        perMessageDeflate: opts.compression === 'deflate' ? { threshold: 0 } : false,
        handleProtocols: (offered) => pickSubprotocol(offered, opts.subprotocols),
        clientTracking: true,
    });

    wss.on('connection', (ws) => {
        ws.on('error', () => {});
        ws.on('message', (data, isBinary) => {
            if (!isBinary) {
                const m = BCAST_RE.exec(data.toString());
                if (m) {
                    broadcast(wss, Number(m[1])).catch(() => {});
                    return;
                }
            }
            if (opts.mode === 'seed') {
                ws.send(`Echo: ${data}`);
            } else {
                ws.send(data, { binary: isBinary });
            }
        });
    });
    wss.on('error', (e) => {
        process.stderr.write(`ws_echo_server: ${e.message}\n`);
        process.exit(1);
    });
    wss.on('listening', () => {
        process.stdout.write(`PORT ${wss.address().port}\n`);
    });

    let stopping = false;
    const stop = () => {
        if (stopping) {
            return;
        }
        stopping = true;
        setTimeout(() => process.exit(0), 2000).unref();
        for (const c of wss.clients) {
            c.close(1001, 'server shutting down');
        }
        wss.close(() => process.exit(0));
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    if (stdinIsPipe()) {
        process.stdin.on('data', () => {});
        process.stdin.on('end', stop);
        process.stdin.on('error', stop);
    }
}

main();
