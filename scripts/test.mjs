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
// The chaos run loads the whole machine for minutes on purpose: it runs alone, after the rest.
const alone = (f) => f.startsWith('test/chaos/');
const batches = [
  { files: files.filter((f) => !alone(f)), concurrency },
  { files: files.filter(alone), concurrency: '1' },
].filter((b) => b.files.length > 0);
const dir = mkdtempSync(join(tmpdir(), 'cairn-test-'));
let pass = 0;
let fail = 0;
let status = 0;
for (const [i, batch] of batches.entries()) {
  const tap = join(dir, `results-${i}.tap`);
  const r = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      '--test',
      `--test-concurrency=${batch.concurrency}`,
      '--test-reporter=spec',
      '--test-reporter-destination=stdout',
      '--test-reporter=tap',
      `--test-reporter-destination=${tap}`,
      ...batch.files,
    ],
    { stdio: 'inherit' },
  );
  let batchFail = 0;
  try {
    const text = readFileSync(tap, 'utf8');
    pass += Number(/^# pass (\d+)$/m.exec(text)?.[1] ?? 0);
    batchFail = Number(/^# fail (\d+)$/m.exec(text)?.[1] ?? 0) + Number(/^# cancelled (\d+)$/m.exec(text)?.[1] ?? 0);
  } catch {
    batchFail = 1;
  }
  if (r.status !== 0 && batchFail === 0) batchFail = 1;
  fail += batchFail;
  if (r.status !== 0) status = r.status ?? 1;
}
rmSync(dir, { recursive: true, force: true });
console.log(`${pass} passed, ${fail} failed`);
process.exit(status);
