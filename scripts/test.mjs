// Runs the test suite with Node's test runner: unit and integration tests beside the code
// (`packages/*/src/**/*.test.ts`, `apps/*/src/**/*.test.ts`) and the cross-app tests in `test/src`.
// Arguments narrow the run to files whose path contains one of them:
//   node scripts/test.mjs payload-store test/src/e2e
// The last line is a plain `N passed, N failed` summary.
import { spawnSync } from 'node:child_process';
import { globSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const patterns = [
  'packages/*/src/**/*.test.ts',
  'apps/*/src/**/*.test.ts',
  'examples/src/**/*.test.ts',
  'test/src/**/*.test.ts',
  'test/chaos/src/**/*.test.ts',
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
const concurrency = process.env.CAIRN_TEST_CONCURRENCY ?? '2';
const dir = mkdtempSync(join(tmpdir(), 'cairn-test-'));
const tap = join(dir, 'results.tap');
const r = spawnSync(
  process.execPath,
  [
    '--import',
    'tsx',
    '--test',
    `--test-concurrency=${concurrency}`,
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tap}`,
    ...files,
  ],
  { stdio: 'inherit' },
);
let pass = 0;
let fail = 0;
try {
  const text = readFileSync(tap, 'utf8');
  pass = Number(/^# pass (\d+)$/m.exec(text)?.[1] ?? 0);
  fail = Number(/^# fail (\d+)$/m.exec(text)?.[1] ?? 0) + Number(/^# cancelled (\d+)$/m.exec(text)?.[1] ?? 0);
} catch {
  fail = Math.max(fail, 1);
}
rmSync(dir, { recursive: true, force: true });
if (r.status !== 0 && fail === 0) fail = 1;
console.log(`${pass} passed, ${fail} failed`);
process.exit(r.status ?? 1);
