// Fenced writes to the run's journal: retries on connection errors, a fence ends the execution as
// lost, and ctx.now() values wait in a buffer to ride along with the next commit.
import { performance } from 'node:perf_hooks';
import { CairnError } from '@cairn/common';
import { FencedError, type JournalWrite } from '@cairn/payload-store';
import { isKeyMisconfiguration } from '../errors.js';
import { HaltedError, delay, type Halt } from './basics.js';
import type { RunJournal } from './run-journal.js';
import type { Logger } from '@cairn/common';

/** Writes to the payload store retried this many times on connection errors before giving up. */
const WRITE_RETRIES = 8;

/** What the writer needs from its execution. */
export interface WriterHost {
  readonly halt: Halt | undefined;
  lose(): void;
  misconfigured(error: CairnError): void;
  abandon(err: unknown): void;
}

export class JournalWriter {
  readonly #journal: RunJournal;
  readonly #epoch: number;
  readonly #host: WriterHost;
  readonly #log: Logger;
  /** ctx.now() values not journaled yet: they go with the next commit. */
  #pendingNow: JournalWrite[] = [];

  readonly #onCommit: ((seconds: number, result: 'ok' | 'fenced' | 'error') => void) | undefined;

  constructor(
    journal: RunJournal,
    epoch: number,
    host: WriterHost,
    log: Logger,
    onCommit?: (seconds: number, result: 'ok' | 'fenced' | 'error') => void,
  ) {
    this.#journal = journal;
    this.#epoch = epoch;
    this.#host = host;
    this.#log = log;
    this.#onCommit = onCommit;
  }

  /**
   * Runs a payload-store operation. A FencedError means another epoch owns the run: the
   * execution is lost. Data this process's keys cannot open stops the execution as misconfigured.
   * Connection errors are retried with backoff, then the run is abandoned. Other Cairn errors
   * (unserializable values, a value damaged in the database) go to the caller.
   */
  async write<T>(op: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      // After a lost lease, a step attempt that was already running may still journal its result:
      // the fence refuses it if another epoch holds the run, and keeps it for replay otherwise.
      const halt = this.#host.halt;
      if (halt === 'abandoned' || halt === 'misconfigured' || (halt === 'lost' && attempt > 0)) throw new HaltedError();
      const started = performance.now();
      try {
        const result = await op();
        this.#onCommit?.((performance.now() - started) / 1000, 'ok');
        return result;
      } catch (err) {
        this.#onCommit?.((performance.now() - started) / 1000, err instanceof FencedError ? 'fenced' : 'error');
        if (err instanceof FencedError) {
          this.#log.warn({ err }, 'journal write fenced: another worker holds this run now');
          this.#host.lose();
          throw new HaltedError();
        }
        if (isKeyMisconfiguration(err)) {
          this.#host.misconfigured(err);
          throw new HaltedError();
        }
        if (err instanceof CairnError) throw err;
        if (attempt >= WRITE_RETRIES) {
          this.#host.abandon(err);
          throw new HaltedError();
        }
        this.#log.warn({ err, attempt: attempt + 1 }, 'payload store unavailable; retrying');
        await delay(Math.min(100 * 2 ** attempt, 2000));
      }
    }
  }

  /** Appends journal entries together with any buffered ctx.now() values: one commit. */
  async append(entries: readonly JournalWrite[]): Promise<{ errorRefs: Map<number, string>; sizes: Map<number, number> }> {
    const now = this.#pendingNow.slice();
    const result = await this.write(() => this.#journal.append(this.#epoch, [...now, ...entries]));
    if (now.length > 0) this.#pendingNow = this.#pendingNow.filter((e) => !now.includes(e));
    return result;
  }

  async flushNow(): Promise<void> {
    if (this.#pendingNow.length > 0) await this.append([]);
  }

  /** Buffers a ctx.now() value until the next commit. */
  bufferNow(entry: JournalWrite): void {
    this.#pendingNow.push(entry);
  }

  /** The buffered ctx.now() values, for a final commit (the run's output or error) to carry. */
  pendingNow(): JournalWrite[] {
    return this.#pendingNow.slice();
  }
}
