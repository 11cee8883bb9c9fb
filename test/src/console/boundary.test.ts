// The console keeps the boundary: a person drives it in a real browser through runs whose inputs,
// outputs, signal bodies, approval comments and errors carry a canary token. The browser shows the
// payloads (fetched from the gateway), yet no request from the browser to the control plane, no row
// of the control plane's database, no line of its logs and no span it exports contains the token.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { Browser } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { OtlpCollector } from '../otlp-collector.js';
import { launchBrowser, openConsole, type ConsoleSession, type SeenRequest } from './browser.js';

/** Where in a request the marker appears, if anywhere. */
function leaks(request: SeenRequest, marker: string): string[] {
  const where: string[] = [];
  if (decodeURIComponent(request.url).includes(marker)) where.push(`${request.method} ${request.url}: address`);
  for (const [name, value] of Object.entries(request.headers))
    if (value.includes(marker)) where.push(`${request.method} ${request.url}: header ${name}`);
  if (request.body?.includes(marker)) where.push(`${request.method} ${request.url}: body`);
  return where;
}

describe('console boundary', () => {
  let t: TestStack;
  let browser: Browser;
  let cpTraces: OtlpCollector;
  before(async () => {
    cpTraces = await OtlpCollector.start();
    t = await startTestStack({
      name: 'console-boundary',
      workers: 1,
      suspendThresholdMs: 500,
      controlPlaneEnv: { CAIRN_CP_OTLP_TRACES_ENDPOINT: cpTraces.url },
    });
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
    await cpTraces?.close();
  });

  it('shows payloads carrying a canary in the browser while nothing of them reaches the control plane', async () => {
    const marker = `CANARY${randomUUID().replace(/-/g, '')}`;
    await t.setModelScript({ rules: [{ hasTools: true, toolCalls: [{ name: 'lookup', arguments: { q: `case ${marker}` } }] }] });
    const canary = await t.start('canary', { marker });
    const failing = await t.start('canary-failure', { marker });
    await t.waitForRun(canary, (r) => r.status === 'suspended' && r.waitingSignal === 'approval.review');

    const session: ConsoleSession = await openConsole(browser, t);
    try {
      const { page } = session;
      const cpUrl = t.stack.controlPlanes[0]!.httpUrl;

      // The waiting run: its input, as the gateway decrypts it, is on the page.
      await page.goto(`${cpUrl}/p/default/runs/${canary}`);
      await page.getByLabel('Input value').filter({ hasText: marker }).waitFor();

      // Answer the approval and the signal as the workflow asks (comment and body carry the marker).
      assert.equal(
        (
          await t.gateway('POST', `/v1/runs/${canary}/approvals/review`, {
            body: JSON.stringify({ approved: true, by: `reviewer-${marker}`, comment: `looks fine for ${marker}` }),
            headers: { 'content-type': 'application/json' },
          })
        ).status,
        202,
      );
      await t.waitForRun(canary, (r) => r.status === 'suspended' && r.waitingSignal === 'note');
      assert.equal((await t.signal(canary, 'note', { note: `note-${marker}` })).status, 202);
      assert.equal((await t.result(canary)).status, 'completed');
      assert.equal((await t.result(failing)).status, 'failed');

      // The finished run's output and the failed run's error message, both with the marker, are shown.
      await page.goto(`${cpUrl}/p/default/runs/${canary}`);
      await page.getByLabel('Output value').filter({ hasText: marker }).waitFor();
      await page.goto(`${cpUrl}/p/default/runs/${failing}`);
      await page.locator('.run-error').filter({ hasText: marker }).waitFor();
      await page.goto(`${cpUrl}/p/default/runs`);
      await page.getByRole('link', { name: canary }).waitFor();

      const toControlPlane = session.controlPlaneRequests();
      assert.ok(toControlPlane.length >= 5, 'the console read its metadata from the control plane');
      const gatewayOrigin = new URL(t.stack.gatewayUrl).origin;
      assert.ok(
        session.requests.some((r) => new URL(r.url).origin === gatewayOrigin),
        'the payloads came from the gateway',
      );
      assert.deepEqual(
        toControlPlane.flatMap((r) => leaks(r, marker)),
        [],
        'no request from the browser to the control plane carries the marker',
      );
    } finally {
      await session.close();
    }

    // Stop everything so logs and spans are flushed, then search what the control plane kept.
    await t.stack.stop();
    const where: string[] = [];
    const db = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await db.connect();
    try {
      const tables = await db.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
      for (const { tablename } of tables.rows) {
        const rows = await db.query<{ row: string }>(`SELECT t::text AS row FROM "${tablename}" t`);
        if (rows.rows.some((x) => x.row.includes(marker))) where.push(`control-plane table ${tablename}`);
      }
    } finally {
      await db.end();
    }
    for (const replica of t.stack.controlPlanes) {
      const log = readFileSync(replica.process.logFile, 'utf8');
      assert.match(log, /"route":"\/p\/\*"/, 'the control plane logged the console page requests');
      if (log.includes(marker)) where.push(`log ${replica.process.logFile}`);
    }
    assert.ok(cpTraces.spans.length > 0, 'the control plane exported spans');
    if (cpTraces.received(marker)) where.push('control-plane traces');
    assert.deepEqual(where, [], 'the marker crossed the boundary');
  });
});
