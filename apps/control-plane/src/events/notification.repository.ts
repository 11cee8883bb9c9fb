import { Inject, Injectable } from '@nestjs/common';
import pg from 'pg';
import type { Logger } from '@cairn/common';
import { LOGGER } from '../tokens.js';
import { Database, errorSummary } from '../db/database.js';

/** The Postgres channels the control-plane replicas talk over. Payloads are IDs only. */
export const Channels = {
  /** A run of a data plane was queued: payload is `<data plane id> <sending replica id>`. */
  dispatch: 'cairn_dispatch',
  /** A run reached a final state: payload is the run ID. */
  runEnded: 'cairn_run_ended',
  /** A running run should be cancelled: payload is `<run id> <epoch> <sending replica id>`. */
  cancel: 'cairn_cancel',
  /** A running run was terminated; its holder must stop: payload is `<run id> <epoch> <sending replica id>`. */
  leaseRevoked: 'cairn_lease_revoked',
  /**
   * A data plane's credential was rotated or revoked: payload is the data plane ID. Sent by a
   * trigger on `data_planes` at commit (migration 13), whoever made the change. (The channel keeps
   * its first name, from when it carried revocations only.)
   */
  credentialChanged: 'cairn_data_plane_revoked',
} as const;
export type Channel = (typeof Channels)[keyof typeof Channels];

export interface NotificationHandlers {
  onNotification(channel: Channel, payload: string): void;
  /** The listening connection was (re)established: notifications may have been missed before. */
  onListening(): void;
}

const CHANNELS: readonly Channel[] = Object.values(Channels);

/**
 * LISTEN/NOTIFY. Sending goes through the pool; listening holds one dedicated connection that is
 * re-established with backoff if it drops.
 */
@Injectable()
export class NotificationRepository {
  private client: pg.Client | null = null;
  private handlers: NotificationHandlers | null = null;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | null = null;
  private backoffMs = 100;

  constructor(
    @Inject(Database) private readonly db: Database,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** Sends notifications in one statement (they are delivered at its commit, in order). */
  async notifyMany(notifications: ReadonlyArray<{ channel: Channel; payload: string }>): Promise<void> {
    if (notifications.length === 0) return;
    await this.db.prepared('cp_notify_many', 'SELECT pg_notify(c, p) FROM unnest($1::text[], $2::text[]) AS t(c, p)', [
      notifications.map((n) => n.channel),
      notifications.map((n) => n.payload),
    ]);
  }

  /** Starts listening; resolves once the first LISTEN is in place. */
  async listen(handlers: NotificationHandlers): Promise<void> {
    this.handlers = handlers;
    this.stopped = false;
    await this.connect();
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.db.url, application_name: 'cairn-control-plane-listener' });
    client.on('notification', (message) => {
      if (CHANNELS.includes(message.channel as Channel)) this.handlers?.onNotification(message.channel as Channel, message.payload ?? '');
    });
    const lost = (error?: Error): void => {
      if (this.client !== client) return;
      this.client = null;
      client.removeAllListeners('notification');
      void client.end().catch(() => undefined);
      if (this.stopped) return;
      this.logger.warn({ err: error ? errorSummary(error) : undefined }, 'notification listener lost its connection; reconnecting');
      this.scheduleReconnect();
    };
    client.on('error', (error) => lost(error));
    client.on('end', () => lost());
    try {
      await client.connect();
      for (const channel of CHANNELS) await client.query(`LISTEN ${channel}`);
    } catch (error) {
      client.removeAllListeners();
      client.on('error', () => undefined);
      await client.end().catch(() => undefined);
      throw error;
    }
    if (this.stopped) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    this.backoffMs = 100;
    this.handlers?.onListening();
  }

  private scheduleReconnect(): void {
    if (this.stopped || this.retryTimer) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, 5_000);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      this.connect().catch((error: unknown) => {
        this.logger.warn({ err: errorSummary(error), retryInMs: this.backoffMs }, 'notification listener could not reconnect');
        this.scheduleReconnect();
      });
    }, delay);
    this.retryTimer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    const client = this.client;
    this.client = null;
    if (client) {
      client.removeAllListeners('notification');
      await client.end().catch(() => undefined);
    }
  }
}
