import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Loads a module in a fresh Node process and lists every module it pulled in. */
function moduleGraph(specifier: string, from: string): string[] {
  const script = `
    import { registerHooks } from 'node:module';
    const seen = new Set();
    registerHooks({ resolve(spec, ctx, next) { const r = next(spec, ctx); seen.add(r.url); return r; } });
    await import(${JSON.stringify(specifier)});
    process.stdout.write(JSON.stringify([...seen]));
  `;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { cwd: from, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as string[];
}

describe('the code follows the planes', () => {
  it('the SDK a workflow author imports pulls in no server code', () => {
    const graph = moduleGraph('@cairn/sdk', `${root}/examples`);
    const server = graph.filter((url) =>
      /\/node_modules\/(\.pnpm\/)?(pg|pg-[a-z]+|@grpc|fastify|@nestjs|pino)[@/]|\/(worker|payload-store|control-plane|gateway|proto)\/dist\//.test(
        url,
      ),
    );
    assert.deepEqual(server, []);
    assert.ok(graph.some((url) => url.includes('/sdk/dist/')));
  });

  it('the control plane loads no data-plane package', () => {
    const graph = moduleGraph(`${root}/apps/control-plane/dist/index.js`, root);
    const dataPlane = graph.filter((url) => /\/(sdk|worker|payload-store|gateway)\/dist\//.test(url));
    assert.deepEqual(dataPlane, []);
  });
});
