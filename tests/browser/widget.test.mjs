// widget.test.mjs - the chat widget (web/widget.js) in a real browser: Debian's headless
// Chromium driven by playwright-core, against real trilemmad processes that this file starts
// (servers.mjs): the simulated provider for model answers (its [[sim:...]] directives make the
// "model" echo exact text, stall mid-answer or fail), and a private PostgreSQL so that resume works.
//
// Started by tests/integration/run_browser.py (ctest label `browser`); by hand:
//   TRILEMMA_SERVER=build/trilemmad TRILEMMA_SIM=build/trilemma-sim TRILEMMA_SOURCE=$PWD \
//   TRILEMMA_ARTIFACTS=build/artifacts node --test tests/browser/widget.test.mjs
//
// No sleeps: every wait is for a DOM state or a widget event (trilemma:delta, trilemma:turn-end),
// with a bound that only turns a hang into a failure. Screenshots go to $TRILEMMA_ARTIFACTS.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createHmac, randomBytes } from 'node:crypto';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Postgres, Sim, Trilemmad, ARTIFACTS, IN_CI, freePort } from './servers.mjs';

const SERVER = process.env.TRILEMMA_SERVER;
const SIM = process.env.TRILEMMA_SIM;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BOUND_MS = 30000;

let context;
let profile;
let pg = null;
let storeError = null;
let sim;
let srv; // trilemmad with the simulated provider (and the store when there is one)
let storeEnv = {};

// Installed in every page before its scripts run: a transparent wrapper around WebSocket that
// records what the page sends and receives and can cut incoming traffic after a given delta
// (what a client sees of a connection that dies mid-answer). The widget itself is unchanged.
function wsProbe() {
  const Native = window.WebSocket;
  const tc = (window.__tc = { sockets: 0, urls: [], sent: [], received: [], cutAfterSeq: null, cut: false });
  class Probe extends Native {
    constructor(url, protocols) {
      super(url, protocols);
      tc.urls.push(String(url));
      this.__n = ++tc.sockets;
      this.__dropping = false;
    }
    send(data) {
      tc.sent.push({ socket: this.__n, data: String(data) });
      return super.send(data);
    }
    get onmessage() { return super.onmessage; }
    set onmessage(fn) {
      super.onmessage = fn && ((e) => {
        let ev = null;
        try { ev = JSON.parse(e.data); } catch { /* not JSON */ }
        tc.received.push({ socket: this.__n, ev, dropped: this.__dropping });
        if (this.__dropping) return;
        fn.call(this, e);
        if (ev && ev.type === 'delta' && tc.cutAfterSeq !== null && ev.seq >= tc.cutAfterSeq) {
          tc.cutAfterSeq = null;
          this.__dropping = true;
          tc.cut = true;
        }
      });
    }
  }
  window.WebSocket = Probe;
}

before(async () => {
  assert.ok(SERVER && existsSync(SERVER), 'TRILEMMA_SERVER must name the trilemmad binary');
  assert.ok(SIM && existsSync(SIM), 'TRILEMMA_SIM must name the trilemma-sim binary');
  try {
    pg = await new Postgres().start();
    storeEnv = { DATABASE_URL: pg.url };
  } catch (e) {
    if (IN_CI) throw e;
    storeError = e.message.split('\n')[0];
    pg = null;
  }
  sim = await new Sim(SIM, ['--ttft-ms', '30', '--ttft-jitter-ms', '0', '--tps', '40']).start();
  srv = await new Trilemmad(SERVER, {
    name: 'widget',
    env: { TRILEMMA_MODEL: 'openai/sim-shopper', OPENAI_BASE_URL: `http://127.0.0.1:${sim.port}/v1`, ...storeEnv },
  }).start();
  profile = mkdtempSync(path.join(tmpdir(), 'trilemma-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    viewport: { width: 1280, height: 800 },
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  await context.addInitScript(wsProbe);
});

after(async () => {
  if (context) await context.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (srv) { await srv.stop(); srv.cleanup(); }
  if (sim) await sim.stop();
  if (pg) await pg.stop();
});

function skipWithoutStore(t) {
  if (pg) return false;
  t.skip('no PostgreSQL for resume (' + storeError + ')');
  return true;
}

async function newPage(viewport) {
  const page = await context.newPage();
  page.setDefaultTimeout(BOUND_MS);
  if (viewport) await page.setViewportSize(viewport);
  page.dialogs = [];
  page.errors = [];
  page.on('dialog', (d) => { page.dialogs.push(d.message()); d.dismiss().catch(() => {}); });
  page.on('pageerror', (e) => page.errors.push(e.message));
  return page;
}

// Open the demo shop and the chat; wait until the widget is connected and idle.
async function openChat(page, base = srv.url, query = '') {
  await page.goto(base + '/' + query);
  await page.getByRole('button', { name: /Open chat/ }).click();
  await waitReady(page);
}

async function waitReady(page) {
  await page.waitForFunction(() => {
    const el = document.querySelector('trilemma-chat');
    return el && el.status === 'connected' && !el.busy;
  }, null, { timeout: BOUND_MS });
}

async function say(page, text) {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
}

// The thread as data: every message and notice, in order.
function snapshot(page) {
  return page.evaluate(() => {
    const el = document.querySelector('trilemma-chat');
    const items = [...el.shadowRoot.querySelectorAll('.thread > [data-role]')].map((n) => ({
      role: n.dataset.role,
      text: (n.dataset.role === 'notice' ? n : n.querySelector('.bubble')).textContent,
      state: n.dataset.state || null,
      finish: n.dataset.finish || null,
      note: n.querySelector(':scope > .msg-note')?.textContent || null,
      turnId: n.dataset.turnId || null,
      hidden: n.hidden,
    }));
    return { status: el.status, busy: el.busy, cid: el.conversationId, items };
  });
}

// Wait until the widget has `n` assistant answers, the last finished, and is idle again.
async function waitAnswers(page, n) {
  await page.waitForFunction((n) => {
    const el = document.querySelector('trilemma-chat');
    const a = el.shadowRoot.querySelectorAll('.thread > [data-role=assistant]');
    return a.length >= n && a[a.length - 1].dataset.state === 'done' && !el.busy;
  }, n, { timeout: BOUND_MS });
  const s = await snapshot(page);
  return s.items.filter((i) => i.role === 'assistant');
}

const answers = (s) => s.items.filter((i) => i.role === 'assistant');
const sentFrames = (page) => page.evaluate(() => window.__tc.sent.map((x) => ({ socket: x.socket, msg: JSON.parse(x.data) })));

// ---------------------------------------------------------------------------------------------

test('the demo shop embeds the widget; /widget.js is one ES module; a conversation streams', async () => {
  const page = await newPage();
  const js = await page.request.get(srv.url + '/widget.js');
  assert.equal(js.status(), 200);
  assert.match(js.headers()['content-type'], /^text\/javascript/);
  const src = await js.text();
  assert.doesNotMatch(src, /^\s*import\s/m, 'widget.js has no imports (no runtime dependencies)');
  // the DOM is built node by node: no HTML parsing sinks, no code from strings
  assert.doesNotMatch(src, /innerHTML|outerHTML|insertAdjacentHTML|document\.write|DOMParser|createContextualFragment|\beval\(|new Function/);

  await page.goto(srv.url + '/');
  assert.match(await page.title(), /Kadam/);
  assert.equal(await page.locator('.card').count(), 8, 'a product grid');
  assert.ok((await page.locator('.card .now').allTextContents()).every((p) => /^₹[\d,]+$/.test(p)), 'prices in ₹');
  // closed launcher: no connection until the shopper opens the chat
  assert.equal(await page.evaluate(() => window.__tc.sockets), 0);
  const launcher = page.getByRole('button', { name: /Open chat: Kadam assistant/ });
  assert.equal(await launcher.getAttribute('aria-expanded'), 'false');
  await launcher.click();
  assert.equal(await launcher.getAttribute('aria-expanded'), 'true');
  await waitReady(page);
  assert.equal(await page.evaluate(() => document.querySelector('trilemma-chat').shadowRoot.querySelector('.status-text').textContent), 'Online');
  // a suggestion chip sends a question; the simulated model answers
  await page.getByRole('button', { name: 'Running shoes under ₹3,000' }).click();
  const [a] = await waitAnswers(page, 1);
  assert.equal(a.finish, 'stop');
  assert.ok(a.text.trim().split(/\s+/).length >= 10, 'an answer of many words: ' + a.text);
  const s = await snapshot(page);
  assert.deepEqual(s.items.map((i) => i.role), ['user', 'assistant']);
  assert.equal(s.items[0].text, 'Running shoes under ₹3,000');
  assert.match(s.cid, /^[0-9a-f]{32}$/);
  // debug footer is opt-in: off on the plain page
  assert.equal(await page.evaluate(() => document.querySelector('trilemma-chat').shadowRoot.querySelector('.debug').hidden), true);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('text grows while the turn is still running (typing indicator first, input disabled)', async () => {
  const page = await newPage();
  await openChat(page);
  await page.evaluate(() => {
    const el = document.querySelector('trilemma-chat');
    const root = el.shadowRoot;
    window.__snaps = [];
    window.__acc = '';
    el.addEventListener('trilemma:turn-start', (e) => {
      const m = root.querySelector(`[data-turn-id="${e.detail.turnId}"]`);
      window.__atStart = { typing: !!m.querySelector('.typing'), text: m.querySelector('.bubble').textContent,
                           inputDisabled: root.querySelector('textarea').disabled };
    });
    // one snapshot per delta event, taken right after the widget handled it
    el.addEventListener('trilemma:delta', (e) => {
      window.__acc += e.detail.text;
      const m = root.querySelector(`[data-turn-id="${e.detail.turnId}"]`);
      window.__snaps.push({ seq: e.detail.seq, acc: window.__acc, text: m.querySelector('.bubble').textContent,
        state: m.dataset.state, busy: el.busy, typing: !!m.querySelector('.typing'),
        stop: !root.querySelector('.stop').hidden, inputDisabled: root.querySelector('textarea').disabled });
    });
    // and, independently, every DOM change of the thread
    window.__mutations = [];
    new MutationObserver(() => {
      const a = [...root.querySelectorAll('[data-role=assistant]')].pop();
      if (a) window.__mutations.push({ text: a.querySelector('.bubble').textContent, state: a.dataset.state });
    }).observe(root.querySelector('.thread'), { subtree: true, childList: true, characterData: true, attributes: true });
  });
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'echo', 'foxtrot'];
  // the sim streams six words, then holds the stream open: the turn is running, nothing ends it
  await say(page, `[[sim:echo]] [[sim:tps=20]] [[sim:stall_after=6]] ${words.join(' ')} golf hotel india`);
  await page.waitForFunction((t) => window.__snaps.length && window.__snaps.at(-1).acc.trim() === t, words.join(' '));
  const { snaps, atStart, mutations } = await page.evaluate(() => ({ snaps: window.__snaps, atStart: window.__atStart, mutations: window.__mutations }));
  assert.deepEqual(atStart, { typing: true, text: '', inputDisabled: true }, 'typing indicator before the first token');
  assert.ok(snaps.length >= 2, 'several deltas: ' + JSON.stringify(snaps));
  for (let i = 0; i < snaps.length; i++) {
    const s = snaps[i];
    assert.equal(s.text.trim(), s.acc.trim(), `delta ${s.seq} is on screen when its event fires`);
    assert.equal(s.state, 'streaming');
    assert.equal(s.busy, true);
    assert.equal(s.typing, false, 'typing indicator gone once text arrives');
    assert.equal(s.stop, true, 'Stop is offered while the answer streams');
    assert.equal(s.inputDisabled, true, 'the input is disabled while the turn runs');
    if (i) assert.ok(s.text.length > snaps[i - 1].text.length, 'text grows: ' + JSON.stringify(snaps.map((x) => x.text)));
  }
  const grown = [...new Set(mutations.filter((m) => m.state === 'streaming' && m.text).map((m) => m.text))];
  assert.ok(grown.length >= 2, 'the DOM changed several times before the end: ' + JSON.stringify(grown));
  // still running now: no turn_end has come (the stream is stalled)
  const s = await snapshot(page);
  assert.equal(s.busy, true);
  assert.equal(answers(s)[0].state, 'streaming');
  await page.getByRole('button', { name: 'Stop' }).click();
  await waitAnswers(page, 1);
  await page.close();
});

test('Stop sends cancel: the turn ends as cancelled, the text stays, the input comes back', async () => {
  const page = await newPage();
  await openChat(page);
  await page.evaluate(() => {
    const el = document.querySelector('trilemma-chat');
    window.__ends = [];
    el.addEventListener('trilemma:turn-end', (e) => window.__ends.push(e.detail));
  });
  await say(page, '[[sim:echo]] [[sim:stall_after=3]] one two three four five');
  await page.waitForFunction(() => {
    const a = document.querySelector('trilemma-chat').shadowRoot.querySelector('[data-role=assistant]');
    return a && a.querySelector('.bubble').textContent.trim() === 'one two three';
  });
  const stop = page.getByRole('button', { name: 'Stop' });
  await stop.click();
  await page.waitForFunction(() => window.__ends.length === 1);
  const ends = await page.evaluate(() => window.__ends);
  assert.equal(ends[0].finishReason, 'cancelled');
  const [a] = await waitAnswers(page, 1);
  assert.equal(a.text.trim(), 'one two three');
  assert.equal(a.finish, 'cancelled');
  assert.equal(a.note, 'Stopped.');
  const cancels = (await sentFrames(page)).filter((f) => f.msg.type === 'cancel');
  assert.equal(cancels.length, 1);
  assert.equal(cancels[0].msg.turn_id, a.turnId);
  const ui = await page.evaluate(() => {
    const r = document.querySelector('trilemma-chat').shadowRoot;
    return { disabled: r.querySelector('textarea').disabled, stopHidden: r.querySelector('.stop').hidden, sendHidden: r.querySelector('.send').hidden };
  });
  assert.deepEqual(ui, { disabled: false, stopHidden: true, sendHidden: false });
  // the conversation goes on
  await say(page, '[[sim:echo]] next question');
  const all = await waitAnswers(page, 2);
  assert.equal(all[1].text.trim(), 'next question');
  assert.equal(all[1].finish, 'stop');
  await page.close();
});

test('keyboard only: Tab to the launcher, Enter opens, Shift+Enter adds a line, Enter sends, Tab reaches Stop, Escape closes', async () => {
  const page = await newPage();
  await page.goto(srv.url + '/');
  // Tab through the page until the launcher has focus
  let onLauncher = false;
  for (let i = 0; i < 80 && !onLauncher; i++) {
    await page.keyboard.press('Tab');
    onLauncher = await page.evaluate(() => {
      const el = document.querySelector('trilemma-chat');
      return document.activeElement === el && el.shadowRoot.activeElement?.classList.contains('launcher');
    });
  }
  assert.ok(onLauncher, 'the launcher is reachable with Tab');
  const ring = await page.evaluate(() => {
    const b = document.querySelector('trilemma-chat').shadowRoot.activeElement;
    const cs = getComputedStyle(b);
    return { style: cs.outlineStyle, width: parseFloat(cs.outlineWidth) };
  });
  assert.equal(ring.style, 'solid', 'visible focus ring');
  assert.ok(ring.width >= 2);
  await page.keyboard.press('Enter');
  await waitReady(page);
  const focused = () => page.evaluate(() => document.querySelector('trilemma-chat').shadowRoot.activeElement?.className || document.querySelector('trilemma-chat').shadowRoot.activeElement?.tagName);
  assert.equal(await focused(), 'TEXTAREA', 'focus lands in the input');
  await page.keyboard.type('[[sim:echo]] first line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  assert.equal(await page.evaluate(() => document.querySelector('trilemma-chat').shadowRoot.querySelector('textarea').value), '[[sim:echo]] first line\nsecond line');
  await page.keyboard.press('Enter');
  const [a] = await waitAnswers(page, 1);
  assert.equal(a.text, 'first linesecond line'); // two lines: text nodes around a <br>
  const s = await snapshot(page);
  assert.equal(s.items[0].text, '[[sim:echo]] first line\nsecond line');
  assert.equal(await page.evaluate(() => document.querySelector('trilemma-chat').shadowRoot.querySelector('[data-role=assistant] .bubble p br') !== null), true);
  assert.equal(await focused(), 'TEXTAREA', 'focus is back in the input after the answer');
  // a running answer: focus leaves the disabled input; one Tab reaches Stop, Enter presses it
  await page.keyboard.type('[[sim:echo]] [[sim:stall_after=2]] wait for it please');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => {
    const a = [...document.querySelector('trilemma-chat').shadowRoot.querySelectorAll('[data-role=assistant]')].pop();
    return a && a.querySelector('.bubble').textContent.trim() === 'wait for';
  });
  await page.keyboard.press('Tab');
  assert.match(await focused(), /stop/);
  await page.keyboard.press('Enter');
  const all = await waitAnswers(page, 2);
  assert.equal(all[1].finish, 'cancelled');
  assert.equal(await focused(), 'TEXTAREA');
  await page.keyboard.press('Escape');
  assert.equal(await page.evaluate(() => document.querySelector('trilemma-chat').shadowRoot.querySelector('.panel').hidden), true);
  assert.match(await focused(), /launcher/, 'focus returns to the launcher');
  await page.close();
});

test('model output is inert: <img onerror>, <script>, javascript: links render as text', async () => {
  const page = await newPage();
  await openChat(page);
  const payload = [
    '<img src=x onerror=alert(1)>',
    '[click me](javascript:alert(2))',
    '[shout](JaVaScRiPt:alert(3))',
    '[data](data:text/html,<script>alert(4)</script>)',
    '![pic](javascript:alert(5))',
    '<a href="javascript:alert(6)">raw anchor</a>',
    '<script>alert(7)</script>',
    '<iframe src="javascript:alert(8)"></iframe>',
    '<svg onload=alert(9)>',
    '[fine](https://example.com/ok)',
    '**bold**',
  ].join(' ');
  await say(page, '[[sim:echo]] ' + payload);
  const [a] = await waitAnswers(page, 1);
  assert.equal(a.finish, 'stop');
  const dom = await page.evaluate(() => {
    const root = document.querySelector('trilemma-chat').shadowRoot;
    const bubble = root.querySelector('[data-role=assistant] .bubble');
    return {
      text: bubble.textContent,
      dangerous: [...root.querySelectorAll('img, script, iframe, object, embed, [onerror], [onload]')].map((e) => e.outerHTML),
      svgInAnswer: bubble.querySelectorAll('svg').length,
      pageImgs: document.querySelectorAll('img, iframe').length,
      links: [...bubble.querySelectorAll('a')].map((x) => ({ href: x.getAttribute('href'), rel: x.rel, target: x.target, text: x.textContent })),
      strong: [...bubble.querySelectorAll('strong')].map((x) => x.textContent),
      userText: root.querySelector('[data-role=user] .bubble').textContent,
      pwned: window.__pwned || null,
    };
  });
  assert.deepEqual(dom.dangerous, [], 'no active elements');
  assert.equal(dom.svgInAnswer, 0);
  assert.equal(dom.pageImgs, 0);
  assert.deepEqual(page.dialogs, [], 'no alert() ran');
  assert.deepEqual(dom.links, [{ href: 'https://example.com/ok', rel: 'noopener noreferrer nofollow', target: '_blank', text: 'fine' }]);
  for (const l of dom.links) assert.doesNotMatch(l.href, /^\s*(javascript|data|vbscript):/i);
  assert.deepEqual(dom.strong, ['bold'], 'the Markdown around it still renders');
  for (const s of ['<img src=x onerror=alert(1)>', '<script>alert(7)</script>', 'click me', 'raw anchor']) {
    assert.ok(dom.text.includes(s), `shown as text: ${s}`);
  }
  assert.equal(dom.userText, '[[sim:echo]] ' + payload, 'the user bubble is plain text as well');
  await page.close();
});

test('a comparison answer renders as a table', async () => {
  const page = await newPage();
  await openChat(page, srv.url, '?debug=1');
  const table = [
    'Here is how they compare:',
    '',
    '| Feature | Stride Runner 2 | Trail Grip Pro |',
    '|:--|--:|:-:|',
    '| Price | ₹2,799 | ₹4,299 |',
    '| Weight | 240 g | 310 g |',
    '| Best for | **road** runs | *trails* |',
    '',
    'Both come in sizes 6–11.',
  ].join('\n');
  await say(page, '[[sim:echo]] ' + table);
  const [a] = await waitAnswers(page, 1);
  assert.equal(a.finish, 'stop');
  const t = await page.evaluate(() => {
    const b = document.querySelector('trilemma-chat').shadowRoot.querySelector('[data-role=assistant] .bubble');
    const tbl = b.querySelector('table');
    return {
      n: b.querySelectorAll('table').length,
      head: [...tbl.querySelectorAll('thead th')].map((x) => x.textContent),
      rows: [...tbl.querySelectorAll('tbody tr')].map((r) => [...r.children].map((c) => c.textContent)),
      align: [...tbl.querySelectorAll('thead th')].map((x) => x.style.textAlign),
      bold: tbl.querySelector('tbody strong')?.textContent,
      paras: [...b.querySelectorAll(':scope > p')].map((p) => p.textContent),
      scroller: tbl.parentElement.getAttribute('role'),
    };
  });
  assert.equal(t.n, 1);
  assert.deepEqual(t.head, ['Feature', 'Stride Runner 2', 'Trail Grip Pro']);
  assert.deepEqual(t.rows, [['Price', '₹2,799', '₹4,299'], ['Weight', '240 g', '310 g'], ['Best for', 'road runs', 'trails']]);
  assert.deepEqual(t.align, ['left', 'right', 'center']);
  assert.equal(t.bold, 'road');
  assert.deepEqual(t.paras, ['Here is how they compare:', 'Both come in sizes 6–11.']);
  assert.equal(t.scroller, 'region', 'a wide table scrolls in its own focusable region');
  // the debug footer (opt-in) shows the turn's numbers from turn_end
  const meta = await page.evaluate(() => {
    const r = document.querySelector('trilemma-chat').shadowRoot;
    return { msg: r.querySelector('[data-role=assistant] .msg-meta')?.textContent, foot: r.querySelector('.debug').textContent, hidden: r.querySelector('.debug').hidden };
  });
  assert.equal(meta.hidden, false);
  assert.match(meta.msg, /^first token \d+ ms · total [\d.]+ m?s · tokens \d+ in( \(\d+ cached\))? \/ \d+ out · cost ₹[\d.,]+$/);
  assert.match(meta.foot, /^Last turn: .* · conversation ₹[\d.,]+ over 1 turn$/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-table-live.png') });
  await page.close();
});

test('Markdown subset: exact DOM for each construct, incremental re-render keeps finished blocks', async () => {
  const page = await newPage();
  await page.goto(srv.url + '/');
  const A = ' rel="noopener noreferrer nofollow" target="_blank"';
  const TABLE = '<div class="md-table" tabindex="0" role="region" aria-label="Table"><table>';
  const cases = [
    ['Hello **world** and *you*', '<p>Hello <strong>world</strong> and <em>you</em></p>'],
    ['_a_ __b__ ***c***', '<p><em>a</em> <strong>b</strong> <em><strong>c</strong></em></p>'],
    ['snake_case_name and 2*3*4', '<p>snake_case_name and 2<em>3</em>4</p>'],
    ['a `x < y && z` b', '<p>a <code>x &lt; y &amp;&amp; z</code> b</p>'],
    ['```js\nif (a < b) { run(); }\n```', '<pre tabindex="0" aria-label="Code (js)"><code class="language-js">if (a &lt; b) { run(); }</code></pre>'],
    ['- one\n- two\n  - nested\n- three', '<ul><li>one</li><li>two<ul><li>nested</li></ul></li><li>three</li></ul>'],
    ['3. c\n4. d', '<ol start="3"><li>c</li><li>d</li></ol>'],
    ['[site](https://example.com/a?b=1&c=2)', `<p><a href="https://example.com/a?b=1&amp;c=2"${A}>site</a></p>`],
    ['[bad](javascript:alert(1))', '<p>bad</p>'],
    ['[bad]( JaVaScRiPt:alert(1) )', '<p>bad</p>'],
    ['[rel](/relative/path) [mail](mailto:a@b.c)', '<p>rel mail</p>'],
    ['<b onclick="x()">not bold</b>', '<p>&lt;b onclick="x()"&gt;not bold&lt;/b&gt;</p>'],
    ['see https://example.com/x).', `<p>see <a href="https://example.com/x"${A}>https://example.com/x</a>).</p>`],
    ['| a | b |\n|:--|--:|\n| 1 | 2 |', TABLE + '<thead><tr><th scope="col" style="text-align: left;">a</th><th scope="col" style="text-align: right;">b</th></tr></thead><tbody><tr><td style="text-align: left;">1</td><td style="text-align: right;">2</td></tr></tbody></table></div>'],
    ['Intro:\n| x | y |\n|---|---|\n| 1 | `a\\|b` |', '<p>Intro:</p>' + TABLE + '<thead><tr><th scope="col">x</th><th scope="col">y</th></tr></thead><tbody><tr><td>1</td><td><code>a|b</code></td></tr></tbody></table></div>'],
    ['line one\nline two', '<p>line one<br>line two</p>'],
    ['> quoted **text**', '<blockquote><p>quoted <strong>text</strong></p></blockquote>'],
    ['# Title', '<p class="md-h md-h1"><strong>Title</strong></p>'],
    ['a\n\n\nb', '<p>a</p><p>b</p>'],
    ['~~gone~~ \\*not em\\*', '<p><del>gone</del> *not em*</p>'],
    ['![img](https://example.com/a.png)', `<p><a href="https://example.com/a.png"${A}>img</a></p>`],
    ['**unclosed and [half](https://exa', '<p>**unclosed and [half](<a href="https://exa/"' + A + '>https://exa</a></p>'],
    ['- a\n\n- b', '<ul><li><p>a</p></li><li><p>b</p></li></ul>'],
    ['---', '<hr>'],
  ];
  const out = await page.evaluate(async (cases) => {
    const { renderMarkdown } = await import('/widget.js');
    return cases.map(([src]) => renderMarkdown(document.createElement('div'), src).innerHTML);
  }, cases);
  cases.forEach(([src, want], i) => assert.equal(out[i], want, 'markdown: ' + JSON.stringify(src)));

  const inc = await page.evaluate(async () => {
    const { renderMarkdown } = await import('/widget.js');
    const d = document.createElement('div');
    renderMarkdown(d, 'first paragraph\n\nsecond', true);
    const p1 = d.firstChild;
    renderMarkdown(d, 'first paragraph\n\nsecond grows', true);
    const kept = d.firstChild === p1;
    renderMarkdown(d, '| a | b |\n|--', true); // a table whose delimiter row is still arriving
    const partial = d.innerHTML;
    return { kept, html: d.innerHTML, partial };
  });
  assert.equal(inc.kept, true, 'an unchanged block keeps its DOM node');
  assert.match(inc.partial, /^<div class="md-table"[^>]*><table><thead><tr><th scope="col">a<\/th><th scope="col">b<\/th><\/tr><\/thead><tbody><\/tbody><\/table><\/div>$/);

  const errs = await page.evaluate(async () => {
    const { errorText } = await import('/widget.js');
    const codes = ['rate_limited', 'storage_unavailable', 'provider_error', 'turn_too_large', 'provider_unavailable', 'text_too_long', 'draining',
      'turn_in_progress', 'unknown_turn', 'resume_unavailable', 'unknown_conversation', 'forbidden', 'invalid_json',
      'invalid_message', 'unknown_type', 'missing_field', 'invalid_field', 'internal', 'some_future_code'];
    return codes.map((c) => [c, errorText(c, { max_text_bytes: 16000 })]);
  });
  for (const [code, text] of errs) {
    assert.ok(text.length > 10 && text.length < 200, `${code}: a short sentence`);
    assert.doesNotMatch(text, /[{}"]|_/, `${code}: no JSON, no code names: ${text}`);
    assert.match(text, /^[A-Z].*\.$/, `${code}: a sentence: ${text}`);
  }
  assert.match(Object.fromEntries(errs).text_too_long, /16,000/);
  await page.close();
});

test('errors are readable sentences in the thread, and the chat stays usable', async () => {
  const page = await newPage();
  await openChat(page);
  // every route fails before the first token: provider_unavailable, then turn_end(error)
  await say(page, '[[sim:status=400]] this will fail');
  await page.waitForFunction(() => {
    const el = document.querySelector('trilemma-chat');
    return !el.busy && el.shadowRoot.querySelector('.notice.error');
  });
  let s = await snapshot(page);
  const notices = s.items.filter((i) => i.role === 'notice');
  assert.equal(notices.length, 1);
  assert.equal(notices[0].text, 'Error: The assistant is unavailable right now. Please try again in a moment.');
  assert.equal(answers(s)[0].hidden, true, 'no empty answer bubble');
  // too long: refused before sending, with the server's limit
  const long = 'x'.repeat(16001);
  await page.evaluate((t) => { const r = document.querySelector('trilemma-chat').shadowRoot; r.querySelector('textarea').value = t; }, long);
  await page.getByRole('textbox', { name: 'Message' }).press('Enter');
  s = await snapshot(page);
  assert.match(s.items.at(-1).text, /^Error: That message is too long \(the limit is about 16,000 characters\)/);
  assert.equal(await page.evaluate(() => document.querySelector('trilemma-chat').shadowRoot.querySelector('textarea').value.length), 16001, 'the text stays for editing');
  // still usable
  await say(page, '[[sim:echo]] works again');
  const all = await waitAnswers(page, 2);
  assert.equal(all.at(-1).text.trim(), 'works again');
  const raw = s.items.filter((i) => i.role === 'notice').map((n) => n.text).join(' ');
  assert.doesNotMatch(raw, /[{}]|"code"|provider_unavailable/);
  await page.close();
});

test('server restart mid-answer: the widget reconnects, resumes after the last rendered seq, shows the whole answer once', async (t) => {
  if (skipWithoutStore(t)) return;
  const env = { TRILEMMA_MODEL: 'openai/sim-shopper', OPENAI_BASE_URL: `http://127.0.0.1:${sim.port}/v1`, ...storeEnv };
  const server = new Trilemmad(SERVER, { name: 'restart', env });
  await server.start();
  const page = await newPage();
  try {
    await openChat(page, server.url);
    const cid = (await snapshot(page)).cid;
    const words = Array.from({ length: 24 }, (_, i) => 'w' + String(i + 1).padStart(2, '0'));
    // after delta 3 reaches the widget, the rest of what the old server sends never arrives
    await page.evaluate(() => { window.__tc.cutAfterSeq = 3; });
    await say(page, `[[sim:echo]] [[sim:tps=15]] ${words.join(' ')}`);
    await page.waitForFunction(() => window.__tc.cut);
    const mid = answers(await snapshot(page))[0];
    assert.equal(mid.text.trim(), 'w01 w02 w03');
    assert.equal(mid.state, 'streaming');
    // SIGTERM: the server drains (the running turn finishes and is stored), closes with 1001
    // and exits; a new process then takes the same port and the same database
    await server.stop('SIGTERM');
    await page.waitForFunction(() => document.querySelector('trilemma-chat').status !== 'connected');
    assert.match(await page.evaluate(() => document.querySelector('trilemma-chat').status), /reconnecting|offline/);
    await server.start();
    const [a] = await waitAnswers(page, 1);
    const s = await snapshot(page);
    assert.equal(s.status, 'connected');
    assert.equal(answers(s).length, 1, 'one answer');
    assert.equal(a.text.trim(), words.join(' '), 'the whole answer, each word once');
    assert.equal(a.finish, 'stop');
    assert.equal(s.cid, cid, 'the same conversation');
    const resumes = (await sentFrames(page)).filter((f) => f.msg.type === 'resume');
    assert.ok(resumes.length >= 1);
    assert.deepEqual(resumes[0].msg, { type: 'resume', conversation_id: cid, after_seq: 3 });
    assert.ok(resumes[0].socket > 1, 'sent on the new connection');
    // the conversation goes on with the new process
    await say(page, '[[sim:echo]] still here');
    const all = await waitAnswers(page, 2);
    assert.equal(all[1].text.trim(), 'still here');
    assert.equal((await snapshot(page)).cid, cid);
  } finally {
    await page.close();
    await server.stop();
    server.cleanup();
  }
});

test('page reload mid-answer: the conversation and the answer, finished meanwhile, come back, each once', async (t) => {
  if (skipWithoutStore(t)) return;
  const page = await newPage();
  await openChat(page);
  await say(page, '[[sim:echo]] first turn done');
  await waitAnswers(page, 1);
  const cid = (await snapshot(page)).cid;
  // a second answer is slow; the page reloads while it is running: the server keeps it running
  // for the detach grace, and the resume after the reload gets the rest (live on the turn's own
  // worker, or replayed once stored by the other)
  const colours = 'red green blue yellow purple orange';
  await say(page, `[[sim:echo]] [[sim:tps=6]] ${colours}`);
  await page.waitForFunction(() => {
    const a = [...document.querySelector('trilemma-chat').shadowRoot.querySelectorAll('[data-role=assistant]')].pop();
    return a && a.dataset.turnId && a.querySelector('.bubble').textContent.trim() === 'red green blue yellow';
  });
  await page.reload();
  // the panel reopens by itself, restores the thread, resumes and settles
  await waitReady(page);
  await waitAnswers(page, 2);
  const s = await snapshot(page);
  assert.equal(s.cid, cid, 'same conversation after the reload');
  assert.deepEqual(s.items.map((i) => i.role), ['user', 'assistant', 'user', 'assistant']);
  assert.equal(s.items[1].text.trim(), 'first turn done');
  assert.equal(s.items[3].text.trim(), colours, 'the whole answer, each word once');
  assert.equal(s.items[3].finish, 'stop');
  const resumes = (await sentFrames(page)).filter((f) => f.msg.type === 'resume');
  assert.deepEqual(resumes[0].msg, { type: 'resume', conversation_id: cid, after_seq: 4 });
  await say(page, '[[sim:echo]] after the reload');
  const all = await waitAnswers(page, 3);
  assert.equal(all[2].text.trim(), 'after the reload');
  assert.equal((await snapshot(page)).cid, cid);
  // the new conversation button starts over
  await page.getByRole('button', { name: 'Start a new conversation' }).click();
  await waitReady(page);
  const fresh = await snapshot(page);
  assert.equal(fresh.items.length, 0);
  assert.notEqual(fresh.cid, cid);
  await page.close();
});

test('server restart while the answer is stalled: the drain deadline cuts it; resume shows what was stored, once', async (t) => {
  if (skipWithoutStore(t)) return;
  const env = { TRILEMMA_MODEL: 'openai/sim-shopper', OPENAI_BASE_URL: `http://127.0.0.1:${sim.port}/v1`, ...storeEnv };
  const server = new Trilemmad(SERVER, { name: 'drain-cut', env, config: { server: { drain_timeout_ms: 300 } } });
  await server.start();
  const page = await newPage();
  try {
    await openChat(page, server.url);
    await say(page, '[[sim:echo]] [[sim:stall_after=3]] one two three four five');
    await page.waitForFunction(() => {
      const a = document.querySelector('trilemma-chat').shadowRoot.querySelector('[data-role=assistant]');
      return a && a.querySelector('.bubble').textContent.trim() === 'one two three';
    });
    // SIGTERM: the stalled turn cannot finish; at the drain deadline the server closes the
    // connection (1001), which cancels the turn and stores what was streamed
    await server.stop('SIGTERM');
    await server.start();
    const [a] = await waitAnswers(page, 1);
    assert.equal(a.text.trim(), 'one two three');
    assert.equal(a.finish, 'cancelled');
    assert.match(a.note, /interrupted/);
    assert.equal(answers(await snapshot(page)).length, 1);
    const resumes = (await sentFrames(page)).filter((f) => f.msg.type === 'resume');
    assert.equal(resumes[0].msg.after_seq, 3);
  } finally {
    await page.close();
    await server.stop();
    server.cleanup();
  }
});

test('server killed mid-answer (SIGKILL): nothing was stored; the widget says so, keeps the partial text once, and goes on', async (t) => {
  if (skipWithoutStore(t)) return;
  const env = { TRILEMMA_MODEL: 'openai/sim-shopper', OPENAI_BASE_URL: `http://127.0.0.1:${sim.port}/v1`, ...storeEnv };
  const server = new Trilemmad(SERVER, { name: 'killed', env });
  await server.start();
  const page = await newPage();
  try {
    await openChat(page, server.url);
    await say(page, '[[sim:echo]] stored first');
    await waitAnswers(page, 1);
    const cid = (await snapshot(page)).cid;
    await say(page, '[[sim:echo]] [[sim:stall_after=2]] lost in the crash');
    await page.waitForFunction(() => {
      const a = [...document.querySelector('trilemma-chat').shadowRoot.querySelectorAll('[data-role=assistant]')].pop();
      return a && a.dataset.turnId && a.querySelector('.bubble').textContent.trim() === 'lost in';
    });
    await server.stop('SIGKILL');
    await server.start();
    const all = await waitAnswers(page, 2);
    assert.equal(all.length, 2);
    assert.equal(all[0].text.trim(), 'stored first');
    assert.equal(all[1].text.trim(), 'lost in', 'the partial text stays, once');
    // the new process finds the turn's row with a lease nobody renews: interrupted, and says so
    assert.match(all[1].note, /server writing this answer stopped/);
    await say(page, '[[sim:echo]] carry on');
    const more = await waitAnswers(page, 3);
    assert.equal(more[2].text.trim(), 'carry on');
    assert.equal((await snapshot(page)).cid, cid, 'the stored conversation continues');
  } finally {
    await page.close();
    await server.stop();
    server.cleanup();
  }
});

// The last assistant message's answer text and its status line ('Reconnecting…' while detached).
// Installed as window.__last in the page (after openChat).
const installLast = () => {
  window.__last = () => {
    const el = document.querySelector('trilemma-chat');
    const a = [...el.shadowRoot.querySelectorAll('.thread > [data-role=assistant]')].pop();
    return a && { status: el.status, text: a.querySelector('.bubble').textContent.trim(),
      work: a.querySelector('.work')?.textContent || '' };
  };
};
const setServer = (page, url) => page.evaluate((u) => document.querySelector('trilemma-chat').setAttribute('server', u), url);
const turnEnds = (page) => page.evaluate(() => window.__tc.received.filter((r) => r.ev && r.ev.type === 'turn_end' && !r.dropped).map((r) => r.ev));

test('connection lost mid-answer: "Reconnecting…" over the partial answer, then the rest from the same process, each word once', async (t) => {
  if (skipWithoutStore(t)) return;
  const env = { TRILEMMA_MODEL: 'openai/sim-shopper', OPENAI_BASE_URL: `http://127.0.0.1:${sim.port}/v1`, ...storeEnv };
  // one worker: the reconnect lands on the worker running the turn, which re-attaches it
  const server = new Trilemmad(SERVER, { name: 'grace-live', env, workers: 1 });
  await server.start();
  const page = await newPage();
  try {
    await openChat(page, server.url);
    await page.evaluate(installLast);
    const words = Array.from({ length: 30 }, (_, i) => 'g' + String(i + 1).padStart(2, '0'));
    await say(page, `[[sim:echo]] [[sim:tps=8]] ${words.join(' ')}`);
    await page.waitForFunction(() => { const s = window.__last(); return s && s.text.split(/\s+/).length >= 3; });
    // the network goes: the widget is pointed at a port where nothing listens, and keeps trying
    await setServer(page, `ws://127.0.0.1:${await freePort()}/ws`);
    await page.waitForFunction(() => {
      const s = window.__last();
      return /reconnecting|offline/.test(s.status) && s.work === 'Reconnecting…' && s.text.length > 0;
    });
    const partial = answers(await snapshot(page))[0].text.trim();
    assert.ok(words.join(' ').startsWith(partial), 'what arrived stays readable: ' + partial);
    // the network is back
    await setServer(page, server.url);
    const [a] = await waitAnswers(page, 1);
    assert.equal(a.text.trim(), words.join(' '), 'the whole answer, each word once');
    assert.equal(a.finish, 'stop');
    const ends = await turnEnds(page);
    assert.equal(ends.length, 1, 'one turn_end');
    assert.equal(ends[0].resumed, true, 'the turn the client came back for');
    const resumes = (await sentFrames(page)).filter((f) => f.msg.type === 'resume');
    assert.equal(resumes.length, 1);
    assert.equal(answers(await snapshot(page)).length, 1);
    await say(page, '[[sim:echo]] and on');
    const all = await waitAnswers(page, 2);
    assert.equal(all[1].text.trim(), 'and on');
  } finally {
    await page.close();
    await server.stop();
    server.cleanup();
  }
});

test('connection lost mid-answer, back on another server process: it waits for the turn and shows the whole answer once', async (t) => {
  if (skipWithoutStore(t)) return;
  const env = { TRILEMMA_MODEL: 'openai/sim-shopper', OPENAI_BASE_URL: `http://127.0.0.1:${sim.port}/v1`, ...storeEnv };
  const a = new Trilemmad(SERVER, { name: 'grace-a', env, workers: 1 });
  const b = new Trilemmad(SERVER, { name: 'grace-b', env, workers: 1 });
  await a.start();
  await b.start();
  const page = await newPage();
  try {
    await openChat(page, a.url);
    await page.evaluate(installLast);
    const cid = (await snapshot(page)).cid;
    const words = Array.from({ length: 30 }, (_, i) => 'p' + String(i + 1).padStart(2, '0'));
    await say(page, `[[sim:echo]] [[sim:tps=5]] ${words.join(' ')}`);
    await page.waitForFunction(() => { const s = window.__last(); return s && s.text.split(/\s+/).length >= 3; });
    // the reconnect lands on another pod (B): B waits for A to finish the turn, the widget
    // meanwhile online, the answer still "Reconnecting…" with what arrived on show
    await setServer(page, b.url);
    await page.waitForFunction(() => { const s = window.__last(); return s.status === 'connected' && s.work === 'Reconnecting…'; });
    const [ans] = await waitAnswers(page, 1);
    assert.equal(ans.text.trim(), words.join(' '), 'the whole answer, each word once');
    assert.equal(ans.finish, 'stop');
    const ends = await turnEnds(page);
    assert.equal(ends.length, 1, 'one turn_end');
    assert.equal(ends[0].replayed, true);
    assert.equal(ends[0].resumed, true);
    const resumes = (await sentFrames(page)).filter((f) => f.msg.type === 'resume');
    assert.equal(resumes.length, 1);
    assert.equal(resumes[0].socket, 2);
    assert.equal(resumes[0].msg.conversation_id, cid);
    assert.equal((await snapshot(page)).cid, cid);
  } finally {
    await page.close();
    await a.stop();
    await b.stop();
    a.cleanup();
    b.cleanup();
  }
});

function hs256(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = b64({ alg: 'HS256', typ: 'JWT' }) + '.' + b64(claims);
  return head + '.' + createHmac('sha256', secret).update(head).digest('base64url');
}

test('tokenProvider: the JWT goes in ?token=, is asked for on every connect, and the session is the token\'s user', async () => {
  const secret = randomBytes(32).toString('hex');
  const server = new Trilemmad(SERVER, { name: 'jwt', env: { TRILEMMA_MODEL: 'echo', TRILEMMA_JWT_SECRET: secret }, config: { session: { echo_delay_ms: 5 } } });
  await server.start();
  const page = await newPage();
  try {
    await page.goto(server.url + '/');
    // without a token the upgrade is refused (401): the widget keeps trying, never "connected"
    await page.getByRole('button', { name: /Open chat/ }).click();
    await page.waitForFunction(() => window.__tc.sockets >= 1 && document.querySelector('trilemma-chat').status === 'reconnecting');
    const token = hs256(secret, { sub: 'shopper-42', exp: Math.floor(Date.now() / 1000) + 600 });
    await page.evaluate((tok) => {
      const el = document.querySelector('trilemma-chat');
      window.__calls = 0;
      window.__sessions = [];
      el.addEventListener('trilemma:session', (e) => window.__sessions.push(e.detail));
      el.tokenProvider = async () => { window.__calls++; return tok; };
    }, token);
    await waitReady(page); // the next attempt carries the token
    const r = await page.evaluate(() => ({ urls: window.__tc.urls, calls: window.__calls, sessions: window.__sessions }));
    assert.equal(r.sessions.length, 1);
    assert.equal(r.sessions[0].user, 'shopper-42');
    assert.ok(r.calls >= 1);
    const last = new URL(r.urls.at(-1));
    assert.equal(last.pathname, '/ws');
    assert.equal(last.searchParams.get('token'), token);
    assert.equal(new URL(r.urls[0]).searchParams.get('token'), null);
    await say(page, 'signed in');
    const [a] = await waitAnswers(page, 1);
    assert.equal(a.text.trim(), 'signed in');
  } finally {
    await page.close();
    await server.stop();
    server.cleanup();
  }
});

// A scripted socket for the design screenshots: realistic text and numbers, no model needed.
function scriptedSocket(script) {
  let turn = 0;
  class Scripted {
    constructor() {
      this.readyState = 0;
      setTimeout(() => {
        this.readyState = 1;
        this.emit({ type: 'session', conversation_id: 'c0ffee'.padEnd(32, '0'), user: '', protocol: 1, limits: { max_text_bytes: 16000, max_message_bytes: 65536 } });
      }, 0);
    }
    emit(o) { if (this.onmessage) this.onmessage({ data: JSON.stringify(o) }); }
    send(d) {
      const m = JSON.parse(d);
      if (m.type !== 'user_message') return;
      const s = script[turn++ % script.length];
      const tid = String(turn).padStart(32, 'a');
      this.emit({ type: 'turn_start', turn_id: tid, id: m.id });
      const parts = s.answer.match(/\S+\s*|\s+/g);
      parts.forEach((p, i) => this.emit({ type: 'delta', turn_id: tid, seq: i + 1, text: p }));
      this.emit({ type: 'turn_end', turn_id: tid, finish_reason: 'stop', usage: s.usage, cost: { currency: 'INR', micros: s.micros }, latency_ms: s.latency });
    }
    close() { this.readyState = 3; }
  }
  window.WebSocket = Scripted;
}

const SCRIPT = [
  {
    answer: 'Two good picks under **₹3,000**:\n\n1. **Stride Runner 2** — ₹2,799, light mesh upper, great for daily 5 km runs.\n2. **Metro Court Sneaker** — ₹1,999, an everyday shoe rather than a runner.\n\nWant a side-by-side comparison?',
    usage: { input_tokens: 412, cached_input_tokens: 256, cache_write_tokens: 0, output_tokens: 58, reasoning_tokens: 0 },
    micros: 3120, latency: { first_token: 284, total: 1610 },
  },
  {
    answer: 'Here is how they compare:\n\n| | Stride Runner 2 | Trail Grip Pro |\n|---|---|---|\n| Price | ₹2,799 | ₹4,299 |\n| Weight | 240 g | 310 g |\n| Best for | road, treadmill | trails, wet ground |\n\nFor mostly road running, the *Stride Runner 2* is the better value. See the [size guide](https://example.com/size-guide).',
    usage: { input_tokens: 498, cached_input_tokens: 412, cache_write_tokens: 0, output_tokens: 96, reasoning_tokens: 0 },
    micros: 4870, latency: { first_token: 231, total: 2240 },
  },
];

// relative luminance contrast of two computed CSS colours
function contrastIn(page, pairs) {
  return page.evaluate((pairs) => {
    const root = document.querySelector('trilemma-chat').shadowRoot;
    const rgb = (s) => s.match(/[\d.]+/g).slice(0, 3).map(Number);
    const lum = ([r, g, b]) => {
      const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
      return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
    };
    const bg = (e) => {
      for (let n = e; n; n = n.parentElement || n.getRootNode().host) {
        const c = getComputedStyle(n).backgroundColor;
        if (c && !/rgba\(.*,\s*0\)$/.test(c) && c !== 'transparent') return c;
      }
      return 'rgb(255, 255, 255)';
    };
    return pairs.map(([name, sel, pseudo]) => {
      const e = root.querySelector(sel);
      if (!e) return [name, null];
      const fg = getComputedStyle(e, pseudo || null).color;
      const a = lum(rgb(fg));
      const b = lum(rgb(bg(e)));
      return [name, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
    });
  }, pairs);
}

for (const width of [360, 1280]) {
  test(`layout and screenshot at ${width} px: fits the screen, AA contrast, live region`, async () => {
    const page = await newPage({ width, height: width < 500 ? 760 : 820 });
    await page.addInitScript(scriptedSocket, SCRIPT);
    await page.goto(srv.url + '/?debug=1');
    await page.getByRole('button', { name: /Open chat/ }).click();
    await waitReady(page);
    await say(page, 'Running shoes under ₹3,000?');
    await waitAnswers(page, 1);
    await say(page, 'Compare Stride Runner 2 and Trail Grip Pro');
    await waitAnswers(page, 2);
    const box = await page.evaluate(() => {
      const r = document.querySelector('trilemma-chat').shadowRoot;
      const p = r.querySelector('.panel').getBoundingClientRect();
      const th = r.querySelector('.thread');
      return { left: p.left, right: p.right, top: p.top, bottom: p.bottom, vw: innerWidth, vh: innerHeight,
        docOverflow: document.documentElement.scrollWidth - innerWidth, threadOverflow: th.scrollWidth - th.clientWidth,
        live: th.getAttribute('aria-live'), role: th.getAttribute('role'), table: !!r.querySelector('table') };
    });
    assert.ok(box.left >= 0 && box.right <= box.vw && box.top >= 0 && box.bottom <= box.vh, 'the panel is inside the viewport: ' + JSON.stringify(box));
    if (width < 500) assert.ok(box.right - box.left === box.vw, 'full width on a phone');
    else assert.ok(box.right - box.left <= 420, 'a side panel on desktop');
    assert.ok(box.docOverflow <= 0, 'no horizontal page scroll');
    assert.ok(box.threadOverflow <= 0, 'the thread does not scroll sideways (tables scroll inside their own box)');
    assert.equal(box.live, 'polite');
    assert.equal(box.role, 'log');
    assert.ok(box.table);
    const ratios = await contrastIn(page, [
      ['header title', '.title'],
      ['status', '.status-text'],
      ['user bubble', '[data-role=user] .bubble'],
      ['assistant bubble', '[data-role=assistant] .bubble p'],
      ['link', '[data-role=assistant] .bubble a'],
      ['table cell', '.md td'],
      ['hint', '.foot'],
      ['debug line', '.msg-meta'],
      ['placeholder', 'textarea', '::placeholder'],
      ['greeting', '.greeting .bubble p'],
    ]);
    for (const [name, r] of ratios) {
      assert.ok(r !== null, name + ' exists');
      assert.ok(r >= 4.5, `${name}: contrast ${r.toFixed(2)} >= 4.5`);
    }
    await page.screenshot({ path: path.join(ARTIFACTS, `widget-${width}.png`) });
    if (width === 1280) {
      await page.getByRole('button', { name: 'Close chat' }).click();
      await page.screenshot({ path: path.join(ARTIFACTS, 'shop-1280.png') });
    }
    assert.deepEqual(page.errors, []);
    await page.close();
  });
}
