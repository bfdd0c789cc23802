// golden.js - the golden set's review queue: production turns added from the dashboard ("add to
// golden set", POST /v1/golden) arrive as candidates; a reviewer accepts them into the set or
// retires them (POST /v1/golden/cases/{id}). `trilemma-eval export` writes the accepted ones in
// the evals/ JSONL format. All text goes in with textContent (common.js).

import { api, el, setText, clear } from './common.js';

const REVIEWER_KEY = 'trilemma-golden-reviewer';
const $ = (id) => document.getElementById(id);

function traceLink(c) {
  const cj = c.case_json || {};
  if (!c.source_turn_id) return '—';
  const href = './#conv=' + encodeURIComponent(cj.conversation_id || '') + '&turn=' + encodeURIComponent(c.source_turn_id);
  return el('a', { href }, c.source_turn_id.slice(0, 8));
}

async function decide(c, status, row) {
  const reviewer = $('reviewer').value.trim() || 'dashboard';
  try {
    await api(`/v1/golden/cases/${c.id}`, { method: 'POST', body: { status, reviewed_by: reviewer } });
    row.remove();
    setText($('status'), `Case ${c.id} ${status}.`);
  } catch (e) {
    setText($('status'), `Case ${c.id} was not changed: ${e.message}`);
  }
}

function row(c, shown) {
  const cj = c.case_json || {};
  const tr = el('tr', { dataset: { id: String(c.id) } });
  const acts = el('div', { class: 'acts' });
  for (const [label, status] of [['Accept', 'accepted'], ['Retire', 'retired'], ['Back to candidates', 'candidate']]) {
    if (status === shown) continue;
    acts.append(el('button', { type: 'button', onclick: () => decide(c, status, tr) }, label));
  }
  tr.append(
    el('td', null, String(c.id)),
    el('td', { class: 'q' }, cj.query || ''),
    el('td', null, (cj.expected_query_type || '—') + ' · ' + (cj.expected_tools || []).join(', ')),
    el('td', { class: 'ref' }, (cj.reference_answer || '').slice(0, 600)),
    el('td', null, c.note || '', c.added_by ? el('div', { class: 'status' }, 'by ' + c.added_by) : null),
    el('td', null, traceLink(c)),
    el('td', null, acts));
  return tr;
}

async function load() {
  const status = $('status-filter').value;
  const res = await api('/v1/golden/cases?status=' + encodeURIComponent(status));
  const body = clear($('rows'));
  for (const c of res.cases) body.append(row(c, status));
  setText($('status'), `${res.cases.length} ${status} case${res.cases.length === 1 ? '' : 's'}.`);
}

document.addEventListener('DOMContentLoaded', () => {
  try { $('reviewer').value = sessionStorage.getItem(REVIEWER_KEY) || ''; } catch { /* storage off */ }
  $('filter').addEventListener('submit', (e) => {
    e.preventDefault();
    try { sessionStorage.setItem(REVIEWER_KEY, $('reviewer').value.trim()); } catch { /* off */ }
    load().catch((err) => setText($('status'), `Could not load the cases: ${err.message}`));
  });
  load().catch((err) => setText($('status'), `Could not load the cases: ${err.message}`));
});
