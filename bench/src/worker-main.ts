import { runWorkerFromEnv } from '@cairn/worker';
import { benchSteps } from './workflows.js';

await runWorkerFromEnv([benchSteps]);
