// The example worker: runs the example workflows with configuration from the environment
// (see packages/worker/README.md). The local stack (`pnpm dev`) starts it.
import { runWorkerFromEnv } from '@cairn/worker';
import { orderRefund } from './order-refund.js';

await runWorkerFromEnv([orderRefund]);
