// Restate beside Cairn: the server from npm (`@restatedev/restate-server`) on a fresh base dir with
// every listener on loopback, the service of ./restate-service.ts in its own Node process, registered
// through the admin API, and runs started and awaited through the HTTP ingress as a client would.
import { createRequire } from 'node:module';
import { rmSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@cairn/local-postgres';
import { benchTempDir } from '../common.js';
import { spawnGroup, type GroupProcess } from './processes.js';
import type { BenchSystem } from './system.js';

const serviceModule = fileURLToPath(new URL('./restate-service.js', import.meta.url));

/** The server binary that `@restatedev/restate-server` installs for this platform. */
function serverBinary(): string {
  const fromServer = createRequire(createRequire(import.meta.url).resolve('@restatedev/restate-server/package.json'));
  return fromServer.resolve(`@restatedev/restate-server-${platform()}-${arch()}/bin/restate-server`);
}

async function waitFor(what: string, timeoutMs: number, attempt: () => Promise<boolean>, died: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const gone = died();
    if (gone) throw new Error(`${what}: ${gone}`);
    if (await attempt().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startRestate(): Promise<BenchSystem> {
  const dir = benchTempDir('cairn-bench-restate-');
  const [ingressPort, adminPort, nodePort, servicePort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const ingress = `http://127.0.0.1:${ingressPort}`;
  const admin = `http://127.0.0.1:${adminPort}`;
  const processes: GroupProcess[] = [];
  const stop = async () => {
    for (const p of processes.reverse()) await p.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Defaults otherwise (fsync of the log's write-ahead log on, 24 partitions): the server as
    // `restate-server` starts it, on loopback, quiet, and without telemetry (no internet here).
    const server = spawnGroup(
      serverBinary(),
      ['--bind-ip', '127.0.0.1', '--listen-mode', 'tcp', '--base-dir', join(dir, 'data'), '--node-name', 'bench', '--no-logo'],
      {
        cwd: dir,
        logFile: join(dir, 'server.log'),
        env: {
          ...process.env,
          RESTATE_BIND_PORT: String(nodePort),
          RESTATE_INGRESS__BIND_PORT: String(ingressPort),
          RESTATE_ADMIN__BIND_PORT: String(adminPort),
          RESTATE_DISABLE_TELEMETRY: 'true',
          RESTATE_LOG_FILTER: 'warn',
        },
      },
    );
    processes.push(server);
    const service = spawnGroup(process.execPath, [serviceModule], {
      cwd: dir,
      logFile: join(dir, 'service.log'),
      env: { ...process.env, PORT: String(servicePort) },
    });
    processes.push(service);
    const died = () =>
      server.child.exitCode !== null || server.child.signalCode !== null
        ? `restate-server exited (log: ${join(dir, 'server.log')})`
        : service.child.exitCode !== null
          ? `the service process exited (log: ${join(dir, 'service.log')})`
          : undefined;
    await waitFor('restate-server', 60_000, async () => (await fetch(`${ingress}/restate/health`)).ok, died);
    await waitFor('restate-server admin API', 60_000, async () => (await fetch(`${admin}/health`)).ok, died);
    // Register the service's deployment; the server discovers its handlers from the endpoint.
    await waitFor(
      'registering the deployment',
      60_000,
      async () => {
        const r = await fetch(`${admin}/deployments`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ uri: `http://127.0.0.1:${servicePort}` }),
        });
        return r.ok;
      },
      died,
    );
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    name: 'restate',
    floorUrl: undefined,
    async run(steps) {
      // Start: `/send` returns once the server has durably accepted the invocation, with its ID
      // (Cairn's `POST /v1/runs`). Await: attach to the invocation and read its output (Cairn's
      // long-polled `GET /v1/runs/:id/result`).
      const sent = await fetch(`${ingress}/BenchSteps/run/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ steps }),
      });
      if (!sent.ok) throw new Error(`restate send → ${sent.status} ${await sent.text()}`);
      const { invocationId } = (await sent.json()) as { invocationId: string };
      const attached = await fetch(`${ingress}/restate/invocation/${invocationId}/attach`);
      if (!attached.ok) throw new Error(`restate attach → ${attached.status} ${await attached.text()}`);
      const output = (await attached.json()) as { firstStepAt?: unknown };
      if (typeof output.firstStepAt !== 'number') throw new Error(`restate run ${invocationId} returned ${JSON.stringify(output)}`);
    },
    stop,
  };
}
