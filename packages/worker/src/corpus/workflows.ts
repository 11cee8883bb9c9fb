// The workflows of the replay corpus: one per primitive, each with the input and the outside
// events (signals, approvals) of its recorded run, and a changed version that a deployment must not
// roll out over the recorded runs (it calls something else than the journal holds).
import { jsonSchema, tool } from 'ai';
import { MockLanguageModelV4 } from 'ai/test';
import { TerminalError, defineWorkflow, type WorkflowDefinition } from '@cairn/sdk';
import { testModel } from '../testing/test-model.js';

/** One primitive's case: what is recorded, and how its run is driven from outside. */
export interface CorpusCase {
  readonly name: string;
  readonly workflow: WorkflowDefinition;
  /** The same workflow (name and version) with one durable call changed. */
  readonly changed: WorkflowDefinition;
  readonly input: unknown;
  /** Other workflows the run needs registered (a child's). */
  readonly also?: readonly WorkflowDefinition[];
  /** Recorded while it waits (a run in flight) rather than once it ended. */
  readonly inFlight?: boolean;
  /** What the outside sends the run once started. */
  readonly events?: ReadonlyArray<
    | { readonly signal: string; readonly body: unknown }
    | { readonly approval: string; readonly key?: string; readonly answer: { approved: boolean; by?: string } }
  >;
}

const usage = {
  inputTokens: { total: 8, noCache: 8, cacheRead: undefined, cacheWrite: undefined },
  outputTokens: { total: 4, text: 4, reasoning: undefined },
};

/** A model that asks for the `double` tool once, then answers with the tool's result. */
const toolModel = (): MockLanguageModelV4 => {
  let calls = 0;
  return new MockLanguageModelV4({
    provider: 'test',
    modelId: 'test-model',
    doGenerate: () => {
      calls++;
      return Promise.resolve(
        calls === 1
          ? {
              content: [{ type: 'tool-call' as const, toolCallId: 'call_1', toolName: 'double', input: JSON.stringify({ n: 21 }) }],
              finishReason: { unified: 'tool-calls' as const, raw: 'tool_calls' },
              usage,
              warnings: [],
            }
          : {
              content: [{ type: 'text' as const, text: 'The answer is 42.' }],
              finishReason: { unified: 'stop' as const, raw: 'stop' },
              usage,
              warnings: [],
            },
      );
    },
  });
};

const double = tool({
  description: 'Doubles a number',
  inputSchema: jsonSchema<{ n: number }>({ type: 'object', properties: { n: { type: 'number' } }, required: ['n'] }),
  execute: ({ n }) => ({ doubled: n * 2 }),
});

/** Builds a case's workflow and its changed version from one body that takes a `changed` flag. */
function both<I, O>(
  name: string,
  body: (changed: boolean) => (ctx: Parameters<WorkflowDefinition<I, O>['run']>[0], input: I) => Promise<O>,
): { workflow: WorkflowDefinition; changed: WorkflowDefinition } {
  return {
    workflow: defineWorkflow({ name, version: '1' }, body(false)),
    changed: defineWorkflow({ name, version: '1' }, body(true)),
  };
}

const child = defineWorkflow({ name: 'corpus-child-worker', version: '1' }, async (ctx, input: { n: number }) =>
  ctx.step('square', () => input.n * input.n),
);

let flaky = 0;

export const corpusCases: readonly CorpusCase[] = [
  {
    name: 'step',
    input: { a: 2, b: 3, user: 'ada@example.com' },
    ...both('corpus-step', (changed) => async (ctx, input: { a: number; b: number; user: string }) => {
      const sum = await ctx.step('add', () => input.a + input.b);
      const sent = await ctx.step(changed ? 'notify' : 'email', { key: input.user }, () => ({ to: input.user, sum }));
      return { sum, sent };
    }),
  },
  {
    name: 'retry',
    input: { order: 'o-1' },
    ...both('corpus-retry', (changed) => async (ctx, input: { order: string }) => {
      const charged = await ctx.step(changed ? 'charge-card' : 'charge', { retry: { initialInterval: '1s', maximumAttempts: 3 } }, () => {
        if (++flaky < 3) throw new Error(`gateway timeout ${flaky}`);
        return { order: input.order, attempts: flaky };
      });
      return charged;
    }),
  },
  {
    name: 'sleep',
    input: null,
    ...both('corpus-sleep', (changed) => async (ctx) => {
      const before = await ctx.step('before', () => 'reminder queued');
      if (!changed) await ctx.sleep('1d');
      const after = await ctx.step('after', () => 'reminder sent');
      return [before, after];
    }),
  },
  {
    name: 'signal',
    input: null,
    events: [{ signal: 'amount-set', body: { amount: 20 } }],
    ...both('corpus-signal', (changed) => async (ctx) => {
      const body = await ctx.waitForSignal<{ amount: number }>(changed ? 'amount-changed' : 'amount-set', { timeout: '2d' });
      return ctx.step('refund', () => ({ refunded: body.amount }));
    }),
  },
  {
    // A run in flight: recorded while it waits for a signal nobody sent yet.
    name: 'signal-in-flight',
    input: { order: 'o-7' },
    inFlight: true,
    ...both('corpus-signal-in-flight', (changed) => async (ctx, input: { order: string }) => {
      const reserved = await ctx.step(changed ? 'hold' : 'reserve', () => ({ order: input.order }));
      const body = await ctx.waitForSignal<{ address: string }>('address', { timeout: '30d' });
      return ctx.step('ship', () => ({ ...reserved, to: body.address }));
    }),
  },
  {
    name: 'approval',
    input: { order: 'o-42' },
    events: [{ approval: 'refund', key: 'o-42', answer: { approved: true, by: 'maria' } }],
    ...both('corpus-approval', (changed) => async (ctx, input: { order: string }) => {
      const answer = await ctx.approval(changed ? 'refund-over-limit' : 'refund', { key: input.order, timeout: '3d' });
      return { approved: answer.approved, by: answer.by ?? null };
    }),
  },
  {
    name: 'child',
    input: { n: 7 },
    also: [child],
    ...both('corpus-child', (changed) => async (ctx, input: { n: number }) => {
      if (changed) await ctx.step('prepare', () => true);
      const squared = await ctx.child(child, input);
      return { squared };
    }),
  },
  {
    name: 'model',
    input: { text: 'The mug arrived broken.' },
    ...both('corpus-model', (changed) => async (ctx, input: { text: string }) => {
      const reply = await ctx.model(changed ? 'summary' : 'summarize', {
        model: testModel('A broken mug.'),
        prompt: `Summarize: ${input.text}`,
      });
      return { text: reply.text, tokens: reply.usage.outputTokens };
    }),
  },
  {
    name: 'parallel',
    input: { items: [1, 2, 3, 4] },
    ...both(
      'corpus-parallel',
      (changed) => async (ctx, input: { items: number[] }) =>
        ctx.parallel(
          input.items,
          async (n) => {
            const squared = await ctx.step('square', () => n * n);
            return ctx.step(changed ? 'increment' : 'plus-one', () => squared + 1);
          },
          { concurrency: 2 },
        ),
    ),
  },
  {
    name: 'compensation',
    input: { trip: 't-9' },
    ...both('corpus-compensation', (changed) => async (ctx, input: { trip: string }) => {
      await ctx.step('book-hotel', { compensate: () => 'hotel cancelled' }, () => ({ booking: `${input.trip}-hotel` }));
      await ctx.step('book-flight', { compensate: () => 'flight cancelled' }, () => ({ booking: `${input.trip}-flight` }));
      await ctx.step(changed ? 'pay' : 'charge', () => {
        throw new TerminalError('card declined');
      });
      return 'booked';
    }),
  },
  {
    name: 'eval',
    input: null,
    ...both(
      'corpus-eval',
      (changed) => async (ctx) =>
        ctx.step(
          'headline',
          { eval: { checks: [(s: string) => s.length <= 20 || `is ${s.length} characters, at most 20`], maxRetries: changed ? 0 : 2 } },
          (step) => (step.feedback ? 'Mug broken' : 'Customer reports that the mug arrived broken'),
        ),
    ),
  },
  {
    name: 'agent',
    input: 'What is 21 doubled?',
    ...both('corpus-agent', (changed) => async (ctx, prompt: string) => {
      const result = await ctx.agent(changed ? 'assistant' : 'helper', {
        model: toolModel(),
        prompt,
        tools: { double },
        stream: false,
      });
      return { text: result.text, turns: result.turns, toolCalls: result.toolCalls.length };
    }),
  },
  {
    name: 'determinism',
    input: null,
    ...both('corpus-determinism', (changed) => async (ctx) => {
      if (changed) await ctx.step('first', () => null);
      const at = ctx.now().toISOString();
      const n = ctx.random();
      const id = ctx.uuid();
      const stored = await ctx.step('store', () => ({ at, n, id }));
      return { ...stored, later: ctx.now().toISOString() };
    }),
  },
];

/** Every workflow the corpus runs (children included). */
export const corpusWorkflows: readonly WorkflowDefinition[] = [...corpusCases.map((c) => c.workflow), child];
