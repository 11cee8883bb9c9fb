// ctx.agent: validation, the pure parts of the loop (messages, checkpoints), and the loop itself
// (`runAgent`), made of the engine's durable model calls and steps.
import { CairnError, ErrorCodes, assertName, isNonNullObject } from '@cairn/common';
import {
  AgentMaxTurnsError,
  StepFailedError,
  type AgentOptions,
  type AgentResult,
  type AgentToolCall,
  type ModelCallOptions,
  type ModelToolCall,
  type ModelUsage,
  type StepContext,
} from '@cairn/sdk';
import type { ModelMessage, Tool, ToolSet } from 'ai';
import { type ResolvedRetryPolicy, resolveRetryPolicy, toMilliseconds } from '@cairn/sdk/internal';
import { durableModel } from './engine/calls/model.js';
import { durableStep } from './engine/calls/step.js';
import type { Run } from './engine/run.js';
import { prepareModelCall } from './model.js';

/** An agent call's options, checked, with its derived names. */
export interface PreparedAgent {
  readonly name: string;
  /** `<name>.turn`: the model call of every turn. */
  readonly turnName: string;
  /** `<name>.checkpoint`: the step holding the loop's state every `checkpointEvery` turns. */
  readonly checkpointName: string;
  readonly tools: ToolSet;
  readonly maxTurns: number;
  readonly checkpointEvery: number;
  readonly onMaxTurns: 'throw' | 'return';
  readonly onToolError: 'return' | 'throw';
  readonly toolPolicy: ResolvedRetryPolicy;
  readonly toolTimeoutMs: number | undefined;
  /** The conversation the loop starts from (the prompt as a user message, or the given messages). */
  readonly initial: readonly ModelMessage[];
  /** The options of every turn's model call, without the conversation. */
  readonly turnOptions: Omit<ModelCallOptions<string>, 'prompt' | 'messages'>;
}

/**
 * The loop's state, journaled (sealed) as the value of a checkpoint step: everything a replay needs
 * to go on from the turn after it without walking earlier turns.
 */
export interface AgentCheckpoint {
  /** Turns done. */
  readonly turn: number;
  /** The messages the loop added so far (assistant turns and tool results). */
  readonly messages: readonly ModelMessage[];
  readonly toolCalls: readonly AgentToolCall[];
  readonly usage: ModelUsage;
  readonly text: string;
  /** Journal positions of the turns and tool steps since the previous checkpoint (claimed on replay). */
  readonly positions: readonly number[];
}

const NAME_LIMIT = 100;

/** A tool name as a step-name part: characters outside the name pattern become `-`. */
export function sanitizeToolName(toolName: string): string {
  const cleaned = toolName.replace(/[^A-Za-z0-9_.-]/g, '-');
  return cleaned === '' ? 'tool' : cleaned;
}

/** `<agent>.tool.<tool>`, cut to the name limit. */
export const toolStepName = (agentName: string, toolName: string): string =>
  `${agentName}.tool.${sanitizeToolName(toolName)}`.slice(0, NAME_LIMIT);

const invalid = (message: string): CairnError => new CairnError(ErrorCodes.INVALID_ARGUMENT, message);

const wholeNumber = (value: unknown, what: string, fallback: number): number => {
  const n = value ?? fallback;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) {
    throw invalid(`Invalid ${what} ${String(value)}: use a whole number of at least 1.`);
  }
  return n;
};

export function prepareAgent(name: string, options: AgentOptions): PreparedAgent {
  assertName(name, 'agent name');
  const call = `agent "${name}"`;
  if (!isNonNullObject(options)) {
    throw invalid(`ctx.agent("${name}") needs options: ctx.agent(name, { model, prompt, tools }).`);
  }
  const { tools } = options;
  if (!isNonNullObject(tools) || Array.isArray(tools)) {
    throw invalid(`The tools of ${call} must be an object of AI SDK tool definitions with execute functions, keyed by tool name.`);
  }
  for (const [toolName, definition] of Object.entries(tools)) {
    if (typeof (definition as Partial<Tool> | undefined)?.execute !== 'function') {
      throw invalid(
        `Tool "${toolName}" of ${call} has no execute function: ctx.agent runs every tool the model calls, so give each one execute.`,
      );
    }
  }
  if (options.prompt !== undefined && options.messages !== undefined) throw invalid(`${call} has both prompt and messages: give one.`);
  if (options.prompt === undefined && options.messages === undefined) throw invalid(`${call} needs a prompt (a string) or messages.`);
  if (options.prompt !== undefined && typeof options.prompt !== 'string') throw invalid(`The prompt of ${call} must be a string.`);
  if (options.messages !== undefined && !Array.isArray(options.messages)) {
    throw invalid(`The messages of ${call} must be a list of AI SDK model messages.`);
  }
  if (options.key !== undefined && typeof options.key !== 'string' && typeof options.key !== 'number') {
    throw invalid(`The key of ${call} must be a string or a number.`);
  }
  // Checked as unknown: untyped callers can pass anything.
  const onMaxTurns: unknown = options.onMaxTurns ?? 'throw';
  if (onMaxTurns !== 'throw' && onMaxTurns !== 'return') throw invalid(`The onMaxTurns option of ${call} must be 'throw' or 'return'.`);
  const onToolError: unknown = options.onToolError ?? 'return';
  if (onToolError !== 'throw' && onToolError !== 'return') {
    throw invalid(`The onToolError option of ${call} must be 'return' or 'throw'.`);
  }
  const initial: ModelMessage[] =
    options.messages !== undefined
      ? [...(options.messages as unknown as readonly ModelMessage[])]
      : [{ role: 'user', content: options.prompt as string }];
  return {
    name,
    turnName: `${name}.turn`.slice(0, NAME_LIMIT),
    checkpointName: `${name}.checkpoint`.slice(0, NAME_LIMIT),
    tools,
    maxTurns: wholeNumber(options.maxTurns, `maxTurns of ${call}`, 20),
    checkpointEvery: wholeNumber(options.checkpointEvery, `checkpointEvery of ${call}`, 10),
    onMaxTurns,
    onToolError,
    toolPolicy: resolveRetryPolicy(options.toolRetry),
    toolTimeoutMs: options.toolTimeout === undefined ? undefined : toMilliseconds(options.toolTimeout, `toolTimeout of ${call}`),
    initial,
    turnOptions: {
      model: options.model,
      tools,
      ...(options.system === undefined ? {} : { system: options.system }),
      ...(options.temperature === undefined ? {} : { temperature: options.temperature }),
      ...(options.maxOutputTokens === undefined ? {} : { maxOutputTokens: options.maxOutputTokens }),
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.stream === undefined ? {} : { stream: options.stream }),
    },
  };
}

/** The assistant message of a turn: its text and its tool calls. */
export function assistantMessage(text: string, toolCalls: readonly ModelToolCall[]): ModelMessage {
  return {
    role: 'assistant',
    content: [
      ...(text === '' ? [] : [{ type: 'text' as const, text }]),
      ...toolCalls.map((c) => ({ type: 'tool-call' as const, toolCallId: c.toolCallId, toolName: c.toolName, input: c.input })),
    ],
  };
}

/** The tool message answering a turn's tool calls, in call order. */
export function toolMessage(calls: readonly AgentToolCall[]): ModelMessage {
  return {
    role: 'tool',
    content: calls.map((c) => ({
      type: 'tool-result' as const,
      toolCallId: c.toolCallId,
      toolName: c.toolName,
      output:
        c.error !== undefined
          ? { type: 'error-text' as const, value: c.error }
          : typeof c.output === 'string'
            ? { type: 'text' as const, value: c.output }
            : { type: 'json' as const, value: (c.output ?? null) as never },
    })),
  };
}

/** Runs a tool's `execute`; a streaming tool (an async iterable) yields its last value. */
export async function executeTool(
  tool: ToolSet[string],
  input: unknown,
  options: { toolCallId: string; messages: ModelMessage[]; abortSignal: AbortSignal },
): Promise<unknown> {
  const execute = tool.execute as (input: unknown, options: unknown) => unknown;
  const result = await execute(input, { ...options, context: undefined });
  if (result !== null && typeof result === 'object' && Symbol.asyncIterator in result) {
    let last: unknown;
    for await (const value of result as AsyncIterable<unknown>) last = value;
    return last;
  }
  return result;
}

/**
 * Runs `ctx.agent`'s tool-calling loop as durable calls. Its calls are identified by the agent's
 * identity `id` (`a<n>` on the main line, or its place in a branch) plus turn and tool-call index,
 * like a branch's calls, so a replay finds each entry whatever position it holds; checkpoints
 * (`<identity>.cp<k>`) let a replay start from the latest one without walking earlier turns.
 */
export async function runAgent(run: Run, id: string, agent: PreparedAgent, key: string | number | undefined): Promise<AgentResult> {
  const keyOf = (part: string | number): string | number => (key === undefined ? part : `${String(key)}:${part}`);
  let turn = 0;
  let messages: ModelMessage[] = [];
  let toolCalls: AgentToolCall[] = [];
  let usage: ModelUsage = { inputTokens: 0, outputTokens: 0 };
  let text = '';
  let positions: number[] = [];
  // Replay: take every checkpoint already journaled; the latest one holds the state to go on from.
  let checkpoints = 0;
  for (;;) {
    const cpId = `${id}.cp${checkpoints + 1}`;
    const cpKey = keyOf(`cp${checkpoints + 1}`);
    const found = run.cursor.peek('step', agent.checkpointName, cpKey, cpId);
    if (found?.status !== 'completed') break;
    const slot = run.cursor.slot('step', agent.checkpointName, cpKey, cpId);
    const cp = found.value as AgentCheckpoint;
    for (const position of cp.positions) run.cursor.claimReplayed(position);
    ({ turn, text, usage } = cp);
    messages = [...cp.messages];
    toolCalls = [...cp.toolCalls];
    positions = [];
    checkpoints++;
    run.log.debug({ agent: agent.name, turn, position: slot.position }, 'agent resumed from its checkpoint');
  }
  const result = (finishReason: AgentResult['finishReason']): AgentResult => ({
    text,
    turns: turn,
    toolCalls,
    usage,
    finishReason,
    messages,
  });
  for (;;) {
    turn++;
    const conversation = [...agent.initial, ...messages];
    const call = prepareModelCall(agent.turnName, { ...agent.turnOptions, messages: conversation });
    const turnSlot = run.cursor.slot('model', agent.turnName, keyOf(turn), `${id}.t${turn}`);
    positions.push(turnSlot.position);
    const reply = await durableModel(run, agent.turnName, undefined, call, turnSlot);
    usage = { inputTokens: usage.inputTokens + reply.usage.inputTokens, outputTokens: usage.outputTokens + reply.usage.outputTokens };
    text = reply.text;
    messages.push(assistantMessage(reply.text, reply.toolCalls));
    if (reply.toolCalls.length === 0) return result('stop');
    // Slots are taken in call order before anything runs, so the tools may run concurrently.
    const runs = reply.toolCalls.map(async (c, index): Promise<AgentToolCall> => {
      const base = { turn, toolCallId: c.toolCallId, toolName: c.toolName, input: c.input };
      const definition = Object.hasOwn(agent.tools, c.toolName) ? agent.tools[c.toolName] : undefined;
      if (!definition) {
        return { ...base, error: `There is no tool "${c.toolName}". Available tools: ${Object.keys(agent.tools).join(', ')}.` };
      }
      const stepName = toolStepName(agent.name, c.toolName);
      const slot = run.cursor.slot('step', stepName, keyOf(c.toolCallId), `${id}.t${turn}.c${index}`);
      positions.push(slot.position);
      try {
        const output = await durableStep(
          run,
          stepName,
          (step: StepContext) =>
            executeTool(definition, c.input, { toolCallId: c.toolCallId, messages: conversation, abortSignal: step.signal }),
          {},
          agent.toolPolicy,
          agent.toolTimeoutMs,
          undefined,
          slot,
        );
        return { ...base, output };
      } catch (err) {
        if (agent.onToolError === 'return' && err instanceof StepFailedError) return { ...base, error: err.causeMessage };
        throw err;
      }
    });
    const settled = await Promise.allSettled(runs);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const done = settled.map((r) => (r as PromiseFulfilledResult<AgentToolCall>).value);
    toolCalls.push(...done);
    messages.push(toolMessage(done));
    if (turn >= agent.maxTurns) {
      const value = result('max-turns');
      if (agent.onMaxTurns === 'return') return value;
      throw new AgentMaxTurnsError({ agentName: agent.name, maxTurns: agent.maxTurns, result: value });
    }
    if (turn % agent.checkpointEvery === 0) {
      checkpoints++;
      const cp: AgentCheckpoint = { turn, messages: [...messages], toolCalls: [...toolCalls], usage, text, positions };
      const slot = run.cursor.slot('step', agent.checkpointName, keyOf(`cp${checkpoints}`), `${id}.cp${checkpoints}`);
      await durableStep(run, agent.checkpointName, () => cp, {}, resolveRetryPolicy({ maximumAttempts: 1 }), undefined, undefined, slot);
      positions = [];
    }
  }
}
