import { Inject, Injectable } from '@nestjs/common';
import { Database, type Queryable } from '../db/database.js';

/** Who did something: an API key, a data plane (its gateway or workers), or the control plane itself. */
export type AuditActor =
  { readonly type: 'api_key'; readonly id: string } | { readonly type: 'data_plane'; readonly id: string } | { readonly type: 'system' };

/** Metadata values an entry may carry: IDs, names, statuses, counts, times. Never payloads or messages. */
export type AuditValue = string | number | boolean | null;

export interface NewAuditEntry {
  readonly projectId: string;
  readonly actor: AuditActor;
  readonly action: string;
  readonly targetType: string;
  readonly targetId: string;
  readonly metadata: Readonly<Record<string, AuditValue>>;
}

/** One stored entry; `position` and `hash` are null until the sealer chained it. */
export interface AuditEntry {
  readonly id: string;
  readonly organizationId: string;
  readonly projectId: string;
  /** ISO 8601 with microseconds, as stored (the hash covers this exact text). */
  readonly occurredAt: string;
  readonly actorType: AuditActor['type'];
  readonly actorId: string | null;
  readonly action: string;
  readonly targetType: string;
  readonly targetId: string;
  readonly metadata: Record<string, unknown>;
  readonly position: number | null;
  readonly hash: string | null;
}

export interface AuditListQuery {
  readonly projectId: string;
  readonly from?: Date;
  readonly to?: Date;
  /** An exact action, or a prefix when it ends with `*` (`run.*`). */
  readonly action?: string;
  readonly targetType?: string;
  readonly targetId?: string;
  readonly limit: number;
  /** Keyset position: entries strictly older than (occurredAt, id). */
  readonly after?: { readonly occurredAt: string; readonly id: string };
}

export interface ChainHead {
  readonly position: number;
  readonly hash: string;
}

/** A stored signed checkpoint (the fields of `AuditCheckpoint` in @cairn/common, and its row ID). */
export interface StoredCheckpoint {
  readonly id: string;
  readonly organizationId: string;
  readonly projectId: string;
  readonly position: number;
  readonly hash: string;
  readonly entries: number;
  /** ISO 8601 UTC with milliseconds, as signed. */
  readonly signedAt: string;
  readonly keyId: string;
  readonly signature: string;
}

/** What the role the control plane runs with may do to the audit tables beyond reading and appending. */
export interface AuditRolePowers {
  readonly role: string;
  readonly superuser: boolean;
  /** It owns audit_log (or is a member of its owner): it may disable the triggers. */
  readonly owner: boolean;
  readonly update: boolean;
  readonly delete: boolean;
  readonly truncate: boolean;
}

/** Where a pruned chain now starts: the signed checkpoint at the cut, and what the prune removed. */
export interface PruneAnchor {
  readonly position: number;
  readonly hash: string;
  readonly entries: number;
  /** How many entries that prune deleted. */
  readonly pruned: number;
  /** The cut-off the prune was given: every deleted entry occurred before it. ISO 8601 UTC. */
  readonly prunedBefore: string;
  readonly prunedAt: string;
  readonly checkpoint: StoredCheckpoint;
}

interface CheckpointRow {
  id: string;
  organization_id: string;
  project_id: string;
  position: string;
  hash: string;
  entries: string;
  signed_at: string;
  key_id: string;
  signature: string;
}

const CHECKPOINT_COLUMNS_OF = (
  t: string,
): string => `${t}.id, ${t}.organization_id, ${t}.project_id, ${t}.position, ${t}.hash, ${t}.entries,
  to_char(${t}.signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS signed_at, ${t}.key_id, ${t}.signature`;

const CHECKPOINT_COLUMNS = `id, organization_id, project_id, position, hash, entries,
  to_char(signed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS signed_at, key_id, signature`;

const toCheckpoint = (r: CheckpointRow): StoredCheckpoint => ({
  id: r.id,
  organizationId: r.organization_id,
  projectId: r.project_id,
  position: Number(r.position),
  hash: r.hash,
  entries: Number(r.entries),
  signedAt: r.signed_at,
  keyId: r.key_id,
  signature: r.signature,
});

interface EntryRow {
  id: string;
  organization_id: string;
  project_id: string;
  occurred_at: string;
  actor_type: AuditActor['type'];
  actor_id: string | null;
  action: string;
  target_type: string;
  target_id: string;
  metadata: Record<string, unknown>;
  position: string | null;
  hash: string | null;
}

const COLUMNS = `id, organization_id, project_id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_at,
  actor_type, actor_id, action, target_type, target_id, metadata, position, hash`;

const toEntry = (r: EntryRow): AuditEntry => ({
  id: r.id,
  organizationId: r.organization_id,
  projectId: r.project_id,
  occurredAt: r.occurred_at,
  actorType: r.actor_type,
  actorId: r.actor_id,
  action: r.action,
  targetType: r.target_type,
  targetId: r.target_id,
  metadata: r.metadata,
  position: r.position === null ? null : Number(r.position),
  hash: r.hash,
});

// Advisory lock keys (two-int form, a space apart from the migrations' one-bigint lock).
const LOCK_SPACE = 0x63617564; // 'caud'
const SEALER_LOCK = 1;
const CHECKPOINTER_LOCK = 2;
const PRUNER_LOCK = 3;

/** All SQL about the audit log and its hash chain. */
@Injectable()
export class AuditRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /** Appends an unsealed entry, in `q`'s transaction when given. */
  async insert(entry: NewAuditEntry, q: Queryable = this.db): Promise<void> {
    await q.query(
      `INSERT INTO audit_log (organization_id, project_id, actor_type, actor_id, action, target_type, target_id, metadata)
       SELECT p.organization_id, p.id, $2, $3, $4, $5, $6, $7 FROM projects p WHERE p.id = $1`,
      [
        entry.projectId,
        entry.actor.type,
        entry.actor.type === 'system' ? null : entry.actor.id,
        entry.action,
        entry.targetType,
        entry.targetId,
        JSON.stringify(entry.metadata),
      ],
    );
  }

  /** Names the actor of the run transitions the rest of this transaction makes (read by the runs trigger). */
  async setActor(tx: Queryable, actor: AuditActor): Promise<void> {
    await tx.query(`SELECT set_config('cairn.audit_actor', $1, true)`, [actor.type === 'system' ? 'system:' : `${actor.type}:${actor.id}`]);
  }

  /** Takes the sealer lock for this transaction: waits for it, or with `wait` false returns false when another holds it. */
  async lockSealer(tx: Queryable, wait: boolean): Promise<boolean> {
    if (wait) {
      await tx.query('SELECT pg_advisory_xact_lock($1, $2)', [LOCK_SPACE, SEALER_LOCK]);
      return true;
    }
    const result = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [LOCK_SPACE, SEALER_LOCK]);
    return result.rows[0]!.locked;
  }

  /** Projects with unsealed entries. */
  async projectsWithUnsealed(tx: Queryable, projectId?: string): Promise<string[]> {
    const result =
      projectId === undefined
        ? await tx.query<{ project_id: string }>('SELECT DISTINCT project_id FROM audit_log WHERE position IS NULL')
        : await tx.query<{ project_id: string }>('SELECT project_id FROM audit_log WHERE position IS NULL AND project_id = $1 LIMIT 1', [
            projectId,
          ]);
    return result.rows.map((r) => r.project_id);
  }

  /** The unsealed entries of a project in the sealing order (time, then ID), at most `limit`. */
  async unsealed(tx: Queryable, projectId: string, limit: number): Promise<AuditEntry[]> {
    const result = await tx.query<EntryRow>(
      `SELECT ${COLUMNS} FROM audit_log WHERE project_id = $1 AND position IS NULL ORDER BY occurred_at, id LIMIT $2`,
      [projectId, limit],
    );
    return result.rows.map(toEntry);
  }

  async head(projectId: string, q: Queryable = this.db): Promise<ChainHead | null> {
    const result = await q.query<{ position: string; hash: string }>('SELECT position, hash FROM audit_chain_heads WHERE project_id = $1', [
      projectId,
    ]);
    const row = result.rows[0];
    return row ? { position: Number(row.position), hash: row.hash } : null;
  }

  /**
   * Gives entries their chain positions and hashes and moves the project's head, through
   * `cairn_audit_seal` (migration 14), which checks that the positions continue the chain: the
   * control plane's service role has no UPDATE on the audit tables.
   */
  async seal(tx: Queryable, projectId: string, sealed: ReadonlyArray<{ id: string; position: number; hash: string }>): Promise<void> {
    if (sealed.length === 0) return;
    await tx.query('SELECT cairn_audit_seal($1::uuid, $2::bigint[], $3::bigint[], $4::text[])', [
      projectId,
      sealed.map((s) => s.id),
      sealed.map((s) => s.position),
      sealed.map((s) => s.hash),
    ]);
  }

  /**
   * Makes the rest of this transaction read one consistent snapshot (the head and the entries
   * agree); read-only unless it is to write a checkpoint.
   */
  async snapshot(tx: Queryable, readOnly = true): Promise<void> {
    await tx.query(
      readOnly ? 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY' : 'SET TRANSACTION ISOLATION LEVEL REPEATABLE READ',
    );
  }

  /** Sealed entries of a project by position, starting after `afterPosition`, at most `limit`. */
  async chainPage(projectId: string, afterPosition: number, limit: number, q: Queryable = this.db): Promise<AuditEntry[]> {
    const result = await q.query<EntryRow>(
      `SELECT ${COLUMNS} FROM audit_log WHERE project_id = $1 AND position > $2 ORDER BY position LIMIT $3`,
      [projectId, afterPosition, limit],
    );
    return result.rows.map(toEntry);
  }

  /** Entries newest first, filtered, with keyset pagination on (occurred_at, id). */
  async list(query: AuditListQuery): Promise<{ entries: AuditEntry[]; next: { occurredAt: string; id: string } | null }> {
    const where = ['project_id = $1'];
    const values: unknown[] = [query.projectId];
    const add = (clause: (n: number) => string, value: unknown): void => {
      values.push(value);
      where.push(clause(values.length));
    };
    if (query.from !== undefined) add((n) => `occurred_at >= $${n}`, query.from);
    if (query.to !== undefined) add((n) => `occurred_at < $${n}`, query.to);
    if (query.action !== undefined) {
      if (query.action.endsWith('*')) add((n) => `starts_with(action, $${n})`, query.action.slice(0, -1));
      else add((n) => `action = $${n}`, query.action);
    }
    if (query.targetType !== undefined) add((n) => `target_type = $${n}`, query.targetType);
    if (query.targetId !== undefined) add((n) => `target_id = $${n}`, query.targetId);
    if (query.after !== undefined) {
      values.push(query.after.occurredAt, query.after.id);
      where.push(`(occurred_at, id) < ($${values.length - 1}::timestamptz, $${values.length}::bigint)`);
    }
    values.push(query.limit + 1);
    const result = await this.db.query<EntryRow>(
      `SELECT ${COLUMNS} FROM audit_log WHERE ${where.join(' AND ')} ORDER BY occurred_at DESC, id DESC LIMIT $${values.length}`,
      values,
    );
    const rows = result.rows.slice(0, query.limit).map(toEntry);
    const last = rows[rows.length - 1];
    return { entries: rows, next: result.rows.length > query.limit && last ? { occurredAt: last.occurredAt, id: last.id } : null };
  }

  /** Takes the checkpointer lock for this transaction, or returns false when another replica holds it. */
  async tryLockCheckpointer(tx: Queryable): Promise<boolean> {
    const result = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [
      LOCK_SPACE,
      CHECKPOINTER_LOCK,
    ]);
    return result.rows[0]!.locked;
  }

  /** Stores a signed checkpoint and returns it with its row ID. */
  async insertCheckpoint(checkpoint: Omit<StoredCheckpoint, 'id'>, q: Queryable = this.db): Promise<StoredCheckpoint> {
    const result = await q.query<CheckpointRow>(
      `INSERT INTO audit_checkpoints (organization_id, project_id, position, hash, entries, signed_at, key_id, signature)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING ${CHECKPOINT_COLUMNS}`,
      [
        checkpoint.organizationId,
        checkpoint.projectId,
        checkpoint.position,
        checkpoint.hash,
        checkpoint.entries,
        checkpoint.signedAt,
        checkpoint.keyId,
        checkpoint.signature,
      ],
    );
    return toCheckpoint(result.rows[0]!);
  }

  /** The project's checkpoints, newest first, those older than row `beforeId` when given; at most `limit`. */
  async checkpoints(projectId: string, limit: number, beforeId?: string, q: Queryable = this.db): Promise<StoredCheckpoint[]> {
    const result = await q.query<CheckpointRow>(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints
        WHERE project_id = $1 AND ($2::bigint IS NULL OR id < $2::bigint)
        ORDER BY id DESC LIMIT $3`,
      [projectId, beforeId ?? null, limit],
    );
    return result.rows.map(toCheckpoint);
  }

  /** The project's newest checkpoint signed with one of `keyIds`. */
  async latestCheckpoint(projectId: string, keyIds: readonly string[], q: Queryable = this.db): Promise<StoredCheckpoint | null> {
    const result = await q.query<CheckpointRow>(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints WHERE project_id = $1 AND key_id = ANY($2::text[]) ORDER BY id DESC LIMIT 1`,
      [projectId, keyIds],
    );
    const row = result.rows[0];
    return row ? toCheckpoint(row) : null;
  }

  /**
   * Projects whose chain head has moved past their newest checkpoint signed with `keyId` (or that
   * have none), with their organisation: what a periodic round signs. At most `limit`.
   */
  async projectsToCheckpoint(tx: Queryable, keyId: string, limit: number): Promise<Array<{ projectId: string; organizationId: string }>> {
    const result = await tx.query<{ project_id: string; organization_id: string }>(
      `SELECT h.project_id, p.organization_id
         FROM audit_chain_heads h
         JOIN projects p ON p.id = h.project_id
         LEFT JOIN LATERAL (
           SELECT c.position FROM audit_checkpoints c WHERE c.project_id = h.project_id AND c.key_id = $1 ORDER BY c.id DESC LIMIT 1
         ) last ON true
        WHERE last.position IS NULL OR last.position < h.position
        ORDER BY h.project_id
        LIMIT $2`,
      [keyId, limit],
    );
    return result.rows.map((r) => ({ projectId: r.project_id, organizationId: r.organization_id }));
  }

  /** The project's newest prune anchor (where its chain now starts), or null when it was never pruned. */
  async anchor(projectId: string, q: Queryable = this.db): Promise<PruneAnchor | null> {
    const result = await q.query<
      CheckpointRow & {
        checkpoint_id: string;
        a_position: string;
        a_hash: string;
        a_entries: string;
        pruned: string;
        pruned_before: string;
        pruned_at: string;
      }
    >(
      `SELECT ${CHECKPOINT_COLUMNS_OF('a')}, a.checkpoint_id, a.position AS a_position, a.hash AS a_hash, a.entries AS a_entries, a.pruned,
              to_char(a.pruned_before AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS pruned_before,
              to_char(a.pruned_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS pruned_at
         FROM audit_prune_anchors a
        WHERE a.project_id = $1 ORDER BY a.position DESC LIMIT 1`,
      [projectId],
    );
    const row = result.rows[0];
    if (!row) return null;
    return {
      position: Number(row.a_position),
      hash: row.a_hash,
      entries: Number(row.a_entries),
      pruned: Number(row.pruned),
      prunedBefore: row.pruned_before,
      prunedAt: row.pruned_at,
      checkpoint: { ...toCheckpoint(row), id: row.checkpoint_id },
    };
  }

  /** Takes the pruner lock for this transaction, or returns false when another prune holds it. */
  async tryLockPruner(tx: Queryable): Promise<boolean> {
    const result = await tx.query<{ locked: boolean }>('SELECT pg_try_advisory_xact_lock($1, $2) AS locked', [LOCK_SPACE, PRUNER_LOCK]);
    return result.rows[0]!.locked;
  }

  /**
   * Locks the project's chain head for this transaction: the sealer (which takes the same row lock
   * in `cairn_audit_seal`) waits, so the chain a prune walks is the chain it cuts.
   */
  async lockHead(tx: Queryable, projectId: string): Promise<void> {
    await tx.query('SELECT 1 FROM audit_chain_heads WHERE project_id = $1 FOR UPDATE', [projectId]);
  }

  /** Projects with sealed entries older than `before`, with their organisation. */
  async projectsWithEntriesBefore(before: Date, q: Queryable = this.db): Promise<Array<{ projectId: string; organizationId: string }>> {
    const result = await q.query<{ project_id: string; organization_id: string }>(
      `SELECT p.id AS project_id, p.organization_id FROM projects p
        WHERE EXISTS (SELECT 1 FROM audit_log l WHERE l.project_id = p.id AND l.position IS NOT NULL AND l.occurred_at < $1)
        ORDER BY p.id`,
      [before],
    );
    return result.rows.map((r) => ({ projectId: r.project_id, organizationId: r.organization_id }));
  }

  /**
   * The furthest position a prune with cut-off `before` may reach: the position before the first
   * sealed entry at or after `before` (entries are sealed in time order, but one committed late can
   * be sealed after a newer one), else the head.
   */
  async pruneLimit(projectId: string, before: Date, q: Queryable = this.db): Promise<number> {
    const result = await q.query<{ limit: string | null }>(
      `SELECT coalesce((SELECT min(position) - 1 FROM audit_log WHERE project_id = $1 AND position IS NOT NULL AND occurred_at >= $2),
                       (SELECT position FROM audit_chain_heads WHERE project_id = $1), 0) AS limit`,
      [projectId, before],
    );
    return Number(result.rows[0]!.limit ?? 0);
  }

  /** Checkpoints of the project with `after` < position <= `upTo`, furthest first. */
  async checkpointsBetween(projectId: string, after: number, upTo: number, q: Queryable = this.db): Promise<StoredCheckpoint[]> {
    const result = await q.query<CheckpointRow>(
      `SELECT ${CHECKPOINT_COLUMNS} FROM audit_checkpoints
        WHERE project_id = $1 AND position > $2 AND position <= $3 ORDER BY position DESC, id DESC LIMIT 100`,
      [projectId, after, upTo],
    );
    return result.rows.map(toCheckpoint);
  }

  /**
   * Records the anchor and deletes the project's entries up to checkpoint `checkpointId` through
   * `cairn_audit_prune` (migration 19), which only the schema's owner may call. Returns how many
   * entries were deleted.
   */
  async prune(tx: Queryable, checkpointId: string, before: Date): Promise<number> {
    const result = await tx.query<{ deleted: string }>('SELECT cairn_audit_prune($1::bigint, $2::timestamptz) AS deleted', [
      checkpointId,
      before,
    ]);
    return Number(result.rows[0]!.deleted);
  }

  /** What the connected role may do to the audit log beyond SELECT and INSERT (start-up check). */
  async rolePowers(): Promise<AuditRolePowers> {
    const result = await this.db.query<{
      role: string;
      superuser: boolean;
      owner: boolean;
      update: boolean;
      delete: boolean;
      truncate: boolean;
    }>(
      `SELECT current_user AS role,
              r.rolsuper AS superuser,
              pg_has_role(current_user, c.relowner, 'USAGE') AS owner,
              has_table_privilege('audit_log', 'UPDATE') AS update,
              has_table_privilege('audit_log', 'DELETE') AS delete,
              has_table_privilege('audit_log', 'TRUNCATE') AS truncate
         FROM pg_roles r, pg_class c
        WHERE r.rolname = current_user AND c.oid = 'audit_log'::regclass`,
    );
    return result.rows[0]!;
  }
}
