// shot_demo.mjs - screenshots of the demo page with the shopping assistant (not a test): the
// status line while it works, product cards, the streamed answer; for the closing note.
//   TRILEMMA_URL=http://127.0.0.1:8080 OUT=/tmp/shots node tests/browser/shot_demo.mjs
import { chromium } from 'playwright-core';
const BASE = process.env.TRILEMMA_URL || 'http://127.0.0.1:8080';
const OUT = process.env.OUT || '/tmp';
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
         '--disable-background-networking', '--disable-component-update', '--disable-sync',
         '--disable-dev-shm-usage'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(BASE + '/');
await page.getByRole('button', { name: /Open chat/ }).click();
await page.waitForFunction(() => { const el = document.querySelector('trilemma-chat');
  return el && el.status === 'connected' && !el.busy; }, null, { timeout: 30000 });
const asks = [['search', 'best phone under 20000 with a big battery'],
              ['compare', 'compare the two cheapest'],
              ['policy', 'what is the return policy'],
              ['order', 'where is order 1234-5678']];
for (const [name, text] of asks) {
  const box = page.getByRole('textbox', { name: 'Message' });
  await box.fill(text);
  await box.press('Enter');
  if (name === 'search') {
    await page.waitForFunction(() => { const r = document.querySelector('trilemma-chat').shadowRoot;
      const s = r.querySelector('[role=status]'); return s && s.textContent.trim().length > 0; },
      null, { timeout: 30000 }).catch(() => {});
    await page.screenshot({ path: `${OUT}/demo-${name}-status.png` });
  }
  await page.waitForFunction(() => !document.querySelector('trilemma-chat').busy, null, { timeout: 60000 });
  await page.waitForTimeout(300); // let the last frame paint (a screenshot, not a test)
  await page.screenshot({ path: `${OUT}/demo-${name}.png` });
  // the top of the answer: the product cards (if any) and the first lines
  await page.evaluate(() => { const r = document.querySelector('trilemma-chat').shadowRoot;
    const a = r.querySelectorAll('[data-role=assistant]'); const last = a[a.length - 1];
    const t = last.closest('.thread'); t.scrollTop = last.offsetTop - t.offsetTop - 8; });
  await page.waitForTimeout(300);
  await page.screenshot({ path: `${OUT}/demo-${name}-top.png` });
}
await browser.close();
