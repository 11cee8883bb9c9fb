import type { Logger } from '@cairn/common';
import type { PayloadStore, SequencedStreamEvent } from '@cairn/payload-store';

/** What a subscriber of the hub hears. */
export interface StreamListener {
  /** Events of the run as they are published, in sequence order. */
  events(events: readonly SequencedStreamEvent[]): void;
  /** The hub's LISTEN connection was lost and is back: events published meanwhile were not heard. */
  resync(): void;
}

/**
 * The gateway's one LISTEN on the payload store's live-output channel, shared by every
 * `GET /v1/runs/:id/stream` client: started with the first subscriber, stopped with the last.
 * Streamed model text travels from the worker to here inside the data plane only.
 */
export class StreamHub {
  readonly #store: PayloadStore;
  readonly #log: Logger;
  readonly #listeners = new Map<string, Set<StreamListener>>();
  #stop: Promise<(() => Promise<void>) | undefined> | undefined;
  #closed = false;

  constructor(store: PayloadStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * Calls `listener` with the events published for `runId` from now on. Resolves once the
   * LISTEN is in place, so nothing committed after it resolves is missed. Returns the unsubscribe.
   */
  async subscribe(runId: string, listener: StreamListener): Promise<() => void> {
    let set = this.#listeners.get(runId);
    if (!set) this.#listeners.set(runId, (set = new Set()));
    set.add(listener);
    const unsubscribe = (): void => {
      const current = this.#listeners.get(runId);
      current?.delete(listener);
      if (current?.size === 0) this.#listeners.delete(runId);
      if (this.#listeners.size === 0) void this.#release();
    };
    try {
      await this.#listen();
    } catch (err) {
      unsubscribe();
      throw err;
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    await this.#release();
  }

  #listen(): Promise<unknown> {
    if (this.#closed) return Promise.resolve();
    this.#stop ??= this.#store
      .onStream(
        (runId, events) => {
          for (const listener of [...(this.#listeners.get(runId) ?? [])]) listener.events(events);
        },
        {
          // The store logs the loss and the recovery; subscribers read what they missed.
          onReconnect: () => {
            for (const set of this.#listeners.values()) for (const listener of [...set]) listener.resync();
          },
        },
      )
      .catch((err: unknown) => {
        this.#stop = undefined;
        this.#log.warn({ err }, 'could not LISTEN for streamed model output on the payload store');
        throw err;
      });
    return this.#stop;
  }

  async #release(): Promise<void> {
    const pending = this.#stop;
    if (!pending || (this.#listeners.size > 0 && !this.#closed)) return;
    this.#stop = undefined;
    const stop = await pending.catch(() => undefined);
    await stop?.();
  }
}

/** Stored events are read back this many at a time. */
const PAGE = 500;

/**
 * One subscriber's place in a run's stream: emits every event after `after` exactly once, in
 * sequence order. Live events from the hub go straight out while they follow on; stored events
 * fill in the start (the backlog after Last-Event-ID) and any gap (a LISTEN reconnect), and live
 * events that arrive meanwhile wait in a buffer. Duplicates (an event both read and heard) are
 * dropped by sequence number.
 */
export class StreamCursor {
  readonly #store: PayloadStore;
  readonly #runId: string;
  readonly #emit: (event: SequencedStreamEvent) => void;
  readonly #onError: (err: unknown) => void;
  #last: number;
  #buffer: SequencedStreamEvent[] = [];
  #filling: Promise<void> | undefined;
  #again = false;
  #closed = false;

  constructor(
    store: PayloadStore,
    runId: string,
    after: number,
    emit: (event: SequencedStreamEvent) => void,
    onError: (err: unknown) => void,
  ) {
    this.#store = store;
    this.#runId = runId;
    this.#last = after;
    this.#emit = emit;
    this.#onError = onError;
  }

  /** The id of the last event emitted. */
  get last(): number {
    return this.#last;
  }

  /** The hub's listener for this cursor. */
  readonly listener: StreamListener = {
    events: (events) => this.#push(events),
    resync: () => void this.fill(),
  };

  /** Reads what is stored after the last event emitted, then what was heard meanwhile. */
  fill(): Promise<void> {
    if (this.#filling) {
      // A fill is under way: run once more after it, for what was committed since it read.
      this.#again = true;
      return this.#filling;
    }
    this.#filling = (async () => {
      try {
        do {
          this.#again = false;
          for (;;) {
            if (this.#closed) return;
            const page = await this.#store.readStream(this.#runId, this.#last, PAGE);
            for (const e of page) this.#out(e);
            if (page.length < PAGE) break;
          }
          // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by another caller while this pass awaits
        } while (this.#again);
        const buffered = this.#buffer.sort((a, b) => a.seq - b.seq);
        this.#buffer = [];
        for (const e of buffered) if (e.seq === this.#last + 1 || e.seq <= this.#last) this.#out(e);
        // Anything still ahead of the last one was not stored when the page was read: read again.
        if (buffered.some((e) => e.seq > this.#last)) this.#again = true;
      } catch (err) {
        if (!this.#closed) this.#onError(err);
      } finally {
        this.#filling = undefined;
      }
      if (this.#again && !this.#closed) await this.fill();
    })();
    return this.#filling;
  }

  close(): void {
    this.#closed = true;
  }

  #push(events: readonly SequencedStreamEvent[]): void {
    if (this.#closed) return;
    if (this.#filling) {
      this.#buffer.push(...events);
      return;
    }
    for (const e of events) {
      if (e.seq <= this.#last) continue;
      if (e.seq !== this.#last + 1) {
        // A gap: events before this one were not heard. Read them, then this one.
        this.#buffer.push(e);
        void this.fill();
        continue;
      }
      this.#out(e);
    }
  }

  #out(e: SequencedStreamEvent): void {
    if (e.seq <= this.#last || this.#closed) return;
    this.#last = e.seq;
    this.#emit(e);
  }
}

/**
 * One Server-Sent Event. `data` is JSON on a single line; `id` (after it: the order of fields in an
 * event does not matter) lets a client resume after this event.
 */
export function sseEvent(event: string, data: unknown, id?: number): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n${id === undefined ? '' : `id: ${id}\n`}\n`;
}
