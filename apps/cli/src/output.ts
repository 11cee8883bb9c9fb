// How commands print: `--output table|json|yaml`, colours only on a terminal without NO_COLOR, and
// a spinner on stderr (terminal only) while something waits.
import Table from 'cli-table3';
import picocolors from 'picocolors';
import { stringify } from 'yaml';
import yoctoSpinner from 'yocto-spinner';
import { CliError, ExitCode } from './errors.js';

export type OutputFormat = 'table' | 'json' | 'yaml';
export const OUTPUT_FORMATS: readonly OutputFormat[] = ['table', 'json', 'yaml'];

export function parseOutputFormat(value: string): OutputFormat {
  if ((OUTPUT_FORMATS as readonly string[]).includes(value)) return value as OutputFormat;
  throw new CliError(ExitCode.USAGE, `Unknown output format "${value}": use one of ${OUTPUT_FORMATS.join(', ')}.`);
}

/** Colours on stdout/stderr: off when the stream is not a terminal, or NO_COLOR is set, or --no-color. */
export function colorsFor(stream: NodeJS.WriteStream, disabled = false): ReturnType<typeof picocolors.createColors> {
  const env = process.env;
  const enabled = !disabled && isTerminal(stream) && !env['NO_COLOR'] && env['TERM'] !== 'dumb';
  return picocolors.createColors(enabled);
}

/** Node types `isTTY` as boolean, but a stream that is not a terminal has it undefined. */
function isTerminal(stream: NodeJS.WriteStream): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

export type Colors = ReturnType<typeof picocolors.createColors>;

/** What every command gets to print with. */
export class Output {
  readonly format: OutputFormat;
  readonly c: Colors;
  readonly ce: Colors;
  readonly #out: NodeJS.WriteStream;
  readonly #err: NodeJS.WriteStream;

  constructor(format: OutputFormat, options: { noColor?: boolean; out?: NodeJS.WriteStream; err?: NodeJS.WriteStream } = {}) {
    this.format = format;
    this.#out = options.out ?? process.stdout;
    this.#err = options.err ?? process.stderr;
    this.c = colorsFor(this.#out, options.noColor);
    this.ce = colorsFor(this.#err, options.noColor);
  }

  get isTTY(): boolean {
    return isTerminal(this.#out);
  }

  line(text = ''): void {
    this.#out.write(`${text}\n`);
  }

  /** Notes for people (progress, what was done) go to stderr so stdout stays parseable. */
  note(text: string): void {
    this.#err.write(`${text}\n`);
  }

  write(text: string): void {
    this.#out.write(text);
  }

  /** Prints a value as JSON or YAML, or calls `table` for the table format. */
  data(value: unknown, table: () => void): void {
    if (this.format === 'json') this.line(JSON.stringify(value, null, 2));
    else if (this.format === 'yaml') this.write(stringify(value));
    else table();
  }

  /** Prints rows as a table with a header. */
  table(head: readonly string[], rows: ReadonlyArray<ReadonlyArray<string | number | boolean | null | undefined>>): void {
    if (rows.length === 0) {
      this.line(this.c.dim('(none)'));
      return;
    }
    const t = new Table({
      head: head.map((h) => this.c.bold(h)),
      style: { head: [], border: [], compact: true },
      chars: { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' },
    });
    for (const r of rows) t.push(r.map((v) => (v === null || v === undefined ? '-' : String(v))));
    this.line(t.toString());
  }

  /** `key: value` lines. */
  fields(pairs: ReadonlyArray<readonly [string, string | number | boolean | null | undefined]>): void {
    const width = Math.max(...pairs.map(([k]) => k.length));
    for (const [k, v] of pairs) this.line(`${this.c.dim(k.padEnd(width))}  ${v === null || v === undefined ? '-' : String(v)}`);
  }

  /** Runs `work` with a spinner on stderr when stderr is a terminal. */
  async spin<T>(text: string, work: () => Promise<T>): Promise<T> {
    if (!this.#err.isTTY) return work();
    const spinner = yoctoSpinner({ text, stream: this.#err, ...(this.ce.isColorSupported ? { color: 'cyan' } : {}) }).start();
    try {
      const result = await work();
      spinner.stop();
      return result;
    } catch (err) {
      spinner.stop();
      throw err;
    }
  }

  /** A spinner that the caller updates and stops (e.g. `runs watch`), or undefined off a terminal. */
  spinner(text: string): { update(text: string): void; stop(): void } | undefined {
    if (!this.#err.isTTY) return undefined;
    const spinner = yoctoSpinner({ text, stream: this.#err }).start();
    return {
      update: (t) => {
        spinner.text = t;
      },
      stop: () => void spinner.stop(),
    };
  }
}

/** Status words coloured by how they ended. */
export function paintStatus(c: Colors, status: string | null | undefined): string {
  if (!status) return '-';
  switch (status) {
    case 'completed':
      return c.green(status);
    case 'failed':
    case 'terminated':
    case 'timed_out':
      return c.red(status);
    case 'cancelled':
    case 'retrying':
      return c.yellow(status);
    case 'running':
      return c.cyan(status);
    default:
      return status;
  }
}

/** A duration in milliseconds, short. */
export function formatMs(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const m = Math.floor(ms / 60_000);
  if (m < 60) return `${m}m${Math.round((ms % 60_000) / 1000)}s`;
  return `${Math.floor(m / 60)}h${m % 60}m`;
}
