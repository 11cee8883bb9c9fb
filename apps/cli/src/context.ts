// What a command needs from the global options: output, settings and the two HTTP clients.
import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { normaliseUrl, resolveSettings, type ResolvedSettings } from './config.js';
import { CliError, ExitCode } from './errors.js';
import { HttpClient } from './http.js';
import { Output, parseOutputFormat } from './output.js';

export interface GlobalOptions {
  profile?: string;
  output?: string;
  controlPlane?: string;
  project?: string;
  gateway?: string;
  color?: boolean;
}

export class Context {
  readonly out: Output;
  readonly settings: ResolvedSettings;

  constructor(command: Command) {
    const opts = command.optsWithGlobals<GlobalOptions>();
    this.out = new Output(parseOutputFormat(opts.output ?? process.env['CAIRN_OUTPUT'] ?? 'table'), { noColor: opts.color === false });
    this.settings = resolveSettings({
      profile: opts.profile,
      controlPlane: opts.controlPlane,
      project: opts.project,
      gateway: opts.gateway,
    });
  }

  /** The control plane client; fails naming what is missing and how to set it. */
  controlPlane(): HttpClient {
    const s = this.settings;
    if (!s.controlPlaneUrl) {
      throw new CliError(ExitCode.CONFIG, `No control-plane URL in profile "${s.profile}".`, {
        hint: 'Run `cairn login --control-plane https://…`, or pass --control-plane / set CAIRN_CONTROL_PLANE_URL.',
      });
    }
    if (!s.apiKey) {
      throw new CliError(ExitCode.CONFIG, `No API key in profile "${s.profile}".`, {
        hint: 'Run `cairn login` with an API key (`--api-key-stdin`), or set CAIRN_API_KEY.',
      });
    }
    return new HttpClient('control plane', normaliseUrl(s.controlPlaneUrl, 'control-plane URL'), s.apiKey);
  }

  /** The project every `/v1/projects/:project/...` route is under. */
  project(): string {
    const project = this.settings.project;
    if (!project) {
      throw new CliError(ExitCode.CONFIG, `No project in profile "${this.settings.profile}".`, {
        hint: 'Pass --project NAME, set CAIRN_PROJECT, or `cairn login --project NAME`; `cairn projects list` shows yours.',
      });
    }
    return project;
  }

  /** `/v1/projects/<project>` + rest, with the project escaped. */
  projectPath(rest = ''): string {
    return `/v1/projects/${encodeURIComponent(this.project())}${rest}`;
  }

  gateway(): HttpClient {
    const s = this.settings;
    if (!s.gatewayUrl) {
      throw new CliError(ExitCode.CONFIG, `No gateway URL in profile "${s.profile}".`, {
        hint: "Run `cairn login --gateway http://…` (the data plane's gateway), or pass --gateway / set CAIRN_GATEWAY_URL.",
      });
    }
    if (!s.gatewayToken) {
      throw new CliError(ExitCode.CONFIG, `No gateway token in profile "${s.profile}".`, {
        hint: "Run `cairn login --gateway-token-stdin`, or set CAIRN_GATEWAY_TOKEN (one of the gateway's CAIRN_GATEWAY_TOKENS).",
      });
    }
    return new HttpClient('gateway', normaliseUrl(s.gatewayUrl, 'gateway URL'), s.gatewayToken);
  }
}

/** Reads all of stdin (for `--input -`, `--api-key-stdin`). */
export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) {
    throw new CliError(ExitCode.USAGE, 'Expected data on standard input, but it is a terminal.', {
      hint: 'Pipe it in, e.g. `echo \'{"a":1}\' | cairn …`, or give a file.',
    });
  }
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * A JSON value from `--input`/`--data` (inline JSON), `--input-file PATH` or `-` (stdin). Returns
 * undefined when none was given.
 */
export async function readJsonInput(inline: string | undefined, file: string | undefined, what: string): Promise<unknown> {
  if (inline !== undefined && file !== undefined) {
    throw new CliError(ExitCode.USAGE, `Give the ${what} either inline or as a file, not both.`);
  }
  let text: string;
  let source: string;
  if (inline !== undefined) {
    text = inline;
    source = 'the command line';
  } else if (file === '-') {
    text = await readStdin();
    source = 'standard input';
  } else if (file !== undefined) {
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new CliError(ExitCode.USAGE, `Cannot read the ${what} file ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}.`);
    }
    source = file;
  } else {
    return undefined;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new CliError(ExitCode.USAGE, `The ${what} from ${source} is not valid JSON: ${(err as Error).message}.`, {
      hint: `Give JSON, e.g. '{"orderId":"o-1"}'; strings need quotes.`,
    });
  }
}

/** A whole number option. */
export function intOption(name: string, min: number, max: number): (value: string) => number {
  return (value: string) => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value) || n < min || n > max) {
      throw new CliError(ExitCode.USAGE, `${name} must be a whole number from ${min} to ${max}, got "${value}".`);
    }
    return n;
  };
}
