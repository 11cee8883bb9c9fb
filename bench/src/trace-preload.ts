// Loaded with `--import` into every process of the stack by `pnpm bench:trace` (never in
// production): times each Postgres statement the process sends, on the monotonic clock that all
// processes of one machine share (CLOCK_MONOTONIC), and appends them to
// $CAIRN_TRACE_DIR/<pid>.jsonl. Statement text is cut to its first words; values are never read.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

interface Sample {
  /** Start and end, milliseconds on the monotonic clock. */
  s: number;
  e: number;
  /** The connection's application_name: which process sent it. */
  app: string;
  q: string;
}

const dir = process.env.CAIRN_TRACE_DIR;
if (dir) {
  const now = (): number => Number(process.hrtime.bigint()) / 1e6;
  const pending: Sample[] = [];
  const file = path.join(dir, `${process.pid}.jsonl`);
  const flush = (): void => {
    if (pending.length > 0)
      fs.appendFileSync(
        file,
        pending
          .splice(0)
          .map((x) => JSON.stringify(x))
          .join('\n') + '\n',
      );
  };
  setInterval(flush, 200).unref();
  process.on('exit', flush);

  type Callback = (...args: unknown[]) => unknown;
  interface PgClient {
    connectionParameters?: { application_name?: string };
  }
  // The one copy of pg the servers load (ESM imports of a CommonJS package share require's cache).
  const pg = createRequire(import.meta.url)('pg') as { Client: { prototype: { query: (...args: unknown[]) => unknown } } };
  const original = pg.Client.prototype.query;
  pg.Client.prototype.query = function (this: PgClient, ...args: unknown[]): unknown {
    const s = now();
    const first = args[0] as string | { text?: string; callback?: Callback } | undefined;
    const text = typeof first === 'string' ? first : (first?.text ?? '?');
    const sample = (): void => {
      pending.push({
        s,
        e: now(),
        app: this.connectionParameters?.application_name ?? '?',
        q: text.replace(/\s+/g, ' ').trim().slice(0, 100),
      });
    };
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      args[args.length - 1] = function (this: unknown, ...a: unknown[]) {
        sample();
        return (last as Callback).apply(this, a);
      };
    } else if (first && typeof first === 'object' && typeof first.callback === 'function') {
      const callback = first.callback;
      first.callback = function (this: unknown, ...a: unknown[]) {
        sample();
        return callback.apply(this, a);
      };
    }
    const result = original.apply(this, args);
    if (result && typeof (result as Promise<unknown>).then === 'function') (result as Promise<unknown>).then(sample, () => undefined);
    return result;
  };
}
