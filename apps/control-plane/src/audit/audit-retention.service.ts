/**
 * Retention for the audit log: deletes each project's oldest entries, but only up to and including
 * a signed checkpoint, and records that checkpoint first as the chain's anchor, so what remains
 * starts from a signed point that any verifier can check (docs/audit.md, "Retention").
 *
 * It runs as the schema's owner (`control-plane audit prune`): the delete goes through
 * `cairn_audit_prune` (migration 19), a function the control plane's service role may not call.
 * Before calling it, this checks what the database cannot: the checkpoint's Ed25519 signature with
 * the keys the operator gave, and that the chain verifies from the previous anchor (or the genesis)
 * through that checkpoint to the head. Nothing past the newest qualifying checkpoint is ever deleted.
 */
import { CairnError, ErrorCodes, verifyAuditCheckpointSignature, type AuditPublicKey, type Logger } from '@cairn/common';
import type { AuditRepository, StoredCheckpoint } from './audit.repository.js';
import type { Database, Queryable } from '../db/database.js';
import type { AuditService } from './audit.service.js';
import { presentCheckpoint } from './audit-checkpoint.service.js';

/** What a prune did to one project. */
export type PruneOutcome =
  | {
      readonly projectId: string;
      readonly status: 'pruned';
      readonly pruned: number;
      /** The anchor: the signed checkpoint the chain now starts after. */
      readonly position: number;
      readonly hash: string;
      readonly checkpointSignedAt: string;
    }
  | { readonly projectId: string; readonly status: 'kept'; readonly reason: string }
  | { readonly projectId: string; readonly status: 'refused'; readonly code: string; readonly reason: string };

export class AuditRetentionService {
  constructor(
    private readonly entries: AuditRepository,
    private readonly audit: AuditService,
    private readonly db: Database,
    private readonly logger: Logger,
  ) {}

  /**
   * Prunes every project's entries older than `before`, each up to the newest checkpoint signed
   * with one of `keys` whose entries all occurred before `before`. Refuses (`CAIRN-1156`) when
   * another prune is running or the connected role may not prune.
   */
  async prune(before: Date, keys: readonly AuditPublicKey[]): Promise<PruneOutcome[]> {
    if (keys.length === 0) {
      throw new CairnError(
        ErrorCodes.AUDIT_PRUNE_REFUSED,
        'audit prune needs the public key that signs the checkpoints (--public-key or CAIRN_AUDIT_PUBLIC_KEY, as `cairn audit keys` prints it): it prunes only up to a checkpoint whose signature it checked',
      );
    }
    const outcomes: PruneOutcome[] = [];
    for (const project of await this.entries.projectsWithEntriesBefore(before)) {
      try {
        outcomes.push(await this.db.transaction((tx) => this.pruneProject(tx, project, before, keys)));
      } catch (error) {
        // The service role may neither lock a chain head nor call cairn_audit_prune.
        if ((error as { code?: string }).code === '42501') {
          throw new CairnError(
            ErrorCodes.AUDIT_PRUNE_REFUSED,
            'this database role may not prune the audit log: run `control-plane audit prune` as the schema owner (CAIRN_CP_MIGRATION_DATABASE_URL), not as the service role',
            { cause: error },
          );
        }
        throw error;
      }
    }
    return outcomes;
  }

  private async pruneProject(
    tx: Queryable,
    project: { projectId: string; organizationId: string },
    before: Date,
    keys: readonly AuditPublicKey[],
  ): Promise<PruneOutcome> {
    const { projectId } = project;
    if (!(await this.entries.tryLockPruner(tx))) {
      throw new CairnError(ErrorCodes.AUDIT_PRUNE_REFUSED, 'another audit prune is running: wait for it to finish, then run this again');
    }
    await this.entries.lockHead(tx, projectId);
    const anchor = await this.entries.anchor(projectId, tx);
    const limit = await this.entries.pruneLimit(projectId, before, tx);
    let boundary: StoredCheckpoint | undefined;
    for (const candidate of await this.entries.checkpointsBetween(projectId, anchor?.position ?? 0, limit, tx)) {
      if (verifyAuditCheckpointSignature(presentCheckpoint(candidate), keys).ok) {
        boundary = candidate;
        break;
      }
    }
    if (!boundary) {
      return {
        projectId,
        status: 'kept',
        reason: `no checkpoint signed with a given key covers only entries older than ${before.toISOString()} past position ${anchor?.position ?? 0}: nothing is pruned until one is signed`,
      };
    }
    const walked = await this.audit.walk(tx, projectId, [
      { position: boundary.position, hash: boundary.hash, label: `the checkpoint signed at ${boundary.signedAt}` },
    ]);
    if (!walked.ok) {
      this.logger.error({ projectId, code: ErrorCodes.AUDIT_CHAIN_BROKEN }, 'audit chain does not verify: nothing pruned');
      return {
        projectId,
        status: 'refused',
        code: ErrorCodes.AUDIT_CHAIN_BROKEN,
        reason: `the chain does not verify at position ${walked.broken.position} (${walked.broken.reason}), so nothing is pruned: ${walked.broken.detail}`,
      };
    }
    const pruned = await this.entries.prune(tx, boundary.id, before);
    await this.audit.record(tx, {
      projectId,
      actor: { type: 'system' },
      action: 'audit.pruned',
      target: { type: 'project', id: projectId },
      metadata: {
        entries: pruned,
        position: boundary.position,
        hash: boundary.hash,
        checkpointSignedAt: boundary.signedAt,
        before: before.toISOString(),
        command: 'audit prune',
      },
    });
    this.logger.info({ projectId, pruned, position: boundary.position, hash: boundary.hash }, 'audit log pruned');
    return { projectId, status: 'pruned', pruned, position: boundary.position, hash: boundary.hash, checkpointSignedAt: boundary.signedAt };
  }
}
