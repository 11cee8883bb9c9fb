// What a worker tells about its workflows' settings from code: their JSON Schemas to the data
// plane's catalogue (text stays in the data plane), and to the control plane in its Hello only
// classified numbers, schema digests and bounded names.
import { schemaDigest } from '@cairn/common';
import type { CatalogueSchema, CatalogueVersion } from '@cairn/payload-store';
import {
  ConcurrencyLimitSchema,
  DeclaredScheduleSchema,
  FlowControlSchema,
  RateLimitSchema,
  RetryPolicySchema,
  WorkflowSettingsSchema,
  create,
  type WorkflowSettings,
} from '@cairn/proto';
import { type DeclaredSchema, type WorkflowDefinition } from '@cairn/sdk';
import { resolveRetryPolicy } from '@cairn/sdk/internal';

/** The catalogue entry of a workflow version: each of its schemas that has a JSON Schema. */
export function catalogueVersionOf(def: WorkflowDefinition): CatalogueVersion {
  const schemas: CatalogueSchema[] = [];
  const add = (kind: CatalogueSchema['kind'], declared: DeclaredSchema | undefined, signalName?: string): void => {
    if (declared?.jsonSchema === undefined) return;
    schemas.push({
      kind,
      ...(signalName === undefined ? {} : { signalName }),
      schema: declared.jsonSchema,
      digest: schemaDigest(declared.jsonSchema),
    });
  };
  add('input', def.input);
  add('output', def.output);
  for (const signal of def.signals) add('signal', signal.body, signal.name);
  return { name: def.name, version: def.version, schemas };
}

/** The schemas of a workflow that only the worker can check (no JSON Schema), with why. */
export function workerOnlySchemas(def: WorkflowDefinition): Array<{ schema: string; reason: string }> {
  const out: Array<{ schema: string; reason: string }> = [];
  const note = (schema: string, declared: DeclaredSchema | undefined): void => {
    if (declared !== undefined && declared.jsonSchema === undefined)
      out.push({ schema, reason: declared.jsonSchemaUnavailable ?? 'unknown' });
  };
  note('input', def.input);
  note('output', def.output);
  for (const signal of def.signals) note(`signal ${signal.name}`, signal.body);
  return out;
}

const digestOf = (declared: DeclaredSchema | undefined): string =>
  declared?.jsonSchema === undefined ? '' : schemaDigest(declared.jsonSchema);

/**
 * The settings a Hello announces for a workflow version. Error type names of the retry policy are
 * left out: they stay in the data plane.
 */
export function announcedSettings(def: WorkflowDefinition): WorkflowSettings {
  const retry = def.retry === undefined ? undefined : resolveRetryPolicy(def.retry, `retry of workflow "${def.name}"`);
  const flow = def.flowControl;
  return create(WorkflowSettingsSchema, {
    ...(retry === undefined
      ? {}
      : {
          retry: create(RetryPolicySchema, {
            maximumAttempts: retry.maximumAttempts,
            initialIntervalMs: BigInt(retry.initialIntervalMs),
            backoffCoefficient: retry.backoffCoefficient,
            maximumIntervalMs: BigInt(retry.maximumIntervalMs),
          }),
        }),
    runTimeoutMs: BigInt(def.timeouts.run ?? 0),
    stepTimeoutMs: BigInt(def.timeouts.step ?? 0),
    inputSchemaDigest: digestOf(def.input),
    outputSchemaDigest: digestOf(def.output),
    schedules: def.schedules.map((s) => create(DeclaredScheduleSchema, { cron: s.cron, timezone: s.timezone })),
    ...(flow === undefined
      ? {}
      : {
          flowControl: create(FlowControlSchema, {
            ...(flow.concurrency === null
              ? {}
              : { concurrency: create(ConcurrencyLimitSchema, { limit: flow.concurrency.limit, perKey: flow.concurrency.perKey }) }),
            ...(flow.rateLimit === null
              ? {}
              : {
                  rateLimit: create(RateLimitSchema, {
                    limit: flow.rateLimit.limit,
                    periodMs: BigInt(flow.rateLimit.periodMs),
                    perKey: flow.rateLimit.perKey,
                  }),
                }),
          }),
        }),
  });
}
