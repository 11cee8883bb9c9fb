// A deterministic instance of a JSON schema: the default structured-output reply when no rule
// matches a request with `response_format: {type: 'json_schema'}`, so a client's schema validation
// passes without a script. Covers what the AI SDK's zod-to-JSON-schema emits; anything exotic
// (patterns, `not`) gets a plain placeholder.

type Schema = Record<string, unknown>;

const MAX_DEPTH = 12;

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function resolveRef(root: Schema, ref: string): Schema | undefined {
  if (!ref.startsWith('#')) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(1).split('/').filter(Boolean)) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isSchema(node)) return undefined;
    node = node[key];
  }
  return isSchema(node) ? node : undefined;
}

function stringFor(schema: Schema): string {
  const format = schema['format'];
  let value =
    format === 'date-time'
      ? '1970-01-01T00:00:00.000Z'
      : format === 'date'
        ? '1970-01-01'
        : format === 'time'
          ? '00:00:00'
          : format === 'email'
            ? 'mock@example.com'
            : format === 'uri' || format === 'url'
              ? 'https://example.com/'
              : format === 'uuid'
                ? '00000000-0000-4000-8000-000000000000'
                : 'mock';
  const min = typeof schema['minLength'] === 'number' ? schema['minLength'] : 0;
  const max = typeof schema['maxLength'] === 'number' ? schema['maxLength'] : Infinity;
  while (value.length < min) value += 'x';
  if (value.length > max) value = value.slice(0, max);
  return value;
}

function numberFor(schema: Schema, integer: boolean): number {
  const min = typeof schema['minimum'] === 'number' ? schema['minimum'] : undefined;
  const exclusiveMin = typeof schema['exclusiveMinimum'] === 'number' ? schema['exclusiveMinimum'] : undefined;
  const max = typeof schema['maximum'] === 'number' ? schema['maximum'] : undefined;
  let value = 0;
  if (min !== undefined) value = integer ? Math.ceil(min) : min;
  else if (exclusiveMin !== undefined) value = integer ? Math.floor(exclusiveMin) + 1 : exclusiveMin + 1;
  else if (max !== undefined && max < 0) value = integer ? Math.floor(max) : max;
  return value;
}

function example(schema: unknown, root: Schema, depth: number): unknown {
  if (!isSchema(schema) || depth > MAX_DEPTH) return null;
  if (typeof schema['$ref'] === 'string') return example(resolveRef(root, schema['$ref']), root, depth + 1);
  if ('const' in schema) return schema['const'];
  if (Array.isArray(schema['enum']) && schema['enum'].length > 0) return schema['enum'][0] as unknown;
  if ('default' in schema) return schema['default'];
  for (const key of ['anyOf', 'oneOf'] as const) {
    const options: unknown = schema[key];
    if (Array.isArray(options) && options.length > 0) {
      const branches = options as unknown[];
      // Prefer a non-null branch: `nullable()` fields then get a real value.
      const chosen = branches.find((o) => !(isSchema(o) && o['type'] === 'null')) ?? branches[0];
      return example(chosen, root, depth + 1);
    }
  }
  if (Array.isArray(schema['allOf'])) {
    const merged: Record<string, unknown> = {};
    for (const part of schema['allOf']) {
      const value = example(part, root, depth + 1);
      if (isSchema(value)) Object.assign(merged, value);
    }
    return merged;
  }
  let type = schema['type'];
  if (Array.isArray(type)) type = type.find((t) => t !== 'null') ?? type[0];
  if (type === undefined && isSchema(schema['properties'])) type = 'object';
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const properties = isSchema(schema['properties']) ? schema['properties'] : {};
      for (const [name, property] of Object.entries(properties)) out[name] = example(property, root, depth + 1);
      return out;
    }
    case 'array': {
      const count = typeof schema['minItems'] === 'number' ? schema['minItems'] : 0;
      if (Array.isArray(schema['prefixItems'])) return schema['prefixItems'].map((item) => example(item, root, depth + 1));
      return Array.from({ length: count }, () => example(schema['items'], root, depth + 1));
    }
    case 'string':
      return stringFor(schema);
    case 'integer':
      return numberFor(schema, true);
    case 'number':
      return numberFor(schema, false);
    case 'boolean':
      return false;
    case 'null':
      return null;
    default:
      return {};
  }
}

/** A deterministic value that validates against common JSON schemas (all properties filled in). */
export function exampleFromJsonSchema(schema: unknown): unknown {
  return example(schema, isSchema(schema) ? schema : {}, 0);
}
