import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { PgListener } from './index.js';

const pause = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Polls until `check` holds (no time limit of its own: the test's timeout bounds it). */
async function until(check: () => boolean | Promise<boolean>): Promise<void> {
  while (!(await check())) await pause(20);
}

interface LogLine {
  level: string;
  msg: string;
  err?: { message: string };
  downtimeMs?: number;
  attempts?: number;
  channels?: string[];
}

for (const kind of testPostgresKinds()) {
  describe(`the shared LISTEN connection on ${kind} Postgres`, { timeout: 120_000 }, () => {
    let server: PostgresServer;
    let database: string;
    let url: string;
    let raw: pg.Client;

    before(async () => {
      server = await testPostgres(kind);
      database = uniqueDatabaseName('listen');
      url = await server.createDatabase(database);
      raw = new pg.Client({ connectionString: url });
      await raw.connect();
    });
    after(async () => {
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`).catch(() => undefined);
      await raw.end();
      await server.stop();
    });

    /** Ends the listener's backend, as a failover, a restart or an idle-timeout proxy would. */
    const terminate = async (applicationName: string): Promise<number> => {
      const r = await server.admin('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1', [
        applicationName,
      ]);
      return (r.rows[0] as { n: number }).n;
    };
    const backends = async (applicationName: string): Promise<number> => {
      const r = await raw.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [
        applicationName,
      ]);
      return r.rows[0]!.n;
    };

    it('uses one connection for every channel, and stops it with the last subscriber', async () => {
      const listener = new PgListener({ connectionString: url, applicationName: 'listen-one' });
      const heard: string[] = [];
      const stops = await Promise.all(
        ['chan_a', 'chan_b', 'chan_c'].map((c) => listener.subscribe(c, { notification: (p) => heard.push(`${c}:${p}`) })),
      );
      assert.equal(await backends('listen-one'), 1);
      await raw.query("SELECT pg_notify('chan_a', 'x'), pg_notify('chan_c', 'y')");
      await until(() => heard.length === 2);
      assert.deepEqual(heard.sort(), ['chan_a:x', 'chan_c:y']);
      for (const stop of stops) await stop();
      assert.equal(listener.state.connected, false);
      await until(async () => (await backends('listen-one')) === 0);
      await listener.close();
    });

    it('comes back after a long outage, LISTENs on every channel again and tells every subscriber of the gap', async () => {
      const lines: LogLine[] = [];
      const logger = pino(
        { level: 'debug', formatters: { level: (label) => ({ level: label }) } },
        { write: (line: string) => lines.push(JSON.parse(line) as LogLine) },
      );
      const listener = new PgListener({
        connectionString: url,
        applicationName: 'listen-outage',
        logger,
        initialDelayMs: 20,
        maxDelayMs: 200,
      });
      const events: string[] = [];
      const stopA = await listener.subscribe('chan_a', { notification: (p) => events.push(`a:${p}`), gap: () => events.push('a:gap') });
      const stopB = await listener.subscribe('chan_b', { notification: (p) => events.push(`b:${p}`), gap: () => events.push('b:gap') });
      await raw.query("SELECT pg_notify('chan_a', 'before')");
      await until(() => events.includes('a:before'));
      assert.deepEqual(listener.state, { connected: true, reconnects: 0, failedAttempts: 0 });

      // The database refuses new connections and the listener's backend is ended: every attempt
      // to reconnect fails until connections are allowed again.
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
      assert.equal(await terminate('listen-outage'), 1);
      await until(() => !listener.state.connected);
      // Sent while nobody listens: not heard, which is what the gap is for.
      await raw.query("SELECT pg_notify('chan_a', 'during'), pg_notify('chan_b', 'during')");
      await until(() => listener.state.failedAttempts >= 4);
      assert.equal(listener.state.reconnects, 0);
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);

      await until(() => events.includes('a:gap') && events.includes('b:gap'));
      assert.deepEqual(listener.state.connected, true);
      assert.equal(listener.state.reconnects, 1);
      // Both channels are LISTENed on again.
      await raw.query("SELECT pg_notify('chan_a', 'after'), pg_notify('chan_b', 'after')");
      await until(() => events.includes('a:after') && events.includes('b:after'));
      assert.deepEqual(
        events.filter((e) => e.startsWith('a:')),
        ['a:before', 'a:gap', 'a:after'],
      );
      assert.deepEqual(
        events.filter((e) => e.startsWith('b:')),
        ['b:gap', 'b:after'],
      );

      const lost = lines.find((l) => l.msg.startsWith('payload store LISTEN connection lost'));
      assert.equal(lost?.level, 'warn');
      assert.match(lost?.err?.message ?? '', /terminat/);
      assert.deepEqual(lost?.channels?.sort(), ['chan_a', 'chan_b']);
      assert.ok(lines.filter((l) => l.msg.startsWith('payload store LISTEN reconnect failed')).length >= 4);
      const back = lines.find((l) => l.msg === 'payload store LISTEN connection is back');
      assert.equal(back?.level, 'info');
      assert.equal(typeof back?.downtimeMs, 'number');
      assert.ok((back?.attempts ?? 0) >= 5, 'the attempt that worked came after the failed ones');
      assert.ok(lost && back && lines.indexOf(lost) < lines.indexOf(back), 'the loss is logged before the recovery');

      await stopA();
      await stopB();
      await listener.close();
    });

    it('lets a subscriber join during an outage and tells it of the gap when the connection is back', async () => {
      const listener = new PgListener({ connectionString: url, applicationName: 'listen-join', initialDelayMs: 20, maxDelayMs: 200 });
      const events: string[] = [];
      const stopA = await listener.subscribe('chan_a', { notification: (p) => events.push(`a:${p}`) });
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS false`);
      assert.equal(await terminate('listen-join'), 1);
      await until(() => !listener.state.connected && listener.state.failedAttempts >= 1);
      // Resolves at once, without a connection: the gap tells it when to look.
      const stopD = await listener.subscribe('chan_d', { notification: (p) => events.push(`d:${p}`), gap: () => events.push('d:gap') });
      await server.admin(`ALTER DATABASE ${database} ALLOW_CONNECTIONS true`);
      await until(() => events.includes('d:gap'));
      await raw.query("SELECT pg_notify('chan_d', 'new')");
      await until(() => events.includes('d:new'));
      assert.deepEqual(events, ['d:gap', 'd:new']);
      await stopA();
      await stopD();
      await listener.close();
    });
  });
}
