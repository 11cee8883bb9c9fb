// Run journals in memory, with the payload store's contract (epoch fencing, final runs closed to
// writes, one signal consumed once) but no database: for fast tests of replay logic.
import { randomBytes, randomUUID } from 'node:crypto';
import { CairnError, ErrorCodes } from '@cairn/common';
import {
  FencedError,
  type ErrorInfo,
  type JournalEntry,
  type JournalWrite,
  type StoredError,
  type StoredRun,
  type StoredRunStatus,
  type StreamEvent,
  type TakenSignal,
} from '@cairn/payload-store';
import type { RunJournal, RunJournals } from './run-journal.js';

const sizeOf = (value: unknown): number => {
  const json: string | undefined = JSON.stringify(value);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- undefined for a value JSON cannot hold (a function)
  return json === undefined ? 0 : Buffer.byteLength(json);
};

/** A JSON round trip: what is journaled is a copy, as a database would hold it. */
function copy<T>(value: T, what: string): T {
  if (value === undefined) return value;
  try {
    return JSON.parse(JSON.stringify(value)) as T;
  } catch (err) {
    throw new CairnError(ErrorCodes.NOT_SERIALIZABLE, `${what} is not JSON-serializable: ${(err as Error).message}`);
  }
}

interface MemoryRun {
  run: StoredRun;
  readonly entries: Map<number, JournalEntry>;
  readonly signals: Array<{ signalId: string; name: string; body: unknown; consumed: boolean }>;
  readonly events: StreamEvent[];
}

/**
 * Several runs' journals in memory (a parent and its children). Create runs with
 * {@link MemoryJournals.createRun}, give the collection to an `Engine` as its `store`, and read
 * what the engine wrote with {@link MemoryJournals.entries}.
 *
 * @example
 * ```ts
 * const journals = new MemoryJournals();
 * journals.createRun({ runId: 'r1', workflowName: 'refund', input: { orderId: '42' } });
 * const engine = new Engine({ store: journals, hasher, workflows: [refund] });
 * const outcome = await engine.start({ runId: 'r1', epoch: 1, workflowName: 'refund', workflowVersion: '1' }).done;
 * ```
 */
export class MemoryJournals implements RunJournals {
  readonly #runs = new Map<string, MemoryRun>();
  readonly #errors = new Map<string, StoredError>();
  readonly #listeners = new Set<(runId: string, name: string) => void>();
  /** Every write call (append, complete, fail, cancel, takeSignal), in order: a round-trip count for tests. */
  readonly writes: Array<{ readonly runId: string; readonly op: string; readonly epoch: number }> = [];

  /** Creates an open run (a second create of the same run ID keeps the first). */
  createRun(run: {
    readonly runId: string;
    readonly workflowName: string;
    readonly input: unknown;
    readonly seed?: Buffer;
    readonly hmacKeyId?: string;
  }): { inputSize: number } {
    const existing = this.#runs.get(run.runId);
    if (existing) return { inputSize: existing.run.inputSize };
    const input = copy(run.input, 'The run input');
    const inputSize = sizeOf(input);
    this.#runs.set(run.runId, {
      run: {
        runId: run.runId,
        workflowName: run.workflowName,
        status: 'open',
        epoch: 0,
        seed: run.seed ?? randomBytes(32),
        input,
        inputSize,
        output: undefined,
        outputSize: undefined,
        errorRef: undefined,
        idempotencyDigest: undefined,
        createdAt: Date.now(),
        endedAt: undefined,
        forkedFrom: undefined,
        digestVersion: 2,
        hmacKeyId: run.hmacKeyId ?? '',
      },
      entries: new Map(),
      signals: [],
      events: [],
    });
    return { inputSize };
  }

  /** Stores a signal for a run and tells the listeners, as the gateway does. */
  addSignal(runId: string, name: string, body: unknown): { signalId: string } {
    const signalId = randomUUID();
    this.#get(runId).signals.push({ signalId, name, body: copy(body, 'The signal body'), consumed: false });
    for (const listener of this.#listeners) listener(runId, name);
    return { signalId };
  }

  /** Ends a run from outside (a child run that another engine ran, in a test). */
  endRun(
    runId: string,
    end: { status: 'completed'; output: unknown } | { status: 'failed'; error: ErrorInfo } | { status: 'cancelled' },
  ): void {
    const r = this.#get(runId);
    if (end.status === 'completed') this.#close(r, 'completed', { output: copy(end.output, 'The output'), outputSize: sizeOf(end.output) });
    else if (end.status === 'failed') this.#close(r, 'failed', { errorRef: this.#storeError(runId, end.error, undefined) });
    else this.#close(r, 'cancelled', {});
  }

  /** The run as stored, or undefined. */
  run(runId: string): StoredRun | undefined {
    return this.#runs.get(runId)?.run;
  }

  /** The run's journal in position order. */
  entries(runId: string): JournalEntry[] {
    return [...this.#get(runId).entries.values()].sort((a, b) => a.position - b.position);
  }

  /** A stored error by ref. */
  error(errorRef: string): StoredError | undefined {
    return this.#errors.get(errorRef);
  }

  open(runId: string): RunJournal {
    return new MemoryRunJournal(this, runId);
  }

  onSignal(listener: (runId: string, name: string) => void): Promise<() => Promise<void>> {
    this.#listeners.add(listener);
    return Promise.resolve(() => {
      this.#listeners.delete(listener);
      return Promise.resolve();
    });
  }

  // ---- what MemoryRunJournal calls -----------------------------------------------------------

  /** @internal */
  fenced(runId: string, epoch: number, op: string): MemoryRun {
    const r = this.#runs.get(runId);
    this.writes.push({ runId, op, epoch });
    if (!r || r.run.status !== 'open') throw new FencedError(runId, epoch, undefined);
    if (r.run.epoch !== epoch) throw new FencedError(runId, epoch, r.run.epoch);
    return r;
  }

  /** @internal */
  acquire(runId: string, epoch: number, expected?: { readonly workflowName: string }): { run: StoredRun; journal: JournalEntry[] } {
    const r = this.#runs.get(runId);
    if (!r) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} has no input in this data plane's payload store.`);
    if (expected && r.run.workflowName !== expected.workflowName) {
      throw new CairnError(
        ErrorCodes.TASK_WORKFLOW_MISMATCH,
        `A run task for run ${runId} names workflow "${expected.workflowName}", but the run was stored as workflow "${r.run.workflowName}".`,
        { details: { runId, taskWorkflow: expected.workflowName, storedWorkflow: r.run.workflowName } },
      );
    }
    if (r.run.epoch > epoch) throw new FencedError(runId, epoch, r.run.epoch);
    r.run = { ...r.run, epoch };
    return { run: r.run, journal: this.entries(runId) };
  }

  /** @internal */
  append(r: MemoryRun, epoch: number, writes: readonly JournalWrite[]): { errorRefs: Map<number, string>; sizes: Map<number, number> } {
    const errorRefs = new Map<number, string>();
    const sizes = new Map<number, number>();
    // All or nothing, like one commit: copy every value first.
    const values = writes.map((w) => copy(w.value, 'The value'));
    writes.forEach((w, i) => {
      const value = values[i];
      const errorRef = w.error ? this.#storeError(r.run.runId, w.error, w.position, w.attempt) : undefined;
      if (errorRef) errorRefs.set(w.position, errorRef);
      const outputSize = sizeOf(value);
      sizes.set(w.position, outputSize);
      r.entries.set(w.position, {
        position: w.position,
        kind: w.kind,
        name: w.name,
        keyDigest: w.keyDigest,
        status: w.status,
        attempt: w.attempt ?? 1,
        value,
        outputSize,
        errorRef,
        error: w.error ? { ...w.error } : undefined,
        signalId: undefined,
        dueAt: w.dueAt,
        startedAt: w.startedAt,
        endedAt: w.endedAt,
        epoch,
      });
    });
    return { errorRefs, sizes };
  }

  /** @internal */
  complete(r: MemoryRun, epoch: number, output: unknown, last: readonly JournalWrite[]): { outputSize: number } {
    const value = copy(output, 'The workflow output');
    this.append(r, epoch, last);
    const outputSize = sizeOf(value);
    this.#close(r, 'completed', { output: value, outputSize });
    return { outputSize };
  }

  /** @internal */
  fail(r: MemoryRun, epoch: number, error: ErrorInfo, last: readonly JournalWrite[]): { errorRef: string } {
    this.append(r, epoch, last);
    const errorRef = this.#storeError(r.run.runId, error, undefined);
    this.#close(r, 'failed', { errorRef });
    return { errorRef };
  }

  /** @internal */
  cancel(r: MemoryRun): void {
    this.#close(r, 'cancelled', {});
  }

  /** @internal */
  takeSignal(
    r: MemoryRun,
    epoch: number,
    position: number,
    name: string,
    startedAt: number,
    keyDigest: string | undefined,
  ): TakenSignal | undefined {
    const signal = r.signals.find((s) => s.name === name && !s.consumed);
    if (!signal) return undefined;
    signal.consumed = true;
    const size = sizeOf(signal.body);
    r.entries.set(position, {
      position,
      kind: 'signal',
      name,
      keyDigest,
      status: 'completed',
      attempt: 1,
      value: signal.body,
      outputSize: size,
      errorRef: undefined,
      error: undefined,
      signalId: signal.signalId,
      dueAt: r.entries.get(position)?.dueAt,
      startedAt,
      endedAt: Date.now(),
      epoch,
    });
    return { signalId: signal.signalId, body: signal.body, size };
  }

  /** @internal */
  publish(runId: string, events: readonly StreamEvent[]): void {
    this.#runs.get(runId)?.events.push(...events);
  }

  #get(runId: string): MemoryRun {
    const r = this.#runs.get(runId);
    if (!r) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} is not in this memory journal.`);
    return r;
  }

  #close(r: MemoryRun, status: StoredRunStatus, fields: Partial<Pick<StoredRun, 'output' | 'outputSize' | 'errorRef'>>): void {
    r.run = { ...r.run, status, endedAt: Date.now(), ...fields };
  }

  #storeError(runId: string, error: ErrorInfo, position: number | undefined, attempt?: number): string {
    const errorRef = randomUUID();
    this.#errors.set(errorRef, { ...copy(error, 'The error'), errorRef, runId, position, attempt, createdAt: Date.now() });
    return errorRef;
  }
}

/** One run's journal in a {@link MemoryJournals}: every write is fenced by epoch, like the payload store's. */
export class MemoryRunJournal implements RunJournal {
  readonly #journals: MemoryJournals;

  constructor(
    journals: MemoryJournals,
    readonly runId: string,
  ) {
    this.#journals = journals;
  }

  fork(): Promise<{ created: boolean; copied: number; inputMissing: boolean }> {
    return Promise.reject(new CairnError(ErrorCodes.INVALID_ARGUMENT, 'Forking is not supported by the memory journal.'));
  }

  createFromPayload(): Promise<'created' | 'exists' | 'missing'> {
    return Promise.reject(new CairnError(ErrorCodes.INVALID_ARGUMENT, 'Scheduled runs are not supported by the memory journal.'));
  }

  acquire(epoch: number, expected?: { readonly workflowName: string }): Promise<{ run: StoredRun; journal: JournalEntry[] }> {
    return this.#do(() => this.#journals.acquire(this.runId, epoch, expected));
  }

  append(epoch: number, entries: readonly JournalWrite[]): Promise<{ errorRefs: Map<number, string>; sizes: Map<number, number> }> {
    return this.#do(() => {
      const r = this.#journals.fenced(this.runId, epoch, 'append');
      return entries.length === 0 ? { errorRefs: new Map(), sizes: new Map() } : this.#journals.append(r, epoch, entries);
    });
  }

  complete(epoch: number, output: unknown, last: readonly JournalWrite[]): Promise<{ outputSize: number }> {
    return this.#do(() => this.#journals.complete(this.#journals.fenced(this.runId, epoch, 'complete'), epoch, output, last));
  }

  fail(epoch: number, error: ErrorInfo, last: readonly JournalWrite[]): Promise<{ errorRef: string }> {
    return this.#do(() => this.#journals.fail(this.#journals.fenced(this.runId, epoch, 'fail'), epoch, error, last));
  }

  cancel(epoch: number): Promise<void> {
    return this.#do(() => this.#journals.cancel(this.#journals.fenced(this.runId, epoch, 'cancel')));
  }

  getError(errorRef: string): Promise<StoredError | undefined> {
    return Promise.resolve(this.#journals.error(errorRef));
  }

  takeSignal(
    epoch: number,
    position: number,
    name: string,
    startedAt: number,
    keyDigest: string | undefined,
  ): Promise<TakenSignal | undefined> {
    return this.#do(() =>
      this.#journals.takeSignal(this.#journals.fenced(this.runId, epoch, 'takeSignal'), epoch, position, name, startedAt, keyDigest),
    );
  }

  publishStream(events: readonly StreamEvent[]): Promise<unknown> {
    this.#journals.publish(this.runId, events);
    return Promise.resolve(undefined);
  }

  getChild(runId: string): Promise<StoredRun | undefined> {
    return Promise.resolve(this.#journals.run(runId));
  }

  createChild(child: {
    readonly runId: string;
    readonly workflowName: string;
    readonly input: unknown;
    readonly hmacKeyId: string;
  }): Promise<{ inputSize: number }> {
    return this.#do(() => this.#journals.createRun(child));
  }

  /** Answers on a later turn, as a database would, so the engine's interleavings are the real ones. */
  #do<T>(op: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      setImmediate(() => {
        try {
          resolve(op());
        } catch (err) {
          reject(err instanceof Error ? err : new Error(String(err)));
        }
      });
    });
  }
}
