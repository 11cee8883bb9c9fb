import { CairnError, ErrorCodes, type Logger } from '@cairn/common';
import { signalNameDigest, type Hasher, type PayloadStore, type UnnotifiedSignal } from '@cairn/payload-store';
import { SignalRunRequestSchema, create } from '@cairn/proto';
import { ControlPlaneError, mayHaveTakenEffect, type ControlPlane } from './control-plane.js';
import { Periodic } from './periodic.js';

/** Signals looked at in one sweep; the rest wait for the next one. */
export const SIGNAL_SWEEP_BATCH = 100;
/** Each SignalRun of a sweep; a control plane slower than this ends the sweep. */
const SIGNAL_TIMEOUT_MS = 5_000;

/** What one sweep did, or why it stopped. */
export interface SignalSweep {
  readonly candidates: number;
  /** Signals the control plane has now heard of. */
  readonly told: number;
  /** Signals removed because their run had ended or is unknown to the control plane, unconsumed. */
  readonly dropped: number;
  /** The error code that ended the sweep early (no definite answer); the rest is tried next interval. */
  readonly stopped?: string;
  /** Where the next sweep goes on from (undefined: from the oldest again). */
  readonly next?: UnnotifiedSignal | undefined;
}

/**
 * Tells the control plane of the signals it was never told of. A signal is stored in the data
 * plane first and then announced with SignalRun (`Runs.signal`); when SignalRun gives no definite
 * answer the signal is kept (the control plane may have recorded its notice) and the caller is told
 * it is pending, and a gateway killed in between leaves one behind the same way. Without a notice
 * a suspended run waiting for it would never be woken.
 *
 * A sweep lists up to `batch` such signals stored more than `ageMs` ago (older than any SignalRun
 * still in flight), after `after`, and sends SignalRun for each with the ID it was stored under and
 * the per-run digest of its name (never the name: the digest wakes a run waiting by name or by
 * digest alike). The control plane records one notice per signal ID, so telling it twice (two
 * gateways sweeping, or the first answer lost) counts once. An answer marks the signal told. A run
 * that ended or that the control plane does not know will never consume it: the signal is removed
 * unless a wait consumed it already. No definite answer (unreachable, a timeout, an internal error)
 * ends the sweep; another definite refusal (a credential problem, say) leaves that signal owed and
 * goes on with the next.
 */
export async function tellOwedSignals(
  store: PayloadStore,
  controlPlane: ControlPlane,
  hasher: Hasher,
  options: { readonly ageMs: number; readonly batch?: number; readonly after?: UnnotifiedSignal | undefined },
): Promise<SignalSweep> {
  const batch = options.batch ?? SIGNAL_SWEEP_BATCH;
  const owed = await store.unnotifiedSignals(options.ageMs, batch, options.after);
  const told: string[] = [];
  let dropped = 0;
  let stopped: string | undefined;
  for (const signal of owed) {
    const request = create(SignalRunRequestSchema, {
      runId: signal.runId,
      signalName: '',
      signalDigest: signalNameDigest(hasher, signal.runId, signal.name),
      signalId: signal.signalId,
    });
    try {
      await controlPlane.signalRun(request, { timeoutMs: SIGNAL_TIMEOUT_MS });
      told.push(signal.signalId);
    } catch (err) {
      if (mayHaveTakenEffect(err)) {
        stopped = CairnError.from(err).code;
        break;
      }
      if (err instanceof ControlPlaneError && (err.code === ErrorCodes.NOT_FOUND || err.code === ErrorCodes.CONFLICT)) {
        if (await store.deleteSignalIfUnconsumed(signal.signalId)) dropped++;
        else told.push(signal.signalId);
      }
    }
  }
  await store.markSignalsNotified(told);
  const result = { candidates: owed.length, told: told.length, dropped };
  if (stopped !== undefined) return { ...result, stopped, next: options.after };
  return { ...result, next: owed.length < batch ? undefined : owed.at(-1) };
}

/** Sweeps every `intervalMs` (jittered, see {@link Periodic}). Logs counts only, never names or bodies. */
export function signalNoticeSweeper(
  store: PayloadStore,
  controlPlane: ControlPlane,
  hasher: Hasher,
  logger: Logger,
  options: { readonly intervalMs: number; readonly ageMs: number },
): Periodic {
  let after: UnnotifiedSignal | undefined;
  return new Periodic(options.intervalMs, async () => {
    try {
      const done = await tellOwedSignals(store, controlPlane, hasher, { ageMs: options.ageMs, after });
      after = done.next;
      const counts = { candidates: done.candidates, told: done.told, dropped: done.dropped };
      if (done.stopped !== undefined) {
        logger.warn(
          { ...counts, code: done.stopped },
          'signal sweep stopped: the control plane did not answer; the signals it was not told of are tried again next interval',
        );
      } else if (done.candidates > 0) {
        logger.info(counts, 'signal sweep: told the control plane of signals it had not heard of');
      }
    } catch (err) {
      logger.warn({ code: CairnError.from(err).code }, 'signal sweep could not read the payload store; it is tried again next interval');
    }
  });
}
