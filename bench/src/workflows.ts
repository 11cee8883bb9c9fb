import { defineWorkflow } from '@cairn/sdk';

/** `steps` trivial steps; the first returns the wall-clock time it ran (for dispatch latency). */
export const benchSteps = defineWorkflow({ name: 'bench-steps', version: '1' }, async (ctx, input: { steps: number }) => {
  let firstStepAt = 0;
  for (let i = 0; i < input.steps; i++) {
    const at = await ctx.step(`s${i}`, () => Date.now());
    if (i === 0) firstStepAt = at;
  }
  return { firstStepAt };
});

/**
 * A step, a sleep of `sleepMs` (long enough to suspend the run) and a second step that returns the
 * wall-clock time it ran: the bench compares it with the sleep's due time from the journal.
 */
export const benchSuspend = defineWorkflow({ name: 'bench-suspend', version: '1' }, async (ctx, input: { sleepMs: number }) => {
  const startedAt = await ctx.step('before', () => Date.now());
  await ctx.sleep(input.sleepMs);
  const ranAt = await ctx.step('after', () => Date.now());
  return { startedAt, ranAt };
});
