// HTTP to the gateway over fetch: the bearer token, JSON in and out, the gateway's error body as a
// CairnClientError, and retries of what may be repeated safely.
import { CairnError, checkJsonValue } from '@cairn/common/core';
import { CairnClientError, ErrorCodes, knownCode, type RequestIssue } from './errors.js';

/** How requests that may be repeated are retried on 503 and on network failures. */
export interface RetryOptions {
  /** Tries in all, the first included (default 5; 1 turns retries off). */
  readonly maxAttempts?: number;
  /** The first wait (default 200 ms), doubling up to `maxDelayMs` (default 5 s), with jitter. */
  readonly initialDelayMs?: number;
  readonly maxDelayMs?: number;
}

export interface TransportOptions {
  readonly gatewayUrl: string;
  readonly token?: string | undefined;
  readonly fetch?: typeof globalThis.fetch | undefined;
  readonly headers?: Readonly<Record<string, string>> | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly retry?: RetryOptions | undefined;
}

export interface Request {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly query?: Readonly<Record<string, string | undefined>>;
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: unknown;
  /** Repeating it is safe: retried on 503 and network failures. */
  readonly idempotent: boolean;
  readonly signal?: AbortSignal | undefined;
}

export interface Answer {
  readonly status: number;
  readonly body: unknown;
  readonly headers: Headers;
}

/** The gateway's statuses that are worth retrying (it is shutting down, or cannot reach a dependency). */
const RETRY_STATUSES = new Set([502, 503, 504]);

export class Transport {
  readonly baseUrl: string;
  readonly #token: string | undefined;
  readonly #fetch: typeof globalThis.fetch;
  readonly #headers: Readonly<Record<string, string>>;
  readonly #signal: AbortSignal | undefined;
  readonly #maxAttempts: number;
  readonly #initialDelayMs: number;
  readonly #maxDelayMs: number;

  constructor(options: TransportOptions) {
    if (typeof options.gatewayUrl !== 'string' || !/^https?:\/\//.test(options.gatewayUrl)) {
      throw new CairnClientError(
        ErrorCodes.INVALID_ARGUMENT,
        `gatewayUrl must be the gateway's http(s) URL, such as http://localhost:4000 (got ${JSON.stringify(options.gatewayUrl)})`,
      );
    }
    this.baseUrl = options.gatewayUrl.replace(/\/+$/, '');
    this.#token = options.token;
    // Bound, so that a fetch kept from `window` keeps its receiver.
    this.#fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.#headers = options.headers ?? {};
    this.#signal = options.signal;
    this.#maxAttempts = Math.max(1, options.retry?.maxAttempts ?? 5);
    this.#initialDelayMs = options.retry?.initialDelayMs ?? 200;
    this.#maxDelayMs = options.retry?.maxDelayMs ?? 5_000;
  }

  url(path: string, query?: Readonly<Record<string, string | undefined>>): string {
    const params = Object.entries(query ?? {}).filter((e): e is [string, string] => e[1] !== undefined);
    return `${this.baseUrl}${path}${params.length === 0 ? '' : `?${new URLSearchParams(params).toString()}`}`;
  }

  /** The client's signal and the call's, as one. */
  signal(extra?: AbortSignal): AbortSignal | undefined {
    const signals = [this.#signal, extra].filter((s): s is AbortSignal => s !== undefined);
    return signals.length === 0 ? undefined : signals.length === 1 ? signals[0] : AbortSignal.any(signals);
  }

  /** Sends a request and reads its JSON answer; an error status becomes a CairnClientError. */
  async json(request: Request): Promise<Answer> {
    return this.#retrying(request, async (signal) => {
      const res = await this.#send(request, signal, 'application/json');
      const text = await res.text().catch((err: unknown) => {
        throw this.unreachable(request.path, err, signal);
      });
      let body: unknown;
      try {
        body = text === '' ? undefined : JSON.parse(text);
      } catch {
        if (res.ok) {
          throw new CairnClientError(
            ErrorCodes.PROTOCOL,
            `the gateway at ${this.baseUrl} answered ${request.method} ${request.path} with something that is not JSON (status ${res.status}): is gatewayUrl the gateway's URL?`,
            { status: res.status },
          );
        }
      }
      if (!res.ok) throw this.refused(request, res, body, text);
      return { status: res.status, body, headers: res.headers };
    });
  }

  /** Opens a streaming answer (Server-Sent Events); an error status becomes a CairnClientError. */
  async open(request: Request): Promise<Response> {
    return this.#retrying(request, async (signal) => {
      const res = await this.#send(request, signal, 'text/event-stream');
      if (!res.ok) {
        const text = await res.text().catch(() => '');
        let body: unknown;
        try {
          body = JSON.parse(text);
        } catch {
          body = undefined;
        }
        throw this.refused(request, res, body, text);
      }
      return res;
    });
  }

  /** Waits before retry number `attempt` (1 for the first retry). */
  async backoff(attempt: number, signal: AbortSignal | undefined): Promise<void> {
    const base = Math.min(this.#maxDelayMs, this.#initialDelayMs * 2 ** (attempt - 1));
    await sleep(base / 2 + Math.random() * (base / 2), signal);
  }

  get maxAttempts(): number {
    return this.#maxAttempts;
  }

  /**
   * A failure is worth retrying: no answer, a 503 or 504, or a 502 of a proxy (a 502 with a Cairn
   * code of its own is the gateway's misconfiguration, which waiting does not fix).
   */
  static retryable(err: unknown): boolean {
    if (!(err instanceof CairnClientError)) return false;
    if (err.status === undefined || err.status === 502) return err.code === ErrorCodes.UNAVAILABLE;
    return RETRY_STATUSES.has(err.status);
  }

  unreachable(path: string, err: unknown, signal: AbortSignal | undefined): unknown {
    if (signal?.aborted) return signal.reason ?? err;
    const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
    const why = cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err));
    return new CairnClientError(
      ErrorCodes.UNAVAILABLE,
      `could not reach the Cairn gateway at ${this.baseUrl} (${path}: ${why}); check gatewayUrl and that the gateway is running`,
      { cause: err },
    );
  }

  refused(request: Request, res: Response, body: unknown, text: string): CairnClientError {
    const error = (body as { error?: { code?: unknown; message?: unknown; issues?: unknown } } | undefined)?.error;
    const code = knownCode(typeof error?.code === 'string' ? error.code : undefined) ?? codeForStatus(res.status);
    const message =
      typeof error?.message === 'string'
        ? error.message
        : `${request.method} ${request.path} answered ${res.status}: ${text.slice(0, 200)}`;
    const requestId = res.headers.get('x-request-id') ?? undefined;
    return new CairnClientError(code, message, {
      status: res.status,
      ...(requestId === undefined ? {} : { requestId }),
      ...(Array.isArray(error?.issues) ? { issues: error.issues as RequestIssue[] } : {}),
    });
  }

  async #send(request: Request, signal: AbortSignal | undefined, accept: string): Promise<Response> {
    const headers: Record<string, string> = { accept, ...this.#headers, ...(request.headers ?? {}) };
    if (this.#token !== undefined) headers['authorization'] = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (request.body !== undefined) {
      // JSON.stringify would turn Infinity (or 1e400) into null and keep a lone surrogate: refuse
      // them here, with the gateway's codes, before anything is sent.
      try {
        checkJsonValue(request.body, 'the request body');
      } catch (err) {
        if (err instanceof CairnError) throw new CairnClientError(err.code, err.rawMessage, { cause: err });
        throw err;
      }
      body = JSON.stringify(request.body);
      headers['content-type'] = 'application/json';
    }
    try {
      return await this.#fetch(this.url(request.path, request.query), {
        method: request.method,
        headers,
        ...(body === undefined ? {} : { body }),
        ...(signal === undefined ? {} : { signal }),
      });
    } catch (err) {
      throw this.unreachable(request.path, err, signal);
    }
  }

  async #retrying<T>(request: Request, attempt: (signal: AbortSignal | undefined) => Promise<T>): Promise<T> {
    const signal = this.signal(request.signal);
    for (let n = 1; ; n++) {
      try {
        return await attempt(signal);
      } catch (err) {
        if (signal?.aborted || !request.idempotent || n >= this.#maxAttempts || !Transport.retryable(err)) throw err;
        await this.backoff(n, signal);
      }
    }
  }
}

function codeForStatus(status: number) {
  switch (status) {
    case 400:
      return ErrorCodes.INVALID_ARGUMENT;
    case 401:
      return ErrorCodes.UNAUTHENTICATED;
    case 403:
      return ErrorCodes.FORBIDDEN;
    case 404:
      return ErrorCodes.NOT_FOUND;
    case 409:
      return ErrorCodes.CONFLICT;
    case 413:
      return ErrorCodes.PAYLOAD_TOO_LARGE;
    case 429:
      return ErrorCodes.RATE_LIMITED;
    case 502:
    case 503:
    case 504:
      return ErrorCodes.UNAVAILABLE;
    default:
      return ErrorCodes.INTERNAL;
  }
}

/** Waits `ms`; rejects with the signal's reason when it aborts. */
export function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason as Error);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason as Error);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One Server-Sent Event. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
  /** The event's id, when it had one. */
  readonly id: string | undefined;
}

/**
 * Reads Server-Sent Events from a response body, per the HTML standard: lines end with CRLF, LF or
 * CR; `event`, `data` (several lines join with LF), `id` and comments; an event is dispatched at a
 * blank line, and one cut off by the end of the stream is dropped.
 */
export async function* readSse(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let event = '';
  let data: string[] = [];
  let id: string | undefined;
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        // A CR at the very end may be the first half of a CRLF: wait for more.
        if (end < 0 || (buffer[end] === '\r' && end === buffer.length - 1)) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith('\r\n', end) ? 2 : 1));
        if (line === '') {
          if (data.length > 0) yield { event: event === '' ? 'message' : event, data: data.join('\n'), id };
          event = '';
          data = [];
          id = undefined;
          continue;
        }
        if (line.startsWith(':')) continue;
        const colon = line.indexOf(':');
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? '' : line.slice(colon + 1);
        if (value.startsWith(' ')) value = value.slice(1);
        if (field === 'event') event = value;
        else if (field === 'data') data.push(value);
        else if (field === 'id' && !value.includes('\0')) id = value;
      }
    }
  } finally {
    await reader.cancel().catch(() => undefined);
    reader.releaseLock();
  }
}
