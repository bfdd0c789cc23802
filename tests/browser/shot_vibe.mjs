// shot_vibe.mjs - the screenshot of the vibe-check page in docs (docs/screenshots/vibe.png): a
// running server with a session (trilemma-eval vibe --upload), one voter's first pair.
//   VIBE_URL=http://127.0.0.1:PORT VIBE_TOKEN=... VIBE_SESSION=N OUT=docs/screenshots/vibe.png \
//     node tests/browser/shot_vibe.mjs
import { chromium } from 'playwright-core';

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(`${process.env.VIBE_URL}/admin/vibe.html#session=${process.env.VIBE_SESSION}`);
await page.locator('dialog input[type=password]').fill(process.env.VIBE_TOKEN);
await page.keyboard.press('Enter');
await page.waitForFunction((s) => document.querySelector('#session option[value="' + s + '"]'), process.env.VIBE_SESSION);
await page.locator('#voter').fill(process.env.VIBE_VOTER || 'panel-1');
await page.keyboard.press('Enter');
await page.waitForFunction(() => !document.getElementById('pair').hidden);
await page.evaluate(() => window.scrollTo(0, 0));
await page.screenshot({ path: process.env.OUT || 'vibe.png' });
await browser.close();
