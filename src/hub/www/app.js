// The cipc hub dashboard: live stats, a publish box and a channel tail, all over the
// hub's JSON WebSocket protocol (/v1/ws, see docs/hub.md). No framework, no build step.
'use strict';

const TOKEN = new URLSearchParams(location.search).get('token') || '';
const MAX_POINTS = 60;    // chart history, one point per stats frame (each second)
const MAX_TAIL = 100;     // messages kept in the tail
const COLORS = { rest: '#2563eb', ws: '#16a34a', sse: '#d97706', resp: '#dc2626' };
const EXTRA_COLORS = ['#7c3aed', '#0891b2', '#db2777', '#65a30d'];

const $ = (id) => document.getElementById(id);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
};

let ws = null;
let backoff = 500;
let nextId = 1;
const pending = new Map();                 // publish id -> channel
const tail = { channel: '', lastSeq: 0 };  // lastSeq: resume point after a reconnect
const rates = { prev: null, prevTime: 0, series: new Map(), points: 0, frames: 0 };

// ---- connection --------------------------------------------------------------------

function setStatus(state, text) {
  const s = $('status');
  s.dataset.state = state;
  s.textContent = text;
}

function send(obj) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(obj));
  return true;
}

function connect() {
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const query = TOKEN ? '?token=' + encodeURIComponent(TOKEN) : '';
  let opened = false;
  setStatus('connecting', 'connecting…');
  ws = new WebSocket(proto + '//' + location.host + '/v1/ws' + query);
  ws.onopen = () => {
    opened = true;
    backoff = 500;
    setStatus('connected', 'connected');
    send({ op: 'stats' });
    if (tail.channel) subscribe(tail.channel, tail.lastSeq);
  };
  ws.onmessage = (ev) => {
    let frame;
    try { frame = JSON.parse(ev.data); } catch { return; }
    handle(frame);
  };
  ws.onclose = async () => {
    ws = null;
    rates.prev = null;   // do not draw a delta across the outage
    // A refused handshake never opens; the browser hides the HTTP status, so ask the
    // REST API whether the token is the reason.
    if (!opened && await unauthorized()) {
      setStatus('unauthorized', TOKEN ? 'unauthorized: wrong token'
        : 'unauthorized: open this page with ?token=…');
      return;   // retrying cannot help until the URL changes
    }
    const wait = backoff;
    backoff = Math.min(backoff * 2, 10000);
    setStatus('disconnected', 'disconnected, retrying in ' + (wait / 1000).toFixed(1) + ' s');
    setTimeout(connect, wait);
  };
}

async function unauthorized() {
  try {
    const r = await fetch('/v1/stats', { headers: authHeaders(), cache: 'no-store' });
    return r.status === 401;
  } catch {
    return false;   // the hub is down: a plain disconnect
  }
}

function authHeaders() {
  return TOKEN ? { Authorization: 'Bearer ' + TOKEN } : {};
}

function handle(f) {
  switch (f.type) {
  case 'stats': renderStats(f); break;
  case 'published': publishResult(f); break;
  case 'message': tailMessage(f); break;
  case 'gap': tailGap(f); break;
  case 'subscribed':
    if (f.channel === tail.channel) {
      $('tail-state').textContent = 'Following “' + f.channel + '”: messages after seq ' +
        f.seq + '.';
      if (!tail.lastSeq) tail.lastSeq = f.seq;
    }
    break;
  case 'error':
    if (f.id !== undefined && pending.has(f.id)) {
      pending.delete(f.id);
      showPublish('error: ' + f.error, true);
    } else {
      showPublish('hub error: ' + f.error, true);
    }
    break;
  }
}

// ---- stats: tables and chart -------------------------------------------------------

function renderStats(s) {
  const c = s.connections || {};
  const parts = [Object.keys(c).map((k) => k + ' ' + c[k]).join(' · ') + ' connected'];
  if (s.http_requests !== undefined) parts.push(s.http_requests + ' HTTP requests');
  if (s.mode) parts.push(s.mode === 'redis' ? 'shared through Redis' : 'local');
  if (s.uptime_s !== undefined) parts.push('up ' + formatUptime(s.uptime_s));
  $('connections').textContent = parts.join(' · ');

  const rows = (s.channels || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  fillTable($('channels'), rows, ['name', 'subscribers', 'seq'], 'no channels yet', (tr, ch) => {
    tr.dataset.channel = ch.name;
    tr.classList.toggle('current', ch.name === tail.channel);
    tr.addEventListener('click', () => { $('tail-channel').value = ch.name; follow(ch.name); });
  });
  const queues = (s.queues || []).slice().sort((a, b) => a.name.localeCompare(b.name));
  fillTable($('queues'), queues, ['name', 'length', 'reserved'], 'no queues yet');
  addRates(s);
}

function fillTable(tbody, rows, cols, empty, decorate) {
  tbody.replaceChildren();
  if (!rows.length) {
    const tr = el('tr', 'empty');
    const td = el('td', 'muted', empty);
    td.colSpan = cols.length;
    tr.append(td);
    tbody.append(tr);
    return;
  }
  for (const row of rows) {
    const tr = el('tr');
    cols.forEach((k, i) => tr.append(el('td', i ? 'num' : '', String(row[k] ?? ''))));
    if (decorate) decorate(tr, row);
    tbody.append(tr);
  }
}

function formatUptime(s) {
  if (s < 60) return s + ' s';
  if (s < 3600) return Math.floor(s / 60) + ' min';
  return Math.floor(s / 3600) + ' h ' + Math.floor((s % 3600) / 60) + ' min';
}

// messages_in / messages_out are cumulative: one point is the per-second delta between
// two consecutive frames, one series per direction and transport ("in rest", "out ws").
function addRates(s) {
  const now = performance.now();
  const cur = new Map();
  for (const [dir, obj] of [['in', s.messages_in], ['out', s.messages_out]]) {
    for (const k of Object.keys(obj || {})) cur.set(dir + ' ' + k, Number(obj[k]) || 0);
  }
  // A frame soon after the last one (the hub answers another client's "stats" op to all)
  // would make a noisy rate: wait for the next regular one.
  if (rates.prev && now - rates.prevTime < 500) return;
  rates.frames++;
  if (rates.prev) {
    const dt = Math.max((now - rates.prevTime) / 1000, 0.001);
    for (const [key, v] of cur) {
      if (!rates.series.has(key)) rates.series.set(key, new Array(rates.points).fill(0));
      const before = rates.prev.get(key);
      const d = before === undefined || v < before ? 0 : (v - before) / dt;   // a restart resets
      rates.series.get(key).push(d);
    }
    for (const [key, arr] of rates.series) {
      if (!cur.has(key)) arr.push(0);
      if (arr.length > MAX_POINTS) arr.splice(0, arr.length - MAX_POINTS);
    }
    rates.points = Math.min(rates.points + 1, MAX_POINTS);
  }
  rates.prev = cur;
  rates.prevTime = now;
  drawChart();
}

function colorOf(key) {
  const transport = key.split(' ')[1];
  if (COLORS[transport]) return COLORS[transport];
  let h = 0;
  for (const ch of transport) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return EXTRA_COLORS[h % EXTRA_COLORS.length];
}

function drawChart() {
  const canvas = $('chart');
  canvas.dataset.points = String(rates.points);
  canvas.dataset.frames = String(rates.frames);
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(w * dpr)) canvas.width = Math.round(w * dpr);
  if (canvas.height !== Math.round(h * dpr)) canvas.height = Math.round(h * dpr);
  const g = canvas.getContext('2d');
  g.setTransform(dpr, 0, 0, dpr, 0, 0);
  g.clearRect(0, 0, w, h);

  const left = 44, right = 8, top = 8, bottom = 20;
  const pw = w - left - right, ph = h - top - bottom;
  let max = 0;
  for (const arr of rates.series.values()) for (const v of arr) max = Math.max(max, v);
  const ymax = niceCeil(Math.max(max, 4));

  g.font = '11px system-ui, sans-serif';
  g.fillStyle = '#6b7280';
  g.strokeStyle = '#e5e7eb';
  g.lineWidth = 1;
  g.textAlign = 'right';
  g.textBaseline = 'middle';
  for (let i = 0; i <= 4; i++) {
    const y = top + ph - (ph * i) / 4;
    g.beginPath(); g.moveTo(left, y + 0.5); g.lineTo(left + pw, y + 0.5); g.stroke();
    g.fillText(formatRate((ymax * i) / 4), left - 6, y);
  }
  g.textAlign = 'center';
  g.textBaseline = 'top';
  g.fillText('-60 s', left, top + ph + 5);
  g.fillText('now', left + pw - 10, top + ph + 5);

  const step = pw / (MAX_POINTS - 1);
  const keys = [...rates.series.keys()].sort();
  for (const key of keys) {
    const arr = rates.series.get(key);
    if (arr.length < 1) continue;
    g.strokeStyle = colorOf(key);
    g.lineWidth = 2;
    g.setLineDash(key.startsWith('out ') ? [5, 3] : []);
    g.beginPath();
    arr.forEach((v, i) => {
      const x = left + pw - (arr.length - 1 - i) * step;
      const y = top + ph - (v / ymax) * ph;
      if (i) g.lineTo(x, y); else g.moveTo(x, y);
    });
    g.stroke();
  }
  g.setLineDash([]);
  renderLegend(keys);
}

function renderLegend(keys) {
  const legend = $('legend');
  if (legend.dataset.keys === keys.join(',')) {
    keys.forEach((k, i) => {
      legend.children[i].lastChild.textContent = ' ' + formatRate(last(k)) + '/s';
    });
    return;
  }
  legend.dataset.keys = keys.join(',');
  legend.replaceChildren(...keys.map((k) => {
    const li = el('li');
    const sw = el('span', 'swatch' + (k.startsWith('out ') ? ' dashed' : ''));
    sw.style.borderColor = colorOf(k);
    li.append(sw, el('span', '', k), el('span', 'muted', ' ' + formatRate(last(k)) + '/s'));
    return li;
  }));
}

function last(key) {
  const arr = rates.series.get(key);
  return arr && arr.length ? arr[arr.length - 1] : 0;
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 4, 8, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function formatRate(v) {
  if (v >= 10000) return Math.round(v / 1000) + 'k';
  if (v >= 1000) return (v / 1000).toFixed(1) + 'k';
  return v >= 10 || Number.isInteger(v) ? String(Math.round(v)) : v.toFixed(1);
}

// ---- publish -----------------------------------------------------------------------

function showPublish(text, isError) {
  const p = $('publish-result');
  p.textContent = text;
  p.className = isError ? 'error' : 'ok';
}

function publishResult(f) {
  if (!pending.delete(f.id)) return;
  const seq = f.seq != null ? ': seq ' + f.seq : '';
  const receivers = f.receivers + (f.receivers === 1 ? ' receiver' : ' receivers');
  showPublish('published on “' + f.channel + '”' + seq + ', ' + receivers, false);
}

$('publish-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const channel = $('channel-input').value.trim();
  if (!channel) return showPublish('a channel name is needed', true);
  const id = nextId++;
  if (!send({ op: 'publish', channel, data: $('message-input').value, id })) {
    return showPublish('not connected', true);
  }
  pending.set(id, channel);
  showPublish('publishing…', false);
});

// ---- tail --------------------------------------------------------------------------

function subscribe(channel, since) {
  const op = { op: 'subscribe', channel };
  if (since) op.since = since;
  send(op);
}

function follow(channel) {
  if (channel === tail.channel) return;
  if (tail.channel) send({ op: 'unsubscribe', channel: tail.channel });
  tail.channel = channel;
  tail.lastSeq = 0;
  $('tail').replaceChildren();
  for (const tr of $('channels').children) {
    tr.classList.toggle('current', tr.dataset.channel === channel);
  }
  if (!channel) {
    $('tail-state').textContent = 'Not following a channel.';
    return;
  }
  $('tail-state').textContent = 'Subscribing to “' + channel + '”…';
  subscribe(channel, 0);
}

$('tail-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  follow($('tail-channel').value.trim());
});

function addTailRow(li) {
  const list = $('tail');
  list.prepend(li);   // newest first
  while (list.children.length > MAX_TAIL) list.lastChild.remove();
}

function tailMessage(f) {
  if (f.channel !== tail.channel || f.pattern) return;
  if (f.seq != null) {
    if (f.seq <= tail.lastSeq) return;   // already shown (a resume overlapping)
    tail.lastSeq = f.seq;
  }
  const li = el('li', 'msg');
  const data = f.data !== undefined ? f.data
    : '(binary ' + base64Length(f.data_base64 || '') + ' bytes)';
  li.append(el('span', 'seq', f.seq != null ? '#' + f.seq : ''),
    el('time', 'muted', clock(f.ts_ms)),
    el('span', f.data !== undefined ? 'data' : 'data binary', data));
  addTailRow(li);
}

function tailGap(f) {
  if (f.channel !== tail.channel) return;
  const text = f.reset ? 'hub restarted: sequence numbers reset'
    : 'gap: messages ' + f.from + '–' + f.to + ' are no longer held';
  if (f.reset) tail.lastSeq = 0;
  else if (f.to > tail.lastSeq) tail.lastSeq = f.to;
  addTailRow(el('li', 'gap', text));
}

function clock(ms) {
  const d = ms ? new Date(ms) : new Date();
  const two = (n) => String(n).padStart(2, '0');
  return two(d.getHours()) + ':' + two(d.getMinutes()) + ':' + two(d.getSeconds());
}

function base64Length(b64) {
  const pad = b64.endsWith('==') ? 2 : b64.endsWith('=') ? 1 : 0;
  return Math.floor((b64.length * 3) / 4) - pad;
}

window.addEventListener('resize', drawChart);
drawChart();
connect();
