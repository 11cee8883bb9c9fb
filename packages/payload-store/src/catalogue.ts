// The data plane's schema catalogue: the JSON Schemas each workflow version declares in code
// (input, output, signal bodies), written by workers at start and read by gateways to validate
// run inputs and signal bodies before they are stored. Developer-written metadata, not customer
// data: kept as plain JSON, keyed by a digest that is all the control plane ever learns.
import { createHash } from 'node:crypto';
import type pg from 'pg';
import canonicalize from 'canonicalize';
import { CairnError, ErrorCodes, schemaDigest } from '@cairn/common';

/** What a catalogued schema describes. */
export type SchemaKind = 'input' | 'output' | 'signal';

/** One schema of a workflow version. */
export interface CatalogueSchema {
  readonly kind: SchemaKind;
  /** The signal's name, for `kind: 'signal'`; undefined otherwise. */
  readonly signalName?: string | undefined;
  /** The JSON Schema (draft 2020-12). */
  readonly schema: Readonly<Record<string, unknown>>;
  /** `schemaDigest(schema)`. */
  readonly digest: string;
}

/** A workflow version and every schema it declares (possibly none). */
export interface CatalogueVersion {
  readonly name: string;
  readonly version: string;
  readonly schemas: readonly CatalogueSchema[];
}

/** How a write of a worker's versions went. */
export interface CatalogueWrite {
  /** Versions catalogued for the first time. */
  readonly added: readonly string[];
  /** Versions whose schemas were already catalogued, the same. */
  readonly unchanged: readonly string[];
  /** Versions whose changed schemas replaced the catalogued ones (only with `replaceChanged`). */
  readonly replaced: readonly string[];
}

/** The channel on which a catalogue change is announced; the payload is the workflow name. */
export const SCHEMA_CHANNEL = 'cairn_dp_schemas';

const label = (s: { kind: SchemaKind; signalName?: string | undefined }): string =>
  s.kind === 'signal' ? `the schema of signal "${s.signalName ?? ''}"` : `the ${s.kind} schema`;

const slot = (s: { kind: SchemaKind; signalName?: string | undefined }): string => `${s.kind}:${s.signalName ?? ''}`;

/** The digest of a version's whole schema list, to compare versions in one value. */
export function versionDigest(schemas: readonly CatalogueSchema[]): string {
  const list = schemas
    .map((s) => ({ kind: s.kind, signal: s.signalName ?? '', digest: s.digest }))
    .sort((a, b) => (slot(a) < slot(b) ? -1 : 1));
  return createHash('sha256')
    .update(canonicalize(list) ?? '[]', 'utf8')
    .digest('hex');
}

/** Checks a version's schemas before they are written: digests match, one per kind and signal. */
export function checkVersion(v: CatalogueVersion): void {
  const seen = new Set<string>();
  for (const s of v.schemas) {
    const where = `${label(s)} of workflow ${v.name}@${v.version}`;
    if ((s.kind === 'signal') !== (s.signalName !== undefined && s.signalName !== '')) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `${where}: a signal schema names its signal, other schemas name none.`);
    }
    if (seen.has(slot(s))) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `${where} is given twice.`);
    seen.add(slot(s));
    if (schemaDigest(s.schema) !== s.digest) {
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `${where}: the digest does not match the schema (compute it with schemaDigest).`);
    }
  }
}

/** What differs between the catalogued schemas of a version and the ones given now, in words. */
export function describeDifferences(stored: readonly CatalogueSchema[], given: readonly CatalogueSchema[]): string[] {
  const before = new Map(stored.map((s) => [slot(s), s]));
  const after = new Map(given.map((s) => [slot(s), s]));
  const out: string[] = [];
  for (const [key, s] of after) {
    const old = before.get(key);
    if (!old) out.push(`${label(s)} is new`);
    else if (old.digest !== s.digest) out.push(`${label(s)} changed (digest ${old.digest.slice(0, 12)}… → ${s.digest.slice(0, 12)}…)`);
  }
  for (const [key, s] of before) if (!after.has(key)) out.push(`${label(s)} was removed`);
  return out;
}

interface SchemaRow {
  workflow_version: string;
  kind: SchemaKind;
  signal_name: string;
  schema: Record<string, unknown>;
  digest: string;
}

const toSchema = (r: SchemaRow): CatalogueSchema => ({
  kind: r.kind,
  ...(r.kind === 'signal' ? { signalName: r.signal_name } : {}),
  schema: r.schema,
  digest: r.digest,
});

/**
 * Writes the versions in one transaction (under an advisory lock, so workers starting at once
 * agree): a version not catalogued yet is added with all its schemas; one catalogued with the same
 * schemas is left alone; one catalogued with different schemas is refused with a SCHEMA_CONFLICT
 * error naming each such version and what differs, and nothing is written, unless
 * `replaceChanged` (development) replaces its schemas. Each added or replaced workflow name is
 * announced on {@link SCHEMA_CHANNEL}, so gateways drop what they cached.
 */
export async function writeCatalogue(
  client: pg.PoolClient,
  versions: readonly CatalogueVersion[],
  replaceChanged: boolean,
): Promise<CatalogueWrite> {
  for (const v of versions) checkVersion(v);
  const added: string[] = [];
  const unchanged: string[] = [];
  const replaced: string[] = [];
  const conflicts: string[] = [];
  await client.query('BEGIN');
  try {
    await client.query("SELECT pg_advisory_xact_lock(hashtext('cairn_dp_schema_catalogue'))");
    const changedNames = new Set<string>();
    for (const v of versions) {
      const id = `${v.name}@${v.version}`;
      const digest = versionDigest(v.schemas);
      const existing = await client.query<{ schemas_digest: string }>(
        'SELECT schemas_digest FROM dp_workflow_versions WHERE workflow_name = $1 AND workflow_version = $2',
        [v.name, v.version],
      );
      const row = existing.rows[0];
      if (row && row.schemas_digest === digest) {
        unchanged.push(id);
        continue;
      }
      if (row) {
        const stored = await client.query<SchemaRow>(
          'SELECT workflow_version, kind, signal_name, schema, digest FROM dp_schemas WHERE workflow_name = $1 AND workflow_version = $2',
          [v.name, v.version],
        );
        const differences = describeDifferences(stored.rows.map(toSchema), v.schemas);
        if (!replaceChanged) {
          conflicts.push(`workflow ${id}: ${differences.join('; ')}`);
          continue;
        }
        await client.query('DELETE FROM dp_schemas WHERE workflow_name = $1 AND workflow_version = $2', [v.name, v.version]);
        await client.query(
          'UPDATE dp_workflow_versions SET schemas_digest = $3, catalogued_at = now() WHERE workflow_name = $1 AND workflow_version = $2',
          [v.name, v.version, digest],
        );
        replaced.push(id);
      } else {
        await client.query('INSERT INTO dp_workflow_versions (workflow_name, workflow_version, schemas_digest) VALUES ($1, $2, $3)', [
          v.name,
          v.version,
          digest,
        ]);
        added.push(id);
      }
      for (const s of v.schemas) {
        await client.query(
          'INSERT INTO dp_schemas (workflow_name, workflow_version, kind, signal_name, schema, digest) VALUES ($1, $2, $3, $4, $5, $6)',
          [v.name, v.version, s.kind, s.signalName ?? '', JSON.stringify(s.schema), s.digest],
        );
      }
      changedNames.add(v.name);
    }
    if (conflicts.length > 0) {
      throw new CairnError(
        ErrorCodes.SCHEMA_CONFLICT,
        `The schemas in code differ from those catalogued in the data plane for ${conflicts.join('. For ')}. ` +
          'A workflow version is immutable, and runs already started on it were checked against the catalogued schemas: ' +
          'give the changed workflow a new version in defineWorkflow.',
        { details: { conflicts } },
      );
    }
    for (const name of changedNames) await client.query('SELECT pg_notify($1, $2)', [SCHEMA_CHANNEL, name]);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
  return { added, unchanged, replaced };
}

/** The names of every catalogued workflow (each a worker of this data plane ran once). */
export async function readCatalogueNames(db: pg.Pool): Promise<string[]> {
  const result = await db.query<{ workflow_name: string }>(
    'SELECT DISTINCT workflow_name FROM dp_workflow_versions ORDER BY workflow_name',
  );
  return result.rows.map((r) => r.workflow_name);
}

/** The catalogued versions of one workflow, each with its schemas (empty list when it declares none). */
export async function readCatalogue(db: pg.Pool, workflowName: string): Promise<CatalogueVersion[]> {
  // The schema columns are null for a version without schemas (the LEFT JOIN found none).
  const result = await db.query<{ workflow_version: string } & { [K in keyof SchemaRow]: SchemaRow[K] | null }>(
    `SELECT v.workflow_version, s.kind, s.signal_name, s.schema, s.digest
       FROM dp_workflow_versions v
       LEFT JOIN dp_schemas s ON s.workflow_name = v.workflow_name AND s.workflow_version = v.workflow_version
      WHERE v.workflow_name = $1
      ORDER BY v.workflow_version, s.kind, s.signal_name`,
    [workflowName],
  );
  const byVersion = new Map<string, CatalogueSchema[]>();
  for (const row of result.rows) {
    const list = byVersion.get(row.workflow_version) ?? [];
    if (row.kind !== null) list.push(toSchema(row as SchemaRow));
    byVersion.set(row.workflow_version, list);
  }
  return [...byVersion].map(([version, schemas]) => ({ name: workflowName, version, schemas }));
}
