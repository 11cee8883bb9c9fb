import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { renderResult, runChaos } from './chaos.js';

// The short chaos run CI does: the same suite as `pnpm chaos`, for a minute of faults, one every
// 1.2 s on average. CAIRN_CHAOS_SEED replays another seed's schedule.
const SEED = Number(process.env['CAIRN_CHAOS_SEED'] ?? 20261206);

describe('chaos: faults under load, then every invariant', () => {
  it(`holds every invariant through about 50 faults (seed ${SEED})`, async () => {
    const result = await runChaos({
      seed: SEED,
      durationMs: 60_000,
      faultIntervalMs: 1_200,
      workers: 3,
      gateways: 2,
      concurrency: 32,
      recoveryBoundMs: 120_000,
      log: (line) => console.log(line),
    });
    console.log(renderResult(result));
    assert.deepEqual(
      result.violations.map((v) => `${v.invariant}: ${v.detail}`),
      [],
      `invariant violations (seed ${SEED}; logs kept in ${result.dir ?? '-'})`,
    );
    // The run must have exercised what it claims to check.
    assert.ok(result.faults.total >= 25, `only ${result.faults.total} faults were injected`);
    assert.ok(result.runs.total >= 400, `only ${result.runs.total} runs`);
  });
});
