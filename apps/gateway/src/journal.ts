// GET /v1/runs/:id/journal: a run's whole journal as the payload store holds it, read-only, for
// replaying the run against local workflow code (`cairn replay`). Served from the data plane alone:
// the input, the recorded results and errors never leave it except to the caller holding a token.
import { CairnError, ErrorCodes } from '@cairn/common';
import type { ErrorInfo, JournalEntry, PayloadStore } from '@cairn/payload-store';
import { storeError } from './errors.js';
import { assertRunId } from './runs.js';

/** One journal entry, with its raw recorded value (what a replay returns for the call). */
export interface JournalEntryView {
  readonly position: number;
  readonly kind: string;
  readonly name: string;
  /** The HMAC of the call's key (or branch identity), as the worker computed it; null without one. */
  readonly keyDigest: string | null;
  readonly status: string;
  readonly attempt: number;
  readonly epoch: number;
  /** The journaled value: a step's result, a signal's body, a model call's result or retry state. */
  readonly value?: unknown;
  /** The error of a failed or retrying attempt, as recorded (name, message, stack, code, and flags such as `terminal`). */
  readonly error?: ErrorInfo;
  readonly signalId: string | null;
  readonly outputSize: number;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly dueAt: string | null;
}

export interface JournalView {
  readonly runId: string;
  readonly workflow: string;
  /** The run's state in the data plane: `open`, `completed`, `failed` or `cancelled`. */
  readonly status: string;
  readonly input: unknown;
  /** The 32 bytes ctx.random() and ctx.uuid() derive from, base64. */
  readonly seed: string;
  readonly forkedFrom: { readonly runId: string; readonly position: number } | null;
  readonly createdAt: string;
  readonly endedAt: string | null;
  readonly entries: readonly JournalEntryView[];
}

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

export function journalEntryView(e: JournalEntry): JournalEntryView {
  return {
    position: e.position,
    kind: e.kind,
    name: e.name,
    keyDigest: e.keyDigest ?? null,
    status: e.status,
    attempt: e.attempt,
    epoch: e.epoch,
    ...(e.value === undefined ? {} : { value: e.value }),
    ...(e.error ? { error: e.error } : {}),
    signalId: e.signalId ?? null,
    outputSize: e.outputSize,
    startedAt: new Date(e.startedAt).toISOString(),
    endedAt: iso(e.endedAt),
    dueAt: iso(e.dueAt),
  };
}

/** The run and its journal from the payload store; 404 for a run this data plane does not hold. */
export async function readJournal(store: PayloadStore, runId: string): Promise<JournalView> {
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
    seed: run.seed.toString('base64'),
    forkedFrom: run.forkedFrom ?? null,
    createdAt: new Date(run.createdAt).toISOString(),
    endedAt: iso(run.endedAt),
    entries: entries.map(journalEntryView),
  };
}
