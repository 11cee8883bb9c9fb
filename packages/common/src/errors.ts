/**
 * Stable error codes. A code is what a user searches for (`[CAIRN-1102]`); the message says what
 * was wrong and what to do. Ranges: 1xxx input and configuration, 2xxx workflow execution,
 * 3xxx data-plane storage, 4xxx control plane, 5xxx protocol.
 */
export const ErrorCodes = {
  // 1xxx — input and configuration
  INVALID_CONFIG: 'CAIRN-1001',
  INVALID_ARGUMENT: 'CAIRN-1101',
  MALFORMED_JSON: 'CAIRN-1102',
  PAYLOAD_TOO_LARGE: 'CAIRN-1103',
  UNAUTHENTICATED: 'CAIRN-1104',
  NOT_FOUND: 'CAIRN-1105',
  WORKFLOW_NOT_FOUND: 'CAIRN-1106',
  INVALID_NAME: 'CAIRN-1107',
  CONFLICT: 'CAIRN-1108',
  UNSUPPORTED_MEDIA_TYPE: 'CAIRN-1109',
  UNAVAILABLE: 'CAIRN-1110',
  FORBIDDEN: 'CAIRN-1111',
  QUOTA_EXCEEDED: 'CAIRN-1112',
  RATE_LIMITED: 'CAIRN-1113',
  WORKFLOW_NOT_REGISTERED: 'CAIRN-1114',
  FAILED_PRECONDITION: 'CAIRN-1115',
  /**
   * A run input or a signal body does not match the schema its workflow declares (checked in the
   * data plane: by the gateway before anything is stored, and by the worker at run start).
   */
  INVALID_INPUT: 'CAIRN-1116',
  /**
   * A worker declares a schema for a workflow version that differs from the one catalogued for that
   * version in the data plane: versions are immutable, so the change needs a new version.
   */
  SCHEMA_CONFLICT: 'CAIRN-1117',
  /** @cairn/client: the run was terminated by an operator (no compensations ran). */
  RUN_TERMINATED: 'CAIRN-1120',
  /** @cairn/client: the run passed its run timeout and was ended. */
  RUN_TIMED_OUT: 'CAIRN-1121',
  /** @cairn/client: `result({ timeoutMs })` waited that long and the run had not ended (it goes on). */
  WAIT_TIMEOUT: 'CAIRN-1122',
  // 113x — the local stack (`cairn dev`)
  /** A setting of the local stack (flag, environment, cairn.config.json or package.json "cairn") is invalid. */
  DEV_CONFIG_INVALID: 'CAIRN-1130',
  /** A port the local stack needs is taken by another process. */
  PORT_IN_USE: 'CAIRN-1131',
  /** No local stack has run in this project folder yet (no .cairn/endpoints.json). */
  DEV_STACK_NOT_FOUND: 'CAIRN-1132',
  // 114x — tenancy and credentials
  /** `organizations create` named an organisation that exists: it never hands out a key inside an existing tenant. */
  ORGANIZATION_EXISTS: 'CAIRN-1140',
  /**
   * The self-hosted bootstrap (CAIRN_BOOTSTRAP_ADMIN_KEY) refuses to act: its organisation was not
   * created by the bootstrap, already has another bootstrap key, or the key belongs elsewhere.
   */
  BOOTSTRAP_REFUSED: 'CAIRN-1141',
  /** Too many failed credential attempts from one address: wait for Retry-After (HTTP 429, gRPC RESOURCE_EXHAUSTED). */
  CREDENTIAL_THROTTLED: 'CAIRN-1142',
  /** A configured bearer token is too weak (too short, too few kinds of characters, a pattern). */
  WEAK_CREDENTIAL: 'CAIRN-1143',
  /** A gateway token lacks the scope a route needs (HTTP 403). */
  SCOPE_MISSING: 'CAIRN-1144',
  // 115x — the audit log and its signed checkpoints
  /** The audit chain does not verify: an entry is missing, changed, or the chain stops before its recorded head. */
  AUDIT_CHAIN_BROKEN: 'CAIRN-1150',
  /** A checkpoint file, a public key or the audit signing key is not in the expected format. */
  AUDIT_CHECKPOINT_INVALID: 'CAIRN-1151',
  /** A checkpoint's signature does not verify, or it names a key that is not trusted. */
  AUDIT_CHECKPOINT_REJECTED: 'CAIRN-1152',
  /** The chain no longer contains a signed checkpoint's head: it was truncated or its history rewritten. */
  AUDIT_CHECKPOINT_MISMATCH: 'CAIRN-1153',
  /** The control plane has no audit signing key, so it cannot sign checkpoints. */
  AUDIT_SIGNING_DISABLED: 'CAIRN-1154',
  /**
   * The control plane's database is behind this build and the control plane's own (service) role
   * may not change the schema: run `control-plane migrate` with the owner role first.
   */
  DATABASE_NOT_MIGRATED: 'CAIRN-1155',
  /**
   * An audit-log prune was refused: it runs only as the schema's owner (`control-plane audit prune`),
   * only up to a signed checkpoint whose signature and chain verify, never past it.
   */
  AUDIT_PRUNE_REFUSED: 'CAIRN-1156',
  // 117x — limits: what one credential may use of a shared control plane, and hostile input
  /** A database statement ran past the control plane's `statement_timeout` and was cancelled. */
  STATEMENT_TIMEOUT: 'CAIRN-1170',
  /** A worker stream did not read what the control plane sent it for too long (or let too much queue up): it is ended. */
  STREAM_STALLED: 'CAIRN-1171',
  /** A data plane has as many worker streams, or `WaitRun` calls, open on this replica as its limit allows. */
  TOO_MANY_CALLS: 'CAIRN-1172',
  /** A JSON value or JSON Schema is nested deeper than the limit (checked without recursion). */
  TOO_DEEP: 'CAIRN-1173',
  /** A JSON number does not fit in a double (`1e400`): it would silently become `null`. */
  NUMBER_OUT_OF_RANGE: 'CAIRN-1174',
  /** A JSON string holds a lone UTF-16 surrogate (`"\ud800"`): it cannot be stored and served as valid JSON. */
  INVALID_UNICODE: 'CAIRN-1175',
  // 119x — run journals an auditor can trust
  /**
   * A run's journal does not verify: an entry was changed or deleted in the data plane, or the
   * journal head the control plane recorded for the run was changed (`cairn runs verify`).
   */
  JOURNAL_CHAIN_BROKEN: 'CAIRN-1190',
  /**
   * A run task names a workflow other than the one the run was stored with in the data plane: the
   * worker refuses to run it (a forged or misrouted task).
   */
  TASK_WORKFLOW_MISMATCH: 'CAIRN-1191',
  /** The gateway has no export signing key (CAIRN_GATEWAY_EXPORT_SIGNING_KEY_FILE), so it cannot sign journal exports. */
  EXPORT_SIGNING_DISABLED: 'CAIRN-1192',
  /** A journal export does not verify: its signature, a line, or a run's chain does not match. */
  JOURNAL_EXPORT_INVALID: 'CAIRN-1193',
  // 2xxx — workflow execution
  NON_DETERMINISM: 'CAIRN-2001',
  STEP_FAILED: 'CAIRN-2002',
  STEP_TIMEOUT: 'CAIRN-2003',
  TERMINAL: 'CAIRN-2004',
  SIGNAL_TIMEOUT: 'CAIRN-2005',
  CANCELLED: 'CAIRN-2006',
  WORKFLOW_FAILED: 'CAIRN-2007',
  NOT_SERIALIZABLE: 'CAIRN-2008',
  LEASE_LOST: 'CAIRN-2009',
  // 3xxx — data-plane storage
  FENCED: 'CAIRN-3001',
  DECRYPT_FAILED: 'CAIRN-3002',
  UNKNOWN_KEY: 'CAIRN-3003',
  RUN_NOT_FOUND: 'CAIRN-3004',
  /** A schedule's input payload is not in the payload store (it was deleted). */
  PAYLOAD_NOT_FOUND: 'CAIRN-3005',
  /**
   * An encryption or HMAC key a process was started with does not match the payload store's key
   * check for it (another key was recorded under that ID first): data sealed or digested with it
   * would be unreadable or different for the other processes of the data plane.
   */
  KEY_MISMATCH: 'CAIRN-3006',
  // 4xxx — control plane
  INTERNAL: 'CAIRN-4000',
  // 5xxx — protocol
  PROTOCOL: 'CAIRN-5001',
} as const;

export type ErrorCodeString = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * The one base error class of the project. It carries a stable code, and the message always
 * starts with that code in brackets so logs and terminals show it.
 */
export class CairnError extends Error {
  readonly code: ErrorCodeString;
  /** Extra structured detail safe for the component that raised it. */
  readonly details: Readonly<Record<string, unknown>>;

  constructor(code: ErrorCodeString, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(`[${code}] ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CairnError';
    this.code = code;
    this.details = Object.freeze({ ...(options?.details ?? {}) });
  }

  /** The message without the leading `[CAIRN-NNNN] `. */
  get rawMessage(): string {
    const prefix = `[${this.code}] `;
    return this.message.startsWith(prefix) ? this.message.slice(prefix.length) : this.message;
  }

  /** Converts anything thrown into a CairnError, keeping an existing one as it is. */
  static from(reason: unknown, fallback: ErrorCodeString = ErrorCodes.INTERNAL): CairnError {
    if (reason instanceof CairnError) return reason;
    if (reason instanceof Error) return new CairnError(fallback, reason.message, { cause: reason });
    return new CairnError(fallback, String(reason));
  }
}
