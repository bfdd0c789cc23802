// admin.js - the debugging dashboard (web/admin/index.html; docs/admin.md): search turns, open a
// conversation and its turns, read a turn's trace as a waterfall of spans with each span's
// prompt, response, tool input and output and cost, add a turn to the golden set, and see the
// anomaly flags over time. Reads GET /v1/turns, /v1/conversations/{id}/trace, /ledger and
// /v1/flags, writes POST /v1/golden, all through common.js (bearer token, safe rendering).
import { api, ApiError, clear, clearToken, el, ensureToken, fmtMoney, fmtMs, fmtTime, getToken,
  setText, shortId } from './common.js';

const $ = (id) => document.getElementById(id);

const state = {
  hits: [],        // the search results
  sel: -1,         // selected result row
  conv: null,      // {conversation_id, user, turns: [trace...]}
  ledger: null,    // the conversation's ledger (by turn id)
  turn: -1,        // index in conv.turns
  rows: [],        // the waterfall's spans in display order
  span: -1,        // selected span row
  zone: 'results', // where j/k move: results | spans
};

// ---- helpers

function statusText(node, text, kind) {
  setText(node, text);
  node.className = 'status' + (kind ? ' ' + kind : '');
}

function errText(e) {
  if (e instanceof ApiError) return `${e.message} (HTTP ${e.status})`;
  return e?.message || String(e);
}

// a stable colour class for a flag kind or span kind (classes, never inline colours)
function hue(name) {
  let h = 0;
  for (const c of String(name)) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return 'c' + (h % 8);
}

function flagBadges(flags) {
  return (flags || []).map((f) => el('span', { class: ['badge', 'flag', hue(f)], title: f }, f));
}

// ---- search

function searchParams() {
  const f = new FormData($('search'));
  const p = new URLSearchParams();
  for (const [k, v0] of f.entries()) {
    let v = String(v0).trim();
    if (!v) continue;
    if (k === 'from' || k === 'to') v = (v.length === 16 ? v + ':00' : v) + 'Z'; // the form says UTC
    p.set(k, v);
  }
  return p;
}

async function search() {
  statusText($('search-status'), 'searching…');
  try {
    const res = await api('/v1/turns?' + searchParams().toString());
    state.hits = res.turns || [];
    renderHits();
    const n = state.hits.length;
    statusText($('search-status'), n === 0 ? 'no turn matches' :
      `${n} turn${n === 1 ? '' : 's'}${res.more ? ` (more: narrow the search or raise the limit above ${res.limit})` : ''}, newest first`);
  } catch (e) {
    statusText($('search-status'), errText(e), 'error');
  }
}

function renderHits() {
  const body = clear($('results').tBodies[0]);
  state.hits.forEach((t, i) => {
    const tr = el('tr', { tabindex: -1, dataset: { i: String(i) }, class: t.status !== 'ok' ? 'bad' : null,
      onclick: () => { selectHit(i); openHit(i); } },
      el('td', { class: 'mono' }, fmtTime(t.started_at)),
      el('td', { class: 'mono', title: t.conversation_id }, shortId(t.conversation_id)),
      el('td', null, t.user ?? '—'),
      el('td', { class: 'query', title: t.query || '' }, t.query || ''),
      el('td', null, t.query_type ?? '—'),
      el('td', null, t.agent ?? '—'),
      el('td', { class: 'mono' }, t.model ? (t.provider ? t.provider + '/' : '') + t.model : '—'),
      el('td', { class: 'num' }, t.tool_calls ?? '—'),
      el('td', { class: 'num' }, fmtMs(t.ttft_ms)),
      el('td', { class: 'num' }, fmtMs(t.total_ms)),
      el('td', { class: 'num' }, fmtMoney(t.cost_micros, t.currency)),
      el('td', null, flagBadges(t.flags)),
      el('td', null, el('span', { class: ['badge', 'st-' + t.status] }, t.status)));
    body.append(tr);
  });
  state.sel = -1;
}

function selectHit(i) {
  const rows = $('results').tBodies[0].rows;
  if (!rows.length) return;
  i = Math.max(0, Math.min(rows.length - 1, i));
  if (state.sel >= 0 && rows[state.sel]) rows[state.sel].classList.remove('sel');
  state.sel = i;
  rows[i].classList.add('sel');
  rows[i].scrollIntoView({ block: 'nearest' });
  state.zone = 'results';
}

function openHit(i) {
  const t = state.hits[i];
  if (t) openConversation(t.conversation_id, t.turn_id);
}

// ---- a conversation and its turns

async function openConversation(cid, turnId) {
  $('detail').hidden = false;
  setText($('conv-title'), 'Conversation ' + cid);
  setText($('conv-meta'), 'loading the trace…');
  clear($('conv-turns'));
  $('turn').hidden = true;
  history.replaceState(null, '', '#conv=' + encodeURIComponent(cid) + (turnId ? '&turn=' + encodeURIComponent(turnId) : ''));
  try {
    const [conv, ledger] = await Promise.all([
      api(`/v1/conversations/${encodeURIComponent(cid)}/trace`),
      api(`/v1/conversations/${encodeURIComponent(cid)}/ledger`).catch(() => null),
    ]);
    state.conv = conv;
    state.ledger = new Map((ledger?.turns || []).map((t) => [t.turn_id, t]));
  } catch (e) {
    setText($('conv-meta'), 'cannot load the trace: ' + errText(e));
    return;
  }
  const turns = state.conv.turns || [];
  setText($('conv-meta'), `user ${state.conv.user ?? '—'} · ${turns.length} turn${turns.length === 1 ? '' : 's'}`);
  turns.forEach((t, i) => {
    const root = rootSpan(t);
    $('conv-turns').append(el('li', null, el('button', { type: 'button', class: ['turn-chip', t.status !== 'ok' ? 'bad' : null],
      dataset: { turn: t.turn_id }, onclick: () => showTurn(i) },
      el('b', null, '#' + (i + 1)), ' ', fmtTime(t.started_at).slice(11), ' · ', t.query_type ?? '—',
      root ? ' · ' + fmtMs((root.end_unix_us - root.start_unix_us) / 1000) : '',
      t.flags?.length ? el('span', { class: 'badge flag c1' }, t.flags.length + ' flag' + (t.flags.length === 1 ? '' : 's')) : null)));
  });
  const at = Math.max(0, turns.findIndex((t) => t.turn_id === turnId));
  if (turns.length) showTurn(at);
  else setText($('conv-meta'), 'no traced turn in this conversation');
}

function rootSpan(t) {
  return (t.spans || []).find((s) => !s.parent_span_id) || null;
}

// the user's text of a turn: from the search hit, or the last user message of its first prompt
function turnQuery(t) {
  const hit = state.hits.find((h) => h.turn_id === t.turn_id);
  if (hit?.query) return hit.query;
  for (const s of t.spans || []) {
    const msgs = parseMessages(s.attributes?.['gen_ai.input.messages']);
    const users = (msgs || []).filter((m) => m.role === 'user');
    if (users.length) return messageText(users[users.length - 1]);
  }
  return '';
}

function showTurn(i) {
  const turns = state.conv?.turns || [];
  if (i < 0 || i >= turns.length) return;
  state.turn = i;
  const t = turns[i];
  for (const b of $('conv-turns').querySelectorAll('.turn-chip')) b.classList.toggle('sel', b.dataset.turn === t.turn_id);
  history.replaceState(null, '', '#conv=' + encodeURIComponent(t.conversation_id) + '&turn=' + encodeURIComponent(t.turn_id));
  $('turn').hidden = false;
  $('turn').dataset.turnId = t.turn_id;
  setText($('turn-title'), turnQuery(t) || 'Turn ' + t.turn_id);
  const root = rootSpan(t);
  setText($('turn-meta'), [
    'turn ' + t.turn_id, fmtTime(t.started_at), t.status,
    t.query_type ? 'type ' + t.query_type : null, t.agent ? 'agent ' + t.agent : null,
    root ? 'total ' + fmtMs((root.end_unix_us - root.start_unix_us) / 1000) : null,
    'capture ' + (t.capture || '—'), 'trace ' + (t.trace_id || '—'),
  ].filter(Boolean).join(' · '));
  const flags = clear($('turn-flags'));
  flags.append(...flagBadges(t.flags));
  setText($('golden-status'), '');
  $('golden').elements.note.value = '';
  renderWaterfall(t);
  renderLedger(t);
}

// ---- the waterfall

// spans in tree order (children after their parent, by start), each with its depth
function treeOrder(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, { s, kids: [] }]));
  const roots = [];
  for (const n of byId.values()) {
    const p = n.s.parent_span_id && byId.get(n.s.parent_span_id);
    if (p && p !== n) p.kids.push(n); else roots.push(n);
  }
  const out = [];
  const seen = new Set();
  const walk = (n, depth) => {
    if (seen.has(n)) return; // a parent cycle in bad data: show each span once
    seen.add(n);
    out.push({ span: n.s, depth });
    n.kids.sort((a, b) => a.s.start_unix_us - b.s.start_unix_us).forEach((k) => walk(k, depth + 1));
  };
  roots.sort((a, b) => a.s.start_unix_us - b.s.start_unix_us).forEach((r) => walk(r, 0));
  return out;
}

function renderWaterfall(t) {
  const list = clear($('waterfall'));
  const axis = clear($('axis'));
  const spans = t.spans || [];
  state.rows = treeOrder(spans);
  state.span = -1;
  clear($('span')).append(el('p', { class: 'hint' }, 'Select a span (click, or j/k) to see its prompt, response, tool input and output, and cost.'));
  if (!spans.length) {
    statusText($('trace-status'), 'this turn has no spans (tracing off or sampled out)');
    return;
  }
  statusText($('trace-status'), `${spans.length} span${spans.length === 1 ? '' : 's'}`);
  const t0 = Math.min(...spans.map((s) => s.start_unix_us));
  const t1 = Math.max(...spans.map((s) => s.end_unix_us));
  const total = Math.max(1, t1 - t0);
  for (const f of [0, 0.25, 0.5, 0.75, 1]) {
    const tick = el('span', { class: 'tick' }, fmtMs((total * f) / 1000));
    tick.style.left = (f * 100).toFixed(3) + '%';
    axis.append(tick);
  }
  state.rows.forEach(({ span: s, depth }, i) => {
    const dur = Math.max(0, s.end_unix_us - s.start_unix_us);
    const left = ((s.start_unix_us - t0) / total) * 100;
    const width = Math.max(0.25, (dur / total) * 100);
    const bar = el('span', { class: ['bar', 'k-' + (s.kind || 'other'), s.status === 'error' ? 'err' : null] });
    bar.style.left = left.toFixed(3) + '%';
    bar.style.width = Math.min(width, 100 - left).toFixed(3) + '%';
    const label = el('span', { class: 'dur' }, fmtMs(dur / 1000));
    // the duration after its bar; near the right edge inside a long bar, or before a short one
    if (left + width <= 85) label.style.left = (left + width).toFixed(3) + '%';
    else if (width >= 10) { label.classList.add('inside'); bar.append(label); }
    else label.style.right = (100 - left).toFixed(3) + '%';
    const name = el('span', { class: 'name', title: s.name },
      el('span', { class: ['kind', 'k-' + (s.kind || 'other')] }, s.kind || '?'), ' ', s.name,
      s.status === 'error' ? el('span', { class: 'badge st-error' }, 'error') : null);
    name.style.paddingLeft = (6 + depth * 14) + 'px';
    const row = el('li', { class: 'span-row', tabindex: -1, dataset: { i: String(i), spanId: s.span_id, kind: s.kind || '' },
      'aria-label': `${s.name}, ${fmtMs(dur / 1000)}`, onclick: () => selectSpan(i, true) },
      name, el('span', { class: 'lane' }, bar, label.parentNode ? null : label));
    list.append(row);
  });
}

function selectSpan(i, focus) {
  const rows = $('waterfall').children;
  if (!rows.length) return;
  i = Math.max(0, Math.min(rows.length - 1, i));
  if (state.span >= 0 && rows[state.span]) rows[state.span].classList.remove('sel');
  state.span = i;
  state.zone = 'spans';
  rows[i].classList.add('sel');
  rows[i].scrollIntoView({ block: 'nearest' });
  if (focus) rows[i].focus({ preventScroll: true });
  renderSpan(state.rows[i].span);
}

// ---- one span's attributes

function parseMessages(v) {
  if (v === undefined || v === null) return null;
  if (Array.isArray(v)) return v;
  try { const x = JSON.parse(v); return Array.isArray(x) ? x : null; } catch { return null; }
}

// text of an OTel GenAI message ({role, parts:[{type:"text",content}...]}) or {role, content}
function messageText(m) {
  if (typeof m.content === 'string') return m.content;
  return (m.parts || []).filter((p) => p.type === 'text').map((p) => p.content ?? '').join('');
}

function pretty(v) {
  if (typeof v !== 'string') return JSON.stringify(v, null, 2);
  try { return JSON.stringify(JSON.parse(v), null, 2); } catch { return v; }
}

function messagesBlock(title, raw) {
  const msgs = parseMessages(raw);
  if (!msgs) return raw === undefined ? null : section(title, el('pre', { class: 'text' }, String(raw)));
  return section(title, msgs.map((m) => {
    const parts = [];
    const text = messageText(m);
    if (text) parts.push(el('pre', { class: 'text' }, text));
    for (const p of m.parts || []) {
      if (p.type === 'tool_call') parts.push(el('div', { class: 'call' }, el('b', null, '→ ' + (p.name || 'tool')), el('pre', { class: 'json' }, pretty(p.arguments ?? {}))));
      else if (p.type === 'tool_call_response') parts.push(el('div', { class: 'call' }, el('b', null, '← result ' + (p.id || '')), el('pre', { class: 'json' }, pretty(p.response ?? p.result ?? ''))));
    }
    if (m.finish_reason) parts.push(el('p', { class: 'meta' }, 'finish: ' + m.finish_reason));
    const role = m.role || (title === 'System' ? 'system' : '?'); // system instructions: bare parts
    return el('div', { class: ['msg', 'role-' + role] }, el('span', { class: 'role' }, role), parts);
  }));
}

function section(title, ...content) {
  return el('section', { class: 'attr-sec' }, el('h5', null, title), content);
}

const SHOWN = new Set(['gen_ai.input.messages', 'gen_ai.output.messages', 'gen_ai.system_instructions',
  'gen_ai.tool.call.arguments', 'gen_ai.tool.call.result', 'trilemma.cost.micros', 'trilemma.cost.currency']);

function renderSpan(s) {
  const box = clear($('span'));
  const a = s.attributes || {};
  const t = state.conv.turns[state.turn];
  const root = rootSpan(t);
  const off = root ? (s.start_unix_us - root.start_unix_us) / 1000 : 0;
  box.append(el('header', null, el('h4', null, s.name),
    el('p', { class: 'meta' }, [s.kind, s.status, 'starts at +' + fmtMs(off), 'takes ' + fmtMs((s.end_unix_us - s.start_unix_us) / 1000), 'span ' + s.span_id].join(' · ')),
    s.status_message ? el('p', { class: 'error-msg' }, s.status_message) : null));
  if ('trilemma.cost.micros' in a) {
    box.append(section('Cost', el('p', { class: 'cost' }, fmtMoney(a['trilemma.cost.micros'], a['trilemma.cost.currency']),
      a['gen_ai.usage.input_tokens'] !== undefined ? ` · ${a['gen_ai.usage.input_tokens']} in` : '',
      a['gen_ai.usage.cache_read.input_tokens'] ? ` (${a['gen_ai.usage.cache_read.input_tokens']} cached)` : '',
      a['gen_ai.usage.output_tokens'] !== undefined ? ` · ${a['gen_ai.usage.output_tokens']} out` : '')));
  }
  if (a['gen_ai.system_instructions'] !== undefined) box.append(messagesBlock('System', a['gen_ai.system_instructions']));
  const prompt = messagesBlock('Prompt', a['gen_ai.input.messages']);
  const response = messagesBlock('Response', a['gen_ai.output.messages']);
  if (prompt) box.append(prompt);
  if (response) box.append(response);
  if (a['gen_ai.tool.call.arguments'] !== undefined) box.append(section('Tool input', el('pre', { class: 'json' }, pretty(a['gen_ai.tool.call.arguments']))));
  if (a['gen_ai.tool.call.result'] !== undefined) box.append(section('Tool output', el('pre', { class: 'json' }, pretty(a['gen_ai.tool.call.result']))));
  if (t.capture === 'metadata' && (s.kind === 'model' || s.kind === 'tool')) {
    box.append(el('p', { class: 'hint' }, 'Prompts, responses and tool payloads are not stored at capture level "metadata".'));
  }
  const rest = Object.keys(a).filter((k) => !SHOWN.has(k)).sort();
  if (rest.length) {
    box.append(section('Attributes', el('table', { class: 'attrs' }, el('tbody', null, rest.map((k) =>
      el('tr', null, el('th', null, k), el('td', null, typeof a[k] === 'string' ? a[k] : JSON.stringify(a[k]))))))));
  }
}

// ---- cost lines of the turn (the ledger)

function renderLedger(t) {
  const body = clear($('ledger').tBodies[0]);
  const lt = state.ledger?.get(t.turn_id);
  if (!lt) {
    body.append(el('tr', null, el('td', { colSpan: 5, class: 'meta' }, 'no cost lines')));
    return;
  }
  for (const l of lt.lines) {
    body.append(el('tr', null, el('td', { class: 'num' }, l.line), el('td', null, l.kind), el('td', null, l.description),
      el('td', { class: 'mono' }, l.model ? (l.provider ? l.provider + '/' : '') + l.model : '—'),
      el('td', { class: 'num' }, fmtMoney(l.amount_micros, l.currency))));
  }
  body.append(el('tr', { class: 'total' }, el('td', { colSpan: 4 }, 'total'), el('td', { class: 'num' }, fmtMoney(lt.total_micros, lt.currency))));
}

// ---- the golden set

async function addGolden(e) {
  e?.preventDefault();
  const tid = $('turn').dataset.turnId;
  if (!tid || $('turn').hidden) return;
  const note = $('golden').elements.note.value.trim();
  statusText($('golden-status'), 'adding…');
  $('golden-add').disabled = true;
  try {
    const r = await api('/v1/golden', { method: 'POST', body: note ? { turn_id: tid, note } : { turn_id: tid } });
    statusText($('golden-status'), `added as candidate case #${r.id}`, 'ok');
  } catch (err) {
    statusText($('golden-status'), err instanceof ApiError && err.status === 409 ? err.message : 'not added: ' + errText(err),
      err?.status === 409 ? 'warn' : 'error');
  } finally {
    $('golden-add').disabled = false;
  }
}

// ---- flags over time

async function loadFlags(e) {
  e?.preventDefault();
  const f = new FormData($('flags-form'));
  const p = new URLSearchParams();
  for (const [k, v] of f.entries()) if (String(v).trim()) p.set(k, String(v).trim());
  statusText($('flags-status'), 'loading…');
  let res;
  try {
    res = await api('/v1/flags?' + p.toString());
  } catch (err) {
    statusText($('flags-status'), errText(err), 'error');
    return;
  }
  const counts = Object.entries(res.counts || {}).sort((a, b) => b[1] - a[1]);
  const sum = counts.reduce((n, [, c]) => n + c, 0);
  statusText($('flags-status'), `${sum} flag${sum === 1 ? '' : 's'} from ${res.from} to ${res.to}`);
  fillFlagKinds(counts.map(([k]) => k));
  const cb = clear($('flag-counts').tBodies[0]);
  for (const [k, n] of counts) {
    const bar = el('span', { class: ['share', hue(k)] });
    bar.style.width = (sum ? (n / sum) * 100 : 0).toFixed(1) + '%';
    cb.append(el('tr', { class: 'click', onclick: () => { $('search').elements.flag.value = k; show('turns'); search(); } },
      el('td', null, el('span', { class: ['badge', 'flag', hue(k)] }, k)), el('td', { class: 'num' }, n), el('td', { class: 'share-cell' }, bar)));
  }
  renderDays(res.by_day || []);
  const lb = clear($('flag-list').tBodies[0]);
  for (const x of res.flags || []) {
    lb.append(el('tr', { class: 'click', onclick: () => { show('turns'); openConversation(x.conversation_id, x.turn_id); } },
      el('td', { class: 'mono' }, fmtTime(x.at)), el('td', null, el('span', { class: ['badge', 'flag', hue(x.kind)] }, x.kind)),
      el('td', { class: 'mono' }, shortId(x.turn_id)), el('td', { class: 'mono' }, shortId(x.conversation_id))));
  }
}

// stacked bars, one per day, one segment per kind (heights by CSSOM: no inline style markup)
function renderDays(byDay) {
  const days = new Map();
  for (const r of byDay) {
    if (!days.has(r.day)) days.set(r.day, []);
    days.get(r.day).push(r);
  }
  const max = Math.max(1, ...[...days.values()].map((rs) => rs.reduce((n, r) => n + r.n, 0)));
  const box = clear($('flag-days'));
  const kinds = new Set();
  for (const [day, rs] of [...days.entries()].sort()) {
    const total = rs.reduce((n, r) => n + r.n, 0);
    const stack = el('span', { class: 'stack' });
    stack.style.height = ((total / max) * 100).toFixed(1) + '%';
    for (const r of rs) {
      kinds.add(r.kind);
      const seg = el('span', { class: ['seg', hue(r.kind)], title: `${r.kind}: ${r.n}` });
      seg.style.height = ((r.n / total) * 100).toFixed(1) + '%';
      stack.append(seg);
    }
    box.append(el('div', { class: 'day', title: `${day}: ${total}` }, el('span', { class: 'n' }, total), stack, el('span', { class: 'd' }, day.slice(5))));
  }
  if (!days.size) box.append(el('p', { class: 'meta' }, 'no flags in this range'));
  const legend = clear($('flag-legend'));
  for (const k of kinds) legend.append(el('span', { class: ['badge', 'flag', hue(k)] }, k), ' ');
}

function fillFlagKinds(kinds) {
  const dl = $('flag-kinds');
  const have = new Set([...dl.options].map((o) => o.value));
  for (const k of kinds) if (!have.has(k)) dl.append(el('option', { value: k }));
}

// ---- views, keys, start

function show(view) {
  $('view-turns').hidden = view !== 'turns';
  $('view-flags').hidden = view !== 'flags';
  for (const [name, tab] of [['turns', $('tab-turns')], ['flags', $('tab-flags')]]) {
    if (name === view) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  if (view === 'flags' && !$('flag-counts').tBodies[0].rows.length) loadFlags();
}

function typing(e) {
  const t = e.target;
  return t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement || t instanceof HTMLSelectElement || t?.isContentEditable;
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey || document.querySelector('dialog[open]')) return;
  if (e.key === 'Escape') {
    if (typing(e)) { e.target.blur(); return; }
    if (state.zone === 'spans' && state.span >= 0) { state.zone = 'results'; $('waterfall').children[state.span]?.classList.remove('sel'); state.span = -1; return; }
    if (!$('detail').hidden) { $('detail').hidden = true; history.replaceState(null, '', '#'); $('results').tBodies[0].rows[state.sel]?.focus(); }
    return;
  }
  if (typing(e)) return;
  const turnsView = !$('view-turns').hidden;
  const k = e.key;
  let handled = true;
  if (k === '/') { show('turns'); $('search').elements.conversation_id.focus(); }
  else if (k === 't') show('turns');
  else if (k === 'f') show('flags');
  else if (!turnsView) handled = false;
  else if (k === 'j' || k === 'ArrowDown') state.zone === 'spans' ? selectSpan(state.span + 1, true) : selectHit(state.sel + 1);
  else if (k === 'k' || k === 'ArrowUp') state.zone === 'spans' ? selectSpan(state.span - 1, true) : selectHit(state.sel - 1);
  else if (k === 'Enter' && state.zone === 'results' && state.sel >= 0) openHit(state.sel);
  else if (k === 'Enter' && state.zone === 'results' && !$('turn').hidden) selectSpan(0, true);
  else if (k === 'ArrowRight' && !$('turn').hidden && state.zone === 'results') selectSpan(0, true);
  else if (k === ']') showTurn(state.turn + 1);
  else if (k === '[') showTurn(state.turn - 1);
  else if (k === 'g') addGolden();
  else handled = false;
  if (handled) e.preventDefault();
}

function tokenState() {
  setText($('token-state'), getToken() ? 'token set (this tab)' : 'no token');
}

async function start() {
  document.addEventListener('keydown', onKey);
  document.addEventListener('admin:token', tokenState);
  $('search').addEventListener('submit', (e) => { e.preventDefault(); search(); });
  $('golden').addEventListener('submit', addGolden);
  $('flags-form').addEventListener('submit', loadFlags);
  $('tab-turns').addEventListener('click', (e) => { e.preventDefault(); show('turns'); history.replaceState(null, '', '#'); });
  $('tab-flags').addEventListener('click', (e) => { e.preventDefault(); show('flags'); history.replaceState(null, '', '#flags'); });
  $('forget-token').addEventListener('click', () => { clearToken(); ensureToken().then(tokenState); });
  const today = new Date().toISOString().slice(0, 10);
  $('flags-form').elements.to.value = today;
  $('flags-form').elements.from.value = new Date(Date.now() - 13 * 86400e3).toISOString().slice(0, 10);
  tokenState();
  await ensureToken();
  tokenState();
  const h = new URLSearchParams(location.hash.slice(1));
  if (location.hash === '#flags') show('flags');
  search();
  if (h.get('conv')) openConversation(h.get('conv'), h.get('turn'));
}

start();
