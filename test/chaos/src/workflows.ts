// The chaos workload's workflows: between them they use every durable primitive. Each step records
// its side effect in a database outside both planes (the effects server, which no fault touches),
// so the checker can count how often each really ran.
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import pg from 'pg';
import { TerminalError, defineWorkflow } from '@cairn/sdk';

export const EFFECTS_SCHEMA = `
CREATE TABLE IF NOT EXISTS effects (
  id bigserial PRIMARY KEY,
  run_id uuid NOT NULL,
  step text NOT NULL,
  attempt integer NOT NULL,
  pid integer NOT NULL,
  at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX IF NOT EXISTS effects_run ON effects (run_id, step);
`;

let pool: pg.Pool | undefined;

/** Records that `step` of `runId` took effect (attempt `attempt`) in this process. */
async function effect(runId: string, step: string, attempt: number): Promise<void> {
  const url = process.env['CAIRN_CHAOS_EFFECTS_URL'];
  if (!url) throw new Error('CAIRN_CHAOS_EFFECTS_URL is not set');
  pool ??= new pg.Pool({ connectionString: url, max: 4 }).on('error', () => undefined);
  await pool.query('INSERT INTO effects (run_id, step, attempt, pid) VALUES ($1, $2, $3, $4)', [runId, step, attempt, process.pid]);
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Plain steps, each with a side effect. */
export const chaosSteps = defineWorkflow({ name: 'chaos-steps', version: '1' }, async (ctx, input: { steps: number; stepMs: number }) => {
  let total = 0;
  for (let i = 1; i <= input.steps; i++) {
    total += await ctx.step(`s${i}`, async ({ attempt }) => {
      await effect(ctx.runId, `s${i}`, attempt);
      await pause(input.stepMs);
      return i;
    });
  }
  return { total };
});

/** A step that fails its first `failures` attempts, retried with backoff (which suspends the run). */
export const chaosRetry = defineWorkflow({ name: 'chaos-retry', version: '1' }, async (ctx, input: { failures: number; canary: string }) =>
  ctx.step(
    'flaky',
    async ({ attempt }) => {
      await effect(ctx.runId, 'flaky', attempt);
      if (attempt <= input.failures) throw new Error(`transient failure on attempt ${attempt} (${input.canary})`);
      return { attempt };
    },
    { retry: { initialInterval: 300, backoffCoefficient: 2, maximumAttempts: input.failures + 20 } },
  ),
);

/** A short sleep (kept in memory) and a long one (the run suspends and a timer wakes it). */
export const chaosSleep = defineWorkflow({ name: 'chaos-sleep', version: '1' }, async (ctx, input: { shortMs: number; longMs: number }) => {
  const before = ctx.now().getTime();
  await ctx.sleep(input.shortMs);
  await ctx.step('mid', async ({ attempt }) => effect(ctx.runId, 'mid', attempt));
  await ctx.sleep(input.longMs);
  await ctx.step('end', async ({ attempt }) => effect(ctx.runId, 'end', attempt));
  return { slept: ctx.now().getTime() - before >= input.shortMs + input.longMs };
});

/** Waits for two signals; the workload sends one early (often before the wait) and one late. */
export const chaosSignals = defineWorkflow({ name: 'chaos-signals', version: '1' }, async (ctx) => {
  await ctx.step('prepare', async ({ attempt }) => effect(ctx.runId, 'prepare', attempt));
  const got: unknown[] = [];
  for (let i = 0; i < 2; i++) got.push(await ctx.waitForSignal('go'));
  await ctx.step('record', async ({ attempt }) => effect(ctx.runId, 'record', attempt));
  return { got };
});

/**
 * A saga: three bookings, each with an undo, and an approval after the second. A booking fails
 * for good when `failAt` names it, and a rejection fails the run: either way the undos run for the
 * bookings that completed, newest first.
 */
export const chaosSaga = defineWorkflow({ name: 'chaos-saga', version: '1' }, async (ctx, input: { failAt: number; canary: string }) => {
  for (let i = 1; i <= 3; i++) {
    await ctx.step(
      `book-${i}`,
      async ({ attempt }) => {
        await effect(ctx.runId, `book-${i}`, attempt);
        if (input.failAt === i) throw new TerminalError(`booking ${i} refused for ${input.canary}`);
        return { booking: i };
      },
      { compensate: async () => effect(ctx.runId, `undo-${i}`, 1) },
    );
    if (i === 2) {
      const answer = await ctx.approval('confirm');
      if (!answer.approved) throw new TerminalError(`the trip was rejected for ${input.canary}`);
    }
  }
  return { booked: 3 };
});

/** One child workflow of a fan-out. */
export const chaosChild = defineWorkflow({ name: 'chaos-child', version: '1' }, async (ctx, input: { n: number }) =>
  ctx.step('double', async ({ attempt }) => {
    await effect(ctx.runId, 'double', attempt);
    return input.n * 2;
  }),
);

/** Fans out to three children and sums what they return. */
export const chaosParent = defineWorkflow({ name: 'chaos-parent', version: '1' }, async (ctx, input: { items: number[] }) => {
  const doubled = await ctx.parallel(input.items, (n) => ctx.child(chaosChild, { n }, { key: n }), { concurrency: input.items.length });
  return { sum: doubled.reduce((a, b) => a + b, 0) };
});

/** A model call through the real AI SDK provider, against the local model server that injects provider faults. */
export const chaosModel = defineWorkflow({ name: 'chaos-model', version: '1' }, async (ctx, input: { prompt: string }) => {
  const url = process.env['CAIRN_MOCK_LLM_URL'];
  if (!url) throw new Error('CAIRN_MOCK_LLM_URL is not set');
  const model = createOpenAICompatible({ name: 'mock', baseURL: `${url}/openai/v1`, includeUsage: true })('mock-small');
  const reply = await ctx.model('ask', {
    model,
    prompt: input.prompt,
    retry: { initialInterval: 100, maximumInterval: 1_000, maximumAttempts: 30 },
    timeout: 10_000,
  });
  await ctx.step('after', async ({ attempt }) => effect(ctx.runId, 'after', attempt));
  return { text: reply.text };
});

/** What a schedule fires. */
export const chaosTick = defineWorkflow({ name: 'chaos-tick', version: '1' }, async (ctx) => {
  await ctx.step('tick', async ({ attempt }) => effect(ctx.runId, 'tick', attempt));
  return { ticked: true };
});

export const chaosWorkflows = [chaosSteps, chaosRetry, chaosSleep, chaosSignals, chaosSaga, chaosChild, chaosParent, chaosModel, chaosTick];
