// What the dispatch services report (a worker's outcome for a run it holds, what a sweep did),
// apart from the services themselves so that telemetry can record them without depending on the
// services that record through it.
import type { LeaseKey, Run } from '../domain.js';
import type { Suspension } from '../runs/run.repository.js';

/** What a worker reports about a run it holds. */
export type WorkerOutcome =
  | { readonly kind: 'suspended'; readonly lease: LeaseKey; readonly suspension: Suspension }
  | { readonly kind: 'completed'; readonly lease: LeaseKey; readonly outputSize: number }
  | { readonly kind: 'failed'; readonly lease: LeaseKey; readonly errorCode: number | null; readonly errorRef: string | null }
  | { readonly kind: 'cancelled'; readonly lease: LeaseKey }
  | { readonly kind: 'released'; readonly lease: LeaseKey };

/** What became of a reported outcome. */
export type OutcomeResult =
  /** Applied now; `run` is the run afterwards. */
  | { readonly kind: 'applied'; readonly run: Run }
  /** The same outcome was applied for that epoch before (a resend). */
  | { readonly kind: 'duplicate' }
  /** The run is not running under that epoch. */
  | { readonly kind: 'not_held' }
  /** No such run in this data plane. */
  | { readonly kind: 'unknown_run' }
  /**
   * Nothing applied: the credential the stream authenticated with is no longer its data plane's
   * current one (rotated or revoked), checked by the statement that would have applied the end.
   */
  | { readonly kind: 'stale_credential' };

/** What one sweep did: leases expired, timers and signals woken, runs timed out. */
export interface SweepResult {
  readonly expired: number;
  readonly woken: number;
  /** Runs ended `timed_out` because their deadline passed. */
  readonly timedOut: number;
}
