#!/usr/bin/node
// The hub's web dashboard (src/hub/www/) in a real browser: Debian's headless chromium
// driven by playwright-core (tests/node/node_modules, from scripts/bootstrap).
//
//     CIPC_BIN_DIR=build/bin /usr/bin/node tests/browser/dashboard.test.js
//
// Starts `cipc serve` on free ports, opens the dashboard and checks that
//   (a) a message published from the page's publish box reaches a WebSocket subscriber
//       and the channel's REST history with the right data;
//   (b) a REST publish shows up in the page's tail of that channel;
//   (c) the channels table lists the channel with its subscribers, and the rate chart
//       gets a new point every second;
//   (d) with `--token`, the page connects with `/?token=T` and reports an auth failure
//       without it;
//   (e) a 1280x800 screenshot is saved to $CIPC_SCREENSHOT (docs/dashboard.png when run
//       by hand for the docs), else to a temporary directory.
// Any console error or uncaught exception in the page fails the test (except the expected
// 401s of the page opened without a token). Exit status 0 on success, 1 on failure.
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { spawn } = require('node:child_process');

const NODE_MODULES = path.join(__dirname, '..', 'node', 'node_modules');
const { chromium } = require(path.join(NODE_MODULES, 'playwright-core'));
const WebSocket = require(path.join(NODE_MODULES, 'ws'));

const SOURCE_DIR = process.env.CIPC_SOURCE_DIR || path.join(__dirname, '..', '..');
const BIN_DIR = process.env.CIPC_BIN_DIR || path.join(SOURCE_DIR, 'build', 'bin');
const CIPC = path.join(BIN_DIR, 'cipc');
const CHROMIUM = '/usr/bin/chromium';
const WAIT_MS = 15000;       // every single wait
const TOTAL_MS = 150000;     // the whole test (CTest gives it 180 s)

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cipc-dashboard-'));
const SHOT = process.env.CIPC_SCREENSHOT || path.join(tmp, 'dashboard.png');
const hubs = [];
let browser = null;
let lastPage = null;   // screenshotted into the temporary directory on failure

class Failure extends Error {}

function fail(what, expected, seen) {
  throw new Failure(`${what}: expected ${expected}, saw ${seen}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls check() (which returns [ok, seen]) until ok or the deadline.
async function waitFor(what, expected, check, ms = WAIT_MS) {
  const end = Date.now() + ms;
  let seen = '(nothing yet)';
  for (;;) {
    try {
      const [ok, s] = await check();
      seen = s;
      if (ok) return s;
    } catch (e) {
      if (e instanceof Failure) throw e;
      seen = `error: ${e.message}`;
    }
    if (Date.now() > end) fail(`${what} (after ${ms / 1000} s)`, expected, seen);
    await sleep(100);
  }
}

// ---- the hub ----------------------------------------------------------------------

async function startHub(name, extra) {
  if (!fs.existsSync(CIPC)) fail('hub binary', `${CIPC} (set CIPC_BIN_DIR)`, 'no such file');
  const portFile = path.join(tmp, `${name}.ports`);
  const args = ['serve', '--http-port', '0', '--resp-port', '0', '--port-file', portFile, ...extra];
  const proc = spawn(CIPC, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const hub = { name, proc, output: '', exited: null };
  hubs.push(hub);
  const keep = (d) => { hub.output = (hub.output + d).slice(-4000); };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  proc.on('exit', (code, signal) => { hub.exited = signal || code; });
  proc.on('error', (e) => { hub.exited = e.message; });

  const alive = () => {
    if (hub.exited !== null) {
      fail(`hub ${name} (${args.join(' ')})`, 'it to keep running',
        `exit ${hub.exited}, output:\n${hub.output}`);
    }
  };
  await waitFor(`hub ${name} port file ${portFile}`, 'a line http=<port>', async () => {
    alive();
    const text = fs.existsSync(portFile) ? fs.readFileSync(portFile, 'utf8') : '';
    const m = /^http=(\d+)$/m.exec(text);
    if (m) hub.port = Number(m[1]);
    const r = /^resp=(\d+)$/m.exec(text);
    if (r) hub.respPort = Number(r[1]);
    return [m && hub.port > 0, JSON.stringify(text)];
  });
  hub.base = `http://127.0.0.1:${hub.port}`;
  await waitFor(`hub ${name} GET /healthz`, '200', async () => {
    alive();
    const r = await fetch(`${hub.base}/healthz`);
    return [r.status === 200, `${r.status} ${await r.text()}`];
  });
  console.log(`hub ${name}: pid ${proc.pid}, ${hub.base}`);
  return hub;
}

async function stopHub(hub) {
  if (hub.exited !== null) return;
  try { process.kill(hub.proc.pid, 'SIGTERM'); } catch { return; }
  const end = Date.now() + 5000;
  while (hub.exited === null && Date.now() < end) await sleep(50);
  if (hub.exited === null) {
    try { process.kill(hub.proc.pid, 'SIGKILL'); } catch { /* gone */ }
  }
}

async function rest(hub, method, route, body, token) {
  const headers = {};
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (token) headers.Authorization = `Bearer ${token}`;
  const r = await fetch(hub.base + route, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: r.status, text, json };
}

// PUBLISH over the hub's RESP port (a bare client: the replies are not read).
function respPublisher(hub) {
  const sock = net.connect(hub.respPort, '127.0.0.1');
  sock.on('error', () => {});
  sock.on('data', () => {});
  const bulk = (x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`;
  return {
    publish: (channel, data) => sock.write(`*3\r\n${bulk('PUBLISH')}${bulk(channel)}${bulk(data)}`),
    close: () => sock.destroy(),
  };
}

// A second subscriber, over node's ws: collects the messages of one channel.
function wsSubscriber(hub, channel) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${hub.port}/v1/ws`);
    const sub = { ws, messages: [], frames: [] };
    const timer = setTimeout(() => reject(new Failure(
      `ws subscriber on ${channel}: expected a "subscribed" frame within ${WAIT_MS / 1000} s, ` +
      `saw ${JSON.stringify(sub.frames)}`)), WAIT_MS);
    ws.on('open', () => ws.send(JSON.stringify({ op: 'subscribe', channel })));
    ws.on('message', (raw) => {
      const f = JSON.parse(raw.toString());
      sub.frames.push(f);
      if (f.type === 'subscribed' && f.channel === channel) { clearTimeout(timer); resolve(sub); }
      if (f.type === 'message' && f.channel === channel) sub.messages.push(f);
    });
    ws.on('error', (e) => { clearTimeout(timer); reject(e); });
  });
}

// ---- the page ---------------------------------------------------------------------

async function openPage(url, { allowAuthErrors = false } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  page.errors = [];
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (allowAuthErrors && /\b401\b|Unauthorized|Authentication failed/i.test(text)) return;
    page.errors.push(`console error: ${text}`);
  });
  page.on('pageerror', (e) => page.errors.push(`uncaught: ${e.message}`));
  lastPage = page;
  const r = await page.goto(url);
  if (!r || r.status() !== 200) fail(`GET ${url}`, '200', r ? r.status() : 'no response');
  return page;
}

function checkNoErrors(page, what) {
  if (page.errors.length) fail(`${what}: page console`, 'no errors', page.errors.join('\n'));
}

async function status(page) {
  return page.$eval('#status', (e) => `${e.dataset.state}: ${e.textContent}`);
}

async function waitStatus(page, state, what) {
  return waitFor(`${what}: #status`, `state "${state}"`, async () => {
    const s = await status(page);
    return [s.startsWith(`${state}:`), s];
  });
}

async function channelRow(page, name) {
  return page.$$eval('#channels tr', (rows, n) => {
    const row = rows.find((r) => r.dataset.channel === n);
    return row ? [...row.cells].map((c) => c.textContent) : rows.map((r) => r.textContent);
  }, name).then((cells) => ({ found: cells.length === 3 && cells[0] === name, cells }));
}

async function chartPoints(page) {
  return page.$eval('#chart', (c) => Number(c.dataset.points));
}

// ---- the test ---------------------------------------------------------------------

async function main() {
  for (const f of [CHROMIUM, path.join(NODE_MODULES, 'playwright-core', 'package.json')]) {
    if (!fs.existsSync(f)) {
      fail('test prerequisites', `${f} (run scripts/bootstrap)`, 'no such file');
    }
  }
  const hub = await startHub('open', []);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  console.log(`chromium ${browser.version()}`);

  const page = await openPage(`${hub.base}/`);
  for (const [route, type] of [['/app.js', 'javascript'], ['/style.css', 'text/css']]) {
    const r = await fetch(hub.base + route);
    const ct = r.headers.get('content-type') || '';
    if (r.status !== 200 || !ct.includes(type)) {
      fail(`GET ${route}`, `200 with a ${type} type`, `${r.status} ${ct}`);
    }
  }
  await waitStatus(page, 'connected', 'page without token, hub without token');
  console.log('ok - the page connects');

  // (a) publish from the page: a ws subscriber and the REST history see it.
  const sub = await wsSubscriber(hub, 'demo');
  const fromPage = `from-page-${crypto.randomBytes(4).toString('hex')}`;
  await page.fill('#channel-input', 'demo');
  await page.fill('#message-input', fromPage);
  await page.click('#publish-btn');
  const result = await waitFor('publish box: #publish-result', 'published with a seq',
    async () => {
      const t = await page.textContent('#publish-result');
      return [/seq \d+/.test(t), JSON.stringify(t)];
    });
  await waitFor('ws subscriber on demo', `a message with data ${fromPage}`, async () => [
    sub.messages.some((m) => m.data === fromPage), JSON.stringify(sub.messages)]);
  const hist = await rest(hub, 'GET', '/v1/channels/demo/messages?since=0');
  if (hist.status !== 200 || !hist.json || !hist.json.messages.some((m) => m.data === fromPage)) {
    fail('GET /v1/channels/demo/messages?since=0', `200 with data ${fromPage}`,
      `${hist.status} ${hist.text}`);
  }
  console.log(`ok - (a) published from the page (${result}), seen over ws and REST`);

  // (b) tail "demo", publish over REST, see it in the tail.
  await page.fill('#tail-channel', 'demo');
  await page.click('#tail-btn');
  await waitFor('tail: #tail-state', 'Following “demo”', async () => {
    const t = await page.textContent('#tail-state');
    return [t.includes('Following “demo”'), JSON.stringify(t)];
  });
  const fromRest = `from-rest-${crypto.randomBytes(4).toString('hex')}`;
  const pub = await rest(hub, 'POST', '/v1/channels/demo/messages', { data: fromRest });
  if (pub.status !== 200 || !pub.json || !(pub.json.receivers >= 2)) {
    fail('POST /v1/channels/demo/messages', '200 with receivers >= 2 (page + ws subscriber)',
      `${pub.status} ${pub.text}`);
  }
  await waitFor('tail: #tail', `a line with ${fromRest} and seq #${pub.json.seq}`, async () => {
    const t = await page.textContent('#tail');
    return [t.includes(fromRest) && t.includes(`#${pub.json.seq}`), JSON.stringify(t)];
  });
  console.log(`ok - (b) REST publish seq ${pub.json.seq} appears in the tail`);

  // (c) the channels table and the chart.
  await waitFor('channels table: row demo', 'subscribers >= 1', async () => {
    const row = await channelRow(page, 'demo');
    return [row.found && Number(row.cells[1]) >= 1, JSON.stringify(row.cells)];
  });
  const p0 = await chartPoints(page);
  await waitFor('chart: #chart data-points', `more than ${p0} + 1 (a point per second)`,
    async () => {
      const p = await chartPoints(page);
      return [p >= Math.min(p0 + 2, 60) && p > p0, p];
    });
  const legend = await page.textContent('#legend');
  if (!/in /.test(legend) || !/out /.test(legend)) {
    fail('chart legend', 'in/out series', JSON.stringify(legend));
  }
  console.log('ok - (c) channels table and chart update');

  // (e) a few seconds of traffic on every transport for a telling screenshot.
  for (let i = 0; i < 5; i++) {
    await rest(hub, 'POST', '/v1/queues/jobs/items', { data: `job ${i}` });
  }
  const resp = respPublisher(hub);
  let tick = 0;
  const traffic = setInterval(() => {
    const s = tick++;
    for (let i = 0; i < 12 + 8 * Math.sin(s); i++) {
      rest(hub, 'POST', `/v1/channels/${['demo', 'news'][i % 2]}/messages`,
        { data: `reading ${s}.${i}: ${(20 + Math.sin(i) * 3).toFixed(2)} °C` }).catch(() => {});
    }
    for (let i = 0; i < 6 + 4 * Math.cos(s); i++) resp.publish('metrics', `load ${s}.${i}`);
    sub.ws.send(JSON.stringify({ op: 'publish', channel: 'news', data: `ws update ${s}` }));
  }, 1000);
  try {
    await sleep(8000);
    const f0 = await page.$eval('#chart', (c) => Number(c.dataset.frames));
    await waitFor('tables with traffic', 'a queue "jobs" and a fresh stats frame', async () => {
      const t = await page.textContent('#queues');
      const f = await page.$eval('#chart', (c) => Number(c.dataset.frames));
      return [t.includes('jobs') && f > f0, `queues ${JSON.stringify(t)}, frames ${f}`];
    });
    await page.screenshot({ path: SHOT });
  } finally {
    clearInterval(traffic);
    resp.close();
  }
  console.log(`ok - (e) screenshot ${SHOT}`);
  checkNoErrors(page, 'page without token');
  sub.ws.close();

  // (d) a hub with a token: the page connects with ?token=, reports a refusal without.
  const secure = await startHub('token', ['--token', 'secret']);
  const noAuth = await rest(secure, 'GET', '/v1/stats');
  if (noAuth.status !== 401) {
    fail('GET /v1/stats without token', '401', `${noAuth.status} ${noAuth.text}`);
  }
  const good = await openPage(`${secure.base}/?token=secret`);
  await waitStatus(good, 'connected', 'page with ?token=secret');
  await waitFor('page with ?token=secret: channels table', 'a stats frame rendered', async () => {
    const t = await good.textContent('#connections');
    return [/ws \d/.test(t), JSON.stringify(t)];
  });
  checkNoErrors(good, 'page with ?token=secret');
  const bad = await openPage(`${secure.base}/`, { allowAuthErrors: true });
  await waitStatus(bad, 'unauthorized', 'page without token, hub with --token');
  await sleep(1500);
  const after = await status(bad);
  if (!after.startsWith('unauthorized:')) {
    fail('page without token, 1.5 s later', 'still unauthorized', after);
  }
  checkNoErrors(bad, 'page without token');
  console.log(`ok - (d) token: connects with ?token=, refused without (${after})`);
}

async function cleanup() {
  if (browser) await browser.close().catch(() => {});
  for (const hub of hubs) await stopHub(hub);
  // Kept after a failure if it holds anything (the hub's port files, failure.png).
  if (process.exitCode === 0 || fs.readdirSync(tmp).length === 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const watchdog = setTimeout(async () => {
  console.error(`FAIL: the test did not finish within ${TOTAL_MS / 1000} s`);
  process.exitCode = 1;
  await cleanup();
  process.exit(1);
}, TOTAL_MS);

main().then(() => {
  process.exitCode = 0;
  console.log('PASS');
}, async (e) => {
  process.exitCode = 1;
  console.error(`FAIL: ${e instanceof Failure ? e.message : e.stack}`);
  for (const hub of hubs) {
    if (hub.output) console.error(`--- hub ${hub.name} output ---\n${hub.output}`);
  }
  if (lastPage) {
    const shot = path.join(tmp, 'failure.png');
    if (await lastPage.screenshot({ path: shot }).then(() => true, () => false)) {
      console.error(`the last page at the failure: ${shot}`);
    }
  }
}).then(cleanup).finally(() => {
  clearTimeout(watchdog);
  // Leftover sockets must not keep node alive.
  setImmediate(() => process.exit(process.exitCode));
});
