// common.js - what every admin page (web/admin/*.html, served under /admin/) shares: the admin
// token and the API calls made with it, and safe rendering. One plain ES module, no
// dependencies; docs/admin.md.
//
//   import { api, el, setText, clearToken } from './common.js';
//   const res = await api('/v1/turns?limit=20');           // JSON, or throws ApiError
//   list.append(el('li', { class: 'hit' }, res.turns[0].query));
//
// The token: asked for once per browser tab (a form in the page, never window.prompt), kept in
// sessionStorage (gone when the tab closes), sent only as "Authorization: Bearer ...", never in
// a URL. A 401 forgets it and asks again, then repeats the request.
//
// Safe rendering: el() and setText() build nodes with createElement and textContent only. Model
// output, tool results, prompts and user text are data, never HTML: no innerHTML anywhere here,
// and the pages carry no inline script or style (a strict Content-Security-Policy applies).

const TOKEN_KEY = 'trilemma-admin-token';

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code || '';
  }
}

// ---- safe DOM building

// el('tr', { class: 'row', dataset: { id }, onclick: fn, title: 'x' }, child, 'text', [more]):
// strings and numbers become text nodes; null/undefined/false children are skipped; props
// starting with "on" are listeners; `class`, `dataset`, `aria-*`, `role` and plain properties
// are set as such. Nothing is ever parsed as HTML.
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = Array.isArray(v) ? v.filter(Boolean).join(' ') : v;
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k.startsWith('on') && typeof v === 'function') node.addEventListener(k.slice(2), v);
    else if (k.startsWith('aria-') || k === 'role' || k === 'for' || k === 'tabindex') node.setAttribute(k, String(v));
    else node[k] = v;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else if (c instanceof Node) node.append(c);
    else node.append(document.createTextNode(String(c)));
  }
}

// Replace node's content with text (a text node; never markup).
export function setText(node, text) {
  node.textContent = text === null || text === undefined ? '' : String(text);
  return node;
}

export function clear(node) {
  while (node.firstChild) node.firstChild.remove();
  return node;
}

// ---- formatting

const SYMBOL = { INR: '₹', USD: '$' };

// 123456 micro-units of INR -> "₹0.1235"; whole units get 2 decimals, small amounts 4 to 6.
export function fmtMoney(micros, currency) {
  if (micros === null || micros === undefined) return '—';
  const v = Number(micros) / 1e6;
  const digits = v === 0 ? 2 : v >= 1 ? 2 : v >= 0.01 ? 4 : 6;
  return (SYMBOL[currency] ?? (currency ? currency + ' ' : '')) + v.toFixed(digits);
}

export function fmtMs(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return '—';
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
}

// An RFC 3339 time -> "2026-12-07 15:49:00.123" in UTC (what the logs and the database say).
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return d.toISOString().replace('T', ' ').replace(/\.(\d{3})Z$/, '.$1');
}

export function shortId(id) {
  return id ? String(id).slice(0, 8) : '—';
}

// ---- the token

export function getToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}

export function clearToken() {
  try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* storage off: nothing kept */ }
  document.dispatchEvent(new CustomEvent('admin:token', { detail: { set: false } }));
}

function storeToken(t) {
  try { sessionStorage.setItem(TOKEN_KEY, t); } catch { /* storage off: asked per page */ }
  memoryToken = t;
  document.dispatchEvent(new CustomEvent('admin:token', { detail: { set: true } }));
}

let memoryToken = '';
let asking = null; // one form at a time, shared by every request waiting for a token

// The token, asking for it (a modal form) when there is none. note: why it is asked again.
export function ensureToken(note) {
  const t = getToken() || memoryToken;
  if (t && !note) return Promise.resolve(t);
  if (asking) return asking;
  asking = new Promise((resolve) => {
    const input = el('input', { type: 'password', id: 'admin-token-input', name: 'token', autocomplete: 'off',
      spellcheck: false, required: true, 'aria-describedby': 'admin-token-help' });
    const form = el('form', { class: 'token-form', method: 'dialog' },
      el('h2', null, 'Admin token'),
      el('p', { id: 'admin-token-help' }, note ||
        'Paste the server\'s TRILEMMA_ADMIN_TOKEN. It is kept in this tab only and sent as a bearer token.'),
      el('label', { for: 'admin-token-input' }, 'Token'),
      input,
      el('div', { class: 'token-actions' }, el('button', { type: 'submit', class: 'primary' }, 'Use token')));
    const dlg = el('dialog', { class: 'token-dialog', id: 'admin-token-dialog', 'aria-labelledby': 'admin-token-title' }, form);
    form.querySelector('h2').id = 'admin-token-title';
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      const v = input.value.trim();
      if (!v) return;
      storeToken(v);
      dlg.close();
      dlg.remove();
      asking = null;
      resolve(v);
    });
    dlg.addEventListener('cancel', (e) => e.preventDefault()); // Escape: nothing works without it
    document.body.append(dlg);
    dlg.showModal();
    input.focus();
  });
  return asking;
}

// ---- the API

// fetch(path) with the bearer token; JSON in and out. A 401 asks for the token again and
// repeats the request. Throws ApiError with the server's {"error","message"} otherwise.
export async function api(path, { method = 'GET', body } = {}) {
  if (/[?&](token|access_token)=/i.test(path)) throw new Error('the token never goes in a URL');
  let note = null;
  for (;;) {
    const token = await ensureToken(note);
    const headers = { Authorization: 'Bearer ' + token, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, { method, headers, cache: 'no-store', credentials: 'omit',
      body: body === undefined ? undefined : JSON.stringify(body) });
    if (r.status === 401) {
      try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
      memoryToken = '';
      note = 'That token was refused (401). Paste the current TRILEMMA_ADMIN_TOKEN.';
      continue;
    }
    let data = null;
    const text = await r.text();
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!r.ok) throw new ApiError(r.status, data?.error, data?.message || `${r.status} ${r.statusText}`);
    return data;
  }
}
