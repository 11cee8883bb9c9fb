// The local stack's settings for a project: command-line flags win over environment variables,
// which win over the project's cairn.config.json, which wins over a "cairn" key in its
// package.json, which wins over the defaults. Both files use the same shape:
//   { "dev": { "worker": "src/worker.ts", "dir": ".cairn", "modelScript": "mock-llm.json",
//              "watch": true, "ports": { "postgres": 7432, "controlPlaneHttp": 7280,
//              "controlPlaneGrpc": 7233, "gateway": 7281, "modelServer": 7282 } } }
// Paths in a file are relative to that file's folder; paths given as flags or environment
// variables are relative to the current folder.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { z } from 'zod';
import { CairnError, ErrorCodes } from '@cairn/common';
import { DEFAULT_PORTS, PORT_SETTINGS, type DevPorts } from './ports.js';

/** What the command line gave (all optional; strings as typed). */
export interface DevFlags {
  readonly worker?: string | undefined;
  readonly dir?: string | undefined;
  readonly modelScript?: string | undefined;
  /** false for --no-watch. */
  readonly watch?: boolean | undefined;
  readonly pgPort?: string | undefined;
  readonly cpHttpPort?: string | undefined;
  readonly cpGrpcPort?: string | undefined;
  readonly gatewayPort?: string | undefined;
  readonly modelPort?: string | undefined;
}

export type SettingSource = 'flag' | 'env' | 'cairn.config.json' | 'package.json' | 'default';

/** The resolved settings of the local stack for one project. */
export interface DevSettings {
  /** The project folder: the nearest folder at or above the current one with cairn.config.json or package.json. */
  readonly projectDir: string;
  /** The state folder (Postgres data, logs, secrets, endpoints.json); absolute. */
  readonly dir: string;
  /** The user's worker entry file (absolute), or undefined for the repository's examples. */
  readonly worker: string | undefined;
  /** A script for the local model server (absolute), if any. */
  readonly modelScript: string | undefined;
  readonly watch: boolean;
  readonly ports: DevPorts;
  /** An existing Postgres server to use instead of the embedded one (CAIRN_DEV_POSTGRES_URL). */
  readonly postgresUrl: string | undefined;
  /** Where each setting came from. */
  readonly sources: Readonly<Record<string, SettingSource>>;
  /** The config files that were read. */
  readonly files: readonly string[];
}

const port = z.number({ error: 'expected a port number' }).int('expected a whole number').min(0).max(65535);
const devSection = z.strictObject({
  worker: z.string().min(1, 'must not be empty').optional(),
  dir: z.string().min(1, 'must not be empty').optional(),
  modelScript: z.string().min(1, 'must not be empty').optional(),
  watch: z.boolean({ error: 'expected true or false' }).optional(),
  ports: z
    .strictObject({
      postgres: port.optional(),
      controlPlaneHttp: port.optional(),
      controlPlaneGrpc: port.optional(),
      gateway: port.optional(),
      modelServer: port.optional(),
    })
    .optional(),
});
// Other top-level keys belong to other commands.
const fileShape = z.looseObject({ dev: devSection.optional() });
type DevSection = z.infer<typeof devSection>;

/** The folder holding the nearest cairn.config.json or package.json at or above `from`. */
export function findProjectDir(from: string): string {
  let dir = resolve(from);
  for (;;) {
    if (existsSync(join(dir, 'cairn.config.json')) || existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return resolve(from);
    dir = parent;
  }
}

function invalid(message: string): CairnError {
  return new CairnError(ErrorCodes.DEV_CONFIG_INVALID, message);
}

function readSection(file: string, key: 'file' | 'package'): DevSection | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw invalid(`${file} is not valid JSON: ${(err as Error).message}. Fix it and start again.`);
  }
  const value = key === 'package' ? (raw as Record<string, unknown> | null)?.['cairn'] : raw;
  if (value === undefined) return undefined;
  const parsed = fileShape.safeParse(value);
  if (!parsed.success) {
    const where = key === 'package' ? 'cairn.' : '';
    const problems = parsed.error.issues.map((i) => {
      const path = `${where}${i.path.join('.')}`;
      return i.code === 'unrecognized_keys'
        ? `  ${path ? `${path}: ` : ''}${i.keys.map((k) => `"${k}"`).join(', ')} ${i.keys.length === 1 ? 'is not a setting' : 'are not settings'} (the settings are ${settingsList(path)})`
        : `  ${path}: ${i.message}`;
    });
    throw invalid(
      `${file} has invalid local-stack settings:\n${problems.join('\n')}\nSee apps/cli/README.md (cairn dev) for the settings.`,
    );
  }
  return parsed.data.dev;
}

function settingsList(path: string): string {
  return path.endsWith('ports') ? Object.keys(DEFAULT_PORTS).join(', ') : 'worker, dir, modelScript, watch, ports';
}

function parsePort(value: string, what: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535)
    throw invalid(`${what} must be a port number from 0 to 65535 (0 picks a free port), got "${value}".`);
  return n;
}

/** Resolves the settings of `cairn dev` for the project around `cwd`. */
export function resolveDevSettings(
  flags: DevFlags,
  env: NodeJS.ProcessEnv = process.env,
  cwd = process.cwd(),
  options: { checkFiles?: boolean } = {},
): DevSettings {
  const checkFiles = options.checkFiles ?? true;
  const projectDir = findProjectDir(cwd);
  const files: string[] = [];
  const configFile = join(projectDir, 'cairn.config.json');
  const packageFile = join(projectDir, 'package.json');
  const fromFile = existsSync(configFile) ? readSection(configFile, 'file') : undefined;
  if (existsSync(configFile)) files.push(configFile);
  const fromPackage = existsSync(packageFile) ? readSection(packageFile, 'package') : undefined;
  if (fromPackage !== undefined) files.push(packageFile);
  const sources: Record<string, SettingSource> = {};

  const pick = <T>(
    name: string,
    flag: T | undefined,
    envValue: T | undefined,
    file: T | undefined,
    pkg: T | undefined,
    fallback: T,
  ): { value: T; source: SettingSource } => {
    const found: Array<[T | undefined, SettingSource]> = [
      [flag, 'flag'],
      [envValue, 'env'],
      [file, 'cairn.config.json'],
      [pkg, 'package.json'],
    ];
    for (const [value, source] of found) {
      if (value !== undefined) {
        sources[name] = source;
        return { value, source };
      }
    }
    sources[name] = 'default';
    return { value: fallback, source: 'default' };
  };
  const emptyToUndefined = (v: string | undefined) => (v === undefined || v === '' ? undefined : v);
  // A path is relative to the file it was written in, or to the current folder.
  const path = (p: { value: string | undefined; source: SettingSource }): string | undefined => {
    if (p.value === undefined) return undefined;
    if (isAbsolute(p.value)) return p.value;
    return resolve(p.source === 'flag' || p.source === 'env' ? cwd : projectDir, p.value);
  };

  const dir = path(pick('dir', flags.dir, emptyToUndefined(env['CAIRN_DEV_DIR']), fromFile?.dir, fromPackage?.dir, '.cairn'))!;
  const workerPick = pick<string | undefined>(
    'worker',
    flags.worker,
    emptyToUndefined(env['CAIRN_DEV_WORKER']),
    fromFile?.worker,
    fromPackage?.worker,
    undefined,
  );
  const worker = path(workerPick);
  if (worker !== undefined && checkFiles) {
    if (!existsSync(worker) || !statSync(worker).isFile()) {
      const from = workerPick.source === 'flag' ? '--worker' : workerPick.source === 'env' ? 'CAIRN_DEV_WORKER' : workerPick.source;
      throw invalid(
        `The worker file ${relative(cwd, worker) || worker} (from ${from}) does not exist. Give the file that starts your worker, e.g. --worker src/worker.ts (it calls runWorkerFromEnv from @cairn/worker).`,
      );
    }
  }
  const modelPick = pick<string | undefined>(
    'modelScript',
    flags.modelScript,
    emptyToUndefined(env['CAIRN_DEV_MODEL_SCRIPT']),
    fromFile?.modelScript,
    fromPackage?.modelScript,
    undefined,
  );
  const modelScript = path(modelPick);
  if (modelScript !== undefined && checkFiles && !existsSync(modelScript)) {
    throw invalid(`The model script ${modelScript} (from ${modelPick.source}) does not exist.`);
  }
  const watch = pick('watch', flags.watch === false ? false : undefined, undefined, fromFile?.watch, fromPackage?.watch, true).value;

  const flagPorts: Record<keyof DevPorts, string | undefined> = {
    postgres: flags.pgPort,
    controlPlaneHttp: flags.cpHttpPort,
    controlPlaneGrpc: flags.cpGrpcPort,
    gateway: flags.gatewayPort,
    modelServer: flags.modelPort,
  };
  const ports = {} as Record<keyof DevPorts, number>;
  for (const key of Object.keys(DEFAULT_PORTS) as Array<keyof DevPorts>) {
    const s = PORT_SETTINGS[key];
    const flag = flagPorts[key];
    const envValue = emptyToUndefined(env[s.env]);
    ports[key] = pick(
      `ports.${key}`,
      flag === undefined ? undefined : parsePort(flag, s.flag),
      envValue === undefined ? undefined : parsePort(envValue, s.env),
      fromFile?.ports?.[key],
      fromPackage?.ports?.[key],
      DEFAULT_PORTS[key],
    ).value;
  }
  return {
    projectDir,
    dir,
    worker,
    modelScript,
    watch,
    ports,
    postgresUrl: emptyToUndefined(env['CAIRN_DEV_POSTGRES_URL']),
    sources,
    files,
  };
}
