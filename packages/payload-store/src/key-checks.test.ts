// Key checks: a process whose encryption or HMAC key differs from the one the payload store was
// first used with is refused before it seals or digests anything.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { CairnError, newId } from '@cairn/common';
import { testPostgres, testPostgresKinds, uniqueDatabaseName, type PostgresServer } from '@cairn/local-postgres';
import { Hasher, KeyRing, PayloadStore } from './index.js';

const key = (): Buffer => randomBytes(32);
const ring = (...keys: Array<[string, Buffer]>): KeyRing => new KeyRing(keys.map(([id, k]) => ({ id, key: k })));

/** Asserts a CAIRN-3006 refusal whose message names what `names` lists and leaks none of `secrets`. */
function refused(names: RegExp[], secrets: Buffer[] = []) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CairnError, String(err));
    assert.equal(err.code, 'CAIRN-3006');
    for (const n of names) assert.match(err.message, n);
    assert.match(err.message, /Use the same keys as the gateway and the other workers/);
    for (const s of secrets) {
      assert.ok(!err.message.includes(s.toString('base64')), 'the key itself is in the message');
      assert.ok(!err.message.includes(s.toString('hex')), 'the key itself is in the message');
    }
    return true;
  };
}

for (const kind of testPostgresKinds()) {
  describe(`payload store key checks on ${kind} Postgres`, () => {
    let server: PostgresServer;
    const opened: PayloadStore[] = [];

    before(async () => {
      server = await testPostgres(kind);
    });
    after(async () => {
      await Promise.all(opened.map((s) => s.close()));
      await server.stop();
    });

    /** A fresh, migrated payload store database; `connect` opens stores on it with other keys. */
    async function freshStore(): Promise<{ url: string; connect: (keys: KeyRing) => PayloadStore }> {
      const url = await server.createDatabase(uniqueDatabaseName('kc'));
      const connect = (keys: KeyRing): PayloadStore => {
        const s = PayloadStore.connect({ connectionString: url, keys, poolMax: 2 });
        opened.push(s);
        return s;
      };
      await connect(ring(['k1', key()])).migrate();
      return { url, connect };
    }

    async function checks(url: string): Promise<Array<{ purpose: string; key_id: string; check_value: Buffer }>> {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      try {
        return (
          await c.query<{ purpose: string; key_id: string; check_value: Buffer }>(
            'SELECT purpose, key_id, check_value FROM dp_key_checks ORDER BY purpose, key_id',
          )
        ).rows;
      } finally {
        await c.end();
      }
    }

    it('records each key the first time, holding nothing secret, then matches it on every later start', async () => {
      const { url, connect } = await freshStore();
      const k1 = key();
      const k0 = key();
      const hmacKey = key();
      const first = await connect(ring(['k1', k1], ['k0', k0])).verifyKeys(new Hasher(hmacKey));
      assert.deepEqual(first, { recorded: ['k1', 'k0'], matched: [], hmac: 'recorded', absent: [] });

      const rows = await checks(url);
      assert.deepEqual(
        rows.map((r) => [r.purpose, r.key_id]),
        [
          ['encryption', 'k0'],
          ['encryption', 'k1'],
          ['hmac', ''],
        ],
      );
      for (const r of rows) {
        for (const secret of [k1, k0, hmacKey]) assert.equal(r.check_value.indexOf(secret), -1, 'a key is stored in its check');
      }

      const again = await connect(ring(['k1', k1], ['k0', k0])).verifyKeys(new Hasher(hmacKey));
      assert.deepEqual(again, { recorded: [], matched: ['k1', 'k0'], hmac: 'matched', absent: [] });
      assert.deepEqual(await checks(url), rows, 'a matching start changes nothing');
    });

    it('refuses an encryption key whose ID is known but whose key is not, naming the ID and nothing else', async () => {
      const { url, connect } = await freshStore();
      const hmacKey = key();
      await connect(ring(['k1', key()])).verifyKeys(new Hasher(hmacKey));
      const before = await checks(url);

      const wrong = key();
      // What `CAIRN_DP_ENCRYPTION_KEYS=k1:$(openssl rand -base64 32)` on a second machine gives
      // (with a new key k2 besides, which must not be recorded by a process that is refused).
      await assert.rejects(
        connect(ring(['k2', key()], ['k1', wrong])).verifyKeys(new Hasher(hmacKey)),
        refused(
          [
            /encryption key "k1" in CAIRN_DP_ENCRYPTION_KEYS does not match the payload store: data sealed with k1 cannot be opened with it/i,
            /cairn dev env prints them/,
          ],
          [wrong, hmacKey],
        ),
      );
      assert.deepEqual(await checks(url), before, 'a refused process records none of its keys');
    });

    it('refuses an HMAC key that differs from the recorded one', async () => {
      const { connect } = await freshStore();
      const k1 = key();
      await connect(ring(['k1', k1])).verifyKeys(new Hasher(key()));
      const wrong = key();
      await assert.rejects(
        connect(ring(['k1', k1])).verifyKeys(new Hasher(wrong)),
        refused([/HMAC key in CAIRN_DP_HMAC_KEY does not match the payload store/], [wrong]),
      );
      // Without a hasher (the gateway's migrate job) only the encryption keys are compared.
      const result = await connect(ring(['k1', k1])).verifyKeys();
      assert.equal(result.hmac, 'unchecked');
      assert.deepEqual(result.matched, ['k1']);
    });

    it('names every mismatched key in one error', async () => {
      const { connect } = await freshStore();
      await connect(ring(['k2', key()], ['k1', key()])).verifyKeys(new Hasher(key()));
      await assert.rejects(connect(ring(['k2', key()], ['k1', key()])).verifyKeys(new Hasher(key())), (err: unknown) => {
        refused([/"k2"/, /"k1"/, /CAIRN_DP_HMAC_KEY/])(err);
        assert.deepEqual((err as CairnError).details, { keyIds: ['k2', 'k1'], hmac: true });
        return true;
      });
    });

    it('lets exactly one of several processes racing to record different keys for the same ID win', async () => {
      for (let round = 0; round < 3; round++) {
        const { connect } = await freshStore();
        const contenders = Array.from({ length: 4 }, () => ({ k1: key(), hmac: key() }));
        const results = await Promise.allSettled(contenders.map((c) => connect(ring(['k1', c.k1])).verifyKeys(new Hasher(c.hmac))));
        const winners = results.flatMap((r, i) => (r.status === 'fulfilled' ? [i] : []));
        assert.equal(winners.length, 1, `round ${round}: ${results.map((r) => r.status).join(', ')}`);
        for (const r of results) if (r.status === 'rejected') refused([/"k1"/, /CAIRN_DP_HMAC_KEY/])(r.reason);
        // The winner's keys are the store's keys from now on.
        const winner = contenders[winners[0]!]!;
        const later = await connect(ring(['k1', winner.k1])).verifyKeys(new Hasher(winner.hmac));
        assert.deepEqual(later.matched, ['k1']);
        assert.equal(later.hmac, 'matched');
      }
    });

    it('agrees when racing processes record the same keys', async () => {
      const { connect } = await freshStore();
      const k1 = key();
      const hmacKey = key();
      const results = await Promise.all([0, 1, 2, 3].map(() => connect(ring(['k1', k1])).verifyKeys(new Hasher(hmacKey))));
      assert.equal(results.filter((r) => r.recorded.length === 1).length, 1);
      assert.equal(results.filter((r) => r.hmac === 'recorded').length, 1);
      assert.ok(results.every((r) => r.recorded.length + r.matched.length === 1));
    });

    it('records a rotated-in key, and tells a process which recorded key IDs it lacks', async () => {
      const { connect } = await freshStore();
      const k1 = key();
      const k2 = key();
      const hmacKey = key();
      await connect(ring(['k1', k1])).verifyKeys(new Hasher(hmacKey));
      // Rotation: the new key first, the old one kept to open what it sealed.
      const rotated = await connect(ring(['k2', k2], ['k1', k1])).verifyKeys(new Hasher(hmacKey));
      assert.deepEqual(rotated, { recorded: ['k2'], matched: ['k1'], hmac: 'matched', absent: [] });
      // A process not given the new key yet still starts, and learns what it cannot read.
      const stale = await connect(ring(['k1', k1])).verifyKeys(new Hasher(hmacKey));
      assert.deepEqual(stale.absent, ['k2']);
    });

    it('checks a key against existing data when a store written before key checks has none for it', async () => {
      const { url, connect } = await freshStore();
      const k1 = key();
      const old = connect(ring(['k1', k1]));
      const runId = newId();
      await old.createRun({ runId, workflowName: 'wf', input: { before: 'checks' } });
      // Such a store has runs sealed under k1 and no check for k1.
      assert.deepEqual(await checks(url), []);

      await assert.rejects(connect(ring(['k1', key()])).verifyKeys(), refused([/"k1"/]));
      assert.deepEqual(await checks(url), [], 'a key that opens none of the existing data is not recorded');

      assert.deepEqual((await connect(ring(['k1', k1])).verifyKeys()).recorded, ['k1']);
      assert.deepEqual((await old.getRun(runId))?.input, { before: 'checks' });
    });

    it('says to migrate first when the store has no key checks table', async () => {
      const url = await server.createDatabase(uniqueDatabaseName('kc_bare'));
      const bare = PayloadStore.connect({ connectionString: url, keys: ring(['k1', key()]) });
      opened.push(bare);
      await assert.rejects(bare.verifyKeys(), /CAIRN-1115.*apply its migrations first/);
    });

    it('tells data damaged in the database from a key that does not match', async () => {
      const { url, connect } = await freshStore();
      const k1 = key();
      const writer = connect(ring(['k1', k1]));
      const runId = newId();
      await writer.createRun({ runId, workflowName: 'wf', input: 'intact' });
      const verified = connect(ring(['k1', k1]));
      await verified.verifyKeys();
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      await c.query(`UPDATE dp_runs SET input = set_byte(input, 19, get_byte(input, 19) # 255) WHERE run_id = $1`, [runId]);
      await c.end();

      // Not verified: the failure may as well be a wrong key.
      await assert.rejects(writer.getRun(runId), (err: unknown) => {
        assert.ok(err instanceof CairnError);
        assert.equal(err.code, 'CAIRN-3002');
        assert.equal(err.details['keyVerified'], undefined);
        return true;
      });
      await assert.rejects(verified.getRun(runId), (err: unknown) => {
        assert.ok(err instanceof CairnError);
        assert.equal(err.code, 'CAIRN-3002');
        assert.equal(err.details['keyVerified'], true);
        assert.match(err.message, /although key k1 matches the payload store's key check: the stored value was altered/);
        return true;
      });
    });
  });
}

describe('key check values', () => {
  it('are bound to their key and key ID', () => {
    const a = ring(['k1', Buffer.alloc(32, 1)], ['k2', Buffer.alloc(32, 2)]);
    const b = ring(['k1', Buffer.alloc(32, 3)]);
    const check = a.sealKeyCheck('k1');
    assert.equal(a.opensKeyCheck('k1', check), true);
    assert.equal(b.opensKeyCheck('k1', check), false);
    assert.equal(a.opensKeyCheck('k2', check), false, 'a check moved to another key ID does not open');
    assert.equal(a.opensKeyCheck('k2', a.sealKeyCheck('k2')), true);
    assert.equal(b.opensKeyCheck('k9', check), false);
  });

  it('of the HMAC key are stable per key and unlike any digest of a value', () => {
    const h = new Hasher(Buffer.alloc(32, 1));
    assert.ok(h.keyCheck().equals(new Hasher(Buffer.alloc(32, 1)).keyCheck()));
    assert.ok(!h.keyCheck().equals(new Hasher(Buffer.alloc(32, 2)).keyCheck()));
    for (const value of ['', 'key check', 'cairn/payload-store/hmac-key-check/v1']) {
      assert.notEqual(h.digest(value), h.keyCheck().toString('hex'));
    }
  });
});
