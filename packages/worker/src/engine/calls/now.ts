// `ctx.now()`, `ctx.random()` and `ctx.uuid()`: values recorded (time) or derived from the run's
// seed (random values), so a replay sees the same ones.
import type { DeterministicSource } from '../../determinism.js';
import type { Run } from '../run.js';

export function now(run: Run): Date {
  if (run.cursor.nonDeterminism) throw run.cursor.nonDeterminism;
  // The workflow settled: its result no longer matters, and nothing more is journaled for it.
  if (run.settled && !run.internal()) return new Date(run.deps.clock.now());
  const slot = run.cursor.slot('now', 'now', undefined);
  const { position, keyDigest } = slot;
  const replay = run.cursor.replay(
    slot,
    { kind: 'now', name: 'now', keyDigest },
    ['completed', 'failed', 'retrying', 'waiting', 'timed_out'],
    'ctx.now()',
  );
  if (replay.status !== 'new') return new Date(replay.entry.value as number);
  const t = run.deps.clock.now();
  // Buffered: it is journaled with the next commit (a step's result, a wait, the run's end).
  if (!run.halt)
    run.writer.bufferNow({ position, kind: 'now', name: 'now', keyDigest, status: 'completed', value: t, startedAt: t, endedAt: t });
  return new Date(t);
}

/** `ctx.random()` and `ctx.uuid()`: a branch of `ctx.parallel` draws from its own sequence. */
export function source(run: Run): DeterministicSource {
  const branch = run.scope.getStore()?.branch;
  if (!branch) return run.random;
  branch.random ??= run.random.scoped(branch.path);
  return branch.random;
}
