// `pnpm bench:trace`: where the time of one run goes. Starts the bench stack (one control plane,
// one gateway, one worker, embedded PostgreSQL with fsync on) with every process timing its
// Postgres statements (trace-preload.cts), runs sequential runs from `POST /v1/runs` to the
// long-polled result, and prints, for the median run, each statement of either database on the
// run's timeline and the time between them; then, over all traced runs, the median time spent in
// each process's statements and in between (process hops, gRPC, HTTP, code).
//
//   node bench/dist/trace.js [--steps N] [--runs N]
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '@cairn/local-postgres';
import { startStack } from '@cairn/dev';

const arg = (name: string, fallback: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const steps = arg('steps', 0);
const runs = arg('runs', 40);

const workerModule = fileURLToPath(new URL('./worker-main.js', import.meta.url));
const preload = new URL('./trace-preload.js', import.meta.url).href;
const now = (): number => Number(process.hrtime.bigint()) / 1e6;

interface Sample {
  s: number;
  e: number;
  app: string;
  q: string;
}
interface Traced {
  runId: string;
  t0: number;
  t1: number;
}

const dir = mkdtempSync(join(tmpdir(), 'cairn-trace-'));
chmodSync(dir, 0o755);
const traceDir = join(dir, 'trace');
mkdirSync(traceDir);
// The stack's processes inherit the environment: each one times its statements.
process.env.NODE_OPTIONS = `${process.env.NODE_OPTIONS ?? ''} --import ${preload}`.trim();
process.env.CAIRN_TRACE_DIR = traceDir;
const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), persistent: false });
const stack = await startStack({ postgres, dir, workers: 1, workerSlots: 100, workerModule, logLevel: 'warn' });
const headers = { authorization: `Bearer ${stack.secrets.gatewayToken}`, 'content-type': 'application/json' };

async function one(): Promise<Traced> {
  const t0 = now();
  const r = await fetch(`${stack.gatewayUrl}/v1/runs`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ workflow: 'bench-steps', input: { steps } }),
  });
  if (r.status !== 201) throw new Error(`start → ${r.status} ${await r.text()}`);
  const { runId } = (await r.json()) as { runId: string };
  for (;;) {
    const w = await fetch(`${stack.gatewayUrl}/v1/runs/${runId}/result?wait=60`, { headers });
    if (w.status === 200) {
      await w.json();
      break;
    }
  }
  return { runId, t0, t1: now() };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s[Math.floor((s.length - 1) / 2)]!;
};
const fmt = (x: number): string => x.toFixed(2).padStart(7);

try {
  for (let i = 0; i < 30; i++) await one(); // warm up JIT, pools, prepared statements
  const warmEnd = now();
  const traced: Traced[] = [];
  for (let i = 0; i < runs; i++) {
    traced.push(await one());
    // Let background work (step reports, notifications, metering) finish between runs.
    await new Promise((r) => setTimeout(r, 30));
  }
  await new Promise((r) => setTimeout(r, 600)); // the processes flush their samples every 200 ms
  const samples: Sample[] = [];
  for (const f of readdirSync(traceDir)) {
    for (const line of readFileSync(join(traceDir, f), 'utf8').split('\n')) {
      if (line === '') continue;
      const x = JSON.parse(line) as Sample;
      if (x.s >= warmEnd) samples.push(x);
    }
  }
  samples.sort((a, b) => a.s - b.s);
  const within = (t: Traced): Sample[] => samples.filter((x) => x.s >= t.t0 && x.e <= t.t1);

  // Per run: time in each process's statements (merged where they overlap) and outside them.
  const perRun = traced.map((t) => {
    const xs = within(t);
    const byApp = new Map<string, number>();
    let busyUntil = t.t0;
    let inStatements = 0;
    for (const x of xs) {
      byApp.set(x.app, (byApp.get(x.app) ?? 0) + (x.e - x.s));
      const from = Math.max(x.s, busyUntil);
      if (x.e > from) inStatements += x.e - from;
      busyUntil = Math.max(busyUntil, x.e);
    }
    return { total: t.t1 - t.t0, statements: xs.length, byApp, inStatements };
  });
  const totals = perRun.map((r) => r.total);
  const mid = traced[perRun.findIndex((r) => r.total === median(totals))]!;

  console.log(`# Trace of a ${steps}-step run (${runs} sequential runs; times in ms)\n`);
  console.log(`start → result: median ${median(totals).toFixed(2)}, min ${Math.min(...totals).toFixed(2)}`);
  console.log(`statements per run (both databases): median ${median(perRun.map((r) => r.statements))}`);
  console.log(
    `time inside statements (any process, overlaps counted once): median ${median(perRun.map((r) => r.inStatements)).toFixed(2)}`,
  );
  console.log(
    `time outside statements (HTTP, gRPC, hops between processes, code): median ${median(perRun.map((r) => r.total - r.inStatements)).toFixed(2)}`,
  );
  const apps = [...new Set(samples.map((x) => x.app))].sort();
  for (const app of apps) {
    console.log(`  in statements of ${app}: median ${median(perRun.map((r) => r.byApp.get(app) ?? 0)).toFixed(2)}`);
  }
  console.log(`\n## The median run (${mid.runId}), total ${(mid.t1 - mid.t0).toFixed(2)}\n`);
  console.log('  start →     end   (gap)  process                       statement');
  let last = 0;
  for (const x of within(mid)) {
    const s = x.s - mid.t0;
    const e = x.e - mid.t0;
    console.log(`${fmt(s)} → ${fmt(e)} (${fmt(s - last)})  ${x.app.padEnd(28)}  ${x.q}`);
    last = Math.max(last, e);
  }
  console.log(`${fmt(mid.t1 - mid.t0)}   result received (${fmt(mid.t1 - mid.t0 - last)})`);
} finally {
  await stack.stop();
  await postgres.stop();
}
