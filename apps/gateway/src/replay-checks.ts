// POST /v1/runs/:id/replay-checks and GET /v1/runs/:id/replay-checks/:checkId: whether a run's
// journal replays cleanly on another registered version of its workflow. The gateway stores the
// request in the payload store, which announces it to the workers of this data plane; a worker that
// runs the version replays the journal (nothing runs, nothing is written to the run) and stores the
// outcome. A check no worker takes within UNSUPPORTED_AFTER_MS is unsupported: no worker of this
// data plane runs the version. The journal, the outcome and its messages stay in the data plane.
import { CairnError, ErrorCodes } from '@cairn/common';
import type { PayloadStore, ReplayCheck } from '@cairn/payload-store';
import { storeError } from './errors.js';
import { assertRunId } from './runs.js';
import type { ReplayCheckView, ReplayOutcome } from './schemas.js';

/** How long a check may wait for a worker that runs its version before it is unsupported. */
export const UNSUPPORTED_AFTER_MS = 10_000;
const POLL_MS = 200;

export async function requestReplayCheck(
  store: PayloadStore,
  runId: string,
  version: string,
): Promise<{ checkId: string; runId: string; version: string }> {
  assertRunId(runId);
  let check: ReplayCheck;
  try {
    check = await store.requestReplayCheck(runId, version);
  } catch (err) {
    if (err instanceof CairnError && err.code === ErrorCodes.RUN_NOT_FOUND) {
      throw new CairnError(
        ErrorCodes.NOT_FOUND,
        `run ${runId} is not in this data plane's payload store (unknown run, or started through another data plane's gateway)`,
      );
    }
    throw storeError(err);
  }
  return { checkId: check.checkId, runId: check.runId, version: check.workflowVersion };
}

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });

/**
 * The check, once it is answered or `waitMs` passed (or `signal` aborts), whichever comes first; 404
 * for a check that does not exist or belongs to another run.
 */
export async function readReplayCheck(
  store: PayloadStore,
  runId: string,
  checkId: string,
  waitMs: number,
  signal: AbortSignal,
): Promise<ReplayCheckView> {
  assertRunId(runId);
  const deadline = Date.now() + waitMs;
  for (;;) {
    let check: ReplayCheck | undefined;
    try {
      await store.expireReplayChecks(UNSUPPORTED_AFTER_MS);
      check = await store.getReplayCheck(checkId);
    } catch (err) {
      throw storeError(err);
    }
    if (!check || check.runId !== runId) {
      throw new CairnError(ErrorCodes.NOT_FOUND, `run ${runId} has no replay check ${checkId} (checks are kept for an hour)`);
    }
    const answered = check.status !== 'pending' && check.status !== 'running';
    const left = deadline - Date.now();
    if (answered || left <= 0 || signal.aborted) return view(check);
    // A pending check expires at requestedAt + UNSUPPORTED_AFTER_MS: look again no later than that.
    const untilExpiry = check.status === 'pending' ? check.requestedAt + UNSUPPORTED_AFTER_MS - Date.now() + 50 : POLL_MS;
    await sleep(Math.max(10, Math.min(POLL_MS, left, untilExpiry)), signal);
  }
}

function view(check: ReplayCheck): ReplayCheckView {
  const base = {
    checkId: check.checkId,
    runId: check.runId,
    workflow: check.workflowName,
    version: check.workflowVersion,
    requestedAt: new Date(check.requestedAt).toISOString(),
    finishedAt: check.finishedAt === undefined ? null : new Date(check.finishedAt).toISOString(),
  };
  switch (check.status) {
    case 'done':
      return { ...base, status: 'done', result: check.result as ReplayOutcome, message: null };
    case 'failed': {
      const message = (check.result as { message?: unknown } | undefined)?.message;
      return {
        ...base,
        status: 'failed',
        result: null,
        message:
          typeof message === 'string'
            ? `the worker could not replay the run: ${message}`
            : `the worker that took the check${check.claimedBy === undefined ? '' : ` (${check.claimedBy})`} stopped before answering; ask again`,
      };
    }
    case 'expired':
      return {
        ...base,
        status: 'unsupported',
        result: null,
        message: `no worker of this data plane runs ${check.workflowName}@${check.workflowVersion}`,
      };
    default:
      return { ...base, status: check.status, result: null, message: null };
  }
}
