// The images cannot be built here (no container engine), so their Dockerfiles are checked by
// parsing them: multi-stage, base images pinned, a numeric non-root user, production dependencies
// only, no build tools or sources in the final image, and every workspace package the entry point
// needs copied in compiled form.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { repoRoot } from './helm.js';

interface Instruction {
  readonly keyword: string;
  readonly args: string;
}
interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (comments dropped, continuations joined). */
export function parseDockerfile(text: string): Stage[] {
  const logical: string[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (current === '' && (line === '' || line.startsWith('#'))) continue;
    if (line.startsWith('#')) continue;
    if (line.endsWith('\\')) {
      current += `${line.slice(0, -1)} `;
      continue;
    }
    logical.push(current + line);
    current = '';
  }
  const stages: Stage[] = [];
  for (const line of logical) {
    const [keyword = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (keyword.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(m, `FROM ${args}`);
      stages.push({ from: m[1]!, name: m[2], instructions: [] });
    } else {
      assert.ok(stages.length > 0, `${keyword} before FROM`);
      stages[stages.length - 1]!.instructions.push({ keyword: keyword.toUpperCase(), args });
    }
  }
  return stages;
}

interface PackageJson {
  name: string;
  dependencies?: Record<string, string>;
}
const workspacePackages = new Map<string, string>();
for (const dir of [
  'packages/common',
  'packages/proto',
  'packages/payload-store',
  'packages/sdk',
  'packages/worker',
  'apps/gateway',
  'apps/control-plane',
]) {
  workspacePackages.set((JSON.parse(readFileSync(join(repoRoot, dir, 'package.json'), 'utf8')) as PackageJson).name, dir);
}

/** The workspace folders a package needs at run time: itself and its production workspace dependencies, transitively. */
function runtimeWorkspaceDirs(dir: string, seen = new Set<string>()): Set<string> {
  seen.add(dir);
  const pkg = JSON.parse(readFileSync(join(repoRoot, dir, 'package.json'), 'utf8')) as PackageJson;
  for (const [name, version] of Object.entries(pkg.dependencies ?? {})) {
    if (!version.startsWith('workspace:')) continue;
    const depDir = workspacePackages.get(name);
    assert.ok(depDir, `${dir} depends on ${name}, which this test does not know`);
    if (!seen.has(depDir)) runtimeWorkspaceDirs(depDir, seen);
  }
  return seen;
}

const images = [
  { file: 'gateway.Dockerfile', package: '@cairn/gateway', dir: 'apps/gateway', entry: '["node", "apps/gateway/dist/main.js"]' },
  {
    file: 'control-plane.Dockerfile',
    package: '@cairn/control-plane',
    dir: 'apps/control-plane',
    entry: '["node", "apps/control-plane/dist/main.js"]',
    // Built files the control plane serves, not code it imports: the console.
    assets: ['apps/console'],
  },
  { file: 'worker-base.Dockerfile', package: '@cairn/worker', dir: 'packages/worker', entry: '["node"]' },
];

const PINNED = /^[a-z0-9./-]+(:[0-9]+\.[0-9]+\.[0-9]+[a-z0-9.-]*)?(@sha256:[0-9a-f]{64})?$/;
const BUILD_TOOLS =
  /\b(apt-get|apt|apk|yum|dnf)\s+(install|add)\b|\b(npm|pnpm|yarn|corepack|npx)\b(?!\/)|\bgcc\b|\bmake\b|\bpython3?\b|\btsc\b/;

describe('Dockerfiles', () => {
  for (const image of images) {
    describe(image.file, () => {
      const stages = parseDockerfile(readFileSync(join(repoRoot, 'docker', image.file), 'utf8'));
      const final = stages[stages.length - 1]!;
      const stageNames = new Set(stages.map((s) => s.name).filter((n): n is string => n !== undefined));

      it('is multi-stage, with every base image pinned to an exact version or a digest', () => {
        assert.ok(stages.length >= 2, 'multi-stage');
        for (const stage of stages) {
          if (stageNames.has(stage.from)) continue;
          assert.match(stage.from, PINNED, `FROM ${stage.from}`);
          assert.ok(
            stage.from.includes('@sha256:') || /:[0-9]+\.[0-9]+\.[0-9]+/.test(stage.from),
            `${stage.from} names an exact version or a digest`,
          );
        }
      });

      it('runs as a numeric non-root user, set after the last file-changing step', () => {
        const users = final.instructions.map((x, i) => ({ ...x, i })).filter((x) => x.keyword === 'USER');
        assert.equal(users.length, 1, 'one USER in the final stage');
        const user = users[0]!;
        const [uid, gid] = user.args.split(':');
        assert.match(uid!, /^[0-9]+$/, 'numeric, so Kubernetes can check runAsNonRoot');
        assert.notEqual(Number(uid), 0);
        if (gid !== undefined) assert.notEqual(Number(gid), 0);
        const lastChange = Math.max(...final.instructions.map((x, i) => (['RUN', 'COPY', 'ADD'].includes(x.keyword) ? i : -1)));
        assert.ok(user.i > lastChange, 'USER comes after every RUN and COPY');
        const entry = final.instructions.find((x) => x.keyword === 'ENTRYPOINT');
        assert.equal(entry?.args, image.entry, 'exec-form entry point');
      });

      it('installs production dependencies only and keeps build tools and sources out of the final image', () => {
        const install = stages.flatMap((s) => s.instructions).filter((x) => x.keyword === 'RUN' && /pnpm install .*--prod/.test(x.args));
        assert.equal(install.length, 1, 'one production install');
        assert.match(install[0]!.args, new RegExp(`--frozen-lockfile .*--filter "${image.package}\\.\\.\\."`));
        for (const x of final.instructions) {
          assert.notEqual(x.keyword, 'ADD', 'no ADD in the final stage');
          if (x.keyword === 'RUN') {
            const withoutRemoval = x.args.replace(/^rm -rf .*$/, '');
            assert.doesNotMatch(withoutRemoval, BUILD_TOOLS, `final stage runs no build tool: RUN ${x.args}`);
          }
          if (x.keyword === 'COPY') {
            const m = /^--from=(\S+)\s+(\S+)\s+(\S+)$/.exec(x.args);
            assert.ok(m, `the final stage copies only from earlier stages: COPY ${x.args}`);
            assert.ok(stageNames.has(m[1]!), `COPY --from=${m[1]} names a stage`);
            if (m[1] === 'build')
              assert.match(m[2]!, /^\/src\/[a-z-]+\/[a-z-]+\/dist$/, `from the build stage, only compiled output: ${m[2]}`);
          }
        }
        const removal = final.instructions.find((x) => x.keyword === 'RUN' && x.args.startsWith('rm -rf'));
        for (const tool of ['/usr/local/lib/node_modules/npm', '/usr/local/bin/npx', '/usr/local/bin/corepack', '/opt/yarn-*']) {
          assert.ok(removal?.args.includes(tool), `the base image's ${tool} is removed`);
        }
      });

      it('copies the compiled output of every workspace package the entry point needs', () => {
        const copied = new Set(
          final.instructions
            .filter((x) => x.keyword === 'COPY' && x.args.startsWith('--from=build '))
            .map((x) => /^--from=build \/src\/(\S+)\/dist /.exec(x.args)?.[1]),
        );
        const assets: readonly string[] = ('assets' in image ? image.assets : undefined) ?? [];
        assert.deepEqual([...copied].sort(), [...runtimeWorkspaceDirs(image.dir), ...assets].sort());
      });
    });
  }

  it('keeps host build output, dependencies and the git history out of the build context', () => {
    const ignore = readFileSync(join(repoRoot, '.dockerignore'), 'utf8').split('\n');
    for (const entry of ['.git', '**/node_modules', '**/dist', '.cairn']) assert.ok(ignore.includes(entry), `.dockerignore lists ${entry}`);
  });
});
