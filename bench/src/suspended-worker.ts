// The worker of `pnpm bench:suspended`. On SIGUSR2 it collects garbage (the bench starts it with
// --expose-gc) and writes its memory to BENCH_WORKER_MEMORY_FILE, so the bench can compare what the
// worker holds before, while and after thousands of runs are suspended.
import { writeFileSync } from 'node:fs';
import { runWorkerFromEnv } from '@cairn/worker';
import { benchSteps, benchSuspend } from './workflows.js';

const file = process.env['BENCH_WORKER_MEMORY_FILE'];
const collect = (globalThis as { gc?: () => void }).gc;
if (file && collect) {
  process.on('SIGUSR2', () => {
    // Several passes: weak references and finalizers free more on the second.
    for (let i = 0; i < 3; i++) collect();
    const m = process.memoryUsage();
    writeFileSync(file, JSON.stringify({ at: Date.now(), rss: m.rss, heapUsed: m.heapUsed, external: m.external }));
  });
}

await runWorkerFromEnv([benchSteps, benchSuspend]);
