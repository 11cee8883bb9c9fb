// The console's operations pages in a real browser on the local stack: schedules (pause, resume,
// trigger, and a backfill previewed before it fires), usage charts with their tables, the audit
// log and its chain verification, data planes with their workers and the gateway connection test,
// API keys (created, used, revoked) and the residency report. Each page passes axe's WCAG 2.1 AA
// checks and leaves a screenshot.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseAuditCheckpoint, parseAuditPublicKeys, verifyAuditCheckpointSignature } from '@cairn/common';
import type { Browser } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { accessibilityViolations, launchBrowser, openConsole, screenshot } from './browser.js';

describe('console: operations pages', () => {
  let t: TestStack;
  let browser: Browser;
  let cpUrl: string;
  // The caller names the shape of the JSON body it expects (a typed cast, as `res.json() as T`).
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  const api = async <T = Record<string, unknown>>(
    method: string,
    path: string,
    options: { body?: unknown; key?: string } = {},
  ): Promise<{ status: number; body: T }> => {
    const res = await fetch(`${cpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${options.key ?? t.stack.secrets.apiToken}`,
        ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(options.body === undefined ? {} : { body: JSON.stringify(options.body) }),
    });
    return { status: res.status, body: (await res.json()) as T };
  };
  const page = (path: string): string => `${cpUrl}/p/default/${path}`;
  /** A gateway token that may start runs but not read them. */
  const startOnlyToken = `cgt_${randomBytes(24).toString('hex')}`;

  before(async () => {
    t = await startTestStack({ name: 'console-ops', workers: 1, gatewayTokens: [`${startOnlyToken}:start`] });
    cpUrl = t.stack.controlPlanes[0]!.httpUrl;
    browser = await launchBrowser();
  });
  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('pauses, resumes and triggers a schedule, and previews a backfill before firing it', async () => {
    const created = await api<{ schedule: { id: string } }>('POST', '/v1/projects/default/schedules', {
      body: {
        name: 'hourly-report',
        dataPlaneId: t.stack.secrets.dataPlaneId,
        workflowName: 'five-steps',
        cron: '0 * * * *',
        timeZone: 'UTC',
        overlapPolicy: 'allow_all',
      },
    });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const session = await openConsole(browser, t);
    try {
      const { page: p } = session;
      await p.getByRole('link', { name: 'Schedules', exact: true }).click();
      await p.getByRole('heading', { name: 'Schedules', level: 1 }).waitFor();
      const row = p.getByRole('row').filter({ has: p.getByRole('rowheader', { name: 'hourly-report' }) });
      await row.getByText('active').waitFor();
      assert.deepEqual(await accessibilityViolations(p), []);
      await screenshot(p, 'schedules');

      await row.getByRole('button', { name: 'Pause hourly-report' }).click();
      await p.getByRole('status').filter({ hasText: 'Schedule hourly-report is paused' }).waitFor();
      await row.getByText('paused').first().waitFor();
      assert.equal(
        (await api<{ schedule: { paused: boolean } }>('GET', `/v1/projects/default/schedules/${created.body.schedule.id}`)).body.schedule
          .paused,
        true,
      );

      await row.getByRole('button', { name: 'Resume hourly-report' }).click();
      await p.getByRole('status').filter({ hasText: 'Schedule hourly-report is running again' }).waitFor();
      await row.getByText('active').waitFor();

      await row.getByRole('button', { name: 'Trigger now: hourly-report' }).click();
      const triggered = p.getByRole('status').filter({ hasText: 'Schedule hourly-report was triggered: run' });
      await triggered.waitFor();
      const runId = (await triggered.getByRole('link').textContent()) ?? '';
      assert.match(runId, /^[0-9a-f-]{36}$/);
      const run = await t.describe(runId);
      assert.equal(run.run.workflowName, 'five-steps');

      // A backfill of yesterday 00:00–06:00 (UTC, the browser's zone here): six hourly ticks.
      const yesterday = new Date(Date.now() - 86_400_000).toISOString().slice(0, 10);
      await row.getByRole('button', { name: 'Backfill hourly-report' }).click();
      const panel = p.getByRole('region', { name: 'Backfill hourly-report' });
      await panel.getByLabel('From').fill(`${yesterday}T00:00`);
      await panel.getByLabel('To').fill(`${yesterday}T06:00`);
      await panel.getByRole('button', { name: 'Preview ticks' }).click();
      await panel.getByRole('status').filter({ hasText: '6 ticks in this range: 6 would fire, 0 already fired.' }).waitFor();
      const ticks = panel.getByRole('table', { name: 'Ticks the backfill would fire' });
      assert.equal(await ticks.getByRole('row').count(), 7);
      await ticks.getByRole('cell', { name: 'fires a run' }).first().waitFor();
      assert.deepEqual(await accessibilityViolations(p), []);
      await screenshot(p, 'schedules-backfill-preview');
      // Nothing fired for the preview.
      const before = await api<{ recentFirings: Array<{ kind: string }> }>(
        'GET',
        `/v1/projects/default/schedules/${created.body.schedule.id}`,
      );
      assert.deepEqual(
        before.body.recentFirings.map((f) => f.kind),
        ['trigger'],
      );
      await panel.getByRole('button', { name: 'Fire 6 runs' }).click();
      await panel.getByRole('status').filter({ hasText: 'Backfill done: 6 runs started.' }).waitFor();
      const afterwards = await api<{ recentFirings: Array<{ kind: string; tickAt: string }> }>(
        'GET',
        `/v1/projects/default/schedules/${created.body.schedule.id}`,
      );
      assert.deepEqual(
        afterwards.body.recentFirings
          .filter((f) => f.kind === 'backfill')
          .map((f) => f.tickAt)
          .sort(),
        Array.from({ length: 6 }, (_, i) => `${yesterday}T0${i}:00:00.000Z`),
      );
      // The same range again: every tick already fired, nothing to fire.
      await panel.getByRole('button', { name: 'Preview ticks' }).click();
      await panel.getByRole('status').filter({ hasText: '6 ticks in this range: 0 would fire, 6 already fired.' }).waitFor();
      assert.equal(await panel.getByRole('button', { name: 'Fire 0 runs' }).isDisabled(), true);
      // A range in the future is refused with the control plane's reason.
      const tomorrow = new Date(Date.now() + 86_400_000).toISOString().slice(0, 10);
      await panel.getByLabel('To').fill(`${tomorrow}T06:00`);
      await panel.getByRole('button', { name: 'Preview ticks' }).click();
      await panel.getByRole('alert').filter({ hasText: 'a backfill covers past ticks' }).waitFor();
      assert.deepEqual(
        session.pageErrors.filter((e) => !e.includes('400')),
        [],
      );
    } finally {
      await session.close();
    }
  });

  it('charts usage per day, per workflow and per model, each with a table for screen readers', async () => {
    const runId = await t.start('five-steps', { step3Ms: 1, stepMs: 1 });
    assert.equal((await t.result(runId)).status, 'completed');
    const session = await openConsole(browser, t);
    try {
      const { page: p } = session;
      await p.goto(page('usage'));
      await p.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
      for (const title of ['Runs started per day', 'Steps executed per day', 'Model tokens per day', 'Runs started per workflow']) {
        await p.getByRole('figure', { name: title, exact: true }).waitFor();
      }
      // The numbers behind the charts are a table (read by screen readers; shown on request).
      const today = new Date().toISOString().slice(0, 10);
      const runsPerDay = p.getByRole('table', { name: 'Runs started per day', exact: true });
      const todayRuns = Number(
        await runsPerDay
          .getByRole('row', { name: new RegExp(`^${today}`) })
          .getByRole('cell')
          .textContent(),
      );
      const report = await api<{
        days: Array<{ day: string; runsStarted: number }>;
        totals: { workflows: Array<{ workflow: string; runsStarted: number }> };
      }>('GET', '/v1/projects/default/usage');
      assert.equal(todayRuns, report.body.days.find((d) => d.day === today)!.runsStarted);
      assert.ok(todayRuns >= 1);
      const perWorkflow = p.getByRole('table', { name: 'Runs started per workflow', exact: true });
      const fiveSteps = report.body.totals.workflows.find((w) => w.workflow === 'five-steps')!;
      assert.equal(
        await perWorkflow
          .getByRole('row', { name: /^five-steps/ })
          .getByRole('cell')
          .textContent(),
        String(fiveSteps.runsStarted),
      );
      // Per day, by workflow: one column per workflow.
      const byWorkflow = p.getByRole('table', { name: 'Runs started per day, by workflow' });
      await byWorkflow.getByRole('columnheader', { name: 'five-steps' }).waitFor();
      const figure = p.getByRole('figure', { name: 'Steps executed per day', exact: true });
      await figure.getByRole('button', { name: 'Show as a table' }).click();
      await figure.getByRole('table').getByRole('columnheader', { name: 'Steps executed' }).waitFor();
      assert.equal(await figure.getByRole('button', { name: 'Hide the table' }).getAttribute('aria-expanded'), 'true');
      assert.deepEqual(await accessibilityViolations(p), []);
      await screenshot(p, 'usage');
      // A range the control plane refuses says why.
      await p.goto(page('usage?from=2020-01-01'));
      await p.getByRole('alert').filter({ hasText: 'at most 366 days' }).waitFor();
    } finally {
      await session.close();
    }
  });

  it('lists the audit log and verifies its chain against the newest signed checkpoint', async () => {
    const signed = await api<{ checkpoint: { position: number } }>('POST', '/v1/projects/default/audit/checkpoints');
    assert.ok([200, 201].includes(signed.status), JSON.stringify(signed.body));
    const session = await openConsole(browser, t);
    try {
      const { page: p } = session;
      await p.getByRole('link', { name: 'Audit', exact: true }).click();
      await p.getByRole('heading', { name: 'Audit log', level: 1 }).waitFor();
      await p.getByRole('table', { name: 'Audit entries' }).getByRole('row').nth(1).waitFor();
      await p.getByRole('button', { name: 'Verify the chain' }).click();
      const result = p.getByRole('status').filter({ hasText: 'The audit chain is intact.' });
      await result.waitFor();
      const verified = await api<{ ok: boolean; entries: number }>('POST', '/v1/projects/default/audit/verify');
      assert.equal(verified.body.ok, true);
      assert.match((await result.textContent()) ?? '', /\d+ entries checked, every hash recomputed up to the head at position \d+/);
      await result.getByText(`The chain contains the newest signed checkpoint: position ${signed.body.checkpoint.position},`).waitFor();
      await p
        .getByRole('table', { name: 'Signed checkpoints' })
        .getByRole('cell', { name: String(signed.body.checkpoint.position), exact: true })
        .first()
        .waitFor();
      // Sign a checkpoint now and keep it: the downloaded file verifies with the published key.
      await p.getByRole('button', { name: 'Sign a checkpoint now' }).click();
      await p.getByRole('status').filter({ hasText: 'Checkpoint signed at position' }).waitFor();
      const [download] = await Promise.all([
        p.waitForEvent('download'),
        p
          .getByRole('button', { name: /^Download the checkpoint at position / })
          .first()
          .click(),
      ]);
      assert.match(download.suggestedFilename(), /^audit-checkpoint-\d+\.json$/);
      const saved = parseAuditCheckpoint(JSON.parse(readFileSync(await download.path(), 'utf8')), 'the downloaded checkpoint');
      const keys = await (await fetch(`${cpUrl}/.well-known/cairn-audit-keys`)).text();
      assert.deepEqual(verifyAuditCheckpointSignature(saved, parseAuditPublicKeys(keys, 'the published keys')), {
        ok: true,
        keyId: saved.keyId,
      });
      // Filtering by action narrows the list (and is in the address).
      await p.getByLabel('Action').fill('run.*');
      await p.getByRole('button', { name: 'Apply' }).click();
      await p.waitForURL(/action=run/);
      // The filtered page replaces the unfiltered one when its answer arrives: wait for it to settle.
      const actionCells = p.getByRole('table', { name: 'Audit entries' }).locator('tbody tr td:nth-child(4)');
      let actions: string[] = [];
      for (const deadline = Date.now() + 10_000; Date.now() < deadline;) {
        actions = await actionCells.allTextContents();
        if (actions.length > 0 && actions.every((a) => a.startsWith('run.'))) break;
        await p.waitForTimeout(100);
      }
      assert.ok(actions.length > 0);
      assert.ok(
        actions.every((a) => a.startsWith('run.')),
        actions.join(', '),
      );
      assert.deepEqual(await accessibilityViolations(p), []);
      await screenshot(p, 'audit');
    } finally {
      await session.close();
    }
  });

  it('shows the data plane and its connected worker, and says plainly when a gateway token is bad', async () => {
    const dataPlanes = await api<{ dataPlanes: Array<{ id: string; name: string }> }>('GET', '/v1/projects/default/data-planes');
    const dp = dataPlanes.body.dataPlanes.find((d) => d.id === t.stack.secrets.dataPlaneId)!;
    const session = await openConsole(browser, t);
    try {
      const { page: p } = session;
      await p.getByRole('link', { name: 'Data planes', exact: true }).click();
      const panel = p.getByRole('region', { name: dp.name, exact: true });
      await panel.waitFor();
      const workers = panel.getByRole('table', { name: `Workers of ${dp.name}` });
      await workers.getByRole('cell', { name: 'connected', exact: true }).waitFor();
      await panel
        .getByRole('table', { name: `Workflow versions announced in ${dp.name}` })
        .getByRole('cell', { name: 'five-steps' })
        .first()
        .waitFor();
      // The gateway configured by the sign-in link: reachable, CORS allowed, token accepted.
      assert.equal(await panel.getByLabel('Gateway URL').inputValue(), t.stack.gatewayUrl);
      await panel.getByRole('button', { name: 'Test connection' }).click();
      const good = panel.getByRole('status', { name: 'Connection test' });
      await good.getByText('The token is accepted and has the read scope').waitFor();
      assert.deepEqual(await accessibilityViolations(p), []);
      await screenshot(p, 'data-planes');
      // A bad token: the gateway is reachable, and the token is refused.
      await panel.getByLabel('Gateway token').fill('cgt_not-a-real-token');
      await panel.getByRole('button', { name: 'Test connection' }).click();
      const bad = panel.getByRole('alert', { name: 'Connection test' });
      await bad.getByText('The gateway refused the token').waitFor();
      await bad.getByText('is reachable from this page and ready').waitFor();
      // A token without the read scope: the gateway names the scope it needs.
      await panel.getByLabel('Gateway token').fill(startOnlyToken);
      await panel.getByRole('button', { name: 'Test connection' }).click();
      const scope = panel.getByRole('alert', { name: 'Connection test' }).getByText('The token lacks a scope');
      await scope.waitFor();
      assert.match((await scope.textContent()) ?? '', /needs the scope read/);
      // An address where nothing listens.
      await panel.getByLabel('Gateway URL').fill('http://127.0.0.1:9');
      await panel.getByRole('button', { name: 'Test connection' }).click();
      await panel
        .getByRole('alert', { name: 'Connection test' })
        .getByText('did not answer: it is unreachable from this browser')
        .waitFor();
      assert.deepEqual(await accessibilityViolations(p), []);
      // The gateway's URL and token never went to the control plane.
      for (const r of session.controlPlaneRequests()) {
        for (const secret of ['cgt_not-a-real-token', startOnlyToken, t.stack.gatewayUrl]) {
          assert.ok(!r.url.includes(secret) && !(r.body ?? '').includes(secret), r.url);
        }
        assert.ok(!Object.values(r.headers).some((v) => v.includes(t.stack.secrets.gatewayToken)), r.url);
      }
    } finally {
      await session.close();
    }
  });

  it('creates an API key with a role, shows its secret once, and revokes it', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page: p } = session;
      await p.context().grantPermissions(['clipboard-read', 'clipboard-write'], { origin: cpUrl });
      await p.getByRole('link', { name: 'API keys', exact: true }).click();
      await p.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
      await p.getByLabel('Name').fill('console-reader');
      await p.getByLabel('Role').selectOption('viewer');
      await p.getByRole('button', { name: 'Create key' }).click();
      await p.getByRole('heading', { name: 'API key console-reader created' }).waitFor();
      const secret = await p.getByLabel('New API key secret').inputValue();
      assert.ok(secret.length > 20);
      await p.getByRole('button', { name: 'Copy', exact: true }).click();
      await p.getByText('Copied to the clipboard.').waitFor();
      assert.equal(await p.evaluate<string>('navigator.clipboard.readText()'), secret);
      // The new key works against the control plane's API, with its role.
      const who = await api<{ role: string }>('GET', '/v1/whoami', { key: secret });
      assert.deepEqual([who.status, who.body.role], [200, 'viewer']);
      const row = p.getByRole('row').filter({ has: p.getByRole('rowheader', { name: 'console-reader' }) });
      await row.getByText('active').waitFor();
      assert.deepEqual(await accessibilityViolations(p), []);
      await screenshot(p, 'api-keys');
      // Once dismissed, the secret is gone from the page.
      await p.getByRole('button', { name: 'Done' }).click();
      await p.getByLabel('New API key secret').waitFor({ state: 'detached' });
      assert.equal(await p.getByText(secret).count(), 0);

      await row.getByRole('button', { name: 'Revoke console-reader' }).click();
      await row.getByRole('button', { name: 'Revoke console-reader now' }).click();
      await row.getByText('revoked').waitFor();
      assert.equal((await api('GET', '/v1/whoami', { key: secret })).status, 401);
      // A name the control plane refuses says why.
      await p.getByLabel('Name').fill('not a name!');
      await p.getByRole('button', { name: 'Create key' }).click();
      await p.getByRole('alert').filter({ hasText: 'The key could not be created' }).waitFor();
    } finally {
      await session.close();
    }
  });

  it('renders the residency report for a compliance reviewer', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page: p } = session;
      await p.getByRole('link', { name: 'Residency', exact: true }).click();
      await p.getByRole('heading', { name: 'Residency report', level: 1 }).waitFor();
      await p.getByRole('status').filter({ hasText: 'Every field of the contract is classified and bounded.' }).waitFor();
      const never = p.getByRole('region', { name: 'What never crosses' });
      await never.getByText('signal bodies and approval comments').waitFor();
      await p.getByRole('table', { name: 'Residency classes' }).getByRole('rowheader', { name: 'DIGEST' }).waitFor();
      const hello = p.getByRole('table', { name: 'Fields of cairn.worker.v1.Hello' });
      const sdk = hello.getByRole('row').filter({ hasText: 'sdk_version' });
      await sdk.getByRole('cell', { name: 'NAME', exact: true }).waitFor();
      assert.match((await sdk.textContent()) ?? '', /≤ 64 chars/);
      // The same report the control plane serves (and `cairn residency report` renders).
      const report = await api<{ totals: { fields: number; messages: number } }>('GET', '/v1/residency');
      await p.getByText(`${report.body.totals.messages} messages, ${report.body.totals.fields} fields.`).waitFor();
      assert.deepEqual(await accessibilityViolations(p), []);
      await screenshot(p, 'residency');
      await p.getByLabel('Show fields of class').selectOption('DIGEST');
      // Hello has no DIGEST field, so its table goes; StartRunRequest's digests stay.
      await hello.waitFor({ state: 'detached' });
      await p.getByRole('table', { name: 'Fields of cairn.gateway.v1.StartRunRequest' }).waitFor();
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });
});
