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
 *
 * Hashes are computed with @cairn/common's `auditEntryHash` (the format in docs/audit.md, which the
 * CLI recomputes) and written through `cairn_audit_seal` (migration 14): the service role the
 * control plane runs as has no UPDATE on the audit tables. Signed checkpoints of each chain's head
 * are in audit-checkpoint.service.ts.
 */
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import {
  AUDIT_GENESIS_HASH,
  AuditChainVerifier,
  auditEntryHash,
  type AuditAnchor,
  type AuditChainEntry,
  type AuditChainVerification,
  type Logger,
} from '@cairn/common';
import {
  AuditRepository,
  type AuditActor,
  type AuditEntry,
  type AuditValue,
  type PruneAnchor,
  type StoredCheckpoint,
} from './audit.repository.js';
import { Database, errorSummary, type Queryable } from '../db/database.js';
import { LOGGER } from '../tokens.js';
import type { Principal } from '../auth/principal.js';

export type { AuditActor, AuditEntry, AuditValue } from './audit.repository.js';

/** One administrative action to record. */
export interface AuditRecord {
  readonly projectId: string;
  readonly actor: AuditActor;
  readonly action: string;
  readonly target: { readonly type: string; readonly id: string };
  readonly metadata?: Readonly<Record<string, AuditValue | undefined>>;
}

/** The outcome of walking a project's chain (`checkpoint`: the signed head it was checked against). */
export type VerifyResult = AuditChainVerification & { readonly checkpoint: CheckpointRef | null };

/** Which signed checkpoint a verification checked the chain against. */
export interface CheckpointRef {
  readonly position: number;
  readonly hash: string;
  readonly signedAt: string;
  readonly keyId: string;
}

/** Checks a stored checkpoint's signature; undefined when the control plane has no key for it. */
export type CheckpointCheck = (checkpoint: StoredCheckpoint) => { ok: boolean; detail: string } | undefined;

const SEAL_BATCH = 2_000;
const VERIFY_PAGE = 5_000;
const ACTION = /^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/;
const KEY = /^[A-Za-z][A-Za-z0-9_]{0,63}$/;
const TEXT = /^[\x20-\x7e]{0,200}$/;
const MAX_KEYS = 24;

/** An entry as the chain covers it (the hash input is defined in @cairn/common, docs/audit.md). */
export function chainEntry(entry: AuditEntry): AuditChainEntry {
  return {
    id: entry.id,
    position: entry.position ?? 0,
    occurredAt: entry.occurredAt,
    organizationId: entry.organizationId,
    projectId: entry.projectId,
    actorType: entry.actorType,
    actorId: entry.actorId,
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    metadata: entry.metadata,
    hash: entry.hash,
  };
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

  /**
   * Logs a warning when the role the control plane runs with could change or remove audit entries
   * (a superuser, the owner, or one granted UPDATE, DELETE or TRUNCATE): the chain still shows
   * such changes, but only the service-role setup refuses them (docs/audit.md).
   */
  async warnIfRoleCanRewrite(): Promise<void> {
    const powers = await this.entries.rolePowers();
    const can = (['superuser', 'owner', 'update', 'delete', 'truncate'] as const).filter((p) => powers[p]);
    if (can.length > 0) {
      this.logger.warn(
        { role: powers.role, can },
        'the control plane runs with a database role that can change or remove audit entries; run it with a service role (CAIRN_CP_SERVICE_ROLE, docs/audit.md)',
      );
    }
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
            let head = (await this.entries.head(project, tx)) ?? { position: 0, hash: AUDIT_GENESIS_HASH };
            const chained = rows.map((row) => {
              const position = head.position + 1;
              head = { position, hash: auditEntryHash(head.hash, chainEntry(row), position) };
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
   * present, each stored hash must equal the recomputed one, the chain must reach the recorded
   * head, and it must still contain the head of the project's newest signed checkpoint (`check`
   * verifies that checkpoint's signature; without a key for it, no checkpoint is used). Reports
   * the first break.
   */
  async verify(projectId: string, check?: CheckpointCheck, keyIds: readonly string[] = []): Promise<VerifyResult> {
    await this.sealPending(true, projectId);
    // One snapshot: a sealing round committing meanwhile cannot make the head and the rows disagree.
    return this.db.transaction(async (tx) => {
      await this.entries.snapshot(tx);
      const stored = check && keyIds.length > 0 ? await this.entries.latestCheckpoint(projectId, keyIds, tx) : null;
      const checked = stored && check ? check(stored) : undefined;
      const checkpoint =
        stored && checked ? { position: stored.position, hash: stored.hash, signedAt: stored.signedAt, keyId: stored.keyId } : null;
      if (stored && checked && !checked.ok) {
        const verification = await this.walk(tx, projectId, []);
        return {
          ok: false,
          entries: verification.entries,
          head: verification.head,
          checkpoint,
          broken: {
            position: stored.position,
            entryId: null,
            reason: 'checkpoint_rejected',
            detail: `the newest stored checkpoint (signed at ${stored.signedAt}) does not verify: ${checked.detail}`,
          },
        };
      }
      const anchors: AuditAnchor[] = checkpoint
        ? [{ position: checkpoint.position, hash: checkpoint.hash, label: `the checkpoint signed at ${checkpoint.signedAt}` }]
        : [];
      return { ...(await this.walk(tx, projectId, anchors)), checkpoint };
    });
  }

  /**
   * Walks the chain from `from` (a verified point: position and hash; default the genesis, or the
   * prune anchor when the chain was pruned past `from`) to the recorded head, recomputing every hash.
   */
  async walk(
    tx: Queryable,
    projectId: string,
    anchors: readonly AuditAnchor[],
    from?: { position: number; hash: string },
  ): Promise<AuditChainVerification> {
    const head = await this.entries.head(projectId, tx);
    // A pruned chain starts at its anchor, the signed checkpoint at the cut (migration 19).
    const pruned = await this.entries.anchor(projectId, tx);
    if (pruned && (from === undefined || from.position < pruned.position)) from = { position: pruned.position, hash: pruned.hash };
    const verifier = new AuditChainVerifier(anchors, from);
    let after = from?.position ?? 0;
    for (;;) {
      const page = await this.entries.chainPage(projectId, after, VERIFY_PAGE, tx);
      for (const entry of page) if (verifier.add(chainEntry(entry))) return verifier.finish(head);
      if (page.length < VERIFY_PAGE) break;
      after = page[page.length - 1]!.position!;
    }
    return verifier.finish(head);
  }

  /** The head, the prune anchor and one page of the sealed chain after `afterPosition`, from one snapshot. */
  async chain(
    projectId: string,
    afterPosition: number,
    limit: number,
  ): Promise<{ entries: AuditEntry[]; head: { position: number; hash: string } | null; anchor: PruneAnchor | null }> {
    return this.db.transaction(async (tx) => {
      await this.entries.snapshot(tx);
      const head = await this.entries.head(projectId, tx);
      const anchor = await this.entries.anchor(projectId, tx);
      return { head, anchor, entries: await this.entries.chainPage(projectId, afterPosition, limit, tx) };
    });
  }

  async list(...args: Parameters<AuditRepository['list']>): ReturnType<AuditRepository['list']> {
    return this.entries.list(...args);
  }
}
