// Helpers every benchmark here shares: statistics, the machine a result was measured on, the
// single-commit floor and where results are written.
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { cpus, hostname, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));

/** The nearest-rank percentile of an ascending list (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export interface Stats {
  readonly n: number;
  readonly p50: number;
  readonly p99: number;
  readonly min: number;
  readonly max: number;
}

export function stats(xs: readonly number[]): Stats {
  const s = [...xs].sort((a, b) => a - b);
  return { n: s.length, p50: percentile(s, 50), p99: percentile(s, 99), min: s[0] ?? NaN, max: s[s.length - 1] ?? NaN };
}

/** The middle value (the mean of the two middle ones for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export const round = (x: number, d = 2): number => Math.round(x * 10 ** d) / 10 ** d;

export interface Machine {
  readonly host: string;
  readonly cpus: string;
  readonly memoryGiB: number;
  readonly kernel: string;
  readonly node: string;
  readonly postgres: string;
}

/** The machine a result was measured on; `postgres` says which server and how it was run. */
export function machineInfo(postgres: string): Machine {
  return {
    host: hostname(),
    cpus: `${cpus().length} × ${cpus()[0]?.model ?? 'unknown'}`,
    memoryGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    postgres,
  };
}

/** One line naming the machine, for the head of a results file. */
export function describeMachine(machine: Machine): string {
  return `${machine.cpus}, ${machine.memoryGiB} GiB, Linux ${machine.kernel}, Node ${machine.node}, PostgreSQL ${machine.postgres}`;
}

/** A timestamp usable in a file name, from an ISO date. */
export const fileStamp = (isoDate: string): string => isoDate.replace(/[:.]/g, '-');

/**
 * Writes `<name>.md` and `<name>.json` under bench/results/ (and the Markdown again to each of
 * `alsoAs`) and returns the paths written.
 */
export function writeResults(name: string, md: string, json: unknown, alsoAs: readonly string[] = []): string[] {
  mkdirSync(resultsDir, { recursive: true });
  const paths = [join(resultsDir, `${name}.json`), join(resultsDir, `${name}.md`), ...alsoAs.map((f) => join(resultsDir, f))];
  writeFileSync(paths[0]!, JSON.stringify(json, null, 2) + '\n');
  for (const path of paths.slice(1)) writeFileSync(path, md);
  return paths;
}

/**
 * A fresh folder under the system temp dir. Embedded Postgres runs as the 'postgres' user when
 * started as root: it must be able to enter the folder.
 */
export function benchTempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  return dir;
}

/**
 * The floor: `n` single-row INSERT + COMMIT round trips (autocommit) over `pg` on the given
 * database; returns each one's time in ms.
 */
export async function measureFloor(connectionString: string, n = 1000): Promise<number[]> {
  const c = new pg.Client({ connectionString });
  await c.connect();
  try {
    await c.query(
      'CREATE TABLE IF NOT EXISTS bench_floor (id bigserial PRIMARY KEY, run_id uuid NOT NULL, position int NOT NULL, payload bytea)',
    );
    const payload = Buffer.alloc(64, 1);
    const out: number[] = [];
    for (let i = 0; i < n; i++) {
      const t0 = performance.now();
      await c.query('INSERT INTO bench_floor (run_id, position, payload) VALUES ($1, $2, $3)', [
        '00000000-0000-4000-8000-000000000000',
        i,
        payload,
      ]);
      out.push(performance.now() - t0);
    }
    return out;
  } finally {
    await c.end();
  }
}

/** The server's version string (`SHOW server_version`), e.g. `18.4`. */
export async function serverVersion(connectionString: string): Promise<string> {
  const c = new pg.Client({ connectionString });
  await c.connect();
  try {
    const r = await c.query<{ server_version: string }>('SHOW server_version');
    return r.rows[0]?.server_version ?? 'unknown';
  } finally {
    await c.end();
  }
}
