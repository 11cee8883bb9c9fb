// `ctx.child`: a child run created in the data plane, started through the control plane, and
// waited for (the parent suspends until the child ends); its end is journaled in the parent.
import { ErrorCode, StepKind, StepStatus } from '@cairn/proto';
import { ChildWorkflowFailedError } from '@cairn/sdk';
import { errorInfo } from '../../errors.js';
import { HaltedError, time, type Slot } from '../basics.js';
import type { Run } from '../run.js';
import type { StartChildAnswer } from '../types.js';

/** `ctx.child`: creates the child run in the data plane, starts it through the control plane, and waits for its end. */
export async function child<T>(run: Run, slot: Slot, name: string, version: string, input: unknown): Promise<T> {
  const { position, keyDigest } = slot;
  const { journal } = run.deps;
  const childRunId = run.random.uuidFor(run.forked ? `${slot.idempotencyKey}@fork:${run.runId}` : slot.idempotencyKey);
  let startedAt: number;
  const base = { position, kind: StepKind.CHILD, name, keyDigest: keyDigest ?? '', attempt: 1 };
  const replay = run.cursor.replay(
    slot,
    { kind: 'child', name, keyDigest },
    ['completed', 'waiting', 'failed', 'retrying', 'timed_out'],
    `child workflow "${name}"`,
  );
  const entry = replay.status === 'new' ? undefined : replay.entry;
  if (replay.status === 'completed') return (replay.entry.value as { output: T } | undefined)?.output as T;
  if (replay.status === 'new') {
    run.throwIfCancelled();
    startedAt = run.deps.clock.now();
  } else if (replay.status === 'waiting') {
    startedAt = replay.entry.startedAt;
  } else {
    throw childFailure(name, replay.entry.value);
  }
  const recorded = entry ? (entry.value as { childRunId?: string } | undefined)?.childRunId : undefined;
  const runId = recorded ?? childRunId;
  let child = await run.writer.write(() => journal.getChild(runId));
  if ((!child || child.status === 'open') && entry && run.assignment.timedOutChildren?.includes(runId)) {
    // The control plane ended the child at its run timeout: no outcome will reach the data plane.
    return childEnded(run, slot, name, startedAt, {
      childRunId: runId,
      cancelled: false,
      causeName: 'RunTimedOutError',
      causeMessage: `the child run of workflow "${name}" passed the run timeout registered for its version and was ended by the control plane`,
    });
  }
  if (!child || child.status === 'open') {
    run.throwIfCancelled();
    const { inputSize } = await run.writer.write(() =>
      journal.createChild({ runId, workflowName: name, input, hmacKeyId: run.deps.hasher.activeKeyId }),
    );
    if (!entry) {
      await run.writer.append([{ position, kind: 'child', name, keyDigest, status: 'waiting', value: { childRunId: runId }, startedAt }]);
      run.reports.report(run.epoch, { ...base, status: StepStatus.WAITING, startedAt: time(startedAt) });
    }
    const send = run.deps.startChild;
    const answer: StartChildAnswer = send
      ? await send({
          parentRunId: run.runId,
          parentEpoch: run.epoch,
          position,
          childRunId: runId,
          workflowName: name,
          workflowVersion: version,
          inputSize,
        })
      : 'workflow_not_found';
    if (answer === 'not_held') {
      run.lose();
      throw new HaltedError();
    }
    if (answer === 'workflow_not_found') {
      return childEnded(run, slot, name, startedAt, {
        childRunId: runId,
        cancelled: false,
        causeName: 'WorkflowNotFoundError',
        causeMessage: `no worker of this data plane registers workflow "${name}"${version ? ` version "${version}"` : ''}`,
      });
    }
    if (answer === 'workflow_deprecated') {
      return childEnded(run, slot, name, startedAt, {
        childRunId: runId,
        cancelled: false,
        causeName: 'WorkflowDeprecatedError',
        causeMessage:
          `workflow "${name}"${version ? ` version "${version}"` : ''} is deprecated and starts no new runs: ` +
          'start the child on a newer version, or omit the version to get the newest one that is not deprecated',
      });
    }
    if (answer === 'quota_exceeded') {
      return childEnded(run, slot, name, startedAt, {
        childRunId: runId,
        cancelled: false,
        causeName: 'QuotaExceededError',
        causeMessage:
          `the control plane refused to start the child run of workflow "${name}": the project is at its concurrent-run quota ` +
          'or has used its monthly steps (see GET /v1/projects/{project}/quotas and /usage)',
      });
    }
    for (;;) {
      child = await run.writer.write(() => journal.getChild(runId));
      if (child && child.status !== 'open') break;
      // Parked: the run suspends, and the control plane wakes it when the child ends.
      await run.suspension.wait({ reason: 'child', dueAt: undefined, childRunId: runId });
    }
  }
  if (child.status === 'completed') return childEnded(run, slot, name, startedAt, { childRunId: runId, output: child.output });
  let causeName = 'CancelledError';
  let causeMessage = 'the child run was cancelled';
  if (child.status === 'failed' && child.errorRef) {
    const error = await run.writer.write(() => journal.getError(child.errorRef!)).catch(() => undefined);
    causeName = error?.name ?? 'Error';
    causeMessage = error?.message ?? 'the child run failed';
  }
  return childEnded(run, slot, name, startedAt, { childRunId: runId, cancelled: child.status === 'cancelled', causeName, causeMessage });
}

/** Journals a child's end in the parent and returns its output or throws ChildWorkflowFailedError. */
async function childEnded<T>(run: Run, slot: Slot, name: string, startedAt: number, value: ChildEnd): Promise<T> {
  const { position, keyDigest } = slot;
  const endedAt = run.deps.clock.now();
  const failed = !('output' in value);
  const error = failed ? errorInfo(childFailure(name, value)) : undefined;
  const { errorRefs, sizes } = await run.writer.append([
    { position, kind: 'child', name, keyDigest, status: failed ? 'failed' : 'completed', value, error, startedAt, endedAt },
  ]);
  run.reports.report(run.epoch, {
    position,
    kind: StepKind.CHILD,
    name,
    keyDigest: keyDigest ?? '',
    attempt: 1,
    status: failed ? StepStatus.FAILED : StepStatus.COMPLETED,
    errorCode: failed ? ErrorCode.STEP_FAILED : ErrorCode.UNSPECIFIED,
    errorRef: errorRefs.get(position) ?? '',
    startedAt: time(startedAt),
    endedAt: time(endedAt),
    outputSize: BigInt(sizes.get(position) ?? 0),
  });
  if (failed) throw childFailure(name, value);
  return (value as { output: T }).output;
}

/** How a child run ended, as the parent journals it. */
type ChildEnd =
  | { readonly childRunId: string; readonly output: unknown }
  | { readonly childRunId: string; readonly cancelled: boolean; readonly causeName: string; readonly causeMessage: string };

function childFailure(workflowName: string, value: unknown): ChildWorkflowFailedError {
  const v = (typeof value === 'object' && value !== null ? value : {}) as Partial<{
    childRunId: string;
    cancelled: boolean;
    causeName: string;
    causeMessage: string;
  }>;
  return new ChildWorkflowFailedError({
    workflowName,
    childRunId: v.childRunId ?? '',
    cancelled: v.cancelled ?? false,
    causeName: v.causeName ?? 'Error',
    causeMessage: v.causeMessage ?? 'the child run failed',
  });
}
