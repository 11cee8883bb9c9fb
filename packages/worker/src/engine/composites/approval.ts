// `ctx.approval`: a human's answer as a signal wait whose name carries the approval's name and
// (digested) key, with a timeout that throws or counts as a rejection.
import { CairnError, ErrorCodes, assertName, isNonNullObject } from '@cairn/common';
import { approvalSignalName } from '@cairn/payload-store';
import { ApprovalTimeoutError, SignalTimeoutError, type ApprovalOptions, type ApprovalResult } from '@cairn/sdk';
import { toApprovalResult, toMilliseconds } from '@cairn/sdk/internal';
import { toError } from '../../errors.js';
import { signalWait } from '../calls/signal.js';
import type { Run } from '../run.js';

export function approval<T>(run: Run, name: string, options: ApprovalOptions = {}): Promise<ApprovalResult<T>> {
  let signalName: string;
  let timeoutMs: number | undefined;
  let onTimeout: 'throw' | 'reject';
  try {
    if (!isNonNullObject(options)) {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-conversion -- JavaScript callers can pass a non-string
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `ctx.approval("${String(name)}") takes options such as { timeout: '3d' }.`);
    }
    assertName(name, 'approval name');
    timeoutMs = options.timeout === undefined ? undefined : toMilliseconds(options.timeout, `timeout of approval "${name}"`);
    if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'number') {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The key of approval "${name}" must be a string or a number.`);
    }
    onTimeout = options.onTimeout ?? 'throw';
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- JavaScript callers can pass anything
    if (onTimeout !== 'throw' && onTimeout !== 'reject') {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `The onTimeout option of approval "${name}" must be 'throw' or 'reject'.`);
    }
    signalName = approvalSignalName(name, options.key === undefined ? undefined : run.cursor.digests.approval(String(options.key)));
  } catch (err) {
    return Promise.reject(toError(err));
  }
  const slot = run.cursor.slot('signal', signalName, undefined);
  return run
    .durable(() => signalWait<unknown>(run, slot, signalName, timeoutMs))
    .then(
      (body) => toApprovalResult<T>(body),
      (err: unknown) => {
        if (!(err instanceof SignalTimeoutError)) throw err;
        if (onTimeout === 'reject') return { approved: false, timedOut: true };
        throw new ApprovalTimeoutError({ approvalName: name, timeoutMs });
      },
    );
}
