// The console in a real browser on the local stack: sign in, find a run, read its decoded input
// and output (fetched from the gateway by the browser), and what a user sees when the gateway
// cannot be reached; how the control plane serves the console's files (compressed), and what a
// user sees while a page's code loads and when it is gone after a deploy.
import { get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import type { Browser } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { accessibilityViolations, launchBrowser, openConsole, screenshot } from './browser.js';

/** A GET as sent, without fetch's own accept-encoding and decoding: the body as it came. */
function rawGet(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    get(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

describe('console', () => {
  let t: TestStack;
  let browser: Browser;
  before(async () => {
    t = await startTestStack({ name: 'console', workers: 1 });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('is served by the control plane with a strict content security policy', async () => {
    const cpUrl = t.stack.controlPlanes[0]!.httpUrl;
    for (const path of ['/', '/signin', '/p/default/runs']) {
      const res = await fetch(`${cpUrl}${path}`);
      assert.equal(res.status, 200, path);
      assert.match(res.headers.get('content-type') ?? '', /^text\/html/);
      assert.match(res.headers.get('content-security-policy') ?? '', /script-src 'self'/);
      assert.match(await res.text(), /<div id="root">/);
    }
    const missing = await fetch(`${cpUrl}/assets/nothing-here.js`);
    assert.equal(missing.status, 404);
    // The page's script, compressed for a browser that takes brotli or gzip, as it is otherwise.
    const script = /<script type="module" crossorigin src="(\/assets\/index-[\w-]+\.js)">/.exec(await (await fetch(cpUrl)).text())?.[1];
    assert.ok(script !== undefined, 'index.html names its script');
    const plain = await rawGet(`${cpUrl}${script}`, {});
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.headers['vary'], 'accept-encoding');
    assert.match(plain.body.toString('utf8'), /createRoot|react/);
    const br = await rawGet(`${cpUrl}${script}`, { 'accept-encoding': 'br' });
    assert.equal(br.headers['content-encoding'], 'br');
    assert.equal(br.headers['vary'], 'accept-encoding');
    assert.ok(br.body.length < plain.body.length / 2, `brotli: ${br.body.length} of ${plain.body.length} bytes`);
    assert.ok(brotliDecompressSync(br.body).equals(plain.body), 'brotli decodes to the same bytes');
    const gzip = await rawGet(`${cpUrl}${script}`, { 'accept-encoding': 'gzip, deflate' });
    assert.equal(gzip.headers['content-encoding'], 'gzip');
    assert.ok(gunzipSync(gzip.body).equals(plain.body), 'gzip decodes to the same bytes');
    // A browser's usual header gets brotli; one that refuses it gets gzip.
    assert.equal((await rawGet(`${cpUrl}${script}`, { 'accept-encoding': 'gzip, deflate, br, zstd' })).headers['content-encoding'], 'br');
    assert.equal((await rawGet(`${cpUrl}${script}`, { 'accept-encoding': 'br;q=0, gzip' })).headers['content-encoding'], 'gzip');
    const html = await rawGet(`${cpUrl}/p/default/runs`, { 'accept-encoding': 'br' });
    assert.equal(html.headers['content-encoding'], 'br');
    assert.match(brotliDecompressSync(html.body).toString('utf8'), /<div id="root">/);
    // The API is untouched by the console's routes.
    assert.equal((await fetch(`${cpUrl}/v1/projects`)).status, 401);
  });

  it('signs in, finds a run and shows its input and output decoded by the gateway', async () => {
    const runId = await t.start('five-steps', { step3Ms: 1, stepMs: 1 });
    assert.equal((await t.result(runId)).status, 'completed');
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      assert.equal(new URL(page.url()).hash, '', 'the sign-in fragment is cleared from the address bar');
      await page.getByLabel('Workflow', { exact: true }).fill('five-steps');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByRole('link', { name: runId }).click();
      await page.getByRole('heading', { name: `Run ${runId}` }).waitFor();
      const input = page.getByLabel('Input value');
      await input.waitFor();
      assert.deepEqual(JSON.parse((await input.textContent()) ?? ''), { step3Ms: 1, stepMs: 1 });
      const output = page.getByLabel('Output value');
      await output.waitFor();
      assert.ok(((await output.textContent()) ?? '').length > 0);
      await page.getByRole('cell', { name: 'step-3' }).waitFor();
      await screenshot(page, 'run-detail');
      assert.deepEqual(await accessibilityViolations(page), []);
      await page.getByRole('link', { name: 'Runs', exact: true }).click();
      await page.getByRole('link', { name: runId }).waitFor();
      await screenshot(page, 'runs');
      assert.deepEqual(await accessibilityViolations(page), []);
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('asks for an API key, and says so when the key is wrong', async () => {
    const session = await openConsole(browser, t, { signedIn: false });
    try {
      const { page } = session;
      await page.getByRole('heading', { name: 'Sign in to Cairn' }).waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'sign-in');
      await page.getByLabel('API key').fill('ck_not-a-real-key');
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('alert').filter({ hasText: 'does not know this API key' }).waitFor();
      await page.getByLabel('API key').fill(t.stack.secrets.apiToken);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
    } finally {
      await session.close();
    }
  });

  it('says what to do when the gateway cannot be reached, instead of a blank panel', async () => {
    const runId = await t.start('five-steps', { step3Ms: 1, stepMs: 1 });
    await t.result(runId);
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      // Point this browser at a gateway address where nothing listens.
      await page.evaluate(() => {
        const urls = JSON.parse(localStorage.getItem('cairn.gateways') ?? '{}') as Record<string, { url: string }>;
        for (const id of Object.keys(urls)) urls[id]!.url = 'http://127.0.0.1:9';
        localStorage.setItem('cairn.gateways', JSON.stringify(urls));
      });
      await page.goto(`${t.stack.controlPlanes[0]!.httpUrl}/p/default/runs/${runId}`);
      await page.getByRole('heading', { name: `Run ${runId}` }).waitFor();
      const alert = page.getByRole('alert').filter({ hasText: 'The gateway at http://127.0.0.1:9 did not answer' }).first();
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? '', /allowed origins/);
      // The metadata from the control plane is still there.
      await page.getByRole('cell', { name: 'step-3' }).waitFor();
    } finally {
      await session.close();
    }
  });

  it('says "Loading the page" while a page\'s code loads, and to reload when it is gone after a deploy', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      // The audit page's code arrives a second late.
      await page.route(/\/assets\/audit-[\w-]+\.js$/, async (route) => {
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        await route.continue();
      });
      await page.getByRole('link', { name: 'Audit', exact: true }).click();
      await page.getByRole('status').filter({ hasText: 'Loading the page…' }).waitFor();
      await page.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
      // A deploy replaced the assets: the usage page's chunk named by this page's bundle is gone.
      await page.route(/\/assets\/usage-[\w-]+\.js$/, (route) =>
        route.fulfill({ status: 404, contentType: 'application/json', body: '{}' }),
      );
      await page.getByRole('link', { name: 'Usage', exact: true }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'The console was updated since this page was opened' });
      await alert.waitFor();
      // The navigation and the rest of the console still work.
      await page.getByRole('navigation', { name: 'Pages' }).waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'page-chunk-gone');
      await page.unroute(/\/assets\/usage-[\w-]+\.js$/);
      await alert.getByRole('button', { name: 'Reload' }).click();
      await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
    } finally {
      await session.close();
    }
  });
});
