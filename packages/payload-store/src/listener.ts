import type { Logger } from '@cairn/common';
import pg from 'pg';

/** What a subscriber of a channel hears. */
export interface ChannelHandlers {
  /** A notification on the channel, with its payload. */
  readonly notification: (payload: string) => void;
  /**
   * The connection was lost and is back, LISTENing again: notifications sent meanwhile were not
   * heard. Re-read what matters from the store.
   */
  readonly gap?: (() => void) | undefined;
}

/** The listener's state, for metrics and readiness. */
export interface ListenerState {
  /** Whether the LISTEN connection is open. */
  readonly connected: boolean;
  /** How many times the connection came back after a loss, since start. */
  readonly reconnects: number;
  /** How many attempts to re-open it failed, since start. */
  readonly failedAttempts: number;
}

export interface PgListenerOptions {
  readonly connectionString: string;
  /** Shown in pg_stat_activity. */
  readonly applicationName: string;
  readonly logger?: Logger | undefined;
  /** First delay before a reconnect attempt (default 100 ms); doubles with each failed attempt. */
  readonly initialDelayMs?: number;
  /** Cap on the delay between attempts (default 5 s). */
  readonly maxDelayMs?: number;
}

/** Channel names are written into LISTEN statements: only plain identifiers. */
const CHANNEL = /^[a-z_][a-z0-9_]{0,62}$/;

/**
 * One Postgres LISTEN connection of a process, shared by every channel it listens on (signals,
 * streamed output, schema changes, replay checks). When the connection is lost it is re-opened
 * for as long as anyone listens, with exponential backoff and jitter up to a cap; once back, it
 * LISTENs on every channel again and tells every subscriber there was a gap, so each re-reads the
 * store instead of waiting for a notification that was sent while nobody heard it. The loss is
 * logged (warn, with the error) and so is the recovery (info, with the downtime).
 */
export class PgListener {
  readonly #options: PgListenerOptions;
  readonly #channels = new Map<string, Set<ChannelHandlers>>();
  #client: pg.Client | undefined;
  /** The connection being opened (first connect or reconnect loop). */
  #connecting: Promise<void> | undefined;
  /** The reconnect loop is running (the connection was lost). */
  #recovering = false;
  #reconnects = 0;
  #failedAttempts = 0;
  #closed = false;
  /** Serializes LISTEN/UNLISTEN with (re)connection. */
  #queue: Promise<unknown> = Promise.resolve();
  #wakeRetry: (() => void) | undefined;

  constructor(options: PgListenerOptions) {
    this.#options = options;
  }

  get state(): ListenerState {
    return { connected: this.#client !== undefined, reconnects: this.#reconnects, failedAttempts: this.#failedAttempts };
  }

  /**
   * Calls `handlers.notification` for each notification on `channel`. Resolves once the channel
   * is LISTENed on, so nothing sent after it resolves is missed, or, while the connection is being
   * recovered, at once: `handlers.gap` is then called when it is back. Rejects when there is no
   * connection and the first attempt to open one fails. Returns the unsubscribe.
   */
  async subscribe(channel: string, handlers: ChannelHandlers): Promise<() => Promise<void>> {
    if (!CHANNEL.test(channel)) throw new Error(`not a channel name: ${channel}`);
    if (this.#closed) throw new Error('the listener is closed');
    let set = this.#channels.get(channel);
    const fresh = !set;
    if (!set) this.#channels.set(channel, (set = new Set()));
    set.add(handlers);
    const unsubscribe = async (): Promise<void> => {
      const current = this.#channels.get(channel);
      if (!current?.delete(handlers) || current.size > 0) return;
      this.#channels.delete(channel);
      await this.#serial(async () => {
        if (this.#channels.has(channel)) return;
        if (this.#channels.size === 0) await this.#disconnect();
        else await this.#client?.query(`UNLISTEN ${channel}`).catch(() => undefined);
      });
    };
    try {
      await this.#serial(async () => {
        if (this.#client) {
          if (fresh) await this.#client.query(`LISTEN ${channel}`);
        } else if (!this.#recovering) {
          await this.#open();
        }
      });
    } catch (err) {
      set.delete(handlers);
      if (set.size === 0 && this.#channels.get(channel) === set) this.#channels.delete(channel);
      throw err;
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#channels.clear();
    this.#wakeRetry?.();
    await this.#serial(() => this.#disconnect());
    await this.#connecting?.catch(() => undefined);
  }

  #serial<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#queue.then(task, task);
    this.#queue = next.catch(() => undefined);
    return next;
  }

  /** Opens a connection and LISTENs on every channel subscribed to. */
  async #open(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#options.connectionString, application_name: this.#options.applicationName });
    let lost = false;
    const onLost = (err: unknown): void => {
      if (lost) return;
      lost = true;
      client.end().catch(() => undefined);
      if (this.#client === client) this.#lost(err);
    };
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('the connection ended')));
    client.on('notification', (n) => {
      if (n.payload === undefined) return;
      for (const handlers of [...(this.#channels.get(n.channel) ?? [])]) handlers.notification(n.payload);
    });
    try {
      await client.connect();
      const channels = [...this.#channels.keys()];
      if (channels.length > 0) await client.query(channels.map((c) => `LISTEN ${c}`).join('; '));
    } catch (err) {
      lost = true;
      await client.end().catch(() => undefined);
      throw err;
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- set by the connection's error handler while connecting
    if (lost) throw new Error('the connection was lost while LISTENing');
    this.#client = client;
  }

  async #disconnect(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    await client?.end().catch(() => undefined);
  }

  #lost(err: unknown): void {
    this.#client = undefined;
    if (this.#closed || this.#channels.size === 0) return;
    const since = Date.now();
    this.#options.logger?.warn(
      { err, channels: [...this.#channels.keys()] },
      'payload store LISTEN connection lost; reconnecting (notifications meanwhile are re-read from the store)',
    );
    this.#recovering = true;
    const recovery: Promise<void> = this.#recover(since).finally(() => {
      // A loss right after a recovery starts another one: only the latest resets the state.
      if (this.#connecting !== recovery) return;
      this.#recovering = false;
      this.#connecting = undefined;
    });
    this.#connecting = recovery;
  }

  async #recover(since: number): Promise<void> {
    const initial = this.#options.initialDelayMs ?? 100;
    const max = this.#options.maxDelayMs ?? 5_000;
    for (let attempt = 1; ; attempt++) {
      // Full backoff doubles per attempt up to the cap; jitter spreads replicas that lost the
      // database at the same moment over the second half of the delay.
      const ceiling = Math.min(max, initial * 2 ** Math.min(attempt - 1, 30));
      await this.#sleep(ceiling / 2 + Math.random() * (ceiling / 2));
      if (this.#closed || this.#channels.size === 0) return;
      try {
        await this.#serial(async () => {
          if (this.#closed || this.#channels.size === 0 || this.#client) return;
          await this.#open();
        });
      } catch (err) {
        this.#failedAttempts++;
        this.#options.logger?.debug({ err, attempt }, 'payload store LISTEN reconnect failed; trying again');
        continue;
      }
      if (!this.#client) return;
      this.#reconnects++;
      this.#options.logger?.info(
        { downtimeMs: Date.now() - since, attempts: attempt, channels: [...this.#channels.keys()] },
        'payload store LISTEN connection is back',
      );
      for (const set of [...this.#channels.values()]) for (const handlers of [...set]) handlers.gap?.();
      return;
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      timer.unref();
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wakeRetry = done;
    });
  }
}

/**
 * The listener's state in the Prometheus text format: `cairn_dp_listener_connected` (gauge, 1 while
 * the LISTEN connection is open; 0 before anything listens and while it is being re-opened),
 * `cairn_dp_listener_reconnects_total` and `cairn_dp_listener_reconnect_failures_total`.
 */
export function listenerMetrics(state: ListenerState): string {
  return [
    '# HELP cairn_dp_listener_connected Whether the payload store LISTEN connection is open (0 before anything listens and while it is re-opened).',
    '# TYPE cairn_dp_listener_connected gauge',
    `cairn_dp_listener_connected ${state.connected ? 1 : 0}`,
    '# HELP cairn_dp_listener_reconnects_total Times the payload store LISTEN connection came back after a loss.',
    '# TYPE cairn_dp_listener_reconnects_total counter',
    `cairn_dp_listener_reconnects_total ${state.reconnects}`,
    '# HELP cairn_dp_listener_reconnect_failures_total Attempts to re-open the payload store LISTEN connection that failed.',
    '# TYPE cairn_dp_listener_reconnect_failures_total counter',
    `cairn_dp_listener_reconnect_failures_total ${state.failedAttempts}`,
    '',
  ].join('\n');
}
