// The one-command local stack of this repository (`pnpm dev` runs it through the CLI, `cairn
// dev`): PostgreSQL from npm (no system install), the control plane, a gateway, the local model
// server and a worker running examples/ (or --worker FILE), then the examples end to end.
//   node apps/dev/dist/main.js            start everything, run the examples, keep running until Ctrl-C
//   node apps/dev/dist/main.js --exit     run the examples and stop (used to check the Quick start)
import { parseArgs } from 'node:util';
import { resolveDevSettings } from './settings.js';
import { runDev } from './run-dev.js';

const { values } = parseArgs({
  options: {
    exit: { type: 'boolean', default: false },
    dir: { type: 'string' },
    worker: { type: 'string' },
    verbose: { type: 'boolean', default: false },
  },
});

try {
  const settings = resolveDevSettings({ dir: values.dir, worker: values.worker });
  const session = runDev({ settings, exit: values.exit, verbose: values.verbose });
  process.exitCode = await session.done;
} catch (err) {
  console.error(`The local stack could not start: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
}
