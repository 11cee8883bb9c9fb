import type { StandardJSONSchemaV1, StandardSchemaV1 } from '@standard-schema/spec';
import { CairnError, ErrorCodes, MAX_JSON_DEPTH, isNonNullObject, jsonDepth, type SchemaIssue } from '@cairn/common/core';

export type { StandardJSONSchemaV1, StandardSchemaV1 };

/**
 * A JSON Schema (draft 2020-12) as plain JSON.
 *
 * @example
 * ```ts
 * const schema: JsonSchema = { type: 'object', properties: { amount: { type: 'number', minimum: 0 } }, required: ['amount'] };
 * ```
 */
export type JsonSchema = Readonly<Record<string, unknown>>;

/**
 * A schema declared in code (a workflow's `input` or `output`, a signal's body) with the JSON
 * Schema derived from it.
 *
 * The JSON Schema exists when the schema library implements Standard JSON Schema
 * (`schema['~standard'].jsonSchema`, as zod 4 does) and the schema can be expressed in JSON Schema.
 * Then the worker writes it to the data plane's schema catalogue and the gateway checks run inputs
 * and signal bodies against it before it stores them. Otherwise (another library, or a type JSON
 * Schema cannot express, such as a `Date`) only the worker validates, with the Standard Schema
 * itself: at run start for an input, when the signal is consumed for a signal body.
 *
 * @example
 * ```ts
 * const declared: DeclaredSchema | undefined = orderRefund.input;
 * if (declared?.jsonSchema === undefined) console.log(`validated in the worker only: ${declared?.jsonSchemaUnavailable}`);
 * ```
 */
export interface DeclaredSchema {
  /** The Standard Schema given in code; the worker validates with it. */
  readonly schema: StandardSchemaV1;
  /** The JSON Schema (draft 2020-12) the data plane catalogues and the gateway validates with. */
  readonly jsonSchema: JsonSchema | undefined;
  /** Why there is no JSON Schema, when there is none. */
  readonly jsonSchemaUnavailable: string | undefined;
}

function isStandardSchema(value: unknown): value is StandardSchemaV1 {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return false;
  const standard = (value as { '~standard'?: { version?: unknown; validate?: unknown } })['~standard'];
  return isNonNullObject(standard) && standard.version === 1 && typeof standard.validate === 'function';
}

/**
 * Reads a schema given in code: checks that it is a Standard Schema and derives its JSON Schema
 * (`direction` says whether the JSON Schema describes what a caller sends, `input`, or what the
 * schema produces, `output`). `what` names the schema in errors.
 */
export function declareSchema(schema: unknown, direction: 'input' | 'output', what: string): DeclaredSchema {
  if (!isStandardSchema(schema)) {
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `The ${what} must be a Standard Schema (https://standardschema.dev), such as a zod 4 schema: z.object({ … }).`,
    );
  }
  const converter = (schema['~standard'] as Partial<StandardJSONSchemaV1.Props>).jsonSchema;
  if (converter === undefined || typeof converter[direction] !== 'function') {
    return Object.freeze({
      schema,
      jsonSchema: undefined,
      jsonSchemaUnavailable: `the ${schema['~standard'].vendor} schema does not implement Standard JSON Schema`,
    });
  }
  let jsonSchema: unknown;
  try {
    jsonSchema = converter[direction]({ target: 'draft-2020-12' });
  } catch (err) {
    return Object.freeze({
      schema,
      jsonSchema: undefined,
      jsonSchemaUnavailable: `it cannot be expressed in JSON Schema (${err instanceof Error ? err.message : String(err)})`,
    });
  }
  if (typeof jsonSchema !== 'object' || jsonSchema === null || Array.isArray(jsonSchema)) {
    return Object.freeze({ schema, jsonSchema: undefined, jsonSchemaUnavailable: 'its JSON Schema is not a JSON object' });
  }
  // Measured without recursion: a schema nested thousands of levels would overflow the stack of
  // whatever walks it recursively (the copy below, digests, the gateway's validator compiler).
  if (jsonDepth(jsonSchema, MAX_JSON_DEPTH) > MAX_JSON_DEPTH) {
    return Object.freeze({
      schema,
      jsonSchema: undefined,
      jsonSchemaUnavailable: `its JSON Schema is nested more than ${MAX_JSON_DEPTH} levels deep (CAIRN-1173)`,
    });
  }
  // A plain-JSON copy, frozen: what is catalogued and digested must not change afterwards.
  return Object.freeze({
    schema,
    jsonSchema: deepFreeze(JSON.parse(JSON.stringify(jsonSchema)) as JsonSchema),
    jsonSchemaUnavailable: undefined,
  });
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** A Standard Schema issue path as a JSON Pointer. */
export function issuePointer(path: StandardSchemaV1.Issue['path']): string {
  if (!path || path.length === 0) return '';
  return path
    .map((segment) => {
      const key = isNonNullObject(segment) ? segment.key : segment;
      return `/${String(key).replace(/~/g, '~0').replace(/\//g, '~1')}`;
    })
    .join('');
}

/**
 * Validates a value with a Standard Schema: the parsed value (defaults filled in, transforms
 * applied), or the issues with JSON Pointer paths.
 *
 * @example
 * ```ts
 * const result = await validateWithSchema(z.object({ amount: z.number().min(0) }), { amount: -1 });
 * if ('issues' in result) console.log(result.issues); // [{ path: '/amount', message: 'Too small: expected number to be >=0' }]
 * ```
 */
export async function validateWithSchema(
  schema: StandardSchemaV1,
  value: unknown,
): Promise<{ readonly value: unknown } | { readonly issues: readonly SchemaIssue[] }> {
  const result = await schema['~standard'].validate(value);
  if (result.issues === undefined) return { value: result.value };
  return { issues: result.issues.map((issue) => ({ path: issuePointer(issue.path), message: issue.message })) };
}
