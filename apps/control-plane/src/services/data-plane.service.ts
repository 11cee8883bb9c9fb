import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, isId, isName, newId, type Logger } from '@cairn/common';
import { errorSummary } from '../db/database.js';
import { DataPlaneRepository, type DataPlaneRecord } from '../db/data-plane.repository.js';
import { LOGGER } from '../tokens.js';
import { AuditService, type AuditActor } from './audit.service.js';
import { EventBus } from './event-bus.service.js';
import { SessionRegistry } from './session-registry.js';

// A credential is re-checked against the database at most this often per replica; a revocation
// also clears the cache on every replica at once (NOTIFY), so this only bounds a lost notification.
const AUTH_CACHE_MS = 5_000;
const AUTH_CACHE_MAX = 10_000;
// Open streams are re-checked this often, in case a revocation notification was lost.
const STREAM_CHECK_MS = 2_000;

export interface CreatedDataPlane {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  /** The bearer credential, shown once; only its SHA-256 is stored. */
  readonly token: string;
  readonly created: boolean;
}

export interface DataPlaneIdentity {
  readonly dataPlaneId: string;
  readonly projectId: string;
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** Registered data planes and their credentials. */
@Injectable()
export class DataPlaneService {
  private readonly cache = new Map<string, { identity: DataPlaneIdentity; until: number }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    @Inject(DataPlaneRepository) private readonly dataPlanes: DataPlaneRepository,
    @Inject(EventBus) private readonly events: EventBus | null = null,
    @Inject(SessionRegistry) private readonly sessions: SessionRegistry | null = null,
    @Inject(LOGGER) private readonly logger: Logger | null = null,
    @Inject(AuditService) private readonly audit: AuditService | null = null,
  ) {
    this.events?.onRevoked((dataPlaneId) => this.closeRevoked(dataPlaneId));
  }

  /** Starts the periodic check that closes streams of revoked data planes. */
  start(): void {
    this.timer = setInterval(() => void this.checkStreams(), STREAM_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Creates a data plane in a project, or with the ID of an existing one of the same project gives
   * it a new credential (and name).
   */
  async create(
    projectId: string,
    input: { name: string; id?: string; token?: string },
    actor: AuditActor = { type: 'system' },
  ): Promise<CreatedDataPlane> {
    if (!isName(input.name)) {
      throw new CairnError(
        ErrorCodes.INVALID_ARGUMENT,
        'name must start with a letter, contain only letters, digits, _ . - and be at most 100 characters',
        { details: { field: 'name' } },
      );
    }
    const id = input.id ?? newId();
    if (!isId(id)) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'id must be a lowercase UUID', { details: { field: 'id' } });
    const token = input.token ?? `cdp_${randomBytes(32).toString('base64url')}`;
    if (token.length < 8 || token.length > 512 || !/^[\x21-\x7e]+$/.test(token)) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'token must be 8 to 512 printable characters without spaces', {
        details: { field: 'token' },
      });
    }
    let result;
    try {
      result = await this.dataPlanes.upsert(id, projectId, input.name, sha256(token));
    } catch (error) {
      if ((error as { code?: unknown }).code === '23505') {
        throw new CairnError(ErrorCodes.CONFLICT, 'that credential is already used by another data plane: choose another or omit it');
      }
      throw error;
    }
    if (!result) throw new CairnError(ErrorCodes.CONFLICT, `data plane ${id} belongs to another project: omit the ID to create a new one`);
    this.cache.clear();
    await this.audit?.record(null, {
      projectId,
      actor,
      action: result.created ? 'data_plane.created' : 'data_plane.credential_rotated',
      target: { type: 'data_plane', id: result.record.id },
      metadata: { name: result.record.name },
    });
    return { id: result.record.id, projectId: result.record.projectId, name: result.record.name, token, created: result.created };
  }

  async list(projectId: string): Promise<DataPlaneRecord[]> {
    return this.dataPlanes.list(projectId);
  }

  async get(projectId: string, id: string): Promise<DataPlaneRecord> {
    if (!isId(id)) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'the data plane ID in the path must be a lowercase UUID');
    const record = await this.dataPlanes.find(projectId, id);
    if (!record) throw new CairnError(ErrorCodes.NOT_FOUND, `data plane ${id} not found in this project`);
    return record;
  }

  /**
   * Revokes a data plane's credential: its gateway calls fail at once and every replica closes its
   * worker streams (NOTIFY, with a periodic check as a backstop).
   */
  async revoke(projectId: string, id: string, actor: AuditActor = { type: 'system' }): Promise<DataPlaneRecord> {
    const record = await this.get(projectId, id);
    if (await this.dataPlanes.revoke(projectId, id)) {
      await this.audit?.record(null, {
        projectId,
        actor,
        action: 'data_plane.revoked',
        target: { type: 'data_plane', id },
        metadata: { name: record.name },
      });
    }
    this.events?.publishRevoked(id);
    return this.get(projectId, id);
  }

  /** The data plane a bearer credential belongs to; throws UNAUTHENTICATED for an unknown or revoked one. */
  async authenticate(token: string | undefined): Promise<string> {
    return (await this.identify(token)).dataPlaneId;
  }

  async identify(token: string | undefined): Promise<DataPlaneIdentity> {
    if (token === undefined || token === '') {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        "missing credential: send the metadata 'authorization: Bearer <data-plane credential>' (a project admin creates one with `cairn data-planes create`)",
      );
    }
    const digest = sha256(token);
    const now = Date.now();
    const cached = this.cache.get(digest);
    if (cached && cached.until > now) return cached.identity;
    const record = await this.dataPlanes.findActiveByTokenSha256(digest);
    if (!record) {
      this.cache.delete(digest);
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'unknown or revoked data-plane credential: use the credential printed when this data plane was created (create a new data plane if it was lost or revoked)',
      );
    }
    if (this.cache.size >= AUTH_CACHE_MAX) this.cache.clear();
    const identity = { dataPlaneId: record.id, projectId: record.projectId };
    this.cache.set(digest, { identity, until: now + AUTH_CACHE_MS });
    return identity;
  }

  private closeRevoked(dataPlaneId: string): void {
    for (const [digest, entry] of this.cache) if (entry.identity.dataPlaneId === dataPlaneId) this.cache.delete(digest);
    for (const session of this.sessions?.forDataPlane(dataPlaneId) ?? []) {
      this.logger?.info({ dataPlaneId, sessionId: session.id }, 'closing worker stream: data-plane credential revoked');
      session.end({ kind: 'unauthenticated', message: 'the data-plane credential was revoked: configure a new credential' });
    }
  }

  private async checkStreams(): Promise<void> {
    const open = [...new Set((this.sessions?.all() ?? []).map((s) => s.dataPlaneId))];
    if (open.length === 0) return;
    try {
      const active = await this.dataPlanes.active(open);
      for (const id of open) if (!active.has(id)) this.closeRevoked(id);
    } catch (error) {
      this.logger?.warn({ err: errorSummary(error) }, 'could not check data-plane credentials of open streams');
    }
  }
}
