// The packages as a user gets them. Packs @cairn/sdk, @cairn/worker, @cairn/client and @cairn/cli
// (scripts/pack.mjs), installs the tarballs with plain npm into a fresh folder outside the
// workspace (nothing links back into this repository), writes the project of docs/tutorial.md
// from the tutorial's own code blocks, and follows the tutorial: type-check, the unit test with
// the virtual clock, `cairn dev` from the installed CLI, a run started and awaited with
// @cairn/client, the worker killed with SIGKILL while the run waits, the approval, the result.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess, type SpawnSyncReturns } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@cairn/local-postgres';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../..');
const tutorialPath = join(repoRoot, 'docs/tutorial.md');

/** The versions of the third-party packages the tutorial installs: those this repository tests with. */
function workspaceVersion(name: string): string {
  for (const manifest of ['examples/package.json', 'packages/worker/package.json', 'package.json']) {
    const m = JSON.parse(readFileSync(join(repoRoot, manifest), 'utf8')) as Record<string, Record<string, string> | undefined>;
    const v = m['dependencies']?.[name] ?? m['devDependencies']?.[name];
    if (v && !v.startsWith('workspace:')) return v;
  }
  throw new Error(`no version of ${name} in the workspace`);
}

/** The files of the tutorial's project: every code block whose fence names a file (```ts title="src/x.ts"). */
export function tutorialFiles(markdown: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const m of markdown.matchAll(/^```\w+ title="([^"]+)"\n([\s\S]*?)^```$/gm)) files.set(m[1]!, m[2]!);
  return files;
}

interface Ran {
  readonly code: number | null;
  readonly out: string;
}

describe('the packages installed outside the workspace, following docs/tutorial.md', () => {
  const root = mkdtempSync(join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), 'cairn-packaging-'));
  // Embedded Postgres runs as the 'postgres' user when started as root: it must enter the folders.
  chmodSync(root, 0o755);
  const project = join(root, 'refunds');
  const tarballs = join(root, 'tarballs');
  const home = join(root, 'home');
  // npm and the CLI run on this Node (the system one may be older than 22); the npm cache stays shared.
  // The rest of the environment stays: proxies and CA bundles (NODE_EXTRA_CA_CERTS) reach npm.
  const env: Record<string, string> = {
    ...(Object.fromEntries(
      Object.entries(process.env).filter(([k, v]) => v !== undefined && !k.startsWith('CAIRN_') && k !== 'NODE_TEST_CONTEXT'),
    ) as Record<string, string>),
    PATH: [dirname(process.execPath), process.env['PATH'] ?? ''].join(delimiter),
    HOME: home,
    npm_config_cache: process.env['npm_config_cache'] ?? join(process.env['HOME'] ?? home, '.npm'),
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
    NO_COLOR: '1',
  };
  const run = (
    command: string,
    args: readonly string[],
    options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
  ): Ran => {
    const r: SpawnSyncReturns<string> = spawnSync(command, args, {
      cwd: options.cwd ?? project,
      env: { ...env, ...(options.env ?? {}) },
      encoding: 'utf8',
      timeout: options.timeoutMs ?? 180_000,
    });
    return { code: r.status, out: `${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}` };
  };
  const ok = (r: Ran, what: string): string => {
    assert.equal(r.code, 0, `${what} failed:\n${r.out}`);
    return r.out;
  };
  const cairnBin = (): string => join(project, 'node_modules/@cairn/cli/bin/cairn.cjs');
  const cairn = (args: readonly string[], extraEnv: Record<string, string> = {}): Ran =>
    run(process.execPath, [cairnBin(), ...args], { env: extraEnv });

  let ports: Record<string, number>;
  let dev: ChildProcess | undefined;
  let devExit: Promise<number | null> = Promise.resolve(null);
  let devOutput = '';
  let stackEnv: Record<string, string> = {};

  const waitForDev = async (re: RegExp, from: number, timeoutMs = 120_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = re.exec(devOutput.slice(from));
      if (m) return from + m.index + m[0].length;
      if (dev?.exitCode !== null || dev.signalCode !== null) throw new Error(`cairn dev ended; it printed:\n${devOutput}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`cairn dev did not print ${re} within ${timeoutMs} ms; it printed:\n${devOutput.slice(from)}`);
  };

  before(async () => {
    mkdirSync(project, { recursive: true });
    mkdirSync(home, { recursive: true });
    const packed = spawnSync(process.execPath, [join(repoRoot, 'scripts/pack.mjs'), '--out', tarballs], {
      cwd: repoRoot,
      env: { ...process.env, PATH: env['PATH'] },
      encoding: 'utf8',
      timeout: 300_000,
    });
    assert.equal(packed.status, 0, `pack failed:\n${packed.stdout}${packed.stderr}`);
    ports = {
      CAIRN_DEV_PG_PORT: await freePort(),
      CAIRN_DEV_CP_HTTP_PORT: await freePort(),
      CAIRN_DEV_CP_GRPC_PORT: await freePort(),
      CAIRN_DEV_GATEWAY_PORT: await freePort(),
      CAIRN_DEV_MODEL_PORT: await freePort(),
    };
  });

  after(async () => {
    if (dev && dev.exitCode === null && dev.signalCode === null) {
      dev.kill('SIGTERM');
      await devExit;
    }
  });

  it('installs with plain npm from the tarballs, and the installed tree holds nothing of the workspace', () => {
    const tgz = (name: string): string => {
      const file = readdirSync(tarballs).find((f) => f.startsWith(`cairn-${name}-`) && f.endsWith('.tgz'));
      assert.ok(file, `no tarball for @cairn/${name} in ${readdirSync(tarballs).join(', ')}`);
      return join(tarballs, file);
    };
    // As the tutorial's step 1 does, with the tarballs for the @cairn names.
    ok(run('npm', ['init', '-y']), 'npm init');
    ok(run('npm', ['pkg', 'set', 'type=module']), 'npm pkg set');
    const pinned = (names: string[]) => names.map((n) => `${n}@${workspaceVersion(n)}`);
    ok(
      run('npm', ['install', tgz('sdk'), tgz('worker'), tgz('client'), ...pinned(['zod', 'ai', '@ai-sdk/openai-compatible'])], {
        timeoutMs: 300_000,
      }),
      'npm install',
    );
    ok(
      run('npm', ['install', '--save-dev', tgz('cli'), ...pinned(['typescript', 'tsx', '@types/node'])], { timeoutMs: 300_000 }),
      'npm install --save-dev',
    );

    // Every @cairn package installed is one of the four, a real folder (no link into the repository).
    const scope = join(project, 'node_modules/@cairn');
    assert.deepEqual(readdirSync(scope).sort(), ['cli', 'client', 'sdk', 'worker']);
    for (const name of readdirSync(scope)) {
      const dir = realpathSync(join(scope, name));
      assert.ok(relative(repoRoot, dir).startsWith('..'), `${dir} is inside the repository`);
      const manifest = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Record<string, Record<string, string> | undefined>;
      assert.equal(manifest['license'], 'Apache-2.0');
      assert.ok(existsSync(join(dir, 'LICENSE')) && existsSync(join(dir, 'README.md')) && existsSync(join(dir, 'CHANGELOG.md')));
      for (const field of ['dependencies', 'peerDependencies', 'devDependencies']) {
        for (const [dep, range] of Object.entries(manifest[field] ?? {})) {
          assert.ok(!range.startsWith('workspace:'), `@cairn/${name} ${field} ${dep}: ${range}`);
          if (dep.startsWith('@cairn/'))
            assert.ok(['@cairn/sdk', '@cairn/worker', '@cairn/client'].includes(dep), `@cairn/${name} depends on ${dep}`);
        }
      }
    }
    // The client runs in browsers: no dependency at all.
    const client = JSON.parse(readFileSync(join(scope, 'client/package.json'), 'utf8')) as { dependencies?: object };
    assert.deepEqual(Object.keys(client.dependencies ?? {}), []);
  });

  it("type-checks the tutorial's project against the installed packages, and a wrong input does not compile", () => {
    const files = tutorialFiles(readFileSync(tutorialPath, 'utf8'));
    for (const name of ['tsconfig.json', 'src/models.ts', 'src/workflows.ts', 'src/worker.ts', 'src/refund.ts', 'src/refund.test.ts']) {
      assert.ok(files.has(name), `docs/tutorial.md has no block for ${name}`);
    }
    for (const [name, text] of files) {
      mkdirSync(dirname(join(project, name)), { recursive: true });
      writeFileSync(join(project, name), text);
    }
    ok(run('npm', ['pkg', 'set', 'cairn.dev.worker=src/worker.ts']), 'npm pkg set cairn.dev.worker');
    ok(run(process.execPath, ['node_modules/typescript/bin/tsc']), 'tsc');

    // Inference from the definitions: each line below must be a compile error.
    mkdirSync(join(project, 'typecheck'), { recursive: true });
    writeFileSync(join(project, 'typecheck/tsconfig.json'), JSON.stringify({ extends: '../tsconfig.json', include: ['.', '../src'] }));
    writeFileSync(
      join(project, 'typecheck/wrong.ts'),
      `import { CairnClient, workflowRef } from '@cairn/client';
import type { refund as Refund } from '../src/workflows.js';
import { approval, refund } from '../src/workflows.js';

const client = new CairnClient({ gatewayUrl: 'http://127.0.0.1:1' });
export async function wrong(): Promise<void> {
  // @ts-expect-error amount is a number
  await client.start(refund, { orderId: 'o', amount: '1', message: 'm' });
  // @ts-expect-error message is required
  await client.start(workflowRef<typeof Refund>('refund'), { orderId: 'o', amount: 1 });
  const run = await client.start(refund, { orderId: 'o', amount: 1, message: 'm' });
  const result = await run.result();
  // @ts-expect-error the output has no field total
  console.log(result.total);
  if (result.status === 'refunded') console.log(result.refundId.toUpperCase());
  // @ts-expect-error approved is a boolean
  await run.signal(approval, { approved: 'yes', by: 'maria' });
}
`,
    );
    ok(run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'typecheck']), 'tsc -p typecheck');

    // Our declarations themselves, checked (skipLibCheck off): errors in other packages' are not ours.
    const strict = run(process.execPath, ['node_modules/typescript/bin/tsc', '-p', '.', '--skipLibCheck', 'false']);
    const ours = strict.out.split('\n').filter((line) => line.includes('node_modules/@cairn/'));
    assert.deepEqual(ours, [], `errors in the declarations of the published packages:\n${strict.out}`);
  });

  it("runs the tutorial's test with the virtual clock: a day's wait and a two-day timeout in well under a minute", () => {
    const out = ok(run(process.execPath, ['--import', 'tsx', '--test', 'src/refund.test.ts'], { timeoutMs: 120_000 }), 'node --test');
    assert.match(out, /pass 2\n/);
    assert.match(out, /fail 0\n/);
  });

  it('starts `cairn dev` from the installed CLI with the worker of package.json', async () => {
    dev = spawn(process.execPath, [cairnBin(), 'dev'], {
      cwd: project,
      env: { ...env, ...Object.fromEntries(Object.entries(ports).map(([k, v]) => [k, String(v)])) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    dev.stdout!.on('data', (b: Buffer) => (devOutput += b.toString()));
    dev.stderr!.on('data', (b: Buffer) => (devOutput += b.toString()));
    devExit = new Promise((resolve) => dev!.once('exit', (code) => resolve(code)));
    await waitForDev(/Cairn local stack is up/, 0);
    assert.match(devOutput, /worker\s+src\/worker\.ts/);
    // The control plane it started serves the console, shipped inside the CLI package.
    const consoleUrl = /console\s+(http:\/\/\S+)/.exec(devOutput)?.[1];
    assert.ok(consoleUrl, `cairn dev printed no console address:\n${devOutput}`);
    assert.match(new URL(consoleUrl).hash, /key=/, 'the printed address signs in');
    const page = await fetch(new URL('/', consoleUrl));
    assert.equal(page.status, 200);
    const html = await page.text();
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    assert.ok(script, html);
    const bundle = await fetch(new URL(script, consoleUrl));
    assert.equal(bundle.status, 200);
    assert.match(bundle.headers.get('content-type') ?? '', /javascript/);
    const printed = ok(cairn(['dev', 'env', '--format', 'json']), 'cairn dev env');
    stackEnv = JSON.parse(printed) as Record<string, string>;
    assert.equal(stackEnv['CAIRN_GATEWAY_URL'], `http://127.0.0.1:${ports['CAIRN_DEV_GATEWAY_PORT']}`);
  });

  it('runs a refund below the approval threshold from the CLI: a step, a model call on the local model server, a sleep', () => {
    const started = JSON.parse(
      ok(
        cairn(['runs', 'start', 'refund', '-i', '{"orderId":"o-1","amount":40,"message":"It came a week late."}', '--wait', '-o', 'json']),
        'runs start',
      ),
    ) as { runId: string; status: string; output: { status: string; reason: string; approvedBy: string } };
    assert.equal(started.status, 'completed', JSON.stringify(started));
    assert.equal(started.output.status, 'refunded');
    assert.equal(started.output.approvedBy, 'policy');
    assert.ok(['damaged', 'late', 'other'].includes(started.output.reason));
    const described = JSON.parse(ok(cairn(['runs', 'describe', started.runId, '-o', 'json']), 'runs describe')) as {
      steps: Array<{ kind: string; name: string; status: string; model?: string | null }>;
    };
    const kinds = described.steps.map((s) => `${s.kind}:${s.name}:${s.status}`);
    for (const expected of ['step:load-order:completed', 'model:triage:completed', 'step:issue-refund:completed']) {
      assert.ok(kinds.includes(expected), `${expected} not in ${kinds.join(', ')}`);
    }
    assert.ok(
      kinds.some((k) => k.startsWith('sleep:')),
      kinds.join(', '),
    );
  });

  it('reads the settings from the TypeScript module for `cairn workflows register`: what the dev worker announced, unchanged', () => {
    const plan = JSON.parse(ok(cairn(['workflows', 'register', 'src/workflows.ts', '--dry-run', '-o', 'json']), 'workflows register')) as {
      workflows: Array<{
        workflow: string;
        version: string;
        action: string;
        registration: { inputSchemaDigest: string | null; retry: { maximumAttempts: number }; timeouts: { run: number | null } };
      }>;
    };
    assert.equal(plan.workflows.length, 1);
    const [refund] = plan.workflows;
    assert.deepEqual([refund!.workflow, refund!.version, refund!.action], ['refund', '1', 'unchanged']);
    assert.match(refund!.registration.inputSchemaDigest ?? '', /^[0-9a-f]{64}$/);
    assert.equal(refund!.registration.retry.maximumAttempts, 5);
    assert.equal(refund!.registration.timeouts.run, 7 * 24 * 3600_000);
  });

  it('refuses a bad input at the gateway with the path of the bad field; no run is started', () => {
    const count = () => (JSON.parse(ok(cairn(['runs', 'list', '-o', 'json']), 'runs list')) as { runs: unknown[] }).runs.length;
    const before = count();
    const r = cairn(['runs', 'start', 'refund', '-i', '{"orderId":"o-x","amount":-5,"message":"m"}']);
    assert.notEqual(r.code, 0);
    assert.match(r.out, /CAIRN-1116/);
    assert.match(r.out, /input does not match the input schema of refund@1: \/amount must be/);
    assert.equal(count(), before);
  });

  it('starts a refund from application code with @cairn/client, survives kill -9 of the worker while it waits, and completes once approved', async () => {
    const modelCallsBefore = ((await (await fetch(`${stackEnv['CAIRN_MOCK_LLM_URL']}/_mock/calls`)).json()) as { calls: unknown[] }).calls
      .length;
    const app = spawn(process.execPath, ['--import', 'tsx', 'src/refund.ts', 'o-2', '149.90'], {
      cwd: project,
      env: { ...env, ...stackEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let appOutput = '';
    app.stdout.on('data', (b: Buffer) => (appOutput += b.toString()));
    app.stderr.on('data', (b: Buffer) => (appOutput += b.toString()));
    const appExit = new Promise<number | null>((resolve) => app.once('exit', (code) => resolve(code)));
    const deadline = Date.now() + 60_000;
    while (!/waiting for approval/.test(appOutput)) {
      if (Date.now() > deadline || app.exitCode !== null) assert.fail(`the application did not start the run:\n${appOutput}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const runId = /started ([0-9a-f-]{36})/.exec(appOutput)![1]!;
    // Wait until the run is suspended on the approval (the model call and the first step are done).
    for (;;) {
      const d = JSON.parse(ok(cairn(['runs', 'describe', runId, '-o', 'json']), 'runs describe')) as { run: { status: string } };
      if (d.run.status === 'suspended') break;
      if (Date.now() > deadline) assert.fail(`run ${runId} did not suspend: ${JSON.stringify(d)}`);
      await new Promise((r) => setTimeout(r, 100));
    }

    // As the tutorial says: pkill -9 -f src/worker.ts.
    const from = devOutput.length;
    const killed = run('pkill', ['-9', '-f', join(project, 'src/worker.ts')]);
    assert.equal(killed.code, 0, `pkill found no worker: ${killed.out}`);
    await waitForDev(/worker exited \(SIGKILL\); restarting/, from);
    await waitForDev(/worker is back/, from);

    // A body that does not match the signal's schema is refused and never reaches the run.
    const bad = cairn(['runs', 'signal', runId, 'approval', '-d', '{"approved":"yes"}']);
    assert.notEqual(bad.code, 0);
    assert.match(bad.out, /CAIRN-1116/);
    assert.match(bad.out, /does not match its schema in refund@1: \/by is required; \/approved must be boolean/);
    ok(cairn(['runs', 'signal', runId, 'approval', '-d', '{"approved":true,"by":"maria"}']), 'runs signal');

    assert.equal(await appExit, 0, appOutput);
    const result = JSON.parse(appOutput.trim().split('\n').at(-1)!) as { status: string; approvedBy: string; refundId: string };
    assert.equal(result.status, 'refunded');
    assert.equal(result.approvedBy, 'maria');
    assert.match(result.refundId, /^re_/);

    // Replayed, not repeated: each step and the model call ran once, and the model was asked once.
    const described = JSON.parse(ok(cairn(['runs', 'describe', runId, '-o', 'json']), 'runs describe')) as {
      steps: Array<{ kind: string; name: string; attempt: number; status: string }>;
    };
    for (const name of ['load-order', 'triage', 'issue-refund']) {
      const attempts = described.steps.filter((s) => s.name === name);
      assert.deepEqual(
        attempts.map((s) => [s.attempt, s.status]),
        [[1, 'completed']],
        `${name}: ${JSON.stringify(attempts)}`,
      );
    }
    const modelCalls = ((await (await fetch(`${stackEnv['CAIRN_MOCK_LLM_URL']}/_mock/calls`)).json()) as { calls: unknown[] }).calls;
    assert.equal(modelCalls.length - modelCallsBefore, 1, 'the model was asked once for this run');
  });

  it('`cairn runs list` works with no flags (the dev profile), and Ctrl-C stops the whole stack', async () => {
    const listed = JSON.parse(ok(cairn(['runs', 'list', '-o', 'json']), 'runs list')) as { runs: Array<{ runId: string }> };
    assert.ok(listed.runs.length >= 2);
    dev!.kill('SIGINT');
    assert.equal(await devExit, 0, devOutput.slice(-2000));
    // Every port of the stack is free again.
    for (const port of Object.values(ports)) {
      const probe = spawnSync('bash', ['-c', `exec 3<>/dev/tcp/127.0.0.1/${port}`], { encoding: 'utf8' });
      assert.notEqual(probe.status, 0, `port ${port} still accepts connections after the stack stopped`);
    }
  });
});
