#!/usr/bin/node
// ws_echo_ws -- the Node.js `ws` peer of cipc's WebSocket echo server benchmark.
//
//     /usr/bin/node bench/peers/ws_echo_ws.js [--port 0] [--host 127.0.0.1]
//         [--compression none|deflate] [--broadcast frame|send]
//
// `ws` 8.x from tests/node/node_modules (one package.json and lockfile for the tests
// and the benchmarks; scripts/bootstrap runs `npm ci` there). One process, one thread.
//   - every message comes back unchanged (text as text, binary as binary); incoming
//     text is UTF-8 validated, as RFC 6455 requires;
//   - no compression unless --compression deflate (ws's default permessage-deflate
//     settings then);
//   - messages up to 64 MiB (larger: close 1009);
//   - the text message "BCAST <n>" is not echoed: the server sends n text messages of
//     32 bytes to every client connected at that moment (the sender included); message
//     i (0-based) is "BCAST %010d" % i padded with "." to 32 bytes. ws has no broadcast
//     of its own. With --broadcast frame (the default) each message is framed once
//     (WebSocket.Sender.frame) and the same frame is written to every client that has
//     no compression negotiated and nothing queued in its sender (otherwise, and with
//     --broadcast send, each client gets ws.send(), which frames it per client). Every
//     64 messages the server waits for clients with more than 1 MiB buffered.
// Prints `PORT N` once listening; exits 0 on SIGTERM or SIGINT (connections are closed
// with 1001, at most 2 s of waiting).
'use strict';

const path = require('node:path');

const WebSocket = require(path.join(__dirname, '..', '..', 'tests', 'node', 'node_modules', 'ws'));

const BCAST_RE = /^BCAST (\d{1,9})$/;
const BCAST_BATCH = 64;
const BCAST_HIGH_WATER = 1 << 20;
const SENDER_DEFAULT = 0; // ws/lib/sender.js: the state in which frames go out at once

function usage(msg) {
    process.stderr.write(`ws_echo_ws: ${msg}\n` +
        'usage: node ws_echo_ws.js [--port N] [--host H] [--compression none|deflate] ' +
        '[--broadcast frame|send]\n');
    process.exit(2);
}

function parseArgs(argv) {
    const o = { port: 0, host: '127.0.0.1', compression: 'none', broadcast: 'frame' };
    for (let i = 2; i < argv.length; i += 2) {
        const v = argv[i + 1];
        if (v === undefined) {
            usage(`${argv[i]} needs a value`);
        }
        switch (argv[i]) {
        case '--port': o.port = Number(v); break;
        case '--host': o.host = v; break;
        case '--compression': o.compression = v; break;
        case '--broadcast': o.broadcast = v; break;
        default: usage(`unknown option ${argv[i]}`);
        }
    }
    if (!Number.isInteger(o.port) || o.port < 0 || o.port > 65535) {
        usage('--port wants 0..65535');
    }
    if (!['none', 'deflate'].includes(o.compression)) {
        usage('--compression wants none or deflate');
    }
    if (!['frame', 'send'].includes(o.broadcast)) {
        usage('--broadcast wants frame or send');
    }
    return o;
}

function bcastPayload(i) {
    return Buffer.from(`BCAST ${String(i).padStart(10, '0')}`.padEnd(32, '.'));
}

// Whether a ready-made frame can be written to this client's socket without going around
// anything ws itself has queued or is compressing.
function canWriteFrame(c) {
    const s = c._sender;
    return c.extensions === '' && s && typeof s.sendFrame === 'function' &&
        s._state === SENDER_DEFAULT && s._queue.length === 0 && s._firstFragment === true;
}

async function broadcast(wss, n, useFrames) {
    const targets = [...wss.clients].filter((c) => c.readyState === WebSocket.OPEN);
    for (let start = 0; start < n; start += BCAST_BATCH) {
        const end = Math.min(n, start + BCAST_BATCH);
        const payloads = [];
        const frames = [];
        for (let i = start; i < end; i++) {
            const p = bcastPayload(i);
            payloads.push(p);
            if (useFrames) {
                frames.push(Buffer.concat(WebSocket.Sender.frame(p, {
                    fin: true, opcode: 1, mask: false, readOnly: false, rsv1: false,
                })));
            }
        }
        const waits = [];
        for (const c of targets) {
            if (c.readyState !== WebSocket.OPEN) {
                continue;
            }
            const fast = useFrames && canWriteFrame(c);
            const last = payloads.length - 1;
            for (let k = 0; k < last; k++) {
                if (fast) {
                    c._sender.sendFrame([frames[k]]);
                } else {
                    c.send(payloads[k], { binary: false });
                }
            }
            const sendLast = (cb) => {
                if (fast) {
                    c._sender.sendFrame([frames[last]], cb);
                } else {
                    c.send(payloads[last], { binary: false }, cb);
                }
            };
            if (c.bufferedAmount > BCAST_HIGH_WATER) {
                // The callback runs once the batch's last frame is written out (or fails).
                waits.push(new Promise((resolve) => sendLast(() => resolve())));
            } else {
                sendLast();
            }
        }
        if (waits.length) {
            await Promise.all(waits);
        }
    }
}

function main() {
    const o = parseArgs(process.argv);
    const wss = new WebSocket.Server({
        host: o.host,
        port: o.port,
        backlog: 1024,
        maxPayload: 64 * 1024 * 1024,
        perMessageDeflate: o.compression === 'deflate',
        clientTracking: true,
    });
    wss.on('connection', (ws) => {
        ws.on('error', () => {});
        ws.on('message', (data, isBinary) => {
            if (!isBinary && data.length <= 16 && data[0] === 0x42 /* B */) {
                const m = BCAST_RE.exec(data.toString());
                if (m) {
                    broadcast(wss, Number(m[1]), o.broadcast === 'frame').catch(() => {});
                    return;
                }
            }
            ws.send(data, { binary: isBinary });
        });
    });
    wss.on('error', (e) => {
        process.stderr.write(`ws_echo_ws: ${e.message}\n`);
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
}

main();
