// `ctx.sleep` and `ctx.sleepUntil`: a journaled wake time, waited in memory or by suspending.
import { StepKind, StepStatus } from '@cairn/proto';
import { time, type Slot } from '../basics.js';
import type { Run } from '../run.js';

export async function sleep(run: Run, slot: Slot, dueAtOf: (startedAt: number) => number): Promise<void> {
  const { position, keyDigest } = slot;
  let startedAt: number;
  let dueAt: number;
  const replay = run.cursor.replay(slot, { kind: 'sleep', name: 'sleep', keyDigest }, ['completed', 'waiting'], 'a sleep');
  if (replay.status === 'completed') return;
  if (replay.status === 'waiting') {
    startedAt = replay.entry.startedAt;
    dueAt = replay.entry.dueAt ?? replay.entry.startedAt;
  } else {
    run.throwIfCancelled();
    startedAt = run.deps.clock.now();
    dueAt = dueAtOf(startedAt);
    const base = {
      position,
      kind: StepKind.SLEEP,
      name: 'sleep',
      keyDigest: keyDigest ?? '',
      attempt: 1,
      startedAt: time(startedAt),
      dueAt: time(dueAt),
    };
    if (dueAt <= startedAt) {
      await run.writer.append([
        { position, kind: 'sleep', name: 'sleep', keyDigest, status: 'completed', dueAt, startedAt, endedAt: startedAt },
      ]);
      run.reports.report(run.epoch, { ...base, status: StepStatus.COMPLETED, endedAt: time(startedAt) });
      return;
    }
    await run.writer.append([{ position, kind: 'sleep', name: 'sleep', keyDigest, status: 'waiting', dueAt, startedAt }]);
    run.reports.report(run.epoch, { ...base, status: StepStatus.WAITING });
  }
  run.throwIfCancelled();
  await run.suspension.wait({ reason: 'sleep', dueAt });
  const endedAt = run.deps.clock.now();
  await run.writer.append([{ position, kind: 'sleep', name: 'sleep', keyDigest, status: 'completed', dueAt, startedAt, endedAt }]);
  run.reports.report(run.epoch, {
    position,
    kind: StepKind.SLEEP,
    name: 'sleep',
    keyDigest: keyDigest ?? '',
    attempt: 1,
    status: StepStatus.COMPLETED,
    startedAt: time(startedAt),
    endedAt: time(endedAt),
    dueAt: time(dueAt),
  });
}
