// `pnpm bench:console`: the console's budgets at 100,000 runs. Seeds the runs straight into a fresh
// control-plane database, starts the control plane (which serves the built console) and measures:
// the list query's plans (EXPLAIN ANALYZE) and the runs-list API for each filter a user would set,
// first page interactive in Chromium over several cold loads, a scroll through thousands of rows
// (how many pages and rows were fetched, frame timing) and the JavaScript bundle, raw and gzip.
// Writes bench/results/<date>-console.md. Timings are reported here, never asserted in tests.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import pg from 'pg';
import { chromium, type Browser, type Page } from 'playwright-core';
import { runListStatement, type RunListQuery } from '@cairn/control-plane';
import { consoleSignInUrl, startStack } from '@cairn/dev';
import { startEmbeddedPostgres } from '@cairn/local-postgres';

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));
const consoleDist = fileURLToPath(new URL('../../apps/console/dist/', import.meta.url));

const quick = process.argv.includes('--quick');
const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(name);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
};
const RUNS = arg('--runs', 100_000);
const COLD_LOADS = arg('--loads', quick ? 5 : 11);
const SCROLL_ROWS = arg('--scroll', 5_000);
const API_REPEAT = quick ? 9 : 31;
const PLAN_REPEAT = quick ? 3 : 7;
/** The console's page size (apps/console/src/pages/runs.tsx). */
const PAGE = 100;

const executablePath = process.env['CAIRN_CHROMIUM'] ?? '/usr/bin/chromium';
if (!existsSync(executablePath)) throw new Error(`No Chromium at ${executablePath}: install Debian's package or set CAIRN_CHROMIUM.`);
if (!existsSync(join(consoleDist, 'index.html'))) throw new Error('No console build in apps/console/dist: run pnpm build first.');

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};
const percentile = (xs: readonly number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? NaN;
};
const ms = (x: number, d = 1): string => `${x.toFixed(d)} ms`;
const kib = (bytes: number): string => `${(bytes / 1024).toFixed(1)} KiB`;

const WORKFLOWS = [
  'checkout',
  'invoice',
  'refund',
  'ingest-documents',
  'summarise',
  'onboard-customer',
  'nightly-report',
  'sync-crm',
  'triage-ticket',
  'translate',
  'backfill-index',
  'notify',
];
const DAYS = 30;

/** The 1-minute load average (other work on a shared machine shows here). */
const load = (): string => loadavg()[0]!.toFixed(1);
const loadAtStart = load();

const dir = mkdtempSync(join(tmpdir(), 'cairn-bench-console-'));
chmodSync(dir, 0o755);
const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), persistent: false });
const stack = await startStack({ postgres, dir, workers: 0, logLevel: 'warn' });
const cpUrl = stack.controlPlanes[0]!.httpUrl;
// The seed and the plans run as the superuser on the control plane's database: seeding turns the
// per-row triggers (audit, metering) off, which only a superuser may.
const cpDatabase = new URL(stack.cpDatabaseUrl).pathname.slice(1);
const db = new pg.Client({ connectionString: postgres.url(cpDatabase) });
await db.connect();

interface Seeded {
  readonly projectId: string;
  readonly projectName: string;
  readonly seedSeconds: number;
  readonly scheduleId: string;
  readonly parentRunId: string;
  readonly statuses: Record<string, number>;
}

/**
 * 100,000 runs over the last 30 days, newest first in creation order: twelve workflows (a few
 * busy, most quiet), three versions each (v1 the oldest third, v2, then v3), nearly all ended
 * (completed; 4 % failed, and a few cancelled, terminated, timed out), the last hour's runs still
 * open; the nightly report started by three schedules; every 20th triage run a child of a parent.
 */
async function seed(): Promise<Seeded> {
  const dp = await db.query<{ id: string; project_id: string; name: string }>(
    `SELECT d.id, d.project_id, p.name FROM data_planes d JOIN projects p ON p.id = d.project_id WHERE d.id = $1`,
    [stack.secrets.dataPlaneId],
  );
  const { id: dataPlaneId, project_id: projectId, name: projectName } = dp.rows[0]!;
  const t0 = performance.now();
  await db.query('BEGIN');
  await db.query(`SET LOCAL session_replication_role = replica`);
  await db.query(
    `INSERT INTO runs (id, data_plane_id, project_id, workflow_name, workflow_version, task_queue, status, wake_reason,
                       suspend_reason, waiting_signal, error_code, input_size, output_size, dispatch_count, epoch,
                       parent_run_id, schedule_id, schedule_tick_at, created_at, queued_at, started_at, ended_at, updated_at)
     SELECT gen_random_uuid(), $1, $2, w.name, v.version, 'default', s.status, 'start',
            CASE WHEN s.status = 'suspended' THEN 'signal' END,
            CASE WHEN s.status = 'suspended' THEN 'approval' END,
            CASE WHEN s.status = 'failed' THEN 1401 END,
            200, CASE WHEN s.status = 'completed' THEN 300 END, 1, 1,
            NULL, NULL, NULL,
            g.created_at, g.created_at,
            CASE WHEN s.status <> 'queued' THEN g.created_at + interval '5 ms' END,
            CASE WHEN s.status NOT IN ('queued', 'running', 'suspended') THEN g.created_at + (g.i % 5000) * interval '1 ms' END,
            g.created_at
     FROM (SELECT i, now() - (i * ($4::float8 * 86400 / $3)) * interval '1 second' AS created_at, hashint4(i)::bigint AS h
           FROM generate_series(1, $3::int) AS i) g
     CROSS JOIN LATERAL (SELECT ($5::text[])[1 + floor(12 * power((abs(g.h) % 10007) / 10007.0, 2))::int] AS name) w
     CROSS JOIN LATERAL (SELECT CASE WHEN g.i > $3 * 2 / 3 THEN 'v1' WHEN g.i > $3 / 3 THEN 'v2' ELSE 'v3' END AS version) v
     CROSS JOIN LATERAL (SELECT CASE
         WHEN g.created_at > now() - interval '1 hour' THEN (ARRAY['queued', 'running', 'running', 'suspended', 'completed', 'completed'])[1 + abs(g.h) % 6]
         WHEN abs(g.h) % 1000 < 40 THEN 'failed'
         WHEN abs(g.h) % 1000 < 50 THEN 'cancelled'
         WHEN abs(g.h) % 1000 < 55 THEN 'terminated'
         WHEN abs(g.h) % 1000 < 60 THEN 'timed_out'
         ELSE 'completed' END AS status) s`,
    [dataPlaneId, projectId, RUNS, DAYS, WORKFLOWS],
  );
  // Three schedules start the nightly report (one tick each per run).
  const schedules = [
    '00000000-0000-4000-8000-00000000a001',
    '00000000-0000-4000-8000-00000000a002',
    '00000000-0000-4000-8000-00000000a003',
  ];
  await db.query(
    `UPDATE runs SET schedule_id = ($2::uuid[])[1 + abs(hashtext(id::text)) % 3], schedule_tick_at = created_at
     WHERE project_id = $1 AND workflow_name = 'nightly-report'`,
    [projectId, schedules],
  );
  // Triage runs are fanned out by summarise runs: every 4th triage run is a child of the summarise
  // run created just before its block of 100 (about 25 children each).
  await db.query(
    `WITH triage AS (
       SELECT id, created_at, (row_number() OVER (ORDER BY created_at)) AS n FROM runs
       WHERE project_id = $1 AND workflow_name = 'triage-ticket'),
     blocks AS (SELECT n / 100 AS b, min(created_at) AS first_at FROM triage GROUP BY 1),
     parents AS (
       SELECT b, (SELECT p.id FROM runs p WHERE p.project_id = $1 AND p.workflow_name = 'summarise' AND p.created_at < first_at
                  ORDER BY p.created_at DESC LIMIT 1) AS parent_id
       FROM blocks)
     UPDATE runs r SET parent_run_id = parents.parent_id
     FROM triage t JOIN parents ON parents.b = t.n / 100
     WHERE r.id = t.id AND t.n % 4 = 0 AND parents.parent_id IS NOT NULL`,
    [projectId],
  );
  await db.query('COMMIT');
  await db.query('VACUUM ANALYZE runs');
  const seedSeconds = (performance.now() - t0) / 1000;
  const parent = await db.query<{ parent_run_id: string }>(
    `SELECT parent_run_id FROM runs WHERE project_id = $1 AND parent_run_id IS NOT NULL GROUP BY parent_run_id ORDER BY count(*) DESC LIMIT 1`,
    [projectId],
  );
  const counts = await db.query<{ status: string; n: string }>(`SELECT status, count(*) AS n FROM runs GROUP BY status ORDER BY n DESC`);
  return {
    projectId,
    projectName,
    seedSeconds,
    scheduleId: schedules[0]!,
    parentRunId: parent.rows[0]!.parent_run_id,
    statuses: Object.fromEntries(counts.rows.map((r) => [r.status, Number(r.n)])),
  };
}

/** A filter combination as the console sends it, and as the repository receives it. */
interface Case {
  readonly name: string;
  readonly query: Record<string, string>;
  readonly repo: Omit<RunListQuery, 'projectId' | 'limit'>;
}

function cases(s: Seeded, deep: { cursor: string; after: { createdAt: string; id: string } }): Case[] {
  const day = (daysAgo: number): Date => new Date(Date.now() - daysAgo * 86_400_000);
  const dayFrom = day(10);
  const dayTo = day(9);
  const older = day(21);
  return [
    { name: 'no filter (first page)', query: {}, repo: {} },
    { name: 'no filter, deep cursor (after 90,000 runs)', query: { cursor: deep.cursor }, repo: { after: deep.after } },
    { name: 'status failed', query: { status: 'failed' }, repo: { statuses: ['failed'] } },
    { name: 'status failed + timed_out', query: { status: 'failed,timed_out' }, repo: { statuses: ['failed', 'timed_out'] } },
    {
      name: 'status terminated + timed_out (both rare)',
      query: { status: 'terminated,timed_out' },
      repo: { statuses: ['terminated', 'timed_out'] },
    },
    {
      name: 'status failed + cancelled + terminated + timed_out',
      query: { status: 'failed,cancelled,terminated,timed_out' },
      repo: { statuses: ['failed', 'cancelled', 'terminated', 'timed_out'] },
    },
    {
      name: 'status queued + running + suspended (open)',
      query: { status: 'queued,running,suspended' },
      repo: { statuses: ['queued', 'running', 'suspended'] },
    },
    { name: 'workflow (busy: checkout)', query: { workflow: 'checkout' }, repo: { workflow: 'checkout' } },
    { name: 'workflow (quiet: notify)', query: { workflow: 'notify' }, repo: { workflow: 'notify' } },
    {
      name: 'workflow + version v1 (oldest third)',
      query: { workflow: 'notify', version: 'v1' },
      repo: { workflow: 'notify', version: 'v1' },
    },
    { name: 'version v1 alone', query: { version: 'v1' }, repo: { version: 'v1' } },
    {
      name: 'workflow (quiet) + status failed',
      query: { workflow: 'notify', status: 'failed' },
      repo: { workflow: 'notify', statuses: ['failed'] },
    },
    {
      name: 'workflow (quiet) + status failed + timed_out',
      query: { workflow: 'notify', status: 'failed,timed_out' },
      repo: { workflow: 'notify', statuses: ['failed', 'timed_out'] },
    },
    {
      name: 'workflow (quiet) + status timed_out',
      query: { workflow: 'notify', status: 'timed_out' },
      repo: { workflow: 'notify', statuses: ['timed_out'] },
    },
    { name: 'schedule', query: { scheduleId: s.scheduleId }, repo: { scheduleId: s.scheduleId } },
    { name: 'parent run', query: { parentRunId: s.parentRunId }, repo: { parentRunId: s.parentRunId } },
    {
      name: 'one day, 10 days ago',
      query: { createdAfter: dayFrom.toISOString(), createdBefore: dayTo.toISOString() },
      repo: { createdAfter: dayFrom, createdBefore: dayTo },
    },
    { name: 'created before 21 days ago', query: { createdBefore: older.toISOString() }, repo: { createdBefore: older } },
    {
      name: 'one day + status failed',
      query: { createdAfter: dayFrom.toISOString(), createdBefore: dayTo.toISOString(), status: 'failed' },
      repo: { createdAfter: dayFrom, createdBefore: dayTo, statuses: ['failed'] },
    },
    {
      name: 'one day + workflow (quiet)',
      query: { createdAfter: dayFrom.toISOString(), createdBefore: dayTo.toISOString(), workflow: 'notify' },
      repo: { createdAfter: dayFrom, createdBefore: dayTo, workflow: 'notify' },
    },
    {
      name: 'one day + workflow (quiet) + status failed',
      query: { createdAfter: dayFrom.toISOString(), createdBefore: dayTo.toISOString(), workflow: 'notify', status: 'failed' },
      repo: { createdAfter: dayFrom, createdBefore: dayTo, workflow: 'notify', statuses: ['failed'] },
    },
  ];
}

interface PlanNode {
  'Node Type': string;
  'Index Name'?: string;
  'Actual Rows'?: number;
  'Actual Loops'?: number;
  'Rows Removed by Filter'?: number;
  'Rows Removed by Index Recheck'?: number;
  Plans?: PlanNode[];
}

interface PlanFigures {
  readonly nodes: string;
  /** Rows read from tables or indexes (kept plus removed by a filter). */
  readonly rowsRead: number;
  readonly rowsReturned: number;
  readonly executionMs: number;
}

async function plan(statement: { text: string; values: unknown[] }): Promise<PlanFigures> {
  const times: number[] = [];
  let last: { Plan: PlanNode; 'Execution Time': number } | undefined;
  for (let i = 0; i < PLAN_REPEAT; i++) {
    const r = await db.query<{ 'QUERY PLAN': [{ Plan: PlanNode; 'Execution Time': number }] }>(
      `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${statement.text}`,
      statement.values,
    );
    last = r.rows[0]!['QUERY PLAN'][0];
    times.push(last['Execution Time']);
  }
  const names: string[] = [];
  let rowsRead = 0;
  const walk = (node: PlanNode): void => {
    names.push(node['Index Name'] === undefined ? node['Node Type'] : `${node['Node Type']} on ${node['Index Name']}`);
    const loops = node['Actual Loops'] ?? 1;
    if (/Scan/.test(node['Node Type']) && !/Bitmap Heap/.test(node['Node Type'])) {
      rowsRead += ((node['Actual Rows'] ?? 0) + (node['Rows Removed by Filter'] ?? 0)) * loops;
    } else if (/Bitmap Heap/.test(node['Node Type'])) {
      rowsRead += ((node['Rows Removed by Filter'] ?? 0) + (node['Rows Removed by Index Recheck'] ?? 0)) * loops;
    }
    for (const child of node.Plans ?? []) walk(child);
  };
  walk(last!.Plan);
  return { nodes: names.join(' → '), rowsRead, rowsReturned: last!.Plan['Actual Rows'] ?? 0, executionMs: median(times) };
}

const apiHeaders = { authorization: `Bearer ${stack.secrets.apiToken}` };
async function listRuns(project: string, query: Record<string, string>): Promise<{ runs: unknown[]; nextCursor: string | null }> {
  const params = new URLSearchParams(query);
  const res = await fetch(`${cpUrl}/v1/projects/${project}/runs?${params.toString()}`, { headers: apiHeaders });
  if (res.status !== 200) throw new Error(`runs list ${params.toString()} → ${res.status} ${await res.text()}`);
  return (await res.json()) as { runs: unknown[]; nextCursor: string | null };
}

async function apiTimings(project: string, query: Record<string, string>): Promise<{ p50: number; p95: number; rows: number }> {
  const times: number[] = [];
  let rows = 0;
  await listRuns(project, { ...query, limit: String(PAGE) });
  for (let i = 0; i < API_REPEAT; i++) {
    const t0 = performance.now();
    const page = await listRuns(project, { ...query, limit: String(PAGE) });
    times.push(performance.now() - t0);
    rows = page.runs.length;
  }
  return { p50: median(times), p95: percentile(times, 95), rows };
}

/** The cursor the API answers after `depth` runs (walked page by page), and its keyset position. */
async function deepCursor(project: string, depth: number): Promise<{ cursor: string; after: { createdAt: string; id: string } }> {
  let cursor: string | null = null;
  for (let seen = 0; seen < depth; seen += 200) {
    const page: { nextCursor: string | null } = await listRuns(project, { limit: '200', ...(cursor === null ? {} : { cursor }) });
    if (page.nextCursor === null) throw new Error(`fewer than ${depth} runs`);
    cursor = page.nextCursor;
  }
  // The cursor is the keyset position [createdAt, id], base64url-encoded JSON.
  const [createdAt, id] = JSON.parse(Buffer.from(cursor!, 'base64url').toString('utf8')) as [string, string];
  return { cursor: cursor!, after: { createdAt, id } };
}

async function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * Navigation start → the runs table rendered with its first run link visible and enabled, timed
 * inside the page (performance.now() counts from navigation start), checked on every frame.
 */
async function firstPageInteractive(page: Page): Promise<number> {
  const at = await page.waitForFunction(
    () => {
      const link = document.querySelector<HTMLAnchorElement>('table.runs tbody a[href]');
      if (link === null) return false;
      const box = link.getBoundingClientRect();
      return box.width > 0 && box.height > 0 ? performance.now() : false;
    },
    undefined,
    { polling: 'raf', timeout: 30_000 },
  );
  const value = (await at.jsonValue()) as number;
  // The link is clickable as Playwright sees it too (visible, stable, enabled, receives events).
  await page.locator('table.runs tbody a[href]').first().click({ trial: true });
  return value;
}

/** Where the time of one load went, from the page's navigation and resource timing. */
interface Breakdown {
  /** The console's script received. */
  readonly scriptEnd: number;
  /** DOMContentLoaded handled (the module script has run). */
  readonly domContentLoaded: number;
  /** The first runs-list answer received. */
  readonly runsAnswered: number;
}

async function breakdown(page: Page): Promise<Breakdown> {
  return page.evaluate(() => {
    const nav = performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming;
    const resources = performance.getEntriesByType('resource') as PerformanceResourceTiming[];
    const script = resources.find((r) => r.initiatorType === 'script' || r.name.endsWith('.js'));
    const runs = resources.find((r) => /\/v1\/projects\/[^/]+\/runs\?/.test(r.name));
    return {
      scriptEnd: script?.responseEnd ?? NaN,
      domContentLoaded: nav.domContentLoadedEventEnd,
      runsAnswered: runs?.responseEnd ?? NaN,
    };
  });
}

interface ColdLoads {
  readonly signInLink: number[];
  readonly signedInTab: number[];
  readonly signInLinkBreakdown: Breakdown[];
  readonly signedInTabBreakdown: Breakdown[];
  readonly transferredKiB: number;
  readonly wireKiB: number;
}

async function coldLoads(browser: Browser, project: string): Promise<ColdLoads> {
  const signInLink: number[] = [];
  const signedInTab: number[] = [];
  const signInLinkBreakdown: Breakdown[] = [];
  const signedInTabBreakdown: Breakdown[] = [];
  let transferred = 0;
  let wire = 0;
  for (let i = 0; i < COLD_LOADS; i++) {
    // The link `cairn dev` prints: / with the key in the fragment → whoami, projects → the runs.
    {
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();
      let bytes = 0;
      let encoded = 0;
      page.on('response', (res) => {
        void res.body().then(
          (b) => (bytes += b.length),
          () => undefined,
        );
      });
      // The bodies as they crossed the wire (compressed where the server compressed them).
      page.on('requestfinished', (req) => {
        void req.sizes().then(
          (sizes) => (encoded += sizes.responseBodySize),
          () => undefined,
        );
      });
      await page.goto(consoleSignInUrl(cpUrl, stack), { waitUntil: 'commit' });
      signInLink.push(await firstPageInteractive(page));
      signInLinkBreakdown.push(await breakdown(page));
      transferred = Math.max(transferred, bytes);
      wire = Math.max(wire, encoded);
      await context.close();
    }
    // A signed-in tab opening /p/<project>/runs afresh (empty cache; the key in session storage).
    {
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      await context.addInitScript(
        (key: string) => sessionStorage.setItem('cairn.session', JSON.stringify({ apiKey: key })),
        stack.secrets.apiToken,
      );
      const page = await context.newPage();
      await page.goto(`${cpUrl}/p/${project}/runs`, { waitUntil: 'commit' });
      signedInTab.push(await firstPageInteractive(page));
      signedInTabBreakdown.push(await breakdown(page));
      await context.close();
    }
  }
  return { signInLink, signedInTab, signInLinkBreakdown, signedInTabBreakdown, transferredKiB: transferred / 1024, wireKiB: wire / 1024 };
}

interface ScrollFigures {
  readonly targetRows: number;
  readonly seconds: number;
  readonly pagesFetched: number;
  readonly rowsFetched: number;
  readonly firstPageRefetches: number;
  readonly domRowsAtEnd: number;
  readonly frames: number;
  readonly frameP50: number;
  readonly frameP95: number;
  readonly frameMax: number;
  readonly longFrames: number;
  readonly status: string;
  /** The renderer's main-thread time while scrolling (Chromium's Performance metrics), in ms. */
  readonly mainThread: { readonly script: number; readonly layout: number; readonly style: number; readonly tasks: number };
}

/** Scrolls the runs list by about ten rows a frame until row `target` is on screen. */
async function scroll(browser: Browser, project: string, target: number): Promise<ScrollFigures> {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  await context.addInitScript(
    (key: string) => sessionStorage.setItem('cairn.session', JSON.stringify({ apiKey: key })),
    stack.secrets.apiToken,
  );
  const page = await context.newPage();
  let pagesFetched = 0;
  let rowsFetched = 0;
  let firstPageRefetches = 0;
  const pending: Promise<void>[] = [];
  page.on('response', (res) => {
    const url = new URL(res.url());
    if (url.pathname !== `/v1/projects/${project}/runs` || res.request().method() !== 'GET') return;
    pagesFetched++;
    if (!url.searchParams.has('cursor')) firstPageRefetches++;
    pending.push(
      res.json().then(
        (body: { runs: unknown[] }) => void (rowsFetched += body.runs.length),
        () => undefined,
      ),
    );
  });
  await page.goto(`${cpUrl}/p/${project}/runs`);
  await firstPageInteractive(page);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Performance.enable');
  const metrics = async (): Promise<Record<string, number>> =>
    Object.fromEntries((await cdp.send('Performance.getMetrics')).metrics.map((m) => [m.name, m.value]));
  const before = await metrics();
  const result = await page.evaluate(async (targetRow: number) => {
    const el = document.querySelector<HTMLElement>('[data-testid="runs-scroller"]')!;
    const frames: number[] = [];
    const t0 = performance.now();
    let last = t0;
    const maxIndex = (): number => {
      let max = -1;
      for (const row of el.querySelectorAll<HTMLElement>('tr[data-index]')) max = Math.max(max, Number(row.dataset['index']));
      return max;
    };
    while (maxIndex() < targetRow) {
      if (performance.now() - t0 > 300_000) throw new Error(`row ${targetRow} not reached in 5 minutes (at ${maxIndex()})`);
      el.scrollTop += 410;
      await new Promise((resolve) => requestAnimationFrame(resolve));
      const now = performance.now();
      frames.push(now - last);
      last = now;
    }
    return { seconds: (performance.now() - t0) / 1000, frames, domRows: el.querySelectorAll('tr[data-index]').length };
  }, target);
  const after = await metrics();
  const spent = (name: string): number => ((after[name] ?? 0) - (before[name] ?? 0)) * 1000;
  await Promise.all(pending);
  const status = (await page.getByTestId('runs-count').textContent()) ?? '';
  await context.close();
  return {
    targetRows: target,
    seconds: result.seconds,
    pagesFetched,
    rowsFetched,
    firstPageRefetches,
    domRowsAtEnd: result.domRows,
    frames: result.frames.length,
    frameP50: median(result.frames),
    frameP95: percentile(result.frames, 95),
    frameMax: Math.max(...result.frames),
    longFrames: result.frames.filter((f) => f > 50).length,
    status,
    mainThread: {
      script: spent('ScriptDuration'),
      layout: spent('LayoutDuration'),
      style: spent('RecalcStyleDuration'),
      tasks: spent('TaskDuration'),
    },
  };
}

const split = (b: readonly Breakdown[]): string =>
  [median(b.map((x) => x.scriptEnd)), median(b.map((x) => x.domContentLoaded)), median(b.map((x) => x.runsAnswered))]
    .map((x) => ms(x, 0))
    .join(' / ');

function bundle(): { file: string; raw: number; gzip: number }[] {
  const assets = join(consoleDist, 'assets');
  return readdirSync(assets)
    .filter((f) => f.endsWith('.js') || f.endsWith('.css'))
    .map((file) => {
      const bytes = readFileSync(join(assets, file));
      return { file, raw: statSync(join(assets, file)).size, gzip: gzipSync(bytes, { level: 9 }).length };
    })
    .sort((a, b) => b.raw - a.raw);
}

try {
  const seeded = await seed();
  const project = seeded.projectName;
  const deep = await deepCursor(project, 90_000);
  const plans: { c: Case; plan: PlanFigures; api: { p50: number; p95: number; rows: number } }[] = [];
  for (const c of cases(seeded, deep)) {
    const statement = runListStatement({ projectId: seeded.projectId, limit: PAGE, ...c.repo });
    plans.push({ c, plan: await plan(statement), api: await apiTimings(project, c.query) });
  }
  const browser = await launch();
  let loads: ColdLoads;
  let scrolled: ScrollFigures;
  try {
    loads = await coldLoads(browser, project);
    scrolled = await scroll(browser, project, SCROLL_ROWS);
  } finally {
    await browser.close();
  }
  const assets = bundle();
  const js = assets.filter((a) => a.file.endsWith('.js'));
  const pgVersion = (await db.query<{ server_version: string }>('SHOW server_version')).rows[0]!.server_version;
  const date = new Date().toISOString();
  const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, Node ${process.version}, PostgreSQL ${pgVersion} (embedded, fsync on), Chromium at ${executablePath} (headless)`;
  const md = `# Console benchmark ${date}

\`node bench/dist/console.js${process.argv.slice(2).length > 0 ? ' ' + process.argv.slice(2).join(' ') : ''}\` on ${machine}.
One control plane (serving the built console) and one gateway on loopback, no workers. Load average (1 min) ${loadAtStart} at the start, ${load()} at the end: timings in the browser move with it.
${RUNS.toLocaleString('en-GB')} runs seeded straight into the control plane's database in ${seeded.seedSeconds.toFixed(1)} s (one INSERT … SELECT, per-row audit and metering triggers off, then VACUUM ANALYZE): ${WORKFLOWS.length} workflows (skewed: checkout busiest, notify quietest), versions v1/v2/v3 by age, over ${DAYS} days; statuses ${Object.entries(
    seeded.statuses,
  )
    .map(([s, n]) => `${s} ${n.toLocaleString('en-GB')}`)
    .join(', ')}.

## First page interactive (budget: under 1 s)

Navigation start → the runs table rendered and its first run link visible and clickable (timed in the page on every frame, then checked with Playwright's actionability checks). Each load in a fresh browser context (empty cache), ${COLD_LOADS} loads each.

| load | median | min | max | of which (medians): script received / DOMContentLoaded / first runs answer |
| --- | --- | --- | --- | --- |
| the signed-in link \`cairn dev\` prints (\`/#key=…\` → whoami, projects → runs) | ${ms(median(loads.signInLink), 0)} | ${ms(Math.min(...loads.signInLink), 0)} | ${ms(Math.max(...loads.signInLink), 0)} | ${split(loads.signInLinkBreakdown)} |
| a signed-in tab opening \`/p/${project}/runs\` | ${ms(median(loads.signedInTab), 0)} | ${ms(Math.min(...loads.signedInTab), 0)} | ${ms(Math.max(...loads.signedInTab), 0)} | ${split(loads.signedInTabBreakdown)} |

Bytes received by the first load (HTML, JS, CSS, API answers): ${loads.transferredKiB.toFixed(1)} KiB decoded, ${loads.wireKiB.toFixed(1)} KiB as sent (with the Accept-Encoding Chromium sends).

## Scrolling (runs list at ${RUNS.toLocaleString('en-GB')} runs)

Scrolled the list about ten rows a frame until row ${scrolled.targetRows.toLocaleString('en-GB')} was on screen (the list fetches the next page of ${PAGE} when the last rows in view are within 20 of the end).

| measure | value |
| --- | --- |
| time to reach row ${scrolled.targetRows.toLocaleString('en-GB')} | ${scrolled.seconds.toFixed(1)} s |
| runs-list requests / rows received | ${scrolled.pagesFetched} / ${scrolled.rowsFetched.toLocaleString('en-GB')} (of ${RUNS.toLocaleString('en-GB')}; ${scrolled.firstPageRefetches} without a cursor: the first load and live refreshes before the list paused) |
| table rows in the DOM at the end | ${scrolled.domRowsAtEnd} |
| the page's count at the end | ${scrolled.status} |
| frames: count, p50 / p95 / max | ${scrolled.frames}, ${ms(scrolled.frameP50)} / ${ms(scrolled.frameP95)} / ${ms(scrolled.frameMax)} |
| frames over 50 ms | ${scrolled.longFrames} |
| renderer main thread while scrolling: tasks (script / layout / style) | ${ms(scrolled.mainThread.tasks, 0)} (${ms(scrolled.mainThread.script, 0)} / ${ms(scrolled.mainThread.layout, 0)} / ${ms(scrolled.mainThread.style, 0)}), ${ms(scrolled.mainThread.tasks / scrolled.frames)} a frame |

## Runs-list API and query plans at ${RUNS.toLocaleString('en-GB')} runs

\`GET /v1/projects/${project}/runs?limit=${PAGE}\` with each filter over loopback: median and p95 of ${API_REPEAT} requests after one warm-up. The plan is the statement \`RunRepository.list\` runs (\`runListStatement\`) under EXPLAIN (ANALYZE, BUFFERS), median execution time of ${PLAN_REPEAT}; rows read counts rows the scans produced plus those their filters removed.

| filter | API p50 / p95 | rows | plan | rows read | execution |
| --- | --- | --- | --- | --- | --- |
${plans
  .map(
    ({ c, plan: p, api }) =>
      `| ${c.name} | ${ms(api.p50)} / ${ms(api.p95)} | ${api.rows} | ${p.nodes} | ${p.rowsRead.toLocaleString('en-GB')} | ${ms(p.executionMs, 2)} |`,
  )
  .join('\n')}

## JavaScript bundle (apps/console/dist/assets)

| file | raw | gzip -9 |
| --- | --- | --- |
${assets.map((a) => `| ${a.file} | ${kib(a.raw)} | ${kib(a.gzip)} |`).join('\n')}
| all JavaScript | ${kib(js.reduce((n, a) => n + a.raw, 0))} | ${kib(js.reduce((n, a) => n + a.gzip, 0))} |
`;
  console.log(md);
  mkdirSync(resultsDir, { recursive: true });
  const out = join(resultsDir, `${date.slice(0, 10)}-console${quick ? '-quick' : ''}.md`);
  writeFileSync(out, md);
  console.log(`written to ${out}`);
} finally {
  await db.end();
  await stack.stop();
  await postgres.stop();
}
