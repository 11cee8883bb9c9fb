// A newer version of ops-echo, run only by a worker test/src/e2e/cli-ops.test.ts starts and stops
// (cli-ops-next-worker-main.ts), so that the version was announced once and no worker serves it now.
import { defineWorkflow } from '@cairn/sdk';

export const echoV2 = defineWorkflow({ name: 'ops-echo', version: '2' }, async (ctx, input: { text: string }) => {
  return ctx.step('echo', () => ({ echoed: input.text, version: 2 }));
});
