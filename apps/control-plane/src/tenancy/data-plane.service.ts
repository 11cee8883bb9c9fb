import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  CREDENTIAL_PREFIX_LENGTH,
  CairnError,
  CredentialThrottle,
  ErrorCodes,
  credentialThrottled,
  isId,
  isName,
  newId,
  type Logger,
} from '@cairn/common';
import { errorSummary } from '../db/database.js';
import { DataPlaneRepository, type AnnouncedVersion, type DataPlaneRecord, type WorkerRecord } from './data-plane.repository.js';
import { LOGGER } from '../tokens.js';
import { AuditService, type AuditActor } from '../audit/audit.service.js';
import { CredentialHolders } from './credential-holders.js';
import { EventBus } from '../events/event-bus.service.js';

// A credential is re-checked against the database at most this often per replica for new calls; a
// rotation or revocation also clears the cache on every replica at once (NOTIFY), so this only
// bounds a lost notification. Open streams check every request against the database.
const AUTH_CACHE_MS = 5_000;
const AUTH_CACHE_MAX = 10_000;
// Open streams and long polls are re-checked this often, in case a notification was lost.
const STREAM_CHECK_MS = 2_000;

export interface CreatedDataPlane {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  /** The bearer credential, shown once; only its SHA-256 is stored. */
  readonly token: string;
  readonly created: boolean;
  /** What the call changed: nothing when the data plane already had this name and credential. */
  readonly change: 'created' | 'rotated' | 'renamed' | 'unchanged';
}

export interface DataPlaneIdentity {
  readonly dataPlaneId: string;
  readonly projectId: string;
  /** SHA-256 of the credential the caller authenticated with: a stream keeps it to learn when it is replaced. */
  readonly tokenSha256: string;
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

const newToken = (): string => `cdp_${randomBytes(32).toString('base64url')}`;

/** Registered data planes and their credentials. */
@Injectable()
export class DataPlaneService {
  private readonly cache = new Map<string, { identity: DataPlaneIdentity; until: number }>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    @Inject(DataPlaneRepository) private readonly dataPlanes: DataPlaneRepository,
    @Inject(EventBus) private readonly events: EventBus | null = null,
    @Inject(CredentialHolders) private readonly holders: CredentialHolders | null = null,
    @Inject(LOGGER) private readonly logger: Logger | null = null,
    @Inject(AuditService) private readonly audit: AuditService | null = null,
    @Inject(CredentialThrottle) private readonly throttle: CredentialThrottle = new CredentialThrottle(),
  ) {
    this.events?.onCredentialChanged((dataPlaneId) => void this.recheck(dataPlaneId));
  }

  /** Starts the periodic check that ends streams of rotated or revoked credentials. */
  start(): void {
    this.timer = setInterval(() => void this.checkHolders(), STREAM_CHECK_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Creates a data plane in a project, or with the ID of an existing one of the same project gives
   * it this credential and name (and un-revokes it). Nothing is written, audited or ended when it
   * already has both — so a local stack that registers its data plane at every start leaves no
   * trace. A changed credential ends, on every replica, the streams still using the old one.
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
    const token = input.token ?? newToken();
    if (token.length < 8 || token.length > 512 || !/^[\x21-\x7e]+$/.test(token)) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, 'token must be 8 to 512 printable characters without spaces', {
        details: { field: 'token' },
      });
    }
    const digest = sha256(token);
    let saved;
    try {
      saved = await this.dataPlanes.save(id, projectId, input.name, digest);
    } catch (error) {
      const e = error as { code?: unknown; constraint?: unknown };
      if (e.code === '23505' && typeof e.constraint === 'string' && e.constraint.includes('token')) {
        throw new CairnError(ErrorCodes.CONFLICT, 'that credential is already used by another data plane: choose another or omit it');
      }
      if (e.code === '23505')
        throw new CairnError(ErrorCodes.CONFLICT, `data plane ${id} was created at the same time by another call: retry`);
      throw error;
    }
    if (saved === 'other_project') {
      throw new CairnError(ErrorCodes.CONFLICT, `data plane ${id} belongs to another project: omit the ID to create a new one`);
    }
    if (saved === 'revoked_credential') {
      throw new CairnError(
        ErrorCodes.CONFLICT,
        `data plane ${id} was revoked with this credential, which stays revoked: give it a new credential (another --token, or none to generate one)`,
      );
    }
    const { record, before } = saved;
    const rotated = before !== null && before.tokenSha256 !== digest;
    const change = before === null ? 'created' : rotated ? 'rotated' : before.name !== record.name ? 'renamed' : 'unchanged';
    if (change !== 'unchanged') {
      await this.audit?.record(null, {
        projectId,
        actor,
        action: { created: 'data_plane.created', rotated: 'data_plane.credential_rotated', renamed: 'data_plane.renamed' }[change],
        target: { type: 'data_plane', id: record.id },
        metadata: {
          name: record.name,
          ...(before !== null && before.name !== record.name ? { previousName: before.name } : {}),
          ...(before?.revokedAt ? { restored: true } : {}),
        },
      });
    }
    if (rotated) await this.recheck(record.id);
    return { id: record.id, projectId: record.projectId, name: record.name, token, created: before === null, change };
  }

  /**
   * Gives an active data plane a new credential (shown once). The old one stops working at once:
   * new calls are refused, and every replica ends the worker streams and long polls still using
   * it (their requests are refused from the commit on).
   */
  async rotate(projectId: string, id: string, actor: AuditActor = { type: 'system' }): Promise<{ record: DataPlaneRecord; token: string }> {
    const current = await this.get(projectId, id);
    if (current.revokedAt !== null) {
      throw new CairnError(
        ErrorCodes.CONFLICT,
        `data plane ${id} was revoked: a revoked data plane gets no new credential. Register a new data plane instead`,
      );
    }
    const token = newToken();
    const record = await this.dataPlanes.rotate(projectId, id, sha256(token));
    if (!record) throw new CairnError(ErrorCodes.CONFLICT, `data plane ${id} was revoked meanwhile: register a new data plane instead`);
    await this.audit?.record(null, {
      projectId,
      actor,
      action: 'data_plane.credential_rotated',
      target: { type: 'data_plane', id },
      metadata: { name: record.name },
    });
    await this.recheck(id);
    this.logger?.info({ dataPlaneId: id }, 'data-plane credential rotated');
    return { record, token };
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

  /** The workers the data plane connected in the last week and the workflow versions they announced. */
  async workers(projectId: string, id: string): Promise<{ workers: WorkerRecord[]; versions: AnnouncedVersion[] }> {
    const { id: dataPlaneId } = await this.get(projectId, id);
    const [workers, versions] = await Promise.all([this.dataPlanes.workers(dataPlaneId), this.dataPlanes.announcedVersions(dataPlaneId)]);
    return { workers, versions };
  }

  /**
   * Revokes a data plane's credential: its gateway calls fail at once and every replica ends its
   * worker streams and long polls.
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
    await this.recheck(id);
    return this.get(projectId, id);
  }

  /** The data plane a bearer credential belongs to; throws UNAUTHENTICATED for an unknown or revoked one. */
  async authenticate(token: string | undefined, source?: string): Promise<string> {
    return (await this.identify(token, source)).dataPlaneId;
  }

  /**
   * Who a bearer credential is. Unknown and revoked credentials are UNAUTHENTICATED; an address
   * that failed too often is answered CAIRN-1142 (RESOURCE_EXHAUSTED, with the wait) without a
   * look-up, unless the credential authenticated recently (see {@link CredentialThrottle}).
   */
  async identify(token: string | undefined, source = 'unknown'): Promise<DataPlaneIdentity> {
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
    const attempt = { source, prefix: token.slice(0, CREDENTIAL_PREFIX_LENGTH), digest };
    const wait = this.throttle.retryAfterMs(attempt);
    if (wait > 0) throw credentialThrottled(wait, 'data-plane credentials');
    const record = await this.dataPlanes.findActiveByTokenSha256(digest);
    if (!record) {
      this.cache.delete(digest);
      this.throttle.failed(attempt);
      this.logger?.info({ source }, 'data-plane credential refused');
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        'unknown or revoked data-plane credential: use the credential printed when this data plane was created or last rotated (create a new data plane if it was lost or revoked)',
      );
    }
    this.throttle.succeeded(attempt);
    if (this.cache.size >= AUTH_CACHE_MAX) this.cache.clear();
    const identity = { dataPlaneId: record.id, projectId: record.projectId, tokenSha256: digest };
    this.cache.set(digest, { identity, until: now + AUTH_CACHE_MS });
    return identity;
  }

  /**
   * Whether a stream's credential is still its data plane's, asked of the database (not the cache)
   * before each request it sends is handled.
   */
  async isCurrent(identity: DataPlaneIdentity): Promise<boolean> {
    return this.dataPlanes.isCurrent(identity.dataPlaneId, identity.tokenSha256);
  }

  /**
   * After a rotation or revocation (here, on another replica, or by the command line): forgets the
   * data plane's cached credentials and ends its streams and long polls whose credential is no
   * longer the current one.
   */
  private async recheck(dataPlaneId: string): Promise<void> {
    for (const [digest, entry] of this.cache) {
      if (entry.identity.dataPlaneId === dataPlaneId) {
        this.cache.delete(digest);
        this.throttle.forget(digest);
      }
    }
    const holders = this.holders?.forDataPlane(dataPlaneId) ?? [];
    if (holders.length === 0) return;
    try {
      this.endStale(dataPlaneId, (await this.dataPlanes.currentCredentials([dataPlaneId])).get(dataPlaneId) ?? null);
    } catch (error) {
      // The periodic check tries again; requests on those streams are checked one by one meanwhile.
      this.logger?.warn({ err: errorSummary(error), dataPlaneId }, 'could not re-check a changed data-plane credential');
    }
  }

  private endStale(dataPlaneId: string, current: string | null): void {
    for (const holder of this.holders?.forDataPlane(dataPlaneId) ?? []) {
      if (holder.tokenSha256 === current) continue;
      this.logger?.info({ dataPlaneId, revoked: current === null }, 'ending a stream: its data-plane credential was rotated or revoked');
      holder.end(
        current === null
          ? 'the data-plane credential was revoked: configure a new credential'
          : 'the data-plane credential was rotated: this stream used the old one; configure the new credential (CAIRN_DP_CREDENTIAL) and reconnect',
      );
    }
  }

  private async checkHolders(): Promise<void> {
    const open = this.holders?.dataPlaneIds() ?? [];
    if (open.length === 0) return;
    try {
      const current = await this.dataPlanes.currentCredentials(open);
      for (const id of open) this.endStale(id, current.get(id) ?? null);
    } catch (error) {
      this.logger?.warn({ err: errorSummary(error) }, 'could not check data-plane credentials of open streams');
    }
  }
}
