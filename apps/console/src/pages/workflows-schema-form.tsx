// A form generated from a JSON Schema (draft 2020-12, as the workers catalogue them) with
// react-jsonschema-form, checked in this browser before it is sent. Loaded on demand by the run
// form (React.lazy), so the runs list and run pages do not carry rjsf.
//
// The check uses @cfworker/json-schema, which interprets schemas: Ajv (rjsf's usual validator)
// compiles each schema to a function with `new Function`, which the console's content security
// policy (script-src 'self', no 'unsafe-eval') rightly refuses.
import type { ReactNode } from 'react';
import Form from '@rjsf/core';
import {
  createErrorHandler,
  toErrorSchema,
  unwrapErrorHandler,
  validationDataMerge,
  type CustomValidator,
  type ErrorSchema,
  type ErrorTransformer,
  type RJSFSchema,
  type RJSFValidationError,
  type UiSchema,
  type ValidationData,
  type ValidatorType,
} from '@rjsf/utils';
import { Validator, type OutputUnit } from '@cfworker/json-schema';

/** Keywords that only say that something below them failed: the failure itself is reported too. */
const WRAPPERS = new Set([
  'properties',
  'patternProperties',
  'additionalProperties',
  'unevaluatedProperties',
  'items',
  'prefixItems',
  'additionalItems',
  'unevaluatedItems',
  'allOf',
  '$ref',
  '$recursiveRef',
  'if',
  'dependentSchemas',
  'dependencies',
]);

const decodePointer = (segment: string): string => decodeURIComponent(segment).replace(/~1/g, '/').replace(/~0/g, '~');

/** The value at a JSON Pointer (`#/properties/amount/minimum`) in a schema. */
function at(schema: unknown, pointer: string): unknown {
  let node = schema;
  for (const segment of pointer.replace(/^#\/?/, '').split('/')) {
    if (segment === '') continue;
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<string, unknown>)[decodePointer(segment)];
  }
  return node;
}

/** The failure said the way the gateway says it (Ajv's words), so both read alike. */
function message(unit: OutputUnit, schema: unknown): { path: string[]; text: string } {
  const path = unit.instanceLocation
    .replace(/^#\/?/, '')
    .split('/')
    .filter((s) => s !== '')
    .map(decodePointer);
  const value = at(schema, unit.keywordLocation);
  const shown = JSON.stringify(value);
  switch (unit.keyword) {
    case 'required': {
      const missing = /required property "(.*)"/.exec(unit.error)?.[1];
      return missing === undefined ? { path, text: unit.error } : { path: [...path, missing], text: 'is required' };
    }
    case 'false':
      return { path, text: 'is not allowed' };
    case 'type':
      return { path, text: `must be ${Array.isArray(value) ? value.join(', ') : String(value)}` };
    case 'minimum':
      return { path, text: `must be >= ${shown}` };
    case 'maximum':
      return { path, text: `must be <= ${shown}` };
    case 'exclusiveMinimum':
      return { path, text: `must be > ${shown}` };
    case 'exclusiveMaximum':
      return { path, text: `must be < ${shown}` };
    case 'multipleOf':
      return { path, text: `must be a multiple of ${shown}` };
    case 'minLength':
      return { path, text: `must NOT have fewer than ${shown} characters` };
    case 'maxLength':
      return { path, text: `must NOT have more than ${shown} characters` };
    case 'pattern':
      return { path, text: `must match pattern ${shown}` };
    case 'format':
      return { path, text: `must match format ${shown}` };
    case 'enum':
      return { path, text: `must be one of ${Array.isArray(value) ? value.map((v) => JSON.stringify(v)).join(', ') : shown}` };
    case 'const':
      return { path, text: `must be ${shown}` };
    case 'minItems':
      return { path, text: `must NOT have fewer than ${shown} items` };
    case 'maxItems':
      return { path, text: `must NOT have more than ${shown} items` };
    case 'uniqueItems':
      return { path, text: 'must NOT have duplicate items' };
    case 'anyOf':
      return { path, text: 'must match a schema in anyOf' };
    case 'oneOf':
      return { path, text: 'must match exactly one schema in oneOf' };
    default:
      return { path, text: unit.error };
  }
}

/** A property path as rjsf writes it: `.amount`, `.items.0.id`. */
const property = (path: readonly string[]): string => (path.length === 0 ? '' : `.${path.join('.')}`);

/**
 * rjsf's validator interface over @cfworker/json-schema: validation of the form's data, and the
 * matching of anyOf/oneOf options (isValid) against the root schema's definitions.
 */
export class InterpretingValidator implements ValidatorType {
  #cache = new WeakMap<object, Validator>();

  #validator(schema: RJSFSchema, rootSchema?: RJSFSchema): Validator {
    const key = rootSchema === undefined || rootSchema === schema ? schema : { schema, rootSchema };
    if (key === schema) {
      const cached = this.#cache.get(schema);
      if (cached !== undefined) return cached;
    }
    // The validator annotates the schema it is given: it gets a copy. A subschema takes the root's
    // definitions along, so its local references resolve.
    const copy = structuredClone(schema) as Record<string, unknown>;
    if (rootSchema !== undefined && rootSchema !== schema) {
      if (rootSchema.$defs !== undefined) copy['$defs'] = { ...structuredClone(rootSchema.$defs), ...(copy['$defs'] ?? {}) };
      if (rootSchema.definitions !== undefined) {
        copy['definitions'] = { ...structuredClone(rootSchema.definitions), ...(copy['definitions'] ?? {}) };
      }
    }
    const validator = new Validator(copy, '2020-12', false);
    if (key === schema) this.#cache.set(schema, validator);
    return validator;
  }

  validateFormData(
    formData: unknown,
    schema: RJSFSchema,
    customValidate?: CustomValidator,
    transformErrors?: ErrorTransformer,
    uiSchema?: UiSchema,
  ): ValidationData<unknown> {
    const result = this.#validator(schema).validate(formData ?? {});
    let errors: RJSFValidationError[] = result.errors
      .filter((unit) => !WRAPPERS.has(unit.keyword))
      .map((unit) => {
        const { path, text } = message(unit, schema);
        const name = unit.keyword;
        return {
          name,
          property: property(path),
          message: text,
          stack: `${property(path)} ${text}`.trim(),
          schemaPath: unit.keywordLocation,
        };
      });
    if (transformErrors !== undefined) errors = transformErrors(errors, uiSchema);
    const data: ValidationData<unknown> = { errors, errorSchema: toErrorSchema(errors) };
    if (customValidate === undefined) return data;
    const custom = unwrapErrorHandler(customValidate(formData, createErrorHandler(formData), uiSchema));
    return validationDataMerge(data, custom);
  }

  isValid(schema: RJSFSchema, formData: unknown, rootSchema: RJSFSchema): boolean {
    return this.#validator(schema, rootSchema).validate(formData).valid;
  }

  // The signature of rjsf's ValidatorType, which callers instantiate with their own Result.
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-parameters
  rawValidation<Result = OutputUnit>(schema: RJSFSchema, formData?: unknown): { errors?: Result[]; validationError?: Error } {
    try {
      const result = this.#validator(schema).validate(formData);
      return { errors: result.errors as Result[] };
    } catch (err) {
      return { validationError: err as Error };
    }
  }

  reset(): void {
    this.#cache = new WeakMap();
  }
}

const validator = new InterpretingValidator();

export interface SchemaFormProps {
  readonly schema: Record<string, unknown>;
  readonly value: unknown;
  readonly onChange: (value: unknown) => void;
  readonly onSubmit: (value: unknown) => void;
  /** Problems the gateway found, placed at their fields. */
  readonly serverErrors: ErrorSchema | undefined;
  readonly disabled: boolean;
  readonly submitLabel: string;
}

export default function SchemaForm(props: SchemaFormProps): ReactNode {
  return (
    <Form
      schema={props.schema}
      formData={props.value}
      validator={validator}
      idPrefix="input"
      onChange={(e) => props.onChange(e.formData)}
      onSubmit={(e) => props.onSubmit(e.formData)}
      {...(props.serverErrors === undefined ? {} : { extraErrors: props.serverErrors })}
      showErrorList="top"
      noHtml5Validate
      focusOnFirstError
      disabled={props.disabled}
      className="schema-form"
    >
      <div className="actions">
        <button type="submit" disabled={props.disabled}>
          {props.submitLabel}
        </button>
      </div>
    </Form>
  );
}
