// Loads the user's workflow modules and finds the definitions @cairn/sdk's defineWorkflow made:
// every export (or array export, like a worker's list) that is a frozen { name, version,
// taskQueue, run } object.
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { WorkflowDefinition } from '@cairn/sdk';
import { CliError, ExitCode } from './errors.js';

export function isWorkflowDefinition(value: unknown): value is WorkflowDefinition {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v['name'] === 'string' &&
    typeof v['version'] === 'string' &&
    typeof v['taskQueue'] === 'string' &&
    typeof v['run'] === 'function'
  );
}

export interface LoadedWorkflow {
  readonly definition: WorkflowDefinition;
  /** The module and export it came from, for messages. */
  readonly from: string;
}

/** Imports each module (compiled JavaScript, or TypeScript through tsx) and collects its definitions. */
export async function loadWorkflowModules(paths: readonly string[]): Promise<LoadedWorkflow[]> {
  if (paths.length === 0) {
    throw new CliError(ExitCode.USAGE, 'Name at least one workflow module, e.g. dist/workflows.js.');
  }
  const found = new Map<string, LoadedWorkflow>();
  // TypeScript modules load without a build step, as `cairn dev` runs workers: through tsx, which
  // also resolves the `./x.js` imports that stand for `./x.ts`.
  if (paths.some((p) => /\.[cm]?tsx?$/.test(p))) {
    const { register } = await import('tsx/esm/api');
    register();
  }
  for (const path of paths) {
    const file = resolve(path);
    if (!existsSync(file)) {
      throw new CliError(ExitCode.USAGE, `The workflow module ${path} does not exist.`, {
        hint: 'Give the path of your built workflow module (e.g. dist/workflows.js); build it first.',
      });
    }
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    } catch (err) {
      throw new CliError(ExitCode.USAGE, `Importing ${path} failed: ${err instanceof Error ? err.message : String(err)}`, {
        hint: 'Fix the module so that it can be imported without side effects (workflow definitions only, no worker start-up).',
      });
    }
    for (const [exportName, value] of Object.entries(mod)) {
      const candidates = Array.isArray(value) ? (value as unknown[]) : [value];
      for (const candidate of candidates) {
        if (!isWorkflowDefinition(candidate)) continue;
        const key = `${candidate.name}@${candidate.version}`;
        const existing = found.get(key);
        if (existing && existing.definition !== candidate) {
          throw new CliError(
            ExitCode.USAGE,
            `Two different definitions of ${key}: ${existing.from} and ${path} (${exportName}). Give each its own name or version.`,
          );
        }
        if (!existing) found.set(key, { definition: candidate, from: `${path} (${exportName})` });
      }
    }
  }
  if (found.size === 0) {
    throw new CliError(ExitCode.USAGE, `No workflow definitions are exported by ${paths.join(', ')}.`, {
      hint: "Export what defineWorkflow returns: `export const refund = defineWorkflow({ name: 'refund', version: '1' }, …)`.",
    });
  }
  return [...found.values()].sort((a, b) =>
    a.definition.name === b.definition.name
      ? a.definition.version.localeCompare(b.definition.version)
      : a.definition.name.localeCompare(b.definition.name),
  );
}
