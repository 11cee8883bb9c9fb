// The worker's side of ctx.model: validating the options, calling the provider through the AI SDK
// (one attempt at a time: Cairn does the retrying), classifying failures, and publishing streamed
// text inside the data plane.
import {
  APICallError,
  NoObjectGeneratedError,
  Output,
  asSchema,
  generateText,
  streamText,
  type FinishReason,
  type FlexibleSchema,
  type LanguageModel,
  type LanguageModelUsage,
  type ModelMessage,
  type Tool,
  type ToolSet,
} from 'ai';
import { CairnError, ErrorCodes, isNonNullObject, type Logger } from '@cairn/common';
import type { StreamEvent } from '@cairn/payload-store';
import { type ModelCallOptions, type ModelFailure, type ModelResult, type ModelToolCall, type ModelUsage } from '@cairn/sdk';
import { type ResolvedRetryPolicy, resolveModelRetryPolicy, toMilliseconds } from '@cairn/sdk/internal';

/** A model of a call's fallback list, with the names that may cross to the control plane. */
export interface ModelRef {
  readonly model: LanguageModel;
  /** The AI SDK provider name, sanitized to `^[A-Za-z][A-Za-z0-9_.-]*$` (≤ 100). */
  readonly provider: string;
  /** The model id, sanitized to `^[A-Za-z0-9][A-Za-z0-9_.:/@+-]*$` (≤ 100). */
  readonly modelId: string;
}

/** ctx.model's options, checked and with defaults filled in. */
export interface PreparedModelCall {
  readonly models: readonly ModelRef[];
  readonly system: string | undefined;
  readonly prompt: string | undefined;
  readonly messages: readonly ModelMessage[] | undefined;
  readonly schema: FlexibleSchema | undefined;
  /** The tools without their `execute` functions: ctx.model never runs a tool. */
  readonly tools: ToolSet | undefined;
  readonly temperature: number | undefined;
  readonly maxOutputTokens: number | undefined;
  readonly policy: ResolvedRetryPolicy;
  readonly timeoutMs: number | undefined;
  readonly stream: boolean;
}

const PROVIDER_MAX = 100;
const MODEL_MAX = 100;
/** A provider asking for a wait longer than this is not believed; the run would sleep for days. */
export const MAX_RETRY_AFTER_MS = 24 * 3600_000;

const invalid = (message: string): CairnError => new CairnError(ErrorCodes.INVALID_ARGUMENT, message);

/** A provider name that fits the contract's NAME pattern (`mistral.chat` is kept as it is). */
export function sanitizeProvider(raw: string): string {
  let s = raw.replace(/[^A-Za-z0-9_.-]/g, '-');
  if (!/^[A-Za-z]/.test(s)) s = `p${s}`;
  return s.slice(0, PROVIDER_MAX);
}

/** A model id that fits the contract's pattern (`mistral-large-latest`, `accounts/x/models/y`). */
export function sanitizeModelId(raw: string): string {
  let s = raw.replace(/[^A-Za-z0-9_.:/@+-]/g, '-');
  if (!/^[A-Za-z0-9]/.test(s)) s = `m${s}`;
  return s.slice(0, MODEL_MAX);
}

/** The provider and model names of an AI SDK model (a model id string goes through the AI SDK gateway). */
export function modelRef(model: unknown, what: string): ModelRef {
  if (typeof model === 'string' && model.trim() !== '') {
    return { model, provider: 'gateway', modelId: sanitizeModelId(model) };
  }
  if (typeof model === 'object' && model !== null) {
    const m = model as { provider?: unknown; modelId?: unknown };
    if (typeof m.provider === 'string' && typeof m.modelId === 'string') {
      return { model: model as LanguageModel, provider: sanitizeProvider(m.provider), modelId: sanitizeModelId(m.modelId) };
    }
  }
  throw invalid(`${what} is not an AI SDK language model: pass one such as mistral('mistral-large-latest'), or a list of them.`);
}

/** Checks ctx.model's options; throws a clear CAIRN-1101 error naming the call. */
export function prepareModelCall(name: string, options: ModelCallOptions): PreparedModelCall {
  const call = `ctx.model("${name}")`;
  if (!isNonNullObject(options)) {
    throw invalid(`${call} needs options: ctx.model(name, { model, prompt }) or ctx.model(name, { model, messages }).`);
  }
  const list: readonly unknown[] = Array.isArray(options.model) ? (options.model as readonly unknown[]) : [options.model];
  if (list.length === 0) throw invalid(`${call} has an empty model list: give at least one model.`);
  const models = list.map((m, i) => modelRef(m, list.length === 1 ? `The model of ${call}` : `Model ${i} of ${call}`));
  const { system, prompt, messages } = options;
  if (system !== undefined && typeof system !== 'string') throw invalid(`The system option of ${call} must be a string.`);
  if (prompt !== undefined && messages !== undefined) throw invalid(`${call} has both prompt and messages: give one of them.`);
  if (prompt === undefined && messages === undefined) throw invalid(`${call} needs a prompt (a string) or messages (a list).`);
  if (prompt !== undefined && typeof prompt !== 'string')
    throw invalid(`The prompt of ${call} must be a string; pass a conversation as messages.`);
  if (messages !== undefined && !Array.isArray(messages)) throw invalid(`The messages of ${call} must be a list of AI SDK model messages.`);
  const { temperature, maxOutputTokens } = options;
  if (temperature !== undefined && (typeof temperature !== 'number' || !Number.isFinite(temperature))) {
    throw invalid(`The temperature of ${call} must be a number.`);
  }
  if (maxOutputTokens !== undefined && (!Number.isInteger(maxOutputTokens) || maxOutputTokens < 1)) {
    throw invalid(`The maxOutputTokens of ${call} must be a whole number of at least 1.`);
  }
  if (options.stream !== undefined && typeof options.stream !== 'boolean')
    throw invalid(`The stream option of ${call} must be true or false.`);
  if (options.tools !== undefined && (!isNonNullObject(options.tools) || Array.isArray(options.tools))) {
    throw invalid(`The tools of ${call} must be an object of AI SDK tool definitions, keyed by tool name.`);
  }
  if (options.schema !== undefined && !isNonNullObject(options.schema)) {
    throw invalid(`The schema of ${call} must be a zod schema, a Standard Schema or an AI SDK schema.`);
  }
  return {
    models,
    system,
    prompt,
    messages,
    schema: options.schema,
    tools: options.tools === undefined ? undefined : withoutExecute(options.tools),
    temperature,
    maxOutputTokens,
    policy: resolveModelRetryPolicy(options.retry),
    timeoutMs: options.timeout === undefined ? undefined : toMilliseconds(options.timeout, `timeout of ${call}`),
    stream: options.stream ?? true,
  };
}

function withoutExecute(tools: ToolSet): ToolSet {
  const out: Record<string, Tool> = {};
  for (const [name, definition] of Object.entries(tools)) {
    const copy: Record<string, unknown> = { ...(definition as Record<string, unknown>) };
    delete copy['execute'];
    out[name] = copy as Tool;
  }
  return out;
}

// ---- failures ---------------------------------------------------------------------------------

/** An attempt that ran longer than the call's `timeout`. */
export class ModelTimeoutError extends CairnError {
  constructor(name: string, attempt: number, timeoutMs: number) {
    super(ErrorCodes.STEP_TIMEOUT, `Model call "${name}" attempt ${attempt} timed out after ${timeoutMs} ms.`);
    this.name = 'ModelTimeoutError';
  }
}

/** The provider's stream ended early or reported an error without a usable answer. */
export class ModelStreamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelStreamError';
  }
}

/** How an attempt's error affects the call. */
export interface ClassifiedError {
  /** Worth another attempt on the same model. */
  readonly retryable: boolean;
  /** The HTTP status, when the provider answered with an error status. */
  readonly statusCode: number | undefined;
  /** How long the provider asked to wait (`retry-after-ms`, `Retry-After`). */
  readonly retryAfterMs: number | undefined;
  readonly timeout: boolean;
}

const RETRYABLE_STATUS = new Set([408, 409, 429]);
/** Errors of a response that was cut off, malformed, or failed validation: another attempt may do better. */
const RETRYABLE_NAMES = new Set([
  'AI_NoObjectGeneratedError',
  'AI_TypeValidationError',
  'AI_JSONParseError',
  'AI_InvalidResponseDataError',
  'AI_EmptyResponseBodyError',
  'AI_NoOutputGeneratedError',
  'AI_NoContentGeneratedError',
  'AI_InvalidToolInputError',
  'AI_NoSuchToolError',
  'AI_InvalidStreamPartError',
  'ModelStreamError',
  'ModelTimeoutError',
]);
const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'UND_ERR_SOCKET',
]);

function header(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return v;
  return undefined;
}

/** The wait a provider asked for: `retry-after-ms`, or `Retry-After` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Record<string, string> | undefined, now = Date.now()): number | undefined {
  const millis = header(headers, 'retry-after-ms');
  if (millis !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(millis)) return Math.min(Math.round(Number(millis)), MAX_RETRY_AFTER_MS);
  const after = header(headers, 'retry-after');
  if (after === undefined || after.trim() === '') return undefined;
  if (/^\s*\d+(\.\d+)?\s*$/.test(after)) return Math.min(Math.round(Number(after) * 1000), MAX_RETRY_AFTER_MS);
  const at = Date.parse(after);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(0, at - now), MAX_RETRY_AFTER_MS);
}

function isNetworkError(error: Error): boolean {
  for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
    if (e.name === 'TypeError' && /fetch failed|terminated|network/i.test(e.message)) return true;
  }
  return false;
}

/**
 * Retryable: HTTP 408, 409, 429, 5xx, no response at all (network), a 2xx whose body could not
 * be read (a stream cut off mid-way, malformed data), output that failed its schema, a timeout.
 * Not retryable: any other 4xx (400, 401, 403, 404, 422 …) and errors of unknown kind.
 */
export function classifyModelError(error: Error): ClassifiedError {
  if (APICallError.isInstance(error)) {
    const status = error.statusCode;
    const retryable = status === undefined || RETRYABLE_STATUS.has(status) || status >= 500 || (status >= 200 && status < 300);
    const after = retryable ? retryAfterMs(error.responseHeaders) : undefined;
    return { retryable, statusCode: status !== undefined && status >= 300 ? status : undefined, retryAfterMs: after, timeout: false };
  }
  const timeout = error.name === 'ModelTimeoutError';
  if (RETRYABLE_NAMES.has(error.name) || isNetworkError(error))
    return { retryable: true, statusCode: undefined, retryAfterMs: undefined, timeout };
  const flagged = (error as { isRetryable?: unknown }).isRetryable;
  return { retryable: flagged === true, statusCode: undefined, retryAfterMs: undefined, timeout: false };
}

/**
 * An attempt's error message with its causes: the AI SDK wraps the useful part (a schema's
 * validation message, a socket error) in `cause`. It stays in the data plane.
 */
export function errorMessage(error: Error): string {
  const parts = [error.message];
  for (let e: unknown = error.cause, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e.message !== '' && !parts.includes(e.message)) parts.push(e.message);
  }
  return parts.join(' Caused by: ');
}

/** A {@link ModelFailure} for the last attempt on a model. */
export function failureOf(ref: ModelRef, attempts: number, error: Error, classified: ClassifiedError): ModelFailure {
  return {
    provider: ref.provider,
    model: ref.modelId,
    attempts,
    ...(classified.statusCode === undefined ? {} : { statusCode: classified.statusCode }),
    errorName: error.name,
    message: errorMessage(error),
    retryable: classified.retryable,
  };
}

// ---- one attempt ------------------------------------------------------------------------------

/** What the model answered, as journaled (without provider, model and attempts). */
export type ModelResponse = Pick<ModelResult, 'text' | 'object' | 'toolCalls' | 'finishReason'>;

export type AttemptOutcome =
  | { readonly ok: true; readonly response: ModelResponse; readonly usage: ModelUsage }
  | { readonly ok: false; readonly error: Error; readonly usage: ModelUsage | undefined; readonly text: string | undefined };

const tokens = (usage: LanguageModelUsage | undefined): ModelUsage => ({
  inputTokens: usage?.inputTokens ?? 0,
  outputTokens: usage?.outputTokens ?? 0,
});

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(typeof value === 'string' ? value : 'unknown error');
}

/** Rejects as soon as `signal` aborts, whatever the provider does with it. */
function untilAborted<T>(promise: PromiseLike<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(asError(signal.reason));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(asError(signal.reason));
    signal.addEventListener('abort', onAbort, { once: true });
    Promise.resolve(promise).then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(asError(error));
      },
    );
  });
}

function toolCallsOf(
  calls: ReadonlyArray<{ toolCallId: string; toolName: string; input: unknown; invalid?: boolean | undefined; error?: unknown }>,
): ModelToolCall[] {
  const invalidCall = calls.find((c) => c.invalid === true);
  if (invalidCall) {
    const cause = invalidCall.error instanceof Error ? invalidCall.error : undefined;
    if (cause) throw cause;
    throw new ModelStreamError(
      `The model called tool "${invalidCall.toolName}" with input that does not fit it, or a tool that does not exist.`,
    );
  }
  return calls.map((c) => ({ toolCallId: c.toolCallId, toolName: c.toolName, input: c.input }));
}

function callSettings(call: PreparedModelCall, ref: ModelRef, signal: AbortSignal) {
  return {
    model: ref.model,
    ...(call.system === undefined ? {} : { instructions: call.system }),
    ...(call.tools === undefined ? {} : { tools: call.tools }),
    ...(call.temperature === undefined ? {} : { temperature: call.temperature }),
    ...(call.maxOutputTokens === undefined ? {} : { maxOutputTokens: call.maxOutputTokens }),
    // Cairn retries (durably, honouring Retry-After, across models); the AI SDK must not.
    maxRetries: 0,
    abortSignal: signal,
  };
}

/**
 * One attempt: calls the model once through the AI SDK (`streamText` with `onDelta`, else
 * `generateText`). Never throws for a provider failure: the outcome says what went wrong.
 */
export async function attemptModel(
  call: PreparedModelCall,
  ref: ModelRef,
  signal: AbortSignal,
  onDelta: ((text: string) => void) | undefined,
): Promise<AttemptOutcome> {
  const settings = callSettings(call, ref, signal);
  const input = call.messages !== undefined ? { messages: [...call.messages] } : { prompt: call.prompt ?? '' };
  const output = call.schema === undefined ? undefined : Output.object({ schema: call.schema });
  let usage: ModelUsage | undefined;
  let text: string | undefined;
  let streamed = '';
  try {
    if (onDelta) {
      const result = streamText({
        ...settings,
        ...input,
        ...(output ? { output } : {}),
        // Errors are read from the stream below; the default handler would print them.
        onError: () => undefined,
      });
      let streamError: unknown;
      const parts = result.stream[Symbol.asyncIterator]();
      for (;;) {
        const next = await untilAborted(parts.next(), signal);
        if (next.done) break;
        const part = next.value;
        if (part.type === 'text-delta') {
          streamed += part.text;
          onDelta(part.text);
        } else if (part.type === 'error') streamError ??= part.error;
      }
      if (signal.aborted) throw asError(signal.reason);
      if (streamError !== undefined) throw asError(streamError);
      const finishReason: FinishReason = await result.finishReason;
      usage = tokens(await result.usage);
      text = await result.text;
      if (finishReason === 'error' || finishReason === 'interrupted') {
        throw new ModelStreamError(`The provider's stream ended without a complete answer (finish reason "${finishReason}").`);
      }
      const toolCalls = toolCallsOf(await result.toolCalls);
      const object: unknown = output ? await result.output : undefined;
      return { ok: true, response: { text, ...(output ? { object } : {}), toolCalls, finishReason }, usage };
    }
    const result = await untilAborted(generateText({ ...settings, ...input, ...(output ? { output } : {}) }), signal);
    usage = tokens(result.usage);
    text = result.text;
    if (result.finishReason === 'error' || result.finishReason === 'interrupted') {
      throw new ModelStreamError(`The provider ended without a complete answer (finish reason "${result.finishReason}").`);
    }
    const toolCalls = toolCallsOf(result.toolCalls);
    const object: unknown = output ? result.output : undefined;
    return {
      ok: true,
      response: { text: result.text, ...(output ? { object } : {}), toolCalls, finishReason: result.finishReason },
      usage,
    };
  } catch (err) {
    const error = signal.aborted ? asError(signal.reason) : asError(err);
    if (NoObjectGeneratedError.isInstance(error)) {
      usage ??= tokens(error.usage);
      text ??= error.text;
    }
    if (text === undefined && streamed !== '') text = streamed;
    return { ok: false, error, usage, text };
  }
}

// ---- transcripts ------------------------------------------------------------------------------

/** One attempt as the transcript records it. */
export interface AttemptRecord {
  readonly attempt: number;
  readonly provider: string;
  readonly model: string;
  readonly startedAt: number;
  readonly endedAt: number;
  readonly status: 'completed' | 'failed';
  readonly usage?: ModelUsage | undefined;
  readonly error?:
    { readonly name: string; readonly message: string; readonly statusCode?: number | undefined; readonly retryable: boolean } | undefined;
  /** The text of a failed attempt (output that failed its schema, a stream cut off). */
  readonly text?: string | undefined;
  /** When the next attempt was due, if one followed. */
  readonly nextAttemptAt?: number | undefined;
}

/** JSON with binary parts as base64 and URLs as strings, so any AI SDK message can be recorded. */
export function jsonSafe(value: unknown): unknown {
  const text = JSON.stringify(value, (_key, v: unknown) => {
    if (v instanceof Uint8Array) return { type: 'bytes', base64: Buffer.from(v).toString('base64') };
    if (v instanceof ArrayBuffer) return { type: 'bytes', base64: Buffer.from(v).toString('base64') };
    if (v instanceof URL) return v.href;
    return v;
  }) as string | undefined;
  return text === undefined ? undefined : (JSON.parse(text) as unknown);
}

async function jsonSchemaOf(schema: unknown): Promise<unknown> {
  try {
    return jsonSafe(await asSchema(schema as FlexibleSchema).jsonSchema);
  } catch {
    return undefined;
  }
}

/** The request part of a transcript: what was asked, of which models, with which settings. */
export async function transcriptRequest(call: PreparedModelCall): Promise<Record<string, unknown>> {
  const tools: Array<Record<string, unknown>> = [];
  for (const [name, definition] of Object.entries(call.tools ?? {})) {
    const d = definition as { description?: unknown; inputSchema?: unknown };
    tools.push({
      name,
      ...(typeof d.description === 'string' ? { description: d.description } : {}),
      ...(d.inputSchema === undefined ? {} : { inputSchema: await jsonSchemaOf(d.inputSchema) }),
    });
  }
  return {
    ...(call.system === undefined ? {} : { system: call.system }),
    ...(call.prompt === undefined ? {} : { prompt: call.prompt }),
    ...(call.messages === undefined ? {} : { messages: jsonSafe(call.messages) }),
    ...(tools.length === 0 ? {} : { tools }),
    ...(call.schema === undefined ? {} : { schema: (await jsonSchemaOf(call.schema)) ?? true }),
    models: call.models.map((m) => ({ provider: m.provider, model: m.modelId })),
    settings: {
      ...(call.temperature === undefined ? {} : { temperature: call.temperature }),
      ...(call.maxOutputTokens === undefined ? {} : { maxOutputTokens: call.maxOutputTokens }),
      ...(call.timeoutMs === undefined ? {} : { timeoutMs: call.timeoutMs }),
      stream: call.stream,
      retry: {
        maximumAttempts: call.policy.maximumAttempts,
        initialIntervalMs: call.policy.initialIntervalMs,
        maximumIntervalMs: call.policy.maximumIntervalMs,
      },
    },
  };
}

// ---- streaming ----------------------------------------------------------------------------------

/** How often streamed text is published. */
export const STREAM_FLUSH_MS = 30;

/**
 * Publishes one model call's text deltas inside the data plane (stored with a sequence number and
 * NOTIFYed by the payload store in one statement), batched every {@link STREAM_FLUSH_MS}, off the
 * step path. Best effort: a failed publish is logged and dropped, never failing the call.
 * Publishes run one after another, so subscribers see them in order.
 */
export class DeltaPublisher {
  readonly #publish: (events: readonly StreamEvent[]) => Promise<unknown>;
  readonly #position: number;
  readonly #name: string;
  readonly #log: Logger;
  #pending: StreamEvent[] = [];
  #timer: NodeJS.Timeout | undefined;
  #chain: Promise<void> = Promise.resolve();

  constructor(publish: (events: readonly StreamEvent[]) => Promise<unknown>, position: number, name: string, log: Logger) {
    this.#publish = publish;
    this.#position = position;
    this.#name = name;
    this.#log = log;
  }

  delta(attempt: number, text: string): void {
    if (text === '') return;
    const last = this.#pending[this.#pending.length - 1];
    if (last?.type === 'delta' && last.attempt === attempt) this.#pending[this.#pending.length - 1] = { ...last, text: last.text + text };
    else this.#pending.push({ type: 'delta', position: this.#position, name: this.#name, attempt, text });
    this.#timer ??= setTimeout(() => this.#flush(), STREAM_FLUSH_MS);
  }

  /** The call's result is journaled: subscribers may stop rendering it as in progress. */
  done(attempt: number): void {
    this.#pending.push({ type: 'model-done', position: this.#position, name: this.#name, attempt });
    this.#flush();
  }

  /** Publishes what is pending and waits for every publish to finish. */
  async close(): Promise<void> {
    this.#flush();
    await this.#chain;
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    const events = this.#pending;
    this.#pending = [];
    this.#chain = this.#chain.then(async () => {
      try {
        await this.#publish(events);
      } catch (err) {
        this.#log.debug({ err, position: this.#position }, 'could not publish streamed model output; subscribers miss it');
      }
    });
  }
}
