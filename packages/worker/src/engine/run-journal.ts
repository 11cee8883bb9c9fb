// What an execution needs from storage for one run, behind an interface the engine owns: the
// payload store in production, memory in unit tests, a recorded journal in a replay.
import type {
  ErrorInfo,
  JournalEntry,
  JournalWrite,
  PayloadStore,
  StoredError,
  StoredRun,
  StreamEvent,
  TakenSignal,
} from '@cairn/payload-store';

/** Where a forked run comes from: its source run, the position it forks at, and a new input if any. */
export interface ForkSource {
  readonly runId: string;
  readonly position: number;
  /** A stored payload (gateway `POST /v1/payloads`) to take the input from instead of the source's. */
  readonly inputPayloadId?: string | undefined;
}

/**
 * One run's journal and records. Every write names the lease epoch it is made under; a write
 * under an epoch older than the run's throws FencedError (from `@cairn/payload-store`), which the
 * engine takes as the lost lease it means.
 */
export interface RunJournal {
  readonly runId: string;
  /**
   * For a forked run: creates it from `source` (its input, seed and journal before
   * `source.position`) once, under `epoch`; with `source.inputPayloadId`, its input is that stored
   * payload instead. `created` is false when an earlier dispatch did. When the payload is gone the
   * run is stored failed with `missing` (`inputMissing`).
   */
  fork(epoch: number, source: ForkSource, missing: ErrorInfo): Promise<{ created: boolean; copied: number; inputMissing: boolean }>;
  /**
   * For a scheduled run: creates it from a stored payload once (`exists` when it is there already);
   * `missing` when the payload is gone, and the run is then stored failed with `missing`.
   */
  createFromPayload(
    run: { readonly workflowName: string; readonly payloadId: string | undefined; readonly hmacKeyId: string },
    missing: ErrorInfo,
  ): Promise<'created' | 'exists' | 'missing'>;
  /**
   * Takes the run for `epoch` (fenced: an older epoch than the stored one is refused) and reads it
   * with its journal. With `expected`, a run stored under another workflow name is refused
   * (CAIRN-1191) and nothing is written.
   */
  acquire(epoch: number, expected?: { readonly workflowName: string }): Promise<{ run: StoredRun; journal: JournalEntry[] }>;
  /** Appends (or updates) journal entries in one commit, fenced by `epoch`; returns error refs and sizes by position. */
  append(epoch: number, entries: readonly JournalWrite[]): Promise<{ errorRefs: Map<number, string>; sizes: Map<number, number> }>;
  /** Stores the run's output and ends it completed, with `last` journaled in the same commit. */
  complete(epoch: number, output: unknown, last: readonly JournalWrite[]): Promise<{ outputSize: number }>;
  /** Stores the run's error and ends it failed, with `last` journaled in the same commit. */
  fail(epoch: number, error: ErrorInfo, last: readonly JournalWrite[]): Promise<{ errorRef: string }>;
  /** Ends the run cancelled. */
  cancel(epoch: number): Promise<void>;
  /** A stored error (of this run or of a child run) by its ref. */
  getError(errorRef: string): Promise<StoredError | undefined>;
  /**
   * Consumes the oldest unconsumed signal `name` of the run into the journal entry at `position`
   * (completed, with the body), fenced by `epoch`; undefined when none is there.
   */
  takeSignal(
    epoch: number,
    position: number,
    name: string,
    startedAt: number,
    keyDigest: string | undefined,
  ): Promise<TakenSignal | undefined>;
  /** Publishes live events (model text deltas) of the run to the data plane's subscribers. */
  publishStream(events: readonly StreamEvent[]): Promise<unknown>;
  /** A child run this run started (or any run of the data plane) as stored. */
  getChild(runId: string): Promise<StoredRun | undefined>;
  /** Creates a child run of this run; a second create of the same run ID keeps the first. */
  createChild(child: {
    readonly runId: string;
    readonly workflowName: string;
    readonly input: unknown;
    readonly hmacKeyId: string;
  }): Promise<{ inputSize: number }>;
}

/** Where an engine's runs are stored: opens each run's journal, and tells of new signals. */
export interface RunJournals {
  open(runId: string): RunJournal;
  /**
   * Calls `listener(runId, name)` for each new signal, and `onGap` when signals may have been
   * missed (the listening connection came back after a loss); returns a function that stops listening.
   */
  onSignal(listener: (runId: string, name: string) => void, onGap?: () => void): Promise<() => Promise<void>>;
}

/** The payload store as run journals: each call is one payload-store call, as the engine made them before. */
export class PayloadStoreJournals implements RunJournals {
  constructor(readonly store: PayloadStore) {}

  open(runId: string): RunJournal {
    return new PayloadStoreRunJournal(this.store, runId);
  }

  onSignal(listener: (runId: string, name: string) => void, onGap?: () => void): Promise<() => Promise<void>> {
    return this.store.onSignal(listener, onGap);
  }
}

/** One run's journal in the payload store (Postgres): fencing, sealing and batching are the store's. */
export class PayloadStoreRunJournal implements RunJournal {
  constructor(
    readonly store: PayloadStore,
    readonly runId: string,
  ) {}

  fork(epoch: number, source: ForkSource, missing: ErrorInfo): Promise<{ created: boolean; copied: number; inputMissing: boolean }> {
    return this.store.forkRun(this.runId, epoch, source, missing);
  }

  createFromPayload(
    run: { readonly workflowName: string; readonly payloadId: string | undefined; readonly hmacKeyId: string },
    missing: ErrorInfo,
  ): Promise<'created' | 'exists' | 'missing'> {
    return this.store.createRunFromPayload({ runId: this.runId, ...run }, missing);
  }

  acquire(epoch: number, expected?: { readonly workflowName: string }): Promise<{ run: StoredRun; journal: JournalEntry[] }> {
    return this.store.acquire(this.runId, epoch, expected);
  }

  append(epoch: number, entries: readonly JournalWrite[]): Promise<{ errorRefs: Map<number, string>; sizes: Map<number, number> }> {
    return this.store.append(this.runId, epoch, entries);
  }

  complete(epoch: number, output: unknown, last: readonly JournalWrite[]): Promise<{ outputSize: number }> {
    return this.store.completeRun(this.runId, epoch, output, last);
  }

  fail(epoch: number, error: ErrorInfo, last: readonly JournalWrite[]): Promise<{ errorRef: string }> {
    return this.store.failRun(this.runId, epoch, error, last);
  }

  cancel(epoch: number): Promise<void> {
    return this.store.cancelRun(this.runId, epoch);
  }

  getError(errorRef: string): Promise<StoredError | undefined> {
    return this.store.getError(errorRef);
  }

  takeSignal(
    epoch: number,
    position: number,
    name: string,
    startedAt: number,
    keyDigest: string | undefined,
  ): Promise<TakenSignal | undefined> {
    return this.store.takeSignal(this.runId, epoch, position, name, startedAt, keyDigest);
  }

  publishStream(events: readonly StreamEvent[]): Promise<unknown> {
    return this.store.publishStream(this.runId, events);
  }

  getChild(runId: string): Promise<StoredRun | undefined> {
    return this.store.getRun(runId);
  }

  createChild(child: {
    readonly runId: string;
    readonly workflowName: string;
    readonly input: unknown;
    readonly hmacKeyId: string;
  }): Promise<{ inputSize: number }> {
    return this.store.createRun({ ...child }, { idempotent: true });
  }
}
