// Deciding what to answer: which rule matches a request, which fault (if any) it serves, and the
// reply's content, tool calls, usage and streaming pieces. Everything but the fault queues is a
// pure function of the request, so the same request always gets the same reply.
import { createHash } from 'node:crypto';
import { exampleFromJsonSchema } from './json-example.js';
import type { MockDialect, MockFault, MockRule, MockScript } from './script.js';

/** A chat-completions request, as far as the mock reads it. */
export interface ChatRequest {
  readonly dialect: MockDialect;
  readonly model: string;
  readonly stream: boolean;
  /** The messages exactly as received. */
  readonly messages: readonly unknown[];
  readonly toolNames: readonly string[];
  /** `response_format.type` (`text`, `json_object`, `json_schema`), or null when absent. */
  readonly responseFormat: string | null;
  /** `response_format.json_schema.schema`, when given. */
  readonly jsonSchema: unknown;
}

/** A tool call as it goes on the wire. */
export interface PlannedToolCall {
  readonly id: string;
  readonly name: string;
  /** The arguments as a JSON string (or the raw string the script gave). */
  readonly arguments: string;
}

/** What to send for one call. */
export interface Plan {
  /** Index of the matching rule, or null for the default reply. */
  readonly ruleIndex: number | null;
  readonly fault: MockFault | null;
  /** The message content; null for a reply made only of tool calls. */
  readonly content: string | null;
  /** The content split for streaming (empty when there is no content). */
  readonly pieces: readonly string[];
  readonly toolCalls: readonly PlannedToolCall[];
  readonly finishReason: string;
  readonly usage: { readonly input: number; readonly output: number };
  /** Milliseconds to wait before each streamed chunk (0: none). */
  readonly chunkDelayMs: number;
  /** A hex digest of the request, from which response and tool-call IDs derive. */
  readonly fingerprint: string;
}

const DEFAULT_PREVIEW_CHARS = 80;
const JSON_PIECE_CHARS = 16;

function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
}

/** The text of a message's content: a string, or the text parts of a content array. */
export function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((part) => {
        const p = record(part);
        return p && typeof p['text'] === 'string' ? p['text'] : '';
      })
      .filter((t) => t !== '')
      .join('\n');
  }
  return '';
}

function role(message: unknown): unknown {
  return record(message)?.['role'];
}

/** The text of the last user message, or '' when there is none. */
export function lastUserText(messages: readonly unknown[]): string {
  for (let i = messages.length - 1; i >= 0; i--) {
    if (role(messages[i]) === 'user') return contentText(record(messages[i])?.['content']);
  }
  return '';
}

function ruleMatches(rule: MockRule, request: ChatRequest, userText: string): boolean {
  if (rule.model !== undefined && rule.model !== request.model) return false;
  if (rule.dialect !== undefined && rule.dialect !== request.dialect) return false;
  if (rule.contains !== undefined && !userText.includes(rule.contains)) return false;
  if (rule.regex !== undefined && !new RegExp(rule.regex).test(userText)) return false;
  if (rule.hasTools !== undefined && rule.hasTools !== request.toolNames.length > 0) return false;
  if (rule.afterToolResult !== undefined && rule.afterToolResult !== (role(request.messages.at(-1)) === 'tool')) return false;
  if (rule.toolResults !== undefined && rule.toolResults !== request.messages.filter((m) => role(m) === 'tool').length) return false;
  return true;
}

/** Roughly four characters a token, as providers' rules of thumb say; never negative. */
function tokens(chars: number): number {
  return Math.ceil(chars / 4);
}

function inputChars(messages: readonly unknown[]): number {
  let chars = 0;
  for (const message of messages) {
    const m = record(message);
    if (!m) continue;
    chars += contentText(m['content']).length;
    if (m['tool_calls'] !== undefined) chars += JSON.stringify(m['tool_calls']).length;
  }
  return chars;
}

/** Splits text into words, each with the whitespace that follows it (leading whitespace stays with the first). */
export function splitWords(text: string): string[] {
  return text.match(/^\s*\S+\s*|\S+\s*/g) ?? (text === '' ? [] : [text]);
}

function splitEvery(text: string, size: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out;
}

function truncate(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, ' ').trim();
  return oneLine.length > max ? `${oneLine.slice(0, max)}…` : oneLine;
}

/** The reply when no rule matches (or a matching rule names no reply). */
export function defaultContent(request: ChatRequest, userText: string): { content: string; json: boolean } {
  const text = userText.trim() === '' ? 'mock reply' : `mock reply to: ${truncate(userText, DEFAULT_PREVIEW_CHARS)}`;
  if (request.responseFormat === 'json_schema' && request.jsonSchema !== undefined) {
    return { content: JSON.stringify(exampleFromJsonSchema(request.jsonSchema)), json: true };
  }
  if (request.responseFormat === 'json_object' || request.responseFormat === 'json_schema') {
    return { content: JSON.stringify({ reply: text }), json: true };
  }
  return { content: text, json: false };
}

const ALPHANUMERIC = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `length` alphanumeric characters derived from `seed`. */
export function derivedId(seed: string, length: number): string {
  const bytes = createHash('sha256').update(seed).digest();
  let out = '';
  for (let i = 0; i < length; i++) out += ALPHANUMERIC.charAt(bytes[i % bytes.length]! % ALPHANUMERIC.length);
  return out;
}

function toolCallId(dialect: MockDialect, fingerprint: string, index: number): string {
  // OpenAI's IDs look like `call_` + 24 characters; Mistral's are 9 alphanumerics.
  return dialect === 'openai' ? `call_${derivedId(`${fingerprint}:${index}`, 24)}` : derivedId(`${fingerprint}:${index}`, 9);
}

function requestFingerprint(request: ChatRequest): string {
  return createHash('sha256')
    .update(
      JSON.stringify([request.dialect, request.model, request.messages, request.toolNames, request.responseFormat, request.jsonSchema]),
    )
    .digest('hex');
}

/**
 * Holds a script and the position of each rule's fault queue. `plan` consumes at most one fault
 * of the matching rule; everything else it returns depends only on the request.
 */
export class Responder {
  private script: MockScript;
  private faultsServed: number[];

  constructor(script: MockScript = { rules: [] }) {
    this.script = script;
    this.faultsServed = script.rules.map(() => 0);
  }

  get current(): MockScript {
    return this.script;
  }

  /** Replaces the script; its fault queues start from the beginning. */
  setScript(script: MockScript): void {
    this.script = script;
    this.faultsServed = script.rules.map(() => 0);
  }

  /** Re-arms every rule's fault queue. */
  rearm(): void {
    this.faultsServed = this.script.rules.map(() => 0);
  }

  plan(request: ChatRequest): Plan {
    const userText = lastUserText(request.messages);
    const ruleIndex = this.script.rules.findIndex((rule) => ruleMatches(rule, request, userText));
    const rule = ruleIndex >= 0 ? this.script.rules[ruleIndex] : undefined;
    const fingerprint = requestFingerprint(request);

    let fault: MockFault | null = null;
    if (rule?.faults !== undefined) {
      const served = this.faultsServed[ruleIndex] ?? 0;
      const next = rule.faults[served];
      if (next !== undefined) {
        fault = next;
        this.faultsServed[ruleIndex] = served + 1;
      }
    }

    let content: string | null;
    let json: boolean;
    if (rule?.json !== undefined) {
      content = JSON.stringify(rule.json);
      json = true;
    } else if (rule?.text !== undefined) {
      content = rule.text;
      json = false;
    } else if (Array.isArray(rule?.chunks)) {
      content = rule.chunks.join('');
      json = false;
    } else if (rule?.toolCalls !== undefined) {
      content = null;
      json = false;
    } else {
      ({ content, json } = defaultContent(request, userText));
    }

    const toolCalls = (rule?.toolCalls ?? []).map((call, index) => ({
      id: toolCallId(request.dialect, fingerprint, index),
      name: call.name,
      arguments: typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments ?? {}),
    }));

    let pieces: string[] = [];
    if (content !== null && content !== '') {
      const chunks = rule?.chunks;
      if (Array.isArray(chunks)) pieces = [...(chunks as readonly string[])];
      else if (typeof chunks === 'number') pieces = splitEvery(content, chunks);
      else pieces = json ? splitEvery(content, JSON_PIECE_CHARS) : splitWords(content);
    }

    const outputChars = (content?.length ?? 0) + toolCalls.reduce((n, call) => n + call.name.length + call.arguments.length, 0);
    return {
      ruleIndex: rule === undefined ? null : ruleIndex,
      fault,
      content,
      pieces,
      toolCalls,
      finishReason: rule?.finishReason ?? (toolCalls.length > 0 ? 'tool_calls' : 'stop'),
      chunkDelayMs: rule?.chunkDelayMs ?? 0,
      usage: {
        input: rule?.usage?.input ?? Math.max(1, tokens(inputChars(request.messages))),
        output: rule?.usage?.output ?? tokens(outputChars),
      },
      fingerprint,
    };
  }
}
