// `pnpm bench:suspended`: suspended runs at scale. One stack (control plane, gateway, one worker,
// embedded PostgreSQL with fsync on). A round starts N runs of `bench-suspend` (a step, a sleep of
// S seconds that suspends the run, a step that returns the wall-clock time it ran) and measures:
//   - lateness: when the second step ran minus the sleep's due time from the journal (p50/p99/max),
//     split into the control plane's part (due → the wake-up's lease) and the worker's part;
//   - the worker's memory (RSS and V8 heap used after forced garbage collection) before the round,
//     while every run is suspended, and after they all completed.
// The first round runs on an empty system. Then M suspended runs (half timers far in the future,
// half signal waits) are seeded straight into both databases, the second round runs with them
// waiting, control-plane dispatch is measured with them waiting, and the control-plane database
// size per suspended run is reported. Results go to bench/results/<time>-suspended.md.
//
//   node bench/dist/suspended.js [--runs N] [--sleep SECONDS] [--background M] [--quick]
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { startEmbeddedPostgres } from '@cairn/local-postgres';
import { startStack } from '@cairn/dev';
import { measureDispatch } from './dispatch.js';

const quick = process.argv.includes('--quick');
const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const RUNS = arg('runs', quick ? 300 : 3_000);
const SLEEP_S = arg('sleep', quick ? 10 : 30);
const BACKGROUND = arg('background', quick ? 20_000 : 1_000_000);
const DISPATCH_RUNS = quick ? 100 : 300;
const SEED_BATCH = 100_000;
// The worker's threshold: waits longer than this suspend the run (the worker's default).
const SUSPEND_THRESHOLD_MS = 5_000;
if (SLEEP_S * 1000 <= SUSPEND_THRESHOLD_MS) throw new Error(`--sleep must be longer than ${SUSPEND_THRESHOLD_MS / 1000} s to suspend`);

const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));
const workerModule = fileURLToPath(new URL('./suspended-worker.js', import.meta.url));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}
const stats = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN };
};
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const mib = (bytes: number) => round(bytes / 2 ** 20, 1);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (line: string) => process.stderr.write(`[bench:suspended] ${line}\n`);

/** Runs `fn` over `items` with at most `limit` at a time. */
async function pool<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i]!);
      }
    }),
  );
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'cairn-bench-suspended-'));
// Embedded Postgres runs as the 'postgres' user when started as root: it must enter the folder.
chmodSync(dir, 0o755);
const memoryFile = join(dir, 'worker-memory.json');
const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), persistent: false });
const stack = await startStack({
  postgres,
  dir,
  workers: 1,
  workerSlots: 100,
  workerModule,
  suspendThresholdMs: SUSPEND_THRESHOLD_MS,
  // --expose-gc lets the worker collect garbage before it reports its memory (suspended-worker.ts).
  workerEnv: { NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --expose-gc`.trim(), BENCH_WORKER_MEMORY_FILE: memoryFile },
  logLevel: 'warn',
});
const headers = { authorization: `Bearer ${stack.secrets.gatewayToken}`, 'content-type': 'application/json' };
const cp = new pg.Client({ connectionString: stack.cpDatabaseUrl });
const dp = new pg.Client({ connectionString: stack.dpDatabaseUrl });
await cp.connect();
await dp.connect();

interface Memory {
  rss: number;
  heapUsed: number;
}
/** The worker's memory after forced garbage collection (it answers SIGUSR2 with a file). */
async function workerMemory(): Promise<Memory> {
  const pid = stack.workers[0]!.pid;
  if (pid === undefined) throw new Error('the worker is not running');
  const asked = Date.now();
  process.kill(pid, 'SIGUSR2');
  for (;;) {
    await sleep(50);
    if (!existsSync(memoryFile)) continue;
    try {
      const m = JSON.parse(readFileSync(memoryFile, 'utf8')) as Memory & { at: number };
      if (m.at >= asked) return { rss: m.rss, heapUsed: m.heapUsed };
    } catch {
      // being written
    }
  }
}

async function start(sleepMs: number): Promise<string> {
  for (;;) {
    const r = await fetch(`${stack.gatewayUrl}/v1/runs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ workflow: 'bench-suspend', input: { sleepMs } }),
    });
    if (r.status === 201) return ((await r.json()) as { runId: string }).runId;
    // Rate limited: wait as told and start it again.
    if (r.status === 429) {
      await r.body?.cancel();
      await sleep(100);
      continue;
    }
    throw new Error(`start → ${r.status} ${await r.text()}`);
  }
}
async function result(runId: string): Promise<{ startedAt: number; ranAt: number }> {
  for (;;) {
    const r = await fetch(`${stack.gatewayUrl}/v1/runs/${runId}/result?wait=60`, { headers });
    if (r.status === 200) {
      const body = (await r.json()) as { status: string; output: { startedAt: number; ranAt: number } };
      if (body.status !== 'completed') throw new Error(`run ${runId} ${body.status}`);
      return body.output;
    }
    await r.body?.cancel();
  }
}
async function countByStatus(ids: readonly string[]): Promise<Map<string, number>> {
  const r = await cp.query<{ status: string; n: number }>(
    'SELECT status, count(*)::int AS n FROM runs WHERE id = ANY($1::uuid[]) GROUP BY status',
    [ids],
  );
  return new Map(r.rows.map((row) => [row.status, row.n]));
}

interface Round {
  runs: number;
  startSeconds: number;
  suspendedAtOnce: number;
  memory: { before: Memory; suspended: Memory; after: Memory };
  lateness: ReturnType<typeof stats>;
  timerPart: ReturnType<typeof stats>;
  controlPlanePart: ReturnType<typeof stats>;
  workerPart: ReturnType<typeof stats>;
  ids: string[];
}

/** N runs that each step, sleep SLEEP_S (suspended) and step again. */
async function suspendRound(label: string, n: number, sleepS: number): Promise<Round> {
  const before = await workerMemory();
  log(`${label}: starting ${n} runs that sleep ${sleepS} s`);
  const t0 = performance.now();
  const ids = await pool(Array.from({ length: n }), 32, () => start(sleepS * 1000));
  const startSeconds = (performance.now() - t0) / 1000;
  // Every run has taken its first step and suspended (or, if starting took longer than the sleep, woken again).
  let suspendedAtOnce = 0;
  for (;;) {
    const counts = await countByStatus(ids);
    const suspended = counts.get('suspended') ?? 0;
    suspendedAtOnce = Math.max(suspendedAtOnce, suspended);
    if ((counts.get('queued') ?? 0) + (counts.get('running') ?? 0) === 0 || (counts.get('completed') ?? 0) > 0) break;
    await sleep(100);
  }
  const suspended = await workerMemory();
  suspendedAtOnce = Math.max(suspendedAtOnce, (await countByStatus(ids)).get('suspended') ?? 0);
  log(`${label}: ${suspendedAtOnce} suspended at once; worker RSS ${mib(suspended.rss)} MiB, heap ${mib(suspended.heapUsed)} MiB`);
  for (;;) {
    const counts = await countByStatus(ids);
    if ((counts.get('completed') ?? 0) === n) break;
    for (const bad of ['failed', 'cancelled', 'terminated', 'timed_out']) {
      if (counts.has(bad)) throw new Error(`${label}: ${counts.get(bad)} runs ${bad}`);
    }
    await sleep(500);
  }
  const outputs = await pool(ids, 16, result);
  const after = await workerMemory();
  // The sleep's due time as the journal holds it, and when the control plane handed out the wake-up (epoch 2).
  const due = await dp.query<{ run_id: string; due: number }>(
    `SELECT run_id, (extract(epoch FROM due_at) * 1000)::float8 AS due FROM dp_journal WHERE kind = 'sleep' AND run_id = ANY($1::uuid[])`,
    [ids],
  );
  const dueBy = new Map(due.rows.map((r) => [r.run_id, r.due]));
  const woke = await cp.query<{ run_id: string; at: number }>(
    `SELECT run_id, (extract(epoch FROM acquired_at) * 1000)::float8 AS at FROM run_leases WHERE epoch = 2 AND run_id = ANY($1::uuid[])`,
    [ids],
  );
  const wokeBy = new Map(woke.rows.map((r) => [r.run_id, r.at]));
  // When the timer fired: the audit log's entry of the run going back to queued for its timer.
  const queued = await cp.query<{ run_id: string; at: number }>(
    `SELECT target_id AS run_id, (extract(epoch FROM occurred_at) * 1000)::float8 AS at FROM audit_log
      WHERE action = 'run.queued' AND metadata->>'wakeReason' = 'timer' AND target_id = ANY($1::text[])`,
    [ids],
  );
  const queuedBy = new Map(queued.rows.map((r) => [r.run_id, r.at]));
  const timerPart: number[] = [];
  const lateness: number[] = [];
  const cpPart: number[] = [];
  const workerPart: number[] = [];
  ids.forEach((id, i) => {
    const d = dueBy.get(id);
    if (d === undefined) throw new Error(`run ${id} has no sleep in its journal`);
    const ranAt = outputs[i]!.ranAt;
    lateness.push(ranAt - d);
    const w = wokeBy.get(id);
    const q = queuedBy.get(id);
    if (q !== undefined) timerPart.push(q - d);
    if (w !== undefined) {
      cpPart.push(w - d);
      workerPart.push(ranAt - w);
    }
  });
  const round_: Round = {
    runs: n,
    startSeconds,
    suspendedAtOnce,
    memory: { before, suspended, after },
    lateness: stats(lateness),
    timerPart: stats(timerPart),
    controlPlanePart: stats(cpPart),
    workerPart: stats(workerPart),
    ids,
  };
  log(
    `${label}: lateness p50 ${round(round_.lateness.p50)} ms, p99 ${round(round_.lateness.p99)} ms, max ${round(round_.lateness.max)} ms`,
  );
  return round_;
}

/** Sizes of every control-plane table (with its indexes and TOAST), in bytes. */
async function tableSizes(client: pg.Client): Promise<Map<string, number>> {
  const r = await client.query<{ name: string; size: string }>(
    `SELECT c.relname AS name, pg_total_relation_size(c.oid)::text AS size
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind = 'r' AND n.nspname = 'public'`,
  );
  return new Map(r.rows.map((row) => [row.name, Number(row.size)]));
}

/**
 * Seeds `m` suspended runs copied from `template` (a run of the first round): in the control plane
 * a `runs` row (even ones sleep until 2100, odd ones wait for a signal), its first two step rows,
 * its first lease and its journal head (the audit trigger adds the run's audit row); in the data plane a `dp_runs` row and its first two journal entries. The
 * IDs are derived from the row number so that both databases agree.
 */
async function seed(template: string, m: number): Promise<void> {
  // jsonb_populate_record in FROM (LATERAL): as `(f()).*` in the select list it would run once per column.
  for (let from = 1; from <= m; from += SEED_BATCH) {
    const to = Math.min(m, from + SEED_BATCH - 1);
    const t0 = performance.now();
    const took: string[] = [];
    const insert = async (c: pg.Client, sql: string, params: unknown[]): Promise<void> => {
      const t = performance.now();
      await c.query(sql, params);
      took.push(`${/INSERT INTO (\w+)/.exec(sql)?.[1]} ${round((performance.now() - t) / 1000)} s`);
    };
    const id = `md5('cairn-bench-seed-' || g)::uuid`;
    // The two databases in parallel (in production they are different servers).
    await Promise.all([
      (async () => {
        await cp.query('BEGIN');
        await insert(
          cp,
          `INSERT INTO runs
           SELECT x.* FROM runs t CROSS JOIN generate_series($2::int, $3::int) g
             CROSS JOIN LATERAL jsonb_populate_record(NULL::runs, to_jsonb(t) || jsonb_build_object(
             'id', ${id}, 'status', 'suspended', 'epoch', 1, 'ended_at', NULL, 'output_size', NULL,
             'lease_session', NULL, 'lease_worker', NULL, 'lease_expires_at', NULL, 'wake_reason', 'start', 'dispatch_count', 1,
             'suspend_reason', CASE WHEN g % 2 = 0 THEN 'sleep' ELSE 'signal' END,
             'wake_at', CASE WHEN g % 2 = 0 THEN '2100-01-01T00:00:00Z'::timestamptz + g * interval '1 second' END,
             'waiting_signal', CASE WHEN g % 2 = 1 THEN 'approval' END,
             'created_at', t.created_at - g * interval '1 millisecond',
             'updated_at', t.created_at - g * interval '1 millisecond')) x
             WHERE t.id = $1`,
          [template, from, to],
        );
        await insert(
          cp,
          `INSERT INTO run_steps
           SELECT x.* FROM run_steps s CROSS JOIN generate_series($2::int, $3::int) g
             CROSS JOIN LATERAL jsonb_populate_record(NULL::run_steps, to_jsonb(s) || jsonb_build_object('run_id', ${id},
             'status', CASE WHEN s.position = 1 THEN 'waiting' ELSE s.status END)) x
             WHERE s.run_id = $1 AND s.position < 2`,
          [template, from, to],
        );
        await insert(
          cp,
          `INSERT INTO run_leases
           SELECT x.* FROM run_leases l CROSS JOIN generate_series($2::int, $3::int) g
             CROSS JOIN LATERAL jsonb_populate_record(NULL::run_leases, to_jsonb(l) || jsonb_build_object('run_id', ${id})) x
             WHERE l.run_id = $1 AND l.epoch = 1`,
          [template, from, to],
        );
        await insert(
          cp,
          `INSERT INTO run_journal_heads
           SELECT x.* FROM run_journal_heads h CROSS JOIN generate_series($2::int, $3::int) g
             CROSS JOIN LATERAL jsonb_populate_record(NULL::run_journal_heads, to_jsonb(h) || jsonb_build_object('run_id', ${id})) x
             WHERE h.run_id = $1`,
          [template, from, to],
        );
        await cp.query('COMMIT');
      })(),
      (async () => {
        await dp.query('BEGIN');
        await insert(
          dp,
          `INSERT INTO dp_runs
           SELECT x.* FROM dp_runs r CROSS JOIN generate_series($2::int, $3::int) g
             CROSS JOIN LATERAL jsonb_populate_record(NULL::dp_runs, to_jsonb(r) || jsonb_build_object('run_id', ${id},
             'status', 'open', 'output_key_id', NULL, 'output', NULL, 'output_size', NULL, 'ended_at', NULL)) x
             WHERE r.run_id = $1`,
          [template, from, to],
        );
        await insert(
          dp,
          `INSERT INTO dp_journal
           SELECT x.* FROM dp_journal j CROSS JOIN generate_series($2::int, $3::int) g
             CROSS JOIN LATERAL jsonb_populate_record(NULL::dp_journal, to_jsonb(j) || jsonb_build_object('run_id', ${id},
             'status', CASE WHEN j.position = 1 THEN 'waiting' ELSE j.status END)) x
             WHERE j.run_id = $1 AND j.position < 2`,
          [template, from, to],
        );
        await dp.query('COMMIT');
      })(),
    ]);
    log(
      `seeded ${to.toLocaleString('en')} of ${m.toLocaleString('en')} suspended runs (${round((performance.now() - t0) / 1000)} s for this batch: ${took.join(', ')})`,
    );
  }
  // What autovacuum would have done by the time a million runs had suspended one by one.
  await cp.query('VACUUM ANALYZE runs, run_steps, run_leases, run_journal_heads, audit_log');
  await dp.query('VACUUM ANALYZE dp_runs, dp_journal');
}

async function dispatch(): Promise<ReturnType<typeof stats>> {
  return stats(
    await measureDispatch(stack.controlPlanes[0]!.grpcAddress, stack.secrets.dataPlaneCredential, stack.secrets.dataPlaneId, DISPATCH_RUNS),
  );
}

try {
  // Warm up the JIT, the pools and the stream with a small round.
  await suspendRound('warm-up', Math.min(100, RUNS), Math.max(6, Math.min(SLEEP_S, 8)));
  const empty = await suspendRound('round 1 (nothing else waiting)', RUNS, SLEEP_S);
  const dispatchEmpty = await dispatch();

  const sizesBefore = await tableSizes(cp);
  const dbBefore = Number((await cp.query<{ s: string }>('SELECT pg_database_size(current_database())::text AS s')).rows[0]!.s);
  const seedStart = performance.now();
  await seed(empty.ids[0]!, BACKGROUND);
  const seedSeconds = (performance.now() - seedStart) / 1000;
  const sizesAfter = await tableSizes(cp);
  const dbAfter = Number((await cp.query<{ s: string }>('SELECT pg_database_size(current_database())::text AS s')).rows[0]!.s);
  const waiting = (await cp.query<{ n: number }>(`SELECT count(*)::int AS n FROM runs WHERE status = 'suspended'`)).rows[0]!.n;
  log(`${waiting.toLocaleString('en')} runs suspended in the control plane`);
  const grown = [...sizesAfter]
    .map(([name, size]) => ({ name, bytes: size - (sizesBefore.get(name) ?? 0) }))
    .filter((t) => t.bytes > 64 * 1024)
    .sort((a, b) => b.bytes - a.bytes);

  const loaded = await suspendRound(`round 2 (${BACKGROUND.toLocaleString('en')} suspended runs waiting)`, RUNS, SLEEP_S);
  const dispatchLoaded = await dispatch();

  const machine = {
    host: hostname(),
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    postgres: `${postgres.majorVersion} (embedded, fsync on)`,
  };
  const date = new Date().toISOString();
  const perRun = (r: Round) => round((r.memory.suspended.heapUsed - r.memory.before.heapUsed) / r.suspendedAtOnce, 0);
  const ms = (s: ReturnType<typeof stats>) => `${round(s.p50)} / ${round(s.p99)} / ${round(s.max)} ms`;
  const memRow = (r: Round) =>
    `${mib(r.memory.before.rss)} → ${mib(r.memory.suspended.rss)} → ${mib(r.memory.after.rss)} MiB | ${mib(r.memory.before.heapUsed)} → ${mib(r.memory.suspended.heapUsed)} → ${mib(r.memory.after.heapUsed)} MiB`;
  const roundRows = (name: string, r: Round) =>
    `| ${name} | ${r.runs} (started in ${round(r.startSeconds)} s; ${r.suspendedAtOnce} suspended at once) | ${ms(r.lateness)} | ${ms(r.timerPart)} | ${ms(r.controlPlanePart)} | ${ms(r.workerPart)} | ${memRow(r)} |`;
  const md = `# Suspended runs at scale ${date}

Machine: ${machine.cpus}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, PostgreSQL ${machine.postgres}.
One control plane, one gateway, one worker (100 slots, suspends waits over ${SUSPEND_THRESHOLD_MS / 1000} s), all on loopback.
Each run: a step, \`ctx.sleep(${SLEEP_S} s)\` (the run suspends), a step that returns when it ran.
Lateness: when the second step ran minus the sleep's due time in the journal (p50 / p99 / max). Of it: when the
control plane's timer queued the run (its audit entry), when it leased the run to the worker (run_leases epoch 2),
and the worker's part from that lease to the step.
Worker memory after forced garbage collection: before the round → all runs suspended → all completed
(V8 heap used per suspended run, while suspended minus before: ${perRun(empty)} and ${perRun(loaded)} bytes).

| round | runs | lateness | timer fired (due → queued) | leased (due → epoch 2) | worker's part (leased → ran) | worker RSS | worker V8 heap used |
| --- | --- | --- | --- | --- | --- | --- | --- |
${roundRows('nothing else waiting', empty)}
${roundRows(`${BACKGROUND.toLocaleString('en')} suspended runs waiting`, loaded)}

Control-plane dispatch (StartRun → RunTask on a worker stream, ${DISPATCH_RUNS} runs, p50 / p99 / max):
nothing waiting ${ms(dispatchEmpty)}; with ${waiting.toLocaleString('en')} suspended runs ${ms(dispatchLoaded)}.

Control-plane database per suspended run (${BACKGROUND.toLocaleString('en')} seeded in ${round(seedSeconds)} s: half sleeping until 2100, half waiting
for a signal; each with its \`runs\` row, two \`run_steps\` rows, one \`run_leases\` row and its journal head; after VACUUM ANALYZE):
${round((dbAfter - dbBefore) / BACKGROUND, 0)} bytes (whole database), of which
${grown.map((t) => `\`${t.name}\` ${round(t.bytes / BACKGROUND, 0)} B`).join(', ')} (tables with their indexes).
`;
  console.log(md);
  mkdirSync(resultsDir, { recursive: true });
  const stamp = date.replace(/[:.]/g, '-');
  const strip = (r: Round) => ({ ...r, ids: undefined });
  writeFileSync(
    join(resultsDir, `${stamp}-suspended.json`),
    JSON.stringify(
      {
        date,
        machine,
        options: { runs: RUNS, sleepSeconds: SLEEP_S, background: BACKGROUND },
        rounds: { empty: strip(empty), loaded: strip(loaded) },
        dispatch: { empty: dispatchEmpty, loaded: dispatchLoaded },
        database: { bytesPerSuspendedRun: (dbAfter - dbBefore) / BACKGROUND, tables: grown, seedSeconds },
      },
      null,
      2,
    ) + '\n',
  );
  writeFileSync(join(resultsDir, `${stamp}-suspended.md`), md);
} finally {
  await cp.end();
  await dp.end();
  await stack.stop();
  await postgres.stop();
}
