// What went wrong talking to a server, said so a person can act on it. Every panel shows these
// messages instead of going blank.

export type ApiErrorKind =
  /** The server answered with an error (`{ error: { code, message } }`). */
  | 'answer'
  /** The server could not be reached at all (down, wrong URL, or CORS refused the origin). */
  | 'unreachable'
  /** No gateway is configured for the data plane. */
  | 'not_configured';

export class ApiError extends Error {
  constructor(
    readonly kind: ApiErrorKind,
    message: string,
    readonly status: number | null = null,
    /** The server's stable code, e.g. `CAIRN-1144`. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

/** The error a server's JSON answer carries, or one made from its status. */
export function errorFromAnswer(status: number, body: unknown, what: string): ApiError {
  const error = (body as { error?: { code?: unknown; message?: unknown } } | null)?.error;
  const code = typeof error?.code === 'string' ? error.code : null;
  const message = typeof error?.message === 'string' ? error.message : `${what} answered HTTP ${status}`;
  return new ApiError('answer', message, status, code);
}
