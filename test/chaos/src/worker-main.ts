// The chaos suite's worker: the chaos workflows on a real Cairn worker, configured from the
// environment like any other, with one addition for clock-skew faults: the offset in the file
// CAIRN_CHAOS_CLOCK_FILE (milliseconds, read every 100 ms) is added to this process's wall clock.
import { readFileSync } from 'node:fs';
import { runWorkerFromEnv } from '@cairn/worker';
import { chaosWorkflows } from './workflows.js';

const clockFile = process.env['CAIRN_CHAOS_CLOCK_FILE'];
if (clockFile) {
  let offset = 0;
  const RealDate = Date;
  const read = (): void => {
    try {
      offset = Number(readFileSync(clockFile, 'utf8').trim()) || 0;
    } catch {
      offset = 0;
    }
  };
  read();
  setInterval(read, 100).unref();
  class SkewedDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(RealDate.now() + offset);
      else super(...(args as [string | number | Date]));
    }
    static override now(): number {
      return RealDate.now() + offset;
    }
  }
  globalThis.Date = SkewedDate as DateConstructor;
}

await runWorkerFromEnv(chaosWorkflows);
