import { isIP } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { CairnError, ErrorCodes, retryAfterSeconds, sourceOf, type Logger } from '@cairn/common';
import { errorSummary, isDatabaseUnavailable, isStatementTimeout, STATEMENT_TIMEOUT_MESSAGE } from '../db/database.js';
import type { StreamEnd } from '../dispatch/worker-session.js';

const BY_CODE: Partial<Record<string, grpc.status>> = {
  [ErrorCodes.INVALID_ARGUMENT]: grpc.status.INVALID_ARGUMENT,
  [ErrorCodes.INVALID_NAME]: grpc.status.INVALID_ARGUMENT,
  [ErrorCodes.MALFORMED_JSON]: grpc.status.INVALID_ARGUMENT,
  [ErrorCodes.UNAUTHENTICATED]: grpc.status.UNAUTHENTICATED,
  [ErrorCodes.NOT_FOUND]: grpc.status.NOT_FOUND,
  [ErrorCodes.WORKFLOW_NOT_FOUND]: grpc.status.NOT_FOUND,
  [ErrorCodes.CONFLICT]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.PROTOCOL]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.UNAVAILABLE]: grpc.status.UNAVAILABLE,
  [ErrorCodes.FORBIDDEN]: grpc.status.PERMISSION_DENIED,
  [ErrorCodes.QUOTA_EXCEEDED]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCodes.RATE_LIMITED]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCodes.WORKFLOW_NOT_REGISTERED]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.FAILED_PRECONDITION]: grpc.status.FAILED_PRECONDITION,
  [ErrorCodes.CREDENTIAL_THROTTLED]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCodes.TOO_MANY_CALLS]: grpc.status.RESOURCE_EXHAUSTED,
  [ErrorCodes.STATEMENT_TIMEOUT]: grpc.status.UNAVAILABLE,
};

const BY_END: Record<StreamEnd['kind'], grpc.status> = {
  ok: grpc.status.OK,
  failed_precondition: grpc.status.FAILED_PRECONDITION,
  permission_denied: grpc.status.PERMISSION_DENIED,
  invalid_argument: grpc.status.INVALID_ARGUMENT,
  unauthenticated: grpc.status.UNAUTHENTICATED,
  unavailable: grpc.status.UNAVAILABLE,
  resource_exhausted: grpc.status.RESOURCE_EXHAUSTED,
};

export function endStatus(end: StreamEnd): grpc.status {
  return BY_END[end.kind];
}

/**
 * Maps anything thrown to a gRPC status. Domain errors keep their message; a database or network
 * failure is UNAVAILABLE (the caller retries); anything else is INTERNAL with no detail.
 */
export function toServiceError(error: unknown, logger: Logger): Partial<grpc.StatusObject> {
  if (error instanceof CairnError) {
    const code = BY_CODE[error.code];
    const wait = retryAfterSeconds(error);
    if (code !== undefined && wait !== undefined) {
      // Throttled: the wait travels as a `retry-after` trailer (seconds) as well as in the message.
      const metadata = new grpc.Metadata();
      metadata.set('retry-after', String(wait));
      return { code, details: error.message, metadata };
    }
    if (code !== undefined) return { code, details: error.message };
  }
  const failure = errorSummary(error);
  if (isStatementTimeout(error)) {
    logger.warn({ err: failure }, 'request failed: a database statement ran past the statement timeout');
    return { code: grpc.status.UNAVAILABLE, details: `[${ErrorCodes.STATEMENT_TIMEOUT}] ${STATEMENT_TIMEOUT_MESSAGE}` };
  }
  if (isDatabaseUnavailable(error)) {
    logger.warn({ err: failure }, 'request failed: database or network error');
    return { code: grpc.status.UNAVAILABLE, details: 'control plane could not reach its database; retry' };
  }
  logger.error({ err: failure }, 'request failed: internal error');
  return { code: grpc.status.INTERNAL, details: 'internal error in the control plane; see its logs' };
}

/**
 * The client's address as a throttle source: the peer of the gRPC connection. Behind a proxy that
 * is the proxy's address; see the README on throttling.
 */
export function peerAddress(call: { getPeer(): string }): string {
  // grpc-js gives `${remoteAddress}:${remotePort}` (an IPv6 address without brackets), or the
  // address alone when the port is unknown.
  const peer = call.getPeer().replace(/^(ipv4|ipv6):/, '');
  if (isIP(peer.replace(/^\[|\]$/g, ''))) return sourceOf(peer);
  const colon = peer.lastIndexOf(':');
  return sourceOf(colon > 0 && /^\d+$/.test(peer.slice(colon + 1)) ? peer.slice(0, colon) : peer);
}

/** The bearer token of a call (never logged). */
export function bearerToken(metadata: grpc.Metadata): string | undefined {
  const value = metadata.get('authorization')[0];
  if (typeof value !== 'string') return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(value);
  return match?.[1];
}

/** Request messages are decoded by the handlers, so a malformed frame gets a clear status. */
export function rawRequests(definition: grpc.ServiceDefinition): grpc.ServiceDefinition {
  const out: Record<string, grpc.MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    out[name] = { ...method, requestDeserialize: (bytes: Buffer) => bytes };
  }
  return out;
}
