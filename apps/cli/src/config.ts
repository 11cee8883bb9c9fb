// Profiles: a YAML file under $XDG_CONFIG_HOME/cairn (or ~/.config/cairn), written with mode 600
// because it holds API keys and gateway tokens. CAIRN_* environment variables and command-line
// flags override what a profile says, in that order.
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { parse, stringify } from 'yaml';
import { CliError, ExitCode } from './errors.js';

/** What one profile holds. Every field is optional; commands say which one they miss. */
export interface Profile {
  controlPlaneUrl?: string | undefined;
  apiKey?: string | undefined;
  project?: string | undefined;
  gatewayUrl?: string | undefined;
  gatewayToken?: string | undefined;
}

export interface ConfigFile {
  currentProfile?: string | undefined;
  profiles: Record<string, Profile>;
}

const PROFILE_FIELDS = ['controlPlaneUrl', 'apiKey', 'project', 'gatewayUrl', 'gatewayToken'] as const;
const PROFILE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;

/** The environment variables that override a profile, by field. */
export const ENV_OVERRIDES: Readonly<Record<keyof Profile, string>> = {
  controlPlaneUrl: 'CAIRN_CONTROL_PLANE_URL',
  apiKey: 'CAIRN_API_KEY',
  project: 'CAIRN_PROJECT',
  gatewayUrl: 'CAIRN_GATEWAY_URL',
  gatewayToken: 'CAIRN_GATEWAY_TOKEN',
};

/** `$CAIRN_CONFIG_DIR`, else `$XDG_CONFIG_HOME/cairn`, else `~/.config/cairn`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env['CAIRN_CONFIG_DIR']) return env['CAIRN_CONFIG_DIR'];
  const xdg = env['XDG_CONFIG_HOME'];
  return join(xdg && xdg.startsWith('/') ? xdg : join(homedir(), '.config'), 'cairn');
}

export function configPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'config.yaml');
}

export function assertProfileName(name: string): void {
  if (!PROFILE_NAME.test(name)) {
    throw new CliError(
      ExitCode.USAGE,
      `Invalid profile name "${name}": use letters, digits, ".", "_" or "-" (at most 63 characters), starting with a letter or digit.`,
    );
  }
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): ConfigFile {
  const file = configPath(env);
  if (!existsSync(file)) return { profiles: {} };
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new CliError(ExitCode.CONFIG, `The configuration file ${file} is not valid YAML: ${(err as Error).message}`, {
      hint: 'Fix or delete it, then run `cairn login` again.',
    });
  }
  if (raw === null || raw === undefined) return { profiles: {} };
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new CliError(ExitCode.CONFIG, `The configuration file ${file} must hold a mapping with "profiles".`, {
      hint: 'Fix or delete it, then run `cairn login` again.',
    });
  }
  const obj = raw as Record<string, unknown>;
  const profiles: Record<string, Profile> = {};
  const rawProfiles = obj['profiles'];
  if (rawProfiles !== undefined && (typeof rawProfiles !== 'object' || rawProfiles === null || Array.isArray(rawProfiles))) {
    throw new CliError(ExitCode.CONFIG, `"profiles" in ${file} must be a mapping of profile names to settings.`);
  }
  for (const [name, value] of Object.entries((rawProfiles ?? {}) as Record<string, unknown>)) {
    if (typeof value !== 'object' || value === null) continue;
    const p: Profile = {};
    for (const field of PROFILE_FIELDS) {
      const v = (value as Record<string, unknown>)[field];
      if (typeof v === 'string' && v !== '') p[field] = v;
    }
    profiles[name] = p;
  }
  const current = obj['currentProfile'];
  return { currentProfile: typeof current === 'string' ? current : undefined, profiles };
}

/** Writes the file atomically with mode 600 (the directory 700): it holds secrets. */
export function saveConfig(config: ConfigFile, env: NodeJS.ProcessEnv = process.env): string {
  const file = configPath(env);
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  const body: Record<string, unknown> = {};
  if (config.currentProfile) body['currentProfile'] = config.currentProfile;
  body['profiles'] = config.profiles;
  writeFileSync(tmp, `# cairn CLI profiles (holds API keys: keep it private)\n${stringify(body)}`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
  return file;
}

/** The settings a command runs with, and where each came from (for `profiles show`). */
export interface ResolvedSettings extends Profile {
  readonly profile: string;
  readonly sources: Partial<Record<keyof Profile, 'flag' | 'env' | 'profile'>>;
}

export interface SettingFlags {
  profile?: string | undefined;
  controlPlane?: string | undefined;
  project?: string | undefined;
  gateway?: string | undefined;
}

/** Flag, then environment variable, then the profile. */
export function resolveSettings(flags: SettingFlags, env: NodeJS.ProcessEnv = process.env): ResolvedSettings {
  const config = loadConfig(env);
  const profile = flags.profile ?? env['CAIRN_PROFILE'] ?? config.currentProfile ?? 'default';
  assertProfileName(profile);
  const stored = config.profiles[profile] ?? {};
  const sources: ResolvedSettings['sources'] = {};
  const out: Profile = {};
  const flagValues: Partial<Record<keyof Profile, string | undefined>> = {
    controlPlaneUrl: flags.controlPlane,
    project: flags.project,
    gatewayUrl: flags.gateway,
  };
  for (const field of PROFILE_FIELDS) {
    const fromFlag = flagValues[field];
    const fromEnv = env[ENV_OVERRIDES[field]];
    if (fromFlag) {
      out[field] = fromFlag;
      sources[field] = 'flag';
    } else if (fromEnv) {
      out[field] = fromEnv;
      sources[field] = 'env';
    } else if (stored[field]) {
      out[field] = stored[field];
      sources[field] = 'profile';
    }
  }
  return { ...out, profile, sources };
}

/** Checks and normalises a server URL (no trailing slash). */
export function normaliseUrl(value: string, what: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new CliError(ExitCode.USAGE, `The ${what} "${value}" is not a URL: give it as http(s)://host[:port].`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(ExitCode.USAGE, `The ${what} "${value}" must start with http:// or https://.`);
  }
  return url.toString().replace(/\/+$/, '');
}

/** The profile `cairn dev` logs the CLI in as. */
export const DEV_PROFILE = 'dev';

/**
 * Saves the local stack's endpoints and keys as the `dev` profile. It becomes the current profile
 * when there is none yet or the current one is `dev`; a current profile of another name (say
 * `prod`) stays current, so a command typed out of habit never lands somewhere else than it did
 * before: the returned note says how to use `dev` then.
 */
export function saveDevProfile(
  profile: Required<Pick<Profile, 'controlPlaneUrl' | 'apiKey' | 'project' | 'gatewayUrl' | 'gatewayToken'>>,
  env: NodeJS.ProcessEnv = process.env,
): { file: string; current: string; switched: boolean; note: string } {
  const config = loadConfig(env);
  config.profiles[DEV_PROFILE] = { ...profile };
  // With no currentProfile, commands use the profile named "default" when there is one.
  const current = config.currentProfile ?? (config.profiles['default'] ? 'default' : undefined);
  const switched = current === undefined || current === DEV_PROFILE;
  if (switched) config.currentProfile = DEV_PROFILE;
  const file = saveConfig(config, env);
  const note = switched
    ? `CLI profile "${DEV_PROFILE}" is current: \`cairn runs list\` talks to this stack`
    : `CLI profile "${DEV_PROFILE}" saved; your current profile stays "${current}": use \`cairn --profile ${DEV_PROFILE} …\` or \`cairn profiles use ${DEV_PROFILE}\``;
  return { file, current: switched ? DEV_PROFILE : current, switched, note };
}
