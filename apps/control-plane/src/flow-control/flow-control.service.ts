import { Inject, Injectable } from '@nestjs/common';
import { FlowControlRepository, type FlowControl, type FlowControlRecord } from './flow-control.repository.js';
import { EventBus } from '../events/event-bus.service.js';

/** How long a replica trusts its list of a data plane's limited workflows. */
const CACHE_TTL_MS = 1_000;

/**
 * Flow control per workflow name in a project: concurrency limits, rate limits (both optionally
 * per concurrency key). The limits are enforced in the dispatch claim (RunRepository.claim); this
 * service keeps the per-replica list of which workflows are limited, so the claim takes the
 * limited path only for those and the others stay on the one-statement hot path.
 */
@Injectable()
export class FlowControlService {
  private readonly cache = new Map<string, { names: Set<string>; loadedAt: number; loading?: Promise<Set<string>> }>();

  constructor(
    @Inject(FlowControlRepository) private readonly repository: FlowControlRepository,
    @Inject(EventBus) private readonly events: EventBus,
  ) {}

  /** The limited workflow names of a data plane's project (cached for a second). */
  async limitedNames(dataPlaneId: string): Promise<Set<string>> {
    const entry = this.cache.get(dataPlaneId);
    if (entry && Date.now() - entry.loadedAt < CACHE_TTL_MS) return entry.names;
    if (entry?.loading) return entry.loading;
    const loading = this.repository.limitedNames(dataPlaneId).then(
      (names) => {
        const set = new Set(names);
        this.cache.set(dataPlaneId, { names: set, loadedAt: Date.now() });
        return set;
      },
      (error: unknown) => {
        if (entry) this.cache.set(dataPlaneId, { names: entry.names, loadedAt: entry.loadedAt });
        else this.cache.delete(dataPlaneId);
        throw error;
      },
    );
    this.cache.set(dataPlaneId, { names: entry?.names ?? new Set(), loadedAt: entry?.loadedAt ?? 0, loading });
    return loading;
  }

  /** Whether runs of this workflow are under flow control in the data plane's project. */
  async isLimited(dataPlaneId: string, workflowName: string): Promise<boolean> {
    return (await this.limitedNames(dataPlaneId)).has(workflowName);
  }

  async get(projectId: string, name: string): Promise<FlowControlRecord | null> {
    return this.repository.find(projectId, name);
  }

  async forProject(projectId: string): Promise<FlowControlRecord[]> {
    return this.repository.forProject(projectId);
  }

  /**
   * Replaces a workflow's flow control (both limits null: unlimited). Dispatchers of the
   * project's data planes are woken on every replica, since a raised limit may free runs.
   */
  async set(projectId: string, name: string, settings: FlowControl): Promise<FlowControlRecord | null> {
    const record = await this.repository.set(projectId, name, settings);
    const dataPlanes = await this.repository.dataPlanesOf(projectId);
    for (const dataPlaneId of dataPlanes) {
      this.cache.delete(dataPlaneId);
      this.events.publishDispatch(dataPlaneId);
    }
    return record;
  }
}
