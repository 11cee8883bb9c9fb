// Runs buf from the npm package with the local protoc-gen-es on PATH.
//   lint      buf lint
//   breaking  buf breaking against main (skipped with a note when main has no proto/ yet)
//   generate  buf generate into packages/proto/src/gen
//   check     lint + breaking + regenerate into a temp dir and fail if it differs from the checked-in code
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = join(root, 'node_modules', '.bin');
const env = { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` };
const protoDir = join(root, 'proto');
const genDir = join(root, 'packages', 'proto', 'src', 'gen');

function buf(args, cwd = protoDir) {
  const r = spawnSync(join(bin, 'buf'), args, { cwd, env, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

function lint() {
  buf(['lint']);
}

function breaking() {
  const hasMain = spawnSync('git', ['rev-parse', '--verify', '--quiet', 'main:proto'], { cwd: root }).status === 0;
  if (!hasMain) {
    console.log('buf breaking: main has no proto/ yet; nothing to compare against');
    return;
  }
  buf(['breaking', '--against', `${join(root, '.git')}#branch=main,subdir=proto`]);
}

function generate() {
  rmSync(genDir, { recursive: true, force: true });
  buf(['generate']);
}

function listFiles(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listFiles(p));
    else out.push(p);
  }
  return out.sort();
}

function checkGenerated() {
  const tmp = mkdtempSync(join(tmpdir(), 'cairn-buf-'));
  try {
    const outDir = join(tmp, 'gen');
    const template = readFileSync(join(protoDir, 'buf.gen.yaml'), 'utf8').replace('../packages/proto/src/gen', outDir);
    execFileSync(join(bin, 'buf'), ['generate', '--template', template], { cwd: protoDir, env, stdio: 'inherit' });
    const want = listFiles(outDir).map((f) => relative(outDir, f));
    const have = listFiles(genDir).map((f) => relative(genDir, f));
    const problems = [];
    for (const f of new Set([...want, ...have])) {
      if (!want.includes(f)) problems.push(`stale generated file: ${f}`);
      else if (!have.includes(f)) problems.push(`missing generated file: ${f}`);
      else if (readFileSync(join(outDir, f), 'utf8') !== readFileSync(join(genDir, f), 'utf8')) problems.push(`out of date: ${f}`);
    }
    if (problems.length > 0) {
      console.error(
        `Generated protobuf code differs from proto/:\n  ${problems.join('\n  ')}\nRun \`pnpm proto:generate\` and commit the result.`,
      );
      process.exit(1);
    }
    console.log('buf generate: checked-in code is up to date');
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const cmd = process.argv[2];
switch (cmd) {
  case 'lint':
    lint();
    break;
  case 'breaking':
    breaking();
    break;
  case 'generate':
    generate();
    break;
  case 'check':
    lint();
    breaking();
    checkGenerated();
    break;
  default:
    console.error('usage: node scripts/buf.mjs lint|breaking|generate|check');
    process.exit(2);
}
