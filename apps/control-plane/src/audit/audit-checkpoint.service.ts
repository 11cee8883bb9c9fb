/**
 * Signed checkpoints of the audit chain: a project's head (position, hash, entry count, time)
 * signed with the control plane's Ed25519 key, periodically for every project whose chain moved and
 * on demand. A checkpoint is only signed for a head that chains from the project's previous signed
 * checkpoint (or from the genesis), so the control plane never signs a chain it cannot verify.
 *
 * The chain alone catches a changed or removed entry; a checkpoint kept outside the control plane
 * (`cairn audit checkpoint --out FILE`) also catches what someone who controls the database can do
 * without leaving a break: removing the newest entries with the head, truncating the log, or
 * rewriting history and recomputing every later hash. See docs/audit.md for the threat model.
 */
import { Inject, Injectable, type OnModuleDestroy } from '@nestjs/common';
import {
  AUDIT_GENESIS_HASH,
  CairnError,
  ErrorCodes,
  auditPublicKeyJwk,
  signAuditCheckpoint,
  verifyAuditCheckpointSignature,
  type AuditCheckpoint,
  type AuditPublicKeyJwk,
  type AuditSigningKey,
  type Logger,
} from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { AuditRepository, type StoredCheckpoint } from './audit.repository.js';
import { Database, errorSummary, type Queryable } from '../db/database.js';
import { LOGGER } from '../tokens.js';
import { AuditService, type VerifyResult } from './audit.service.js';

const ROUND_PROJECTS = 100;

/** A stored checkpoint in the form that is signed and served. */
export function presentCheckpoint(stored: StoredCheckpoint): AuditCheckpoint {
  return {
    format: 'cairn.audit.checkpoint.v1',
    organizationId: stored.organizationId,
    projectId: stored.projectId,
    position: stored.position,
    hash: stored.hash,
    entries: stored.entries,
    signedAt: stored.signedAt,
    keyId: stored.keyId,
    algorithm: 'Ed25519',
    signature: stored.signature,
  };
}

@Injectable()
export class AuditCheckpointService implements OnModuleDestroy {
  private timer: NodeJS.Timeout | null = null;
  private round: Promise<void> | null = null;
  private readonly key: AuditSigningKey | undefined;

  constructor(
    @Inject(AuditService) private readonly audit: AuditService,
    @Inject(AuditRepository) private readonly entries: AuditRepository,
    @Inject(Database) private readonly db: Database,
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(LOGGER) private readonly logger: Logger,
  ) {
    this.key = config.auditSigningKey;
  }

  /** The public keys that verify this control plane's checkpoints (served at `/.well-known/cairn-audit-keys`). */
  publicKeys(): AuditPublicKeyJwk[] {
    return this.key ? [auditPublicKeyJwk(this.key)] : [];
  }

  /**
   * Verifies the project's chain, also against its newest stored checkpoint signed with this
   * control plane's key (whose signature is checked first).
   */
  verify(projectId: string): Promise<VerifyResult> {
    const key = this.key;
    if (!key) return this.audit.verify(projectId);
    return this.audit.verify(
      projectId,
      (stored) => {
        const checked = verifyAuditCheckpointSignature(presentCheckpoint(stored), [key]);
        return checked.ok ? { ok: true, detail: '' } : { ok: false, detail: checked.detail };
      },
      [key.keyId],
    );
  }

  /**
   * Seals what is pending and signs the project's head (or returns the newest checkpoint when it
   * already covers that head). Refuses with `CAIRN-1154` without a signing key, and with
   * `CAIRN-1150` when the chain does not verify from the previous checkpoint.
   */
  async checkpoint(project: { id: string; organizationId: string }): Promise<{ checkpoint: AuditCheckpoint; created: boolean }> {
    const key = this.key;
    if (!key) {
      throw new CairnError(
        ErrorCodes.AUDIT_SIGNING_DISABLED,
        'this control plane has no audit signing key, so it cannot sign checkpoints: its operator sets CAIRN_AUDIT_SIGNING_KEY_FILE (see docs/audit.md)',
      );
    }
    await this.audit.sealPending(true, project.id);
    return this.db.transaction(async (tx) => {
      await this.entries.snapshot(tx, false);
      return this.sign(tx, project.id, project.organizationId, key);
    });
  }

  /** The project's stored checkpoints, newest first. */
  async list(projectId: string, limit: number, beforeId?: string): Promise<{ checkpoints: AuditCheckpoint[]; next: string | null }> {
    const rows = await this.entries.checkpoints(projectId, limit + 1, beforeId);
    const page = rows.slice(0, limit);
    return { checkpoints: page.map(presentCheckpoint), next: rows.length > limit ? page[page.length - 1]!.id : null };
  }

  private async sign(
    tx: Queryable,
    projectId: string,
    organizationId: string,
    key: AuditSigningKey,
  ): Promise<{ checkpoint: AuditCheckpoint; created: boolean }> {
    const latest = await this.entries.latestCheckpoint(projectId, [key.keyId], tx);
    if (latest) {
      const checked = verifyAuditCheckpointSignature(presentCheckpoint(latest), [key]);
      if (!checked.ok) {
        throw new CairnError(
          ErrorCodes.AUDIT_CHAIN_BROKEN,
          `the newest stored checkpoint of project ${projectId} (signed at ${latest.signedAt}) does not verify, so no checkpoint is signed on top of it: ${checked.detail}`,
        );
      }
    }
    const head = await this.entries.head(projectId, tx);
    const position = head?.position ?? 0;
    const hash = head?.hash ?? AUDIT_GENESIS_HASH;
    if (latest && latest.position === position && latest.hash === hash) return { checkpoint: presentCheckpoint(latest), created: false };
    const walked = await this.audit.walk(tx, projectId, [], latest ? { position: latest.position, hash: latest.hash } : undefined);
    if (!walked.ok) {
      throw new CairnError(
        ErrorCodes.AUDIT_CHAIN_BROKEN,
        `the audit chain of project ${projectId} does not verify at position ${walked.broken.position} (${walked.broken.reason}), so no checkpoint is signed: ${walked.broken.detail}`,
        { details: { broken: walked.broken } },
      );
    }
    const checkpoint = signAuditCheckpoint(
      { organizationId, projectId, position, hash, entries: walked.entries, signedAt: new Date().toISOString() },
      key,
    );
    await this.entries.insertCheckpoint(checkpoint, tx);
    // The log line is a second copy outside the database: logs usually go to another store.
    this.logger.info(
      {
        projectId,
        position,
        hash,
        entries: checkpoint.entries,
        keyId: key.keyId,
        signature: checkpoint.signature,
        signedAt: checkpoint.signedAt,
      },
      'audit checkpoint signed',
    );
    return { checkpoint, created: true };
  }

  /** Signs a checkpoint every `auditCheckpointIntervalMs` for each project whose chain moved (one replica at a time). */
  start(): void {
    if (this.timer || !this.key) return;
    this.timer = setInterval(() => {
      if (this.round) return;
      this.round = this.checkpointAll()
        .then(() => undefined)
        .catch((error: unknown) => this.logger.warn({ err: errorSummary(error) }, 'audit checkpoint round failed'))
        .finally(() => {
          this.round = null;
        });
    }, this.config.auditCheckpointIntervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.round;
  }

  async onModuleDestroy(): Promise<void> {
    await this.stop();
  }

  /**
   * One round: seals what is pending, then signs the head of every project whose chain moved since
   * its last checkpoint. A project whose chain does not verify is logged and skipped. Returns how
   * many checkpoints were signed.
   */
  async checkpointAll(): Promise<number> {
    const key = this.key;
    if (!key) return 0;
    await this.audit.sealPending(true);
    let signed = 0;
    const skipped = new Set<string>();
    for (let more = true; more;) {
      more = await this.db.transaction(async (tx) => {
        await this.entries.snapshot(tx, false);
        if (!(await this.entries.tryLockCheckpointer(tx))) return false;
        const due = (await this.entries.projectsToCheckpoint(tx, key.keyId, ROUND_PROJECTS + skipped.size)).filter(
          (p) => !skipped.has(p.projectId),
        );
        for (const project of due) {
          try {
            if ((await this.sign(tx, project.projectId, project.organizationId, key)).created) signed += 1;
          } catch (error) {
            // Only reads ran for this project: the transaction is still good for the others.
            if (!(error instanceof CairnError) || error.code !== ErrorCodes.AUDIT_CHAIN_BROKEN) throw error;
            skipped.add(project.projectId);
            this.logger.error({ projectId: project.projectId, code: error.code }, 'audit chain does not verify: no checkpoint signed');
          }
        }
        return due.length >= ROUND_PROJECTS;
      });
    }
    return signed;
  }
}
