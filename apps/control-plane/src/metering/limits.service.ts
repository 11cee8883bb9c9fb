/**
 * What one credential may use of a shared control plane: run slots per worker stream, worker
 * streams and `WaitRun` long polls per data plane, and request rates per key and per organisation.
 *
 * The numbers are the replica's configured defaults unless the operator set others for the
 * organisation (`control-plane limits set`, the `organization_limits` table); no REST route writes
 * them, so a tenant cannot raise its own. Counters and rate buckets are per replica: with N
 * replicas behind a load balancer an organisation may use up to N times a limit in total.
 */
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes } from '@cairn/common';
import { CONFIG, type ControlPlaneConfig } from '../config.js';
import { LimitsRepository, type OrganizationLimits } from './limits.repository.js';

/** The limits in force for one organisation: operator-set values over the configured defaults. */
export interface EffectiveLimits {
  readonly maxSlotsPerStream: number;
  readonly maxStreamsPerDataPlane: number;
  readonly maxWaitsPerDataPlane: number;
  readonly requestsPerSecondPerKey: number;
  readonly requestsPerSecondPerDataPlane: number;
  readonly requestsPerSecond: number;
}

/** How long an organisation's limits are cached: an operator's change applies within this time. */
const CACHE_MS = 5_000;
/** Rate buckets kept at most (the least recently created are dropped first; a dropped bucket is full). */
const MAX_BUCKETS = 100_000;

interface Bucket {
  tokens: number;
  at: number;
}

@Injectable()
export class LimitsService {
  private readonly cache = new Map<string, { limits: EffectiveLimits; at: number }>();
  private readonly organizationOf = new Map<string, string>();
  private readonly streams = new Map<string, number>();
  private readonly waits = new Map<string, number>();
  private readonly buckets = new Map<string, Bucket>();
  private readonly now: () => number;

  constructor(
    @Inject(CONFIG) private readonly config: ControlPlaneConfig,
    @Inject(LimitsRepository) private readonly repository: LimitsRepository,
  ) {
    this.now = () => performance.now();
  }

  /** The limits in force for an organisation. */
  async forOrganization(organizationId: string): Promise<EffectiveLimits> {
    const cached = this.cache.get(organizationId);
    if (cached && this.now() - cached.at < CACHE_MS) return cached.limits;
    const limits = this.effective(await this.repository.forOrganization(organizationId));
    this.cache.set(organizationId, { limits, at: this.now() });
    return limits;
  }

  /** The organisation of a data plane and the limits in force for it. */
  async forDataPlane(dataPlaneId: string): Promise<{ organizationId: string; limits: EffectiveLimits }> {
    let organizationId = this.organizationOf.get(dataPlaneId);
    if (organizationId === undefined) {
      const found = await this.repository.organizationOfDataPlane(dataPlaneId);
      if (found === null) throw new CairnError(ErrorCodes.UNAUTHENTICATED, 'unknown data plane');
      organizationId = found;
      // A data plane never moves to another organisation.
      this.organizationOf.set(dataPlaneId, organizationId);
    }
    return { organizationId, limits: await this.forOrganization(organizationId) };
  }

  /** The slots a worker stream is granted: what its Hello announced, at most the cap. */
  async grantSlots(dataPlaneId: string, announced: number): Promise<number> {
    const { limits } = await this.forDataPlane(dataPlaneId);
    // Below the send queue too, whatever an operator set: a burst of run tasks must fit in it.
    return Math.min(announced, limits.maxSlotsPerStream, this.config.limits.streamSendQueue - 1);
  }

  /**
   * Counts a worker stream of the data plane; refuses one past its limit (CAIRN-1172). Call the
   * returned function once when the stream ends.
   */
  async openStream(dataPlaneId: string): Promise<() => void> {
    const { limits } = await this.forDataPlane(dataPlaneId);
    return this.take(
      this.streams,
      dataPlaneId,
      limits.maxStreamsPerDataPlane,
      (n) =>
        `this data plane already has ${n} worker streams open on this control-plane replica, its limit: ` +
        'close idle workers or spread them over fewer processes with more slots each, or ask the control plane operator to raise it (control-plane limits set --max-streams-per-data-plane)',
    );
  }

  /** {@link admit} for a data plane's GatewayService call. */
  async admitDataPlane(dataPlaneId: string): Promise<void> {
    const { organizationId } = await this.forDataPlane(dataPlaneId);
    await this.admit({ kind: 'data plane', id: dataPlaneId }, organizationId);
  }

  /** Counts a `WaitRun` long poll of the data plane; refuses one past its limit (CAIRN-1172). */
  async beginWait(dataPlaneId: string): Promise<() => void> {
    const { limits } = await this.forDataPlane(dataPlaneId);
    return this.take(
      this.waits,
      dataPlaneId,
      limits.maxWaitsPerDataPlane,
      (n) =>
        `this data plane already has ${n} WaitRun calls in flight on this control-plane replica, its limit: ` +
        'retry after some end, or ask the control plane operator to raise it (control-plane limits set --max-waits-per-data-plane)',
    );
  }

  /**
   * Admits one request of a credential (an API key or a data plane) of an organisation, or throws
   * CAIRN-1113 with the wait (`retryAfterSeconds`) when its own rate or its organisation's is used up.
   * A refused request takes nothing from either bucket.
   */
  async admit(credential: { kind: 'api key' | 'data plane'; id: string }, organizationId: string): Promise<void> {
    const limits = await this.forOrganization(organizationId);
    const now = this.now();
    const ownRate = credential.kind === 'api key' ? limits.requestsPerSecondPerKey : limits.requestsPerSecondPerDataPlane;
    const own = this.bucket(`${credential.kind} ${credential.id}`, ownRate, now);
    const shared = this.bucket(`organization ${organizationId}`, limits.requestsPerSecond, now);
    if (own.tokens >= 1 && shared.tokens >= 1) {
      own.tokens -= 1;
      shared.tokens -= 1;
      return;
    }
    const which = own.tokens < 1 ? { bucket: own, rate: ownRate } : { bucket: shared, rate: limits.requestsPerSecond };
    const seconds = Math.max(1, Math.ceil((1 - which.bucket.tokens) / which.rate));
    const whose = which.bucket === own ? `this ${credential.kind}` : 'all credentials of this organisation together';
    throw new CairnError(
      ErrorCodes.RATE_LIMITED,
      `too many requests: ${whose} may make ${which.rate} requests per second of this control-plane replica (bursts of ${2 * which.rate}); ` +
        `retry after ${seconds} s. The control plane operator can raise the limit (control-plane limits set).`,
      { details: { retryAfterSeconds: seconds, limit: which.rate } },
    );
  }

  private effective(set: OrganizationLimits): EffectiveLimits {
    const d = this.config.limits;
    return {
      maxSlotsPerStream: set.maxSlotsPerStream ?? d.maxSlotsPerStream,
      maxStreamsPerDataPlane: set.maxStreamsPerDataPlane ?? d.maxStreamsPerDataPlane,
      maxWaitsPerDataPlane: set.maxWaitsPerDataPlane ?? d.maxWaitsPerDataPlane,
      requestsPerSecondPerKey: set.requestsPerSecondPerKey ?? d.requestsPerSecondPerKey,
      requestsPerSecondPerDataPlane: set.requestsPerSecondPerDataPlane ?? d.requestsPerSecondPerDataPlane,
      requestsPerSecond: set.requestsPerSecond ?? d.requestsPerSecondPerOrganization,
    };
  }

  private take(counts: Map<string, number>, id: string, limit: number, message: (n: number) => string): () => void {
    const open = counts.get(id) ?? 0;
    if (open >= limit) throw new CairnError(ErrorCodes.TOO_MANY_CALLS, message(open), { details: { retryAfterSeconds: 1, limit } });
    counts.set(id, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (counts.get(id) ?? 1) - 1;
      if (left <= 0) counts.delete(id);
      else counts.set(id, left);
    };
  }

  /** The bucket refilled to `now`: `perSecond` tokens a second, at most twice that. */
  private bucket(key: string, perSecond: number, now: number): Bucket {
    let bucket = this.buckets.get(key);
    if (!bucket) {
      bucket = { tokens: 2 * perSecond, at: now };
      this.buckets.set(key, bucket);
      if (this.buckets.size > MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
      return bucket;
    }
    bucket.tokens = Math.min(2 * perSecond, bucket.tokens + ((now - bucket.at) / 1000) * perSecond);
    bucket.at = now;
    return bucket;
  }
}
