import { randomBytes } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import {
  CairnError,
  ErrorCodes,
  isId,
  newId,
  journalEntryHash,
  journalGenesis,
  plainDigest,
  type ExportedRun,
  type JournalChainContent,
  type JournalChainHead,
  type JournalChainProblem,
  type JournalChainReport,
  type Logger,
} from '@cairn/common';
import { CURRENT_DIGEST_VERSION, type DigestVersion, type Hasher, type KeyRing } from './crypto.js';
import { keyUsage, reencrypt, type KeyUsage, type ReencryptOptions, type ReencryptResult } from './reencrypt.js';
import { type Sealed } from './crypto.js';
import { decodeJson, encodeJson } from './json.js';
import { PgListener, type ListenerState } from './listener.js';
import { connectionPool } from './pool.js';
import {
  SCHEMA_CHANNEL,
  readCatalogue,
  readCatalogueNames,
  writeCatalogue,
  type CatalogueVersion,
  type CatalogueWrite,
} from './catalogue.js';
import { verifyKeyChecks, type KeyCheckResult } from './key-checks.js';
import { migrations } from './migrations.js';
import { isStreamEvent, packPieces, splitStreamEvents, unpackStreamEvents, type SequencedStreamEvent, type StreamEvent } from './stream.js';

/** The Postgres NOTIFY channel a replay check request is announced on (payload: the workflow name). */
export const REPLAY_CHECK_CHANNEL = 'cairn_dp_replay_checks';

/**
 * Where a replay check is: `pending` (nobody claimed it), `running` (a worker replays it), `done`
 * (the result is the replay's outcome), `failed` (the result says why the worker could not replay)
 * or `expired` (no worker running the version claimed it in time).
 */
export type ReplayCheckStatus = 'pending' | 'running' | 'done' | 'failed' | 'expired';

/** A request to replay a run's journal against a version of its workflow, and its answer. */
export interface ReplayCheck {
  readonly checkId: string;
  readonly runId: string;
  readonly workflowName: string;
  readonly workflowVersion: string;
  readonly status: ReplayCheckStatus;
  readonly requestedAt: number;
  /** The worker that claimed it. */
  readonly claimedBy: string | undefined;
  readonly finishedAt: number | undefined;
  /** For `done` and `failed`: what the worker stored (opened). */
  readonly result: unknown;
}

interface ReplayCheckRow {
  check_id: string;
  run_id: string;
  workflow_name: string;
  workflow_version: string;
  status: ReplayCheckStatus;
  requested_at: Date;
  claimed_by: string | null;
  finished_at: Date | null;
  key_id: string | null;
  result: Buffer | null;
}

/** How long a replay check is kept after it was requested. */
const REPLAY_CHECK_KEPT_MS = 60 * 60 * 1000;

/** The kind of durable call a journal entry records. */
export type JournalKind = 'step' | 'sleep' | 'signal' | 'now' | 'model' | 'child';
/** The state of a journal entry. `completed`, `failed` and `timed_out` are final. */
export type JournalStatus = 'completed' | 'failed' | 'retrying' | 'waiting' | 'timed_out';
/** The state of a run in the data plane. */
export type StoredRunStatus = 'open' | 'completed' | 'failed' | 'cancelled';

/** An error as the data plane keeps it: message and stack never leave the data plane. */
export interface ErrorInfo {
  /** The error's class name, e.g. `TypeError` or `TerminalError`. */
  readonly name: string;
  readonly message: string;
  readonly stack?: string | undefined;
  /** The `CAIRN-NNNN` code when the error is a Cairn error. */
  readonly code?: string | undefined;
}

/** A journal entry to write. */
export interface JournalWrite {
  readonly position: number;
  readonly kind: JournalKind;
  readonly name: string;
  readonly keyDigest?: string | undefined;
  readonly status: JournalStatus;
  readonly attempt?: number | undefined;
  /**
   * The recorded result (JSON) of a completed entry; for an entry that is not final, state the
   * call needs to resume (a model call's retry state). Sealed either way.
   */
  readonly value?: unknown;
  /** The error of a failed or retrying attempt; stored under a new error ref. */
  readonly error?: ErrorInfo | undefined;
  /**
   * A model call's transcript, written once with its final entry into `dp_transcripts` (sealed).
   * A transcript already stored for the position is kept.
   */
  readonly transcript?: unknown;
  /** Wake time of a sleep, deadline of a signal wait, or the next attempt of a retrying step (ms). */
  readonly dueAt?: number | undefined;
  readonly startedAt: number;
  readonly endedAt?: number | undefined;
}

/** A journal entry as read back. */
export interface JournalEntry {
  readonly position: number;
  readonly kind: JournalKind;
  readonly name: string;
  readonly keyDigest: string | undefined;
  readonly status: JournalStatus;
  readonly attempt: number;
  /** The recorded result of a completed entry (for a signal wait: the signal body). */
  readonly value: unknown;
  readonly outputSize: number;
  readonly errorRef: string | undefined;
  readonly error: ErrorInfo | undefined;
  readonly signalId: string | undefined;
  readonly dueAt: number | undefined;
  readonly startedAt: number;
  readonly endedAt: number | undefined;
  readonly epoch: number;
}

/** A journal entry as JSON documents carry it (the gateway's journal view, a replay's input): times as ISO strings, absent parts null. */
export interface JournalEntryDocument {
  readonly position: number;
  readonly kind: JournalKind;
  readonly name: string;
  readonly keyDigest: string | null;
  readonly status: JournalStatus;
  readonly attempt: number;
  readonly epoch: number;
  readonly value?: unknown;
  /** The error as recorded (a plain copy, with whatever flags it was stored with). */
  readonly error?: ErrorInfo & Readonly<Record<string, unknown>>;
  readonly signalId: string | null;
  readonly outputSize: number;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly dueAt: string | null;
}

const isoOrNull = (ms: number | undefined): string | null => (ms === undefined ? null : new Date(ms).toISOString());

/** A journal entry as a JSON document: what `GET /v1/runs/:id/journal` answers and a replay check replays. */
export function journalEntryDocument(e: JournalEntry): JournalEntryDocument {
  return {
    position: e.position,
    kind: e.kind,
    name: e.name,
    keyDigest: e.keyDigest ?? null,
    status: e.status,
    attempt: e.attempt,
    epoch: e.epoch,
    ...(e.value === undefined ? {} : { value: e.value }),
    ...(e.error ? { error: { ...e.error } } : {}),
    signalId: e.signalId ?? null,
    outputSize: e.outputSize,
    startedAt: new Date(e.startedAt).toISOString(),
    endedAt: isoOrNull(e.endedAt),
    dueAt: isoOrNull(e.dueAt),
  };
}

/** A run as the data plane keeps it. */
export interface StoredRun {
  readonly runId: string;
  readonly workflowName: string;
  readonly status: StoredRunStatus;
  readonly epoch: number;
  /** 32 random bytes from which ctx.random() and ctx.uuid() derive their values. */
  readonly seed: Buffer;
  readonly input: unknown;
  readonly inputSize: number;
  readonly output: unknown;
  readonly outputSize: number | undefined;
  readonly errorRef: string | undefined;
  readonly idempotencyDigest: string | undefined;
  readonly createdAt: number;
  readonly endedAt: number | undefined;
  /** For a forked run: the source run and the journal position it was forked at. */
  readonly forkedFrom: { readonly runId: string; readonly position: number } | undefined;
  /** How the run's idempotency, step and approval keys are digested (Hasher.forRun). */
  readonly digestVersion: DigestVersion;
  /** The HMAC key they are digested with ('' for the key without an ID). */
  readonly hmacKeyId: string;
}

/** A stored error with where it happened. */
export interface StoredError extends ErrorInfo {
  readonly errorRef: string;
  readonly runId: string;
  readonly position: number | undefined;
  readonly attempt: number | undefined;
  readonly createdAt: number;
}

/** A model call's recorded transcript. */
export interface StoredTranscript {
  readonly runId: string;
  readonly position: number;
  readonly transcript: unknown;
  /** Size of the transcript's JSON in bytes. */
  readonly size: number;
  readonly createdAt: number;
}

/** A payload stored for schedules. */
export interface StoredPayload {
  readonly payloadId: string;
  readonly value: unknown;
  /** Size of the payload's JSON in bytes. */
  readonly size: number;
  readonly createdAt: number;
}

/** A consumed signal. */
export interface TakenSignal {
  readonly signalId: string;
  readonly body: unknown;
  readonly size: number;
}

/** Thrown when a write is refused because another lease epoch owns the run now. */
export class FencedError extends CairnError {
  constructor(runId: string, epoch: number, current: number | undefined) {
    super(
      ErrorCodes.FENCED,
      current === undefined
        ? `Journal write for run ${runId} at epoch ${epoch} refused: the run is closed or unknown.`
        : `Journal write for run ${runId} at epoch ${epoch} refused: the run is now held under epoch ${current}. This worker lost its lease and must stop the run.`,
      { details: { runId, epoch, current } },
    );
    this.name = 'FencedError';
  }
}

export interface PayloadStoreOptions {
  /** postgres:// URL of the data plane's own database. */
  readonly connectionString: string;
  /** Encryption keys (CAIRN_DP_ENCRYPTION_KEYS). */
  readonly keys: KeyRing;
  /** Maximum pool size (default 10). */
  readonly poolMax?: number;
  /** Shown in pg_stat_activity. */
  readonly applicationName?: string;
  /** Where the LISTEN connection's losses and recoveries are logged. */
  readonly logger?: Logger;
}

interface RunRow {
  run_id: string;
  workflow_name: string;
  status: StoredRunStatus;
  epoch: number;
  seed: Buffer;
  input_key_id: string;
  input: Buffer;
  input_size: number;
  output_key_id: string | null;
  output: Buffer | null;
  output_size: number | null;
  error_ref: string | null;
  idempotency_digest: string | null;
  created_at: Date;
  ended_at: Date | null;
  forked_from: string | null;
  fork_position: number | null;
  digest_version: number;
  hmac_key_id: string;
  chain_salt: Buffer;
  chain_entries: number;
  chain_head: string | null;
}

interface JournalRow {
  position: number;
  kind: JournalKind;
  name: string;
  key_digest: string | null;
  status: JournalStatus;
  attempt: number;
  key_id: string | null;
  payload: Buffer | null;
  output_size: number;
  error_ref: string | null;
  signal_id: string | null;
  due_at: Date | null;
  started_at: Date;
  ended_at: Date | null;
  epoch: number;
  err_key_id: string | null;
  err_payload: Buffer | null;
  sig_key_id: string | null;
  sig_body: Buffer | null;
}

interface ChainRow {
  position: number;
  kind: JournalKind;
  name: string;
  key_digest: string | null;
  status: JournalStatus;
  attempt: number;
  key_id: string | null;
  payload: Buffer | null;
  output_size: number;
  error_ref: string | null;
  signal_id: string | null;
  due_at: Date | null;
  started_at: Date;
  ended_at: Date | null;
  chain_hash: string | null;
  transcript_pruned_digest: string | null;
  err_key_id: string | null;
  err_payload: Buffer | null;
  sig_key_id: string | null;
  sig_body: Buffer | null;
  tr_key_id: string | null;
  tr_payload: Buffer | null;
}

const FINAL: ReadonlySet<JournalStatus> = new Set(['completed', 'failed', 'timed_out']);

/**
 * How far this process knows a run's journal hash chain to reach, so that a worker seals each
 * entry as it writes it (one statement, no read back) instead of re-reading and re-opening the
 * run's entries when it suspends or ends. `entries`/`head` mirror dp_runs.chain_entries/chain_head
 * (the head before the first entry is the genesis); `written` is one past the highest position this
 * process knows to exist. Only ever a shortcut: every inline seal is a compare-and-set on
 * dp_runs.chain_entries, and whatever it cannot seal inline `sealJournalChain` seals from the
 * database as before.
 */
interface ChainCursor {
  readonly epoch: number;
  entries: number;
  head: string;
  written: number;
  /** An inline seal of this run is in flight: other writes meanwhile go without one. */
  busy: boolean;
}

/** Runs whose chain cursor a process keeps at most (the oldest is forgotten first). */
const CHAIN_CURSORS_MAX = 10_000;

/** A run {@link PayloadStore.orphanRunCandidates} listed, with where the next page starts. */
export interface OrphanCandidate {
  readonly runId: string;
  /** When it was created, as Postgres writes it (to the microsecond): the next page starts after it. */
  readonly createdAt: string;
}

/** A signal {@link PayloadStore.unnotifiedSignals} listed: the control plane was never told of it. */
export interface UnnotifiedSignal {
  readonly signalId: string;
  readonly runId: string;
  /** The signal's name as the caller sent it; it stays in the data plane (only its digest crosses). */
  readonly name: string;
  /** When it was stored, as Postgres writes it (to the microsecond): the next page starts after it. */
  readonly receivedAt: string;
  /** Whether a wait consumed it already. */
  readonly consumed: boolean;
}

/**
 * A stored run (`r`, created more than $1 milliseconds ago by the database's clock, so a process
 * whose clock is off cannot make a new run look old) that no worker ever took: still open, at the first lease's
 * epoch (acquire raises it only for a later lease), not a fork (forks are created by the worker
 * that took them), and without a journal entry.
 */
const ORPHAN_CONDITION = `r.status = 'open' AND r.created_at < now() - make_interval(secs => $1::float8 / 1000) AND r.epoch = 1 AND r.forked_from IS NULL
  AND NOT EXISTS (SELECT 1 FROM dp_journal j WHERE j.run_id = r.run_id)`;

/** A run's journal in position order, with each entry's error and signal body ($1: the run ID). */
const JOURNAL_SELECT = `SELECT j.*, e.key_id AS err_key_id, e.payload AS err_payload, s.key_id AS sig_key_id, s.body AS sig_body
  FROM dp_journal j
  LEFT JOIN dp_errors e ON e.error_ref = j.error_ref
  LEFT JOIN dp_signals s ON s.signal_id = j.signal_id
 WHERE j.run_id = $1
 ORDER BY j.position`;

const ms = (d: Date | null): number | undefined => (d === null ? undefined : d.getTime());
const date = (n: number | undefined): Date | null => (n === undefined ? null : new Date(n));

/**
 * $1–$14 of a one-entry journal write: run, epoch, position, kind, name, key digest, status,
 * attempt, sealed value (key ID, blob, size), due, started and ended times.
 */
type EntryValues = [
  string,
  number,
  number,
  JournalKind,
  string,
  string | null,
  JournalStatus,
  number,
  string | null,
  Buffer | null,
  number,
  Date | null,
  Date,
  Date | null,
];
function entryValues(runId: string, epoch: number, e: JournalWrite, sealed: (Sealed & { size: number }) | undefined): EntryValues {
  return [
    runId,
    epoch,
    e.position,
    e.kind,
    e.name,
    e.keyDigest ?? null,
    e.status,
    e.attempt ?? 1,
    sealed?.keyId ?? null,
    sealed?.blob ?? null,
    sealed?.size ?? 0,
    date(e.dueAt),
    new Date(e.startedAt),
    date(e.endedAt),
  ];
}

/**
 * The data plane's payload store on Postgres: run inputs, the journal of durable calls, outputs,
 * errors and signal bodies, each sealed with AES-256-GCM. It is the authority for step results;
 * every journal write is fenced by the run's lease epoch.
 */
export class PayloadStore {
  readonly #pool: pg.Pool;
  readonly #keys: KeyRing;
  /** The one LISTEN connection shared by every `on…` subscription of this store. */
  readonly #listener: PgListener;
  /** Key IDs that reproduced (or recorded) the store's key check in {@link verifyKeys}. */
  readonly #verifiedKeyIds = new Set<string>();
  /** Chain cursors of the runs this process acquired (see {@link ChainCursor}). */
  readonly #chains = new Map<string, ChainCursor>();
  #decryptFailures = 0;

  /** The runs this process keeps a journal chain cursor for (a run leaves it when it suspends or ends). */
  chainCursorRunIds(): string[] {
    return [...this.#chains.keys()];
  }

  private constructor(options: PayloadStoreOptions) {
    this.#keys = options.keys;
    this.#listener = new PgListener({
      connectionString: options.connectionString,
      applicationName: `${options.applicationName ?? 'cairn-data-plane'}-listener`,
      logger: options.logger,
    });
    this.#pool = connectionPool({
      connectionString: options.connectionString,
      max: options.poolMax ?? 10,
      application_name: options.applicationName ?? 'cairn-data-plane',
    });
  }

  /** Connects (lazily: the first query opens the pool). */
  static connect(options: PayloadStoreOptions): PayloadStore {
    return new PayloadStore(options);
  }

  get keys(): KeyRing {
    return this.#keys;
  }

  async close(): Promise<void> {
    await this.#listener.close();
    await this.#pool.end();
  }

  /** Whether the shared LISTEN connection is open, and how often it came back after a loss. */
  get listenerState(): ListenerState {
    return this.#listener.state;
  }

  /**
   * Values this store could not open since start (an unknown key ID, a key that does not fit, a
   * damaged value), for the `cairn_dp_decrypt_failures_total` metric.
   */
  get decryptFailures(): number {
    return this.#decryptFailures;
  }

  /** Checks the database answers (for readiness probes). */
  async ping(): Promise<void> {
    await this.#pool.query('SELECT 1');
  }

  /** How many sealed values each key ID holds (and how many predate per-run keys): see reencrypt.ts. */
  async keyUsage(): Promise<KeyUsage[]> {
    return keyUsage(this.#pool);
  }

  /**
   * Open runs per HMAC key ID: a run digests its keys with the HMAC key it started with until it
   * ends, so an old HMAC key can be removed once no open run needs it.
   */
  async hmacKeyUsage(): Promise<Array<{ keyId: string; openRuns: number }>> {
    const r = await this.#pool.query<{ key_id: string; n: string }>(
      "SELECT hmac_key_id AS key_id, count(*) AS n FROM dp_runs WHERE status = 'open' GROUP BY 1 ORDER BY 1",
    );
    return r.rows.map((row) => ({ keyId: row.key_id, openRuns: Number(row.n) }));
  }

  /**
   * Re-seals, in batches, every value not sealed with the active key in the current format, so an
   * old key can be retired; safe while workers and gateways run (see reencrypt.ts).
   */
  async reencrypt(options: ReencryptOptions = {}): Promise<ReencryptResult> {
    return reencrypt(this.#pool, this.#keys, options);
  }

  /** Applies pending migrations; safe to run from several processes at once. */
  async migrate(): Promise<number[]> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT pg_advisory_xact_lock(hashtext('cairn_dp_migrations'))");
      // Nothing to apply: no DDL at all, so a service role that may not change the schema starts.
      const exists = await client.query<{ found: boolean }>("SELECT to_regclass('dp_schema_migrations') IS NOT NULL AS found");
      if (!exists.rows[0]?.found) {
        await client.query(
          'CREATE TABLE dp_schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
        );
      }
      const done = new Set(
        (await client.query<{ version: number }>('SELECT version FROM dp_schema_migrations')).rows.map((r) => r.version),
      );
      if (migrations.every((m) => done.has(m.version))) {
        await client.query('COMMIT');
        return [];
      }
      const applied: number[] = [];
      // In numeric order whatever the order of the list (parts of a release may append out of
      // order); gaps are fine, each version is applied once.
      for (const m of [...migrations].sort((x, y) => x.version - y.version)) {
        if (done.has(m.version)) continue;
        await client.query(m.sql);
        await client.query('INSERT INTO dp_schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
        applied.push(m.version);
      }
      await client.query('COMMIT');
      return applied;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      if ((err as { code?: unknown }).code === '42501') {
        const pending = migrations.map((m) => m.version);
        throw new CairnError(
          ErrorCodes.DATABASE_NOT_MIGRATED,
          `The payload store needs migrations (up to ${pending[pending.length - 1]}) and this process's database role may not change the schema: ` +
            'run `cairn-gateway migrate` with the owner role (CAIRN_DP_MIGRATION_DATABASE_URL, and CAIRN_DP_SERVICE_ROLE naming this role), then start again.',
          { cause: err },
        );
      }
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Grants `role` what the running worker and gateway need and nothing more: SELECT and DML on the
   * payload store's tables (SELECT only on `dp_schema_migrations`), the use of its sequences. It
   * owns nothing, so it cannot ALTER, DROP or TRUNCATE a table or apply a migration. Run after
   * every migration, as the owner (new tables get their grants); idempotent. Refuses a role that
   * would make this void: a superuser, the owner of the tables, or a member of it.
   */
  async grantServiceRole(role: string): Promise<void> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT pg_advisory_xact_lock(hashtext('cairn_dp_migrations'))");
      const found = await client.query<{
        superuser: boolean;
        owner: boolean;
        schema: string;
        database: string;
        connect: boolean;
        usage: boolean;
      }>(
        `SELECT r.rolsuper AS superuser, pg_has_role(r.oid, c.relowner, 'USAGE') AS owner,
                current_schema() AS schema, current_database() AS database,
                has_database_privilege(r.oid, current_database(), 'CONNECT') AS connect,
                has_schema_privilege(r.oid, current_schema(), 'USAGE') AS usage
           FROM pg_roles r, pg_class c WHERE r.rolname = $1 AND c.oid = 'dp_runs'::regclass`,
        [role],
      );
      const info = found.rows[0];
      if (!info) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `CAIRN_DP_SERVICE_ROLE names the role ${role}, which does not exist: create it first (CREATE ROLE ${role} LOGIN PASSWORD '…'), then migrate again.`,
        );
      }
      if (info.superuser || info.owner) {
        throw new CairnError(
          ErrorCodes.INVALID_CONFIG,
          `CAIRN_DP_SERVICE_ROLE names the role ${role}, which ${info.superuser ? 'is a superuser' : 'owns the payload store tables (or is a member of their owner)'}: ` +
            'it could alter, drop or truncate them. Use a separate login role that owns nothing (docs/install.md, database roles).',
        );
      }
      const r = pg.escapeIdentifier(role);
      const schema = pg.escapeIdentifier(info.schema);
      const tables = (
        await client.query<{ name: string }>(
          "SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'p') AND c.relname LIKE 'dp\\_%' ORDER BY 1",
        )
      ).rows.map((t) => pg.escapeIdentifier(t.name));
      const sequences = (
        await client.query<{ name: string }>(
          "SELECT c.relname AS name FROM pg_class c WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'S' AND c.relname LIKE 'dp\\_%' ORDER BY 1",
        )
      ).rows.map((t) => pg.escapeIdentifier(t.name));
      const statements = [
        ...(info.connect ? [] : [`GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(info.database)} TO ${r}`]),
        ...(info.usage ? [] : [`GRANT USAGE ON SCHEMA ${schema} TO ${r}`]),
        `REVOKE ALL ON ${tables.join(', ')} FROM ${r}`,
        `GRANT SELECT, INSERT, UPDATE, DELETE ON ${tables.join(', ')} TO ${r}`,
        `REVOKE INSERT, UPDATE, DELETE ON dp_schema_migrations FROM ${r}`,
        ...(sequences.length === 0
          ? []
          : [`REVOKE ALL ON ${sequences.join(', ')} FROM ${r}`, `GRANT USAGE, SELECT ON ${sequences.join(', ')} TO ${r}`]),
      ];
      for (const statement of statements) await client.query(statement);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Compares this process's keys with the store's key checks, recording a check for each key seen
   * for the first time (see the package README): the encryption keys of this store's ring and, when
   * given, the HMAC key. Call it after `migrate()` and before anything is sealed or digested; throws
   * `CAIRN-3006` naming every key ID that does not match, so a process with a wrong key stops before
   * it writes anything with it. Returns which keys were recorded or matched, and the key IDs other
   * processes recorded that this ring lacks.
   */
  async verifyKeys(hasher?: Hasher): Promise<KeyCheckResult> {
    const result = await verifyKeyChecks(this.#pool, this.#keys, hasher);
    for (const keyId of this.#keys.keyIds) this.#verifiedKeyIds.add(keyId);
    return result;
  }

  #seal(value: unknown, aad: string, what: string): Sealed & { size: number } {
    const plain = encodeJson(value, what);
    return { ...this.#keys.seal(plain, aad), size: plain.length };
  }

  #open(keyId: string, blob: Buffer, aad: string): unknown {
    return decodeJson(this.#openBytes({ keyId, blob }, aad));
  }

  /**
   * Opens a sealed value. A value that fails authentication under a key that passed
   * {@link verifyKeys} was damaged in the database (the key is the right one); the error says so
   * (`details.keyVerified`), so a worker can tell damage from a misconfigured key.
   */
  #openBytes(sealed: Sealed, aad: string): Buffer {
    try {
      return this.#keys.open(sealed, aad);
    } catch (err) {
      if (err instanceof CairnError && (err.code === ErrorCodes.DECRYPT_FAILED || err.code === ErrorCodes.UNKNOWN_KEY))
        this.#decryptFailures++;
      if (err instanceof CairnError && err.code === ErrorCodes.DECRYPT_FAILED && this.#verifiedKeyIds.has(sealed.keyId)) {
        throw new CairnError(
          ErrorCodes.DECRYPT_FAILED,
          `Encrypted value failed authentication although key ${sealed.keyId} matches the payload store's key check: the stored value was altered or belongs elsewhere.`,
          { cause: err, details: { keyId: sealed.keyId, keyVerified: true } },
        );
      }
      throw err;
    }
  }

  /** Stores a new run's input. */
  async createRun(
    run: {
      runId: string;
      workflowName: string;
      input: unknown;
      idempotencyDigest?: string | undefined;
      /** The HMAC key the run's keys are digested with (Hasher.activeKeyId; default ''). */
      hmacKeyId?: string | undefined;
    },
    options: { idempotent?: boolean } = {},
  ): Promise<{ inputSize: number }> {
    const sealed = this.#seal(run.input, `${run.runId}:input`, 'The run input');
    // idempotent (child runs): a second create of the same run ID keeps the first and succeeds.
    // The fence starts at epoch 1, the control plane's first lease of every run it starts: no
    // earlier epoch exists to fence out, so that lease's acquire has nothing to write.
    // A repeat create of a run that never started (a parent replaying its child call, about to ask
    // the control plane again) moves created_at on: the orphan sweep deletes such runs only when
    // they are old and re-checks the age as it deletes, so it cannot remove a row whose start is
    // being prepared again (deleteOrphanRuns).
    await this.#pool.query(
      `INSERT INTO dp_runs (run_id, workflow_name, seed, input_key_id, input, input_size, idempotency_digest, digest_version, hmac_key_id, epoch)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1)${
         options.idempotent
           ? ` ON CONFLICT (run_id) DO UPDATE SET created_at = now()
                WHERE dp_runs.status = 'open' AND dp_runs.epoch = 1
                  AND NOT EXISTS (SELECT 1 FROM dp_journal j WHERE j.run_id = dp_runs.run_id)`
           : ''
       }`,
      [
        run.runId,
        run.workflowName,
        randomBytes(32),
        sealed.keyId,
        sealed.blob,
        sealed.size,
        run.idempotencyDigest ?? null,
        CURRENT_DIGEST_VERSION,
        run.hmacKeyId ?? '',
      ],
    );
    return { inputSize: sealed.size };
  }

  /** Stores a payload for schedules, sealed; returns its new opaque ID and its size in bytes. */
  async putPayload(value: unknown): Promise<{ payloadId: string; size: number }> {
    const payloadId = newId();
    const sealed = this.#seal(value, `payload:${payloadId}`, 'The payload');
    await this.#pool.query('INSERT INTO dp_payloads (payload_id, key_id, payload, size) VALUES ($1, $2, $3, $4)', [
      payloadId,
      sealed.keyId,
      sealed.blob,
      sealed.size,
    ]);
    return { payloadId, size: sealed.size };
  }

  /** Reads a stored payload, or undefined when there is none with this ID. */
  async getPayload(payloadId: string): Promise<StoredPayload | undefined> {
    const r = await this.#pool.query<{ payload_id: string; key_id: string; payload: Buffer; size: number; created_at: Date }>(
      'SELECT payload_id, key_id, payload, size, created_at FROM dp_payloads WHERE payload_id = $1',
      [payloadId],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      payloadId: row.payload_id,
      value: this.#open(row.key_id, row.payload, `payload:${row.payload_id}`),
      size: row.size,
      createdAt: row.created_at.getTime(),
    };
  }

  /** Deletes a stored payload; false when there was none. Runs already created from it keep their input. */
  async deletePayload(payloadId: string): Promise<boolean> {
    const r = await this.#pool.query('DELETE FROM dp_payloads WHERE payload_id = $1', [payloadId]);
    return r.rowCount === 1;
  }

  /**
   * Creates the input of a run a schedule fired, once: from the stored payload `payloadId`, or
   * `null` without one. A run that already exists is left exactly as it is (`exists`), so a
   * re-dispatch neither duplicates nor changes its input. When the payload is gone, the run is
   * created already failed with `missing` as its error (`missing`), so the message stays here and
   * the worker reports the failure like any other.
   */
  async createRunFromPayload(
    run: { runId: string; workflowName: string; payloadId: string | undefined; hmacKeyId?: string | undefined },
    missing: ErrorInfo,
  ): Promise<'created' | 'exists' | 'missing'> {
    const existing = await this.#pool.query('SELECT 1 FROM dp_runs WHERE run_id = $1', [run.runId]);
    if (existing.rowCount === 1) return 'exists';
    let input: unknown = null;
    if (run.payloadId !== undefined) {
      const payload = await this.getPayload(run.payloadId);
      if (!payload) {
        const ref = newId();
        const sealedInput = this.#seal(null, `${run.runId}:input`, 'The run input');
        const sealedError = this.#seal(missing, `${run.runId}:error:${ref}`, 'An error');
        const r = await this.#pool.query(
          `WITH ins AS (
             INSERT INTO dp_runs (run_id, workflow_name, status, seed, input_key_id, input, input_size, error_ref, ended_at)
             VALUES ($1, $2, 'failed', $3, $4, $5, $6, $7, now())
             ON CONFLICT (run_id) DO NOTHING RETURNING run_id
           )
           INSERT INTO dp_errors (error_ref, run_id, key_id, payload) SELECT $7, run_id, $8, $9 FROM ins`,
          [
            run.runId,
            run.workflowName,
            randomBytes(32),
            sealedInput.keyId,
            sealedInput.blob,
            sealedInput.size,
            ref,
            sealedError.keyId,
            sealedError.blob,
          ],
        );
        return r.rowCount === 1 ? 'missing' : 'exists';
      }
      input = payload.value;
    }
    const sealed = this.#seal(input, `${run.runId}:input`, 'The run input');
    const r = await this.#pool.query(
      `INSERT INTO dp_runs (run_id, workflow_name, seed, input_key_id, input, input_size, digest_version, hmac_key_id)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (run_id) DO NOTHING`,
      [run.runId, run.workflowName, randomBytes(32), sealed.keyId, sealed.blob, sealed.size, CURRENT_DIGEST_VERSION, run.hmacKeyId ?? ''],
    );
    return r.rowCount === 1 ? 'created' : 'exists';
  }

  /** The workflow name of a stored run, without opening its input; undefined for an unknown run. */
  async runWorkflowName(runId: string): Promise<string | undefined> {
    const r = await this.#pool.query<{ workflow_name: string }>('SELECT workflow_name FROM dp_runs WHERE run_id = $1', [runId]);
    return r.rows[0]?.workflow_name;
  }

  /**
   * What a stored run's keys are digested with (its workflow and digest version, for
   * `Hasher.forRun`), without opening its input; undefined for an unknown run.
   */
  async runDigestScope(runId: string): Promise<{ workflowName: string; digestVersion: DigestVersion; hmacKeyId: string } | undefined> {
    const r = await this.#pool.query<{ workflow_name: string; digest_version: number; hmac_key_id: string }>(
      'SELECT workflow_name, digest_version, hmac_key_id FROM dp_runs WHERE run_id = $1',
      [runId],
    );
    const row = r.rows[0];
    return row
      ? { workflowName: row.workflow_name, digestVersion: row.digest_version === 2 ? 2 : 1, hmacKeyId: row.hmac_key_id }
      : undefined;
  }

  /**
   * Catalogues the JSON Schemas of workflow versions (see `writeCatalogue`): new versions are
   * added, unchanged ones left alone, and a version whose schemas differ from the catalogued ones
   * is refused with SCHEMA_CONFLICT (nothing is written) unless `replaceChanged`. Gateways are told
   * on the `cairn_dp_schemas` channel.
   */
  async catalogueSchemas(versions: readonly CatalogueVersion[], options: { replaceChanged?: boolean } = {}): Promise<CatalogueWrite> {
    const client = await this.#pool.connect();
    try {
      return await writeCatalogue(client, versions, options.replaceChanged ?? false);
    } finally {
      client.release();
    }
  }

  /** Every catalogued version of a workflow with its schemas. */
  async catalogue(workflowName: string): Promise<CatalogueVersion[]> {
    return readCatalogue(this.#pool, workflowName);
  }

  /**
   * The names of every catalogued workflow: what a gateway in strict residency mode resolves
   * workflow-name digests against (`strictNameDigest(hasher, 'workflow', name)`).
   */
  async catalogueNames(): Promise<string[]> {
    return readCatalogueNames(this.#pool);
  }

  /**
   * Calls `listener(workflowName)` whenever a worker catalogues new or changed schemas of that
   * workflow. Reconnects after a connection loss and then calls `onGap`: changes meanwhile were
   * not heard. Returns a function that stops listening.
   */
  async onSchemasChanged(listener: (workflowName: string) => void, onGap?: () => void): Promise<() => Promise<void>> {
    return this.#listener.subscribe(SCHEMA_CHANNEL, { notification: listener, gap: onGap });
  }

  /** Deletes a run and everything stored for it (used when a start turned out to be a duplicate). */
  async deleteRun(runId: string): Promise<void> {
    await this.#pool.query('DELETE FROM dp_runs WHERE run_id = $1', [runId]);
  }

  /**
   * Runs that look like starts that never became runs: open, created more than `olderThanMs` ago,
   * never taken past the first lease's epoch, not forked, and with no journal entry (so no worker
   * ever wrote for them). Oldest first, at most `limit`, after `after` (the last one of the
   * previous page) when given. Whether the control plane knows them is for the caller to ask; only
   * {@link deleteOrphanRuns} deletes.
   */
  async orphanRunCandidates(olderThanMs: number, limit: number, after?: OrphanCandidate): Promise<OrphanCandidate[]> {
    const r = await this.#pool.query<{ run_id: string; created_at: string }>(
      `SELECT r.run_id, r.created_at::text AS created_at FROM dp_runs r
        WHERE ${ORPHAN_CONDITION} AND ($3::timestamptz IS NULL OR (r.created_at, r.run_id) > ($3, $4::uuid))
        ORDER BY r.created_at, r.run_id LIMIT $2`,
      [olderThanMs, limit, after?.createdAt ?? null, after?.runId ?? null],
    );
    return r.rows.map((row) => ({ runId: row.run_id, createdAt: row.created_at }));
  }

  /**
   * Deletes, with everything stored for them, those of `runIds` that still match
   * {@link orphanRunCandidates} at the moment of deleting (a row a worker wrote to, or whose start
   * is being prepared again, since it was listed is kept). Returns how many were deleted.
   */
  async deleteOrphanRuns(runIds: readonly string[], olderThanMs: number): Promise<number> {
    if (runIds.length === 0) return 0;
    const r = await this.#pool.query(`DELETE FROM dp_runs r WHERE r.run_id = ANY($2::uuid[]) AND ${ORPHAN_CONDITION}`, [
      olderThanMs,
      runIds,
    ]);
    return r.rowCount ?? 0;
  }

  #toRun(row: RunRow): StoredRun {
    return {
      runId: row.run_id,
      workflowName: row.workflow_name,
      status: row.status,
      epoch: row.epoch,
      seed: row.seed,
      input: this.#open(row.input_key_id, row.input, `${row.run_id}:input`),
      inputSize: row.input_size,
      output: row.output && row.output_key_id ? this.#open(row.output_key_id, row.output, `${row.run_id}:output`) : undefined,
      outputSize: row.output_size ?? undefined,
      errorRef: row.error_ref ?? undefined,
      idempotencyDigest: row.idempotency_digest ?? undefined,
      createdAt: row.created_at.getTime(),
      endedAt: ms(row.ended_at),
      forkedFrom: row.forked_from === null ? undefined : { runId: row.forked_from, position: row.fork_position ?? 0 },
      digestVersion: row.digest_version === 2 ? 2 : 1,
      hmacKeyId: row.hmac_key_id,
    };
  }

  /**
   * Creates a forked run from a source run of this data plane, once, in one transaction: the
   * source's input and seed, and its journal entries at positions below `position` (with their
   * errors, consumed signal bodies and model transcripts), each re-sealed for the new run and
   * written under `epoch`. With `inputPayloadId` the fork's input is that stored payload instead
   * of the source's; when the payload is gone, the run is created already failed with `missing`
   * as its error and nothing is copied (`inputMissing`), so the message stays here and the worker
   * reports the failure like any other. When the run exists already (an earlier dispatch created
   * it) nothing is copied again. Throws FencedError when a newer epoch holds the run, RUN_NOT_FOUND
   * when the source is not in this payload store, CONFLICT when the run exists but is not that fork.
   */
  async forkRun(
    runId: string,
    epoch: number,
    source: { runId: string; position: number; inputPayloadId?: string | undefined },
    missing?: ErrorInfo,
  ): Promise<{ created: boolean; copied: number; inputMissing: boolean }> {
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const src = await client.query<RunRow>('SELECT * FROM dp_runs WHERE run_id = $1 FOR SHARE', [source.runId]);
      const from = src.rows[0];
      if (!from) {
        throw new CairnError(
          ErrorCodes.RUN_NOT_FOUND,
          `Run ${runId} is a fork of run ${source.runId}, which is not in this data plane's payload store: a run can only be forked within its data plane.`,
        );
      }
      let value: unknown = null;
      let inputMissing = false;
      if (source.inputPayloadId === undefined) {
        value = this.#open(from.input_key_id, from.input, `${from.run_id}:input`);
      } else {
        const payload = await client.query<{ key_id: string; payload: Buffer }>(
          'SELECT key_id, payload FROM dp_payloads WHERE payload_id = $1',
          [source.inputPayloadId],
        );
        const row = payload.rows[0];
        if (row) value = this.#open(row.key_id, row.payload, `payload:${source.inputPayloadId}`);
        else inputMissing = true;
      }
      const input = this.#seal(value, `${runId}:input`, 'The run input');
      // A fork whose new input is gone is stored failed, with its error beside it.
      const errorRef = inputMissing ? newId() : null;
      const inserted = await client.query(
        // The fork keeps its source's digest version: the journal keys it copies were made with it.
        `INSERT INTO dp_runs (run_id, workflow_name, seed, input_key_id, input, input_size, epoch, forked_from, fork_position, digest_version,
                              hmac_key_id, status, error_ref, ended_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, CASE WHEN $13::uuid IS NULL THEN NULL ELSE now() END)
         ON CONFLICT (run_id) DO NOTHING`,
        [
          runId,
          from.workflow_name,
          from.seed,
          input.keyId,
          input.blob,
          input.size,
          epoch,
          source.runId,
          source.position,
          from.digest_version,
          from.hmac_key_id,
          inputMissing ? 'failed' : 'open',
          errorRef,
        ],
      );
      if (inserted.rowCount !== 1) {
        const cur = await client.query<{ epoch: number; forked_from: string | null; fork_position: number | null }>(
          'SELECT epoch, forked_from, fork_position FROM dp_runs WHERE run_id = $1',
          [runId],
        );
        const row = cur.rows[0]!;
        await client.query('ROLLBACK');
        if (row.forked_from !== source.runId || row.fork_position !== source.position) {
          throw new CairnError(
            ErrorCodes.CONFLICT,
            `Run ${runId} already exists in this data plane and is not a fork of run ${source.runId} at position ${source.position}.`,
          );
        }
        if (row.epoch > epoch) throw new FencedError(runId, epoch, row.epoch);
        return { created: false, copied: 0, inputMissing: false };
      }
      if (errorRef !== null) {
        const error = missing ?? {
          name: 'CairnError',
          code: ErrorCodes.PAYLOAD_NOT_FOUND,
          message: `The input payload ${source.inputPayloadId ?? ''} of forked run ${runId} is not in this data plane's payload store.`,
        };
        const sealed = this.#seal(error, `${runId}:error:${errorRef}`, 'An error');
        await client.query('INSERT INTO dp_errors (error_ref, run_id, key_id, payload) VALUES ($1, $2, $3, $4)', [
          errorRef,
          runId,
          sealed.keyId,
          sealed.blob,
        ]);
        await client.query('COMMIT');
        return { created: true, copied: 0, inputMissing: true };
      }
      const rows = await client.query<
        JournalRow & { err_position: number | null; err_attempt: number | null; sig_name: string | null; sig_size: number | null }
      >(
        `SELECT j.*, e.key_id AS err_key_id, e.payload AS err_payload, e.position AS err_position, e.attempt AS err_attempt,
                s.key_id AS sig_key_id, s.body AS sig_body, s.name AS sig_name, s.size AS sig_size
           FROM dp_journal j
           LEFT JOIN dp_errors e ON e.error_ref = j.error_ref
           LEFT JOIN dp_signals s ON s.signal_id = j.signal_id
          WHERE j.run_id = $1 AND j.position < $2
          ORDER BY j.position`,
        [source.runId, source.position],
      );
      for (const row of rows.rows) {
        const sealed =
          row.payload && row.key_id
            ? this.#keys.seal(
                this.#openBytes({ keyId: row.key_id, blob: row.payload }, `${source.runId}:journal:${row.position}`),
                `${runId}:journal:${row.position}`,
              )
            : null;
        let errorRef: string | null = null;
        if (row.error_ref && row.err_key_id && row.err_payload) {
          errorRef = newId();
          const plain = this.#openBytes({ keyId: row.err_key_id, blob: row.err_payload }, `${source.runId}:error:${row.error_ref}`);
          const e = this.#keys.seal(plain, `${runId}:error:${errorRef}`);
          await client.query(
            'INSERT INTO dp_errors (error_ref, run_id, position, attempt, key_id, payload) VALUES ($1, $2, $3, $4, $5, $6)',
            [errorRef, runId, row.err_position, row.err_attempt, e.keyId, e.blob],
          );
        }
        let signalId: string | null = null;
        if (row.signal_id && row.sig_key_id && row.sig_body) {
          signalId = newId();
          const plain = this.#openBytes({ keyId: row.sig_key_id, blob: row.sig_body }, `${source.runId}:signal:${row.signal_id}`);
          const b = this.#keys.seal(plain, `${runId}:signal:${signalId}`);
          await client.query(
            'INSERT INTO dp_signals (signal_id, run_id, name, key_id, body, size, consumed_position) VALUES ($1, $2, $3, $4, $5, $6, $7)',
            [signalId, runId, row.sig_name, b.keyId, b.blob, row.sig_size ?? 0, row.position],
          );
        }
        await client.query(
          `INSERT INTO dp_journal (run_id, position, kind, name, key_digest, status, attempt, key_id, payload, output_size, error_ref,
                                   signal_id, due_at, started_at, ended_at, epoch)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
          [
            runId,
            row.position,
            row.kind,
            row.name,
            row.key_digest,
            row.status,
            row.attempt,
            sealed?.keyId ?? null,
            sealed?.blob ?? null,
            row.output_size,
            errorRef,
            signalId,
            row.due_at,
            row.started_at,
            row.ended_at,
            epoch,
          ],
        );
      }
      const transcripts = await client.query<{ position: number; key_id: string; payload: Buffer; size: number }>(
        'SELECT position, key_id, payload, size FROM dp_transcripts WHERE run_id = $1 AND position < $2',
        [source.runId, source.position],
      );
      for (const t of transcripts.rows) {
        const plain = this.#openBytes({ keyId: t.key_id, blob: t.payload }, `${source.runId}:transcript:${t.position}`);
        const s = this.#keys.seal(plain, `${runId}:transcript:${t.position}`);
        await client.query('INSERT INTO dp_transcripts (run_id, position, key_id, payload, size) VALUES ($1, $2, $3, $4, $5)', [
          runId,
          t.position,
          s.keyId,
          s.blob,
          t.size,
        ]);
      }
      await client.query('COMMIT');
      return { created: true, copied: rows.rows.length, inputMissing: false };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  // ---- the journal's hash chain ----------------------------------------------------------------

  /**
   * Extends the run's journal hash chain over the entries that became final since it was last
   * sealed (in position order, stopping at the first entry that is not final or a gap; once the
   * run has ended, over every entry, since nothing can change them any more), stores
   * each entry's hash and the head, and returns the head. Any process may call it; callers of one
   * run are serialised by the run's row lock. Entries that are final never change, so a sealed
   * hash stays valid unless the database is edited.
   */
  async sealJournalChain(runId: string): Promise<JournalChainHead> {
    // Every entry this process wrote for the run was sealed as it was written: nothing to read.
    const cursor = this.#chains.get(runId);
    this.#chains.delete(runId);
    if (cursor && !cursor.busy && cursor.written === cursor.entries) {
      return { entries: cursor.entries, head: cursor.entries === 0 ? null : cursor.head };
    }
    const client = await this.#pool.connect();
    try {
      await client.query('BEGIN');
      const r = await client.query<{ chain_salt: Buffer; chain_entries: number; chain_head: string | null; status: StoredRunStatus }>(
        'SELECT chain_salt, chain_entries, chain_head, status FROM dp_runs WHERE run_id = $1 FOR UPDATE',
        [runId],
      );
      const run = r.rows[0];
      if (!run) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} is not in this data plane's payload store.`);
      const rows = await this.#chainRows(client, runId, run.chain_entries);
      let previous = run.chain_entries === 0 ? journalGenesis(runId, run.chain_salt) : (run.chain_head ?? '');
      let next = run.chain_entries;
      const positions: number[] = [];
      const hashes: string[] = [];
      for (const row of rows) {
        // An ended run's journal no longer changes, so entries left waiting (a wait that lost a
        // Promise.race) are covered too; an open run's chain stops at the first entry still moving.
        if (row.position !== next || (run.status === 'open' && !FINAL.has(row.status))) break;
        previous = journalEntryHash(previous, this.#chainContent(runId, row).content);
        positions.push(row.position);
        hashes.push(previous);
        next++;
      }
      if (positions.length > 0) {
        await client.query(
          `UPDATE dp_journal j SET chain_hash = x.hash FROM unnest($2::int[], $3::text[]) AS x(position, hash)
            WHERE j.run_id = $1 AND j.position = x.position`,
          [runId, positions, hashes],
        );
        await client.query('UPDATE dp_runs SET chain_entries = $2, chain_head = $3 WHERE run_id = $1', [runId, next, previous]);
      }
      await client.query('COMMIT');
      return { entries: next, head: next === 0 ? null : previous };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  /**
   * Recomputes the run's journal chain from the genesis over what is stored now, never trusting a
   * stored hash, and compares it with the hash sealed for each entry, with how far the data plane
   * sealed, and with the head the control plane recorded (`controlPlane`; null when it holds
   * none). Editing an entry, its value, error, signal body or transcript, deleting an entry, or
   * changing the control plane's record each shows as a problem. Throws RUN_NOT_FOUND.
   */
  async verifyJournalChain(runId: string, controlPlane: JournalChainHead | null): Promise<JournalChainReport> {
    const r = await this.#pool.query<{ chain_salt: Buffer; chain_entries: number; chain_head: string | null; status: StoredRunStatus }>(
      'SELECT chain_salt, chain_entries, chain_head, status FROM dp_runs WHERE run_id = $1',
      [runId],
    );
    const run = r.rows[0];
    if (!run) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} is not in this data plane's payload store.`);
    const client = await this.#pool.connect();
    let rows: ChainRow[];
    try {
      rows = await this.#chainRows(client, runId, 0);
    } finally {
      client.release();
    }
    const problems: JournalChainProblem[] = [];
    const hashAt: string[] = [];
    let previous = journalGenesis(runId, run.chain_salt);
    let changedReported = false;
    for (const row of rows) {
      const expected = hashAt.length;
      if (row.position !== expected) {
        if (row.position > expected) {
          problems.push({
            position: expected,
            reason: 'entry_missing',
            detail:
              row.position === expected + 1
                ? `there is no journal entry at position ${expected}: it was deleted`
                : `there are no journal entries at positions ${expected}–${row.position - 1}: they were deleted`,
          });
        }
        break;
      }
      if (run.status === 'open' && !FINAL.has(row.status)) {
        if (row.chain_hash !== null) {
          problems.push({
            position: row.position,
            reason: 'entry_changed',
            detail: `the entry at position ${row.position} was sealed as final but is now "${row.status}": it was changed after it was recorded`,
          });
        }
        break;
      }
      const { content, unreadable } = this.#chainContent(runId, row, true);
      if (unreadable.length > 0) {
        problems.push({
          position: row.position,
          reason: 'entry_unreadable',
          detail: `the stored ${unreadable.join(' and ')} of the entry at position ${row.position} cannot be opened: its bytes were altered in the database`,
        });
      }
      previous = journalEntryHash(previous, content);
      hashAt.push(previous);
      if (!changedReported && row.position < run.chain_entries && row.chain_hash !== previous) {
        changedReported = true;
        problems.push({
          position: row.position,
          reason: 'entry_changed',
          detail:
            row.chain_hash === null
              ? `the entry at position ${row.position} lost the hash sealed for it: it was replaced after it was recorded`
              : `the entry at position ${row.position} (${row.kind} "${row.name}") no longer gives the hash sealed for it: it, its recorded value, error, signal body or transcript was changed after it was recorded`,
        });
      }
    }
    const recomputed: JournalChainHead = { entries: hashAt.length, head: hashAt.at(-1) ?? null };
    if (recomputed.entries < run.chain_entries && !problems.some((p) => p.reason === 'entry_missing')) {
      problems.push({
        position: recomputed.entries,
        reason: 'entry_missing',
        detail: `the data plane sealed ${run.chain_entries} journal entries but only ${recomputed.entries} remain: entries were deleted from the end`,
      });
    }
    if (controlPlane === null || controlPlane.entries === 0) {
      if (run.status !== 'open' && recomputed.entries > 0) {
        problems.push({
          position: null,
          reason: 'head_missing',
          detail: `the run has ended with ${recomputed.entries} sealed journal entries, but the control plane holds no journal head for it: its record was deleted`,
        });
      }
    } else if (controlPlane.entries > recomputed.entries) {
      if (!problems.some((p) => p.reason === 'entry_missing')) {
        problems.push({
          position: recomputed.entries,
          reason: 'entry_missing',
          detail: `the control plane recorded a journal of ${controlPlane.entries} entries, but only ${recomputed.entries} verify here: entries were deleted`,
        });
      }
    } else if (hashAt[controlPlane.entries - 1] !== controlPlane.head) {
      problems.push({
        position: controlPlane.entries - 1,
        reason: 'head_mismatch',
        detail:
          `the journal's hash after entry ${controlPlane.entries - 1} is not the head the control plane recorded: ` +
          'the control plane’s record was changed, or the journal up to that entry was rewritten',
      });
    }
    return {
      runId,
      ok: problems.length === 0,
      journalEntries: rows.length,
      recomputed,
      dataPlane: { entries: run.chain_entries, head: run.chain_head },
      controlPlane,
      problems,
    };
  }

  /**
   * A run with its whole journal for a signed archive export: every recorded text as stored (plain
   * JSON), the chain's salt and how far it was sealed, so a verifier can recompute the chain
   * offline. Throws RUN_NOT_FOUND, and DECRYPT_FAILED for a value that cannot be opened.
   */
  async exportRun(runId: string): Promise<Omit<ExportedRun, 'controlPlaneHead'>> {
    const r = await this.#pool.query<RunRow & { chain_salt: Buffer; chain_entries: number; chain_head: string | null }>(
      'SELECT * FROM dp_runs WHERE run_id = $1',
      [runId],
    );
    const run = r.rows[0];
    if (!run) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} is not in this data plane's payload store.`);
    const client = await this.#pool.connect();
    let rows: ChainRow[];
    try {
      rows = await this.#chainRows(client, runId, 0);
    } finally {
      client.release();
    }
    const text = (keyId: string | null, blob: Buffer | null, aad: string): string | null =>
      keyId === null || blob === null ? null : this.#openBytes({ keyId, blob }, aad).toString('utf8');
    return {
      type: 'run',
      runId,
      workflow: run.workflow_name,
      status: run.status,
      createdAt: run.created_at.toISOString(),
      endedAt: run.ended_at?.toISOString() ?? null,
      input: text(run.input_key_id, run.input, `${runId}:input`) ?? '',
      chain: { salt: run.chain_salt.toString('hex'), entries: run.chain_entries, head: run.chain_head },
      entries: rows.map((row) => ({
        position: row.position,
        kind: row.kind,
        name: row.name,
        keyDigest: row.key_digest,
        status: row.status,
        attempt: row.attempt,
        outputSize: row.output_size,
        value:
          row.signal_id !== null
            ? text(row.sig_key_id, row.sig_body, `${runId}:signal:${row.signal_id}`)
            : text(row.key_id, row.payload, `${runId}:journal:${row.position}`),
        error: row.error_ref === null ? null : text(row.err_key_id, row.err_payload, `${runId}:error:${row.error_ref}`),
        transcript: text(row.tr_key_id, row.tr_payload, `${runId}:transcript:${row.position}`),
        transcriptDigest: row.tr_payload === null ? row.transcript_pruned_digest : null,
        dueAt: ms(row.due_at) ?? null,
        startedAt: row.started_at.getTime(),
        endedAt: ms(row.ended_at) ?? null,
      })),
    };
  }

  /**
   * Applies retention once, under an advisory lock so that of several processes one does it (the
   * others get null): deletes runs that ended before `runsEndedBefore` with everything stored for
   * them, and the transcripts of runs that ended before `transcriptsEndedBefore` (keeping each
   * one's plain-text digest on its journal entry, so the chain still verifies). Records the run in
   * `dp_retention_runs` (cut-off times and counts only) and returns the counts.
   */
  async applyRetention(cutoffs: {
    readonly runsEndedBefore?: Date | undefined;
    readonly transcriptsEndedBefore?: Date | undefined;
  }): Promise<{ runsDeleted: number; transcriptsDeleted: number } | null> {
    const client = await this.#pool.connect();
    const started = new Date();
    try {
      await client.query('BEGIN');
      const lock = await client.query<{ got: boolean }>("SELECT pg_try_advisory_xact_lock(hashtext('cairn_dp_retention')) AS got");
      if (!lock.rows[0]?.got) {
        await client.query('ROLLBACK');
        return null;
      }
      let transcriptsDeleted = 0;
      if (cutoffs.transcriptsEndedBefore) {
        for (;;) {
          const batch = await client.query<{ run_id: string; position: number; key_id: string; payload: Buffer }>(
            `SELECT t.run_id, t.position, t.key_id, t.payload FROM dp_transcripts t JOIN dp_runs r ON r.run_id = t.run_id
              WHERE r.status <> 'open' AND r.ended_at < $1 LIMIT 200`,
            [cutoffs.transcriptsEndedBefore],
          );
          if (batch.rows.length === 0) break;
          const runIds = batch.rows.map((t) => t.run_id);
          const positions = batch.rows.map((t) => t.position);
          const digests = batch.rows.map((t) =>
            plainDigest(this.#openBytes({ keyId: t.key_id, blob: t.payload }, `${t.run_id}:transcript:${t.position}`)),
          );
          await client.query(
            `UPDATE dp_journal j SET transcript_pruned_digest = x.digest
               FROM unnest($1::uuid[], $2::int[], $3::text[]) AS x(run_id, position, digest)
              WHERE j.run_id = x.run_id AND j.position = x.position`,
            [runIds, positions, digests],
          );
          const deleted = await client.query(
            `DELETE FROM dp_transcripts t USING unnest($1::uuid[], $2::int[]) AS x(run_id, position)
              WHERE t.run_id = x.run_id AND t.position = x.position`,
            [runIds, positions],
          );
          transcriptsDeleted += deleted.rowCount ?? 0;
        }
      }
      let runsDeleted = 0;
      if (cutoffs.runsEndedBefore) {
        for (;;) {
          const deleted = await client.query(
            `DELETE FROM dp_runs WHERE run_id IN (
               SELECT run_id FROM dp_runs WHERE status <> 'open' AND ended_at < $1 LIMIT 500)`,
            [cutoffs.runsEndedBefore],
          );
          if ((deleted.rowCount ?? 0) === 0) break;
          runsDeleted += deleted.rowCount ?? 0;
        }
      }
      await client.query(
        `INSERT INTO dp_retention_runs (started_at, runs_ended_before, transcripts_ended_before, runs_deleted, transcripts_deleted)
         VALUES ($1, $2, $3, $4, $5)`,
        [started, cutoffs.runsEndedBefore ?? null, cutoffs.transcriptsEndedBefore ?? null, runsDeleted, transcriptsDeleted],
      );
      await client.query('COMMIT');
      return { runsDeleted, transcriptsDeleted };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      client.release();
    }
  }

  async #chainRows(client: pg.PoolClient, runId: string, from: number): Promise<ChainRow[]> {
    const r = await client.query<ChainRow>(
      `SELECT j.position, j.kind, j.name, j.key_digest, j.status, j.attempt, j.key_id, j.payload, j.output_size, j.error_ref,
              j.signal_id, j.due_at, j.started_at, j.ended_at, j.chain_hash, j.transcript_pruned_digest,
              e.key_id AS err_key_id, e.payload AS err_payload, s.key_id AS sig_key_id, s.body AS sig_body,
              t.key_id AS tr_key_id, t.payload AS tr_payload
         FROM dp_journal j
         LEFT JOIN dp_errors e ON e.error_ref = j.error_ref
         LEFT JOIN dp_signals s ON s.signal_id = j.signal_id
         LEFT JOIN dp_transcripts t ON t.run_id = j.run_id AND t.position = j.position
        WHERE j.run_id = $1 AND j.position >= $2
        ORDER BY j.position`,
      [runId, from],
    );
    return r.rows;
  }

  /**
   * An entry's chain content. Sealing throws when a value cannot be opened; verifying (`lenient`)
   * puts the digest of the stored bytes in its place, which cannot match, and says what failed.
   */
  #chainContent(runId: string, row: ChainRow, lenient = false): { content: JournalChainContent; unreadable: string[] } {
    const unreadable: string[] = [];
    const digest = (keyId: string | null, blob: Buffer | null, aad: string, what: string): string | null => {
      if (keyId === null || blob === null) return null;
      try {
        return plainDigest(this.#openBytes({ keyId, blob }, aad));
      } catch (err) {
        if (!lenient) throw err;
        unreadable.push(what);
        return `unreadable:${plainDigest(blob)}`;
      }
    };
    const value =
      row.signal_id !== null
        ? digest(row.sig_key_id, row.sig_body, `${runId}:signal:${row.signal_id}`, 'signal body')
        : digest(row.key_id, row.payload, `${runId}:journal:${row.position}`, 'value');
    const content: JournalChainContent = {
      position: row.position,
      kind: row.kind,
      name: row.name,
      keyDigest: row.key_digest,
      status: row.status,
      attempt: row.attempt,
      outputSize: row.output_size,
      value,
      error: row.error_ref === null ? null : digest(row.err_key_id, row.err_payload, `${runId}:error:${row.error_ref}`, 'error'),
      transcript:
        row.tr_payload === null && row.transcript_pruned_digest !== null
          ? row.transcript_pruned_digest
          : digest(row.tr_key_id, row.tr_payload, `${runId}:transcript:${row.position}`, 'transcript'),
      dueAt: ms(row.due_at) ?? null,
      startedAt: row.started_at.getTime(),
      endedAt: ms(row.ended_at) ?? null,
    };
    return { content, unreadable };
  }

  /** Reads a run, or undefined when the data plane has no such run. */
  async getRun(runId: string): Promise<StoredRun | undefined> {
    const r = await this.#pool.query<RunRow>('SELECT * FROM dp_runs WHERE run_id = $1', [runId]);
    return r.rows[0] ? this.#toRun(r.rows[0]) : undefined;
  }

  /**
   * Takes the run for a lease epoch: raises the fence so writes under older epochs fail from now
   * on, then returns the run and its journal. Throws FencedError when a newer epoch already holds
   * it, RUN_NOT_FOUND when the data plane has no such run, and TASK_WORKFLOW_MISMATCH (writing
   * nothing) when `expected` names a workflow other than the one the run was stored with.
   */
  async acquire(
    runId: string,
    epoch: number,
    expected?: { readonly workflowName: string },
  ): Promise<{ run: StoredRun; journal: JournalEntry[] }> {
    if (!isId(runId)) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `run ID ${JSON.stringify(runId)} is not a lowercase UUID`);
    if (!Number.isSafeInteger(epoch) || epoch < 0)
      throw new CairnError(ErrorCodes.INVALID_ARGUMENT, `epoch ${epoch} is not a whole number`);
    // One round trip, three statements: the fence is raised first, then the run and its journal
    // are read by statements of the same implicit transaction, each of which takes a new snapshot
    // in READ COMMITTED. So an entry that an older epoch committed while the UPDATE waited for its
    // row lock is read too, and nothing older epochs try after the UPDATE can commit. (One
    // statement would read the journal as of its start and could miss that entry.) A run already
    // at this epoch — a new run, stored at epoch 1, the first lease's — is not written at all, so
    // the round trip commits nothing. The simple query protocol takes no parameters: the values
    // are checked above, and the name is quoted as a literal.
    const workflow = expected === undefined ? 'NULL' : pg.escapeLiteral(expected.workflowName);
    const sameWorkflow = `(${workflow}::text IS NULL OR workflow_name = ${workflow})`;
    const [, current, journal] = (await this.#pool.query(
      `UPDATE dp_runs SET epoch = ${epoch} WHERE run_id = '${runId}' AND epoch < ${epoch} AND ${sameWorkflow};
       SELECT * FROM dp_runs WHERE run_id = '${runId}' AND epoch = ${epoch} AND ${sameWorkflow};
       ${JOURNAL_SELECT.replace('$1', `'${runId}'`)}`,
    )) as unknown as [pg.QueryResult, pg.QueryResult<RunRow>, pg.QueryResult<JournalRow>];
    const row = current.rows[0];
    if (!row) {
      const cur = await this.#pool.query<{ epoch: number; workflow_name: string }>(
        'SELECT epoch, workflow_name FROM dp_runs WHERE run_id = $1',
        [runId],
      );
      const found = cur.rows[0];
      if (!found) {
        throw new CairnError(
          ErrorCodes.RUN_NOT_FOUND,
          `Run ${runId} has no input in this data plane's payload store. Was it started through a gateway of this data plane?`,
        );
      }
      if (expected && found.workflow_name !== expected.workflowName) {
        // Nothing was written: the fence stays where it was, so the run is untouched.
        throw new CairnError(
          ErrorCodes.TASK_WORKFLOW_MISMATCH,
          `A run task for run ${runId} names workflow "${expected.workflowName}", but the run was stored in this data plane as workflow "${found.workflow_name}": the task is refused and the run left untouched. The control plane sent a task that does not match the run; report it to whoever operates the control plane.`,
          { details: { runId, taskWorkflow: expected.workflowName, storedWorkflow: found.workflow_name } },
        );
      }
      throw new FencedError(runId, epoch, found.epoch);
    }
    const entries = journal.rows.map((j) => this.#toEntry(runId, j));
    this.#trackChain(runId, epoch, row, entries);
    return { run: this.#toRun(row), journal: entries };
  }

  /**
   * Keeps a chain cursor for a run just acquired when everything in its journal is sealed and its
   * positions have no gap, so that new entries can be sealed as they are written.
   */
  #trackChain(runId: string, epoch: number, row: RunRow, journal: readonly JournalEntry[]): void {
    this.#chains.delete(runId);
    const last = journal[journal.length - 1];
    const contiguous = last === undefined || last.position === journal.length - 1;
    if (row.status !== 'open' || !contiguous || row.chain_entries !== journal.length) return;
    if (row.chain_entries > 0 && row.chain_head === null) return;
    if (this.#chains.size >= CHAIN_CURSORS_MAX) {
      const oldest = this.#chains.keys().next();
      if (!oldest.done) this.#chains.delete(oldest.value);
    }
    const head = row.chain_entries === 0 ? journalGenesis(runId, row.chain_salt) : (row.chain_head ?? '');
    this.#chains.set(runId, { epoch, entries: row.chain_entries, head, written: journal.length, busy: false });
  }

  /** Notes positions written outside an inline seal: the chain cannot reach past them inline. */
  #noteWritten(runId: string, positions: readonly number[]): void {
    const cursor = this.#chains.get(runId);
    if (!cursor) return;
    for (const p of positions) cursor.written = Math.max(cursor.written, p + 1);
  }

  /** The run's journal in position order, with errors and signal bodies opened. */
  async loadJournal(runId: string): Promise<JournalEntry[]> {
    const r = await this.#pool.query<JournalRow>(JOURNAL_SELECT, [runId]);
    return r.rows.map((row) => this.#toEntry(runId, row));
  }

  /** One journal entry, for debugging (the gateway's step output endpoint). */
  async readEntry(runId: string, position: number): Promise<JournalEntry | undefined> {
    const r = await this.#pool.query<JournalRow>(
      `SELECT j.*, e.key_id AS err_key_id, e.payload AS err_payload, s.key_id AS sig_key_id, s.body AS sig_body
         FROM dp_journal j
         LEFT JOIN dp_errors e ON e.error_ref = j.error_ref
         LEFT JOIN dp_signals s ON s.signal_id = j.signal_id
        WHERE j.run_id = $1 AND j.position = $2`,
      [runId, position],
    );
    return r.rows[0] ? this.#toEntry(runId, r.rows[0]) : undefined;
  }

  #toEntry(runId: string, row: JournalRow): JournalEntry {
    let value: unknown;
    if (row.signal_id && row.sig_key_id && row.sig_body)
      value = this.#open(row.sig_key_id, row.sig_body, `${runId}:signal:${row.signal_id}`);
    else if (row.payload && row.key_id) value = this.#open(row.key_id, row.payload, `${runId}:journal:${row.position}`);
    const error =
      row.error_ref && row.err_key_id && row.err_payload
        ? (this.#open(row.err_key_id, row.err_payload, `${runId}:error:${row.error_ref}`) as ErrorInfo)
        : undefined;
    return {
      position: row.position,
      kind: row.kind,
      name: row.name,
      keyDigest: row.key_digest ?? undefined,
      status: row.status,
      attempt: row.attempt,
      value,
      outputSize: row.output_size,
      errorRef: row.error_ref ?? undefined,
      error,
      signalId: row.signal_id ?? undefined,
      dueAt: ms(row.due_at),
      startedAt: row.started_at.getTime(),
      endedAt: ms(row.ended_at),
      epoch: row.epoch,
    };
  }

  /**
   * Writes journal entries under a lease epoch in one statement: an entry at a position that is
   * already final is left as it is; others are inserted or replaced. Returns the error refs
   * created, by position. Throws FencedError when the epoch no longer holds the run.
   */
  async append(
    runId: string,
    epoch: number,
    entries: readonly JournalWrite[],
  ): Promise<{ errorRefs: Map<number, string>; sizes: Map<number, number> }> {
    const errorRefs = new Map<number, string>();
    const sizes = new Map<number, number>();
    if (entries.length === 0) return { errorRefs, sizes };
    const only = entries[0];
    if (entries.length === 1 && only && !only.error && only.transcript === undefined) {
      sizes.set(only.position, await this.#appendOne(runId, epoch, only));
      return { errorRefs, sizes };
    }
    this.#noteWritten(
      runId,
      entries.map((e) => e.position),
    );
    const cols = {
      position: [] as number[],
      kind: [] as string[],
      name: [] as string[],
      keyDigest: [] as (string | null)[],
      status: [] as string[],
      attempt: [] as number[],
      keyId: [] as (string | null)[],
      payload: [] as (Buffer | null)[],
      size: [] as number[],
      errorRef: [] as (string | null)[],
      dueAt: [] as (Date | null)[],
      startedAt: [] as Date[],
      endedAt: [] as (Date | null)[],
    };
    const errs = { ref: [] as string[], position: [] as number[], attempt: [] as number[], keyId: [] as string[], payload: [] as Buffer[] };
    const trs = { position: [] as number[], keyId: [] as string[], payload: [] as Buffer[], size: [] as number[] };
    for (const e of entries) {
      if (e.transcript !== undefined) {
        const st = this.#seal(e.transcript, `${runId}:transcript:${e.position}`, `The transcript of ${e.kind} "${e.name}"`);
        trs.position.push(e.position);
        trs.keyId.push(st.keyId);
        trs.payload.push(st.blob);
        trs.size.push(st.size);
      }
      let sealed: (Sealed & { size: number }) | undefined;
      if (e.value !== undefined) sealed = this.#seal(e.value, `${runId}:journal:${e.position}`, `The result of ${e.kind} "${e.name}"`);
      let ref: string | null = null;
      if (e.error) {
        ref = newId();
        const se = this.#seal(e.error, `${runId}:error:${ref}`, 'An error');
        errs.ref.push(ref);
        errs.position.push(e.position);
        errs.attempt.push(e.attempt ?? 1);
        errs.keyId.push(se.keyId);
        errs.payload.push(se.blob);
        errorRefs.set(e.position, ref);
      }
      sizes.set(e.position, sealed?.size ?? 0);
      cols.position.push(e.position);
      cols.kind.push(e.kind);
      cols.name.push(e.name);
      cols.keyDigest.push(e.keyDigest ?? null);
      cols.status.push(e.status);
      cols.attempt.push(e.attempt ?? 1);
      cols.keyId.push(sealed?.keyId ?? null);
      cols.payload.push(sealed?.blob ?? null);
      cols.size.push(sealed?.size ?? 0);
      cols.errorRef.push(ref);
      cols.dueAt.push(date(e.dueAt));
      cols.startedAt.push(new Date(e.startedAt));
      cols.endedAt.push(date(e.endedAt));
    }
    const r = await this.#pool.query<{ ok: number }>({
      name: 'dp_append',
      text: `WITH fence AS (
         SELECT run_id FROM dp_runs WHERE run_id = $1 AND epoch = $2 AND status = 'open' FOR SHARE
       ), errs AS (
         INSERT INTO dp_errors (error_ref, run_id, position, attempt, key_id, payload)
         SELECT e.ref, f.run_id, e.position, e.attempt, e.key_id, e.payload
           FROM fence f, unnest($16::uuid[], $17::int[], $18::int[], $19::text[], $20::bytea[]) AS e(ref, position, attempt, key_id, payload)
       ), trs AS (
         INSERT INTO dp_transcripts (run_id, position, key_id, payload, size)
         SELECT f.run_id, t.position, t.key_id, t.payload, t.size
           FROM fence f, unnest($21::int[], $22::text[], $23::bytea[], $24::int[]) AS t(position, key_id, payload, size)
         ON CONFLICT (run_id, position) DO NOTHING
       ), j AS (
         INSERT INTO dp_journal (run_id, position, kind, name, key_digest, status, attempt, key_id, payload, output_size, error_ref, due_at, started_at, ended_at, epoch)
         SELECT f.run_id, x.position, x.kind, x.name, x.key_digest, x.status, x.attempt, x.key_id, x.payload, x.size, x.error_ref, x.due_at, x.started_at, x.ended_at, $2
           FROM fence f,
                unnest($3::int[], $4::text[], $5::text[], $6::text[], $7::text[], $8::int[], $9::text[], $10::bytea[], $11::int[], $12::uuid[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[])
                  AS x(position, kind, name, key_digest, status, attempt, key_id, payload, size, error_ref, due_at, started_at, ended_at)
         ON CONFLICT (run_id, position) DO UPDATE
           SET status = excluded.status, attempt = excluded.attempt, key_id = excluded.key_id, payload = excluded.payload,
               output_size = excluded.output_size, error_ref = excluded.error_ref, due_at = excluded.due_at,
               ended_at = excluded.ended_at, epoch = excluded.epoch
           WHERE dp_journal.status NOT IN ('completed', 'failed', 'timed_out')
       )
       SELECT count(*)::int AS ok FROM fence`,
      values: [
        runId,
        epoch,
        cols.position,
        cols.kind,
        cols.name,
        cols.keyDigest,
        cols.status,
        cols.attempt,
        cols.keyId,
        cols.payload,
        cols.size,
        cols.errorRef,
        cols.dueAt,
        cols.startedAt,
        cols.endedAt,
        errs.ref,
        errs.position,
        errs.attempt,
        errs.keyId,
        errs.payload,
        trs.position,
        trs.keyId,
        trs.payload,
        trs.size,
      ],
    });
    if (r.rows[0]?.ok !== 1) await this.#throwFenced(runId, epoch);
    return { errorRefs, sizes };
  }

  /**
   * The hot path: one entry without an error (a completed step, a sleep or wait marker) in one
   * prepared statement that inserts only while the epoch holds the run. Returns the stored size.
   */
  async #appendOne(runId: string, epoch: number, e: JournalWrite): Promise<number> {
    const plain = e.value !== undefined ? encodeJson(e.value, `The result of ${e.kind} "${e.name}"`) : undefined;
    const sealed = plain !== undefined ? { ...this.#keys.seal(plain, `${runId}:journal:${e.position}`), size: plain.length } : undefined;
    const cursor = this.#chains.get(runId);
    if (
      cursor &&
      !cursor.busy &&
      cursor.epoch === epoch &&
      FINAL.has(e.status) &&
      e.position === cursor.entries &&
      cursor.written === cursor.entries
    ) {
      if (await this.#appendSealed(runId, epoch, e, cursor, plain, sealed)) return sealed?.size ?? 0;
    }
    this.#noteWritten(runId, [e.position]);
    const r = await this.#pool.query({
      name: 'dp_append_one',
      text: `INSERT INTO dp_journal (run_id, position, kind, name, key_digest, status, attempt, key_id, payload, output_size, due_at, started_at, ended_at, epoch)
             SELECT run_id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $2
               FROM dp_runs WHERE run_id = $1 AND epoch = $2 AND status = 'open' FOR SHARE
             ON CONFLICT (run_id, position) DO UPDATE
               SET status = excluded.status, attempt = excluded.attempt, key_id = excluded.key_id, payload = excluded.payload,
                   output_size = excluded.output_size, error_ref = NULL, due_at = excluded.due_at,
                   ended_at = excluded.ended_at, epoch = excluded.epoch
               WHERE dp_journal.status NOT IN ('completed', 'failed', 'timed_out')
             RETURNING 1`,
      values: entryValues(runId, epoch, e, sealed),
    });
    if (r.rowCount !== 1) {
      // Nothing written: either the epoch lost the run, or the entry was already final (kept as is).
      const cur = await this.#pool.query<{ epoch: number; status: string }>('SELECT epoch, status FROM dp_runs WHERE run_id = $1', [runId]);
      const row = cur.rows[0];
      if (!row || row.epoch !== epoch || row.status !== 'open') await this.#throwFenced(runId, epoch);
    }
    return sealed?.size ?? 0;
  }

  /**
   * Writes a final entry at the end of the run's sealed chain and seals it in the same statement:
   * the entry's hash is computed here from what is being written (the value's plaintext, the
   * times as stored), and dp_runs.chain_entries moves on only if it is still where this process
   * last saw it, no entry holds the position yet, and the epoch still holds the run. False when
   * nothing was written (fenced, or the chain moved elsewhere): the caller then writes as usual and
   * the chain is sealed from the database later.
   */
  async #appendSealed(
    runId: string,
    epoch: number,
    e: JournalWrite,
    cursor: ChainCursor,
    plain: Buffer | undefined,
    sealed: (Sealed & { size: number }) | undefined,
  ): Promise<boolean> {
    // The values as the statement stores them, so the hash is over exactly what the row holds.
    const values = entryValues(runId, epoch, e, sealed);
    const [dueAt, startedAt, endedAt] = [values[11], values[12], values[13]];
    const hash = journalEntryHash(cursor.head, {
      position: e.position,
      kind: e.kind,
      name: e.name,
      keyDigest: e.keyDigest ?? null,
      status: e.status,
      attempt: e.attempt ?? 1,
      outputSize: sealed?.size ?? 0,
      value: plain === undefined ? null : plainDigest(plain),
      error: null,
      transcript: null,
      dueAt: ms(dueAt) ?? null,
      startedAt: startedAt.getTime(),
      endedAt: ms(endedAt) ?? null,
    });
    cursor.busy = true;
    let written: boolean;
    try {
      const r = await this.#pool.query({
        name: 'dp_append_sealed',
        text: `WITH chained AS (
                 UPDATE dp_runs SET chain_entries = $3 + 1, chain_head = $15
                  WHERE run_id = $1 AND epoch = $2 AND status = 'open' AND chain_entries = $3
                    AND NOT EXISTS (SELECT 1 FROM dp_journal WHERE run_id = $1 AND position = $3)
                 RETURNING run_id
               )
               INSERT INTO dp_journal (run_id, position, kind, name, key_digest, status, attempt, key_id, payload, output_size, due_at, started_at, ended_at, epoch, chain_hash)
               SELECT run_id, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $2, $15 FROM chained
               RETURNING 1`,
        values: [...values, hash],
      });
      written = r.rowCount === 1;
    } finally {
      cursor.busy = false;
    }
    if (written) {
      cursor.entries += 1;
      cursor.written = cursor.entries;
      cursor.head = hash;
    } else {
      this.#chains.delete(runId);
    }
    return written;
  }

  async #throwFenced(runId: string, epoch: number): Promise<never> {
    const cur = await this.#pool.query<{ epoch: number; status: string }>('SELECT epoch, status FROM dp_runs WHERE run_id = $1', [runId]);
    const row = cur.rows[0];
    throw new FencedError(runId, epoch, row && row.status === 'open' ? row.epoch : undefined);
  }

  /**
   * Commits the run's output (and any last journal entries) under a lease epoch. Idempotent for
   * the same epoch: a run already completed returns its stored size.
   */
  async completeRun(runId: string, epoch: number, output: unknown, last: readonly JournalWrite[] = []): Promise<{ outputSize: number }> {
    if (last.length > 0) await this.append(runId, epoch, last);
    const sealed = this.#seal(output, `${runId}:output`, 'The workflow result');
    const r = await this.#pool.query<{ output_size: number }>(
      `UPDATE dp_runs SET status = 'completed', output_key_id = $3, output = $4, output_size = $5, ended_at = now()
        WHERE run_id = $1 AND epoch = $2 AND status = 'open' RETURNING output_size`,
      [runId, epoch, sealed.keyId, sealed.blob, sealed.size],
    );
    if (r.rows[0]) return { outputSize: r.rows[0].output_size };
    const cur = await this.getRun(runId);
    if (cur && cur.status === 'completed' && cur.epoch === epoch) return { outputSize: cur.outputSize ?? 0 };
    return this.#throwFenced(runId, epoch);
  }

  /** Stores the run's final error and marks it failed under a lease epoch. Returns the error ref. */
  async failRun(runId: string, epoch: number, error: ErrorInfo, last: readonly JournalWrite[] = []): Promise<{ errorRef: string }> {
    if (last.length > 0) await this.append(runId, epoch, last);
    const ref = newId();
    const sealed = this.#seal(error, `${runId}:error:${ref}`, 'An error');
    const r = await this.#pool.query<{ error_ref: string }>(
      `WITH up AS (
         UPDATE dp_runs SET status = 'failed', error_ref = $3, ended_at = now()
          WHERE run_id = $1 AND epoch = $2 AND status = 'open' RETURNING run_id
       ), ins AS (
         INSERT INTO dp_errors (error_ref, run_id, key_id, payload) SELECT $3, run_id, $4, $5 FROM up
       )
       SELECT $3::uuid AS error_ref FROM up`,
      [runId, epoch, ref, sealed.keyId, sealed.blob],
    );
    if (r.rows[0]) return { errorRef: ref };
    const cur = await this.getRun(runId);
    if (cur && cur.status === 'failed' && cur.epoch === epoch && cur.errorRef) return { errorRef: cur.errorRef };
    return this.#throwFenced(runId, epoch);
  }

  /** Marks the run cancelled under a lease epoch (idempotent for the same epoch). */
  async cancelRun(runId: string, epoch: number): Promise<void> {
    const r = await this.#pool.query(
      `UPDATE dp_runs SET status = 'cancelled', ended_at = now() WHERE run_id = $1 AND epoch = $2 AND status = 'open'`,
      [runId, epoch],
    );
    if (r.rowCount === 1) return;
    const cur = await this.getRun(runId);
    if (cur && cur.status === 'cancelled' && cur.epoch === epoch) return;
    await this.#throwFenced(runId, epoch);
  }

  /**
   * Records that a run was cancelled while no worker held it (queued or suspended), so the data
   * plane's view matches the control plane's.
   */
  async markCancelled(runId: string): Promise<void> {
    await this.#pool.query(`UPDATE dp_runs SET status = 'cancelled', ended_at = now() WHERE run_id = $1 AND status = 'open'`, [runId]);
  }

  /** Reads a stored error by its ref. */
  async getError(errorRef: string): Promise<StoredError | undefined> {
    const r = await this.#pool.query<{
      error_ref: string;
      run_id: string;
      position: number | null;
      attempt: number | null;
      key_id: string;
      payload: Buffer;
      created_at: Date;
    }>('SELECT * FROM dp_errors WHERE error_ref = $1', [errorRef]);
    const row = r.rows[0];
    if (!row) return undefined;
    const info = this.#open(row.key_id, row.payload, `${row.run_id}:error:${row.error_ref}`) as ErrorInfo;
    return {
      ...info,
      errorRef: row.error_ref,
      runId: row.run_id,
      position: row.position ?? undefined,
      attempt: row.attempt ?? undefined,
      createdAt: row.created_at.getTime(),
    };
  }

  /** Reads the transcript of the model call at a journal position, or undefined when none is stored. */
  async getTranscript(runId: string, position: number): Promise<StoredTranscript | undefined> {
    const r = await this.#pool.query<{ key_id: string; payload: Buffer; size: number; created_at: Date }>(
      'SELECT key_id, payload, size, created_at FROM dp_transcripts WHERE run_id = $1 AND position = $2',
      [runId, position],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return {
      runId,
      position,
      transcript: this.#open(row.key_id, row.payload, `${runId}:transcript:${position}`),
      size: row.size,
      createdAt: row.created_at.getTime(),
    };
  }

  /**
   * Stores a signal for a run and notifies listening workers. Signals of one name are consumed in
   * arrival order, so one sent before the run waits for it is kept.
   *
   * Storing a signal ID that is stored already (a repeat of a signal whose ID the gateway derived
   * from the caller's idempotency key) stores and notifies nothing: `created` is false when the
   * stored signal is of the same run and name with an equal body (consumed or not), and a different
   * body is refused with `CAIRN-1108` (CONFLICT).
   */
  async addSignal(
    runId: string,
    name: string,
    body: unknown,
    signalId: string = newId(),
  ): Promise<{ signalId: string; size: number; created: boolean }> {
    const sealed = this.#seal(body, `${runId}:signal:${signalId}`, 'The signal body');
    // Twice at most: a stored signal deleted between the insert and the read (its first sending
    // failed and was undone) leaves the ID free again.
    for (let attempt = 1; ; attempt++) {
      const r = await this.#pool.query(
        `WITH ins AS (
           INSERT INTO dp_signals (signal_id, run_id, name, key_id, body, size, notified)
           SELECT $1, run_id, $3, $4, $5, $6, false FROM dp_runs WHERE run_id = $2
           ON CONFLICT (signal_id) DO NOTHING
           RETURNING run_id
         )
         SELECT pg_notify('cairn_dp_signal', $2 || ':' || $3) FROM ins`,
        [signalId, runId, name, sealed.keyId, sealed.blob, sealed.size],
      );
      if (r.rowCount === 1) return { signalId, size: sealed.size, created: true };
      const stored = await this.#pool.query<{ run_id: string; name: string; key_id: string; body: Buffer; size: number }>(
        'SELECT run_id, name, key_id, body, size FROM dp_signals WHERE signal_id = $1',
        [signalId],
      );
      const row = stored.rows[0];
      if (!row) {
        if (attempt < 2) continue;
        throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} is not in this data plane's payload store.`);
      }
      const same =
        row.run_id === runId &&
        row.name === name &&
        isDeepStrictEqual(
          this.#open(row.key_id, row.body, `${row.run_id}:signal:${signalId}`),
          decodeJson(encodeJson(body, 'The signal body')),
        );
      if (!same) {
        throw new CairnError(
          ErrorCodes.CONFLICT,
          `signal ${signalId} is stored already with another ${row.run_id === runId && row.name === name ? 'body' : 'run or name'}`,
        );
      }
      return { signalId, size: row.size, created: false };
    }
  }

  /**
   * Deletes a stored signal unless a wait has consumed it already (used when the control plane
   * could not be told about it, so the caller can retry without a duplicate). Returns true when it
   * was deleted, false when it was consumed (and so delivered).
   */
  async deleteSignalIfUnconsumed(signalId: string): Promise<boolean> {
    const r = await this.#pool.query('DELETE FROM dp_signals WHERE signal_id = $1 AND consumed_position IS NULL', [signalId]);
    return r.rowCount === 1;
  }

  /** Records that the control plane was told of these signals (SignalRun answered, or refused for good). */
  async markSignalsNotified(signalIds: readonly string[]): Promise<void> {
    if (signalIds.length === 0) return;
    await this.#pool.query('UPDATE dp_signals SET notified = true WHERE signal_id = ANY($1::uuid[]) AND NOT notified', [signalIds]);
  }

  /**
   * Signals stored more than `olderThanMs` ago (by the payload store's clock) that the control plane
   * was never told of: their SignalRun failed without a definite answer, or their gateway died
   * before asking. Oldest first, at most `limit`, after `after` (the last one of the previous page).
   * Names stay in the data plane; the caller sends their digests.
   */
  async unnotifiedSignals(olderThanMs: number, limit: number, after?: UnnotifiedSignal): Promise<UnnotifiedSignal[]> {
    const r = await this.#pool.query<{ signal_id: string; run_id: string; name: string; received_at: string; consumed: boolean }>(
      `SELECT signal_id, run_id, name, received_at::text AS received_at, consumed_position IS NOT NULL AS consumed FROM dp_signals
        WHERE NOT notified AND received_at < now() - make_interval(secs => $1::double precision / 1000)
          AND ($3::timestamptz IS NULL OR (received_at, signal_id) > ($3, $4::uuid))
        ORDER BY received_at, signal_id LIMIT $2`,
      [olderThanMs, limit, after?.receivedAt ?? null, after?.signalId ?? null],
    );
    return r.rows.map((row) => ({
      signalId: row.signal_id,
      runId: row.run_id,
      name: row.name,
      receivedAt: row.received_at,
      consumed: row.consumed,
    }));
  }

  /**
   * Consumes the oldest unconsumed signal of `name` for the run and records it as the completed
   * signal wait at `position` (with the wait's key digest, if it has one), in one fenced statement.
   * Returns undefined when none is waiting.
   */
  async takeSignal(
    runId: string,
    epoch: number,
    position: number,
    name: string,
    startedAt: number,
    keyDigest?: string,
  ): Promise<TakenSignal | undefined> {
    const r = await this.#pool.query<{
      ok: number;
      signal_id: string | null;
      key_id: string | null;
      body: Buffer | null;
      size: number | null;
    }>(
      `WITH fence AS (
         SELECT run_id FROM dp_runs WHERE run_id = $1 AND epoch = $2 AND status = 'open' FOR SHARE
       ), pick AS (
         SELECT s.signal_id FROM dp_signals s
          WHERE s.run_id = $1 AND s.name = $4 AND s.consumed_position IS NULL AND EXISTS (SELECT 1 FROM fence)
          ORDER BY s.seq LIMIT 1 FOR UPDATE SKIP LOCKED
       ), took AS (
         UPDATE dp_signals s SET consumed_position = $3 FROM pick WHERE s.signal_id = pick.signal_id
         RETURNING s.signal_id, s.key_id, s.body, s.size
       ), j AS (
         INSERT INTO dp_journal (run_id, position, kind, name, key_digest, status, attempt, signal_id, output_size, started_at, ended_at, epoch)
         SELECT $1, $3, 'signal', $4, $6, 'completed', 1, took.signal_id, took.size, $5, now(), $2 FROM took
         ON CONFLICT (run_id, position) DO UPDATE
           SET status = 'completed', signal_id = excluded.signal_id, output_size = excluded.output_size, ended_at = excluded.ended_at, epoch = excluded.epoch
           WHERE dp_journal.status = 'waiting'
       )
       SELECT (SELECT count(*) FROM fence)::int AS ok, took.* FROM (SELECT 1) AS one LEFT JOIN took ON true`,
      [runId, epoch, position, name, new Date(startedAt), keyDigest ?? null],
    );
    const row = r.rows[0];
    if (!row || row.ok !== 1) return this.#throwFenced(runId, epoch);
    if (!row.signal_id || !row.key_id || !row.body) return undefined;
    this.#noteWritten(runId, [position]);
    return { signalId: row.signal_id, body: this.#open(row.key_id, row.body, `${runId}:signal:${row.signal_id}`), size: row.size ?? 0 };
  }

  /**
   * Listens for new signals (Postgres LISTEN on the data plane's own database) and calls
   * `listener(runId, name)` for each. Reconnects after a connection loss and then calls `onGap`:
   * signals stored meanwhile were not heard, and are found with {@link takeSignal}. Returns a
   * function that stops listening.
   */
  async onSignal(listener: (runId: string, name: string) => void, onGap?: () => void): Promise<() => Promise<void>> {
    return this.#listener.subscribe('cairn_dp_signal', {
      notification: (payload) => {
        const colon = payload.indexOf(':');
        if (colon > 0) listener(payload.slice(0, colon), payload.slice(colon + 1));
      },
      gap: onGap,
    });
  }

  /**
   * Publishes live events of a run (model text deltas) to the data plane's subscribers, and stores
   * them, in one statement: each event gets the run's next sequence number, is stored sealed in
   * `dp_stream_events`, and goes out with Postgres NOTIFY on the payload store's own database
   * (sealed too, split under the NOTIFY size limit). The run's stream head row orders concurrent
   * publishers of one run, so events commit and are delivered in sequence order, without gaps.
   * Returns the sequence numbers given out (first and last; none for no events).
   */
  async publishStream(runId: string, events: readonly StreamEvent[]): Promise<{ firstSeq: number; lastSeq: number } | undefined> {
    if (events.length === 0) return undefined;
    const pieces = splitStreamEvents(events);
    const keyIds: string[] = [];
    const blobs: Buffer[] = [];
    const sizes: number[] = [];
    for (const piece of pieces) {
      const plain = Buffer.from(JSON.stringify(piece), 'utf8');
      const sealed = this.#keys.seal(plain, `${runId}:stream-event`);
      keyIds.push(sealed.keyId);
      blobs.push(sealed.blob);
      sizes.push(plain.length);
    }
    const notices: string[] = [];
    const offsets: number[] = [];
    let offset = 0;
    for (const batch of packPieces(pieces)) {
      const sealed = this.#keys.seal(Buffer.from(JSON.stringify(batch), 'utf8'), `${runId}:stream`);
      notices.push(`${sealed.keyId}:${sealed.blob.toString('base64')}`);
      offsets.push(offset);
      offset += batch.length;
    }
    const r = await this.#pool.query<{ base: string }>({
      name: 'dp_publish_stream',
      text: `WITH head AS (
               INSERT INTO dp_stream_heads AS h (run_id, last_seq) VALUES ($1, $2)
               ON CONFLICT (run_id) DO UPDATE SET last_seq = h.last_seq + excluded.last_seq
               RETURNING last_seq - $2 AS base
             ), ins AS (
               INSERT INTO dp_stream_events (run_id, seq, key_id, payload, size)
               SELECT $1, head.base + e.i, e.k, e.p, e.s FROM head, unnest($3::text[], $4::bytea[], $5::int[]) WITH ORDINALITY AS e(k, p, s, i)
             )
             SELECT head.base::text AS base, pg_notify('cairn_dp_stream', $1 || ':' || (head.base + n.o + 1) || ':' || n.p)
               FROM head, unnest($6::text[], $7::int[]) WITH ORDINALITY AS n(p, o, i) ORDER BY n.i`,
      values: [runId, pieces.length, keyIds, blobs, sizes, notices, offsets],
    });
    const base = Number(r.rows[0]?.base ?? 0);
    return { firstSeq: base + 1, lastSeq: base + pieces.length };
  }

  /**
   * Reads a run's stored stream events after sequence number `afterSeq` (0: from the start), in
   * order, at most `limit` of them.
   */
  async readStream(runId: string, afterSeq: number, limit = 500): Promise<SequencedStreamEvent[]> {
    const r = await this.#pool.query<{ seq_text: string; key_id: string; payload: Buffer }>({
      name: 'dp_read_stream',
      text: 'SELECT seq::text AS seq_text, key_id, payload FROM dp_stream_events WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3',
      values: [runId, afterSeq, limit],
    });
    const events: SequencedStreamEvent[] = [];
    for (const row of r.rows) {
      const event = JSON.parse(
        this.#keys.open({ keyId: row.key_id, blob: row.payload }, `${runId}:stream-event`).toString('utf8'),
      ) as unknown;
      if (isStreamEvent(event)) events.push({ ...event, seq: Number(row.seq_text) });
    }
    return events;
  }

  /**
   * Listens for live events of all runs (see {@link publishStream}) and calls `listener(runId,
   * events)` for each notification it can open. Reconnects after a connection loss and then calls
   * `onReconnect`: events published meanwhile were not heard, and are read back with
   * {@link readStream}. Returns a function that stops listening.
   */
  async onStream(
    listener: (runId: string, events: SequencedStreamEvent[]) => void,
    options: { onReconnect?: () => void } = {},
  ): Promise<() => Promise<void>> {
    return this.#listener.subscribe('cairn_dp_stream', {
      notification: (payload) => {
        const [runId, first, keyId, blob] = payload.split(':');
        const firstSeq = Number(first);
        if (!runId || !keyId || blob === undefined || !Number.isSafeInteger(firstSeq)) return;
        let json: string;
        try {
          json = this.#keys.open({ keyId, blob: Buffer.from(blob, 'base64') }, `${runId}:stream`).toString('utf8');
        } catch {
          // Sealed with a key this process does not hold, or not ours: nothing to deliver.
          return;
        }
        const events = unpackStreamEvents(json).map((e, i) => ({ ...e, seq: firstSeq + i }));
        if (events.length > 0) listener(runId, events);
      },
      gap: options.onReconnect,
    });
  }

  // ---- replay checks -------------------------------------------------------------------------

  /**
   * Asks the workers of this data plane to replay the run's journal against `workflowVersion` of
   * its workflow: stores a pending check and announces it on {@link REPLAY_CHECK_CHANNEL}. Checks
   * requested more than an hour ago are deleted on the way. Throws RUN_NOT_FOUND for a run this
   * payload store does not hold.
   */
  async requestReplayCheck(runId: string, workflowVersion: string): Promise<ReplayCheck> {
    await this.#pool.query(`DELETE FROM dp_replay_checks WHERE requested_at < now() - make_interval(secs => $1)`, [
      REPLAY_CHECK_KEPT_MS / 1000,
    ]);
    const r = await this.#pool.query<ReplayCheckRow>(
      `WITH ins AS (
         INSERT INTO dp_replay_checks (check_id, run_id, workflow_name, workflow_version, status)
         SELECT $1, run_id, workflow_name, $3, 'pending' FROM dp_runs WHERE run_id = $2
         RETURNING *
       ), note AS (
         SELECT pg_notify($4, workflow_name) FROM ins
       )
       SELECT ins.* FROM ins, note`,
      [newId(), runId, workflowVersion, REPLAY_CHECK_CHANNEL],
    );
    const row = r.rows[0];
    if (!row) throw new CairnError(ErrorCodes.RUN_NOT_FOUND, `Run ${runId} is not in this data plane's payload store.`);
    return this.#toReplayCheck(row);
  }

  /**
   * Claims the oldest pending replay check for one of `versions` (the workflow versions the caller
   * runs) for `claimedBy`; concurrent claimers skip each other's rows. Undefined when none waits.
   */
  async claimReplayCheck(
    claimedBy: string,
    versions: ReadonlyArray<{ readonly workflowName: string; readonly workflowVersion: string }>,
  ): Promise<ReplayCheck | undefined> {
    if (versions.length === 0) return undefined;
    const r = await this.#pool.query<ReplayCheckRow>(
      `UPDATE dp_replay_checks c SET status = 'running', claimed_by = $1, claimed_at = now()
        WHERE c.check_id = (
          SELECT p.check_id FROM dp_replay_checks p
           WHERE p.status = 'pending'
             AND (p.workflow_name, p.workflow_version) IN (SELECT * FROM unnest($2::text[], $3::text[]))
           ORDER BY p.requested_at LIMIT 1 FOR UPDATE SKIP LOCKED
        )
        RETURNING c.*`,
      [claimedBy, versions.map((v) => v.workflowName), versions.map((v) => v.workflowVersion)],
    );
    return r.rows[0] ? this.#toReplayCheck(r.rows[0]) : undefined;
  }

  /**
   * Stores the answer of a check `claimedBy` holds, sealed: `done` with the replay's outcome, or
   * `failed` with why it could not replay. Returns false when the check is gone or not held by it.
   */
  async finishReplayCheck(checkId: string, claimedBy: string, status: 'done' | 'failed', result: unknown): Promise<boolean> {
    const sealed = this.#seal(result, `replay-check:${checkId}`, 'The replay check result');
    const r = await this.#pool.query(
      `UPDATE dp_replay_checks SET status = $3, finished_at = now(), key_id = $4, result = $5
        WHERE check_id = $1 AND claimed_by = $2 AND status = 'running'`,
      [checkId, claimedBy, status, sealed.keyId, sealed.blob],
    );
    return r.rowCount === 1;
  }

  /**
   * Marks the checks still pending `afterMs` after they were requested as expired (no worker that
   * runs their version took them), and those a worker claimed more than `abandonedAfterMs` ago
   * without answering as failed with no result (the worker stopped). Returns how many expired.
   */
  async expireReplayChecks(afterMs: number, abandonedAfterMs = 2 * 60_000): Promise<number> {
    const r = await this.#pool.query(
      `UPDATE dp_replay_checks SET status = 'expired', finished_at = now()
        WHERE status = 'pending' AND requested_at < now() - make_interval(secs => $1)`,
      [afterMs / 1000],
    );
    await this.#pool.query(
      `UPDATE dp_replay_checks SET status = 'failed', finished_at = now()
        WHERE status = 'running' AND claimed_at < now() - make_interval(secs => $1)`,
      [abandonedAfterMs / 1000],
    );
    return r.rowCount ?? 0;
  }

  /** A replay check with its result opened; undefined when there is no such check. */
  async getReplayCheck(checkId: string): Promise<ReplayCheck | undefined> {
    const r = await this.#pool.query<ReplayCheckRow>('SELECT * FROM dp_replay_checks WHERE check_id = $1', [checkId]);
    return r.rows[0] ? this.#toReplayCheck(r.rows[0]) : undefined;
  }

  /**
   * Listens for replay check requests and calls `listener(workflowName)` for each, and once more
   * after a reconnect (a request may have been missed meanwhile). Returns a function that stops.
   */
  async onReplayCheckRequested(listener: (workflowName: string | undefined) => void): Promise<() => Promise<void>> {
    return this.#listener.subscribe(REPLAY_CHECK_CHANNEL, { notification: listener, gap: () => listener(undefined) });
  }

  #toReplayCheck(row: ReplayCheckRow): ReplayCheck {
    return {
      checkId: row.check_id,
      runId: row.run_id,
      workflowName: row.workflow_name,
      workflowVersion: row.workflow_version,
      status: row.status,
      requestedAt: row.requested_at.getTime(),
      claimedBy: row.claimed_by ?? undefined,
      finishedAt: row.finished_at?.getTime(),
      result: row.key_id && row.result ? this.#open(row.key_id, row.result, `replay-check:${row.check_id}`) : undefined,
    };
  }
}
