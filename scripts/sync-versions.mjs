#!/usr/bin/env node
// After `changeset version` bumps the published packages: writes the new version into the places
// that carry it in code (the SDK_VERSION a worker announces), so they cannot drift. A unit test
// in packages/sdk checks the two agree.
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { version } = JSON.parse(readFileSync(join(root, 'packages/sdk/package.json'), 'utf8'));
const file = join(root, 'packages/sdk/src/index.ts');
const text = readFileSync(file, 'utf8');
const next = text.replace(/export const SDK_VERSION = '[^']*';/, `export const SDK_VERSION = '${version}';`);
if (next === text && !text.includes(`SDK_VERSION = '${version}'`)) {
  process.stderr.write('sync-versions: SDK_VERSION not found in packages/sdk/src/index.ts\n');
  process.exit(1);
}
writeFileSync(file, next);
process.stdout.write(`SDK_VERSION = ${version}\n`);
