// Types only from 'ai': the SDK a workflow author imports must load no provider or server code.
import type { LanguageModel, ModelMessage, ToolSet } from 'ai';
import { CairnError, ErrorCodes } from '@cairn/common/core';
import type { Duration } from '@cairn/common/core';
import type { ModelRetryPolicy, ModelUsage } from './model.js';
import type { RetryPolicy } from './retry.js';

/**
 * Options of `ctx.agent`: a tool-calling loop in which every model turn is a durable `ctx.model`
 * call and every tool call a durable `ctx.step`.
 *
 * @example
 * ```ts
 * import { tool } from 'ai';
 * import { z } from 'zod';
 *
 * const lookup = tool({
 *   description: 'Looks an order up',
 *   inputSchema: z.object({ orderId: z.string() }),
 *   execute: async ({ orderId }) => orders.find(orderId),
 * });
 * const options: AgentOptions = { model, system: 'You help customers.', prompt: question, tools: { lookup }, maxTurns: 8 };
 * ```
 */
export interface AgentOptions {
  /** The AI SDK model of every turn, or an ordered fallback list (as for `ctx.model`). */
  readonly model: LanguageModel | readonly LanguageModel[];
  /** Instructions for the model (a system message), sent with every turn. */
  readonly system?: string;
  /** The user's request as text. Give `prompt` or `messages`, not both. */
  readonly prompt?: string;
  /** The conversation so far, as AI SDK model messages. Give `prompt` or `messages`, not both. */
  readonly messages?: readonly ModelMessage[];
  /**
   * The tools the model may call: AI SDK tool definitions **with** `execute`. Each call the model
   * asks for runs as its own durable step `<agent name>.tool.<tool name>` (key: the tool call's
   * ID), whose result is journaled and sent back to the model as the tool result.
   */
  readonly tools: ToolSet;
  /** The most model turns the loop may take: a whole number of at least 1. Default 20. */
  readonly maxTurns?: number;
  /**
   * What happens when `maxTurns` turns ran and the model still asked for tools: `'throw'` (the
   * default) throws {@link AgentMaxTurnsError} (which carries the result so far); `'return'`
   * returns the result with `finishReason: 'max-turns'`.
   */
  readonly onMaxTurns?: 'throw' | 'return';
  /**
   * What happens when a tool's step fails for good (its retries ran out, or it threw
   * `TerminalError`): `'return'` (the default) sends the error message back to the model as the
   * tool's result (an `error-text` output) and the loop goes on; `'throw'` throws the step's
   * `StepFailedError`. A tool the definitions do not have is always answered with an error text.
   */
  readonly onToolError?: 'return' | 'throw';
  /**
   * Every this many turns the loop journals its state (the conversation so far, the tool calls,
   * the usage) as one checkpoint entry, so a replay starts from the latest checkpoint instead of
   * walking every earlier turn. A whole number of at least 1. Default 10.
   */
  readonly checkpointEvery?: number;
  /**
   * The dynamic part of the agent's identity (a ticket ID), when one workflow runs several agents
   * of the same name. Only HMAC digests of it cross to the control plane.
   */
  readonly key?: string | number;
  /** Sampling temperature of every turn. */
  readonly temperature?: number;
  /** Most tokens one turn may generate. */
  readonly maxOutputTokens?: number;
  /** How a failed turn is retried, per model (as for `ctx.model`). */
  readonly retry?: ModelRetryPolicy;
  /** Longest one attempt of a turn may take (ms or `'60s'`). */
  readonly timeout?: Duration;
  /** Stream each turn's text to local subscribers (as for `ctx.model`). Default true. */
  readonly stream?: boolean;
  /** How a failed tool step is retried (as for `ctx.step`). Default: 3 attempts. */
  readonly toolRetry?: RetryPolicy;
  /** Longest one attempt of a tool step may run (ms or `'30s'`). */
  readonly toolTimeout?: Duration;
}

/**
 * One tool call of an agent loop and its outcome.
 *
 * @example
 * ```ts
 * for (const call of result.toolCalls) console.log(call.turn, call.toolName, call.error ?? call.output);
 * ```
 */
export interface AgentToolCall {
  /** The turn (from 1) whose model answer asked for the call. */
  readonly turn: number;
  readonly toolCallId: string;
  readonly toolName: string;
  readonly input: unknown;
  /** What the tool's `execute` returned (absent when it failed). */
  readonly output?: unknown;
  /** The error message sent back to the model, when the tool failed or does not exist. */
  readonly error?: string;
}

/**
 * What `ctx.agent` returns.
 *
 * @example
 * ```ts
 * const { text, turns, toolCalls, usage } = await ctx.agent('support', { model, prompt, tools, maxTurns: 8 });
 * ```
 */
export interface AgentResult {
  /** The text of the last turn (the final answer when the loop stopped by itself). */
  readonly text: string;
  /** Model turns taken. */
  readonly turns: number;
  /** Every tool call of every turn, in order. */
  readonly toolCalls: readonly AgentToolCall[];
  /** Tokens summed over all turns. */
  readonly usage: ModelUsage;
  /** `'stop'`: a turn asked for no tool; `'max-turns'`: `maxTurns` ran out (with `onMaxTurns: 'return'`). */
  readonly finishReason: 'stop' | 'max-turns';
  /**
   * The messages the loop added after the prompt or the given messages: each turn's assistant
   * message and the tool results, in AI SDK `ModelMessage` form, ready to continue the
   * conversation.
   */
  readonly messages: readonly ModelMessage[];
}

/**
 * What `ctx.agent` throws when `maxTurns` turns ran and the model still asked for tools (unless
 * `onMaxTurns: 'return'`). `result` holds the loop's state at that point. Left uncaught, the run
 * fails with `STEP_FAILED`.
 *
 * @example
 * ```ts
 * try {
 *   await ctx.agent('research', { model, prompt, tools, maxTurns: 5 });
 * } catch (err) {
 *   if (err instanceof AgentMaxTurnsError) console.log(err.result.toolCalls.length);
 *   else throw err;
 * }
 * ```
 */
export class AgentMaxTurnsError extends CairnError {
  /** The agent's static name. */
  readonly agentName: string;
  readonly maxTurns: number;
  /** The loop's state when it stopped. */
  readonly result: AgentResult;

  constructor(init: { agentName: string; maxTurns: number; result: AgentResult }) {
    super(
      ErrorCodes.STEP_FAILED,
      `Agent "${init.agentName}" reached its limit of ${init.maxTurns} ${init.maxTurns === 1 ? 'turn' : 'turns'} and the model still asked for tools; raise maxTurns or pass onMaxTurns: 'return'.`,
      { details: { agentName: init.agentName, maxTurns: init.maxTurns } },
    );
    this.name = 'AgentMaxTurnsError';
    this.agentName = init.agentName;
    this.maxTurns = init.maxTurns;
    this.result = init.result;
  }
}
