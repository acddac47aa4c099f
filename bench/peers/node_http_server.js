#!/usr/bin/node
// node_http_server -- the Node.js peer of build/bin/http_bench_server.
//
//     /usr/bin/node bench/peers/node_http_server.js --port N [--workers W] [--host H]
//
// Node's own http module, the same three routes:
//     GET  /      200 text/plain        "Hello, World!" (13 bytes)
//     GET  /json  200 application/json  {"message":"Hello, World!"} (27 bytes)
//     POST /echo  200, the request body back with the request's Content-Type
// anything else 404. Bodies are preallocated Buffers.
//
// W == 1 (the default): one process (Node runs JavaScript on one thread). W > 1: the
// cluster module forks W worker processes that share the port (the primary accepts and
// hands connections round-robin, cluster's default on Linux) and serves nothing itself.
// Keep-alive timeout 60 s (Node's default is 5 s), as the other servers, so idle
// connections survive a measurement. Prints `PORT N` once listening; exits on SIGTERM
// or SIGINT (the primary stops its workers).
'use strict';

const cluster = require('node:cluster');
const http = require('node:http');

function parseArgs(argv) {
    const opts = { port: 0, workers: 1, host: '127.0.0.1' };
    for (let i = 2; i < argv.length; i += 2) {
        const v = argv[i + 1];
        if (v === undefined) {
            throw new Error(`${argv[i]} needs a value`);
        }
        if (argv[i] === '--port') {
            opts.port = Number(v);
        } else if (argv[i] === '--workers') {
            opts.workers = Number(v);
        } else if (argv[i] === '--host') {
            opts.host = v;
        } else {
            throw new Error(`unknown option ${argv[i]}`);
        }
    }
    if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
        throw new Error('--port wants 1..65535');
    }
    if (!Number.isInteger(opts.workers) || opts.workers < 1) {
        throw new Error('--workers wants an integer >= 1');
    }
    return opts;
}

const HELLO = Buffer.from('Hello, World!');
const JSON_BODY = Buffer.from('{"message":"Hello, World!"}');
const HELLO_HEAD = { 'Content-Type': 'text/plain', 'Content-Length': HELLO.length };
const JSON_HEAD = { 'Content-Type': 'application/json', 'Content-Length': JSON_BODY.length };

function handle(req, res) {
    if (req.url === '/' && (req.method === 'GET' || req.method === 'HEAD')) {
        res.writeHead(200, HELLO_HEAD);
        res.end(HELLO);
    } else if (req.url === '/json' && (req.method === 'GET' || req.method === 'HEAD')) {
        res.writeHead(200, JSON_HEAD);
        res.end(JSON_BODY);
    } else if (req.url === '/echo' && req.method === 'POST') {
        const chunks = [];
        req.on('data', (c) => chunks.push(c));
        req.on('end', () => {
            const body = Buffer.concat(chunks);
            const head = { 'Content-Length': body.length };
            if (req.headers['content-type'] !== undefined) {
                head['Content-Type'] = req.headers['content-type'];
            }
            res.writeHead(200, head);
            res.end(body);
        });
    } else {
        res.writeHead(404, { 'Content-Type': 'text/plain', 'Content-Length': 9 });
        res.end('Not Found');
    }
}

function serve(opts, announce) {
    const server = http.createServer(handle);
    server.keepAliveTimeout = 60000;
    server.headersTimeout = 61000;
    server.listen(opts.port, opts.host, () => {
        if (announce) {
            process.stdout.write(`PORT ${server.address().port}\n`);
        }
    });
    const stop = () => {
        server.close(() => process.exit(0));
        server.closeAllConnections();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
}

let opts;
try {
    opts = parseArgs(process.argv);
} catch (e) {
    process.stderr.write(`node_http_server: ${e.message}\n` +
        'usage: node node_http_server.js --port N [--workers W] [--host H]\n');
    process.exit(2);
}

if (opts.workers === 1) {
    serve(opts, true);
} else if (cluster.isPrimary) {
    let listening = 0;
    for (let i = 0; i < opts.workers; i++) {
        cluster.fork();
    }
    cluster.on('listening', () => {
        if (++listening === opts.workers) {
            process.stdout.write(`PORT ${opts.port}\n`);
        }
    });
    const stop = () => {
        for (const id in cluster.workers) {
            cluster.workers[id].process.kill('SIGTERM');
        }
        setTimeout(() => process.exit(0), 2000).unref();
        cluster.on('exit', () => {
            if (Object.keys(cluster.workers).length === 0) {
                process.exit(0);
            }
        });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
} else {
    serve(opts, false);
}
