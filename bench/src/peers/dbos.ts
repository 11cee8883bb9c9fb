// DBOS beside Cairn: `@dbos-inc/dbos-sdk` in this process (DBOS is a library inside the
// application, not a separate service), on a fresh embedded Postgres of its own. A run is
// `DBOS.startWorkflow(...)`, which returns once the workflow is recorded, then `handle.getResult()`.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DBOS } from '@dbos-inc/dbos-sdk';
import { startEmbeddedPostgres } from '@cairn/local-postgres';
import { benchTempDir } from '../common.js';
import type { BenchSystem } from './system.js';

async function benchStepsFn(input: { steps: number }): Promise<{ firstStepAt: number }> {
  let firstStepAt = 0;
  for (let i = 0; i < input.steps; i++) {
    const at = await DBOS.runStep(async () => Promise.resolve(Date.now()), { name: `s${i}` });
    if (i === 0) firstStepAt = at;
  }
  return { firstStepAt };
}

// Registered once per process: DBOS keeps its registry across shutdown and a later launch.
let benchSteps: ((input: { steps: number }) => Promise<{ firstStepAt: number }>) | undefined;

export async function startDbos(): Promise<BenchSystem> {
  const dir = benchTempDir('cairn-bench-dbos-');
  const postgres = await startEmbeddedPostgres({ dataDir: join(dir, 'pg'), persistent: false });
  const stop = async () => {
    if (DBOS.isInitialized()) await DBOS.shutdown();
    await postgres.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  let systemDatabaseUrl: string;
  try {
    systemDatabaseUrl = await postgres.createDatabase('dbos_bench');
    benchSteps ??= DBOS.registerWorkflow(benchStepsFn, { name: 'benchSteps' });
    DBOS.setConfig({ name: 'cairn-bench', systemDatabaseUrl, logLevel: 'warn' });
    await DBOS.launch();
  } catch (err) {
    await stop();
    throw err;
  }
  const workflow = benchSteps;
  return {
    name: 'dbos',
    floorUrl: systemDatabaseUrl,
    async run(steps) {
      const handle = await DBOS.startWorkflow(workflow)({ steps });
      const output = await handle.getResult();
      if (typeof output.firstStepAt !== 'number') throw new Error(`dbos workflow ${handle.workflowID} returned ${JSON.stringify(output)}`);
    },
    stop,
  };
}
