// chat.test.mjs - a real browser as the client: Debian's headless Chromium, driven by
// playwright-core, loads the server's page and chats over the browser's own WebSocket.
//
// Started by tests/integration/run_browser.py, which runs trilemmad and passes its base URL in
// TRILEMMA_URL (run by hand: TRILEMMA_URL=http://127.0.0.1:8080 node --test chat.test.mjs).
// Every wait has a bound that only turns a hang into a failure; nothing asserts a duration.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const BASE = (process.env.TRILEMMA_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
const WS_URL = BASE.replace(/^http/, 'ws') + '/ws';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BOUND_MS = 30000;

let context;
let profile;

before(async () => {
  profile = mkdtempSync(path.join(tmpdir(), 'trilemma-chromium-'));
  // a fresh profile (user data dir) per run; no network beyond the server under test
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
});

after(async () => {
  if (context) await context.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function newPage() {
  const page = await context.newPage();
  page.setDefaultTimeout(BOUND_MS);
  return page;
}

// Runs in the page: open a WebSocket, send each message in `script` after the previous answer
// is complete (turn_end or error), collect every event, then close with 1000.
async function chatInPage(page, script) {
  return page.evaluate(
    async ({ url, script, bound }) => {
      const events = [];
      const ws = new WebSocket(url);
      let step = 0;
      const sendNext = () => {
        if (step < script.length) ws.send(script[step++]);
        else return true;
        return false;
      };
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no complete answer; events: ' + JSON.stringify(events))), bound);
        ws.onerror = () => reject(new Error('websocket error; events: ' + JSON.stringify(events)));
        ws.onclose = (e) => reject(new Error('closed early: ' + e.code + ' ' + e.reason));
        ws.onmessage = (m) => {
          if (typeof m.data !== 'string') return reject(new Error('binary message from the server'));
          const ev = JSON.parse(m.data);
          events.push(ev);
          if (ev.type === 'session' || ev.type === 'turn_end' || ev.type === 'error') {
            if (sendNext()) {
              clearTimeout(timer);
              resolve();
            }
          }
        };
      });
      const close = await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no close from the server')), bound);
        ws.onclose = (e) => {
          clearTimeout(timer);
          resolve({ code: e.code, wasClean: e.wasClean });
        };
        ws.close(1000, 'done');
      });
      return { events, close };
    },
    { url: WS_URL, script, bound: BOUND_MS },
  );
}

function turns(events) {
  // group the events of each turn: turn_start, deltas, turn_end
  const out = [];
  let cur = null;
  for (const ev of events) {
    if (ev.type === 'turn_start') cur = { start: ev, deltas: [], end: null };
    else if (ev.type === 'delta') cur.deltas.push(ev);
    else if (ev.type === 'turn_end') {
      cur.end = ev;
      out.push(cur);
      cur = null;
    }
  }
  return out;
}

test('GET / serves the chat page as text/html', async () => {
  const page = await newPage();
  const resp = await page.goto(BASE + '/');
  assert.equal(resp.status(), 200);
  assert.match(resp.headers()['content-type'] || '', /^text\/html/);
  assert.ok((await page.title()).length > 0, 'page has a title');
  await page.close();
});

test('browser WebSocket: session, echo turn streamed as deltas, clean close', async () => {
  const page = await newPage();
  await page.goto(BASE + '/');
  const text = 'Hello from Chromium: h\u00e9llo w\u00f6rld \u65e5\u672c \u{1F600} "quotes" \\ back\nslash';
  const { events, close } = await chatInPage(page, [JSON.stringify({ type: 'user_message', id: 'browser-1', text })]);
  assert.equal(events[0].type, 'session');
  assert.match(events[0].conversation_id, /^[0-9a-f]{32}$/);
  const [t] = turns(events);
  assert.ok(t, 'a whole turn: ' + JSON.stringify(events));
  assert.equal(t.start.id, 'browser-1');
  assert.deepEqual(t.deltas.map((d) => d.seq), t.deltas.map((_, i) => i + 1));
  assert.equal(t.deltas.map((d) => d.text).join(''), text);
  assert.equal(t.end.finish_reason, 'stop');
  assert.equal(typeof t.end.usage.output_tokens, 'number');
  assert.equal(close.code, 1000);
  assert.equal(close.wasClean, true);
  await page.close();
});

test('browser WebSocket: an error leaves the connection usable', async () => {
  const page = await newPage();
  await page.goto(BASE + '/');
  const { events, close } = await chatInPage(page, [
    JSON.stringify({ type: 'nope' }),
    'not json',
    JSON.stringify({ type: 'user_message', id: 'after-errors', text: 'still works' }),
  ]);
  const errors = events.filter((e) => e.type === 'error').map((e) => e.code);
  assert.deepEqual(errors, ['unknown_type', 'invalid_json']);
  const [t] = turns(events);
  assert.equal(t.start.id, 'after-errors');
  assert.equal(t.deltas.map((d) => d.text).join(''), 'still works');
  assert.equal(close.code, 1000);
  await page.close();
});

test('the page runs under its Content-Security-Policy: no violation, the shop glue and the widget work', async () => {
  const page = await newPage();
  // collect violations from the first script on (Playwright's init scripts are not subject to
  // the page's policy)
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) =>
      window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  });
  const resp = await page.goto(BASE + '/');
  const policy = resp.headers()['content-security-policy'] || '';
  assert.match(policy, /default-src 'self'/);
  assert.doesNotMatch(policy, /unsafe-inline|unsafe-eval/);
  assert.equal(resp.headers()['x-content-type-options'], 'nosniff');
  // a product card's Ask button: the shop's glue (/shop.js, no longer inline) puts its question
  // in the widget's box; Enter sends it
  const question = await page.locator('.card .ask').first().getAttribute('data-ask');
  await page.locator('.card .ask').first().click();
  const box = page.getByRole('textbox', { name: 'Message' });
  assert.equal(await box.inputValue(), question);
  await box.press('Enter');
  await page.waitForFunction(
    (q) => {
      const el = document.querySelector('trilemma-chat');
      const thread = el && el.shadowRoot && el.shadowRoot.querySelector('.thread');
      return thread && thread.textContent.split(q).length - 1 >= 2 && !el.busy;
    },
    question,
    { timeout: BOUND_MS },
  );
  // the cards' colours come from shop.css classes, not from style attributes
  const tile = await page.locator('.card .tile').first().evaluate((e) => getComputedStyle(e).backgroundColor);
  assert.notEqual(tile, 'rgba(0, 0, 0, 0)');
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
  await page.close();
});

test('the page itself: open the chat widget, type a message, see the streamed answer', async () => {
  const page = await newPage();
  await page.goto(BASE + '/');
  const text = 'widget round trip ' + Date.now();
  // the demo shop embeds the widget (web/widget.js) behind a launcher button; its parts live in
  // an open shadow root, which Playwright's role locators see into
  await page.getByRole('button', { name: /Open chat/ }).click();
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
  // the user's line and the echoed answer: the text appears twice in the widget's thread
  await page.waitForFunction(
    (t) => {
      const el = document.querySelector('trilemma-chat');
      const thread = el && el.shadowRoot && el.shadowRoot.querySelector('.thread');
      return thread && thread.textContent.split(t).length - 1 >= 2 && !el.busy;
    },
    text,
    { timeout: BOUND_MS },
  );
  await page.close();
});
