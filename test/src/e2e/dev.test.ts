// `cairn dev` in a project of its own, outside this repository's workspace, run through the CLI's
// bin as a user would: a TypeScript worker without a build step, supervision of every process,
// stable ports and endpoints.json, the automatic `dev` profile, a restart on a changed file,
// `cairn dev env` for a second worker, and nothing left running after Ctrl-C. One stack serves
// every case; the cases run in order.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@cairn/local-postgres';
import { launchBrowser } from '../console/browser.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, '../../..');
const bin = join(repoRoot, 'apps/cli/bin/cairn.cjs');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Every process below `root`, from /proc (pid → its command line). */
function descendants(root: number): Map<number, string> {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the fields after the last ')' are fixed.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // ended meanwhile
    }
  }
  const found = new Map<number, string>();
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const child of children.get(pid) ?? []) {
      found.set(child, cmdline(child) ?? '');
      queue.push(child);
    }
  }
  return found;
}

function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
  } catch {
    return undefined;
  }
}

describe('cairn dev in a project of its own', () => {
  let project: string;
  let env: Record<string, string>;
  let dev: ChildProcess;
  let devExit: Promise<number | null>;
  let output = '';
  let ports: { postgres: number; controlPlaneHttp: number; controlPlaneGrpc: number; gateway: number; modelServer: number };

  const cairn = (args: string[], options: { cwd?: string; input?: string } = {}): Promise<Ran> =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [bin, ...args], { cwd: options.cwd ?? project, env, stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end(options.input ?? '');
    });
  const json = async <T = Record<string, unknown>>(args: string[]): Promise<T> => {
    const r = await cairn([...args, '-o', 'json']);
    assert.equal(r.code, 0, `cairn ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
    return JSON.parse(r.stdout) as T;
  };
  /** Waits until the stack prints a line matching `re` after `from` characters of its output. */
  const waitForOutput = async (re: RegExp, from = 0, timeoutMs = 90_000): Promise<number> => {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const m = re.exec(output.slice(from));
      if (m) return from + m.index + m[0].length;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`cairn dev did not print ${re} within ${timeoutMs} ms; it printed:\n${output.slice(from)}`);
  };

  before(async () => {
    project = mkdtempSync(join(process.env['CAIRN_TEST_DIR'] ?? tmpdir(), 'cairn-dev-project-'));
    // Embedded Postgres runs as the 'postgres' user when started as root: it must enter the folder.
    chmodSync(project, 0o755);
    // The project's dependencies, as `npm install` would place them (the packages of this checkout).
    mkdirSync(join(project, 'node_modules', '@cairn'), { recursive: true });
    for (const pkg of ['sdk', 'worker']) {
      symlinkSync(realpathSync(join(repoRoot, `test/node_modules/@cairn/${pkg}`)), join(project, 'node_modules', '@cairn', pkg));
    }
    ports = {
      postgres: await freePort(),
      controlPlaneHttp: await freePort(),
      controlPlaneGrpc: await freePort(),
      gateway: await freePort(),
      modelServer: await freePort(),
    };
    // The worker from package.json, the ports from cairn.config.json.
    writeFileSync(
      join(project, 'package.json'),
      JSON.stringify({ name: 'my-app', private: true, type: 'module', cairn: { dev: { worker: 'src/worker.ts' } } }, null, 2),
    );
    writeFileSync(join(project, 'cairn.config.json'), JSON.stringify({ dev: { ports } }, null, 2));
    mkdirSync(join(project, 'src'));
    writeFileSync(join(project, 'src/greeting.ts'), 'export const greeting = (name: string): string => `Hello, ${name}`;\n');
    writeFileSync(
      join(project, 'src/worker.ts'),
      `import { defineWorkflow } from '@cairn/sdk';
import { runWorkerFromEnv } from '@cairn/worker';
import { greeting } from './greeting.js';

interface Person { name: string }

export const hello = defineWorkflow({ name: 'dev-hello', version: '1' }, async (ctx, input: Person) =>
  ctx.step('greet', () => ({ greeting: greeting(input.name) })),
);

export const nap = defineWorkflow({ name: 'dev-nap', version: '1' }, async (ctx) => {
  await ctx.sleep('8s');
  return ctx.step('wake', () => 'awake');
});

export const approval = defineWorkflow({ name: 'dev-approval', version: '1' }, async (ctx) => {
  const answer = await ctx.waitForSignal<{ ok: boolean }>('approval');
  return ctx.step('decide', () => ({ ok: answer.ok }));
});

await runWorkerFromEnv([hello, nap, approval]);
`,
    );
    writeFileSync(
      join(project, 'src/other-worker.ts'),
      `import { defineWorkflow } from '@cairn/sdk';
import { runWorkerFromEnv } from '@cairn/worker';

export const other = defineWorkflow({ name: 'dev-other', version: '1' }, async (ctx, input: { n: number }) =>
  ctx.step('double', () => ({ doubled: input.n * 2, by: 'the second worker' })),
);

await runWorkerFromEnv([other]);
`,
    );
    env = { PATH: process.env['PATH'] ?? '', HOME: project, CAIRN_CONFIG_DIR: join(project, '.config'), NO_COLOR: '1' };
    dev = spawn(process.execPath, [bin, 'dev'], { cwd: project, env, stdio: ['ignore', 'pipe', 'pipe'] });
    dev.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    dev.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    devExit = new Promise((resolve) => dev.once('exit', (code) => resolve(code)));
    await waitForOutput(/Cairn local stack is up/);
  });

  after(async () => {
    if (dev.exitCode === null && dev.signalCode === null) {
      dev.kill('SIGTERM');
      await devExit;
    }
  });

  it('listens on the configured ports, writes .cairn/endpoints.json and logs the CLI in as the dev profile', async () => {
    const endpoints = JSON.parse(readFileSync(join(project, '.cairn/endpoints.json'), 'utf8')) as {
      project: string;
      dataPlaneId: string;
      controlPlane: { httpUrl: string; grpcAddress: string };
      gatewayUrl: string;
      modelServerUrl: string;
      postgres: { port: number };
      pid: number;
    };
    assert.deepEqual(
      [
        endpoints.controlPlane.httpUrl,
        endpoints.controlPlane.grpcAddress,
        endpoints.gatewayUrl,
        endpoints.modelServerUrl,
        endpoints.postgres.port,
      ],
      [
        `http://127.0.0.1:${ports.controlPlaneHttp}`,
        `127.0.0.1:${ports.controlPlaneGrpc}`,
        `http://127.0.0.1:${ports.gateway}`,
        `http://127.0.0.1:${ports.modelServer}`,
        ports.postgres,
      ],
    );
    assert.equal(endpoints.project, 'default');
    assert.equal(endpoints.pid, dev.pid);
    // Secrets under the variable names the worker reads, readable by the owner only.
    const secrets = JSON.parse(readFileSync(join(project, '.cairn/secrets.json'), 'utf8')) as Record<string, string>;
    assert.equal(secrets['CAIRN_DATA_PLANE_ID'], endpoints.dataPlaneId);
    assert.match(secrets['CAIRN_DP_DATABASE_URL']!, new RegExp(`^postgres://cairn_dp:[^@]+@127\\.0\\.0\\.1:${ports.postgres}/cairn_dp$`));
    assert.match(output, /profile "dev" is current/);

    // No flags: the dev profile points the CLI at the stack.
    const started = await json<{ runId: string; status: string; output: unknown }>([
      'runs',
      'start',
      'dev-hello',
      '-i',
      '{"name":"Ada"}',
      '--wait',
    ]);
    assert.equal(started.status, 'completed');
    assert.deepEqual(started.output, { greeting: 'Hello, Ada' });
    const listed = await json<{ runs: Array<{ runId: string; workflowName: string }> }>(['runs', 'list']);
    assert.ok(listed.runs.some((r) => r.runId === started.runId && r.workflowName === 'dev-hello'));
    const profiles = await json<{ profiles: Array<{ name: string; current: boolean }> }>(['profiles', 'list']);
    assert.deepEqual(
      profiles.profiles.map((p) => [p.name, p.current]),
      [['dev', true]],
    );
  });

  it('prints a console link that opens the console in a browser, signed in for the stack', async () => {
    const line = /console\s+(http:\/\/127\.0\.0\.1:(\d+)\/#(\S+))/.exec(output);
    assert.ok(line, `no console line in:\n${output}`);
    assert.equal(Number(line[2]), ports.controlPlaneHttp);
    const fragment = new URLSearchParams(line[3]);
    const secrets = JSON.parse(readFileSync(join(project, '.cairn/secrets.json'), 'utf8')) as Record<string, string>;
    assert.equal(fragment.get('gateway'), `http://127.0.0.1:${ports.gateway}`);
    assert.equal(fragment.get('dataPlane'), secrets['CAIRN_DATA_PLANE_ID']);
    const key = fragment.get('key') ?? '';
    assert.match(key, /.{16,}/);
    const started = await json<{ runId: string }>(['runs', 'start', 'dev-hello', '-i', '{"name":"Bo"}', '--wait']);

    const browser = await launchBrowser();
    try {
      const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      const page = await context.newPage();
      const requested: string[] = [];
      page.on('request', (r) => requested.push(r.url()));
      await page.goto(line[1]!);
      await page.getByRole('heading', { name: 'Runs', level: 1 }).waitFor();
      await page.getByRole('link', { name: started.runId }).waitFor();
      await page.getByRole('button', { name: 'Sign out' }).waitFor();
      assert.equal(new URL(page.url()).hash, '', 'the key is cleared from the address bar');
      assert.deepEqual(
        requested.filter((url) => url.includes(key)),
        [],
        'the key is in no request line (the fragment never leaves the browser)',
      );
    } finally {
      await browser.close();
    }
  });

  it('refuses to start a second stack on a port that is taken, naming the port, its holder and how to choose another', async () => {
    const elsewhere = mkdtempSync(join(tmpdir(), 'cairn-dev-other-'));
    // Every other port free (not the defaults, which another stack on this machine may use).
    const others = ['--pg-port', '--cp-http-port', '--cp-grpc-port', '--model-port'];
    const free = await Promise.all(others.map(async (flag) => [flag, String(await freePort())]));
    const r = await cairn(['dev', '--worker', join(project, 'src/worker.ts'), '--gateway-port', String(ports.gateway), ...free.flat()], {
      cwd: elsewhere,
    });
    assert.equal(r.code, 1, r.stdout);
    assert.match(r.stderr, /\[CAIRN-1131\] The local stack cannot listen on (a port|ports) it needs:/);
    assert.match(
      r.stderr,
      new RegExp(
        `port ${ports.gateway} \\(gateway\\) is in use by pid \\d+ \\(\\S*node \\S*apps/gateway/dist/main\\.js\\): choose another with --gateway-port N or CAIRN_DEV_GATEWAY_PORT=N`,
      ),
    );
    assert.equal(existsSync(join(elsewhere, '.cairn/endpoints.json')), false);
  });

  it('warns when a signal is sent under a name the run is not waiting for, and keeps it', async () => {
    const started = await json<{ runId: string }>(['runs', 'start', 'dev-approval']);
    for (;;) {
      const d = await json<{ run: { status: string; waitingSignal: string | null } }>(['runs', 'describe', started.runId]);
      if (d.run.status === 'suspended') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const wrong = await cairn(['runs', 'signal', started.runId, 'aproval', '-d', '{"ok":false}', '-o', 'json']);
    assert.equal(wrong.code, 0, wrong.stderr);
    assert.deepEqual(
      (({ status, waiting, waitingFor }) => ({ status, waiting, waitingFor }))(JSON.parse(wrong.stdout) as Record<string, unknown>),
      { status: 'suspended', waiting: false, waitingFor: 'approval' },
    );
    assert.match(
      wrong.stderr,
      new RegExp(
        `warning: run ${started.runId} is not waiting for the signal "aproval": it waits for the signal "approval"\\. The signal is kept until the run waits for "aproval"`,
      ),
    );
    const right = await cairn(['runs', 'signal', started.runId, 'approval', '-d', '{"ok":true}']);
    assert.equal(right.code, 0, right.stderr);
    assert.doesNotMatch(right.stderr, /warning/);
    assert.deepEqual((await json<{ output: unknown }>(['runs', 'result', started.runId])).output, { ok: true });
    // An ended run refuses a signal with one plain sentence.
    const ended = await cairn(['runs', 'signal', started.runId, 'approval']);
    assert.equal(ended.code, 7);
    assert.match(
      ended.stderr,
      new RegExp(
        `: run ${started.runId} has already ended \\(completed\\), so it cannot receive signals; the signal was not kept \\[CAIRN-1108\\]\\n`,
      ),
    );
  });

  it('restarts the worker when a project file changes and runs the new code; a worker that does not load waits for the next change', async () => {
    let mark = output.length;
    writeFileSync(join(project, 'src/greeting.ts'), 'export const greeting = (name: string): string => `Hi, ${name}`;\n');
    mark = await waitForOutput(/src\/greeting\.ts changed; restarting worker\n/, mark);
    mark = await waitForOutput(/worker restarted\n/, mark);
    const hi = await json<{ output: unknown }>(['runs', 'start', 'dev-hello', '-i', '{"name":"Ada"}', '--wait']);
    assert.deepEqual(hi.output, { greeting: 'Hi, Ada' });

    writeFileSync(join(project, 'src/greeting.ts'), 'export const greeting = (name: string): string => `Hi, ${name}`\n  oops(;\n');
    mark = await waitForOutput(/worker failed to start: worker exited \(code 1\) during start-up/, mark);
    mark = await waitForOutput(/greeting\.ts[\s\S]*waiting for a file change to start worker again\n/, mark);
    writeFileSync(join(project, 'src/greeting.ts'), 'export const greeting = (name: string): string => `Good day, ${name}`;\n');
    await waitForOutput(/worker restarted\n/, mark);
    const fixed = await json<{ output: unknown }>(['runs', 'start', 'dev-hello', '-i', '{"name":"Ada"}', '--wait']);
    assert.deepEqual(fixed.output, { greeting: 'Good day, Ada' });
  });

  it('restarts a control plane killed with SIGKILL, and a run started before completes after', async () => {
    const started = await json<{ runId: string }>(['runs', 'start', 'dev-nap']);
    for (;;) {
      const d = await json<{ run: { status: string } }>(['runs', 'describe', started.runId]);
      if (d.run.status === 'suspended') break;
      await new Promise((r) => setTimeout(r, 200));
    }
    const controlPlane = [...descendants(dev.pid!)].find(([, cmd]) => cmd.includes('apps/control-plane/dist/main.js'));
    assert.ok(controlPlane, 'a control-plane process runs under cairn dev');
    let mark = output.length;
    process.kill(controlPlane[0], 'SIGKILL');
    mark = await waitForOutput(/control-plane exited \(SIGKILL\); restarting in 1s\n/, mark);
    await waitForOutput(/control-plane is back\n/, mark);
    const result = await json<{ status: string; output: unknown }>(['runs', 'result', started.runId]);
    assert.deepEqual([result.status, result.output], ['completed', 'awake']);
  });

  it('prints with `cairn dev env` the environment a second worker needs, and that worker runs workflows', async () => {
    const printed = await cairn(['dev', 'env']);
    assert.equal(printed.code, 0, printed.stderr);
    const names = [...printed.stdout.matchAll(/^export (\w+)=/gm)].map((m) => m[1]);
    assert.deepEqual(names, [
      'CAIRN_CP_GRPC_ADDRESS',
      'CAIRN_DATA_PLANE_ID',
      'CAIRN_DP_CREDENTIAL',
      'CAIRN_DP_DATABASE_URL',
      'CAIRN_DP_ENCRYPTION_KEYS',
      'CAIRN_DP_HMAC_KEY',
      'CAIRN_MOCK_LLM_URL',
      'CAIRN_DEV_MODE',
      'CAIRN_GATEWAY_URL',
      'CAIRN_GATEWAY_TOKEN',
    ]);
    const asJson = await json<Record<string, string>>(['dev', 'env']);
    assert.equal(asJson['CAIRN_CP_GRPC_ADDRESS'], `127.0.0.1:${ports.controlPlaneGrpc}`);
    assert.equal(
      (await cairn(['dev', 'env', '--format', 'dotenv'])).stdout.split('\n')[0],
      `CAIRN_CP_GRPC_ADDRESS=127.0.0.1:${ports.controlPlaneGrpc}`,
    );

    // Exactly what was printed, in a shell with nothing else of ours in its environment.
    const tsx = import.meta.resolve('tsx');
    const script = join(project, 'second-worker.sh');
    writeFileSync(script, `${printed.stdout}exec "${process.execPath}" --import ${tsx} src/other-worker.ts\n`);
    const second = spawn('bash', [script], { cwd: project, env: { PATH: env['PATH']!, HOME: project }, stdio: ['ignore', 'pipe', 'pipe'] });
    let secondOutput = '';
    second.stdout.on('data', (b: Buffer) => (secondOutput += b.toString()));
    second.stderr.on('data', (b: Buffer) => (secondOutput += b.toString()));
    const secondExit = new Promise((resolve) => second.once('exit', resolve));
    try {
      // The workflow exists once that worker announced it (development mode registers it).
      let ran: Ran | undefined;
      for (let i = 0; i < 100; i++) {
        ran = await cairn(['runs', 'start', 'dev-other', '-i', '{"n":21}', '--wait', '-o', 'json']);
        if (ran.code === 0 || !/CAIRN-1106/.test(ran.stderr)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.equal(ran?.code, 0, `${ran?.stderr}\nsecond worker:\n${secondOutput}`);
      assert.deepEqual((JSON.parse(ran.stdout) as { output: unknown }).output, { doubled: 42, by: 'the second worker' });
    } finally {
      second.kill('SIGTERM');
      await secondExit;
    }
  });

  it('stops every process on SIGINT (Ctrl-C) and leaves nothing running', async () => {
    const processes = descendants(dev.pid!);
    const commands = [...processes.values()];
    for (const what of [
      'apps/control-plane/dist/main.js',
      'apps/gateway/dist/main.js',
      'packages/mock-llm/dist/main.js',
      'src/worker.ts',
      'bin/postgres',
    ]) {
      assert.ok(
        commands.some((c) => c.includes(what)),
        `${what} runs under cairn dev:\n${commands.join('\n')}`,
      );
    }
    dev.kill('SIGINT');
    assert.equal(await devExit, 0, output.slice(-2000));
    await new Promise((r) => setTimeout(r, 500));
    const left = [...processes].filter(([pid, cmd]) => cmdline(pid) === cmd);
    assert.deepEqual(left, [], 'no process of the stack outlives cairn dev');
    // endpoints.json stays for the next start (same ports); `cairn dev env` says the stack is down.
    const stale = await cairn(['dev', 'env']);
    assert.equal(stale.code, 0);
    assert.match(stale.stderr, /warning: the local stack of .* is not running now/);
  });
});

describe('the cairn bin', () => {
  it('says which Node.js it needs on an old one, before loading anything', () => {
    const oldNode = process.env['CAIRN_TEST_OLD_NODE'] ?? '/usr/bin/node';
    const version = spawnSync(oldNode, ['-p', 'process.versions.node'], { encoding: 'utf8' }).stdout.trim();
    assert.ok(
      Number(version.split('.')[0]) < 22,
      `${oldNode} should be a Node.js older than 22 (it is ${version}); set CAIRN_TEST_OLD_NODE`,
    );
    const r = spawnSync(oldNode, [bin, 'runs', 'list'], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, `cairn needs Node.js 22 or newer (found ${version}). Install Node.js 24 LTS: https://nodejs.org\n`);
    const current = spawnSync(process.execPath, [bin, '--version'], { encoding: 'utf8' });
    assert.equal(current.status, 0, current.stderr);
    assert.match(current.stdout, /^\d+\.\d+\.\d+\n$/);
  });

  it('stops quietly when the reader of its output goes away (`cairn … | head`)', () => {
    // `true` reads nothing and exits: every write after that fails with EPIPE.
    const r = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${bin}" residency report | true`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr, '');
    const head = spawnSync('bash', ['-o', 'pipefail', '-c', `"${process.execPath}" "${bin}" completion bash | head -n 1`], {
      encoding: 'utf8',
    });
    assert.equal(head.status, 0, head.stderr);
    assert.match(head.stdout, /^# bash completion for cairn.*\n$/);
    assert.equal(head.stderr, '');
  });
});
