// The worker the end-to-end tests start as a real process: the test workflows, configured from the
// environment like any Cairn worker.
import { runWorkerFromEnv } from '@cairn/worker';
import { allWorkflows } from './workflows.js';

await runWorkerFromEnv(allWorkflows);
