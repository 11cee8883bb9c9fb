import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes } from '@cairn/common';
import type { FlowControl, FlowControlRecord } from '../flow-control/flow-control.repository.js';
import { WorkflowRegistryRepository, type WorkflowDefinition, type WorkflowVersionContent } from './workflow-registry.repository.js';
import type { AnnouncedSettings, WorkflowRefInput } from '../domain.js';
import { AuditService, type AuditActor } from '../audit/audit.service.js';
import { FlowControlService } from '../flow-control/flow-control.service.js';

/** A registration request, validated by the edge. */
export interface RegisterWorkflowInput extends WorkflowVersionContent {
  readonly name: string;
  readonly version: string;
  /** When given, replaces the workflow's flow control (it belongs to the name, not the version). */
  readonly flowControl?: FlowControl;
}

/** A workflow name with its registered versions and its flow control. */
export interface WorkflowSummary {
  readonly name: string;
  readonly versions: WorkflowDefinition[];
  readonly flowControl: FlowControlRecord | null;
}

/** What a Hello's announced workflows are against the registry. */
export type AnnouncedCheck =
  | {
      readonly kind: 'ok';
      /** Versions registered from the announcement (development mode). */
      readonly autoRegistered: number;
      /** Worker-registered versions brought in step with changed settings (development mode). */
      readonly updated: number;
      /** Versions whose registration differs from what was announced, with the differing fields (names only). */
      readonly differing: ReadonlyArray<{ readonly workflow: string; readonly fields: readonly string[] }>;
    }
  | { readonly kind: 'not_registered'; readonly missing: readonly WorkflowRefInput[] }
  | { readonly kind: 'queue_mismatch'; readonly workflow: WorkflowRefInput; readonly registeredQueue: string };

/** The fields of a version's content, as the API names them (for the 409 on a changed registration). */
const CONTENT_FIELDS: ReadonlyArray<[keyof WorkflowVersionContent, string]> = [
  ['taskQueue', 'taskQueue'],
  ['inputSchemaDigest', 'inputSchemaDigest'],
  ['outputSchemaDigest', 'outputSchemaDigest'],
  ['retry', 'retry'],
  ['runTimeoutMs', 'timeouts.run'],
  ['stepTimeoutMs', 'timeouts.step'],
  ['schedules', 'schedules'],
];

/** The registry content a worker's announced settings stand for (task queue only without settings). */
function announcedContent(w: WorkflowRefInput): WorkflowVersionContent {
  const s = w.settings;
  return {
    taskQueue: w.taskQueue,
    inputSchemaDigest: s?.inputSchemaDigest ?? null,
    outputSchemaDigest: s?.outputSchemaDigest ?? null,
    retry: s?.retry ?? null,
    runTimeoutMs: s?.runTimeoutMs ?? null,
    stepTimeoutMs: s?.stepTimeoutMs ?? null,
    schedules: s?.schedules ?? [],
  };
}

/** The fields (API names) in which two contents differ. */
function differingFields(a: WorkflowVersionContent, b: WorkflowVersionContent): string[] {
  return CONTENT_FIELDS.filter(([field]) => canonical(a[field]) !== canonical(b[field])).map(([, label]) => label);
}

function sameFlowControl(a: FlowControl | null, b: AnnouncedSettings['flowControl']): boolean {
  return canonical({ concurrency: a?.concurrency ?? null, rateLimit: a?.rateLimit ?? null }) === canonical(b);
}

/**
 * The workflow registry: `name@version` per project with its task queue, schemas, retry policy,
 * timeouts and declared schedules. Versions are immutable; deprecation stops new runs. Workers
 * may only announce registered versions, except in development mode where announcing registers.
 */
@Injectable()
export class WorkflowRegistryService {
  constructor(
    @Inject(WorkflowRegistryRepository) private readonly registry: WorkflowRegistryRepository,
    @Inject(FlowControlService) private readonly flow: FlowControlService,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  /**
   * Registers a version. Registering the same content again answers the stored version
   * (`created: false`); different content for a registered name@version is a CONFLICT naming the
   * fields that differ — versions are immutable, register a new version instead.
   */
  async register(
    projectId: string,
    input: RegisterWorkflowInput,
    actorKeyId: string | null,
  ): Promise<{ workflow: WorkflowDefinition; created: boolean; flowControl: FlowControlRecord | null }> {
    const content: WorkflowVersionContent = {
      taskQueue: input.taskQueue,
      inputSchemaDigest: input.inputSchemaDigest,
      outputSchemaDigest: input.outputSchemaDigest,
      retry: input.retry,
      runTimeoutMs: input.runTimeoutMs,
      stepTimeoutMs: input.stepTimeoutMs,
      schedules: input.schedules,
    };
    let created = true;
    let workflow = await this.registry.insert(projectId, input.name, input.version, content, 'api', actorKeyId);
    if (!workflow) {
      created = false;
      const existing = await this.registry.find(projectId, input.name, input.version);
      if (!existing) throw new Error(`workflow ${input.name}@${input.version} vanished during registration`);
      const differing = differingFields(existing, content);
      if (differing.length > 0) {
        throw new CairnError(
          ErrorCodes.CONFLICT,
          `workflow ${input.name}@${input.version} is already registered with a different ${differing.join(', ')}: ` +
            'registered versions are immutable; register the change as a new version',
          { details: { fields: differing } },
        );
      }
      workflow = existing;
    }
    if (created) {
      await this.audit.record(null, {
        projectId,
        actor: actorOf(actorKeyId),
        action: 'workflow.registered',
        target: { type: 'workflow', id: `${workflow.name}@${workflow.version}` },
        metadata: { name: workflow.name, version: workflow.version, taskQueue: workflow.taskQueue },
      });
    }
    const flowControl =
      input.flowControl === undefined
        ? await this.flow.get(projectId, input.name)
        : await this.flow.set(projectId, input.name, input.flowControl);
    return { workflow, created, flowControl };
  }

  /** Workflow names with their versions (newest first), optionally one name, deprecated versions only when asked. */
  async list(projectId: string, options: { name?: string; includeDeprecated: boolean }): Promise<WorkflowSummary[]> {
    const [versions, flows] = await Promise.all([this.registry.list(projectId, options), this.flow.forProject(projectId)]);
    const byName = new Map<string, WorkflowDefinition[]>();
    for (const v of versions) {
      const list = byName.get(v.name) ?? [];
      list.push(v);
      byName.set(v.name, list);
    }
    const flowByName = new Map(flows.map((f) => [f.name, f]));
    return [...byName].map(([name, list]) => ({ name, versions: list, flowControl: flowByName.get(name) ?? null }));
  }

  /** One workflow name with all its versions; NOT_FOUND when none is registered. */
  async show(projectId: string, name: string): Promise<WorkflowSummary> {
    const versions = await this.registry.list(projectId, { name, includeDeprecated: true });
    if (versions.length === 0) throw notRegistered(name);
    return { name, versions, flowControl: await this.flow.get(projectId, name) };
  }

  async version(projectId: string, name: string, version: string): Promise<WorkflowDefinition> {
    const found = await this.registry.find(projectId, name, version);
    if (!found) throw notRegistered(name, version);
    return found;
  }

  /** Deprecates a version: new runs of it are refused, runs already started go on. Idempotent. */
  async deprecate(projectId: string, name: string, version: string, actorKeyId: string | null): Promise<WorkflowDefinition> {
    const before = await this.registry.find(projectId, name, version);
    const found = await this.registry.deprecate(projectId, name, version, actorKeyId);
    if (!found) throw notRegistered(name, version);
    if (before && before.deprecatedAt === null) {
      await this.audit.record(null, {
        projectId,
        actor: actorOf(actorKeyId),
        action: 'workflow.deprecated',
        target: { type: 'workflow', id: `${name}@${version}` },
        metadata: { name, version },
      });
    }
    return found;
  }

  /** Replaces the flow control of a registered workflow name. */
  async setFlowControl(projectId: string, name: string, settings: FlowControl): Promise<FlowControlRecord | null> {
    if (!(await this.registry.nameExists(projectId, name))) throw notRegistered(name);
    return this.flow.set(projectId, name, settings);
  }

  /**
   * Checks a worker's announced versions against its data plane's project. Unregistered ones are
   * refused, or registered with the settings announced from code when `register` is set
   * (development mode), where a version a worker registered also follows its code's settings when
   * they change (a version registered through the API never does). Otherwise the registration is
   * authoritative and differences are only reported (field names). A version registered on
   * another task queue is refused either way: its runs would never reach the worker.
   */
  async checkAnnounced(dataPlaneId: string, workflows: readonly WorkflowRefInput[], register: boolean): Promise<AnnouncedCheck> {
    if (workflows.length === 0) return { kind: 'ok', autoRegistered: 0, updated: 0, differing: [] };
    const projectId = await this.projectOf(dataPlaneId);
    const registered = new Map((await this.registry.findMany(projectId, workflows)).map((d) => [`${d.name}@${d.version}`, d]));
    const missing: WorkflowRefInput[] = [];
    const differing: Array<{ workflow: string; fields: string[] }> = [];
    const follow: WorkflowRefInput[] = [];
    for (const w of workflows) {
      const found = registered.get(`${w.name}@${w.version}`);
      if (!found) {
        missing.push(w);
        continue;
      }
      if (found.taskQueue !== w.taskQueue) return { kind: 'queue_mismatch', workflow: w, registeredQueue: found.taskQueue };
      if (w.settings === undefined) continue;
      const fields = differingFields(found, announcedContent(w));
      if (fields.length === 0) continue;
      if (register && found.source === 'worker') follow.push(w);
      else differing.push({ workflow: `${w.name}@${w.version}`, fields });
    }
    if (missing.length > 0 && !register) return { kind: 'not_registered', missing };
    let updated = 0;
    for (const w of follow) if (await this.registry.updateAnnounced(projectId, w.name, w.version, announcedContent(w))) updated++;
    const autoRegistered = await this.registry.insertAnnounced(
      projectId,
      missing.map((w) => ({ name: w.name, version: w.version, content: announcedContent(w) })),
    );
    // Two workers announcing at once: the other one may have registered another task queue.
    if (autoRegistered < missing.length) return this.checkAnnounced(dataPlaneId, workflows, false);
    if (register) await this.followFlowControl(projectId, [...missing, ...follow]);
    return { kind: 'ok', autoRegistered, updated, differing };
  }

  /** Development mode: the flow control declared in code of the versions just registered or updated. */
  private async followFlowControl(projectId: string, workflows: readonly WorkflowRefInput[]): Promise<void> {
    for (const w of workflows) {
      const declared = w.settings?.flowControl ?? null;
      if (declared === null) continue;
      const current = await this.flow.get(projectId, w.name);
      if (!sameFlowControl(current, declared)) await this.flow.set(projectId, w.name, declared);
    }
  }

  private async projectOf(dataPlaneId: string): Promise<string> {
    const projectId = await this.registry.projectOf(dataPlaneId);
    if (projectId === null) throw new CairnError(ErrorCodes.NOT_FOUND, `data plane ${dataPlaneId} not found`);
    return projectId;
  }
}

function notRegistered(name: string, version?: string): CairnError {
  return new CairnError(
    ErrorCodes.NOT_FOUND,
    version === undefined
      ? `workflow ${name} is not registered in this project: register a version with POST /v1/projects/{project}/workflows`
      : `workflow ${name}@${version} is not registered in this project: list its versions with GET /v1/projects/{project}/workflows/${name}`,
  );
}

/** JSON with object keys sorted, so equal content compares equal whatever the key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/** The acting API key, or the control plane itself when there is none. */
function actorOf(keyId: string | null): AuditActor {
  return keyId === null ? { type: 'system' } : { type: 'api_key', id: keyId };
}
