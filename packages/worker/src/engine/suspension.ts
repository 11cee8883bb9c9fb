// Suspension: the registry of durable calls waiting for a time, a signal or a child; the idle check
// that notices when nothing else is in progress; and the decision of how the run suspends.
import { MAX_CONSUMED_SIGNAL_IDS, SuspendReason } from '@cairn/proto';
import { CancelledError } from '@cairn/sdk';
import type { Clock, ClockTimer } from '../clock.js';
import type { SignalSubscription } from '../signals.js';
import { never, type Halt } from './basics.js';
import type { RunOutcome } from './types.js';

/** setTimeout's limit; longer waits rely on suspension. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** When a run waits for two different signal names at once, it wakes at least this often. */
export const MULTI_SIGNAL_POLL_MS = 60_000;

/** A durable call waiting for a time or a signal. */
export interface Wait {
  readonly reason: 'sleep' | 'signal' | 'retry' | 'child';
  readonly dueAt: number | undefined;
  readonly signalName: string | undefined;
  /** A child run the wait is for (its end wakes the run). */
  readonly childRunId: string | undefined;
  /** Longer than the suspend threshold: it does not keep the execution from suspending. */
  readonly long: boolean;
  /** Made by the compensation phase: cancellation does not end it. */
  readonly internal: boolean;
  /** Rejects the wait (cancellation). */
  fail(error: Error): void;
  /** Drops the wait; its promise never settles (the execution is halted). */
  dispose(): void;
}

/** What the suspension scheduler needs from its execution. */
export interface SuspensionHost {
  readonly halt: Halt | undefined;
  readonly settled: boolean;
  readonly cancelRequested: boolean;
  /** Whether the current call belongs to the compensation phase. */
  internal(): boolean;
  /** Nothing is in progress and these long waits remain: the run suspends. */
  suspend(parked: readonly Wait[]): void;
}

export class Suspension {
  readonly #host: SuspensionHost;
  readonly #clock: Clock;
  readonly #thresholdMs: number;
  readonly #waits = new Set<Wait>();
  /** Durable calls in progress, not counting those parked in a long wait. */
  #active = 0;
  #parked = 0;
  /** Bumped whenever a durable call starts or ends; lets the idle check see progress. */
  #progress = 0;
  #idleCheckScheduled = false;

  constructor(host: SuspensionHost, clock: Clock, thresholdMs: number) {
    this.#host = host;
    this.#clock = clock;
    this.#thresholdMs = thresholdMs;
  }

  /** A durable call started. */
  callStarted(): void {
    this.#active++;
    this.#progress++;
  }

  /** A durable call ended: if nothing else is in progress, the run may suspend. */
  callEnded(): void {
    this.#active--;
    this.#progress++;
    this.scheduleIdleCheck();
  }

  /** Work outside a durable call that must keep the run from suspending (a fan-out between items). */
  hold(): () => void {
    this.#active++;
    return () => {
      this.#active--;
    };
  }

  /**
   * When no durable call is making progress and some wait is longer than the threshold, the run
   * suspends. Checked two event-loop turns later, so promise chains in workflow code settle first
   * (a `Promise.race` won by a short wait keeps the run going).
   */
  scheduleIdleCheck(): void {
    if (this.#idleCheckScheduled || this.#host.halt || this.#active > 0 || this.#parked === 0) return;
    this.#idleCheckScheduled = true;
    const progress = this.#progress;
    setImmediate(() =>
      setImmediate(() => {
        this.#idleCheckScheduled = false;
        if (this.#host.halt || this.#active > 0 || this.#parked === 0) return;
        if (this.#progress !== progress) this.scheduleIdleCheck();
        else this.#host.suspend([...this.#waits].filter((w) => w.long));
      }),
    );
  }

  /**
   * Waits until `dueAt` (if any) or a signal notification (if subscribed). Waits longer than the
   * threshold are "parked": they let the run suspend once nothing else is in progress.
   */
  wait(options: {
    reason: Wait['reason'];
    dueAt: number | undefined;
    signalName?: string;
    subscription?: SignalSubscription;
    childRunId?: string;
  }): Promise<void> {
    if (this.#host.halt) return never();
    const internal = this.#host.internal();
    // A step of the settled workflow does not start another attempt.
    if (this.#host.settled && !internal) return never();
    if (this.#host.cancelRequested && !internal) return Promise.reject(new CancelledError());
    const { reason, dueAt, signalName, subscription, childRunId } = options;
    const remaining = dueAt === undefined ? Infinity : dueAt - this.#clock.now();
    if (remaining <= 0) return Promise.resolve();
    const long = remaining > this.#thresholdMs;
    return new Promise<void>((resolve, reject) => {
      let timer: ClockTimer | undefined;
      let open = true;
      const close = (): boolean => {
        if (!open) return false;
        open = false;
        timer?.cancel();
        subscription?.clearListener();
        this.#waits.delete(wait);
        if (long) this.#parked--;
        return true;
      };
      const wait: Wait = {
        reason,
        dueAt,
        signalName,
        childRunId,
        long,
        internal,
        fail: (error) => {
          if (!close()) return;
          if (long) this.#active++;
          reject(error);
        },
        dispose: () => void close(),
      };
      const wake = (): void => {
        if (!close()) return;
        if (long) this.#active++;
        resolve();
      };
      this.#waits.add(wait);
      if (long) {
        this.#parked++;
        this.#active--;
      }
      if (remaining <= MAX_TIMER_MS) {
        timer = this.#clock.setTimer(wake, remaining, { unref: long });
      }
      subscription?.onNotify(wake);
      if (long) this.scheduleIdleCheck();
    });
  }

  /** Rejects the waits the workflow made (cancellation); the compensation phase's go on. */
  failWorkflowWaits(error: Error): void {
    for (const wait of [...this.#waits]) if (!wait.internal) wait.fail(error);
  }

  /** Drops every wait: their promises never settle. */
  disposeWaits(): void {
    for (const wait of [...this.#waits]) wait.dispose();
  }
}

/**
 * How a run suspends on its parked waits: the earliest timer wakes it; a signal wait names the
 * suspension (and with several signal names it also wakes every {@link MULTI_SIGNAL_POLL_MS});
 * a child wait names the child whose end wakes it.
 */
export function suspendOutcome(
  parked: readonly Wait[],
  now: number,
  signalsConsumed: (name: string) => number,
  consumedSignalIds: (name: string) => readonly string[] = () => [],
): Extract<RunOutcome, { kind: 'suspended' }> {
  const timed = parked.filter((w) => w.dueAt !== undefined).sort((a, b) => a.dueAt! - b.dueAt!);
  const names = [...new Set(parked.flatMap((w) => (w.signalName === undefined ? [] : [w.signalName])))];
  let wakeAt = timed[0]?.dueAt ?? 0;
  if (names.length > 1) wakeAt = Math.min(wakeAt || Infinity, now + MULTI_SIGNAL_POLL_MS);
  const childRunId = parked.find((w) => w.childRunId !== undefined)?.childRunId ?? '';
  // Waiting on a signal and a child at once: the signal names the suspension and the child still wakes it.
  const reason =
    names.length > 0
      ? SuspendReason.SIGNAL
      : childRunId !== ''
        ? SuspendReason.CHILD
        : timed[0]?.reason === 'retry'
          ? SuspendReason.RETRY_BACKOFF
          : SuspendReason.SLEEP;
  const signalName = names[0] ?? '';
  return {
    kind: 'suspended',
    reason,
    wakeAt,
    signalName,
    signalsConsumed: signalName === '' ? 0 : signalsConsumed(signalName),
    consumedSignalIds: signalName === '' ? [] : consumedSignalIds(signalName).slice(-MAX_CONSUMED_SIGNAL_IDS),
    childRunId,
  };
}
