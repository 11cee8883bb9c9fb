import { CairnError, ErrorCodes, type ErrorCodeString } from '@cairn/common';
import { ControlPlaneError } from './control-plane.js';

/** The JSON body of every error response (see schemas.ts). */
export type { ErrorBody } from './schemas.js';
import type { ErrorBody } from './schemas.js';

/** One problem of a request that failed validation, with where it is. */
export interface RequestIssue {
  readonly in: 'body' | 'query' | 'path' | 'header';
  /** Dotted path inside that part (`input.items.0.id`); empty for the whole part. */
  readonly path: string;
  readonly message: string;
}

// The HTTP edge's reading of the domain codes; the services never speak HTTP.
const STATUS: Partial<Record<ErrorCodeString, number>> = {
  [ErrorCodes.INVALID_ARGUMENT]: 400,
  [ErrorCodes.MALFORMED_JSON]: 400,
  [ErrorCodes.INVALID_INPUT]: 400,
  // JSON that parses but cannot be stored and served back as the same JSON.
  [ErrorCodes.TOO_DEEP]: 400,
  [ErrorCodes.NUMBER_OUT_OF_RANGE]: 400,
  [ErrorCodes.INVALID_UNICODE]: 400,
  [ErrorCodes.PAYLOAD_TOO_LARGE]: 413,
  [ErrorCodes.UNAUTHENTICATED]: 401,
  [ErrorCodes.FORBIDDEN]: 403,
  [ErrorCodes.SCOPE_MISSING]: 403,
  // Too many failed token attempts from the client's address (with Retry-After).
  [ErrorCodes.CREDENTIAL_THROTTLED]: 429,
  [ErrorCodes.NOT_FOUND]: 404,
  [ErrorCodes.WORKFLOW_NOT_FOUND]: 404,
  [ErrorCodes.INVALID_NAME]: 400,
  [ErrorCodes.CONFLICT]: 409,
  [ErrorCodes.EXPORT_SIGNING_DISABLED]: 409,
  [ErrorCodes.UNSUPPORTED_MEDIA_TYPE]: 415,
  [ErrorCodes.UNAVAILABLE]: 503,
  // A project quota or rate limit of the control plane refused the request.
  [ErrorCodes.QUOTA_EXCEEDED]: 429,
  [ErrorCodes.RATE_LIMITED]: 429,
  [ErrorCodes.NOT_SERIALIZABLE]: 400,
  [ErrorCodes.RUN_NOT_FOUND]: 404,
  // The control plane refused the gateway's own credential: a gateway misconfiguration, not the caller's fault.
  [ErrorCodes.INVALID_CONFIG]: 502,
  [ErrorCodes.DECRYPT_FAILED]: 500,
  [ErrorCodes.UNKNOWN_KEY]: 500,
  [ErrorCodes.INTERNAL]: 500,
  // The control plane answered something the contract does not allow.
  [ErrorCodes.PROTOCOL]: 502,
};

/** The HTTP status for a Cairn error. */
export function httpStatus(err: CairnError): number {
  // An unexpected failure of the control plane is an upstream failure.
  if (err instanceof ControlPlaneError && err.code === ErrorCodes.INTERNAL) return 502;
  return STATUS[err.code] ?? 500;
}

export function errorBody(code: ErrorCodeString, message: string, issues?: readonly RequestIssue[]): ErrorBody {
  return { error: { code, message, ...(issues && issues.length > 0 ? { issues: [...issues] } : {}) } };
}

/**
 * The issues a 400 carries: a CairnError's `details.issues`, when its thrower listed them (the
 * route table does for requests that fail their schemas).
 */
export function issuesOf(err: CairnError): RequestIssue[] | undefined {
  const issues = err.details['issues'];
  return Array.isArray(issues) ? (issues as RequestIssue[]) : undefined;
}

/** Errors a caller sends: bad names, ids, fields. */
export function invalid(message: string): CairnError {
  return new CairnError(ErrorCodes.INVALID_ARGUMENT, message);
}

/** Node and pg error codes that mean the database could not be reached or is going away. */
const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'EPIPE']);

function isConnectionFailure(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (CONNECTION_CODES.has(code)) return true;
    // SQLSTATE classes: 08 connection exception, 53 insufficient resources, 57P operator intervention.
    if (/^(08|53|57P)/.test(code)) return true;
  }
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error/i.test(err.message);
}

/**
 * Converts a payload-store failure into a Cairn error: Cairn errors pass through, a database that
 * cannot be reached is CAIRN-1110 (retry), anything else an internal error.
 */
export function storeError(err: unknown): CairnError {
  if (err instanceof CairnError) return err;
  if (isConnectionFailure(err)) {
    return new CairnError(
      ErrorCodes.UNAVAILABLE,
      "the data plane's payload store (CAIRN_DP_DATABASE_URL) is unreachable; retry the request",
      { cause: err },
    );
  }
  return CairnError.from(err);
}
