// GET /v1/runs/:id/journal: a run's whole journal as the payload store holds it, read-only, for
// replaying the run against local workflow code (`cairn replay`). Served from the data plane alone:
// the input, the recorded results and errors never leave it except to the caller holding a token.
// GET /v1/runs/:id/verify: the journal's hash chain recomputed here and compared with the head the
// control plane recorded (`cairn runs verify`).
import { CairnError, ErrorCodes, type ExportedRun } from '@cairn/common';
import { journalEntryDocument, type JournalEntry, type PayloadStore } from '@cairn/payload-store';
import { storeError } from './errors.js';
import { assertRunId } from './runs.js';
import type { JournalEntryView, JournalVerificationView, JournalView } from './schemas.js';

export type { JournalEntryView, JournalVerificationView, JournalView };

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** An entry of `GET /v1/runs/:id/journal`. */
export function journalEntryView(e: JournalEntry): JournalEntryView {
  return journalEntryDocument(e);
}

/**
 * The run and its journal from the payload store; 404 for a run this data plane does not hold. The
 * seed is served only when `withSeed` (a token with the admin scope): it predicts every
 * `ctx.random()`/`ctx.uuid()` value and child run ID the run has drawn or will draw.
 */
export async function readJournal(store: PayloadStore, runId: string, options: { withSeed: boolean }): Promise<JournalView> {
  assertRunId(runId);
  let run;
  let entries;
  try {
    run = await store.getRun(runId);
    entries = run ? await store.loadJournal(runId) : [];
  } catch (err) {
    throw storeError(err);
  }
  if (!run) {
    throw new CairnError(
      ErrorCodes.NOT_FOUND,
      `run ${runId} is not in this data plane's payload store (unknown run, or started through another data plane's gateway)`,
    );
  }
  return {
    runId: run.runId,
    workflow: run.workflowName,
    status: run.status,
    input: run.input,
    seed: options.withSeed ? run.seed.toString('base64') : null,
    forkedFrom: run.forkedFrom ?? null,
    digestVersion: run.digestVersion,
    hmacKeyId: run.hmacKeyId,
    createdAt: new Date(run.createdAt).toISOString(),
    endedAt: iso(run.endedAt),
    entries: entries.map(journalEntryView),
  };
}

/** A run and its journal as a signed export holds them; 404 for a run this data plane does not hold. */
export async function exportJournal(
  store: PayloadStore,
  runId: string,
  controlPlane: { readonly entries: number; readonly head: string } | undefined,
): Promise<ExportedRun> {
  assertRunId(runId);
  try {
    const run = await store.exportRun(runId);
    return { ...run, controlPlaneHead: controlPlane ? { entries: controlPlane.entries, head: controlPlane.head } : null };
  } catch (err) {
    if (err instanceof CairnError && err.code === ErrorCodes.RUN_NOT_FOUND) {
      throw new CairnError(
        ErrorCodes.NOT_FOUND,
        `run ${runId} is not in this data plane's payload store (unknown run, or started through another data plane's gateway)`,
      );
    }
    throw storeError(err);
  }
}

/**
 * Recomputes the run's journal hash chain in the payload store and compares it with the head the
 * control plane recorded for it (from DescribeRun). 404 for a run this data plane does not hold.
 */
export async function verifyJournal(
  store: PayloadStore,
  runId: string,
  controlPlane: { readonly entries: number; readonly head: string } | undefined,
): Promise<JournalVerificationView> {
  assertRunId(runId);
  try {
    const report = await store.verifyJournalChain(runId, controlPlane ? { entries: controlPlane.entries, head: controlPlane.head } : null);
    return { ...report, problems: [...report.problems] };
  } catch (err) {
    if (err instanceof CairnError && err.code === ErrorCodes.RUN_NOT_FOUND) {
      throw new CairnError(
        ErrorCodes.NOT_FOUND,
        `run ${runId} is not in this data plane's payload store (unknown run, or started through another data plane's gateway)`,
      );
    }
    throw storeError(err);
  }
}
