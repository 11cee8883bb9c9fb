// Workflows the CLI's end-to-end test drives through `cairn` (test/src/e2e/cli.test.ts). The worker
// (cli-worker-main.ts) runs `cliWorkflows`; `greetV2` is only in this module, for registration.
import { z } from 'zod';
import { defineWorkflow } from '@cairn/sdk';

/** Two steps, the first keyed by the name (its HMAC crosses as the key digest). */
export const greet = defineWorkflow({ name: 'cli-greet', version: '1' }, async (ctx, input: { name: string }) => {
  const person = await ctx.step('lookup', { key: input.name }, () => ({ name: input.name, known: true }));
  const greeting = await ctx.step('compose', () => `Hello, ${person.name}`);
  return { greeting };
});

/** The input schema of cli-greet@2: its digest is registered, the schema stays in the data plane. */
export const greetV2Input = z.object({ name: z.string().min(1) });

/**
 * A version no worker announces: registered from code with `cairn workflows register`, with the
 * settings written here (the test's metadata file overrides some of them).
 */
export const greetV2 = defineWorkflow(
  {
    name: 'cli-greet',
    version: '2',
    input: greetV2Input,
    retry: { maximumAttempts: 6, initialInterval: '250ms' },
    timeouts: { run: '1h', step: '10s' },
    schedules: [{ cron: '0 9 * * 1-5', timezone: 'Europe/Paris' }],
  },
  async (ctx, input) => {
    const greeting = await ctx.step('compose', () => `Hi, ${input.name}`);
    return { greeting };
  },
);

/** Waits for a human's answer to "publish". */
export const approvalFlow = defineWorkflow({ name: 'cli-approval', version: '1' }, async (ctx, input: { doc: string }) => {
  await ctx.step('prepare', () => input.doc.length);
  const answer = await ctx.approval('publish', { timeout: '1h' });
  return { approved: answer.approved, by: answer.by ?? null };
});

/** Waits for the signal "go" and returns its body. */
export const signalFlow = defineWorkflow({ name: 'cli-signal', version: '1' }, async (ctx) => {
  const body = await ctx.waitForSignal('go');
  return ctx.step('after', () => ({ got: body }));
});

/** Sleeps an hour (suspended, holding no worker) before one step. */
export const napper = defineWorkflow({ name: 'cli-nap', version: '1' }, async (ctx) => {
  await ctx.sleep('1h');
  return ctx.step('wake', () => 'awake');
});

export const cliWorkflows = [greet, approvalFlow, signalFlow, napper];
