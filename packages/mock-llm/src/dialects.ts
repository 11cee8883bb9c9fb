// The wire formats: what OpenAI's and Mistral's chat-completions APIs send, shaped as their real
// APIs do (and as @ai-sdk/openai-compatible and @ai-sdk/mistral parse them).
import { STATUS_CODES } from 'node:http';
import type { Plan } from './reply.js';
import type { MockDialect } from './script.js';

/** Per-response values that are not part of the plan. */
export interface WireContext {
  readonly model: string;
  /** Unix seconds. */
  readonly created: number;
}

const TOOL_ARGUMENT_PIECE_CHARS = 16;

/** The response ID: derived from the request, so the same request gets the same ID. */
export function responseId(dialect: MockDialect, plan: Plan): string {
  return dialect === 'openai' ? `chatcmpl-${plan.fingerprint.slice(0, 29)}` : plan.fingerprint.slice(0, 32);
}

function usageBody(plan: Plan): { prompt_tokens: number; completion_tokens: number; total_tokens: number } {
  return { prompt_tokens: plan.usage.input, completion_tokens: plan.usage.output, total_tokens: plan.usage.input + plan.usage.output };
}

/** The body of a non-streaming `chat.completion`. */
export function completionBody(dialect: MockDialect, plan: Plan, ctx: WireContext): Record<string, unknown> {
  const toolCalls = plan.toolCalls.map((call, index) =>
    dialect === 'openai'
      ? { id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments } }
      : { id: call.id, type: 'function', function: { name: call.name, arguments: call.arguments }, index },
  );
  const message =
    dialect === 'openai'
      ? { role: 'assistant', content: plan.content, refusal: null, ...(toolCalls.length > 0 ? { tool_calls: toolCalls } : {}) }
      : // Mistral sends an empty string rather than null next to tool calls.
        { role: 'assistant', content: plan.content ?? '', tool_calls: toolCalls.length > 0 ? toolCalls : null, prefix: false };
  return {
    id: responseId(dialect, plan),
    object: 'chat.completion',
    created: ctx.created,
    model: ctx.model,
    choices: [
      dialect === 'openai'
        ? { index: 0, message, logprobs: null, finish_reason: plan.finishReason }
        : { index: 0, message, finish_reason: plan.finishReason },
    ],
    usage: usageBody(plan),
    ...(dialect === 'openai' ? { system_fingerprint: 'fp_mock' } : {}),
  };
}

function chunk(dialect: MockDialect, plan: Plan, ctx: WireContext, choice: Record<string, unknown> | null, extra: object = {}) {
  return {
    id: responseId(dialect, plan),
    object: 'chat.completion.chunk',
    created: ctx.created,
    model: ctx.model,
    ...(dialect === 'openai' ? { system_fingerprint: 'fp_mock' } : {}),
    choices: choice === null ? [] : [{ index: 0, ...choice }],
    ...extra,
  };
}

/**
 * The data events of a streamed reply, in order, without the closing `[DONE]`. The first carries
 * the assistant role; content pieces come first, then tool calls, then the finish reason with the
 * usage. OpenAI streams a tool call as a named delta followed by argument pieces and reports usage
 * in a last chunk without choices (sent always: real OpenAI only sends it with
 * `stream_options.include_usage`, and clients accept it either way); Mistral sends each tool call
 * whole in one delta and the usage with the finish reason.
 */
export function streamEvents(dialect: MockDialect, plan: Plan, ctx: WireContext): Record<string, unknown>[] {
  const events: Record<string, unknown>[] = [];
  let first = true;
  const delta = (fields: Record<string, unknown>): Record<string, unknown> => {
    const d = first ? { role: 'assistant', ...fields } : fields;
    first = false;
    return d;
  };
  for (const piece of plan.pieces) {
    events.push(
      chunk(dialect, plan, ctx, {
        delta: delta({ content: piece }),
        ...(dialect === 'openai' ? { logprobs: null } : {}),
        finish_reason: null,
      }),
    );
  }
  plan.toolCalls.forEach((call, index) => {
    if (dialect === 'openai') {
      events.push(
        chunk(dialect, plan, ctx, {
          delta: delta({
            ...(plan.pieces.length === 0 ? { content: null } : {}),
            tool_calls: [{ index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } }],
          }),
          logprobs: null,
          finish_reason: null,
        }),
      );
      for (let i = 0; i < call.arguments.length; i += TOOL_ARGUMENT_PIECE_CHARS) {
        const piece = call.arguments.slice(i, i + TOOL_ARGUMENT_PIECE_CHARS);
        events.push(
          chunk(dialect, plan, ctx, {
            delta: { tool_calls: [{ index, function: { arguments: piece } }] },
            logprobs: null,
            finish_reason: null,
          }),
        );
      }
    } else {
      events.push(
        chunk(dialect, plan, ctx, {
          delta: delta({ content: '', tool_calls: [{ id: call.id, function: { name: call.name, arguments: call.arguments }, index }] }),
          finish_reason: null,
        }),
      );
    }
  });
  if (events.length === 0) {
    // An empty reply still opens the assistant message.
    events.push(
      chunk(dialect, plan, ctx, {
        delta: delta({ content: '' }),
        ...(dialect === 'openai' ? { logprobs: null } : {}),
        finish_reason: null,
      }),
    );
  }
  if (dialect === 'openai') {
    events.push(chunk(dialect, plan, ctx, { delta: {}, logprobs: null, finish_reason: plan.finishReason }));
    events.push(chunk(dialect, plan, ctx, null, { usage: usageBody(plan) }));
  } else {
    events.push(chunk(dialect, plan, ctx, { delta: { content: '' }, finish_reason: plan.finishReason }, { usage: usageBody(plan) }));
  }
  return events;
}

/** A data event that is not valid JSON: a chunk cut off in the middle of a string. */
export function malformedEvent(dialect: MockDialect, plan: Plan, ctx: WireContext): string {
  const whole = JSON.stringify(chunk(dialect, plan, ctx, { delta: { content: 'malformed' }, finish_reason: null }));
  return whole.slice(0, whole.indexOf('malformed') + 4);
}

interface ErrorShape {
  readonly type: string;
  readonly code: string | null;
}

const ERROR_SHAPES: Record<number, ErrorShape> = {
  400: { type: 'invalid_request_error', code: null },
  401: { type: 'authentication_error', code: 'invalid_api_key' },
  403: { type: 'permission_error', code: 'permission_denied' },
  404: { type: 'not_found_error', code: 'not_found' },
  408: { type: 'timeout_error', code: 'request_timeout' },
  409: { type: 'conflict_error', code: 'conflict' },
  413: { type: 'invalid_request_error', code: 'request_too_large' },
  415: { type: 'invalid_request_error', code: 'unsupported_media_type' },
  422: { type: 'invalid_request_error', code: 'unprocessable_entity' },
  429: { type: 'rate_limit_error', code: 'rate_limit_exceeded' },
  500: { type: 'server_error', code: 'internal_error' },
  502: { type: 'server_error', code: 'bad_gateway' },
  503: { type: 'server_error', code: 'service_unavailable' },
  504: { type: 'server_error', code: 'gateway_timeout' },
};

/** The default message of an error status. */
export function statusMessage(status: number): string {
  return `${STATUS_CODES[status] ?? 'Error'} (mock-llm)`;
}

/**
 * A provider-style error body. OpenAI: `{error: {message, type, param, code}}`; Mistral:
 * `{object: 'error', message, type, param, code}`.
 */
export function errorBody(dialect: MockDialect, status: number, message: string = statusMessage(status)): Record<string, unknown> {
  const shape = ERROR_SHAPES[status] ?? { type: status >= 500 ? 'server_error' : 'invalid_request_error', code: null };
  return dialect === 'openai'
    ? { error: { message, type: shape.type, param: null, code: shape.code } }
    : { object: 'error', message, type: shape.type, param: null, code: shape.code };
}

/** The default models each dialect lists, besides the models a script names. */
export const DEFAULT_MODELS: Readonly<Record<MockDialect, readonly string[]>> = {
  openai: ['mock-model'],
  mistral: ['mistral-small-latest', 'mistral-large-latest'],
};

/** The body of `GET /models`. */
export function modelList(dialect: MockDialect, ids: readonly string[]): Record<string, unknown> {
  return {
    object: 'list',
    data: ids.map((id) =>
      dialect === 'openai'
        ? { id, object: 'model', created: 0, owned_by: 'cairn-mock-llm' }
        : {
            id,
            object: 'model',
            created: 0,
            owned_by: 'cairn-mock-llm',
            capabilities: { completion_chat: true, function_calling: true, completion_fim: false, fine_tuning: false, vision: false },
            max_context_length: 32768,
            type: 'base',
          },
    ),
  };
}
