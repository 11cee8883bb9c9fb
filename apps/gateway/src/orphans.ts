import { CairnError, ErrorCodes, type Logger } from '@cairn/common';
import type { OrphanCandidate, PayloadStore } from '@cairn/payload-store';
import { DescribeRunRequestSchema, create } from '@cairn/proto';
import { ControlPlaneError, type ControlPlane } from './control-plane.js';
import { Periodic } from './periodic.js';

/** Runs looked at in one sweep; the rest wait for the next one. */
export const ORPHAN_SWEEP_BATCH = 100;
/** Each DescribeRun of a sweep; a control plane slower than this skips the sweep. */
const DESCRIBE_TIMEOUT_MS = 5_000;

/** What one sweep did: how many runs it looked at and deleted, or why it stopped. */
export interface OrphanSweep {
  readonly candidates: number;
  readonly deleted: number;
  /** The error code that ended the sweep before anything was deleted (nothing was). */
  readonly skipped?: string;
  /** Where the next sweep goes on from (undefined: from the oldest again). */
  readonly next?: OrphanCandidate | undefined;
}

/**
 * Deletes the inputs of starts that never became runs. A start stores the input first
 * (`createRun`) and then asks the control plane to queue the run; a gateway killed in between, or
 * one that could not reach the payload store to drop the input after StartRun failed, leaves an
 * open run behind that the control plane never heard of. Nothing reads it and retention (which
 * handles ended runs) never removes it.
 *
 * A sweep lists up to `batch` open runs older than `ageMs` that no worker ever took (first lease's
 * epoch, no journal entry), after `after` (so runs the control plane knows, such as runs queued
 * behind a long backlog, do not hide the ones after them), asks the control plane about each, and
 * deletes only those it answers NOT_FOUND for. Any other answer (unreachable, a timeout, an
 * internal error) ends the sweep with nothing deleted: a run is never deleted on a guess.
 *
 * Why a start in progress cannot be deleted: a start creates its row and calls StartRun within
 * the control-plane deadline (CAIRN_CP_TIMEOUT_MS, seconds; the probe after a lost answer is
 * shorter), and the age is validated to be far above it (CAIRN_GATEWAY_ORPHAN_AGE_MS, at least
 * ten times the deadline), so by the time a row is old enough to be looked at, its gateway either
 * told the control plane (then DescribeRun finds it) or gave up. A child run's row is created by
 * its parent's worker, which may replay and ask again much later; that repeat create moves the
 * row's created_at on, and the delete re-checks age, epoch and journal in the same statement, so a
 * row whose start is being prepared again is kept. Several gateways may sweep at once: deleting
 * twice deletes nothing the second time.
 */
export async function sweepOrphanRuns(
  store: PayloadStore,
  controlPlane: ControlPlane,
  options: { readonly ageMs: number; readonly batch?: number; readonly after?: OrphanCandidate | undefined },
): Promise<OrphanSweep> {
  const batch = options.batch ?? ORPHAN_SWEEP_BATCH;
  // Ages are measured by the payload store's clock, the one that stamped created_at.
  const candidates = await store.orphanRunCandidates(options.ageMs, batch, options.after);
  const unknown: string[] = [];
  for (const { runId } of candidates) {
    try {
      await controlPlane.describeRun(create(DescribeRunRequestSchema, { runId }), { timeoutMs: DESCRIBE_TIMEOUT_MS });
    } catch (err) {
      if (err instanceof ControlPlaneError && err.code === ErrorCodes.NOT_FOUND) {
        unknown.push(runId);
        continue;
      }
      return { candidates: candidates.length, deleted: 0, skipped: CairnError.from(err).code, next: options.after };
    }
  }
  const deleted = await store.deleteOrphanRuns(unknown, options.ageMs);
  return { candidates: candidates.length, deleted, next: candidates.length < batch ? undefined : candidates.at(-1) };
}

/** Sweeps every `intervalMs` (jittered, see {@link Periodic}). Logs counts only, never run contents. */
export function orphanSweeper(
  store: PayloadStore,
  controlPlane: ControlPlane,
  logger: Logger,
  options: { readonly intervalMs: number; readonly ageMs: number },
): Periodic {
  let after: OrphanCandidate | undefined;
  return new Periodic(options.intervalMs, async () => {
    try {
      const done = await sweepOrphanRuns(store, controlPlane, { ageMs: options.ageMs, after });
      after = done.next;
      if (done.skipped !== undefined) {
        logger.warn(
          { candidates: done.candidates, code: done.skipped },
          'orphan sweep skipped: the control plane did not answer for every run, so nothing was deleted; it is tried again next interval',
        );
      } else if (done.candidates > 0) {
        logger.info(
          { candidates: done.candidates, deleted: done.deleted },
          'orphan sweep: deleted the stored inputs of starts the control plane never queued',
        );
      }
    } catch (err) {
      logger.warn({ code: CairnError.from(err).code }, 'orphan sweep could not read the payload store; it is tried again next interval');
    }
  });
}
