// The script format: what the mock model answers, validated with zod so a typo in a test's
// script fails loudly instead of silently never matching.
import { CairnError, ErrorCodes } from '@cairn/common';
import { z } from 'zod';

/** The two wire dialects the server speaks. */
export type MockDialect = 'openai' | 'mistral';

/** A tool call the mock model makes. */
export interface MockToolCall {
  /** The function name, as declared in the request's `tools`. */
  readonly name: string;
  /**
   * The arguments: a JSON value (normally an object) that is serialized with `JSON.stringify`, or a
   * string sent as it is, for testing how a client copes with arguments that are not valid JSON.
   */
  readonly arguments: unknown;
}

/** Token counts reported in the response's `usage`. */
export interface MockUsage {
  /** `prompt_tokens`. Default: ceil(characters of all message contents / 4). */
  readonly input?: number | undefined;
  /** `completion_tokens`. Default: ceil(characters of the reply / 4). */
  readonly output?: number | undefined;
}

/**
 * A failure served instead of the normal reply. Each is what a real provider or network does:
 *
 * - `status`: that HTTP status with a provider-style JSON error body. `retryAfterSeconds` /
 *   `retryAfterMs` add `Retry-After` / `retry-after-ms` headers (a 503 with `Retry-After` is common).
 * - `rate-limit`: 429 with `Retry-After` (seconds) and/or `retry-after-ms`; `Retry-After: 1` when
 *   neither is given.
 * - `stream-cut`: streaming: sends `afterChunks` chunks, then destroys the connection mid-stream.
 *   Non-streaming: destroys the connection before answering.
 * - `timeout`: accepts the request and sends nothing for `ms` milliseconds (forever when omitted),
 *   then the normal reply, so client timeouts fire.
 * - `malformed-chunk`: streaming: sends `afterChunks` chunks, then one that is not valid JSON, then
 *   ends the response. Non-streaming: a 200 whose body is not valid JSON.
 */
export type MockFault =
  | {
      readonly kind: 'status';
      readonly status: number;
      readonly message?: string | undefined;
      readonly retryAfterSeconds?: number | undefined;
      readonly retryAfterMs?: number | undefined;
    }
  | { readonly kind: 'rate-limit'; readonly retryAfterSeconds?: number | undefined; readonly retryAfterMs?: number | undefined }
  | { readonly kind: 'stream-cut'; readonly afterChunks: number }
  | { readonly kind: 'timeout'; readonly ms?: number | undefined }
  | { readonly kind: 'malformed-chunk'; readonly afterChunks: number };

/**
 * One rule of a script. A rule matches a request when every condition it names holds (a rule with
 * no condition matches everything); the first matching rule answers.
 *
 * The reply is `text`, `json` (serialized as the message content) or `toolCalls` (which may come
 * with `text`); a rule with none of them answers with the default reply, which is useful for a rule
 * that only injects faults.
 *
 * @example
 * ```json
 * { "contains": "weather", "hasTools": true, "toolCalls": [{ "name": "getWeather", "arguments": { "city": "Paris" } }] }
 * ```
 */
export interface MockRule {
  /** Matches only requests for this model ID (exact). */
  readonly model?: string | undefined;
  /** Matches only requests in this dialect. */
  readonly dialect?: MockDialect | undefined;
  /** Matches when the last user message contains this substring (case-sensitive). */
  readonly contains?: string | undefined;
  /** Matches when this regular expression (JavaScript syntax, no flags) matches the last user message. */
  readonly regex?: string | undefined;
  /** `true`: the request declares at least one tool; `false`: it declares none. */
  readonly hasTools?: boolean | undefined;
  /**
   * `true`: the last message is a tool result (the model is being called back after a tool ran);
   * `false`: it is not. Lets an agent loop get a tool call first and a text answer after.
   */
  readonly afterToolResult?: boolean | undefined;
  /**
   * Matches when the conversation holds exactly this many tool results: lets a script answer an
   * agent loop turn by turn (0 on the first turn, 1 after the first tool ran, …).
   */
  readonly toolResults?: number | undefined;
  /** Reply with this text. */
  readonly text?: string | undefined;
  /** Reply with this JSON value, serialized as the message content (structured output). */
  readonly json?: unknown;
  /** Reply with these tool calls (finish reason `tool_calls`). */
  readonly toolCalls?: readonly MockToolCall[] | undefined;
  /** Token counts to report; each defaults to a count derived from the text length. */
  readonly usage?: MockUsage | undefined;
  /**
   * How the content is split when streaming: explicit pieces (which must join to the content; alone
   * they define the text) or a piece length in characters. Default: word by word for text, 16
   * characters a piece for JSON.
   */
  readonly chunks?: readonly string[] | number | undefined;
  /** Streaming: wait this many milliseconds before each chunk, so a reply streams over time (default 0). */
  readonly chunkDelayMs?: number | undefined;
  /** Overrides the finish reason (`stop`, or `tool_calls` with tool calls), e.g. `length`. */
  readonly finishReason?: string | undefined;
  /**
   * Faults served to the first matching calls, one per call, in order; after them the rule answers
   * normally. `reset()` re-arms them.
   */
  readonly faults?: readonly MockFault[] | undefined;
}

/** A script: rules tried in order, first match wins. */
export interface MockScript {
  readonly rules: readonly MockRule[];
}

const retryAfter = {
  retryAfterSeconds: z.number().nonnegative().optional(),
  retryAfterMs: z.number().nonnegative().optional(),
};

const faultSchema = z.discriminatedUnion(
  'kind',
  [
    z.strictObject({
      kind: z.literal('status'),
      status: z.int().min(400, 'must be an HTTP error status (400-599)').max(599, 'must be an HTTP error status (400-599)'),
      message: z.string().optional(),
      ...retryAfter,
    }),
    z.strictObject({ kind: z.literal('rate-limit'), ...retryAfter }),
    z.strictObject({ kind: z.literal('stream-cut'), afterChunks: z.int().nonnegative() }),
    z.strictObject({ kind: z.literal('timeout'), ms: z.int().nonnegative().optional() }),
    z.strictObject({ kind: z.literal('malformed-chunk'), afterChunks: z.int().nonnegative() }),
  ],
  { error: 'expected a fault with kind "status", "rate-limit", "stream-cut", "timeout" or "malformed-chunk"' },
);

const ruleSchema = z
  .strictObject({
    model: z.string().min(1).optional(),
    dialect: z.enum(['openai', 'mistral']).optional(),
    contains: z.string().optional(),
    regex: z.string().optional(),
    hasTools: z.boolean().optional(),
    afterToolResult: z.boolean().optional(),
    toolResults: z.number().int().min(0).optional(),
    text: z.string().optional(),
    json: z.json().optional(),
    toolCalls: z
      .array(z.strictObject({ name: z.string().min(1), arguments: z.json() }))
      .min(1, 'must hold at least one tool call')
      .optional(),
    usage: z.strictObject({ input: z.int().nonnegative().optional(), output: z.int().nonnegative().optional() }).optional(),
    chunks: z.union([z.array(z.string()).min(1), z.int().positive()]).optional(),
    chunkDelayMs: z.int().min(0).max(10_000).optional(),
    finishReason: z.string().min(1).optional(),
    faults: z.array(faultSchema).optional(),
  })
  .superRefine((rule, ctx) => {
    if (rule.regex !== undefined) {
      try {
        new RegExp(rule.regex);
      } catch (err) {
        ctx.addIssue({ code: 'custom', path: ['regex'], message: `is not a valid regular expression: ${(err as Error).message}` });
      }
    }
    if (rule.json !== undefined && (rule.text !== undefined || rule.toolCalls !== undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: ['json'],
        message: 'cannot be combined with text or toolCalls: a reply is text, json or toolCalls',
      });
    }
    if (Array.isArray(rule.chunks)) {
      const joined = rule.chunks.join('');
      const content = rule.json !== undefined ? JSON.stringify(rule.json) : rule.text;
      if (content !== undefined && joined !== content) {
        ctx.addIssue({
          code: 'custom',
          path: ['chunks'],
          message: `must join to the reply content ${JSON.stringify(content)}, but they join to ${JSON.stringify(joined)}`,
        });
      }
      if (content === undefined && rule.toolCalls !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['chunks'], message: 'split the text; a tool-call-only reply has none' });
      }
    }
  });

const scriptSchema = z.strictObject({ rules: z.array(ruleSchema) });

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out === '' ? '' : '.'}${String(key)}`;
  return out === '' ? '(script)' : out;
}

/**
 * Validates a script given as JSON: `{ "rules": [...] }`, or a bare array of rules. Throws a
 * CairnError (`INVALID_ARGUMENT`) naming every problem and where it is.
 */
export function parseScript(input: unknown): MockScript {
  const candidate = Array.isArray(input) ? { rules: input } : input;
  const result = scriptSchema.safeParse(candidate);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `  ${formatPath(issue.path)}: ${issue.message}`);
    throw new CairnError(
      ErrorCodes.INVALID_ARGUMENT,
      `Invalid mock script:\n${lines.join('\n')}\nA script is {"rules": [...]} (or a bare array of rules); see packages/mock-llm/README.md.`,
    );
  }
  // zod's output types an omitted optional field as `?: T | undefined`, which the types above accept.
  const script: MockScript = result.data;
  return script;
}
