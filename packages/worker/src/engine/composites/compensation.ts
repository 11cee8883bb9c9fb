// Compensation (saga): steps with a `compensate` option register it when they complete (or replay);
// when the workflow fails or is cancelled, the registered compensations run as durable steps of
// their own, newest first, identified by the step they undo so a resumed run finds them.
import { StepFailedError, type StepContext } from '@cairn/sdk';
import type { ResolvedRetryPolicy } from '@cairn/sdk/internal';
import { toError } from '../../errors.js';
import { step } from '../calls/step.js';
import type { Run } from '../run.js';

/** A step's compensation, registered when the step completed (or replayed its result). */
export interface Compensation {
  /** The compensated step's position; compensations run in reverse position order. */
  readonly position: number;
  readonly stepName: string;
  readonly result: unknown;
  readonly fn: (result: unknown, step: StepContext) => unknown;
  readonly policy: ResolvedRetryPolicy;
  readonly timeoutMs: number | undefined;
}

/** A compensation that failed for good, recorded with the run's error in the data plane. */
export interface CompensationFailure {
  readonly name: string;
  readonly position: number;
  readonly stepPosition: number;
  readonly error: { readonly name: string; readonly message: string };
}

/** `compensate.<step>`, cut to the name limit. */
export const compensationName = (stepName: string): string => `compensate.${stepName}`.slice(0, 100);

/** The compensations of one execution. */
export class CompensationRegistry {
  readonly #registered = new Map<number, Compensation>();
  /** Steps with a compensation still running: a failure waits for them, so they can be undone too. */
  #running = 0;

  /** A step with a compensation started (or replays). */
  started(): void {
    this.#running++;
  }

  /** It ended; with `compensation` when it completed. */
  ended(compensation?: Compensation): void {
    this.#running--;
    if (compensation) this.#registered.set(compensation.position, compensation);
  }

  /** Whether a failure of the run has anything to undo (now or once running steps end). */
  get any(): boolean {
    return this.#registered.size > 0 || this.#running > 0;
  }

  registered(): IterableIterator<Compensation> {
    return this.#registered.values();
  }
}

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
