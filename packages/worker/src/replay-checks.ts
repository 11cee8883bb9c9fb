// Replay checks: a person asks the gateway whether a run would replay cleanly on another registered
// version of its workflow; the payload store holds the request and announces it, and a worker of the
// data plane that runs that version answers it. The worker builds the run's journal document from the
// payload store, replays it against that version's code with the data plane's hasher (nothing runs,
// nothing is written but the answer) and stores the outcome, sealed. Checks take no run slot and
// never hold up runs: they are answered one at a time beside them.
import type { Logger } from '@cairn/common';
import { journalEntryDocument, type Hasher, type PayloadStore, type ReplayCheck } from '@cairn/payload-store';
import type { WorkflowDefinition } from '@cairn/sdk';
import { replayRun, type JournalDocument } from './replay.js';

const iso = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** The run and its journal as the payload store holds them, as a replay takes them (seed included). */
export async function journalDocument(store: PayloadStore, runId: string): Promise<JournalDocument | undefined> {
  const run = await store.getRun(runId);
  if (!run) return undefined;
  const entries = await store.loadJournal(runId);
  return {
    runId: run.runId,
    workflow: run.workflowName,
    status: run.status,
    input: run.input,
    seed: run.seed.toString('base64'),
    forkedFrom: run.forkedFrom ?? null,
    digestVersion: run.digestVersion,
    hmacKeyId: run.hmacKeyId,
    createdAt: new Date(run.createdAt).toISOString(),
    endedAt: iso(run.endedAt),
    entries: entries.map(journalEntryDocument),
  };
}

export interface ReplayCheckResponderOptions {
  readonly store: PayloadStore;
  readonly hasher: Hasher;
  readonly workflows: readonly WorkflowDefinition[];
  /** Recorded as the check's claimer. */
  readonly workerId: string;
  readonly logger: Logger;
}

/** Answers the replay checks asked for the workflow versions a worker runs. */
export class ReplayCheckResponder {
  readonly #options: ReplayCheckResponderOptions;
  readonly #versions: Array<{ workflowName: string; workflowVersion: string }>;
  #stopListening: (() => Promise<void>) | undefined;
  #closed = false;
  /** The pass over pending checks under way, and whether another was asked for meanwhile. */
  #pass: Promise<void> | undefined;
  #again = false;

  constructor(options: ReplayCheckResponderOptions) {
    this.#options = options;
    this.#versions = options.workflows.map((w) => ({ workflowName: w.name, workflowVersion: w.version }));
  }

  /** Listens for requests and answers those already pending. */
  async start(): Promise<void> {
    const names = new Set(this.#versions.map((v) => v.workflowName));
    const stop = await this.#options.store.onReplayCheckRequested((name) => {
      if (name === undefined || names.has(name)) this.#wake();
    });
    if (this.#closed) {
      await stop();
      return;
    }
    this.#stopListening = stop;
    this.#wake();
  }

  /** Stops listening and waits for the check being answered, if any. */
  async close(): Promise<void> {
    this.#closed = true;
    await this.#stopListening?.();
    await this.#pass;
  }

  #wake(): void {
    if (this.#closed) return;
    if (this.#pass) {
      this.#again = true;
      return;
    }
    this.#pass = this.#answerPending().finally(() => {
      this.#pass = undefined;
      if (this.#again) {
        this.#again = false;
        this.#wake();
      }
    });
  }

  async #answerPending(): Promise<void> {
    const { store, workerId, logger } = this.#options;
    while (!this.#closed) {
      let check: ReplayCheck | undefined;
      try {
        check = await store.claimReplayCheck(workerId, this.#versions);
      } catch (err) {
        logger.warn({ err }, 'could not claim replay checks from the payload store');
        return;
      }
      if (!check) return;
      await this.#answer(check);
    }
  }

  async #answer(check: ReplayCheck): Promise<void> {
    const { store, hasher, logger, workerId } = this.#options;
    const definition = this.#options.workflows.find((w) => w.name === check.workflowName && w.version === check.workflowVersion);
    let status: 'done' | 'failed';
    let result: unknown;
    try {
      const doc = await journalDocument(store, check.runId);
      if (!doc || !definition) {
        status = 'failed';
        result = { message: doc ? `this worker does not run ${check.workflowName}@${check.workflowVersion}` : 'the run is gone' };
      } else {
        status = 'done';
        result = await replayRun(doc, definition, hasher);
      }
    } catch (err) {
      status = 'failed';
      result = { message: err instanceof Error ? err.message : String(err) };
    }
    try {
      await store.finishReplayCheck(check.checkId, workerId, status, result);
      logger.info({ checkId: check.checkId, runId: check.runId, version: check.workflowVersion, status }, 'replay check answered');
    } catch (err) {
      logger.warn({ err, checkId: check.checkId }, 'could not store a replay check answer');
    }
  }
}
