// Cairn in the peer benchmark: the local stack `pnpm bench` uses (control plane, gateway and
// workers as separate processes on a fresh embedded Postgres), a run started with the gateway's
// `POST /v1/runs` and awaited with its long-polled result.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack } from '@cairn/dev';
import { startEmbeddedPostgres } from '@cairn/local-postgres';
import { cairnClient } from '../cairn-client.js';
import { benchTempDir } from '../common.js';
import type { BenchSystem } from './system.js';

const workerModule = fileURLToPath(new URL('../worker-main.js', import.meta.url));

export async function startCairn(options: { workers: number }): Promise<BenchSystem> {
  const dir = benchTempDir('cairn-bench-peers-');
  const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), persistent: false });
  let stack: Awaited<ReturnType<typeof startStack>> | undefined;
  const stop = async () => {
    await stack?.stop();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    stack = await startStack({ postgres, dir, workers: options.workers, workerSlots: 100, workerModule, logLevel: 'info' });
  } catch (err) {
    await stop();
    throw err;
  }
  const client = cairnClient(stack);
  return {
    name: 'cairn',
    floorUrl: stack.dpDatabaseUrl,
    async run(steps) {
      await client.result(await client.start(steps));
    },
    stop,
  };
}
