// products.test.mjs - the widget's status line and product cards (the `status` and `products`
// events of docs/protocol.md) in headless Chromium, end to end over a real WebSocket: the page is
// the demo shop and the real /widget.js, served with /ws by a scripted server in this process
// (fakeserver.mjs). Each test sends the protocol's events one at a time and waits for the page to
// show each, so every ordering asserted here is one the test produced; nothing sleeps.
//
// Started by tests/integration/run_browser.py (ctest `browser_products`, label `browser`); by hand:
//   TRILEMMA_SOURCE=$PWD TRILEMMA_ARTIFACTS=build/artifacts node --test tests/browser/products.test.mjs
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { SOURCE, ARTIFACTS } from './servers.mjs';
import { FakeChatServer } from './fakeserver.mjs';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BOUND_MS = 30000;

let fake;
let context;
let profile;

// A product photo stand-in: a phone drawn in one colour (served as SVG by the fake server).
function phoneSvg(body, screen) {
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 160 120">
<rect width="160" height="120" fill="#ffffff"/>
<ellipse cx="80" cy="112" rx="34" ry="4" fill="#000" opacity=".08"/>
<rect x="57" y="8" width="46" height="100" rx="9" fill="${body}"/>
<rect x="60" y="12" width="40" height="92" rx="6" fill="${screen}"/>
<rect x="72" y="15" width="16" height="3" rx="1.5" fill="${body}"/>
<path d="M60 70 Q80 52 100 64 V98 a6 6 0 0 1 -6 6 H66 a6 6 0 0 1 -6 -6Z" fill="#fff" opacity=".18"/>
<rect x="108" y="20" width="22" height="44" rx="6" fill="${body}"/>
<circle cx="119" cy="31" r="6" fill="#222" stroke="#999" stroke-width="1.5"/>
<circle cx="119" cy="51" r="6" fill="#222" stroke="#999" stroke-width="1.5"/>
</svg>`;
}

before(async () => {
  fake = await new FakeChatServer({ root: path.join(SOURCE, 'web') }).start();
  fake.route('/img/phone-blue.svg', 'image/svg+xml', phoneSvg('#2b4c8c', '#9fc2f0'));
  fake.route('/img/phone-black.svg', 'image/svg+xml', phoneSvg('#23262b', '#6c7a91'));
  fake.route('/img/phone-green.svg', 'image/svg+xml', phoneSvg('#2f6b4f', '#a6dcc0'));
  fake.route('/img/phone-sand.svg', 'image/svg+xml', phoneSvg('#b89b72', '#f1dfc2'));
  profile = mkdtempSync(path.join(tmpdir(), 'trilemma-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    viewport: { width: 1280, height: 820 },
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  if (context) await context.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (fake) await fake.stop();
});

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

// The demo shop with the chat open, connected to the fake server and idle.
async function openChat(page) {
  await page.goto(fake.url + '/');
  await page.getByRole('button', { name: /Open chat/ }).click();
  await page.waitForFunction(() => {
    const el = document.querySelector('trilemma-chat');
    return el && el.status === 'connected' && !el.busy;
  });
}

// Type a question; return the server side of its turn (connection, message, a new turn id).
async function ask(page, text) {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
  const { conn, msg } = await fake.nextMessage('user_message');
  assert.equal(msg.text, text);
  return { conn, msg, tid: fake.turnId() };
}

// What the status line of turn `tid` shows: null when there is no status element at all.
function workState(page, tid) {
  return page.evaluate((tid) => {
    const m = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"]`);
    const w = m && m.querySelector('.work');
    if (!w) return null;
    return { text: w.textContent, role: w.getAttribute('role'), live: w.getAttribute('aria-live'),
             marked: !!w.__mark, typing: !!m.querySelector('.typing'), bubbleHidden: m.querySelector('.bubble').hidden };
  }, tid);
}

function waitWorkText(page, tid, text) {
  return page.waitForFunction(([tid, text]) => {
    const m = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"]`);
    const w = m && m.querySelector('.work');
    return w && w.textContent === text;
  }, [tid, text]);
}

function waitDone(page, tid) {
  return page.waitForFunction((tid) => {
    const el = document.querySelector('trilemma-chat');
    const m = el.shadowRoot.querySelector(`[data-turn-id="${tid}"]`);
    return m && m.dataset.state === 'done' && !el.busy;
  }, tid);
}

// Send `words` as deltas 1..n and wait until the page has shown the last one.
async function stream(page, conn, tid, words, from = 1) {
  words.forEach((w, i) => conn.send({ type: 'delta', turn_id: tid, seq: from + i, text: w }));
  await page.waitForFunction(([tid, seq]) => {
    const m = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"]`);
    return m && Number(m.dataset.seq) === seq;
  }, [tid, from + words.length - 1]);
}

function turnEnd(conn, tid, finish = 'stop') {
  conn.send({ type: 'turn_end', turn_id: tid, finish_reason: finish,
    usage: { input_tokens: 10, cached_input_tokens: 0, cache_write_tokens: 0, output_tokens: 5, reasoning_tokens: 0 },
    cost: { currency: 'INR', micros: 0 }, latency_ms: { first_token: 5, total: 9 } });
}

// The cards of turn `tid` as data.
function cards(page, tid) {
  return page.evaluate((tid) => {
    const m = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"]`);
    const list = m.querySelector('.products');
    if (!list) return null;
    return {
      label: list.getAttribute('aria-label'),
      role: list.getAttribute('role'),
      beforeAnswer: !!(list.compareDocumentPosition(m.querySelector('.bubble')) & Node.DOCUMENT_POSITION_FOLLOWING),
      items: [...list.querySelectorAll(':scope > li.product')].map((li) => {
        const img = li.querySelector('img');
        const rating = li.querySelector('.product-rating');
        return {
          id: li.dataset.productId,
          title: li.querySelector('.product-btn').textContent,
          brand: li.querySelector('.product-brand')?.textContent ?? null,
          price: li.querySelector('.product-price')?.textContent ?? null,
          rating: rating ? { text: rating.textContent, label: rating.getAttribute('aria-label'), role: rating.getAttribute('role') } : null,
          specs: [...li.querySelectorAll('.product-specs li')].map((x) => x.textContent),
          img: img ? { src: img.getAttribute('src'), alt: img.getAttribute('alt'), loading: img.getAttribute('loading') } : null,
          placeholder: !!li.querySelector('.product-ph'),
        };
      }),
    };
  }, tid);
}

const nbsp = (s) => s.replace(/\u00a0/g, ' ');

// ---------------------------------------------------------------------------------------------

test('status line: a role=status region with words per stage, the latest wins, gone at the first delta', async () => {
  const page = await newPage();
  await openChat(page);
  await page.evaluate(() => {
    const el = document.querySelector('trilemma-chat');
    const root = el.shadowRoot;
    window.__atDelta = [];
    window.__stages = [];
    el.addEventListener('trilemma:stage', (e) => window.__stages.push(e.detail));
    // at every delta, right after the widget showed it: is a status line still there?
    el.addEventListener('trilemma:delta', (e) => {
      const m = root.querySelector(`[data-turn-id="${e.detail.turnId}"]`);
      window.__atDelta.push({ seq: e.detail.seq, work: m.querySelector('.work')?.textContent ?? null,
                              line: !!m.querySelector('.work-line'), bubble: m.querySelector('.bubble').textContent });
    });
  });
  const { conn, msg, tid } = await ask(page, 'best phone under 20000 with a big battery');
  conn.send({ type: 'turn_start', turn_id: tid, id: msg.id });
  await page.waitForFunction((tid) => !!document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] .work`), tid);
  // the live region is in place (empty, typing dots shown) before its first words: a live region
  // announces changes to it, not its own insertion; mark the node to see it is never replaced
  const start = await workState(page, tid);
  assert.deepEqual(start, { text: '', role: 'status', live: 'polite', marked: false, typing: true, bubbleHidden: false });
  await page.evaluate((tid) => { document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] .work`).__mark = true; }, tid);

  const steps = [
    [{ stage: 'classifying' }, 'Understanding your question…'],
    [{ stage: 'searching' }, 'Searching products…'],
    [{ stage: 'calling_tool', tool: 'get_offers' }, 'Checking prices and delivery…'],
    [{ stage: 'calling_tool', tool: 'get_weather_now' }, 'Checking weather now…'],
    [{ stage: 'calling_tool', tool: '<img src=x onerror=window.__pwned=1>' }, 'Checking details…'],
    [{ stage: 'calling_tool' }, 'Checking details…'],
    [{ stage: 'reticulating_splines', progress: 0.5, extra: { nested: true } }, 'Working…'],
    [{ stage: 42 }, 'Working…'],
    [{ stage: 'answering' }, 'Writing the answer…'],
  ];
  for (const [i, [ev, words]] of steps.entries()) {
    conn.send({ type: 'status', turn_id: tid, ...ev });
    await page.waitForFunction((n) => window.__stages.length === n, i + 1);
    await waitWorkText(page, tid, words);
    const w = await workState(page, tid);
    assert.deepEqual(w, { text: words, role: 'status', live: 'polite', marked: true, typing: false, bubbleHidden: true },
                     'status ' + JSON.stringify(ev));
    // the accessibility tree has it as a status region with these words
    assert.equal(await page.getByRole('status').filter({ hasText: words }).count(), 1, words);
  }
  // a status for another turn changes nothing
  conn.send({ type: 'status', turn_id: fake.turnId(), stage: 'searching' });
  // an event type this widget does not know is ignored, the turn goes on
  conn.send({ type: 'thinking_summary', turn_id: tid, text: '<b>ignored</b>' });
  await stream(page, conn, tid, ['The ']);
  // a late status after the first delta is ignored
  conn.send({ type: 'status', turn_id: tid, stage: 'searching' });
  await stream(page, conn, tid, ['Nova ', 'X5 ', 'has ', 'a ', '6000 mAh ', 'battery.'], 2);
  turnEnd(conn, tid);
  await waitDone(page, tid);
  const atDelta = await page.evaluate(() => window.__atDelta);
  assert.equal(atDelta.length, 7);
  assert.deepEqual(atDelta[0], { seq: 1, work: '', line: false, bubble: 'The' }, 'the status line is gone when the first delta is on screen');
  for (const d of atDelta) assert.equal(d.work, '', 'no status line after the first delta: ' + JSON.stringify(d));
  assert.equal(await workState(page, tid), null, 'the status region is removed at turn_end');
  const answer = await page.evaluate((tid) => document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] .bubble`).textContent, tid);
  assert.equal(answer, 'The Nova X5 has a 6000 mAh battery.');
  assert.deepEqual((await page.evaluate(() => window.__stages)).map((s) => s.text), steps.map((s) => s[1]));
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.deepEqual(page.dialogs, []);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('status line: ends at an error or at turn_end when no answer came; no animation under reduced motion', async () => {
  const page = await newPage();
  await page.emulateMedia({ reducedMotion: 'reduce' });
  await openChat(page);
  // an error about the turn ends the status line at once (its turn_end follows)
  let { conn, msg, tid } = await ask(page, 'what is the return policy');
  conn.send({ type: 'turn_start', turn_id: tid, id: msg.id });
  conn.send({ type: 'status', turn_id: tid, stage: 'calling_tool', tool: 'get_policy' });
  await waitWorkText(page, tid, 'Checking store policies…');
  const anim = await page.evaluate(() => {
    const d = document.querySelector('trilemma-chat').shadowRoot.querySelector('.work-dots span');
    return getComputedStyle(d).animationName;
  });
  assert.equal(anim, 'none', 'prefers-reduced-motion stops the status dots');
  conn.send({ type: 'error', code: 'provider_unavailable', message: 'every route failed', turn_id: tid });
  await waitWorkText(page, tid, '');
  turnEnd(conn, tid, 'error');
  await waitDone(page, tid);
  assert.equal(await workState(page, tid), null);
  const notice = await page.evaluate(() => [...document.querySelector('trilemma-chat').shadowRoot.querySelectorAll('.notice')].map((n) => n.textContent));
  assert.ok(notice.some((t) => /assistant is unavailable/.test(t)), JSON.stringify(notice));

  // turn_end with no delta at all: the status line goes with the turn
  ({ conn, msg, tid } = await ask(page, 'where is order 1234-5678'));
  conn.send({ type: 'turn_start', turn_id: tid, id: msg.id });
  conn.send({ type: 'status', turn_id: tid, stage: 'calling_tool', tool: 'get_order' });
  await waitWorkText(page, tid, 'Checking your order…');
  turnEnd(conn, tid, 'cancelled');
  await waitDone(page, tid);
  assert.equal(await workState(page, tid), null);
  assert.deepEqual(page.errors, []);
  await page.close();
});

// A slate as the server sends it: relative and absolute image URLs, a price with paise, more
// than three specs, a broken image, a card with nothing but id and title, and items to drop.
function slate() {
  return [
    { id: 'p-101', title: 'Nova X5 5G (Ocean Blue, 8 GB, 128 GB)', brand: 'Orbit', price: 17999, currency: 'INR', rating: 4.3,
      image: '/img/phone-blue.svg', specs: ['6000 mAh battery', '6.6-inch 120 Hz AMOLED', '8 GB RAM', '50 MP camera'], sku_extra: 'ignored' },
    { id: 'p-102', title: 'Pulse 12 Pro', brand: 'Zenfold', price: 19499, currency: 'INR', rating: 4.1,
      image: `${fake.url}/img/phone-black.svg`, specs: ['5500 mAh', '6.7-inch 144 Hz', 'Dimensity 7200'] },
    { id: 'p-103', title: 'Terra G8 Power', brand: 'Lumo', price: 14999.5, currency: 'INR', rating: 4,
      image: 'img/phone-green.svg', specs: ['7000 mAh', '6.5-inch 90 Hz'] },
    { id: 'p-104', title: 'Breeze M3', brand: 'Kiwi', price: 12999, currency: 'INR', rating: 3.9, image: '/img/missing.png',
      specs: ['5000 mAh'] },
    { id: 'p-105', title: 'Aero One (sparse: no brand, price, rating, image or specs)' },
    { id: 'p-106', title: 'Sandstone S2', brand: 'Orbit', price: 229, currency: 'USD', rating: 0, image: '/img/phone-sand.svg', specs: [] },
    { title: 'no id: dropped' },
    { id: 'p-108' },
    'not an object',
    null,
  ];
}

function expectedCards() {
  return [
    { id: 'p-101', title: 'Nova X5 5G (Ocean Blue, 8 GB, 128 GB)', brand: 'Orbit', price: '₹17,999',
      rating: { text: '4.3 ★', label: 'Rated 4.3 out of 5', role: 'img' }, specs: ['6000 mAh battery', '6.6-inch 120 Hz AMOLED', '8 GB RAM'],
      img: { src: `${fake.url}/img/phone-blue.svg`, alt: 'Nova X5 5G (Ocean Blue, 8 GB, 128 GB)', loading: 'lazy' }, placeholder: false },
    { id: 'p-102', title: 'Pulse 12 Pro', brand: 'Zenfold', price: '₹19,499',
      rating: { text: '4.1 ★', label: 'Rated 4.1 out of 5', role: 'img' }, specs: ['5500 mAh', '6.7-inch 144 Hz', 'Dimensity 7200'],
      img: { src: `${fake.url}/img/phone-black.svg`, alt: 'Pulse 12 Pro', loading: 'lazy' }, placeholder: false },
    { id: 'p-103', title: 'Terra G8 Power', brand: 'Lumo', price: '₹14,999.50',
      rating: { text: '4.0 ★', label: 'Rated 4.0 out of 5', role: 'img' }, specs: ['7000 mAh', '6.5-inch 90 Hz'],
      img: { src: `${fake.url}/img/phone-green.svg`, alt: 'Terra G8 Power', loading: 'lazy' }, placeholder: false },
    { id: 'p-104', title: 'Breeze M3', brand: 'Kiwi', price: '₹12,999',
      rating: { text: '3.9 ★', label: 'Rated 3.9 out of 5', role: 'img' }, specs: ['5000 mAh'], img: null, placeholder: true },
    { id: 'p-105', title: 'Aero One (sparse: no brand, price, rating, image or specs)', brand: null, price: null, rating: null,
      specs: [], img: null, placeholder: true },
    { id: 'p-106', title: 'Sandstone S2', brand: 'Orbit', price: '$229',
      rating: { text: '0.0 ★', label: 'Rated 0.0 out of 5', role: 'img' }, specs: [],
      img: { src: `${fake.url}/img/phone-sand.svg`, alt: 'Sandstone S2', loading: 'lazy' }, placeholder: false },
  ];
}

const ANSWER = ['Three ', 'picks ', 'under ', '**₹20,000** ', 'with ', 'big ', 'batteries:\n\n', '1. **Terra G8 Power** — 7000 mAh, ', 'the ', 'longest ', 'runtime.\n',
  '2. **Nova X5 5G** — 6000 mAh ', 'and ', 'a ', '120 Hz ', 'AMOLED.\n', '3. **Pulse 12 Pro** — ', 'fastest ', 'screen.'];

// One whole product turn: status, slate, status, the answer streamed, turn_end.
async function productTurn(page, question = 'best phone under 20000 with a big battery', whileWorking = null) {
  const { conn, msg, tid } = await ask(page, question);
  conn.send({ type: 'turn_start', turn_id: tid, id: msg.id });
  conn.send({ type: 'status', turn_id: tid, stage: 'searching' });
  await waitWorkText(page, tid, 'Searching products…');
  conn.send({ type: 'products', turn_id: tid, items: slate() });
  await page.waitForFunction((tid) => !!document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] .products`), tid);
  conn.send({ type: 'status', turn_id: tid, stage: 'answering' });
  await waitWorkText(page, tid, 'Writing the answer…');
  const during = await cards(page, tid);
  if (whileWorking) await whileWorking(tid);
  await stream(page, conn, tid, ANSWER);
  turnEnd(conn, tid);
  await waitDone(page, tid);
  // the broken image has been replaced by the placeholder
  await page.waitForFunction((tid) => {
    const li = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] [data-product-id="p-104"]`);
    return li && !li.querySelector('img') && li.querySelector('.product-ph');
  }, tid);
  return { tid, during };
}

test('product cards: title, brand, price, rating, up to three specs, above the streamed answer; screenshots', async () => {
  const page = await newPage({ width: 1280, height: 820 });
  await openChat(page);
  await page.evaluate(() => {
    window.__slates = [];
    document.querySelector('trilemma-chat').addEventListener('trilemma:products', (e) => window.__slates.push(e.detail));
  });
  const { tid, during } = await productTurn(page, undefined, async (tid) => {
    await page.waitForFunction((tid) => {
      const i = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] [data-product-id="p-101"] img`);
      return i && i.complete && i.naturalWidth > 0;
    }, tid);
    const panel = await page.evaluate(() => {
      const r = document.querySelector('trilemma-chat').shadowRoot.querySelector('.panel').getBoundingClientRect();
      return { x: r.x, y: r.y, width: r.width, height: r.height };
    });
    await page.screenshot({ path: path.join(ARTIFACTS, 'widget-products-working.png'), clip: panel });
  });
  assert.equal(during.items.length, 6, 'the cards are there before the first delta');
  const got = await cards(page, tid);
  assert.equal(got.role, 'list');
  assert.equal(got.label, '6 products');
  assert.equal(got.beforeAnswer, true, 'the cards come before the answer');
  for (const c of got.items) if (c.price) c.price = nbsp(c.price);
  assert.deepEqual(got.items, expectedCards());
  const slates = await page.evaluate(() => window.__slates);
  assert.equal(slates.length, 1);
  assert.deepEqual(slates[0].items.map((p) => p.id), ['p-101', 'p-102', 'p-103', 'p-104', 'p-105', 'p-106']);
  // the answer streamed below the cards, Markdown and all
  const answer = await page.evaluate((tid) => {
    const m = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"]`);
    return { items: [...m.querySelectorAll('.bubble ol > li')].map((l) => l.textContent), widen: m.classList.contains('widen') };
  }, tid);
  assert.equal(answer.items.length, 3);
  assert.equal(answer.widen, true);
  // the pictures in view have loaded (lazy images: the ones further right load when scrolled to)
  const imgLoaded = (ids) => page.waitForFunction(([tid, ids]) => ids.every((id) => {
    const i = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] [data-product-id="${id}"] img`);
    return i && i.complete && i.naturalWidth > 0;
  }), [tid, ids]);
  await imgLoaded(['p-101', 'p-102']);
  // contrast of the card's text on its background
  const ratios = await page.evaluate(() => {
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
    return ['.product-btn', '.product-brand', '.product-price', '.product-rating', '.product-specs li'].map((sel) => {
      const e = root.querySelector(sel);
      const a = lum(rgb(getComputedStyle(e).color));
      const b = lum(rgb(bg(e)));
      return [sel, (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05)];
    });
  });
  for (const [sel, r] of ratios) assert.ok(r >= 4.5, `${sel}: contrast ${r.toFixed(2)} >= 4.5`);
  await page.evaluate(() => { const t = document.querySelector('trilemma-chat').shadowRoot.querySelector('.thread'); t.scrollTop = 0; });
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-products-1280.png') });
  const panel = await page.evaluate(() => {
    const r = document.querySelector('trilemma-chat').shadowRoot.querySelector('.panel').getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-products-panel.png'), clip: panel });
  // every picture that exists loads once its card is scrolled into view (relative paths resolve
  // against the chat server)
  for (const id of ['p-103', 'p-106']) {
    await page.locator(`[data-turn-id="${tid}"] [data-product-id="${id}"]`).scrollIntoViewIfNeeded();
    await imgLoaded([id]);
  }

  // a phone: the panel is the screen, the cards scroll sideways inside their own strip
  await page.setViewportSize({ width: 360, height: 760 });
  const narrow = await page.evaluate((tid) => {
    const root = document.querySelector('trilemma-chat').shadowRoot;
    const th = root.querySelector('.thread');
    const strip = root.querySelector(`[data-turn-id="${tid}"] .products`);
    strip.scrollLeft = 0;
    const first = strip.querySelector('.product').getBoundingClientRect();
    return { docOverflow: document.documentElement.scrollWidth - innerWidth, threadOverflow: th.scrollWidth - th.clientWidth,
             stripScrolls: strip.scrollWidth > strip.clientWidth, overflowX: getComputedStyle(strip).overflowX,
             firstInside: first.left >= 0 && first.right <= innerWidth };
  }, tid);
  assert.deepEqual(narrow, { docOverflow: 0, threadOverflow: 0, stripScrolls: true, overflowX: 'auto', firstInside: true });
  await page.evaluate(() => { const t = document.querySelector('trilemma-chat').shadowRoot.querySelector('.thread'); t.scrollTop = 0; });
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-products-360.png') });
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('keyboard: Tab reaches the cards with a visible focus ring; Enter, Space and a click fire trilemma-product (the demo asks about it)', async () => {
  const page = await newPage();
  await openChat(page);
  await page.evaluate(() => {
    window.__picked = [];
    // composed and bubbling: the page hears it on document, outside the shadow root
    document.addEventListener('trilemma-product', (e) => window.__picked.push({ ...e.detail, target: e.target.tagName }));
  });
  const { tid } = await productTurn(page);
  // from the header's last control, Tab goes into the thread: the first card
  await page.getByRole('button', { name: 'Close chat' }).focus();
  const focused = async () => page.evaluate(() => {
    const a = document.querySelector('trilemma-chat').shadowRoot.activeElement;
    if (!a) return null;
    const ring = getComputedStyle(a, '::after');
    return { id: a.closest('.product')?.dataset.productId ?? null, text: a.textContent, visible: a.matches(':focus-visible'),
             ring: ring.outlineStyle === 'none' ? 'none' : `${ring.outlineStyle} ${ring.outlineWidth}` };
  });
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { id: 'p-101', text: 'Nova X5 5G (Ocean Blue, 8 GB, 128 GB)', visible: true, ring: 'solid 3px' });
  await page.keyboard.press('Tab');
  assert.deepEqual(await focused(), { id: 'p-102', text: 'Pulse 12 Pro', visible: true, ring: 'solid 3px' });
  const card = await page.evaluate(() => {
    const a = document.querySelector('trilemma-chat').shadowRoot.activeElement;
    const r = a.closest('.product').getBoundingClientRect();
    return { left: r.left, right: r.right };
  });
  assert.ok(card.right > card.left, 'the focused card is laid out');
  const panel = await page.evaluate(() => {
    const r = document.querySelector('trilemma-chat').shadowRoot.querySelector('.panel').getBoundingClientRect();
    return { x: r.x, y: r.y, width: r.width, height: r.height };
  });
  await page.screenshot({ path: path.join(ARTIFACTS, 'widget-products-focus.png'), clip: panel });
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => window.__picked.length === 1);
  // the demo page's own handler (web/index.html) puts a follow-up question in the input, which
  // takes the focus
  const input = () => page.evaluate(() => {
    const r = document.querySelector('trilemma-chat').shadowRoot;
    return { focused: r.activeElement?.id ?? null, value: r.querySelector('textarea').value };
  });
  assert.deepEqual(await input(), { focused: 'tc-input', value: 'Tell me more about the Pulse 12 Pro' });
  // Shift+Tab from the input reaches the last card (nothing else in between); Space picks it
  await page.keyboard.press('Shift+Tab');
  assert.deepEqual(await focused(), { id: 'p-106', text: 'Sandstone S2', visible: true, ring: 'solid 3px' });
  await page.keyboard.press('Space');
  await page.waitForFunction(() => window.__picked.length === 2);
  assert.deepEqual(await input(), { focused: 'tc-input', value: 'Tell me more about the Sandstone S2' });
  // the whole card is the target, not just its title: click its picture (a real mouse click at
  // that point; what is under the pointer is the title button's overlay)
  const mediaLoc = page.locator(`[data-turn-id="${tid}"] [data-product-id="p-105"] .product-media`);
  await mediaLoc.scrollIntoViewIfNeeded();
  const media = await mediaLoc.boundingBox();
  const hit = await page.evaluate(([x, y]) => {
    const e = document.querySelector('trilemma-chat').shadowRoot.elementFromPoint(x, y);
    return e && e.className + ' in ' + e.closest('.product')?.dataset.productId;
  }, [media.x + media.width / 2, media.y + media.height / 2]);
  assert.equal(hit, 'product-btn in p-105');
  await page.mouse.click(media.x + media.width / 2, media.y + media.height / 2);
  await page.waitForFunction(() => window.__picked.length === 3);
  assert.deepEqual(await page.evaluate(() => window.__picked), [
    { id: 'p-102', title: 'Pulse 12 Pro', target: 'TRILEMMA-CHAT' },
    { id: 'p-106', title: 'Sandstone S2', target: 'TRILEMMA-CHAT' },
    { id: 'p-105', title: 'Aero One (sparse: no brand, price, rating, image or specs)', target: 'TRILEMMA-CHAT' },
  ]);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('hostile slates: markup is text, javascript:/data: images are dropped, no script runs', async () => {
  const page = await newPage();
  await openChat(page);
  await page.evaluate(() => {
    window.__picked = [];
    document.addEventListener('trilemma-product', (e) => window.__picked.push(e.detail));
  });
  const hostile = {
    id: '"><img src=x onerror="window.__pwned=\'id\'">',
    title: '<img src=x onerror="window.__pwned=\'title\'"><script>window.__pwned=\'title2\'</script>',
    brand: '<svg onload="window.__pwned=\'brand\'">',
    specs: ['<iframe src="javascript:window.__pwned=\'spec\'"></iframe>', '<b onmouseover=alert(1)>bold</b>', { toString: 1 }, 42],
    price: 999, currency: 'INR', rating: 4.5,
    image: 'javascript:window.__pwned=\'img\'',
  };
  const droppedImages = [
    ' JaVaScRiPt:window.__pwned=\'img2\'',
    'java\nscript:window.__pwned=\'img3\'',
    'data:image/svg+xml,<svg xmlns="http://www.w3.org/2000/svg" onload="window.__pwned=\'img4\'"/>',
    'vbscript:msgbox(1)',
    'blob:https://example.com/1234',
    'file:///etc/passwd',
    42,
  ];
  const items = [hostile, ...droppedImages.map((image, i) => ({ id: 'x-' + i, title: 'Card ' + i, image }))];
  // values of the wrong type or range are left out, the card still renders
  items.push({ id: 'bad-values', title: 'Bad values', price: '18999', currency: '<b>', rating: 7, brand: 12, specs: 'one' });
  items.push({ id: 'neg', title: 'Negative price', price: -5, rating: -1, currency: 'INR' });
  items.push({ id: 'eleventh', title: 'Over the limit of ten' });
  const { conn, msg, tid } = await ask(page, 'show me <script>');
  conn.send({ type: 'turn_start', turn_id: tid, id: msg.id });
  conn.send({ type: 'products', turn_id: tid, items });
  await page.waitForFunction((tid) => !!document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] .products`), tid);
  await stream(page, conn, tid, ['Nothing ', 'to ', 'see.']);
  turnEnd(conn, tid);
  await waitDone(page, tid);
  const got = await cards(page, tid);
  assert.equal(got.items.length, 10, 'at most ten cards');
  const [h] = got.items;
  assert.equal(h.id, hostile.id);
  assert.equal(h.title, hostile.title, 'the title is shown as the literal characters');
  assert.equal(h.brand, hostile.brand);
  assert.deepEqual(h.specs, [hostile.specs[0], hostile.specs[1]], 'non-strings are not specs');
  assert.equal(h.img, null, 'the javascript: image is dropped');
  assert.equal(h.placeholder, true);
  for (let i = 0; i < droppedImages.length && i < 7; i++) {
    assert.equal(got.items[1 + i].img, null, 'dropped image: ' + String(droppedImages[i]));
    assert.equal(got.items[1 + i].placeholder, true);
  }
  const dom = await page.evaluate(() => {
    const root = document.querySelector('trilemma-chat').shadowRoot;
    return {
      imgs: [...root.querySelectorAll('img')].map((i) => i.getAttribute('src')),
      active: [...root.querySelectorAll('script, iframe, object, embed, b, [onerror], [onload], [onmouseover]')].map((e) => e.outerHTML),
      svgs: [...root.querySelectorAll('.product svg')].every((s) => s.closest('.product-ph')),
      pageImgs: document.querySelectorAll('img, iframe').length,
      pwned: window.__pwned ?? null,
    };
  });
  assert.deepEqual(dom.imgs, [], 'no image element for any of these URLs');
  assert.deepEqual(dom.active, [], 'no active element');
  assert.equal(dom.svgs, true, 'the only svg in a card is the placeholder icon');
  assert.equal(dom.pageImgs, 0);
  assert.equal(dom.pwned, null, 'no script ran');
  assert.deepEqual(page.dialogs, []);
  assert.deepEqual(got.items.slice(8).map((c) => [c.id, c.brand, c.price, c.rating, c.specs, c.img]),
                   [['bad-values', null, null, null, [], null], ['neg', null, null, null, [], null]],
                   'values of the wrong type or range are left out; the card stays');
  assert.ok(!got.items.some((c) => c.id === 'eleventh'), 'the eleventh item is past the limit of ten');
  // the widget's own checks, directly: the same functions, every case
  const unit = await page.evaluate(async (base) => {
    const w = await import('/widget.js');
    const urls = ['/img/a.png', 'img/a.png', '//cdn.example.com/a.png', 'https://cdn.example.com/a b.png', 'http://x.test/a.png',
      'javascript:alert(1)', ' JAVASCRIPT:alert(1)', 'jav\tascript:alert(1)', 'data:image/png;base64,AAAA', 'vbscript:x', 'blob:https://x.test/1',
      'about:blank', 'ftp://x.test/a.png', '', '   ', null, 42, 'http://' + 'a'.repeat(3000)];
    return {
      urls: urls.map((u) => [u === null || typeof u !== 'string' ? String(u) : u.slice(0, 40), w.safeImageUrl(u, base)]),
      noBase: w.safeImageUrl('/img/a.png', null),
      bad: w.normalizeProducts([{ id: 'b', title: 'B', price: '18999', currency: '<b>', rating: 7, brand: 12, specs: 'one' }], base),
      neg: w.normalizeProducts([{ id: 'n', title: 'N', price: -5, rating: -1, currency: 'inr' }], base),
      nums: w.normalizeProducts([{ id: 7, title: '  Spaced \n  title ', price: 0, rating: 5, currency: 'inr', specs: [' a ', '', 'b', 'c', 'd'] }], base),
      many: w.normalizeProducts(Array.from({ length: 12 }, (_, i) => ({ id: 'm' + i, title: 'M' + i })), base).length,
      notArray: w.normalizeProducts({ id: 'x', title: 'y' }, base),
      prices: [w.formatPrice(18999, 'INR'), w.formatPrice(1899999, 'INR'), w.formatPrice(18999.5, 'INR'), w.formatPrice(229, 'USD'),
        w.formatPrice(18999)].map((s) => s.replace(/\u00a0/g, ' ')),
      stages: [['classifying'], ['searching'], ['answering'], ['calling_tool', 'get_offers'], ['calling_tool', 'get_product'],
        ['calling_tool', 'get_policy'], ['calling_tool', 'get_order'], ['calling_tool', 'search_products'], ['calling_tool', 'getStoreHours'],
        ['calling_tool', 'weather'], ['calling_tool', 'a b'], ['calling_tool', 'x'.repeat(80)], ['calling_tool'], ['new_stage'], [undefined]]
        .map(([s, t]) => w.statusText(s, t)),
    };
  }, fake.url + '/');
  const u = fake.url;
  assert.deepEqual(unit.urls, [
    ['/img/a.png', `${u}/img/a.png`], ['img/a.png', `${u}/img/a.png`], ['//cdn.example.com/a.png', 'http://cdn.example.com/a.png'],
    ['https://cdn.example.com/a b.png', 'https://cdn.example.com/a%20b.png'], ['http://x.test/a.png', 'http://x.test/a.png'],
    ['javascript:alert(1)', null], [' JAVASCRIPT:alert(1)', null], ['jav\tascript:alert(1)', null], ['data:image/png;base64,AAAA', null],
    ['vbscript:x', null], ['blob:https://x.test/1', null], ['about:blank', null], ['ftp://x.test/a.png', null], ['', null], ['   ', null],
    ['null', null], ['42', null], ['http://' + 'a'.repeat(33), null],
  ]);
  assert.equal(unit.noBase, null, 'a relative path without a base is dropped');
  assert.deepEqual(unit.bad, [{ id: 'b', title: 'B' }]);
  assert.deepEqual(unit.neg, [{ id: 'n', title: 'N', currency: 'INR' }]);
  assert.deepEqual(unit.nums, [{ id: '7', title: 'Spaced title', price: 0, rating: 5, currency: 'INR', specs: ['a', 'b', 'c'] }]);
  assert.equal(unit.many, 10);
  assert.deepEqual(unit.notArray, []);
  assert.deepEqual(unit.prices, ['₹18,999', '₹18,99,999', '₹18,999.50', '$229', '18,999']);
  assert.deepEqual(unit.stages, ['Understanding your question…', 'Searching products…', 'Writing the answer…', 'Checking prices and delivery…',
    'Checking product details…', 'Checking store policies…', 'Checking your order…', 'Searching products…', 'Checking store hours…',
    'Checking weather…', 'Checking details…', 'Checking details…', 'Checking details…', 'Working…', 'Working…']);
  // the hostile card's title button reports the raw id and title
  await page.locator(`[data-turn-id="${tid}"] .product-btn`).first().click();
  await page.waitForFunction(() => window.__picked.length === 1);
  assert.deepEqual(await page.evaluate(() => window.__picked[0]), { id: hostile.id, title: hostile.title });
  assert.equal(await page.evaluate(() => window.__pwned ?? null), null);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('the cards come back with the thread after a reload (stored slate, checked again)', async () => {
  const page = await newPage();
  await openChat(page);
  const { tid } = await productTurn(page, 'phones with big batteries');
  const before = await cards(page, tid);
  await page.reload();
  // the reloaded widget continues its conversation: answer its resume with "nothing missing"
  const { conn, msg } = await fake.nextMessage('resume');
  conn.send({ type: 'resumed', conversation_id: msg.conversation_id, turn_id: tid, after_seq: msg.after_seq, messages: 2 });
  turnEnd(conn, tid);
  await page.waitForFunction(() => {
    const el = document.querySelector('trilemma-chat');
    return el && el.status === 'connected' && !el.busy;
  });
  assert.equal(msg.after_seq, ANSWER.length);
  await page.waitForFunction((tid) => {
    const li = document.querySelector('trilemma-chat').shadowRoot.querySelector(`[data-turn-id="${tid}"] [data-product-id="p-104"]`);
    return li && !li.querySelector('img');
  }, tid);
  const after = await cards(page, tid);
  assert.deepEqual(after, before);
  assert.equal(await workState(page, tid), null, 'a finished turn has no status line');
  assert.deepEqual(page.errors, []);
  await page.close();
});
