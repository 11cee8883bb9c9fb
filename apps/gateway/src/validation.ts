// Validation of run inputs and signal bodies against the data plane's schema catalogue, before
// anything is stored. The catalogue holds the JSON Schemas each workflow version declares in code
// (workers write it at start); validators are compiled once per schema digest, and what the
// catalogue says of a workflow is cached until a worker announces a change on the payload store's
// NOTIFY channel (or a short time limit passes, in case a notification was missed).
import * as ajv2020 from 'ajv/dist/2020.js';
import * as ajvFormats from 'ajv-formats';
import { CairnError, ErrorCodes, MAX_JSON_DEPTH, describeIssues, jsonDepth, type Logger, type SchemaIssue } from '@cairn/common';
import type { CatalogueSchema, CatalogueVersion, PayloadStore } from '@cairn/payload-store';
import { storeError } from './errors.js';

type ValidateFunction = ajv2020.ValidateFunction;
type ErrorObject = NonNullable<ValidateFunction['errors']>[number];

/** What the catalogue says of one workflow, cached. */
interface CachedWorkflow {
  readonly versions: readonly CatalogueVersion[];
  readonly loadedAt: number;
}

/** How long a workflow's catalogue entry is trusted without a notification. */
const CATALOGUE_TTL_MS = 30_000;
/** Compiled validators kept, by schema digest; past it the cache starts afresh. */
const MAX_VALIDATORS = 1000;
/** Issues reported at most per request. */
const MAX_ISSUES = 20;

const escapePointer = (key: string): string => key.replace(/~/g, '~0').replace(/\//g, '~1');

/** An ajv error as a {@link SchemaIssue}: the path of the field at fault and what was expected. */
export function toIssue(error: ErrorObject): SchemaIssue {
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required':
      return { path: `${error.instancePath}/${escapePointer(String(params['missingProperty']))}`, message: 'is required' };
    case 'additionalProperties':
    case 'unevaluatedProperties': {
      const extra = params['additionalProperty'] ?? params['unevaluatedProperty'];
      return { path: `${error.instancePath}/${escapePointer(String(extra))}`, message: 'is not allowed' };
    }
    case 'enum':
      return {
        path: error.instancePath,
        message: `must be one of ${(params['allowedValues'] as unknown[]).map((v) => JSON.stringify(v)).join(', ')}`,
      };
    case 'const':
      return { path: error.instancePath, message: `must be ${JSON.stringify(params['allowedValue'])}` };
    default:
      return { path: error.instancePath, message: error.message ?? `fails ${error.keyword}` };
  }
}

/** The version whose schema applies, or the whole set when every version has the same one. */
type Resolution = { readonly versions: readonly string[]; readonly schema: CatalogueSchema | undefined };

/**
 * Checks run inputs and signal bodies against the schema catalogue. A workflow with no catalogued
 * version, or a version or signal that declares no schema, is not checked here (the worker checks
 * what it can at run start).
 */
export class SchemaValidation {
  readonly #store: PayloadStore;
  readonly #log: Logger;
  readonly #ajv: ajv2020.Ajv2020;
  readonly #validators = new Map<string, ValidateFunction | null>();
  readonly #catalogue = new Map<string, CachedWorkflow>();
  #listening: Promise<(() => Promise<void>) | undefined> | undefined;
  #closed = false;

  constructor(store: PayloadStore, logger: Logger) {
    this.#store = store;
    this.#log = logger;
    // Schemas come from code through the catalogue: unknown keywords or formats must not stop
    // validation of what is known, so strict mode is off.
    this.#ajv = new ajv2020.Ajv2020({ allErrors: true, strict: false, logger: false });
    (ajvFormats.default as unknown as (ajv: ajv2020.Ajv2020) => void)(this.#ajv);
  }

  /**
   * Checks a run's input for `POST /v1/runs`. Returns the version to start the run on: the one
   * asked for, or '' to let the control plane pick when every catalogued version has the same
   * input schema, or the version `resolveVersion` names when they disagree (the run is then
   * started on it explicitly, so it gets the schema it was checked against). Throws
   * `[CAIRN-1116]` with the issues when the input does not match.
   */
  async checkStart(workflow: string, version: string, input: unknown, resolveVersion: () => Promise<string>): Promise<string> {
    const versions = await this.#versions(workflow);
    if (versions.length === 0) return version;
    let pinned = version;
    let resolution: Resolution;
    if (version !== '') {
      const entry = versions.find((v) => v.version === version);
      if (!entry) return version;
      resolution = { versions: [version], schema: schemaOf(entry, 'input') };
    } else {
      const agreed = agreement(versions, (v) => schemaOf(v, 'input'));
      if (agreed) resolution = agreed;
      else {
        pinned = await resolveVersion();
        const entry = versions.find((v) => v.version === pinned);
        if (!entry) return pinned;
        resolution = { versions: [pinned], schema: schemaOf(entry, 'input') };
      }
    }
    if (resolution.schema) {
      this.#check(resolution.schema, input, `input does not match the input schema of ${label(workflow, resolution.versions)}`, '/input');
    }
    return pinned;
  }

  /**
   * Checks a signal body for `POST /v1/runs/:id/signals/:name` against the schema the run's
   * workflow version declares for that signal. `runVersion` is asked only when the catalogued
   * versions of the run's workflow disagree about the signal. Throws `[CAIRN-1116]` with the
   * issues when the body does not match; an undeclared signal is not checked.
   */
  async checkSignal(runId: string, signalName: string, body: unknown, runVersion: () => Promise<string>): Promise<void> {
    let workflow: string | undefined;
    try {
      workflow = await this.#store.runWorkflowName(runId);
    } catch (err) {
      throw storeError(err);
    }
    if (workflow === undefined) return;
    const versions = await this.#versions(workflow);
    if (versions.length === 0) return;
    const pick = (v: CatalogueVersion): CatalogueSchema | undefined => schemaOf(v, 'signal', signalName);
    let resolution = agreement(versions, pick);
    if (!resolution) {
      const version = await runVersion();
      const entry = versions.find((v) => v.version === version);
      if (!entry) return;
      resolution = { versions: [version], schema: pick(entry) };
    }
    if (resolution.schema) {
      this.#check(
        resolution.schema,
        body,
        `the body of signal "${signalName}" does not match its schema in ${label(workflow, resolution.versions)}`,
        '',
      );
    }
  }

  /**
   * Whether the run's workflow declares the signal in code (a catalogued version lists it in its
   * `signals`), so that its name may cross to the control plane in clear.
   */
  async declaresSignal(runId: string, signalName: string): Promise<boolean> {
    let workflow: string | undefined;
    try {
      workflow = await this.#store.runWorkflowName(runId);
    } catch (err) {
      throw storeError(err);
    }
    if (workflow === undefined) return false;
    const versions = await this.#versions(workflow);
    return versions.some((v) => schemaOf(v, 'signal', signalName) !== undefined);
  }

  /** Stops listening for catalogue changes. */
  async close(): Promise<void> {
    this.#closed = true;
    const stop = await this.#listening?.catch(() => undefined);
    await stop?.();
  }

  /**
   * Throws [CAIRN-1116] when `value` does not match. The message names each bad field by its JSON
   * Pointer in the value; the error body's issues point into the request body (`at` is where the
   * value sits in it: `/input` for a run's input, '' for a signal body).
   */
  #check(schema: CatalogueSchema, value: unknown, subject: string, at: string): void {
    const validate = this.#validator(schema);
    if (!validate || validate(value)) return;
    const issues = (validate.errors ?? []).slice(0, MAX_ISSUES).map(toIssue);
    throw new CairnError(ErrorCodes.INVALID_INPUT, `${subject}: ${describeIssues(issues)}`, {
      details: { issues: issues.map((i) => ({ in: 'body', path: `${at}${i.path}`, message: i.message })) },
    });
  }

  #validator(schema: CatalogueSchema): ValidateFunction | null {
    const cached = this.#validators.get(schema.digest);
    if (cached !== undefined) return cached;
    let validate: ValidateFunction | null;
    // ajv compiles (and validates) recursively: a schema nested past the limit would exhaust the
    // stack, so it is measured without recursion first and refused with a clear error.
    const depth = jsonDepth(schema.schema, MAX_JSON_DEPTH);
    if (depth > MAX_JSON_DEPTH) {
      throw new CairnError(
        ErrorCodes.TOO_DEEP,
        `the JSON Schema this workflow declares is nested more than ${MAX_JSON_DEPTH} levels deep, so its inputs cannot be checked: ` +
          'declare a flatter schema in a new workflow version',
        { details: { maxDepth: MAX_JSON_DEPTH } },
      );
    }
    try {
      validate = this.#ajv.compile(withoutMetaSchema(schema.schema));
    } catch (err) {
      // The worker still checks it with the schema library itself.
      this.#log.warn({ digest: schema.digest, err }, 'a catalogued schema does not compile; not checked at the gateway');
      validate = null;
    }
    if (this.#validators.size >= MAX_VALIDATORS) {
      this.#validators.clear();
      this.#ajv.removeSchema();
    }
    this.#validators.set(schema.digest, validate);
    return validate;
  }

  async #versions(workflow: string): Promise<readonly CatalogueVersion[]> {
    // Listen before reading, so a change committed after the read is heard.
    await this.#listen();
    const cached = this.#catalogue.get(workflow);
    if (cached && Date.now() - cached.loadedAt < CATALOGUE_TTL_MS) return cached.versions;
    let versions: CatalogueVersion[];
    try {
      versions = await this.#store.catalogue(workflow);
    } catch (err) {
      throw storeError(err);
    }
    this.#catalogue.set(workflow, { versions, loadedAt: Date.now() });
    return versions;
  }

  /** Subscribes to catalogue changes on first use; a failure is retried on the next use. */
  async #listen(): Promise<void> {
    if (this.#closed) return;
    this.#listening ??= this.#store
      .onSchemasChanged(
        (workflow) => {
          this.#catalogue.delete(workflow);
        },
        // Changes made while the LISTEN connection was down were not heard.
        () => this.#catalogue.clear(),
      )
      .catch((err: unknown) => {
        this.#log.warn({ err }, 'could not listen for schema catalogue changes; relying on the cache time limit');
        this.#listening = undefined;
        return undefined;
      });
    await this.#listening;
  }
}

function schemaOf(version: CatalogueVersion, kind: 'input' | 'signal', signalName?: string): CatalogueSchema | undefined {
  return version.schemas.find((s) => s.kind === kind && (kind !== 'signal' || s.signalName === signalName));
}

/** The schema every version has (or the absence of one in every version), or undefined when they differ. */
function agreement(
  versions: readonly CatalogueVersion[],
  pick: (v: CatalogueVersion) => CatalogueSchema | undefined,
): Resolution | undefined {
  const schemas = versions.map(pick);
  const digests = new Set(schemas.map((s) => s?.digest ?? ''));
  if (digests.size !== 1) return undefined;
  return { versions: versions.map((v) => v.version), schema: schemas[0] };
}

function label(workflow: string, versions: readonly string[]): string {
  return versions.length === 1 ? `${workflow}@${versions[0]}` : `${workflow} (versions ${versions.join(', ')})`;
}

/** ajv knows draft 2020-12 already; a `$schema` naming it (as zod writes) needs no lookup. */
function withoutMetaSchema(schema: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}
