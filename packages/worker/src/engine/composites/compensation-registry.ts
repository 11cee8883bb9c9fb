// The compensations an execution has registered: steps with a `compensate` option add theirs
// when they complete (or replay); the compensation phase (compensation.ts) runs them.
import type { StepContext } from '@cairn/sdk';
import type { ResolvedRetryPolicy } from '@cairn/sdk/internal';

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
