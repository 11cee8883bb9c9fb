/**
 * The audit log: administrative actions and run lifecycle transitions, chained by hash per project.
 *
 * For services that perform an administrative action:
 *
 *   await audit.record(tx, {
 *     projectId,                                  // the project the action happened in
 *     actor: AuditService.actorOf(principal),     // the acting API key (or { type: 'system' }, { type: 'data_plane', id })
 *     action: 'schedule.created',                 // '<target type>.<past-tense verb>'
 *     target: { type: 'schedule', id: schedule.id },
 *     metadata: { name: schedule.name, workflow: 'greet' },  // IDs, names, statuses, counts, times only
 *   });
 *
 * `record(tx: Queryable | null | undefined, entry: AuditRecord): Promise<void>`: pass the transaction
 * that makes the change so the entry commits (or rolls back) with it; null/undefined writes it on
 * its own at once (call it after the change succeeded). Metadata is checked: keys are identifiers,
 * values are scalars, strings at most 200 printable ASCII characters — never payloads or messages.
 *
 * Run lifecycle transitions are recorded by a trigger on `runs` (migration 10) from every code path.
 * A transaction that changes runs on someone's behalf names them first with `setActor(tx, actor)`
 * (e.g. a REST cancel by an API key, a schedule firing by the system).
 */
import { createHash } from 'node:crypto';
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import type { Logger } from '@cairn/common';
import { AuditRepository, type AuditActor, type AuditEntry, type AuditValue } from '../db/audit.repository.js';
import { Database, errorSummary, type Queryable } from '../db/database.js';
import { LOGGER } from '../tokens.js';
import type { Principal } from './access.service.js';

export type { AuditActor, AuditEntry, AuditValue } from '../db/audit.repository.js';

/** One administrative action to record. */
export interface AuditRecord {
  readonly projectId: string;
  readonly actor: AuditActor;
  readonly action: string;
  readonly target: { readonly type: string; readonly id: string };
  readonly metadata?: Readonly<Record<string, AuditValue | undefined>>;
}

/** The outcome of walking a project's chain. */
export type VerifyResult =
  | { readonly ok: true; readonly entries: number; readonly head: { position: number; hash: string } | null }
  | {
      readonly ok: false;
      readonly entries: number;
      readonly head: { position: number; hash: string } | null;
      readonly broken: {
        readonly position: number;
        readonly entryId: string | null;
        readonly reason: 'hash_mismatch' | 'missing_entry' | 'head_mismatch';
        readonly detail: string;
        readonly expectedHash?: string;
        readonly storedHash?: string | null;
      };
    };

export const GENESIS_HASH = '0'.repeat(64);
const SEAL_BATCH = 2_000;
const VERIFY_PAGE = 5_000;
const ACTION = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const KEY = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const TEXT = /^[\x20-\x7e]{0,200}$/;
const MAX_KEYS = 24;

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.entries(value as Record<string, unknown>)
    .filter(([, v]) => v !== undefined)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
}

/** The text an entry's hash covers: every stored field, its chain position included. */
export function canonicalEntry(entry: AuditEntry, position: number): string {
  return canonicalJson({
    position,
    id: entry.id,
    organizationId: entry.organizationId,
    projectId: entry.projectId,
    occurredAt: entry.occurredAt,
    actorType: entry.actorType,
    actorId: entry.actorId,
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    metadata: entry.metadata,
  });
}

/** hash = sha256(previous hash || canonical entry), hex. */
export function chainHash(previous: string, entry: AuditEntry, position: number): string {
  return createHash('sha256').update(previous).update(canonicalEntry(entry, position)).digest('hex');
}

/** Records, seals, lists and verifies the audit log. */
@Injectable()
export class AuditService implements OnModuleDestroy {
  private timer: NodeJS.Timeout | null = null;
  private sealing: Promise<number> | null = null;

  constructor(
    @Inject(AuditRepository) private readonly entries: AuditRepository,
    @Inject(Database) private readonly db: Database,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {}

  /** The actor for a REST caller: the API key it authenticated with. */
  static actorOf(principal: Principal): AuditActor {
    return { type: 'api_key', id: principal.keyId };
  }

  /** Appends an administrative action; see the top of this file. */
  async record(tx: Queryable | null | undefined, entry: AuditRecord): Promise<void> {
    if (!ACTION.test(entry.action) || entry.action.length > 100)
      throw new Error(`audit action ${entry.action} is not a dotted lowercase name`);
    if (!KEY.test(entry.target.type)) throw new Error(`audit target type ${entry.target.type} is not an identifier`);
    if (!TEXT.test(entry.target.id) || entry.target.id === '') throw new Error('audit target ID must be 1 to 200 printable characters');
    const metadata: Record<string, AuditValue> = {};
    for (const [key, value] of Object.entries(entry.metadata ?? {})) {
      if (value === undefined) continue;
      if (!KEY.test(key)) throw new Error(`audit metadata key ${key} is not an identifier`);
      if (typeof value === 'string' && !TEXT.test(value)) throw new Error(`audit metadata ${key} is not a short printable value`);
      if (typeof value === 'number' && !Number.isFinite(value)) throw new Error(`audit metadata ${key} is not a finite number`);
      metadata[key] = value;
    }
    if (Object.keys(metadata).length > MAX_KEYS) throw new Error(`audit metadata has more than ${MAX_KEYS} fields`);
    await this.entries.insert(
      {
        projectId: entry.projectId,
        actor: entry.actor,
        action: entry.action,
        targetType: entry.target.type,
        targetId: entry.target.id,
        metadata,
      },
      tx ?? undefined,
    );
  }

  /** Names the actor of the run transitions made by the rest of this transaction. */
  async setActor(tx: Queryable, actor: AuditActor): Promise<void> {
    await this.entries.setActor(tx, actor);
  }

  /** Starts sealing every `intervalMs` (one replica at a time seals; the others skip the round). */
  start(intervalMs = 1_000): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.sealing) return;
      void this.sealPending(false).catch((error: unknown) => this.logger.warn({ err: errorSummary(error) }, 'audit sealing failed'));
    }, intervalMs);
    this.timer.unref();
  }

  /** Stops sealing and waits for a round in progress (call before the pool closes). */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sealing?.catch(() => undefined);
  }

  async onModuleDestroy(): Promise<void> {
    await this.stop();
  }

  /**
   * Seals pending entries (of one project, or all): each project's committed unsealed entries get
   * the next positions in (time, ID) order and their chained hashes. `wait` waits for another
   * replica's sealer to finish instead of skipping. Returns how many entries were sealed.
   */
  async sealPending(wait: boolean, projectId?: string): Promise<number> {
    const run = async (): Promise<number> => {
      let total = 0;
      // Rounds go on while a project had a full batch; entries committed during the last round wait
      // for the next one, so a stream of new entries cannot keep a caller here forever.
      for (let more = true; more;) {
        const round = await this.db.transaction(async (tx) => {
          if (!(await this.entries.lockSealer(tx, wait))) return { count: 0, full: false };
          let count = 0;
          let full = false;
          for (const project of await this.entries.projectsWithUnsealed(tx, projectId)) {
            const rows = await this.entries.unsealed(tx, project, SEAL_BATCH);
            let head = (await this.entries.head(project, tx)) ?? { position: 0, hash: GENESIS_HASH };
            const chained = rows.map((row) => {
              const position = head.position + 1;
              head = { position, hash: chainHash(head.hash, row, position) };
              return { id: row.id, position, hash: head.hash };
            });
            await this.entries.seal(tx, project, chained);
            count += chained.length;
            full ||= rows.length === SEAL_BATCH;
          }
          return { count, full };
        });
        total += round.count;
        more = round.full;
      }
      return total;
    };
    // A caller that waits must not ride on a background round that may have skipped.
    if (!wait && this.sealing) return this.sealing;
    const sealing = run();
    if (!wait) this.sealing = sealing;
    try {
      return await sealing;
    } finally {
      if (this.sealing === sealing) this.sealing = null;
    }
  }

  /**
   * Seals what is pending, then walks the project's chain from position 1: each position must be
   * present, each stored hash must equal sha256(previous || canonical entry), and the chain must
   * reach the recorded head. Reports the first break.
   */
  async verify(projectId: string): Promise<VerifyResult> {
    await this.sealPending(true, projectId);
    // One snapshot: a sealing round committing meanwhile cannot make the head and the rows disagree.
    return this.db.transaction(async (tx) => {
      await this.entries.snapshot(tx);
      return this.walk(tx, projectId);
    });
  }

  private async walk(tx: Queryable, projectId: string): Promise<VerifyResult> {
    const head = await this.entries.head(projectId, tx);
    let previous = GENESIS_HASH;
    let expected = 1;
    for (;;) {
      const page = await this.entries.chainPage(projectId, expected - 1, VERIFY_PAGE, tx);
      for (const entry of page) {
        if (entry.position !== expected) {
          return {
            ok: false,
            entries: expected - 1,
            head,
            broken: {
              position: expected,
              entryId: entry.id,
              reason: 'missing_entry',
              detail: `no entry at position ${expected}: the chain jumps to position ${entry.position} (entry ${entry.id}); entries were deleted`,
            },
          };
        }
        const hash = chainHash(previous, entry, expected);
        if (hash !== entry.hash) {
          return {
            ok: false,
            entries: expected - 1,
            head,
            broken: {
              position: expected,
              entryId: entry.id,
              reason: 'hash_mismatch',
              detail: `entry ${entry.id} at position ${expected} does not match its hash: the entry (or the one before it) was changed after it was sealed`,
              expectedHash: hash,
              storedHash: entry.hash,
            },
          };
        }
        previous = hash;
        expected += 1;
      }
      if (page.length < VERIFY_PAGE) break;
    }
    const last = expected - 1;
    if (head === null && last > 0) {
      return {
        ok: false,
        entries: last,
        head,
        broken: {
          position: last,
          entryId: null,
          reason: 'head_mismatch',
          detail: `the chain has ${last} sealed entries but no recorded head: the head record was deleted`,
          storedHash: previous,
        },
      };
    }
    if (head !== null && (head.position !== last || head.hash !== previous)) {
      return {
        ok: false,
        entries: last,
        head,
        broken: {
          position: last + 1,
          entryId: null,
          reason: head.position > last ? 'missing_entry' : 'head_mismatch',
          detail:
            head.position > last
              ? `the chain ends at position ${last} but was sealed up to position ${head.position}: the newest entries were deleted`
              : `the chain's last hash does not match the recorded head at position ${head.position}`,
          expectedHash: head.hash,
          storedHash: previous,
        },
      };
    }
    return { ok: true, entries: last, head };
  }

  async list(...args: Parameters<AuditRepository['list']>): ReturnType<AuditRepository['list']> {
    return this.entries.list(...args);
  }
}
