#!/usr/bin/env node
// Publishes the public packages to the npm registry, in dependency order, from the tarballs
// scripts/pack.mjs makes — exactly what the packaging test installs. Run after the version bump
// (`pnpm version-packages`) is committed:
//   pnpm release [--dry-run] [--tag next]
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { packPackages } from './pack.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({ options: { 'dry-run': { type: 'boolean', default: false }, tag: { type: 'string', default: 'latest' } } });

execFileSync('pnpm', ['build'], { cwd: root, stdio: 'inherit' });
const tarballs = await packPackages({ out: join(root, 'build', 'release') });
for (const tarball of tarballs) {
  const args = ['publish', tarball, '--access', 'public', '--tag', values.tag, ...(values['dry-run'] ? ['--dry-run'] : [])];
  execFileSync('npm', args, { cwd: root, stdio: 'inherit' });
}
