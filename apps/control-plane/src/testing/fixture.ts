// Test support: a real control-plane process (the tsc-built dist/main.js) on a fresh database, with
// helpers for its REST API. Used by the control plane's API tests; not part of the package's exports.
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { get as httpsGet } from 'node:https';
import { globSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { OpenApiCheck } from '@cairn/common/testing';

const srcDir = dirname(dirname(fileURLToPath(import.meta.url)));
const packageDir = dirname(srcDir);
export const controlPlaneMain = join(packageDir, 'dist', 'main.js');

/** The bootstrap admin key every fixture control plane starts with (organisation and project "default"). */
export const BOOTSTRAP_KEY = 'test-bootstrap-admin-key';

/** Builds the package when dist/ is missing or older than any source file. */
let built = false;
export function ensureBuilt(): void {
  if (built) return;
  built = true;
  const stale = globSync('**/*.ts', { cwd: srcDir }).some((file) => {
    if (file.endsWith('.test.ts')) return false;
    try {
      return statSync(join(packageDir, 'dist', file.replace(/\.ts$/, '.js'))).mtimeMs < statSync(join(srcDir, file)).mtimeMs;
    } catch {
      return true;
    }
  });
  if (!stale) return;
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const build = spawnSync(process.execPath, [tsc, '-b', packageDir], { encoding: 'utf8' });
  assert.equal(build.status, 0, `building apps/control-plane failed:\n${build.stdout}${build.stderr}`);
}

export interface ApiAnswer<T = Record<string, unknown>> {
  readonly status: number;
  readonly body: T;
}

/** A control-plane process and its database. */
export interface ControlPlaneFixture {
  /** The superuser's URL of the database (owner of the schema: migrations run with it, tests inspect and tamper with it). */
  readonly databaseUrl: string;
  /** What the process serves with: the service role's URL (roles `separate`), else `databaseUrl`. */
  readonly serviceUrl: string;
  /** The service role's name (roles `separate`). */
  readonly serviceRole: string | undefined;
  /** The PEM of the Ed25519 key the process signs audit checkpoints with (shared by replicas of one database). */
  readonly auditSigningKey: string;
  readonly httpUrl: string;
  readonly grpcAddress: string;
  readonly sql: pg.Pool;
  /** Every line the process printed (JSON logs). */
  readonly lines: string[];
  /**
   * Resolves with the first line (printed already or later) that `match` accepts; rejects, naming
   * `what`, if none comes within 10 s. A line logged while a request is handled can reach the pipe
   * after the response reaches the test, so a test that checks a log line after a request waits for it.
   */
  logged(what: string, match: (line: string) => boolean): Promise<string>;
  /**
   * The process's own OpenAPI document: every answer of `api()` to a `/v1/` route is checked
   * against it (documented status, body matching the documented schema).
   */
  openapi(): Promise<OpenApiCheck>;
  /** Calls the REST API; `key` defaults to the bootstrap admin key, null sends none. */
  api<T = Record<string, unknown>>(method: string, path: string, options?: { key?: string | null; body?: unknown }): Promise<ApiAnswer<T>>;
  /** Creates an API key with this role in `project` (default "default") and returns its secret. */
  key(role: string, options?: { project?: string; organizationWide?: boolean; expiresAt?: string }): Promise<string>;
  /** Registers a data plane in `project` and returns its ID and credential. */
  dataPlane(project?: string, name?: string): Promise<{ id: string; credential: string }>;
  /** Stops the process (SIGTERM) and can start it again on the same database. */
  stop(): Promise<void>;
  restart(): Promise<void>;
  close(): Promise<void>;
}

export interface FixtureOptions {
  readonly env?: Record<string, string>;
  /** The CA of the REST port's certificate, when the REST port serves TLS (CAIRN_CP_HTTP_TLS_*): readiness is then checked over HTTPS. */
  readonly httpsCa?: Buffer;
  /** Join an existing database (another replica) instead of creating one; close() then leaves it. */
  readonly databaseUrl?: string;
  /**
   * `separate` (default): as in production, `control-plane migrate` runs as the schema's owner and
   * grants a service role, and the process serves as that role. `single`: it serves as the owner
   * and migrates itself at start.
   */
  readonly roles?: 'separate' | 'single';
}

const signingKeys = new Map<string, string>();
const execFileAsync = promisify(execFile);

/** Starts `dist/main.js` on a new database of `server` and waits until it is ready. */
export async function startControlPlaneProcess(server: PostgresServer, options: FixtureOptions = {}): Promise<ControlPlaneFixture> {
  ensureBuilt();
  const databaseName = uniqueDatabaseName('cpapi');
  const databaseUrl = options.databaseUrl ?? (await server.createDatabase(databaseName));
  const sql = new pg.Pool({ connectionString: databaseUrl, max: 3 });
  // An idle connection ended by another fixture dropping the shared database at teardown is not a
  // test failure (queries report their own errors); unhandled, it would crash the test file.
  sql.on('error', () => undefined);
  const database = decodeURIComponent(new URL(databaseUrl).pathname.slice(1));
  const separate = (options.roles ?? 'separate') === 'separate';
  // Roles are cluster-wide: name this database's service role after it (unique, and found again by replicas).
  const serviceRole = separate ? `${database}_svc` : undefined;
  let serviceUrl = databaseUrl;
  if (serviceRole !== undefined) {
    const password = `pw_${serviceRole}`;
    const exists = await server.admin('SELECT 1 FROM pg_roles WHERE rolname = $1', [serviceRole]);
    if (exists.rowCount === 0) await server.admin(`CREATE ROLE ${serviceRole} LOGIN PASSWORD '${password}'`);
    serviceUrl = server.url(database, { user: serviceRole, password });
  }
  let auditSigningKey = signingKeys.get(database);
  if (auditSigningKey === undefined) {
    auditSigningKey = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
    signingKeys.set(database, auditSigningKey);
  }
  const lines: string[] = [];
  let child: ChildProcess | null = null;
  let ports = { httpPort: 0, grpcPort: 0 };

  const start = async (): Promise<void> => {
    if (serviceRole !== undefined) {
      await execFileAsync(process.execPath, [controlPlaneMain, 'migrate'], {
        env: {
          PATH: process.env['PATH'] ?? '',
          CAIRN_CP_MIGRATION_DATABASE_URL: databaseUrl,
          CAIRN_CP_SERVICE_ROLE: serviceRole,
          CAIRN_LOG_LEVEL: 'warn',
        },
      });
    }
    const proc = spawn(process.execPath, [controlPlaneMain], {
      env: {
        PATH: process.env['PATH'] ?? '',
        CAIRN_CP_DATABASE_URL: serviceUrl,
        CAIRN_AUDIT_SIGNING_KEY: auditSigningKey,
        CAIRN_CP_HOST: '127.0.0.1',
        CAIRN_CP_HTTP_PORT: '0',
        CAIRN_CP_GRPC_PORT: '0',
        CAIRN_BOOTSTRAP_ADMIN_KEY: BOOTSTRAP_KEY,
        CAIRN_LOG_LEVEL: 'info',
        // Workers announcing unregistered versions are registered (pass 'false' to test the refusal).
        CAIRN_DEV_MODE: 'true',
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;
    proc.stderr.on('data', (b: Buffer) => lines.push(...b.toString('utf8').split('\n').filter(Boolean)));
    const reader = createInterface({ input: proc.stdout });
    const listening = new Promise<{ httpPort: number; grpcPort: number }>((resolve, reject) => {
      reader.on('line', (line) => {
        lines.push(line);
        try {
          const entry = JSON.parse(line) as { msg?: string; httpPort?: number; grpcPort?: number };
          if (entry.msg === 'control plane listening') resolve({ httpPort: entry.httpPort!, grpcPort: entry.grpcPort! });
        } catch {
          // not JSON
        }
      });
      proc.once('exit', (code) => reject(new Error(`control plane exited with ${code} during start-up:\n${lines.slice(-20).join('\n')}`)));
    });
    ports = await listening;
    for (;;) {
      const httpsCa = options.httpsCa;
      const status = httpsCa
        ? await new Promise<number | null>((resolve) => {
            httpsGet({ host: '127.0.0.1', port: ports.httpPort, path: '/readyz', ca: httpsCa }, (res) => {
              res.resume();
              resolve(res.statusCode ?? null);
            }).on('error', () => resolve(null));
          })
        : ((await fetch(`http://127.0.0.1:${ports.httpPort}/readyz`).catch(() => null))?.status ?? null);
      if (status === 200) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  const stop = async (): Promise<void> => {
    const proc = child;
    child = null;
    if (!proc || proc.exitCode !== null) return;
    const exited = new Promise((resolve) => proc.once('exit', resolve));
    proc.kill('SIGTERM');
    await exited;
  };

  await start();

  let openapi: Promise<OpenApiCheck> | undefined;
  const fixture: ControlPlaneFixture = {
    openapi() {
      openapi ??= fetch(`http://127.0.0.1:${ports.httpPort}/openapi.json`)
        .then((res) => res.json() as Promise<Record<string, unknown>>)
        .then((doc) => new OpenApiCheck(doc));
      return openapi;
    },
    databaseUrl,
    serviceUrl,
    serviceRole,
    auditSigningKey,
    get httpUrl() {
      return `${options.httpsCa ? 'https' : 'http'}://127.0.0.1:${ports.httpPort}`;
    },
    get grpcAddress() {
      return `127.0.0.1:${ports.grpcPort}`;
    },
    sql,
    lines,
    async logged(what: string, match: (line: string) => boolean): Promise<string> {
      const deadline = Date.now() + 10_000;
      for (let seen = 0; ;) {
        for (; seen < lines.length; seen++) if (match(lines[seen]!)) return lines[seen]!;
        if (Date.now() > deadline)
          throw new Error(`the control plane never logged ${what}; its last lines:\n${lines.slice(-10).join('\n')}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    },
    async api<T>(method: string, path: string, opts: { key?: string | null; body?: unknown } = {}): Promise<ApiAnswer<T>> {
      const key = opts.key === undefined ? BOOTSTRAP_KEY : opts.key;
      const headers: Record<string, string> = {};
      if (key !== null) headers['authorization'] = `Bearer ${key}`;
      if (opts.body !== undefined) headers['content-type'] = 'application/json';
      const response = await fetch(`http://127.0.0.1:${ports.httpPort}${path}`, {
        method,
        headers,
        ...(opts.body === undefined ? {} : { body: typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body) }),
      });
      const text = await response.text();
      const body = (text === '' ? {} : JSON.parse(text)) as T;
      if (path.startsWith('/v1/')) {
        (await fixture.openapi()).check(method, path, response.status, response.headers.get('content-type') ?? undefined, body);
      }
      return { status: response.status, body };
    },
    async key(role, o = {}) {
      const res = await fixture.api<{ secret: string }>('POST', `/v1/projects/${o.project ?? 'default'}/api-keys`, {
        body: {
          name: `${role}-key`,
          role,
          ...(o.organizationWide ? { organizationWide: true } : {}),
          ...(o.expiresAt ? { expiresAt: o.expiresAt } : {}),
        },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return res.body.secret;
    },
    async dataPlane(project = 'default', name = 'dp') {
      const res = await fixture.api<{ dataPlane: { id: string }; credential: string }>('POST', `/v1/projects/${project}/data-planes`, {
        body: { name },
      });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      return { id: res.body.dataPlane.id, credential: res.body.credential };
    },
    stop,
    restart: async () => {
      await stop();
      await start();
    },
    async close() {
      await stop();
      await sql.end();
      if (options.databaseUrl === undefined) {
        await server.admin(`DROP DATABASE IF EXISTS ${databaseName} WITH (FORCE)`).catch(() => undefined);
        if (serviceRole !== undefined) await server.admin(`DROP ROLE IF EXISTS ${serviceRole}`).catch(() => undefined);
        signingKeys.delete(database);
      }
    },
  };
  return fixture;
}
