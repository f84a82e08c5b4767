// The sssn console: topology, live channel and system figures, dead letters with redrive,
// a pausable live tail, and one record's path. Everything comes from the HTTP API with the
// token the user gives (kept in this tab's session storage only).

import { Api, traceOf } from './api.js';
import { drawTopology, drawTrace } from './graph.js';

const $ = s => document.querySelector(s);
const POLL_MS = 1000;
let api = null;
let timer = null;
const last = { channels: new Map(), systems: new Map() };
const rates = { channels: new Map(), systems: new Map() };
const tail = { channel: null, paused: false, abort: null, after: null };

function status(text, error = false) {
  const s = $('#status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

function cell(tr, text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  tr.append(td);
  return td;
}

const fmt = n => (n >= 100 ? n.toFixed(0) : n.toFixed(1));
const age = s => (s == null ? '–' : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(1)} s`);

// Per-second rate of a counter from the previous poll.
function rate(store, key, value, now) {
  const prev = store.get(key);
  store.set(key, { value, now });
  if (!prev || now <= prev.now) return 0;
  return Math.max(0, (value - prev.value) * 1000 / (now - prev.now));
}

async function poll() {
  const now = performance.now();
  const topo = await api.get('/topology');
  const stats = await Promise.all(topo.channels.map(c =>
    api.get(`/channels/${encodeURIComponent(c.id)}/stats`).catch(() => null)));
  const figures = new Map();
  const body = $('#channels tbody');
  body.replaceChildren();
  topo.channels.forEach((c, i) => {
    const s = stats[i];
    const tr = document.createElement('tr');
    tr.dataset.channel = c.id;
    cell(tr, c.id);
    cell(tr, c.kind);
    if (!s) { cell(tr, 'stats not readable').colSpan = 9; body.append(tr); return; }
    const w = rate(last.channels, `${c.id}/w`, s.writes, now);
    const a = rate(last.channels, `${c.id}/a`, s.acknowledged, now);
    figures.set(c.id, `${fmt(w)} w/s · ${s.backlog} queued`);
    cell(tr, fmt(w), 'num writes-rate');
    cell(tr, String(s.writes), 'num writes');
    cell(tr, fmt(a), 'num acks-rate');
    cell(tr, String(s.backlog), 'num backlog');
    cell(tr, String(s.in_flight), 'num in-flight');
    cell(tr, age(s.oldest_unacked_age_secs), 'num');
    const lags = [...s.readers.map(r => `${r.reader}: ${r.lag}`),
      ...s.subscribers.map(r => `${r.reader}: ${r.queue_depth}`)];
    cell(tr, lags.join(', ') || '–');
    cell(tr, String(s.dead_lettered), 'num dead');
    const td = cell(tr, '');
    if (c.kind === 'work_queue') {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'browse-dead';
      b.dataset.channel = c.id;
      b.textContent = 'dead letters';
      b.onclick = () => showDead(c.id);
      td.append(b);
    }
    body.append(tr);
  });
  const sysBody = $('#systems tbody');
  sysBody.replaceChildren();
  const sysFig = new Map();
  for (const s of topo.systems) {
    const r = rate(last.systems, s.id, s.steps, now);
    sysFig.set(s.id, `${fmt(r)} steps/s`);
    const tr = document.createElement('tr');
    tr.dataset.system = s.id;
    cell(tr, s.id);
    cell(tr, s.state.toLowerCase(), `state-${s.state}`);
    cell(tr, fmt(r), 'num');
    cell(tr, String(s.steps), 'num');
    cell(tr, String(s.restarts), 'num');
    cell(tr, s.last_error || '–');
    sysBody.append(tr);
  }
  drawTopology($('#topology'), topo, {
    channel: id => figures.get(id) || '',
    system: id => sysFig.get(id) || '',
  });
  fillTailChoices(topo.channels);
  await recentTraces();
}

function fillTailChoices(channels) {
  const sel = $('#tail-channel');
  const ids = channels.filter(c => c.kind !== 'work_queue').map(c => c.id);
  if ([...sel.options].map(o => o.value).join() === ids.join()) return;
  sel.replaceChildren(...ids.map(id => new Option(id, id)));
  if (!tail.channel && ids.length) startTail(ids[0]);
}

function startTail(channel) {
  if (tail.abort) tail.abort.abort();
  if (channel !== tail.channel) { tail.after = null; $('#tail tbody').replaceChildren(); }
  tail.channel = channel;
  tail.paused = false;
  $('#tail-toggle').textContent = 'Pause';
  $('#tail-state').textContent = 'live';
  const abort = new AbortController();
  tail.abort = abort;
  api.events(channel, tail.after, abort.signal, addTailRow, ready => {
    if (tail.after == null) tail.after = Number(ready);
  }).catch(e => {
    if (!abort.signal.aborted) $('#tail-state').textContent = `stream ended: ${e.message}`;
  });
}

function addTailRow(seq, m) {
  tail.after = seq;
  const tr = document.createElement('tr');
  tr.dataset.seq = seq;
  const trace = traceOf(m);
  cell(tr, String(seq), 'num');
  cell(tr, new Date(m.timestamp * 1000).toLocaleTimeString());
  cell(tr, m.sender_id);
  cell(tr, trace ? trace.slice(0, 8) : '–');
  cell(tr, JSON.stringify(m.content), 'content');
  if (trace) tr.onclick = () => showTrace(trace);
  const body = $('#tail tbody');
  body.prepend(tr);
  while (body.rows.length > 200) body.deleteRow(-1);
}

function toggleTail() {
  if (tail.paused) {
    startTail(tail.channel); // resumes after the last message shown: nothing is skipped
  } else {
    tail.paused = true;
    if (tail.abort) tail.abort.abort();
    $('#tail-toggle').textContent = 'Resume';
    $('#tail-state').textContent = `paused after #${tail.after ?? 0}`;
  }
}

async function showTrace(id) {
  const t = await api.get(`/traces/${id}`).catch(e => ({ error: e.message, hops: [] }));
  $('#trace-id').textContent = t.error ? `${id}: ${t.error}` : id;
  drawTrace($('#trace'), t.hops);
  const body = $('#hops tbody');
  body.replaceChildren();
  const t0 = t.hops.length ? t.hops[0].at_ms : 0;
  t.hops.forEach((h, i) => {
    const next = t.hops[i + 1];
    const tr = document.createElement('tr');
    tr.className = `hop-${h.kind}`;
    cell(tr, `+${h.at_ms - t0}`, 'num');
    cell(tr, h.kind + (h.attempt ? ` #${h.attempt}` : ''));
    cell(tr, h.channel);
    cell(tr, h.actor, 'actor');
    cell(tr, next ? `${next.at_ms - h.at_ms} ms` : '–', 'num');
    cell(tr, h.message_id);
    body.append(tr);
  });
}

async function recentTraces() {
  const { traces } = await api.get('/traces?limit=10');
  const ul = $('#recent-traces');
  ul.replaceChildren(...traces.map(t => {
    const li = document.createElement('li');
    const a = document.createElement('a');
    a.href = '#';
    a.textContent = `${t.trace_id.slice(0, 12)}… ${t.hops} hops, ${t.last_ms - t.first_ms} ms`;
    a.onclick = e => { e.preventDefault(); showTrace(t.trace_id); };
    li.append(a);
    return li;
  }));
}

async function showDead(channel) {
  $('#dead').hidden = false;
  $('#dead-channel').textContent = channel;
  const rows = $('#dead-rows');
  rows.replaceChildren();
  let list;
  try {
    list = (await api.get(`/channels/${encodeURIComponent(channel)}/dead-letters?limit=100`)).dead_letters;
  } catch (e) {
    const tr = document.createElement('tr');
    cell(tr, e.status === 403 ? 'Only an admin may browse dead letters.' : e.message).colSpan = 6;
    rows.append(tr);
    return;
  }
  for (const d of list) {
    const tr = document.createElement('tr');
    tr.dataset.id = d.message.id;
    cell(tr, String(d.seq), 'num');
    cell(tr, d.message.id);
    cell(tr, String(d.attempts), 'num');
    cell(tr, d.reason);
    cell(tr, JSON.stringify(d.message.content), 'content');
    const b = document.createElement('button');
    b.type = 'button';
    b.className = 'redrive';
    b.dataset.id = d.message.id;
    b.textContent = 'redrive';
    b.onclick = () => redrive(channel, d.message.id);
    cell(tr, '').append(b);
    rows.append(tr);
  }
  if (!list.length) { const tr = document.createElement('tr'); cell(tr, 'No dead letters.').colSpan = 6; rows.append(tr); }
}

// Redrive only after the user confirms in a dialog.
function redrive(channel, id) {
  const dialog = $('#confirm');
  $('#confirm-text').textContent = `Put dead letter ${id} back into ${channel}?`;
  dialog.returnValue = '';
  dialog.onclose = async () => {
    if (dialog.returnValue !== 'yes') return;
    try {
      const r = await api.post(`/channels/${encodeURIComponent(channel)}/redrive`, { message_ids: [id] });
      status(`Redriven: ${r.redriven} message(s) back in ${channel}.`);
    } catch (e) {
      status(`Redrive failed: ${e.message}`, true);
    }
    await showDead(channel);
  };
  dialog.showModal();
}

async function connect(token) {
  api = new Api(token);
  try {
    await api.get('/topology');
  } catch (e) {
    status(e.status === 401 ? 'That token is not accepted.' : e.message, true);
    api = null;
    return;
  }
  sessionStorage.setItem('sssn-token', token);
  $('#main').hidden = false;
  $('#logout').hidden = false;
  status('Connected.');
  const loop = async () => {
    try { await poll(); } catch (e) { status(`Refresh failed: ${e.message}`, true); }
    timer = setTimeout(loop, POLL_MS);
  };
  loop();
}

$('#login').addEventListener('submit', e => {
  e.preventDefault();
  connect($('#token').value.trim());
});
$('#logout').addEventListener('click', () => {
  sessionStorage.removeItem('sssn-token');
  location.reload();
});
$('#tail-toggle').addEventListener('click', toggleTail);
$('#tail-channel').addEventListener('change', e => startTail(e.target.value));
$('#dead-close').addEventListener('click', () => { $('#dead').hidden = true; });
const saved = sessionStorage.getItem('sssn-token');
if (saved) connect(saved);
