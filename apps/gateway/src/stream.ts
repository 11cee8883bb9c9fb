import type { Logger } from '@cairn/common';
import type { PayloadStore, StreamEvent } from '@cairn/payload-store';

type Listener = (events: readonly StreamEvent[]) => void;

/**
 * The gateway's one LISTEN on the payload store's live-output channel, shared by every
 * `GET /v1/runs/:id/stream` client: started with the first subscriber, stopped with the last.
 * Streamed model text travels from the worker to here inside the data plane only.
 */
export class StreamHub {
  readonly #store: PayloadStore;
  readonly #log: Logger;
  readonly #listeners = new Map<string, Set<Listener>>();
  #stop: Promise<(() => Promise<void>) | undefined> | undefined;
  #closed = false;

  constructor(store: PayloadStore, log: Logger) {
    this.#store = store;
    this.#log = log;
  }

  /**
   * Calls `listener` with the events published for `runId` from now on. Resolves once the
   * LISTEN is in place, so nothing published after it resolves is missed. Returns the unsubscribe.
   */
  async subscribe(runId: string, listener: Listener): Promise<() => void> {
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
      .onStream((runId, events) => {
        for (const listener of [...(this.#listeners.get(runId) ?? [])]) listener(events);
      })
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

/** One Server-Sent Event. `data` is JSON on a single line. */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
