// Compensation (saga): when the workflow fails or is cancelled, the registered compensations
// (compensation-registry.ts) run as durable steps of their own, newest first, identified by the
// step they undo so a resumed run finds them.
import { StepFailedError, type StepContext } from '@cairn/sdk';
import { toError } from '../../errors.js';
import { step } from '../calls/step.js';
import type { Run } from '../run.js';
import { compensationName, type CompensationFailure } from './compensation-registry.js';

/**
 * Runs the registered compensations, newest step first, each as a durable step named
 * `compensate.<step>`. A step still running when the workflow failed finishes first, so what it
 * did is undone too. A compensation that fails for good does not stop the others; it is returned.
 */
export async function compensate(
  run: Run,
  result: { ok: true; value: unknown } | { ok: false; error: unknown },
): Promise<CompensationFailure[]> {
  for (;;) {
    // Two turns, so registrations chained on steps that just finished land first.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    if (run.inFlight.size === 0) break;
    await Promise.allSettled([...run.inFlight]);
  }
  const list = [...run.compensations.registered()].sort((a, b) => b.position - a.position);
  run.log.info(
    { compensations: list.length, cause: run.cancelRequested ? 'cancelled' : result.ok ? 'completed' : 'failed' },
    'compensating',
  );
  const failures: CompensationFailure[] = [];
  for (const c of list) {
    const name = compensationName(c.stepName);
    const slot = run.cursor.slot('step', name, undefined, `compensate:${c.position}`);
    try {
      await run.durable(() => step(run, slot, name, (ctx: StepContext) => c.fn(c.result, ctx), c.policy, c.timeoutMs));
    } catch (err) {
      const error = toError(err);
      const cause = error instanceof StepFailedError ? { name: error.causeName, message: error.causeMessage } : error;
      run.log.error({ step: c.stepName, position: slot.position, err: error }, 'compensation failed for good');
      failures.push({ name, position: slot.position, stepPosition: c.position, error: { name: cause.name, message: cause.message } });
    }
  }
  return failures;
}
