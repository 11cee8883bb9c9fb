// JSON over HTTP to the control plane and the gateway. Both answer errors as
// {"error":{"code":"CAIRN-NNNN","message":"…"}}; they become CliErrors with the server's message, a
// stable exit code and a hint. A server that cannot be reached is named by its URL.
import { CliError, ExitCode, exitCodeForStatus } from './errors.js';

export type Query = Record<string, string | number | boolean | readonly string[] | undefined>;

export interface RequestOptions {
  readonly body?: unknown;
  readonly query?: Query;
  readonly headers?: Record<string, string>;
  readonly timeoutMs?: number;
  /** Statuses answered as values instead of errors (e.g. 202 of a long poll is never an error anyway). */
  readonly accept?: readonly number[];
}

export interface Answer<T> {
  readonly status: number;
  readonly body: T;
  readonly headers: Headers;
}

/** Which server a client talks to: names it in errors and picks the hints. */
export type ServerKind = 'control plane' | 'gateway';

const DEFAULT_TIMEOUT_MS = 30_000;

export class HttpClient {
  readonly baseUrl: string;
  readonly kind: ServerKind;
  readonly #token: string | undefined;

  constructor(kind: ServerKind, baseUrl: string, token: string | undefined) {
    this.kind = kind;
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.#token = token;
  }

  url(path: string, query?: Query): string {
    const u = new URL(this.baseUrl + path);
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v === undefined) continue;
      if (Array.isArray(v)) for (const item of v as readonly string[]) u.searchParams.append(k, item);
      else u.searchParams.set(k, String(v));
    }
    return u.toString();
  }

  /** Raw fetch with the bearer token; connection failures become a CliError naming the URL. */
  async fetch(method: string, path: string, options: RequestOptions = {}): Promise<Response> {
    const url = this.url(path, options.query);
    const headers: Record<string, string> = { accept: 'application/json', ...(options.headers ?? {}) };
    if (this.#token) headers['authorization'] = `Bearer ${this.#token}`;
    let body: string | undefined;
    if (options.body !== undefined) {
      body = JSON.stringify(options.body);
      headers['content-type'] ??= 'application/json';
    }
    try {
      return await fetch(url, {
        method,
        headers,
        ...(body === undefined ? {} : { body }),
        signal: AbortSignal.timeout(options.timeoutMs ?? DEFAULT_TIMEOUT_MS),
      });
    } catch (err) {
      throw unreachable(this.kind, this.baseUrl, err);
    }
  }

  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<Answer<T>> {
    const res = await this.fetch(method, path, options);
    const text = await res.text().catch((err: unknown) => {
      throw unreachable(this.kind, this.baseUrl, err);
    });
    let parsed: unknown = undefined;
    if (text !== '') {
      try {
        parsed = JSON.parse(text);
      } catch {
        if (res.ok) {
          throw new CliError(
            ExitCode.FAILURE,
            `The ${this.kind} at ${this.baseUrl} answered ${method} ${path} with something that is not JSON (status ${res.status}).`,
            { hint: `Check that ${this.baseUrl} is the ${this.kind}'s URL.` },
          );
        }
      }
    }
    if (res.ok || options.accept?.includes(res.status)) return { status: res.status, body: parsed as T, headers: res.headers };
    throw this.#error(method, path, res.status, parsed, text);
  }

  async get<T>(path: string, query?: Query): Promise<T> {
    return (await this.request<T>('GET', path, query ? { query } : {})).body;
  }

  async post<T>(path: string, body?: unknown, options: Omit<RequestOptions, 'body'> = {}): Promise<T> {
    return (await this.request<T>('POST', path, { ...options, body: body ?? {} })).body;
  }

  #error(method: string, path: string, status: number, parsed: unknown, text: string): CliError {
    const error = (parsed as { error?: { code?: unknown; message?: unknown } } | undefined)?.error;
    const code = typeof error?.code === 'string' ? error.code : undefined;
    const serverMessage = typeof error?.message === 'string' ? error.message : text.slice(0, 300) || `HTTP ${status}`;
    const exitCode = exitCodeForStatus(status);
    return new CliError(exitCode, `${this.kind} refused ${method} ${path}: ${serverMessage}`, {
      code,
      hint: hintFor(this.kind, status, this.baseUrl),
    });
  }
}

function hintFor(kind: ServerKind, status: number, baseUrl: string): string | undefined {
  if (status === 401) {
    return kind === 'control plane'
      ? 'Log in again with a valid API key: `cairn login` (or set CAIRN_API_KEY).'
      : "Give one of the gateway's CAIRN_GATEWAY_TOKENS: `cairn login --gateway-token-stdin` (or set CAIRN_GATEWAY_TOKEN).";
  }
  if (status === 403) {
    return kind === 'control plane'
      ? 'Use an API key whose role has this permission (the message names the roles), or ask a project admin.'
      : 'Use a gateway token with the scope the message names (`cairn login --gateway-token-stdin`, or CAIRN_GATEWAY_TOKEN); the gateway operator sets scopes in CAIRN_GATEWAY_TOKENS (token:read+start+signal).';
  }
  if (status === 429) {
    return `The ${kind} refused too many requests or failed credentials from this address; wait for the time it names and retry with a valid credential.`;
  }
  if (status === 404 && kind === 'control plane') return 'Check the name or ID, and the project (`--project`, `cairn projects list`).';
  if (status === 503) return `The ${kind} at ${baseUrl} is not ready or is shutting down; retry in a moment.`;
  return undefined;
}

/** A connection-level failure, with the URL and the cause. */
export function unreachable(kind: ServerKind, baseUrl: string, err: unknown): CliError {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  const name = (err as { name?: string } | undefined)?.name;
  const why =
    name === 'TimeoutError' || name === 'AbortError'
      ? 'no answer in time'
      : (cause?.code ?? cause?.message ?? (err instanceof Error ? err.message : String(err)));
  const setting = kind === 'control plane' ? '--control-plane / CAIRN_CONTROL_PLANE_URL' : '--gateway / CAIRN_GATEWAY_URL';
  return new CliError(ExitCode.UNREACHABLE, `Cannot reach the ${kind} at ${baseUrl} (${why}).`, {
    hint: `Check that it is running and that the URL is right (${setting}, or \`cairn login\`); \`cairn doctor\` checks both servers.`,
  });
}
