// The worker of the CLI's end-to-end test: the workflows in cli-workflows.ts, configured from the
// environment like any Cairn worker.
import { runWorkerFromEnv } from '@cairn/worker';
import { cliWorkflows } from './cli-workflows.js';

await runWorkerFromEnv(cliWorkflows);
