// Where the server programs `cairn dev` starts are. In the packed @cairn/cli they are bundles in
// `dist/servers/` beside the CLI's own bundle (and the console's built files in `dist/console/`); in this repository they are the apps' builds, which
// the local stack finds by itself.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ServerEntryPoints } from '@cairn/dev';

/** The packed layout's server bundles when they are beside this file; undefined in the repository. */
export function serverEntryPoints(base: string | URL = import.meta.url): ServerEntryPoints | undefined {
  const at = (name: string) => fileURLToPath(new URL(`./servers/${name}.js`, base));
  const controlPlane = at('control-plane');
  if (!existsSync(controlPlane)) return undefined;
  const consoleDir = fileURLToPath(new URL('./console', base));
  return {
    controlPlane,
    gateway: at('gateway'),
    mockLlm: at('mock-llm'),
    ...(existsSync(join(consoleDir, 'index.html')) ? { consoleDir } : {}),
  };
}
