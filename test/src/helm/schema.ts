// Builds a chart's values.schema.json from its values.yaml, so the description and the type of a
// value are written once, beside the value. Each key carries a `# -- description` comment and may
// add constraints with a `# @schema {...}` line (JSON merged into the property's schema). Types
// come from the defaults; every object the chart defines is closed (`additionalProperties: false`),
// so a misspelt value is refused instead of silently ignored. Free-form values (annotations,
// affinity, Kubernetes objects passed through) say what they accept in their `@schema` line.
import { readFileSync } from 'node:fs';
import * as prettier from 'prettier';
import { isMap, isScalar, isSeq, parseDocument, type YAMLMap } from 'yaml';

export type JsonSchema = Record<string, unknown>;

const quantity = { type: ['string', 'number'], pattern: '^[0-9.]+[A-Za-z]*$' };

/** Definitions shared by both charts' schemas. */
export const sharedDefs: Record<string, JsonSchema> = {
  cidr: {
    type: 'string',
    description: 'An IPv4 or IPv6 address block in CIDR notation.',
    pattern: '^([0-9]{1,3}\\.){3}[0-9]{1,3}/[0-9]{1,2}$|^[0-9A-Fa-f:]+/[0-9]{1,3}$',
  },
  resources: {
    type: 'object',
    description: 'Container resources: requests and limits of cpu, memory and ephemeral-storage.',
    additionalProperties: false,
    properties: {
      requests: {
        type: 'object',
        description: 'What the scheduler reserves.',
        additionalProperties: false,
        properties: { cpu: quantity, memory: quantity, 'ephemeral-storage': quantity },
      },
      limits: {
        type: 'object',
        description: 'The most the container may use.',
        additionalProperties: false,
        properties: { cpu: quantity, memory: quantity, 'ephemeral-storage': quantity },
      },
    },
  },
  probe: {
    type: 'object',
    description: 'A probe: whether it is on, and its timing.',
    additionalProperties: false,
    required: ['enabled'],
    properties: {
      enabled: { type: 'boolean', description: 'Turn the probe on.' },
      initialDelaySeconds: { type: 'integer', minimum: 0, description: 'Seconds before the first probe.' },
      periodSeconds: { type: 'integer', minimum: 1, description: 'Seconds between probes.' },
      timeoutSeconds: { type: 'integer', minimum: 1, description: 'Seconds a probe may take.' },
      failureThreshold: { type: 'integer', minimum: 1, description: 'Failures in a row before the probe fails.' },
    },
  },
  seccompProfile: {
    type: 'object',
    description: 'The seccomp profile.',
    additionalProperties: false,
    required: ['type'],
    properties: {
      type: { enum: ['RuntimeDefault', 'Localhost', 'Unconfined'], description: 'Profile type.' },
      localhostProfile: { type: 'string', description: 'Profile file, for type Localhost.' },
    },
  },
  podSecurityContext: {
    type: 'object',
    description: 'A pod security context.',
    additionalProperties: false,
    properties: {
      runAsNonRoot: { type: 'boolean', description: 'Refuse to start containers as root.' },
      runAsUser: { type: 'integer', minimum: 0, description: 'User ID of the containers.' },
      runAsGroup: { type: 'integer', minimum: 0, description: 'Group ID of the containers.' },
      fsGroup: { type: 'integer', minimum: 0, description: 'Group owning mounted volumes.' },
      fsGroupChangePolicy: { enum: ['OnRootMismatch', 'Always'], description: 'When volume ownership is changed.' },
      supplementalGroups: { type: 'array', items: { type: 'integer' }, description: 'Extra group IDs.' },
      seccompProfile: { $ref: '#/$defs/seccompProfile' },
    },
  },
  containerSecurityContext: {
    type: 'object',
    description: 'A container security context.',
    additionalProperties: false,
    properties: {
      runAsNonRoot: { type: 'boolean', description: 'Refuse to start as root.' },
      runAsUser: { type: 'integer', minimum: 0, description: 'User ID.' },
      runAsGroup: { type: 'integer', minimum: 0, description: 'Group ID.' },
      allowPrivilegeEscalation: { type: 'boolean', description: 'Allow gaining privileges (setuid).' },
      readOnlyRootFilesystem: { type: 'boolean', description: 'Mount the root filesystem read-only.' },
      privileged: { type: 'boolean', description: 'Run privileged.' },
      capabilities: {
        type: 'object',
        description: 'Linux capabilities added and dropped.',
        additionalProperties: false,
        properties: {
          add: { type: 'array', items: { type: 'string' }, description: 'Capabilities added.' },
          drop: { type: 'array', items: { type: 'string' }, description: 'Capabilities dropped.' },
        },
      },
      seccompProfile: { $ref: '#/$defs/seccompProfile' },
    },
  },
};

/** A problem in values.yaml that keeps the schema from being generated. */
export class SchemaSourceError extends Error {}

function annotations(comment: string | null | undefined, path: string): { description: string; extra: JsonSchema } {
  const description: string[] = [];
  let extra: JsonSchema = {};
  for (const raw of (comment ?? '').split('\n')) {
    const line = raw.trim();
    if (line.startsWith('-- ')) description.push(line.slice(3));
    else if (line.startsWith('@schema ')) {
      try {
        extra = { ...extra, ...(JSON.parse(line.slice('@schema '.length)) as JsonSchema) };
      } catch (err) {
        throw new SchemaSourceError(`${path}: the @schema line is not JSON (${(err as Error).message})`);
      }
    } else if (description.length > 0 && line !== '' && !line.startsWith('@')) description.push(line);
  }
  if (description.length === 0) throw new SchemaSourceError(`${path}: no "# -- description" comment`);
  return { description: description.join(' '), extra };
}

function typeOf(value: unknown, path: string): string {
  if (typeof value === 'string') return 'string';
  if (typeof value === 'boolean') return 'boolean';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  throw new SchemaSourceError(`${path}: cannot infer a type from ${JSON.stringify(value)}; give one in @schema`);
}

function objectSchema(map: YAMLMap, path: string): JsonSchema {
  const properties: Record<string, JsonSchema> = {};
  for (const [index, item] of map.items.entries()) {
    if (!isScalar(item.key)) throw new SchemaSourceError(`${path}: a key is not a plain scalar`);
    const key = String(item.key.value);
    const where = path === '' ? key : `${path}.${key}`;
    // The parser attaches the comment above a map's first key to the map itself.
    const comment = item.key.commentBefore ?? (index === 0 ? map.commentBefore : undefined);
    const { description, extra } = annotations(comment, where);
    properties[key] = propertySchema(item.value, where, description, extra);
  }
  return { type: 'object', additionalProperties: false, properties };
}

function propertySchema(node: unknown, path: string, description: string, extra: JsonSchema): JsonSchema {
  if ('$ref' in extra) return { description, ...extra };
  // Helm hands a parent chart's `global` values down to its subcharts, so `global` must accept keys
  // this chart does not use; the ones it does use are still described and typed.
  if (path === 'global' && isMap(node)) return { description, ...objectSchema(node, path), additionalProperties: true };
  if (isMap(node) && node.items.length > 0 && !('additionalProperties' in extra)) {
    return { description, ...objectSchema(node, path), ...extra };
  }
  if (isMap(node)) {
    if (!('additionalProperties' in extra)) throw new SchemaSourceError(`${path}: an empty object needs "additionalProperties" in @schema`);
    return { type: 'object', description, ...extra };
  }
  if (isSeq(node)) {
    if (!('items' in extra)) throw new SchemaSourceError(`${path}: a list needs "items" in @schema`);
    return { type: 'array', description, ...extra };
  }
  const value = isScalar(node) ? node.value : node;
  return { type: typeOf(value, path), description, ...extra };
}

/** The values.schema.json of a chart, from its values.yaml text. */
export function schemaFromValues(valuesYaml: string, title: string): JsonSchema {
  const doc = parseDocument(valuesYaml);
  if (doc.errors.length > 0) throw new SchemaSourceError(`values.yaml does not parse: ${doc.errors[0]!.message}`);
  if (!isMap(doc.contents)) throw new SchemaSourceError('values.yaml is not a map');
  // The yaml parser attaches a comment that directly precedes the first key to the document when
  // the file starts with a comment block; give it back to that key.
  const first = doc.contents.items[0];
  if (first && isScalar(first.key) && !first.key.commentBefore && doc.commentBefore) {
    const paragraphs = doc.commentBefore.split(/\n\s*\n/);
    first.key.commentBefore = paragraphs[paragraphs.length - 1] ?? '';
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title,
    ...objectSchema(doc.contents, ''),
    $defs: sharedDefs,
  };
}

/**
 * The schema text a chart folder's values.yaml generates (what values.schema.json must hold),
 * formatted by the repository's Prettier settings so `pnpm format:check` agrees with it.
 */
export async function schemaTextFor(chartDir: string, title: string): Promise<string> {
  const path = `${chartDir}/values.schema.json`;
  const options = (await prettier.resolveConfig(path)) ?? {};
  return prettier.format(JSON.stringify(schemaFromValues(readFileSync(`${chartDir}/values.yaml`, 'utf8'), title)), {
    ...options,
    filepath: path,
  });
}
