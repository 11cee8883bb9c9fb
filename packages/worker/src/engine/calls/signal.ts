// `ctx.waitForSignal` (and the approvals built on it): consume a stored signal into the journal,
// or wait for one (in memory, or by suspending) until its deadline.
import { StepKind, StepStatus, ErrorCode } from '@cairn/proto';
import { SignalTimeoutError } from '@cairn/sdk';
import { never, time, type Slot } from '../basics.js';
import type { Run } from '../run.js';

export async function signalWait<T>(run: Run, slot: Slot, name: string, timeoutMs: number | undefined): Promise<T> {
  const { position, keyDigest } = slot;
  let startedAt: number;
  let deadline: number | undefined;
  let waitingWritten = false;
  const replay = run.cursor.replay(
    slot,
    { kind: 'signal', name, keyDigest },
    ['completed', 'timed_out', 'waiting'],
    `signal wait "${name}"`,
  );
  if (replay.status === 'completed') return replay.entry.value as T;
  if (replay.status === 'timed_out') throw new SignalTimeoutError({ signalName: name, timeoutMs });
  if (replay.status === 'waiting') {
    startedAt = replay.entry.startedAt;
    deadline = replay.entry.dueAt;
    waitingWritten = true;
  } else {
    startedAt = run.deps.clock.now();
    deadline = timeoutMs === undefined ? undefined : startedAt + timeoutMs;
  }
  run.throwIfCancelled();
  const base = {
    position,
    kind: StepKind.SIGNAL,
    name,
    keyDigest: keyDigest ?? '',
    attempt: 1,
    startedAt: time(startedAt),
    dueAt: time(deadline),
  };
  // Subscribe before looking, so a signal stored in between still wakes the wait.
  const subscription = await run.deps.signals.subscribe(run.runId, name);
  run.subscriptions.add(subscription);
  if (run.finished) subscription.close();
  try {
    for (;;) {
      if (run.halt) return await never<T>();
      await run.writer.flushNow();
      const taken = await run.writer.write(() => run.deps.journal.takeSignal(run.epoch, position, name, startedAt, keyDigest));
      if (taken) {
        run.countSignal(name, taken.signalId);
        run.reports.report(run.epoch, {
          ...base,
          status: StepStatus.COMPLETED,
          endedAt: time(run.deps.clock.now()),
          outputSize: BigInt(taken.size),
        });
        return taken.body as T;
      }
      if (!waitingWritten) {
        await run.writer.append([{ position, kind: 'signal', name, keyDigest, status: 'waiting', dueAt: deadline, startedAt }]);
        run.reports.report(run.epoch, { ...base, status: StepStatus.WAITING });
        waitingWritten = true;
      }
      if (deadline !== undefined && run.deps.clock.now() >= deadline) {
        const endedAt = run.deps.clock.now();
        await run.writer.append([{ position, kind: 'signal', name, keyDigest, status: 'timed_out', dueAt: deadline, startedAt, endedAt }]);
        run.reports.report(run.epoch, { ...base, status: StepStatus.FAILED, errorCode: ErrorCode.SIGNAL_TIMEOUT, endedAt: time(endedAt) });
        throw new SignalTimeoutError({ signalName: name, timeoutMs });
      }
      await run.suspension.wait({ reason: 'signal', dueAt: deadline, signalName: name, subscription });
    }
  } finally {
    run.subscriptions.delete(subscription);
    subscription.close();
  }
}
