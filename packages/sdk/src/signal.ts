import { assertName } from '@cairn/common/core';
import { declareSchema, type DeclaredSchema, type StandardSchemaV1 } from './schema.js';

/**
 * A typed signal: its name and, optionally, the schema of its body. Create one with
 * {@link defineSignal}, wait for it with `ctx.waitForSignal(signal)` (which returns the validated,
 * typed body) and list it in the workflow's `signals` so the gateway checks bodies sent to it
 * before storing them.
 *
 * @example
 * ```ts
 * const approval: SignalDefinition<{ approved: boolean }> = defineSignal('approval', z.object({ approved: z.boolean() }));
 * ```
 */
export interface SignalDefinition<Body = unknown> {
  /** The signal name (a static name: it crosses to the control plane in clear). */
  readonly name: string;
  /** The body's schema, when one was given. */
  readonly body: DeclaredSchema | undefined;
  /** Carries the body type; never set at run time. */
  readonly '~body'?: Body;
}

/**
 * Defines a signal. With a schema (zod 4 or any Standard Schema), `ctx.waitForSignal(signal)`
 * returns the parsed body typed by the schema, and a body that does not match throws
 * {@link SignalValidationError} in the workflow; listed in the workflow's `signals`, the schema is
 * also checked by the gateway (`POST /v1/runs/:id/signals/:name`, 400 with the path of each bad
 * field) before anything is stored. Without a schema the body is typed `Body` but not checked.
 *
 * @example
 * ```ts
 * import { z } from 'zod';
 * import { defineSignal, defineWorkflow } from '@cairn/sdk';
 *
 * export const approval = defineSignal('approval', z.object({ approved: z.boolean(), by: z.string() }));
 * export const nudge = defineSignal<{ note?: string }>('nudge'); // typed, not checked
 *
 * export const refund = defineWorkflow({ name: 'refund', version: '1', signals: [approval, nudge] }, async (ctx) => {
 *   const { approved, by } = await ctx.waitForSignal(approval, { timeout: '2d' });
 *   return { approved, by };
 * });
 * ```
 */
export function defineSignal<Schema extends StandardSchemaV1>(
  name: string,
  schema: Schema,
): SignalDefinition<StandardSchemaV1.InferOutput<Schema>>;
export function defineSignal<Body = unknown>(name: string): SignalDefinition<Body>;
export function defineSignal(name: string, schema?: StandardSchemaV1): SignalDefinition {
  assertName(name, 'signal name');
  const body = schema === undefined ? undefined : declareSchema(schema, 'input', `schema of signal "${name}"`);
  return Object.freeze({ name, body });
}

/** Whether a value is what {@link defineSignal} returned. */
export function isSignalDefinition(value: unknown): value is SignalDefinition {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as { name?: unknown; body?: unknown };
  return typeof v.name === 'string' && 'body' in v && (v.body === undefined || typeof v.body === 'object');
}
