import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { jsonSchema, tool, type LanguageModel } from 'ai';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { z } from 'zod';
import { ChildWorkflowFailedError, StepFailedError, TerminalError, SignalTimeoutError, defineSignal, defineWorkflow } from '@cairn/sdk';
import { countEffects, recordEffect } from './effects.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The local model server the test stack starts (CAIRN_MOCK_LLM_URL), through the real AI SDK provider. */
function testModel(modelId = 'mock-small'): LanguageModel {
  const url = process.env['CAIRN_MOCK_LLM_URL'];
  if (!url) throw new Error('CAIRN_MOCK_LLM_URL is not set: start the test stack with mockLlm');
  return createOpenAICompatible({ name: 'mock', baseURL: `${url}/openai/v1`, supportsStructuredOutputs: true, includeUsage: true })(
    modelId,
  );
}

/** One model call; optionally a sleep after it, so the run suspends and replays the call. */
export const modelCall = defineWorkflow(
  { name: 'model-call', version: '1' },
  async (ctx, input: { prompt: string; timeoutMs?: number; sleepMs?: number }) => {
    const reply = await ctx.model('ask', {
      model: testModel(),
      prompt: input.prompt,
      retry: { initialInterval: 50, maximumAttempts: 4 },
      timeout: input.timeoutMs ?? 10_000,
    });
    if (input.sleepMs) await ctx.sleep(input.sleepMs);
    return { text: reply.text, attempts: reply.attempts, usage: reply.usage, model: reply.model };
  },
);

/**
 * Application code with tracing of its own: inside the step it starts a span (which should nest
 * under Cairn's step span) and tries to write its input onto the active span (Cairn's, which
 * should take none of it).
 */
export const tracedStep = defineWorkflow({ name: 'traced-step', version: '1' }, async (ctx, input: { secret: string; amount: number }) =>
  ctx.step('charge-card', () => {
    const active = trace.getActiveSpan();
    active?.setAttribute('app.input', input.secret);
    active?.setAttributes({ 'cairn.step.name': input.secret });
    active?.addEvent(input.secret, { 'app.input': input.secret });
    active?.recordException(new Error(input.secret));
    active?.setStatus({ code: SpanStatusCode.ERROR, message: input.secret });
    active?.updateName(input.secret);
    active?.end();
    return trace.getTracer('shop').startActiveSpan('shop.charge', (span) => {
      span.setAttribute('shop.amount', input.amount);
      span.end();
      return 'charged';
    });
  }),
);

/** Five steps; each records a side effect. Step 3 takes `step3Ms` so a test can kill the worker in it. */
export const fiveSteps = defineWorkflow({ name: 'five-steps', version: '1' }, async (ctx, input: { step3Ms: number; stepMs?: number }) => {
  const results: string[] = [];
  for (let i = 1; i <= 5; i++) {
    const r = await ctx.step(`step-${i}`, async ({ attempt }) => {
      await recordEffect(ctx.runId, `step-${i}:start`, attempt);
      await pause(i === 3 ? input.step3Ms : (input.stepMs ?? 20));
      await recordEffect(ctx.runId, `step-${i}`, attempt);
      return `done-${i}`;
    });
    results.push(r);
  }
  return results;
});

/** `steps` steps of `stepMs` each, no suspension. */
export const manySteps = defineWorkflow({ name: 'many-steps', version: '1' }, async (ctx, input: { steps: number; stepMs: number }) => {
  let total = 0;
  for (let i = 1; i <= input.steps; i++) {
    total += await ctx.step(`step-${i}`, async ({ attempt }) => {
      await pause(input.stepMs);
      await recordEffect(ctx.runId, `step-${i}`, attempt);
      return i;
    });
  }
  return { total };
});

/** Sleeps, then records a step. */
export const sleeper = defineWorkflow({ name: 'sleeper', version: '1' }, async (ctx, input: { sleepMs: number }) => {
  const before = ctx.now().getTime();
  await ctx.sleep(input.sleepMs);
  await ctx.step('after-sleep', async ({ attempt }) => {
    await recordEffect(ctx.runId, 'after-sleep', attempt);
  });
  return { sleptAtLeast: ctx.now().getTime() - before >= input.sleepMs };
});

/** Waits for a signal after an optional delay step; returns the body or 'timed-out'. */
export const signalWaiter = defineWorkflow(
  { name: 'signal-waiter', version: '1' },
  async (ctx, input: { delayMs: number; timeoutMs?: number; signals?: number }) => {
    await ctx.step('prepare', () => pause(input.delayMs));
    const got: unknown[] = [];
    for (let i = 0; i < (input.signals ?? 1); i++) {
      try {
        got.push(await ctx.waitForSignal('go', input.timeoutMs === undefined ? {} : { timeout: input.timeoutMs }));
      } catch (err) {
        if (err instanceof SignalTimeoutError) return { timedOut: true, got };
        throw err;
      }
    }
    return { timedOut: false, got };
  },
);

/** A step that fails `failures` times, then succeeds. */
export const flaky = defineWorkflow({ name: 'flaky', version: '1' }, async (ctx, input: { failures: number; backoffMs: number }) => {
  return ctx.step(
    'flaky-call',
    async ({ attempt }) => {
      await recordEffect(ctx.runId, 'flaky-call', attempt);
      const tries = await countEffects(ctx.runId, 'flaky-call');
      if (tries <= input.failures) throw new Error(`transient failure ${tries}`);
      return { attempts: tries };
    },
    { retry: { initialInterval: input.backoffMs, backoffCoefficient: 2, maximumAttempts: input.failures + 2 } },
  );
});

/** A step that fails with a terminal error whose message carries `secret`. */
export const doomed = defineWorkflow({ name: 'doomed', version: '1' }, async (ctx, input: { secret: string }) => {
  await ctx.step('charge-card', async ({ attempt }) => {
    await recordEffect(ctx.runId, 'charge-card', attempt);
    throw new TerminalError(`card declined for ${input.secret}`);
  });
  return 'unreachable';
});

/** Carries a marker through input, step outputs, a signal body, an error and the output. */
export const canary = defineWorkflow({ name: 'canary', version: '1' }, async (ctx, input: { marker: string }) => {
  const echoed = await ctx.step('echo', { key: `key-${input.marker}` }, () => ({ echoed: input.marker }));
  let caught = '';
  try {
    await ctx.step('fail-with-marker', () => {
      throw new TerminalError(`failure mentioning ${input.marker}`);
    });
  } catch (err) {
    caught = err instanceof Error ? 'caught' : 'odd';
  }
  // A model call whose system prompt, prompt, tool arguments and answer all carry the marker.
  const planned = await ctx.model('plan', {
    model: testModel(),
    system: `You help with case ${input.marker}.`,
    prompt: `Look up ${input.marker}`,
    tools: {
      lookup: tool({
        description: 'Look up a case',
        inputSchema: jsonSchema<{ q: string }>({ type: 'object', properties: { q: { type: 'string' } }, required: ['q'] }),
      }),
    },
  });
  const found: unknown[] = [];
  for (const call of planned.toolCalls) {
    found.push(await ctx.step('tool.lookup', { key: call.toolCallId }, () => ({ result: `record for ${JSON.stringify(call.input)}` })));
  }
  const answer = await ctx.model('answer', { model: testModel(), prompt: `Summarise ${input.marker}: ${JSON.stringify(found)}` });
  // An eval gate whose failure reason carries the marker: the step re-runs with that feedback.
  const draft = await ctx.step('draft', ({ feedback }) => (feedback ? `draft v2 fixing: ${feedback.reasons.join('; ')}` : 'draft v1'), {
    eval: { checks: [(d: string) => d.startsWith('draft v2') || `needs a second draft for ${input.marker}`], maxRetries: 2 },
  });
  // A human review whose comment carries the marker.
  const review = await ctx.approval('review');
  const body = await ctx.waitForSignal<{ note: string }>('note');
  return {
    echoed,
    caught,
    note: body.note,
    marker: input.marker,
    found,
    answer: answer.text,
    draft,
    reviewComment: review.comment ?? null,
  };
});

/** A workflow that fails with its own error carrying `secret`. */
export const canaryFailure = defineWorkflow({ name: 'canary-failure', version: '1' }, async (ctx, input: { marker: string }) => {
  await ctx.step('before', () => input.marker);
  throw new Error(`workflow failed with ${input.marker}`);
});

/**
 * A trip booking saga: book a flight and a hotel (each with an undo), then wait for the traveller's
 * approval (the run suspends), then charge — which fails when asked to. Undo effects are recorded.
 */
export const tripSaga = defineWorkflow({ name: 'trip-saga', version: '1' }, async (ctx, input: { failCharge: boolean }) => {
  const flight = await ctx.step('book-flight', async () => (await recordEffect(ctx.runId, 'book-flight', 1), { id: 'F1' }), {
    compensate: async (booked) => recordEffect(ctx.runId, `undo-flight:${booked.id}`, 1),
  });
  const hotel = await ctx.step('book-hotel', async () => (await recordEffect(ctx.runId, 'book-hotel', 1), { id: 'H1' }), {
    compensate: async (booked) => recordEffect(ctx.runId, `undo-hotel:${booked.id}`, 1),
  });
  const answer = await ctx.approval<{ seat?: string }>('trip', { timeout: '2d' });
  if (!answer.approved) return { booked: false, by: answer.by ?? null };
  await ctx.step('charge-card', async () => {
    await recordEffect(ctx.runId, 'charge-card', 1);
    if (input.failCharge) throw new TerminalError('card declined');
  });
  return { booked: true, flight: flight.id, hotel: hotel.id, seat: answer.data?.seat ?? null, by: answer.by ?? null };
});

/** An agent loop whose one tool records its calls; the call of turn 3 takes `turn3Ms`. */
export const agentLoop = defineWorkflow({ name: 'agent-loop', version: '1' }, async (ctx, input: { prompt: string; turn3Ms: number }) => {
  const work = tool({
    description: 'Does one piece of the work',
    inputSchema: jsonSchema<{ turn: number }>({ type: 'object', properties: { turn: { type: 'number' } }, required: ['turn'] }),
    execute: async ({ turn }) => {
      await recordEffect(ctx.runId, `tool-${turn}:start`, 1);
      if (turn === 3) await pause(input.turn3Ms);
      await recordEffect(ctx.runId, `tool-${turn}`, 1);
      return `piece ${turn} done`;
    },
  });
  const result = await ctx.agent('helper', { model: testModel(), prompt: input.prompt, tools: { work }, maxTurns: 10 });
  return { text: result.text, turns: result.turns };
});

/** A child: doubles `n` after a short step; fails when `fail` is set; waits for a signal `go` when `wait` is set. */
export const childWork = defineWorkflow(
  { name: 'child-work', version: '1' },
  async (ctx, input: { n: number; fail?: boolean; wait?: boolean }) => {
    if (input.wait) await ctx.waitForSignal('go');
    return ctx.step('double', async () => {
      await pause(50);
      if (input.fail) throw new TerminalError(`cannot double ${input.n}`);
      return input.n * 2;
    });
  },
);

/** A parent: starts one child per item through ctx.parallel (concurrency 2), or one failing / waiting child. */
export const parentWork = defineWorkflow(
  { name: 'parent-work', version: '1' },
  async (ctx, input: { items?: number[]; fail?: boolean; wait?: boolean }) => {
    if (input.items) {
      const outputs = await ctx.parallel(input.items, (n) => ctx.child(childWork, { n }, { key: n }), { concurrency: 2 });
      return { outputs };
    }
    try {
      const out = await ctx.child<typeof childWork>('child-work', {
        n: 1,
        ...(input.fail === undefined ? {} : { fail: input.fail }),
        ...(input.wait === undefined ? {} : { wait: input.wait }),
      });
      return { ok: out };
    } catch (err) {
      if (err instanceof ChildWorkflowFailedError) return { caught: err.name, child: err.childRunId, message: err.causeMessage };
      throw err;
    }
  },
);

/** Waits for a go signal, then streams a model answer (for the gateway's SSE endpoint). */
export const streamer = defineWorkflow({ name: 'streamer', version: '1' }, async (ctx, input: { prompt: string }) => {
  await ctx.waitForSignal('go');
  const reply = await ctx.model('speak', { model: testModel(), prompt: input.prompt });
  return { text: reply.text };
});

/** For @cairn/client: typed input and output, an approval, then a signal. */
export const clientOrder = defineWorkflow(
  { name: 'client-order', version: '1' },
  async (ctx, input: { orderId: string; amount: number }) => {
    const answer = await ctx.approval<{ limit?: number }>('refund', { timeout: '1h' });
    const note = await ctx.waitForSignal<{ text: string }>('note', { timeout: '1h' });
    return {
      orderId: input.orderId,
      amount: input.amount,
      approved: answer.approved,
      by: answer.by ?? null,
      limit: answer.data?.limit ?? null,
      note: note.text,
    };
  },
);

/**
 * Four steps, each recording a side effect; step 2 differs between versions 1 and 2, so a fork onto
 * version 2 from position 2 shows the new behaviour while steps 0 and 1 are replayed from the journal.
 */
function forkDemo(version: '1' | '2') {
  return defineWorkflow({ name: 'fork-demo', version }, async (ctx, input: { base: number }) => {
    const record = async (name: string, value: number | string) => {
      await recordEffect(ctx.runId, name, 1);
      return value;
    };
    const a = await ctx.step('s0', () => record('s0', input.base + 1));
    const b = await ctx.step('s1', () => record('s1', (a as number) * 10));
    const c = await ctx.step('s2', () => record('s2', (b as number) + (version === '1' ? 5 : 500)));
    const d = await ctx.step('s3', () => record('s3', `${c}!`));
    return { a, b, c, d, version };
  });
}
export const forkDemoV1 = forkDemo('1');
export const forkDemoV2 = forkDemo('2');
/**
 * Version 3 calls s2 before s1: a run of version 1 or 2 does not replay on it (the replay check
 * reports the divergence at position 1), while version 2 replays a run of version 1 cleanly.
 */
export const forkDemoV3 = defineWorkflow({ name: 'fork-demo', version: '3' }, async (ctx, input: { base: number }) => {
  const record = async (name: string, value: number | string) => {
    await recordEffect(ctx.runId, name, 1);
    return value;
  };
  const a = await ctx.step('s0', () => record('s0', input.base + 1));
  const c = await ctx.step('s2', () => record('s2', (a as number) + 500));
  const b = await ctx.step('s1', () => record('s1', (c as number) * 10));
  const d = await ctx.step('s3', () => record('s3', `${b}!`));
  return { a, b, c, d, version: '3' };
});

/** Fired by a schedule: returns the input it was given (created in the data plane from a stored payload). */
export const scheduledEcho = defineWorkflow({ name: 'scheduled-echo', version: '1' }, async (ctx, input: unknown) => {
  const echoed = await ctx.step('echo', () => ({ got: input }));
  return echoed;
});

/**
 * Registered with a run timeout (see e2e/registered-defaults.test.ts): records a step, then sleeps
 * `sleepMs` (long enough to suspend), then records another.
 */
export const timeoutSleeper = defineWorkflow({ name: 'timeout-sleeper', version: '1' }, async (ctx, input: { sleepMs: number }) => {
  await ctx.step('before-sleep', ({ attempt }) => recordEffect(ctx.runId, 'before-sleep', attempt));
  await ctx.sleep(input.sleepMs);
  await ctx.step('after-sleep', ({ attempt }) => recordEffect(ctx.runId, 'after-sleep', attempt));
  return 'woke';
});

/**
 * Registered with a run timeout: one step that works for up to `busyMs` while its worker holds the
 * run, and records `busy:stopped` when the engine aborts it (the lease was lost).
 */
export const timeoutBusy = defineWorkflow({ name: 'timeout-busy', version: '1' }, async (ctx, input: { busyMs: number }) => {
  await ctx.step('busy', async ({ attempt, signal }) => {
    await recordEffect(ctx.runId, 'busy:start', attempt);
    const stopped = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), input.busyMs);
      signal.addEventListener('abort', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (stopped) await recordEffect(ctx.runId, 'busy:stopped', attempt);
  });
  await ctx.step('after-busy', ({ attempt }) => recordEffect(ctx.runId, 'after-busy', attempt));
  return 'done';
});

/**
 * Registered with a default retry policy and step timeout: steps with and without options of their
 * own, each recording every attempt; returns how each step ended.
 */
export const registeredDefaults = defineWorkflow({ name: 'registered-defaults', version: '1' }, async (ctx, input: { slowMs: number }) => {
  const ended = async (run: () => Promise<unknown>) => {
    try {
      await run();
      return { ok: true };
    } catch (err) {
      if (err instanceof StepFailedError) return { ok: false, attempts: err.attempts, causeName: err.causeName };
      throw err;
    }
  };
  const failing =
    (name: string) =>
    async ({ attempt }: { attempt: number }) => {
      await recordEffect(ctx.runId, name, attempt);
      throw new Error(`${name} failed`);
    };
  const slow =
    (name: string) =>
    async ({ attempt }: { attempt: number }) => {
      await recordEffect(ctx.runId, name, attempt);
      await pause(input.slowMs);
    };
  return {
    registeredPolicy: await ended(() => ctx.step('no-options', failing('no-options'))),
    ownPolicy: await ended(() => ctx.step('own-policy', failing('own-policy'), { retry: { maximumAttempts: 2, initialInterval: 20 } })),
    registeredTimeout: await ended(() => ctx.step('slow-no-options', slow('slow-no-options'))),
    ownTimeout: await ended(() => ctx.step('slow-own-timeout', slow('slow-own-timeout'), { timeout: 30_000 })),
  };
});

/** Starts a `timeout-sleeper` child that sleeps past its run timeout; returns how the child call ended. */
export const timeoutParent = defineWorkflow({ name: 'timeout-parent', version: '1' }, async (ctx) => {
  try {
    await ctx.child(timeoutSleeper, { sleepMs: 60_000 });
    return { childFailed: false };
  } catch (err) {
    if (!(err instanceof ChildWorkflowFailedError)) throw err;
    return { childFailed: true, causeName: err.causeName, childRunId: err.childRunId };
  }
});

/** The approval signal of typed-refund: its body schema is catalogued, so the gateway checks it. */
export const refundApproval = defineSignal('refund-approval', z.object({ approved: z.boolean(), by: z.string().min(1) }));

/** The input schema of typed-refund. */
export const typedRefundInput = z.object({ orderId: z.string().min(1), amount: z.number().min(0), currency: z.string().default('EUR') });

/** Settings in code: a zod input (typed, checked by the gateway and the worker), a typed signal, retry and timeouts. */
export const typedRefund = defineWorkflow(
  {
    name: 'typed-refund',
    version: '1',
    input: typedRefundInput,
    signals: [refundApproval],
    retry: { maximumAttempts: 4, initialInterval: '100ms' },
    timeouts: { run: '1h', step: '20s' },
  },
  async (ctx, input) => {
    await ctx.step('record-request', ({ attempt }) => recordEffect(ctx.runId, 'typed-refund:requested', attempt));
    const answer = await ctx.waitForSignal(refundApproval, { timeout: '2m' });
    return { orderId: input.orderId, amount: input.amount, currency: input.currency, approved: answer.approved, by: answer.by };
  },
);

/** An input schema JSON Schema cannot express (a Date): only the worker checks it, at run start. */
export const datedInput = defineWorkflow(
  { name: 'dated-input', version: '1', input: z.object({ at: z.coerce.date() }) },
  async (ctx, input) => ctx.step('year', () => input.at.getUTCFullYear()),
);

/**
 * A customer's e-mail used as a step key and an approval key in one workflow, and (below) as a
 * step key in another: their digests must not link the uses (per-purpose, per-workflow keys).
 */
export const keyedEmail = defineWorkflow({ name: 'keyed-email', version: '1' }, async (ctx, input: { email: string }) => {
  await ctx.step('lookup', { key: input.email }, () => ({ found: true }));
  const answer = await ctx.approval('confirm', { key: input.email });
  return { approved: answer.approved };
});

/** The other workflow of {@link keyedEmail}'s test: the same e-mail as its step key. */
export const keyedEmailOther = defineWorkflow({ name: 'keyed-email-other', version: '1' }, async (ctx, input: { email: string }) => {
  await ctx.step('lookup', { key: input.email }, () => ({ found: true }));
  return { done: true };
});

/**
 * A workflow whose only difference between two runs is one small value: the approval answer
 * (approved or rejected), a step output and the run's output (`true` or `false`). The sizes the
 * control plane learns must not tell the two apart.
 */
export const verdict = defineWorkflow({ name: 'verdict', version: '1' }, async (ctx) => {
  const answer = await ctx.approval('review');
  return ctx.step('decided', () => answer.approved);
});

/** One model call to the model the input names (the test's local model server answers any). */
export const namedModel = defineWorkflow({ name: 'named-model', version: '1' }, async (ctx, input: { model: string }) => {
  const reply = await ctx.model('ask', { model: testModel(input.model), prompt: 'which model are you?' });
  return reply.text;
});

/** Waits for an approval, then for a signal it does not declare: a test sends the signal first. */
export const reviewThenSignal = defineWorkflow({ name: 'review-then-signal', version: '1' }, async (ctx) => {
  await ctx.approval('review');
  return ctx.waitForSignal('late');
});

/** A child workflow with a distinctive name, for strict residency mode. */
export const strictChild = defineWorkflow({ name: 'Platypus-Invoice-Child', version: '1' }, (_ctx, input: { n: number }) =>
  Promise.resolve(input.n),
);

/** A workflow, a step, a signal and a child with distinctive names, for strict residency mode. */
export const strictDemo = defineWorkflow({ name: 'Wombat-Tariff-Settle', version: '1' }, async (ctx) => {
  const base = await ctx.step('Quokka-Ledger-Reconcile', () => 1);
  const got = await ctx.waitForSignal<{ n: number }>('Heron-Payout-Release');
  return base + (await ctx.child(strictChild, { n: got.n }));
});

export const allWorkflows = [
  tracedStep,
  keyedEmail,
  keyedEmailOther,
  verdict,
  strictDemo,
  strictChild,
  reviewThenSignal,
  namedModel,
  typedRefund,
  datedInput,
  timeoutParent,
  timeoutSleeper,
  timeoutBusy,
  registeredDefaults,
  scheduledEcho,
  forkDemoV1,
  forkDemoV2,
  forkDemoV3,
  streamer,
  clientOrder,
  fiveSteps,
  manySteps,
  sleeper,
  signalWaiter,
  flaky,
  doomed,
  canary,
  canaryFailure,
  modelCall,
  tripSaga,
  agentLoop,
  childWork,
  parentWork,
];
