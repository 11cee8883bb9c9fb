import type { Logger } from '@cairn/common';
import type { RunJournals } from './engine/run-journal.js';

/**
 * One signal wait's view of the notifications for its (run, name). A notification that arrives
 * while nobody listens is remembered, so one racing the wait's registration is not missed.
 */
export class SignalSubscription {
  #pending = false;
  #listener: (() => void) | undefined;
  readonly #close: () => void;

  constructor(close: () => void) {
    this.#close = close;
  }

  /** Called by the hub when a signal of this (run, name) was stored. */
  notify(): void {
    const listener = this.#listener;
    if (listener) {
      this.#listener = undefined;
      listener();
    } else {
      this.#pending = true;
    }
  }

  /** Calls `listener` once, at the next notification (at once if one is pending). */
  onNotify(listener: () => void): void {
    if (this.#pending) {
      this.#pending = false;
      listener();
    } else {
      this.#listener = listener;
    }
  }

  /** Forgets the listener without unsubscribing. */
  clearListener(): void {
    this.#listener = undefined;
  }

  close(): void {
    this.#listener = undefined;
    this.#close();
  }
}

/**
 * The worker's subscription to the data plane's signal channel, shared by every in-memory signal
 * wait. It starts on first use; if it cannot start, waits still end at their deadline (and long
 * waits suspend, where the control plane's signal notices wake the run). When the payload store's
 * LISTEN connection comes back after a loss, every wait is woken to look in the store again, since
 * a signal stored during the outage was not heard.
 */
export class SignalHub {
  readonly #store: Pick<RunJournals, 'onSignal'>;
  readonly #logger: Logger | undefined;
  readonly #subscriptions = new Map<string, Set<SignalSubscription>>();
  #starting: Promise<void> | undefined;
  #stop: (() => Promise<void>) | undefined;
  #closed = false;

  constructor(store: Pick<RunJournals, 'onSignal'>, logger?: Logger) {
    this.#store = store;
    this.#logger = logger;
  }

  /** The runs with an open subscription (an in-memory signal wait). */
  subscribedRunIds(): string[] {
    return [...new Set([...this.#subscriptions.keys()].map((key) => key.slice(0, key.indexOf(':'))))];
  }

  /** Subscribes to signals of `name` for `runId`; resolves once the LISTEN is in place. */
  async subscribe(runId: string, name: string): Promise<SignalSubscription> {
    const key = `${runId}:${name}`;
    const subscription = new SignalSubscription(() => {
      const set = this.#subscriptions.get(key);
      set?.delete(subscription);
      if (set?.size === 0) this.#subscriptions.delete(key);
    });
    let set = this.#subscriptions.get(key);
    if (!set) this.#subscriptions.set(key, (set = new Set()));
    set.add(subscription);
    await this.#start();
    return subscription;
  }

  async #start(): Promise<void> {
    if (this.#closed) return;
    this.#starting ??= this.#store
      .onSignal(
        (runId, name) => {
          for (const s of this.#subscriptions.get(`${runId}:${name}`) ?? []) s.notify();
        },
        () => {
          for (const set of this.#subscriptions.values()) for (const s of set) s.notify();
        },
      )
      .then(
        async (stop) => {
          if (this.#closed) await stop();
          else this.#stop = stop;
        },
        (err: unknown) => {
          // Try again at the next subscription; this wait relies on its deadline.
          this.#starting = undefined;
          this.#logger?.warn({ err }, 'could not listen for signals in the payload store; signal waits fall back to their deadlines');
        },
      );
    await this.#starting;
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#starting;
    await this.#stop?.();
    this.#stop = undefined;
  }
}
