// Runs the test suite with Node's test runner: unit and integration tests beside the code
// (`packages/*/src/**/*.test.ts`, `apps/*/src/**/*.test.ts`) and the cross-app tests in `test/src`.
// Arguments narrow the run to matching files: `node scripts/test.mjs payload-store e2e/crash`.
import { spawnSync } from 'node:child_process';
import { globSync } from 'node:fs';
import { availableParallelism } from 'node:os';

const patterns = [
  'packages/*/src/**/*.test.ts',
  'apps/*/src/**/*.test.ts',
  'examples/src/**/*.test.ts',
  'test/src/**/*.test.ts',
  'bench/src/**/*.test.ts',
];
const filters = process.argv.slice(2);
const files = patterns
  .flatMap((p) => globSync(p, { exclude: (f) => f.includes('node_modules') }))
  .filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const concurrency = process.env.CAIRN_TEST_CONCURRENCY ?? String(Math.max(2, availableParallelism()));
const r = spawnSync(
  process.execPath,
  ['--import', 'tsx', '--test', `--test-concurrency=${concurrency}`, '--test-reporter=spec', ...files],
  { stdio: 'inherit' },
);
process.exit(r.status ?? 1);
