// vibe.test.mjs - the vibe-check page (web/admin/vibe.html) and the golden set's review queue
// (web/admin/golden.html) in headless Chromium against a real
// trilemmad with PostgreSQL and a session of pairs made from two eval runs. Started by
// tests/evals/test_vibe_browser.py (ctest `browser_vibe`), which made the session and checks the
// stored votes afterwards; this file gets, in the environment:
//   VIBE_URL       the server (http://127.0.0.1:PORT)     VIBE_TOKEN     the admin token
//   VIBE_SESSION   the session id                         VIBE_VERSIONS  the two versions' names (JSON)
//   VIBE_MARKS     {case_id: {a: marker in answer a, b: marker in answer b}} (JSON)
//   VIBE_OUT       where to write what each voter saw and pressed (JSON)
//   GOLDEN_CASE    the id of a candidate case in the review queue
//   TRILEMMA_ARTIFACTS  screenshots
// Each voter votes with the keyboard only (Tab / typing / Enter / the vote keys); every wait is
// for the page to show something, bounded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const BOUND_MS = 30000;
const URL_ = process.env.VIBE_URL;
const TOKEN = process.env.VIBE_TOKEN;
const SESSION = process.env.VIBE_SESSION;
const VERSIONS = JSON.parse(process.env.VIBE_VERSIONS || '[]');
const MARKS = JSON.parse(process.env.VIBE_MARKS || '{}');
const ARTIFACTS = process.env.TRILEMMA_ARTIFACTS || path.join(tmpdir(), 'trilemma-vibe-artifacts');
mkdirSync(ARTIFACTS, { recursive: true });

let context;
let profile;
const seen = {}; // voter -> [{case_id, left: 'a'|'b', key}]

before(async () => {
  profile = mkdtempSync(path.join(tmpdir(), 'trilemma-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, timeout: 60000, viewport: { width: 1280, height: 860 },
    args: ['--no-sandbox', '--headless', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
});

after(async () => {
  if (process.env.VIBE_OUT) writeFileSync(process.env.VIBE_OUT, JSON.stringify(seen, null, 1));
  if (context) await context.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

// Which version's answer is on the left, from the markers the test put in the answers.
async function sides(page) {
  const left = await page.locator('#left').textContent();
  const right = await page.locator('#right').textContent();
  const id = Object.keys(MARKS).find((k) => left.includes(MARKS[k].a) || left.includes(MARKS[k].b));
  assert.ok(id, 'the left answer is one of the session\'s');
  const leftIs = left.includes(MARKS[id].a) ? 'a' : 'b';
  assert.ok(right.includes(MARKS[id][leftIs === 'a' ? 'b' : 'a']), 'the right answer is the other version\'s');
  return { id, leftIs };
}

// A voter's whole session, keyboard only: the token form, the name, Start, then one key per pair.
async function voteAll(voter, keys, shot) {
  const page = await context.newPage();
  page.setDefaultTimeout(BOUND_MS);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${URL_}/admin/vibe.html#session=${SESSION}`);
  // the token form of common.js (a modal dialog with the focus in it)
  await page.locator('dialog input[type=password]').waitFor();
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');
  await page.waitForFunction((s) => document.querySelector('#session option[value="' + s + '"]'), SESSION);
  // keyboard only: Tab through the page to the name field
  for (let i = 0; i < 10 && await page.evaluate(() => document.activeElement.id) !== 'voter'; i++) {
    await page.keyboard.press('Tab');
  }
  assert.equal(await page.evaluate(() => document.activeElement.id), 'voter');
  await page.keyboard.type(voter);
  await page.keyboard.press('Enter'); // submits the form: Start
  const out = [];
  for (let i = 0; ; i++) {
    await page.waitForFunction(() => !document.getElementById('pair').hidden ||
      /judged/.test(document.getElementById('status').textContent));
    if (await page.locator('#pair').isHidden()) break;
    // blind: no version name anywhere in the page
    const html = await page.content();
    for (const v of VERSIONS) assert.ok(!html.includes(v), `the page shows the version name ${v}`);
    const { id, leftIs } = await sides(page);
    if (shot && i === 0) await page.screenshot({ path: path.join(ARTIFACTS, 'vibe.png'), fullPage: false });
    const key = keys[i % keys.length];
    const progress = await page.locator('#progress').textContent();
    await page.keyboard.press(key);
    await page.waitForFunction((p) => document.getElementById('progress').textContent !== p ||
      document.getElementById('pair').hidden, progress);
    out.push({ case_id: id, left: leftIs, key });
  }
  assert.deepEqual(errors, []);
  await page.close();
  seen[voter] = out;
  return out;
}

test('two voters judge every pair blind, by keyboard, with randomized sides', async () => {
  const ann = await voteAll('ann', ['a', 'b', 't', 'x', 'ArrowLeft', 'ArrowRight'], true);
  const bob = await voteAll('bob', ['b', 'a'], false);
  const n = Object.keys(MARKS).length;
  assert.equal(ann.length, n);
  assert.equal(bob.length, n);
  // every pair once per voter
  assert.equal(new Set(ann.map((x) => x.case_id)).size, n);
  // randomized: each voter saw version a on the left for some pairs and on the right for others,
  // and the two voters saw some pair the other way round
  for (const v of [ann, bob]) {
    assert.ok(v.some((x) => x.left === 'a') && v.some((x) => x.left === 'b'), 'sides vary');
  }
  const bobSide = Object.fromEntries(bob.map((x) => [x.case_id, x.left]));
  assert.ok(ann.some((x) => bobSide[x.case_id] !== x.left), 'sides differ between voters');
});

test('the review queue lists a candidate, links its trace and accepts it', async () => {
  const page = await context.newPage();
  page.setDefaultTimeout(BOUND_MS);
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(`${URL_}/admin/golden.html`);
  await page.locator('dialog input[type=password]').waitFor();
  await page.keyboard.type(TOKEN);
  await page.keyboard.press('Enter');
  const row = page.locator(`#rows tr[data-id="${process.env.GOLDEN_CASE}"]`);
  await row.waitFor();
  assert.match(await row.locator('td.q').textContent(), /order 1234-5678/);
  const href = await row.locator('a').getAttribute('href');
  assert.match(href, /^\.\/#conv=[0-9a-f]{32}&turn=[0-9a-f]{32}$/);
  await page.screenshot({ path: path.join(ARTIFACTS, 'golden.png') });
  await page.locator('#reviewer').fill('rita');
  await row.getByRole('button', { name: 'Accept' }).focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => /accepted\./.test(document.getElementById('status').textContent));
  assert.equal(await row.count(), 0);
  assert.deepEqual(errors, []);
  await page.close();
});
