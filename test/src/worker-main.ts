// The worker the end-to-end tests start as a real process: the test workflows, configured from the
// environment like any Cairn worker. CAIRN_TEST_CLOCK_SKEW_MS (milliseconds) puts this process's
// wall clock that far off, as on a machine whose clock is wrong.
import { runWorkerFromEnv } from '@cairn/worker';
import { allWorkflows } from './workflows.js';

const skewMs = Number(process.env['CAIRN_TEST_CLOCK_SKEW_MS'] ?? 0);
if (skewMs !== 0 && Number.isFinite(skewMs)) {
  const RealDate = Date;
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + skewMs);
      else super(...(args as [string | number | Date]));
    }
    static override now(): number {
      return RealDate.now() + skewMs;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
}

await runWorkerFromEnv(allWorkflows);
