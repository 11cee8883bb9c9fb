import { Inject, Injectable } from '@nestjs/common';
import { WorkflowRegistryRepository } from './workflow-registry.repository.js';
import type { RunTaskDefaults } from '../grpc/convert.js';
import type { Run } from '../domain.js';

/** How long a version that is not registered (or registered by a worker) is trusted before it is looked up again. */
const MISS_TTL_MS = 10_000;
/** A bound on the cache; past it the cache starts afresh (entries are cheap to look up again). */
const MAX_ENTRIES = 10_000;

interface Entry {
  readonly defaults: RunTaskDefaults | null;
  /** For a miss, when to look again; hits never expire (registered versions are immutable). */
  readonly until: number;
}

/**
 * The retry policy and step timeout registered for the workflow version of each dispatched run,
 * which its RunTask carries to the worker. Registered versions are immutable, so a version found
 * once is cached for good; a version not registered (announced before the registry existed) is
 * looked up again after a few seconds. A dispatch pass costs at most one query, for the versions
 * this replica has not seen yet.
 */
@Injectable()
export class WorkflowDefaultsService {
  private readonly cache = new Map<string, Entry>();

  constructor(@Inject(WorkflowRegistryRepository) private readonly registry: WorkflowRegistryRepository) {}

  /** The defaults of each run's version, by run ID (null when the version registers none). */
  async forRuns(runs: readonly Run[]): Promise<Map<string, RunTaskDefaults | null>> {
    const now = Date.now();
    const missing = new Map<string, Map<string, { name: string; version: string }>>();
    for (const run of runs) {
      const entry = this.cache.get(key(run.projectId, run.workflowName, run.workflowVersion));
      if (entry && entry.until >= now) continue;
      const refs = missing.get(run.projectId) ?? new Map<string, { name: string; version: string }>();
      refs.set(`${run.workflowName}@${run.workflowVersion}`, { name: run.workflowName, version: run.workflowVersion });
      missing.set(run.projectId, refs);
    }
    for (const [projectId, refs] of missing) {
      const found = await this.registry.findMany(projectId, [...refs.values()]);
      if (this.cache.size + refs.size > MAX_ENTRIES) this.cache.clear();
      for (const ref of refs.values()) this.cache.set(key(projectId, ref.name, ref.version), { defaults: null, until: now + MISS_TTL_MS });
      for (const d of found) {
        const defaults: RunTaskDefaults | null =
          d.retry === null && d.stepTimeoutMs === null ? null : { retry: d.retry, stepTimeoutMs: d.stepTimeoutMs };
        // A version registered through the API never changes; one a worker registered follows its
        // code in development mode, so it is looked up again like a miss.
        this.cache.set(key(projectId, d.name, d.version), {
          defaults,
          until: d.source === 'api' ? Number.POSITIVE_INFINITY : now + MISS_TTL_MS,
        });
      }
    }
    return new Map(
      runs.map((run) => [run.id, this.cache.get(key(run.projectId, run.workflowName, run.workflowVersion))?.defaults ?? null]),
    );
  }
}

function key(projectId: string, name: string, version: string): string {
  return `${projectId} ${name}@${version}`;
}
