// The example worker: runs the example workflows with configuration from the environment
// (see packages/worker/README.md). The local stack (`pnpm dev`) starts it, with a local model
// server for the agent examples; set MISTRAL_API_KEY to use Mistral instead.
import { runWorkerFromEnv } from '@cairn/worker';
import { orderRefund } from './order-refund.js';
import { researchAgent } from './research-agent.js';
import { supportAgent } from './support-agent.js';

await runWorkerFromEnv([orderRefund, supportAgent, researchAgent]);
