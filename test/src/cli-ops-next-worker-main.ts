// A worker that runs only ops-echo@2 (cli-ops-next-workflows.ts), for test/src/e2e/cli-ops.test.ts.
import { runWorkerFromEnv } from '@cairn/worker';
import { echoV2 } from './cli-ops-next-workflows.js';

await runWorkerFromEnv([echoV2]);
