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
