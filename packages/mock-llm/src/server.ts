// The HTTP server: the two provider dialects, the control API and the library entry point.
// Chat responses are written to the raw Node response (the reply is hijacked), so a fault can cut
// a stream in the middle or hold a request open exactly as a real network would.
import type { ServerResponse } from 'node:http';
import { CairnError, createLogger, ErrorCodes, type Logger } from '@cairn/common';
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify';
import { z } from 'zod';
import { completionBody, DEFAULT_MODELS, errorBody, malformedEvent, modelList, streamEvents, type WireContext } from './dialects.js';
import { Responder, type ChatRequest, type Plan } from './reply.js';
import { parseScript, type MockDialect, type MockFault, type MockRule, type MockScript } from './script.js';

/** One chat-completions call the server received, as `calls()` and `GET /_mock/calls` report it. */
export interface MockCall {
  /** 1, 2, 3, … in arrival order (restarts after a reset). */
  readonly seq: number;
  readonly dialect: MockDialect;
  /** The requested model ID ('' when the request had none). */
  readonly model: string;
  /** Whether the client asked for a stream. */
  readonly stream: boolean;
  /** The messages exactly as received. */
  readonly messages: readonly unknown[];
  /** The names of the tools the request declared. */
  readonly tools: readonly string[];
  /** `response_format.type` (`json_schema`, `json_object`, `text`), or null when absent. */
  readonly responseFormat: string | null;
  /** The index of the script rule that matched, or null for the default reply. */
  readonly rule: number | null;
  /** The fault served instead of (or, for `timeout`, before) the normal reply, or null. */
  readonly fault: MockFault | null;
  /**
   * The HTTP status sent, or null when none was: the connection was destroyed before answering
   * (`stream-cut` without streaming), the client gave up during a `timeout`, or the call is still
   * being answered.
   */
  readonly status: number | null;
  /** When the call arrived (ISO 8601). */
  readonly time: string;
}

/** Options of {@link startMockLlm}. */
export interface MockLlmOptions {
  /** The interface to listen on. Default `127.0.0.1`. */
  readonly host?: string;
  /** The port; 0 (the default) picks a free one. */
  readonly port?: number;
  /** The initial script. Default: no rules, so every call gets the default reply. */
  readonly script?: MockScript | readonly MockRule[];
  /**
   * When set, provider routes require `Authorization: Bearer <apiKey>` and answer 401 with a
   * provider-style error body otherwise. The control API and `/healthz` stay open.
   */
  readonly apiKey?: string;
  /** Receives one debug line per call and errors. Default: silent. */
  readonly logger?: Logger;
}

/** A running mock model server. */
export interface MockLlm {
  /** The server's base URL, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly port: number;
  /** `baseURL` for `createOpenAICompatible`: `<url>/openai/v1`. */
  readonly openaiBaseUrl: string;
  /** `baseURL` for `createMistral`: `<url>/mistral/v1`. */
  readonly mistralBaseUrl: string;
  /** Every chat call received since the start or the last reset, in order (a copy). */
  calls(): MockCall[];
  /** Replaces the script (validated; throws a CairnError on a bad one) and re-arms its faults. */
  setScript(script: MockScript | readonly MockRule[]): void;
  /** Clears the call log and re-arms every rule's faults; the script stays. */
  reset(): void;
  /** Stops listening and drops open connections, including held `timeout` calls. */
  close(): Promise<void>;
}

const BODY_LIMIT_BYTES = 64 * 1024 * 1024;

// Loose on purpose: the mock reads what it needs and keeps the rest as received.
const chatBodySchema = z.looseObject({
  model: z.string({ error: 'is required (the model ID)' }).min(1, 'must not be empty'),
  messages: z.array(z.unknown(), { error: 'is required (an array of messages)' }).min(1, 'must hold at least one message'),
  stream: z.boolean().nullish(),
  tools: z.array(z.looseObject({ function: z.looseObject({ name: z.string() }) })).nullish(),
  response_format: z
    .looseObject({
      type: z.string(),
      json_schema: z.looseObject({ schema: z.unknown().optional() }).nullish(),
    })
    .nullish(),
});

type MutableCall = { -readonly [K in keyof MockCall]: MockCall[K] };

function dialectOf(url: string): MockDialect | undefined {
  if (url.startsWith('/openai/')) return 'openai';
  if (url.startsWith('/mistral/')) return 'mistral';
  return undefined;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

function toolNames(tools: unknown): string[] {
  if (!Array.isArray(tools)) return [];
  return tools.map((t) => record(record(t)['function'])['name']).filter((n): n is string => typeof n === 'string');
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function retryHeaders(
  fault: { retryAfterSeconds?: number | undefined; retryAfterMs?: number | undefined },
  fallbackSeconds?: number,
): Record<string, string> {
  const headers: Record<string, string> = {};
  const seconds = fault.retryAfterSeconds ?? (fault.retryAfterMs === undefined ? fallbackSeconds : undefined);
  if (seconds !== undefined) headers['retry-after'] = String(seconds);
  if (fault.retryAfterMs !== undefined) headers['retry-after-ms'] = String(fault.retryAfterMs);
  return headers;
}

function write(res: ServerResponse, data: string): Promise<void> {
  return new Promise((resolve) => {
    res.write(data, () => resolve());
  });
}

/** Ends the connection without finishing the response, after what was written has left. */
function cut(res: ServerResponse): void {
  const socket = res.socket;
  if (socket === null) return;
  socket.end(() => socket.destroy());
}

/** Resolves after `ms` (never when undefined), or as soon as the client goes away. */
function hold(res: ServerResponse, ms: number | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      res.removeListener('close', done);
      resolve();
    };
    const timer = ms === undefined ? undefined : setTimeout(done, ms);
    res.once('close', done);
  });
}

function hostForUrl(host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

/**
 * Starts the mock model server.
 *
 * @example
 * ```ts
 * const llm = await startMockLlm({ script: { rules: [{ contains: 'hello', text: 'Hi there!' }] } });
 * const openai = createOpenAICompatible({ name: 'mock', baseURL: llm.openaiBaseUrl });
 * const { text } = await generateText({ model: openai('mock-model'), prompt: 'hello' }); // 'Hi there!'
 * await llm.close();
 * ```
 */
export async function startMockLlm(options: MockLlmOptions = {}): Promise<MockLlm> {
  const host = options.host ?? '127.0.0.1';
  const logger = options.logger ?? createLogger('mock-llm', 'silent');
  const responder = new Responder(options.script === undefined ? undefined : parseScript(options.script));
  const apiKey = options.apiKey;
  let calls: MutableCall[] = [];
  let seq = 0;

  const app = Fastify({ logger: false, bodyLimit: BODY_LIMIT_BYTES, forceCloseConnections: true });

  app.setErrorHandler((err: { statusCode?: number; message: string }, request, reply) => {
    const status = err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) logger.error({ err, url: request.url }, 'mock-llm request failed');
    const dialect = dialectOf(request.url);
    return reply
      .code(status)
      .send(
        dialect === undefined
          ? { error: { code: status >= 500 ? ErrorCodes.INTERNAL : ErrorCodes.INVALID_ARGUMENT, message: err.message } }
          : errorBody(dialect, status, err.message),
      );
  });

  app.setNotFoundHandler((request, reply) => {
    const dialect = dialectOf(request.url);
    const message = `No route ${request.method} ${request.url}. The mock serves POST /{openai,mistral}/v1/chat/completions, GET /{openai,mistral}/v1/models, /_mock/* and /healthz.`;
    return reply
      .code(404)
      .send(dialect === undefined ? { error: { code: ErrorCodes.NOT_FOUND, message } } : errorBody(dialect, 404, message));
  });

  /** The 401 reason, or undefined when the request may pass. */
  const authFailure = (request: FastifyRequest): string | undefined => {
    if (apiKey === undefined) return undefined;
    const header = request.headers.authorization;
    if (header === undefined) return 'Missing API key: send "Authorization: Bearer <api key>" (mock-llm).';
    return header === `Bearer ${apiKey}` ? undefined : 'Incorrect API key provided (mock-llm).';
  };

  const serve = async (dialect: MockDialect, request: ChatRequest, plan: Plan, res: ServerResponse, call: MutableCall) => {
    const ctx: WireContext = { model: request.model, created: Math.floor(Date.now() / 1000) };
    const fault = plan.fault;
    const headers = { 'x-request-id': `req_${plan.fingerprint.slice(0, 24)}` };
    if (fault?.kind === 'status') {
      call.status = fault.status;
      sendJson(res, fault.status, errorBody(dialect, fault.status, fault.message), { ...headers, ...retryHeaders(fault) });
      return;
    }
    if (fault?.kind === 'rate-limit') {
      call.status = 429;
      const body = errorBody(dialect, 429, 'Rate limit reached for requests (mock-llm).');
      sendJson(res, 429, body, { ...headers, ...retryHeaders(fault, 1), 'x-ratelimit-remaining-requests': '0' });
      return;
    }
    if (fault?.kind === 'stream-cut' && !request.stream) {
      res.socket?.destroy();
      return;
    }
    if (fault?.kind === 'timeout') {
      await hold(res, fault.ms);
      if (res.destroyed || res.writableEnded) return;
    }
    if (fault?.kind === 'malformed-chunk' && !request.stream) {
      call.status = 200;
      const whole = JSON.stringify(completionBody(dialect, plan, ctx));
      res.writeHead(200, { 'content-type': 'application/json', ...headers });
      res.end(whole.slice(0, Math.floor(whole.length / 2)));
      return;
    }
    if (!request.stream) {
      call.status = 200;
      sendJson(res, 200, completionBody(dialect, plan, ctx), headers);
      return;
    }

    const events = streamEvents(dialect, plan, ctx);
    // A fault past the last chunk still strikes before the closing [DONE].
    const cutAt = fault?.kind === 'stream-cut' ? Math.min(fault.afterChunks, events.length) : undefined;
    const malformedAt = fault?.kind === 'malformed-chunk' ? Math.min(fault.afterChunks, events.length) : undefined;
    call.status = 200;
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      ...headers,
    });
    res.flushHeaders();
    for (let i = 0; i <= events.length; i++) {
      if (i === cutAt) {
        cut(res);
        return;
      }
      if (i === malformedAt) {
        await write(res, `data: ${malformedEvent(dialect, plan, ctx)}\n\n`);
        res.end();
        return;
      }
      const event = events[i];
      if (event === undefined) break;
      if (plan.chunkDelayMs > 0) await new Promise((r) => setTimeout(r, plan.chunkDelayMs));
      if (res.destroyed) return;
      await write(res, `data: ${JSON.stringify(event)}\n\n`);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the client may hang up while the write awaits
      if (res.destroyed) return;
    }
    await write(res, 'data: [DONE]\n\n');
    res.end();
  };

  const chat = (dialect: MockDialect) => async (request: FastifyRequest, reply: FastifyReply) => {
    const raw = record(request.body);
    const format = record(raw['response_format']);
    const call: MutableCall = {
      seq: ++seq,
      dialect,
      model: typeof raw['model'] === 'string' ? raw['model'] : '',
      stream: raw['stream'] === true,
      messages: Array.isArray(raw['messages']) ? (raw['messages'] as unknown[]) : [],
      tools: toolNames(raw['tools']),
      responseFormat: typeof format['type'] === 'string' ? format['type'] : null,
      rule: null,
      fault: null,
      status: null,
      time: new Date().toISOString(),
    };
    calls.push(call);
    reply.hijack();
    const res = reply.raw;
    const log = (): void =>
      logger.debug(
        {
          seq: call.seq,
          dialect,
          model: call.model,
          stream: call.stream,
          rule: call.rule,
          fault: call.fault?.kind ?? null,
          status: call.status,
        },
        'model call',
      );

    const unauthorized = authFailure(request);
    if (unauthorized !== undefined) {
      call.status = 401;
      sendJson(res, 401, errorBody(dialect, 401, unauthorized));
      log();
      return;
    }
    const parsed = chatBodySchema.safeParse(request.body);
    if (!parsed.success) {
      call.status = 400;
      const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'body'}: ${issue.message}`).join('; ');
      sendJson(res, 400, errorBody(dialect, 400, `Invalid chat completions request: ${problems}`));
      log();
      return;
    }
    const body = parsed.data;
    const chatRequest: ChatRequest = {
      dialect,
      model: body.model,
      stream: body.stream === true,
      messages: body.messages,
      toolNames: call.tools,
      responseFormat: body.response_format?.type ?? null,
      jsonSchema: body.response_format?.json_schema?.schema,
    };
    const plan = responder.plan(chatRequest);
    call.rule = plan.ruleIndex;
    call.fault = plan.fault;
    try {
      await serve(dialect, chatRequest, plan, res, call);
    } catch (err) {
      logger.error({ err, seq: call.seq }, 'mock-llm failed to answer a call');
      res.destroy();
    }
    log();
  };

  const models = (dialect: MockDialect) => (request: FastifyRequest, reply: FastifyReply) => {
    const unauthorized = authFailure(request);
    if (unauthorized !== undefined) return reply.code(401).send(errorBody(dialect, 401, unauthorized));
    const ids = new Set(DEFAULT_MODELS[dialect]);
    for (const rule of responder.current.rules) {
      if (rule.model !== undefined && (rule.dialect === undefined || rule.dialect === dialect)) ids.add(rule.model);
    }
    return reply.send(modelList(dialect, [...ids]));
  };

  const resetState = (): void => {
    calls = [];
    seq = 0;
    responder.rearm();
  };

  app.post('/openai/v1/chat/completions', chat('openai'));
  app.post('/mistral/v1/chat/completions', chat('mistral'));
  app.get('/openai/v1/models', models('openai'));
  app.get('/mistral/v1/models', models('mistral'));

  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));
  app.get('/_mock/calls', (_request, reply) => reply.send({ calls: structuredClone(calls) }));
  app.get('/_mock/script', (_request, reply) => reply.send(responder.current));
  app.put('/_mock/script', (request, reply) => {
    let script: MockScript;
    try {
      script = parseScript(request.body);
    } catch (err) {
      const error = CairnError.from(err, ErrorCodes.INVALID_ARGUMENT);
      return reply.code(400).send({ error: { code: error.code, message: error.rawMessage } });
    }
    responder.setScript(script);
    return reply.send({ ok: true, rules: script.rules.length });
  });
  app.post('/_mock/reset', (_request, reply) => {
    resetState();
    return reply.send({ ok: true });
  });

  await app.listen({ host, port: options.port ?? 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address !== null ? address.port : (options.port ?? 0);
  const url = `http://${hostForUrl(host)}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    url,
    port,
    openaiBaseUrl: `${url}/openai/v1`,
    mistralBaseUrl: `${url}/mistral/v1`,
    calls: () => structuredClone(calls),
    setScript: (script) => responder.setScript(parseScript(script)),
    reset: resetState,
    close: () => (closing ??= app.close()),
  };
}
