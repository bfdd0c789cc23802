// vibe.js - the vibe-check page: a panel member judges pairs of answers from two versions of the
// assistant, blind. The server picks the next pair for this voter and the side each answer is on
// (per voter, from a secret of the session), and resolves the side voted for to a version when
// it stores the vote: this page never knows which version wrote which answer, and shows none of
// their names. Votes: A / B / tie / both bad, by button or key (a, b, t, x; arrows for A and B).
// All text is set with textContent (common.js): answers are model output, never HTML.

import { api, el, setText, clear } from './common.js';

const VOTER_KEY = 'trilemma-vibe-voter';
const $ = (id) => document.getElementById(id);
let current = null; // { session, case_id }
let busy = false;

function hashSession() {
  const m = /(?:^|[#&])session=(\d+)/.exec(location.hash);
  return m ? m[1] : '';
}

async function loadSessions() {
  const res = await api('/v1/vibe/sessions');
  const sel = clear($('session'));
  for (const s of res.sessions) {
    // the session's number, set and size only: its name may say which versions it compares
    sel.append(el('option', { value: String(s.id) },
      `#${s.id} · ${s.set || 'golden set'} · ${s.items} pairs`));
  }
  if (hashSession()) sel.value = hashSession();
  if (!res.sessions.length) setText($('status'), 'No vibe-check session yet: make one with trilemma-eval vibe --upload.');
}

function show(res) {
  setText($('progress'), `${res.done} / ${res.total}`);
  const item = res.item;
  if (!item) {
    current = null;
    $('pair').hidden = true;
    setText($('status'), `All ${res.total} pairs of this session judged. Thank you!`);
    return;
  }
  current = { session: res.session, case_id: item.case_id };
  const hist = clear($('history'));
  for (const h of item.history || []) hist.append(el('li', null, typeof h === 'string' ? h : h.content));
  setText($('query'), item.query);
  setText($('left'), item.left);
  setText($('right'), item.right);
  for (const b of document.querySelectorAll('.votes button')) b.classList.remove('chosen');
  $('pair').hidden = false;
  setText($('status'), 'Which answer would a shopper rather get?');
}

async function next() {
  const voter = $('voter').value.trim();
  const sid = $('session').value;
  const res = await api(`/v1/vibe/sessions/${encodeURIComponent(sid)}/next?voter=${encodeURIComponent(voter)}`);
  show(res);
}

async function vote(choice) {
  if (!current || busy) return;
  busy = true;
  const btn = document.querySelector(`.votes button[data-choice="${choice}"]`);
  if (btn) btn.classList.add('chosen');
  try {
    await api(`/v1/vibe/sessions/${current.session}/votes`, { method: 'POST',
      body: { case_id: current.case_id, voter: $('voter').value.trim(), choice } });
  } catch (e) {
    if (e.status !== 409) { // 409: voted already (another tab); go on to the next pair
      setText($('status'), `The vote was not stored: ${e.message}`);
      busy = false;
      return;
    }
  }
  try { await next(); } finally { busy = false; }
}

const KEYS = { a: 'left', ArrowLeft: 'left', b: 'right', ArrowRight: 'right', t: 'tie', x: 'both_bad' };

document.addEventListener('keydown', (e) => {
  if (e.target.closest && e.target.closest('input, select, textarea, dialog')) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const choice = KEYS[e.key];
  if (choice && current) {
    e.preventDefault();
    vote(choice);
  }
});

document.addEventListener('DOMContentLoaded', async () => {
  try { $('voter').value = sessionStorage.getItem(VOTER_KEY) || ''; } catch { /* storage off */ }
  for (const b of document.querySelectorAll('.votes button')) b.addEventListener('click', () => vote(b.dataset.choice));
  $('setup').addEventListener('submit', async (e) => {
    e.preventDefault();
    const voter = $('voter').value.trim();
    if (!voter || !$('session').value) return;
    try { sessionStorage.setItem(VOTER_KEY, voter); } catch { /* storage off */ }
    history.replaceState(null, '', '#session=' + $('session').value);
    try { await next(); } catch (err) { setText($('status'), `Could not load a pair: ${err.message}`); }
    // the vote keys work outside the form: move the focus to the pair (the question)
    if (!$('pair').hidden) $('pair').focus();
  });
  try { await loadSessions(); } catch (err) { setText($('status'), `Could not load the sessions: ${err.message}`); }
});
