// The replay check on the run page in a real browser on the local stack: a run of fork-demo@1 is
// checked against version 2 (same calls: it replays cleanly) and version 3 (s2 before s1: it
// diverges at position 1), each answered by the stack's worker, which runs every version. The
// journal and the outcome go between the browser and the gateway only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { accessibilityViolations, launchBrowser, openConsole, screenshot } from './browser.js';

describe('console: replay check of a run against a newer version', () => {
  let t: TestStack;
  let browser: Browser;
  before(async () => {
    t = await startTestStack({ name: 'console-replay', workers: 1 });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('shows a clean replay on version 2 and where version 3 diverges, expected against actual', async () => {
    const started = await t.gateway('POST', '/v1/runs', {
      body: JSON.stringify({ workflow: 'fork-demo', version: '1', input: { base: 1 } }),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(started.status, 201, await started.clone().text());
    const runId = ((await started.json()) as { runId: string }).runId;
    assert.equal((await t.result(runId)).status, 'completed');
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.goto(`${t.stack.controlPlanes[0]!.httpUrl}/p/default/runs/${runId}`);
      await page.getByRole('heading', { name: `Run ${runId}` }).waitFor();
      const panel = page.getByRole('form', { name: 'Replay check' });
      await panel.waitFor();
      const version = panel.getByLabel('Replay on version');
      await version.locator('option').nth(1).waitFor({ state: 'attached' });
      // The versions newer than the run's, newest first; not the run's own.
      assert.deepEqual(await version.locator('option').allTextContents(), ['3', '2']);
      // The CLI command stays as the way to check local code.
      assert.equal(await panel.getByLabel('Replay command').textContent(), `cairn replay ${runId} -m dist/workflows.js`);

      await version.selectOption('2');
      await panel.getByRole('button', { name: 'Check replay' }).click();
      const clean = panel.getByRole('status').filter({ hasText: 'Replays cleanly on version 2' });
      await clean.waitFor({ timeout: 30_000 });
      assert.match(
        (await clean.textContent()) ?? '',
        /4 of 4 journaled calls replayed; the code completes where the journal ends, as the run did\./,
      );

      await version.selectOption('3');
      assert.equal(await clean.count(), 0, 'the previous answer goes when another version is picked');
      await panel.getByRole('button', { name: 'Check replay' }).click();
      const diverges = panel.getByRole('status').filter({ hasText: 'Diverges on version 3 at position 1' });
      await diverges.waitFor({ timeout: 30_000 });
      const where = diverges.getByRole('definition');
      assert.deepEqual(await where.allTextContents(), ['step "s1"', 'step "s2"']);
      assert.deepEqual(await diverges.getByRole('term').allTextContents(), ['Journal holds', 'Version 3 calls']);
      assert.match((await diverges.textContent()) ?? '', /would fail this run with a non-determinism error/);
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'run-replay-check');

      // The checks went to the gateway; the control plane was asked for nothing about them.
      assert.ok(session.requests.some((r) => r.method === 'POST' && r.url.endsWith(`/v1/runs/${runId}/replay-checks`)));
      assert.deepEqual(
        session.controlPlaneRequests().filter((r) => r.url.includes('replay')),
        [],
      );
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });
});
