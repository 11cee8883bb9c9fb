// The worker of test/src/e2e/cli-ops.test.ts: the workflows in cli-ops-workflows.ts, configured
// from the environment like any Cairn worker.
import { runWorkerFromEnv } from '@cairn/worker';
import { asker, echo, waiter } from './cli-ops-workflows.js';

await runWorkerFromEnv([echo, asker, waiter]);
