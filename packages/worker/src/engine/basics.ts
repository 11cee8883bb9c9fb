// What the engine's modules share below the run: why an execution halts, where a call is made
// from, a call's journal slot, and small helpers. It imports nothing of the engine.
import type { DeterministicSource } from '../determinism.js';

/** Why an execution stopped running workflow code. */
export type Halt = 'settling' | 'suspend' | 'drain' | 'lost' | 'abandoned' | 'misconfigured' | 'refused';

/** Thrown inside the engine when the execution was halted; never reaches workflow code. */
export class HaltedError extends Error {
  constructor() {
    super('execution halted');
    this.name = 'HaltedError';
  }
}

/**
 * Where a durable call is made from, carried through promise chains by AsyncLocalStorage: the
 * workflow's main line (no store), a `ctx.parallel` branch, or the compensation phase.
 */
export interface CallScope {
  /**
   * Inside a `ctx.parallel` branch: the branch's path (`p0.3` is item 3 of the run's first
   * parallel; `p0.3#1.0` item 0 of a parallel nested as the branch's second call) and how many
   * calls it made so far. A branch's calls are identified by path and count, not by position,
   * because positions are handed out in completion order across branches (see `JournalCursor.slot`).
   */
  readonly branch?: { readonly path: string; seq: number; random?: DeterministicSource };
  /** The compensation phase: it runs after the workflow function settled and ignores cancellation. */
  readonly internal?: boolean;
}

/** A durable call's place in the journal. */
export interface Slot {
  readonly position: number;
  /** What crosses as `key_digest`: the HMAC of the call's key, or of its identity in a branch. */
  readonly keyDigest: string | undefined;
  /** `StepContext.idempotencyKey`: stable over attempts and replays of the call. */
  readonly idempotencyKey: string;
}

export const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
export const delay = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
/** A time as a report carries it: whole milliseconds, 0 for none. */
export const time = (ms: number | undefined): bigint => BigInt(Math.max(0, Math.round(ms ?? 0)));
