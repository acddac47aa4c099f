#!/usr/bin/node
// A real WebSocket client for cipc's WebSocket server tests: Node.js `ws` (8.x).
//
//     /usr/bin/node tests/node/ws_client.js URL [options]
//
// The same contract as tests/peers/ws_client.py (see there for the details):
//   (no options)                  send "Hello server!", print "Received: <reply>"
//   --compression deflate|none    offer permessage-deflate (default; every message
//                                 compressed, threshold 0) or not
//   --max-size N                  largest incoming message (default 64 MiB)
//   --send-size N --count K       send K messages of N bytes one at a time, check each
//   [--binary] [--fragment F]     echo, print "OK <K>"; byte j of message k: binary
//                                 (j + k) % 251, text 33 + (j + k) % 94; --fragment F
//                                 sends each message in fragments of F bytes
//   --subprotocol P               offer P (repeatable); prints "SUBPROTOCOL <negotiated>"
//                                 first. Unlike websockets, ws fails the handshake
//                                 ("Server sent no subprotocol", exit 1) when it offered
//                                 subprotocols and the server picked none
//   --bcast N                     send "BCAST N", expect the N broadcast messages
//                                 ("BCAST %010d" padded with "." to 32 bytes); "OK bcast N"
//   --listen N                    print "CONNECTED", then expect N broadcast messages
//   --close-code C [--close-reason R]
//                                 close with C/R, print "CLOSED <code> <reason>" received
//   --expect-close C              expect the server to close with C during the exchange
//   --timeout S                   give up after S seconds in all (default 60)
// Exit status 0 on success, 1 with a message on stderr on any mismatch, error or timeout,
// 2 for bad arguments.
'use strict';

const path = require('node:path');

const WebSocket = require(path.join(__dirname, 'node_modules', 'ws'));

const HELLO = 'Hello server!';

class Mismatch extends Error {}
class Closed extends Error {
    constructor(code, reason) {
        super(`connection closed (${code} ${reason})`);
        this.code = code;
        this.reason = reason;
    }
}

function usage(msg) {
    process.stderr.write(`ws_client: ${msg}\n` +
        'usage: node ws_client.js URL [--compression deflate|none] [--max-size N] ' +
        '[--send-size N --count K [--binary] [--fragment F]] [--subprotocol P]... ' +
        '[--bcast N | --listen N] [--close-code C [--close-reason R]] [--expect-close C] ' +
        '[--timeout S]\n');
    process.exit(2);
}

function intArg(name, v, min) {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) {
        usage(`${name} wants an integer >= ${min}`);
    }
    return n;
}

function parseArgs(argv) {
    const o = {
        url: null, compression: 'deflate', maxSize: 64 * 1024 * 1024, sendSize: null,
        count: 1, binary: false, fragment: 0, subprotocols: [], bcast: null, listen: null,
        closeCode: null, closeReason: '', expectClose: null, timeout: 60,
    };
    for (let i = 2; i < argv.length; i++) {
        const a = argv[i];
        if (!a.startsWith('--')) {
            if (o.url !== null) {
                usage(`unexpected argument ${a}`);
            }
            o.url = a;
            continue;
        }
        if (a === '--binary') {
            o.binary = true;
            continue;
        }
        const v = argv[++i];
        if (v === undefined) {
            usage(`${a} needs a value`);
        }
        switch (a) {
        case '--compression':
            if (v !== 'deflate' && v !== 'none') {
                usage('--compression wants deflate or none');
            }
            o.compression = v;
            break;
        case '--max-size': o.maxSize = intArg(a, v, 1); break;
        case '--send-size': o.sendSize = intArg(a, v, 0); break;
        case '--count': o.count = intArg(a, v, 1); break;
        case '--fragment': o.fragment = intArg(a, v, 0); break;
        case '--subprotocol': o.subprotocols.push(v); break;
        case '--bcast': o.bcast = intArg(a, v, 0); break;
        case '--listen': o.listen = intArg(a, v, 0); break;
        case '--close-code': o.closeCode = intArg(a, v, 0); break;
        case '--close-reason': o.closeReason = v; break;
        case '--expect-close': o.expectClose = intArg(a, v, 0); break;
        case '--timeout': o.timeout = Number(v); break;
        default: usage(`unknown option ${a}`);
        }
    }
    if (o.url === null) {
        usage('URL missing');
    }
    if ([o.sendSize, o.bcast, o.listen].filter((x) => x !== null).length > 1) {
        usage('--send-size, --bcast and --listen exclude each other');
    }
    if (!(o.timeout > 0)) {
        usage('--timeout wants seconds > 0');
    }
    return o;
}

// Message k of --send-size n: the pattern repeats every 251 (binary) or 94 (text) bytes.
function payload(k, n, binary) {
    const period = binary ? 251 : 94;
    const base = Buffer.alloc(period);
    for (let j = 0; j < period; j++) {
        base[j] = binary ? (j + k) % 251 : 33 + ((j + k) % 94);
    }
    return n === 0 ? Buffer.alloc(0) : Buffer.alloc(n, base);
}

function bcastMessage(i) {
    return `BCAST ${String(i).padStart(10, '0')}`.padEnd(32, '.');
}

function describe(data, isBinary) {
    const head = data.subarray(0, 40);
    return `${isBinary ? 'binary' : 'text'} of ${data.length} bytes, starting ` +
        JSON.stringify(isBinary ? head.toString('hex') : head.toString());
}

// Incoming messages as a queue that recv() awaits; a close rejects the waiters.
class Conn {
    constructor(ws) {
        this.ws = ws;
        this.queue = [];
        this.waiters = [];
        this.closed = null;
        this.closedPromise = new Promise((resolve) => {
            ws.on('close', (code, reason) => {
                this.closed = new Closed(code, reason.toString());
                for (const w of this.waiters.splice(0)) {
                    w.reject(this.closed);
                }
                resolve(this.closed);
            });
        });
        ws.on('message', (data, isBinary) => {
            const m = { data, isBinary };
            const w = this.waiters.shift();
            if (w) {
                w.resolve(m);
            } else {
                this.queue.push(m);
            }
        });
    }

    recv() {
        if (this.queue.length) {
            return Promise.resolve(this.queue.shift());
        }
        if (this.closed) {
            return Promise.reject(this.closed);
        }
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    }

    send(data, opts) {
        if (this.closed) {
            return Promise.reject(this.closed);
        }
        return new Promise((resolve, reject) => {
            this.ws.send(data, opts, (err) => (err ? reject(this.closed || err) : resolve()));
        });
    }
}

async function expectBcast(c, n) {
    for (let i = 0; i < n; i++) {
        const m = await c.recv();
        const want = bcastMessage(i);
        if (m.isBinary || m.data.toString() !== want) {
            throw new Mismatch(`broadcast message ${i}: got ${describe(m.data, m.isBinary)}, ` +
                `want ${JSON.stringify(want)}`);
        }
    }
    console.log(`OK bcast ${n}`);
}

async function exchange(c, o) {
    if (o.listen !== null) {
        console.log('CONNECTED');
        await expectBcast(c, o.listen);
    } else if (o.bcast !== null) {
        await c.send(`BCAST ${o.bcast}`, { binary: false });
        await expectBcast(c, o.bcast);
    } else if (o.sendSize !== null) {
        for (let k = 0; k < o.count; k++) {
            const data = payload(k, o.sendSize, o.binary);
            if (o.fragment > 0 && data.length > o.fragment) {
                for (let off = 0; off < data.length; off += o.fragment) {
                    const end = Math.min(data.length, off + o.fragment);
                    await c.send(data.subarray(off, end),
                        { binary: o.binary, fin: end === data.length });
                }
            } else {
                await c.send(data, { binary: o.binary });
            }
            const m = await c.recv();
            if (m.isBinary !== o.binary) {
                throw new Mismatch(`message ${k} came back as ${describe(m.data, m.isBinary)}`);
            }
            if (!m.data.equals(data)) {
                let j = 0;
                while (j < m.data.length && j < data.length && m.data[j] === data[j]) {
                    j++;
                }
                throw new Mismatch(`message ${k}: sent ${data.length}, got ` +
                    `${describe(m.data, m.isBinary)}; first difference at ${j}`);
            }
        }
        console.log(`OK ${o.count}`);
    } else {
        await c.send(HELLO, { binary: false });
        const m = await c.recv();
        console.log(`Received: ${m.data.toString()}`);
    }
}

function printClosed(e) {
    console.log(`CLOSED ${e.code}` + (e.reason ? ` ${e.reason}` : ''));
}

async function run(o) {
    const protocols = o.subprotocols.length ? o.subprotocols : undefined;
    const ws = new WebSocket(o.url, protocols, {
        perMessageDeflate: o.compression === 'deflate' ? { threshold: 0 } : false,
        maxPayload: o.maxSize,
        handshakeTimeout: 10000,
    });
    const c = new Conn(ws);
    await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('unexpected-response', (req, res) =>
            reject(new Error(`handshake answered with HTTP ${res.statusCode}`)));
    });
    ws.on('error', () => {}); // reported through 'close'
    if (o.subprotocols.length) {
        console.log(`SUBPROTOCOL ${ws.protocol || 'none'}`);
    }
    try {
        await exchange(c, o);
    } catch (e) {
        if (!(e instanceof Closed) || o.expectClose === null) {
            ws.terminate();
            throw e;
        }
        printClosed(e);
        if (e.code !== o.expectClose) {
            throw new Mismatch(`closed with ${e.code}, expected ${o.expectClose}`);
        }
        return;
    }
    if (o.expectClose !== null) {
        ws.terminate();
        throw new Mismatch(`the exchange completed; expected a close with ${o.expectClose}`);
    }
    if (o.closeCode !== null) {
        ws.close(o.closeCode, o.closeReason);
        printClosed(await c.closedPromise);
    } else {
        ws.close(1000);
        await c.closedPromise;
    }
}

function main() {
    const o = parseArgs(process.argv);
    const timer = setTimeout(() => {
        process.stderr.write(`ws_client: timed out after ${o.timeout} s\n`);
        process.exit(1);
    }, o.timeout * 1000);
    run(o).then(() => {
        clearTimeout(timer);
        process.exitCode = 0;
    }, (e) => {
        clearTimeout(timer);
        const what = e instanceof Mismatch || e instanceof Closed ? e.message :
            `${e.code || e.name}: ${e.message}`;
        process.stderr.write(`ws_client: ${what}\n`);
        process.exit(1);
    });
}

main();
