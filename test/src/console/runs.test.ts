// The runs list in a real browser with several hundred runs: the first page, more pages as the
// list scrolls (never all of them), each filter narrowing the list, a filtered address that opens
// the same list elsewhere, and a new run appearing while the list is open.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { Browser, Page } from 'playwright-core';
import { startTestStack, type TestStack } from '../harness.js';
import { accessibilityViolations, launchBrowser, openConsole, screenshot } from './browser.js';

const SEEDED = 400;
const SCHEDULE = '7d3c5a10-3b1e-4c55-9d0f-5b2b8f0e6a01';

/** A datetime-local value (the browser runs in UTC) for an instant, at the minute. */
const minute = (at: Date): string => at.toISOString().slice(0, 16);

/** The scrolling part of an element, as the page sees it. */
interface Scrollable {
  readonly scrollHeight: number;
  scrollTo(options: { top: number }): void;
}

/** The run rows rendered (the list renders only those near the view). */
const renderedRows = (page: Page) => page.getByRole('row').filter({ has: page.getByRole('link') });

async function cells(page: Page, column: number): Promise<string[]> {
  const rows = await renderedRows(page).all();
  assert.ok(rows.length > 0, 'rows are shown');
  return Promise.all(rows.map(async (row) => ((await row.getByRole('cell').nth(column).textContent()) ?? '').trim()));
}

describe('console runs list', () => {
  let t: TestStack;
  let browser: Browser;
  let db: pg.Client;
  const count = async (where: string, values: unknown[] = []): Promise<number> =>
    Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM runs WHERE ${where}`, values)).rows[0]!.n);

  before(async () => {
    t = await startTestStack({ name: 'console-runs', workers: 1 });
    browser = await launchBrowser();
    db = new pg.Client({ connectionString: t.stack.cpDatabaseUrl });
    await db.connect();
    // Several hundred ended runs of two workflows, straight into the control plane's metadata
    // (one a minute going back; the oldest hundred three days earlier): every 5th a report, the
    // newest orders at version 2, every 7th failed, every 11th otherwise cancelled.
    await db.query(
      `INSERT INTO runs (id, data_plane_id, project_id, workflow_name, workflow_version, task_queue, status, wake_reason,
                         error_code, created_at, queued_at, started_at, ended_at, updated_at)
       SELECT gen_random_uuid(), d.id, d.project_id, w.name,
              CASE WHEN w.name = 'seed-orders' AND i <= 40 THEN '2' ELSE '1' END,
              'default', s.status, 'start', CASE WHEN s.status = 'failed' THEN 1401 END,
              c.at, c.at, c.at, c.at + interval '2 seconds', c.at + interval '2 seconds'
       FROM generate_series(1, $2::int) AS i
       CROSS JOIN data_planes d
       CROSS JOIN LATERAL (SELECT now() - i * interval '1 minute' - CASE WHEN i > 300 THEN interval '3 days' ELSE interval '0' END AS at) c
       CROSS JOIN LATERAL (SELECT CASE WHEN i % 5 = 0 THEN 'seed-reports' ELSE 'seed-orders' END AS name) w
       CROSS JOIN LATERAL (SELECT CASE WHEN i % 7 = 0 THEN 'failed' WHEN i % 11 = 0 THEN 'cancelled' ELSE 'completed' END AS status) s
       WHERE d.id = $1`,
      [t.stack.secrets.dataPlaneId, SEEDED],
    );
    // Every 31st was fired by one schedule; every 25th order is a child of the newest report.
    await db.query(
      `WITH numbered AS (SELECT id, row_number() OVER (ORDER BY created_at DESC) AS n FROM runs)
       UPDATE runs r SET schedule_id = $1, schedule_tick_at = r.created_at FROM numbered WHERE r.id = numbered.id AND numbered.n % 31 = 0`,
      [SCHEDULE],
    );
    await db.query(
      `WITH numbered AS (SELECT id, row_number() OVER (ORDER BY created_at DESC) AS n FROM runs WHERE workflow_name = 'seed-orders')
       UPDATE runs r SET parent_run_id = (SELECT id FROM runs WHERE workflow_name = 'seed-reports' ORDER BY created_at DESC LIMIT 1)
       FROM numbered WHERE r.id = numbered.id AND numbered.n % 25 = 7`,
    );
  });
  after(async () => {
    await db?.end();
    await browser?.close();
    await t?.stop();
  });

  it('shows the first page and loads more as the list scrolls, never all of it', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.getByText('100 runs loaded; more load as you scroll').waitFor();
      const rendered = await renderedRows(page).count();
      assert.ok(rendered > 10 && rendered < 100, `${rendered} of the 100 loaded rows are rendered`);
      const pages = (): string[] =>
        session
          .controlPlaneRequests()
          .filter((r) => new URL(r.url).pathname === '/v1/projects/default/runs')
          .map((r) => new URL(r.url).searchParams.get('cursor') ?? 'first');
      assert.deepEqual([...new Set(pages())], ['first']);

      const scroller = page.getByLabel('Runs list, scrolls to load more');
      await scroller.evaluate((el: Scrollable) => el.scrollTo({ top: el.scrollHeight }));
      await page.getByText('200 runs loaded; more load as you scroll').waitFor();
      await scroller.evaluate((el: Scrollable) => el.scrollTo({ top: el.scrollHeight }));
      await page.getByText('300 runs loaded; more load as you scroll').waitFor();
      assert.equal(new Set(pages().filter((p) => p !== 'first')).size, 2, 'two more pages, each by its cursor');
      assert.ok((await renderedRows(page).count()) < 100, 'still only the rows near the view are rendered');
      await page.getByRole('status').filter({ hasText: 'Paused while you scroll' }).waitFor();
      // Paused, the list asks nothing more (live updates ask every 3 s).
      const asked = pages().length;
      await page.waitForTimeout(4_000);
      assert.equal(pages().length, asked, 'no request while the list holds still');
      // Back at the top, the list keeps the first two pages and goes live again.
      await scroller.evaluate((el: Scrollable) => el.scrollTo({ top: 0 }));
      await page.getByText('200 runs loaded; more load as you scroll').waitFor();
      await page
        .getByRole('status')
        .filter({ hasText: /^Live$/ })
        .waitFor();
      assert.equal(await count('true'), SEEDED, 'more runs exist than were loaded');
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('narrows the list by status, workflow, version, creation time, schedule and parent run', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.getByText('100 runs loaded; more load as you scroll').waitFor();
      const apply = () => page.getByRole('button', { name: 'Apply' }).click();
      const clear = async () => {
        await page.getByRole('button', { name: 'Clear' }).click();
        await page.getByText('100 runs loaded; more load as you scroll').waitFor();
      };

      // Status.
      await page.getByRole('checkbox', { name: 'failed', exact: true }).check();
      await apply();
      const failed = await count(`status = 'failed'`);
      assert.ok(failed > 40 && failed < 100, `${failed} failed runs`);
      await page.getByText(`${failed} runs loaded`, { exact: true }).waitFor();
      assert.deepEqual([...new Set(await cells(page, 2))], ['failed']);
      assert.match(page.url(), /status=/);
      await clear();

      // Workflow.
      await page.getByLabel('Workflow', { exact: true }).fill('seed-reports');
      await apply();
      const reports = await count(`workflow_name = 'seed-reports'`);
      await page.getByText(`${reports} runs loaded`, { exact: true }).waitFor();
      assert.deepEqual([...new Set(await cells(page, 1))], ['seed-reports@1']);
      await clear();

      // Version.
      await page.getByLabel('Version', { exact: true }).fill('2');
      await apply();
      const v2 = await count(`workflow_version = '2'`);
      assert.equal(v2, 32);
      await page.getByText(`${v2} runs loaded`, { exact: true }).waitFor();
      assert.deepEqual([...new Set(await cells(page, 1))], ['seed-orders@2']);
      await clear();

      // Creation time: a window among the runs of three days ago (minutes, in the browser's time zone).
      const at = async (i: number): Promise<Date> =>
        (await db.query<{ at: Date }>(`SELECT created_at AS at FROM runs ORDER BY created_at DESC OFFSET $1 LIMIT 1`, [i])).rows[0]!.at;
      const from = new Date(minute(await at(360)) + ':00Z');
      const to = new Date(minute(await at(320)) + ':00Z');
      await page.getByLabel('Created from').fill(minute(from));
      await page.getByLabel('Created before').fill(minute(to));
      await apply();
      const inWindow = await count(`created_at >= $1 AND created_at < $2`, [from, to]);
      assert.ok(inWindow > 20 && inWindow < 100, `${inWindow} runs in the window`);
      await page.getByText(`${inWindow} runs loaded`, { exact: true }).waitFor();
      const times = await Promise.all((await renderedRows(page).all()).map((row) => row.locator('time').first().getAttribute('datetime')));
      for (const time of times) {
        const created = Date.parse(time ?? '');
        assert.ok(created >= from.getTime() && created < to.getTime(), `${time} is in [${from.toISOString()}, ${to.toISOString()})`);
      }
      await clear();

      // Schedule and parent run: every run they started, and no other.
      const ids = async (where: string, values: unknown[]): Promise<string[]> =>
        (await db.query<{ id: string }>(`SELECT id FROM runs WHERE ${where} ORDER BY created_at DESC, id DESC`, values)).rows.map(
          (r) => r.id,
        );
      const scheduled = await ids('schedule_id = $1', [SCHEDULE]);
      assert.ok(scheduled.length > 2 && scheduled.length < 20, `${scheduled.length} scheduled runs`);
      await page.getByLabel('Schedule ID').fill(SCHEDULE);
      await apply();
      await page.getByText(`${scheduled.length} runs loaded`, { exact: true }).waitFor();
      assert.deepEqual(await renderedRows(page).getByRole('link').allTextContents(), scheduled);
      await clear();
      const parent = (await db.query<{ id: string }>(`SELECT DISTINCT parent_run_id AS id FROM runs WHERE parent_run_id IS NOT NULL`)).rows;
      assert.equal(parent.length, 1);
      const children = await ids('parent_run_id = $1', [parent[0]!.id]);
      assert.ok(children.length > 2 && children.length < 20, `${children.length} children`);
      await page.getByLabel('Parent run ID').fill(parent[0]!.id);
      await apply();
      await page.getByText(`${children.length} runs loaded`, { exact: true }).waitFor();
      assert.deepEqual(await renderedRows(page).getByRole('link').allTextContents(), children);

      assert.deepEqual(await accessibilityViolations(page), []);
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });

  it('says what is wrong with a filter the control plane refuses, keeping the filters to correct', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.getByText('100 runs loaded; more load as you scroll').waitFor();
      await page.getByLabel('Workflow', { exact: true }).fill('no such name!');
      await page.getByRole('button', { name: 'Apply' }).click();
      const alert = page.getByRole('alert').filter({ hasText: 'Runs could not be listed' });
      await alert.waitFor();
      assert.match((await alert.textContent()) ?? '', /workflow/);
      assert.equal(await page.getByLabel('Workflow', { exact: true }).inputValue(), 'no such name!');

      await page.getByLabel('Workflow', { exact: true }).fill('');
      await page.getByLabel('Created from').fill('2026-03-02T10:00');
      await page.getByLabel('Created before').fill('2026-03-01T10:00');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByRole('alert').filter({ hasText: 'createdAfter must be earlier than createdBefore' }).waitFor();
      assert.deepEqual(await accessibilityViolations(page), []);

      // Corrected, the list comes back.
      await page.getByLabel('Created before').fill('2026-03-03T10:00');
      await page.getByRole('button', { name: 'Apply' }).click();
      await page.getByText('No run matches these filters.').waitFor();
      assert.equal(await page.getByRole('alert').count(), 0);
    } finally {
      await session.close();
    }
  });

  it('opens a filtered address elsewhere with the same filters and runs', async () => {
    const first = await openConsole(browser, t);
    const second = await openConsole(browser, t);
    try {
      const { page } = first;
      await page.getByRole('checkbox', { name: 'failed', exact: true }).check();
      await page.getByRole('checkbox', { name: 'cancelled', exact: true }).check();
      await page.getByLabel('Workflow', { exact: true }).fill('seed-orders');
      await page.getByRole('button', { name: 'Apply' }).click();
      const expected = await count(`status IN ('failed', 'cancelled') AND workflow_name = 'seed-orders'`);
      await page.getByText(`${expected} runs loaded`, { exact: true }).waitFor();
      const shared = page.url();
      const firstLinks = await renderedRows(page).getByRole('link').allTextContents();

      // Another signed-in tab opens the address as it was shared.
      const other = second.page;
      await other.goto(shared);
      await other.getByText(`${expected} runs loaded`, { exact: true }).waitFor();
      assert.equal(await other.getByRole('checkbox', { name: 'failed', exact: true }).isChecked(), true);
      assert.equal(await other.getByRole('checkbox', { name: 'cancelled', exact: true }).isChecked(), true);
      assert.equal(await other.getByRole('checkbox', { name: 'completed', exact: true }).isChecked(), false);
      assert.equal(await other.getByLabel('Workflow', { exact: true }).inputValue(), 'seed-orders');
      assert.deepEqual(await renderedRows(other).getByRole('link').allTextContents(), firstLinks);
      assert.deepEqual([...new Set(await cells(other, 2))].sort(), ['cancelled', 'failed']);
    } finally {
      await first.close();
      await second.close();
    }
  });

  it('shows a new run without reloading, marked new', async () => {
    const session = await openConsole(browser, t);
    try {
      const { page } = session;
      await page.getByText('100 runs loaded; more load as you scroll').waitFor();
      await page
        .getByRole('status')
        .filter({ hasText: /^Live$/ })
        .waitFor();
      // Survives only as long as the document does: a reload would drop it.
      await page.evaluate(() => Object.assign(globalThis, { cairnSameDocument: true }));
      const runId = await t.start('five-steps', { step3Ms: 1, stepMs: 1 });
      const row = renderedRows(page).filter({ has: page.getByRole('link', { name: runId }) });
      await row.waitFor({ timeout: 15_000 });
      await row.getByText('new', { exact: true }).waitFor();
      await page.getByRole('status').filter({ hasText: 'Live: 1 new run since the list opened' }).waitFor();
      assert.equal(await page.evaluate(() => (globalThis as { cairnSameDocument?: boolean }).cairnSameDocument), true);
      // The seeded runs shown before are not marked.
      assert.equal(await page.locator('tr.new').count(), 1);
      assert.equal((await t.result(runId)).status, 'completed');
      await row.getByText('completed').waitFor({ timeout: 15_000 });
      assert.deepEqual(await accessibilityViolations(page), []);
      await screenshot(page, 'runs');
      assert.deepEqual(session.pageErrors, []);
    } finally {
      await session.close();
    }
  });
});
