// `pnpm bench`: end-to-end latency of a 10-step workflow, per-step overhead, throughput with 100
// concurrent runs and dispatch latency, each beside the floor measured in the same run on the same
// Postgres (one single-row INSERT + COMMIT). Prints a table and writes bench/results/.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEmbeddedPostgres } from '@cairn/local-postgres';
import { startStack } from '@cairn/dev';
import { measureDispatch } from './dispatch.js';
import { cairnClient } from './cairn-client.js';
import { benchTempDir, describeMachine, fileStamp, machineInfo, measureFloor, round, stats, writeResults } from './common.js';

const workerModule = fileURLToPath(new URL('./worker-main.js', import.meta.url));

const quick = process.argv.includes('--quick');
const SEQUENTIAL = quick ? 20 : 100;
const FLOOR_N = 1000;

const dir = benchTempDir('cairn-bench-');
const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), persistent: false });
const stack = await startStack({ postgres, dir, workers: 1, workerSlots: 100, workerModule, logLevel: 'info' });
const { start, result } = cairnClient(stack);

// The floor: one single-row INSERT + COMMIT on the same Postgres, over the same driver.
const floor = () => measureFloor(stack.dpDatabaseUrl, FLOOR_N);

async function sequential(steps: number, n: number): Promise<{ latency: number[]; dispatch: number[] }> {
  const latency: number[] = [];
  const dispatch: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    const p0 = performance.now();
    const runId = await start(steps);
    const out = await result(runId);
    latency.push(performance.now() - p0);
    if (steps > 0) dispatch.push(out.firstStepAt - t0);
  }
  return { latency, dispatch };
}

try {
  // Warm up the JIT, the pools and the stream.
  await sequential(10, 10);
  const floorBefore = stats(await floor());
  const ten = await sequential(10, SEQUENTIAL);
  const zero = await sequential(0, SEQUENTIAL);
  const hundred = await sequential(100, Math.max(10, SEQUENTIAL / 5));
  const perStep = (stats(hundred.latency).p50 - stats(zero.latency).p50) / 100;

  const concurrentRuns = 100;
  const t0 = performance.now();
  const ids = await Promise.all(Array.from({ length: concurrentRuns }, () => start(10)));
  await Promise.all(ids.map((id) => result(id)));
  const wall = (performance.now() - t0) / 1000;
  const stepsPerSecond = (concurrentRuns * 10) / wall;
  const cpDispatch = stats(
    await measureDispatch(
      stack.controlPlanes[0]!.grpcAddress,
      stack.secrets.dataPlaneCredential,
      stack.secrets.dataPlaneId,
      SEQUENTIAL * 2,
    ),
  );
  const floorAfter = stats(await floor());
  const floorP50 = (floorBefore.p50 + floorAfter.p50) / 2;

  const tenS = stats(ten.latency);
  const dispatchS = stats([...ten.dispatch, ...hundred.dispatch]);
  const machine = machineInfo(`${postgres.majorVersion} (embedded, fsync on)`);
  const figures = {
    floorInsertCommitMs: {
      p50: round(floorP50, 3),
      before: round(floorBefore.p50, 3),
      after: round(floorAfter.p50, 3),
      p99: round(Math.max(floorBefore.p99, floorAfter.p99), 3),
    },
    tenStepEndToEndMs: { p50: round(tenS.p50), p99: round(tenS.p99), runs: tenS.n },
    zeroStepEndToEndMs: { p50: round(stats(zero.latency).p50) },
    perStepOverheadMs: round(perStep, 3),
    perStepOverFloor: round(perStep / floorP50, 2),
    stepsPerSecond100Concurrent: round(stepsPerSecond, 0),
    dispatchStartToFirstStepMs: { p50: round(dispatchS.p50), p99: round(dispatchS.p99), runs: dispatchS.n },
    controlPlaneDispatchMs: { p50: round(cpDispatch.p50), p99: round(cpDispatch.p99), runs: cpDispatch.n },
  };
  const date = new Date().toISOString();
  const md = `# Cairn benchmark ${date}

Machine: ${describeMachine(machine)}.
One control plane, one gateway, one worker (100 slots), all on loopback.

| measure | value |
| --- | --- |
| floor: single-row INSERT + COMMIT (p50, same Postgres) | ${figures.floorInsertCommitMs.p50} ms (before ${figures.floorInsertCommitMs.before}, after ${figures.floorInsertCommitMs.after}; p99 ${figures.floorInsertCommitMs.p99}) |
| 10-step workflow, gateway start → result, sequential (p50 / p99) | ${figures.tenStepEndToEndMs.p50} / ${figures.tenStepEndToEndMs.p99} ms (${tenS.n} runs) |
| 0-step workflow, gateway start → result (p50) | ${figures.zeroStepEndToEndMs.p50} ms |
| per-step overhead ((100-step − 0-step) / 100, p50) | ${figures.perStepOverheadMs} ms = ${figures.perStepOverFloor} × floor |
| steps per second, 100 concurrent 10-step runs | ${figures.stepsPerSecond100Concurrent} |
| dispatch, end to end: gateway start request → first step runs (p50 / p99) | ${figures.dispatchStartToFirstStepMs.p50} / ${figures.dispatchStartToFirstStepMs.p99} ms |
| dispatch, control plane: StartRun → RunTask on the worker stream (p50 / p99) | ${figures.controlPlaneDispatchMs.p50} / ${figures.controlPlaneDispatchMs.p99} ms (${cpDispatch.n} runs) |
`;
  console.log(md);
  writeResults(fileStamp(date), md, { date, machine, figures }, ['latest.md']);
} finally {
  await stack.stop();
  await postgres.stop();
}
