// admin.test.mjs - the debugging dashboard (web/admin/, docs/admin.md) in headless Chromium
// against a real trilemmad with the shipped agents, trilemma-sim as model provider and commerce
// API, and a private PostgreSQL: turns are made over the chat WebSocket (from a page of the same
// server), then the dashboard is used as an operator would.
//
//   - the token form: asked for on first load, a wrong token is refused (401) and asked again,
//     the token is sent as a bearer header and never appears in a URL
//   - search by query type finds the known turn
//   - the waterfall shows every span of the turn's trace (GET /v1/turns/{id}/trace), in tree
//     order, each with its duration, bars placed by start time
//   - a prompt holding <img src=x onerror=...> is shown as text: no element made, no script run
//   - "add to golden set" writes the case (checked in PostgreSQL), a second time says it is in
//   - no Content-Security-Policy violation (the server sends a strict one on /admin/)
//
// Started by tests/integration/run_browser.py (ctest `browser_admin`, label `browser`); by hand:
//   TRILEMMA_SERVER=build/trilemmad TRILEMMA_SIM=build/trilemma-sim TRILEMMA_SOURCE=$PWD \
//   TRILEMMA_ARTIFACTS=build/artifacts node --test tests/browser/admin.test.mjs
// Every wait is for a DOM state or a response, bounded only to turn a hang into a failure.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { Postgres, Sim, Trilemmad, ARTIFACTS, SOURCE, IN_CI } from './servers.mjs';

const SERVER = process.env.TRILEMMA_SERVER;
const SIM = process.env.TRILEMMA_SIM;
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const PG_BIN = process.env.PG_BIN || '/usr/lib/postgresql/15/bin';
const BOUND_MS = 30000;
const TOKEN = 'admin-token-for-the-dashboard-browser-test';
const XSS = '<img src=x onerror="window.__pwned=1">';

let pg;
let sim;
let srv;
let context;
let profile;
const turns = {}; // name -> turn_end event

function psql(sql) {
  const args = ['-X', '-q', '-A', '-t', '-F', '|', '-v', 'ON_ERROR_STOP=1', '-h', pg.dir, '-U', 'postgres', '-d', 'trilemma', '-c', sql];
  const asRoot = process.getuid && process.getuid() === 0;
  const [cmd, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', path.join(PG_BIN, 'psql'), ...args]]
    : [path.join(PG_BIN, 'psql'), args];
  return new Promise((resolve, reject) => {
    execFile(cmd, argv, { cwd: '/', timeout: BOUND_MS }, (err, out, stderr) => {
      if (err) reject(new Error('psql: ' + stderr));
      else resolve(out.split('\n').filter(Boolean).map((l) => l.split('|')));
    });
  });
}

// One conversation over the chat WebSocket, from a page of the server: each text a turn.
async function chat(texts) {
  const page = await context.newPage();
  await page.goto(srv.url + '/healthz');
  const ends = await page.evaluate(async ({ texts, bound }) => {
    const ws = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
    const queue = [];
    let wake = null;
    ws.onmessage = (e) => { queue.push(JSON.parse(e.data)); if (wake) wake(); };
    const next = async () => {
      const deadline = Date.now() + bound;
      while (!queue.length) {
        if (Date.now() > deadline) throw new Error('no event from the server');
        await new Promise((r) => { wake = r; setTimeout(r, 1000); });
      }
      return queue.shift();
    };
    const first = await next();
    if (first.type !== 'session') throw new Error('first event: ' + JSON.stringify(first));
    const out = [];
    for (const [i, text] of texts.entries()) {
      ws.send(JSON.stringify({ type: 'user_message', id: 'm' + i, text }));
      for (;;) {
        const ev = await next();
        if (ev.type === 'turn_end') { out.push({ ...ev, conversation_id: first.conversation_id }); break; }
      }
    }
    ws.close();
    return out;
  }, { texts, bound: BOUND_MS });
  await page.close();
  return ends;
}

before(async () => {
  assert.ok(SERVER && existsSync(SERVER), 'TRILEMMA_SERVER must name the trilemmad binary');
  assert.ok(SIM && existsSync(SIM), 'TRILEMMA_SIM must name the trilemma-sim binary');
  pg = await new Postgres().start();
  sim = await new Sim(SIM, ['--ttft-ms', '40', '--ttft-jitter-ms', '0', '--tps', '200', '--cheap-mistake-rate', '0',
    '--classifier-ms', '5', '--catalog-product', 'ms=60']).start();
  const u = `http://127.0.0.1:${sim.port}`;
  srv = await new Trilemmad(SERVER, {
    name: 'admin',
    config: {
      model: { model: 'openai/sim-frontier', retry_base_ms: 10 },
      orchestrator: { agents_file: path.join(SOURCE, 'config', 'agents.ini') },
      tools: { tools_file: path.join(SOURCE, 'config', 'tools.json') },
      trace: { capture: 'full' }, // prompts, responses and tool payloads in the spans
    },
    env: { DATABASE_URL: pg.url, TRILEMMA_ADMIN_TOKEN: TOKEN, TRILEMMA_MODEL: 'openai/sim-frontier',
      OPENAI_BASE_URL: u + '/v1', ANTHROPIC_BASE_URL: u, GEMINI_BASE_URL: u, TRILEMMA_CATALOG_URL: u },
  }).start();
  profile = mkdtempSync(path.join(tmpdir(), 'trilemma-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 60000,
    viewport: { width: 1440, height: 900 },
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const [search, compare] = await chat(['best phone under 20000 with a big battery',
    'compare the two cheapest ' + XSS]);
  Object.assign(turns, { search, compare });
  // stored once turn_end is out (group commit): wait for the trace to be readable
  const deadline = Date.now() + BOUND_MS;
  for (;;) {
    const r = await fetch(`${srv.url}/v1/turns/${compare.turn_id}/trace`, { headers: { Authorization: 'Bearer ' + TOKEN } });
    if (r.status === 200) break;
    if (Date.now() > deadline) throw new Error('the trace was not stored: ' + r.status);
    await new Promise((res) => setTimeout(res, 50));
  }
});

after(async () => {
  if (context) await context.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  if (srv) { await srv.stop(); srv.cleanup(); }
  if (sim) await sim.stop();
  if (pg) await pg.stop();
});

async function newPage() {
  const page = await context.newPage();
  // the pages run under a strict Content-Security-Policy (net/): any violation is a failure
  await page.addInitScript(() => {
    window.__csp = [];
    document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
  });
  page.setDefaultTimeout(BOUND_MS);
  page.errors = [];
  page.requestsSeen = [];
  page.on('pageerror', (e) => page.errors.push(e.message));
  page.on('dialog', (d) => { page.errors.push('dialog: ' + d.message()); d.dismiss().catch(() => {}); });
  page.on('request', (r) => page.requestsSeen.push({ url: r.url(), auth: r.headers().authorization || '' }));
  return page;
}

async function giveToken(page, token) {
  const dlg = page.locator('#admin-token-dialog');
  await dlg.waitFor({ state: 'visible' });
  await page.fill('#admin-token-input', token);
  await page.press('#admin-token-input', 'Enter');
}

function fmtMs(ms) { // as common.js writes durations
  if (ms < 1) return ms.toFixed(2) + ' ms';
  if (ms < 1000) return Math.round(ms) + ' ms';
  return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
}

test('token form, search, waterfall, text-only rendering, add to golden set', async () => {
  const page = await newPage();
  await page.goto(srv.url + '/admin/');
  // a wrong token: refused, asked again with the reason; then the right one
  await giveToken(page, 'not-the-token');
  await page.locator('#admin-token-dialog').waitFor({ state: 'visible' });
  await page.waitForFunction(() => /refused/.test(document.getElementById('admin-token-help')?.textContent || ''));
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-token.png') });
  await giveToken(page, TOKEN);
  await page.locator('#results tbody tr').first().waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('trilemma-admin-token')), TOKEN);

  // search by the known turn's query type
  const trace = await (await fetch(`${srv.url}/v1/turns/${turns.compare.turn_id}/trace`, { headers: { Authorization: 'Bearer ' + TOKEN } })).json();
  assert.ok(trace.query_type, 'the turn has a query type');
  await page.fill('#search input[name=query_type]', trace.query_type);
  await page.click('#search button[type=submit]');
  await page.waitForFunction((n) => /turns? ?/.test(document.getElementById('search-status').textContent) &&
    [...document.querySelectorAll('#results tbody tr')].length >= 1 &&
    [...document.querySelectorAll('#results tbody tr')].every((r) => r.cells[4].textContent === n), trace.query_type);
  const row = page.locator('#results tbody tr', { hasText: 'compare the two cheapest' });
  assert.equal(await row.count(), 1);
  // the hostile text is shown as text in the results
  assert.ok((await row.locator('td.query').textContent()).includes(XSS));

  // open it: the waterfall has every span, each with its duration, bars ordered by start
  await row.click();
  await page.waitForFunction((id) => document.getElementById('turn')?.dataset.turnId === id && document.querySelectorAll('#waterfall li').length > 0, turns.compare.turn_id);
  const shown = await page.$$eval('#waterfall li', (lis) => lis.map((li) => ({
    id: li.dataset.spanId, kind: li.dataset.kind, dur: li.querySelector('.dur').textContent,
    left: parseFloat(li.querySelector('.bar').style.left), width: parseFloat(li.querySelector('.bar').style.width) })));
  assert.equal(shown.length, trace.spans.length);
  assert.deepEqual(new Set(shown.map((s) => s.id)), new Set(trace.spans.map((s) => s.span_id)));
  const byId = new Map(trace.spans.map((s) => [s.span_id, s]));
  const t0 = Math.min(...trace.spans.map((s) => s.start_unix_us));
  const t1 = Math.max(...trace.spans.map((s) => s.end_unix_us));
  for (const s of shown) {
    const sp = byId.get(s.id);
    assert.equal(s.dur, fmtMs((sp.end_unix_us - sp.start_unix_us) / 1000), sp.name);
    assert.ok(Math.abs(s.left - ((sp.start_unix_us - t0) / (t1 - t0)) * 100) < 0.01, sp.name);
  }
  // tree order: every span after its parent; the root first
  const pos = new Map(shown.map((s, i) => [s.id, i]));
  assert.equal(byId.get(shown[0].id).parent_span_id, null);
  for (const s of trace.spans) if (s.parent_span_id) assert.ok(pos.get(s.parent_span_id) < pos.get(s.span_id), s.name);
  // a multi-tool turn: model and tool spans are there
  assert.ok(shown.filter((s) => s.kind === 'tool').length >= 2, JSON.stringify(shown));
  assert.ok(shown.some((s) => s.kind === 'model'));
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-waterfall.png'), fullPage: true });

  // the prompt of a model span, with the hostile text: shown as text, no element, no script
  const model = trace.spans.find((s) => s.kind === 'model' && String(s.attributes['gen_ai.input.messages'] || '').includes('onerror'));
  assert.ok(model, 'a model span holds the prompt (capture=full)');
  await page.click(`#waterfall li[data-span-id="${model.span_id}"]`);
  await page.waitForFunction(() => [...document.querySelectorAll('#span pre')].some((p) => p.textContent.includes('onerror')));
  assert.equal(await page.evaluate(() => document.querySelectorAll('img').length), 0);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.ok(await page.evaluate((x) => document.getElementById('turn-title').textContent.includes(x), XSS));
  // a tool span: its input and output
  const tool = trace.spans.find((s) => s.kind === 'tool');
  await page.click(`#waterfall li[data-span-id="${tool.span_id}"]`);
  await page.waitForFunction(() => [...document.querySelectorAll('#span h5')].some((h) => h.textContent === 'Tool input'));
  await page.screenshot({ path: path.join(ARTIFACTS, 'admin-span.png'), fullPage: true });

  // add to golden set: written (PostgreSQL), then "already in"
  await page.fill('#golden input[name=note]', 'browser test');
  await page.click('#golden-add');
  await page.waitForFunction(() => /added as candidate case #\d+/.test(document.getElementById('golden-status').textContent));
  const rows = await psql(`SELECT status, note, case_json->>'query' FROM golden_cases WHERE source_turn_id = '${turns.compare.turn_id}'`);
  assert.deepEqual(rows, [['candidate', 'browser test', 'compare the two cheapest ' + XSS]]);
  await page.click('#golden-add');
  await page.waitForFunction(() => /already/.test(document.getElementById('golden-status').textContent));
  assert.equal((await psql('SELECT count(*) FROM golden_cases'))[0][0], '1');

  // the token only ever travelled as a header
  for (const r of page.requestsSeen) {
    assert.ok(!r.url.includes(TOKEN), r.url);
    if (new URL(r.url).pathname.startsWith('/v1/')) assert.ok(r.auth === 'Bearer ' + TOKEN || r.auth === 'Bearer not-the-token', r.url);
  }
  assert.deepEqual(page.errors, []);
  assert.deepEqual(await page.evaluate(() => window.__csp), []);
  await page.close();
});

test('keyboard: / focuses search, j/k move, Enter opens, flags view loads', async () => {
  const page = await newPage();
  await page.goto(srv.url + '/admin/#flags');
  await giveToken(page, TOKEN); // a new tab: asked once more
  await page.locator('#flags-status').filter({ hasText: /flag/ }).waitFor();
  await page.keyboard.press('t');
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.name), 'conversation_id');
  await page.keyboard.press('Escape');
  await page.locator('#results tbody tr').first().waitFor();
  await page.keyboard.press('j');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('#waterfall li').length > 0);
  await page.keyboard.press('ArrowRight');
  await page.keyboard.press('j');
  assert.equal(await page.locator('#waterfall li.sel').count(), 1);
  assert.deepEqual(page.errors, []);
  await page.close();
});

test('no token in the tab: nothing is fetched from the API until one is given', async () => {
  const page = await newPage();
  await page.goto(srv.url + '/admin/');
  await page.locator('#admin-token-dialog').waitFor({ state: 'visible' });
  assert.deepEqual(page.requestsSeen.filter((r) => new URL(r.url).pathname.startsWith('/v1/')), []);
  await page.close();
});

if (!IN_CI && !existsSync(path.join(PG_BIN, 'initdb'))) console.log('PostgreSQL binaries missing: the test will fail');
