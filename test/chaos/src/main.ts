#!/usr/bin/env node
// pnpm chaos [--duration 10m] [--seed N] [--workers 3] [--concurrency 48] [--fault-interval 2500ms] [--out DIR] [--keep]
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { renderResult, runChaos, writeResult } from './chaos.js';

const USAGE = `Usage: pnpm chaos [options]

Runs a mixed workload on the local stack (2 control-plane replicas, gateways, workers, both
Postgres servers) while injecting random faults from a seed, then checks Cairn's invariants.

Options:
  --duration D        how long faults are injected: 90s, 10m (default 10m)
  --seed N            the seed of the fault schedule and the workload (default: random; printed)
  --workers N         worker processes (default 3)
  --gateways N        gateway processes (default 2)
  --concurrency N     simulated applications, one run in progress each (default 48)
  --fault-interval D  mean time between faults (default 2000ms)
  --recovery-bound D  how soon after the last fault every run must have ended (default 120s)
  --out DIR           where the result is written (default test/chaos/results)
  --keep              keep the stack's folder (logs, databases) afterwards
`;

function duration(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (!m) {
    console.error(`${flag}: "${value}" is not a duration; write it like 90s, 10m or 2500ms`);
    process.exit(2);
  }
  const n = Number(m[1]);
  return Math.round(m[2] === 'ms' ? n : m[2] === 'm' ? n * 60_000 : n * 1_000);
}

function count(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`${flag}: "${value}" is not a whole number above 0`);
    process.exit(2);
  }
  return n;
}

let args;
try {
  args = parseArgs({
    options: {
      duration: { type: 'string', default: '10m' },
      seed: { type: 'string' },
      workers: { type: 'string', default: '3' },
      gateways: { type: 'string', default: '2' },
      concurrency: { type: 'string', default: '48' },
      'fault-interval': { type: 'string', default: '2000ms' },
      'recovery-bound': { type: 'string', default: '120s' },
      out: { type: 'string', default: fileURLToPath(new URL('../results', import.meta.url)) },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  }).values;
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
  process.exit(2);
}
if (args.help) {
  console.log(USAGE);
  process.exit(0);
}
const seed = args.seed === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(args.seed);
if (!Number.isInteger(seed) || seed < 0 || seed >= 2 ** 32) {
  console.error(`--seed: "${args.seed}" is not a whole number from 0 to 4294967295`);
  process.exit(2);
}

const stamp = () => new Date().toISOString().slice(11, 19);
const result = await runChaos({
  seed,
  durationMs: duration(args.duration, '--duration'),
  faultIntervalMs: duration(args['fault-interval'], '--fault-interval'),
  recoveryBoundMs: duration(args['recovery-bound'], '--recovery-bound'),
  workers: count(args.workers, '--workers'),
  gateways: count(args.gateways, '--gateways'),
  concurrency: count(args.concurrency, '--concurrency'),
  keep: args.keep,
  log: (line) => console.log(`${stamp()} ${line}`),
});
const page = writeResult(result, args.out);
console.log(`\n${renderResult(result)}\nwritten to ${page}`);
if (result.dir) console.log(`the stack's logs and databases are kept in ${result.dir}`);
console.log(
  `${result.violations.length === 0 ? 1 : 0} passed, ${result.violations.length === 0 ? 0 : 1} failed (${result.violations.length} invariant violations)`,
);
process.exit(result.violations.length === 0 ? 0 : 1);
