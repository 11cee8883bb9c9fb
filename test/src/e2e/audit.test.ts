// The audit log's attacks end to end: the local stack's real processes (the control plane serving as
// its service role, a gateway, a worker running real runs) on embedded Postgres, the built `cairn`
// CLI as a customer runs it, and the database roles as they are deployed — the service role the
// control plane uses, and the schema owner (cairn_cp, not a superuser) an insider could abuse.
// Each attack is performed; the service role is refused, and what the owner does is detected by the
// CLI against a checkpoint kept outside the control plane, where the control plane's own
// verification is satisfied.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import {
  AUDIT_GENESIS_HASH,
  auditEntryHash,
  auditPublicKeyJwk,
  loadAuditSigningKey,
  signAuditCheckpoint,
  type AuditCheckpoint,
} from '@cairn/common';
import { startTestStack, type TestStack } from '../harness.js';

const cliMain = join(dirname(fileURLToPath(import.meta.url)), '../../../apps/cli/dist/main.js');

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}
interface VerifyJson {
  ok: boolean;
  entries: number;
  broken?: { position: number; reason: string; code: string; detail: string };
  checkpoints: Array<{ source: string; position: number; signature: string; keySource: string | null; detail?: string }>;
  server: { ok: boolean } | null;
}
interface EntryRow {
  id: string;
  position: string;
  organization_id: string;
  project_id: string;
  occurred_at: string;
  actor_type: string;
  actor_id: string | null;
  action: string;
  target_type: string;
  target_id: string;
  metadata: Record<string, unknown>;
}

describe('the audit log under attack, end to end', () => {
  let t: TestStack;
  let work: string;
  let env: Record<string, string>;
  let owner: pg.Pool;
  let service: pg.Pool;
  let publicKey: string;

  const cli = (args: string[], overrides: Record<string, string | undefined> = {}): Promise<Ran> =>
    new Promise((resolve, reject) => {
      const childEnv = Object.fromEntries(Object.entries({ ...env, ...overrides }).filter(([, v]) => v !== undefined)) as Record<
        string,
        string
      >;
      const child = spawn(process.execPath, [cliMain, ...args], { env: childEnv, cwd: work, stdio: 'pipe' });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
      child.stdin.end();
    });
  const verifyJson = async (args: string[], expectedCode: number): Promise<VerifyJson> => {
    const r = await cli(['audit', 'verify', ...args, '-o', 'json']);
    assert.equal(r.code, expectedCode, `cairn audit verify ${args.join(' ')} exited ${r.code}:\n${r.stderr}\n${r.stdout}`);
    return JSON.parse(r.stdout) as VerifyJson;
  };
  const cpApi = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
    const res = await fetch(`${t.stack.controlPlanes[0]!.httpUrl}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${t.stack.secrets.apiToken}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    assert.ok(res.status < 300, `${method} ${path} → ${res.status} ${text}`);
    return JSON.parse(text) as T;
  };
  const serverVerify = (project: string) =>
    cpApi<{ ok: boolean; entries: number; head: unknown; checkpoint: unknown }>('POST', `/v1/projects/${project}/audit/verify`);
  const project = async (name: string, keys: number): Promise<string> => {
    const { project: p } = await cpApi<{ project: { id: string } }>('POST', '/v1/projects', { name });
    for (let i = 0; i < keys; i++) await cpApi('POST', `/v1/projects/${name}/api-keys`, { name: `k${i}`, role: 'viewer' });
    return p.id;
  };
  /**
   * The owner covering their tracks: the audit triggers switched off (the owner may), `work` done,
   * the triggers back on, in one transaction that waits for the sealer to be idle.
   */
  const asOwner = async (work: (q: pg.PoolClient) => Promise<void>): Promise<void> => {
    const q = await owner.connect();
    try {
      await q.query('BEGIN');
      await q.query('SELECT pg_advisory_xact_lock($1, 1)', [0x63617564]);
      for (const table of ['audit_log', 'audit_chain_heads', 'audit_checkpoints'])
        await q.query(`ALTER TABLE ${table} DISABLE TRIGGER USER`);
      await work(q);
      for (const table of ['audit_log', 'audit_chain_heads', 'audit_checkpoints'])
        await q.query(`ALTER TABLE ${table} ENABLE TRIGGER USER`);
      await q.query('COMMIT');
    } catch (error) {
      await q.query('ROLLBACK');
      throw error;
    } finally {
      q.release();
    }
  };
  /** A competent forger: every hash from `from` on recomputed with the published algorithm, and the head moved to match. */
  const rehash = async (q: pg.PoolClient, projectId: string, from: number): Promise<{ position: number; hash: string }> => {
    const rows = await q.query<EntryRow & { hash: string }>(
      `SELECT id, position, organization_id, project_id, to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS occurred_at,
              actor_type, actor_id, action, target_type, target_id, metadata, hash
         FROM audit_log WHERE project_id = $1 AND position IS NOT NULL ORDER BY position`,
      [projectId],
    );
    let previous = AUDIT_GENESIS_HASH;
    for (const r of rows.rows) {
      const position = Number(r.position);
      if (position >= from) {
        previous = auditEntryHash(
          previous,
          {
            id: r.id,
            organizationId: r.organization_id,
            projectId: r.project_id,
            occurredAt: r.occurred_at,
            actorType: r.actor_type,
            actorId: r.actor_id,
            action: r.action,
            targetType: r.target_type,
            targetId: r.target_id,
            metadata: r.metadata,
          },
          position,
        );
        await q.query('UPDATE audit_log SET hash = $2 WHERE id = $1', [r.id, previous]);
      } else {
        previous = r.hash;
      }
    }
    const head = { position: Number(rows.rows[rows.rows.length - 1]!.position), hash: previous };
    await q.query('UPDATE audit_chain_heads SET position = $2, hash = $3 WHERE project_id = $1', [projectId, head.position, head.hash]);
    return head;
  };
  /** Rejects with a Postgres error of this SQLSTATE whose message matches. */
  const refused = async (promise: Promise<unknown>, message: RegExp): Promise<void> => {
    await assert.rejects(promise, (error: { code?: string; message: string }) => {
      assert.equal(error.code, '42501', error.message);
      assert.match(error.message, message);
      return true;
    });
  };

  before(async () => {
    t = await startTestStack({ name: 'audit' });
    work = mkdtempSync(join(tmpdir(), 'cairn-audit-'));
    env = {
      PATH: process.env['PATH'] ?? '',
      HOME: work,
      CAIRN_CONFIG_DIR: join(work, 'config'),
      NO_COLOR: '1',
      CAIRN_CONTROL_PLANE_URL: t.stack.controlPlanes[0]!.httpUrl,
      CAIRN_API_KEY: t.stack.secrets.apiToken,
      CAIRN_PROJECT: 'default',
    };
    owner = new pg.Pool({ connectionString: t.stack.cpDatabaseUrl, max: 2 });
    service = new pg.Pool({ connectionString: t.stack.cpServiceDatabaseUrl, max: 2 });
    owner.on('error', () => undefined);
    service.on('error', () => undefined);
  });

  after(async () => {
    await owner?.end();
    await service?.end();
    await t?.stop();
  });

  it('records real runs; a kept checkpoint verifies with the pinned key; the service role cannot delete, forge or truncate', async () => {
    for (let i = 0; i < 2; i++) {
      const runId = await t.start('five-steps', { step3Ms: 0 });
      assert.equal((await t.result(runId)).status, 'completed');
    }
    const keys = await cli(['audit', 'keys', '-o', 'json']);
    assert.equal(keys.code, 0, keys.stderr);
    const published = (JSON.parse(keys.stdout) as { keys: Array<{ kid: string; x: string; pem: string }> }).keys;
    assert.equal(published.length, 1);
    publicKey = published[0]!.x;
    writeFileSync(join(work, 'key.pem'), published[0]!.pem);

    const saved = await cli(['audit', 'checkpoint', '--out', 'kept.json']);
    assert.equal(saved.code, 0, saved.stderr);
    assert.match(saved.stdout, /✓ checkpoint signed: project [0-9a-f-]{36} at position \d+ \(\d+ entries\), head [0-9a-f]{64}/);
    assert.match(saved.stdout, new RegExp(`public key ${published[0]!.kid}: ${publicKey}`));
    const kept = JSON.parse(readFileSync(join(work, 'kept.json'), 'utf8')) as AuditCheckpoint & { publicKey: { x: string } };
    assert.equal(kept.publicKey.x, publicKey);
    assert.ok(kept.position >= 2 * 3, 'two runs, each queued, running and completed, plus the setup');
    const overwrite = await cli(['audit', 'checkpoint', '--out', 'kept.json']);
    assert.equal(overwrite.code, 2);
    assert.match(overwrite.stderr, /Cannot write kept.json: it exists/);

    for (const pin of [publicKey, 'key.pem']) {
      const intact = await verifyJson(['--checkpoint', 'kept.json', '--public-key', pin], 0);
      assert.equal(intact.ok, true);
      assert.deepEqual(
        intact.checkpoints.map((c) => [c.position, c.signature, c.keySource]),
        [[kept.position, 'valid', 'pinned']],
      );
    }
    const text = await cli(['audit', 'verify', '--checkpoint', 'kept.json', '--public-key', publicKey]);
    assert.match(text.stdout, /✓ audit chain intact: \d+ entries, head \d+ [0-9a-f]{64} \(every hash recomputed here\)/);
    assert.match(
      text.stdout,
      new RegExp(`✓ checkpoint kept.json: position ${kept.position}, signed at .* \\(key pinned\\), contained in the chain`),
    );

    // Offline: the chain saved beside the checkpoint verifies with no control plane at all, and
    // an edited or shortened copy does not.
    const exported = await cli(['audit', 'chain', '--out', 'chain.jsonl']);
    assert.equal(exported.code, 0, exported.stderr);
    const lines = readFileSync(join(work, 'chain.jsonl'), 'utf8').trim().split('\n');
    assert.ok(lines.length >= kept.position);
    const offline = { CAIRN_CONTROL_PLANE_URL: 'http://127.0.0.1:9', CAIRN_API_KEY: undefined };
    const offlineArgs = ['audit', 'verify', '--checkpoint', 'kept.json', '--public-key', 'key.pem', '-o', 'json'];
    const intactOffline = await cli([...offlineArgs, '--entries', 'chain.jsonl'], offline);
    assert.equal(intactOffline.code, 0, intactOffline.stderr);
    assert.deepEqual((JSON.parse(intactOffline.stdout) as VerifyJson).server, null);
    const edited = lines.map((l, i) => {
      if (i !== 1) return l;
      const entry = JSON.parse(l) as { metadata: Record<string, unknown> };
      return JSON.stringify({ ...entry, metadata: { ...entry.metadata, forged: true } });
    });
    writeFileSync(join(work, 'chain-edited.jsonl'), `${edited.join('\n')}\n`);
    const editedOffline = await cli([...offlineArgs, '--entries', 'chain-edited.jsonl'], offline);
    assert.equal(editedOffline.code, 1, editedOffline.stderr);
    assert.deepEqual((JSON.parse(editedOffline.stdout) as VerifyJson).broken!.reason, 'hash_mismatch');
    writeFileSync(join(work, 'chain-short.jsonl'), `${lines.slice(0, kept.position - 1).join('\n')}\n`);
    const shortOffline = await cli([...offlineArgs, '--entries', 'chain-short.jsonl'], offline);
    assert.equal(shortOffline.code, 1, shortOffline.stderr);
    assert.deepEqual((JSON.parse(shortOffline.stdout) as VerifyJson).broken!.reason, 'truncated');

    // The control plane's own role: each attack refused.
    const last = await service.query<{ id: string }>('SELECT id FROM audit_log WHERE position IS NOT NULL ORDER BY position DESC LIMIT 1');
    await refused(service.query('DELETE FROM audit_log WHERE id = $1', [last.rows[0]!.id]), /permission denied for table audit_log/);
    await refused(service.query('TRUNCATE audit_log'), /permission denied for table audit_log/);
    await refused(
      service.query(
        `INSERT INTO audit_log (organization_id, project_id, actor_type, action, target_type, target_id, metadata, position, hash)
         SELECT organization_id, id, 'system', 'api_key.created', 'api_key', 'forged', '{}', 999999, $1 FROM projects LIMIT 1`,
        ['f'.repeat(64)],
      ),
      /permission denied for table audit_log/,
    );
    await refused(service.query('ALTER TABLE audit_log DISABLE TRIGGER USER'), /must be owner of table audit_log/);
    assert.equal((await verifyJson(['--checkpoint', 'kept.json', '--public-key', publicKey], 0)).ok, true);
  });

  it('the owner deletes the newest entries, moves the head back and deletes the checkpoints: the control plane says ok, the kept checkpoint does not', async () => {
    const kept = JSON.parse(readFileSync(join(work, 'kept.json'), 'utf8')) as AuditCheckpoint;
    const runId = await t.start('five-steps', { step3Ms: 0 });
    assert.equal((await t.result(runId)).status, 'completed');
    await cpApi('POST', '/v1/projects/default/audit/checkpoints');
    const cutAt = kept.position - 3;
    await asOwner(async (q) => {
      await q.query('DELETE FROM audit_log WHERE project_id = $1 AND position > $2', [kept.projectId, cutAt]);
      const head = await q.query<{ hash: string }>('SELECT hash FROM audit_log WHERE project_id = $1 AND position = $2', [
        kept.projectId,
        cutAt,
      ]);
      await q.query('UPDATE audit_chain_heads SET position = $2, hash = $3 WHERE project_id = $1', [
        kept.projectId,
        cutAt,
        head.rows[0]!.hash,
      ]);
      await q.query('DELETE FROM audit_checkpoints WHERE project_id = $1', [kept.projectId]);
    });
    // Everything left in the control plane's database agrees with itself.
    const own = await serverVerify('default');
    assert.deepEqual([own.ok, own.entries, own.checkpoint], [true, cutAt, null]);

    const found = await verifyJson(['--checkpoint', 'kept.json', '--public-key', publicKey], 1);
    assert.deepEqual([found.ok, found.server?.ok, found.entries], [false, true, cutAt]);
    assert.deepEqual([found.broken!.reason, found.broken!.position, found.broken!.code], ['truncated', cutAt + 1, 'CAIRN-1153']);
    const text = await cli(['audit', 'verify', '--checkpoint', 'kept.json', '--public-key', publicKey]);
    assert.equal(text.code, 1);
    assert.match(
      text.stdout,
      new RegExp(
        `✗ audit chain broken at position ${cutAt + 1} \\(truncated\\) \\[CAIRN-1153\\]: the chain ends at position ${cutAt} but the checkpoint in kept.json`,
      ),
    );
    assert.match(text.stderr, /the control plane's own verification answered ok:true/);
  });

  it('the owner forges a sealed row: caught by its hash, and, with every later hash recomputed, by the kept checkpoint', async () => {
    const projectId = await project('ledger', 4);
    const pinned = ['--project', 'ledger', '--public-key', publicKey];
    const saved = await cli(['audit', 'checkpoint', '--project', 'ledger', '--out', 'ledger.json']);
    assert.equal(saved.code, 0, saved.stderr);
    const kept = JSON.parse(readFileSync(join(work, 'ledger.json'), 'utf8')) as AuditCheckpoint;
    await cpApi('POST', '/v1/projects/ledger/api-keys', { name: 'late', role: 'viewer' });

    // A viewer key becomes an admin key in the record.
    await asOwner(async (q) => {
      await q.query(`UPDATE audit_log SET metadata = jsonb_set(metadata, '{role}', '"admin"') WHERE project_id = $1 AND position = 3`, [
        projectId,
      ]);
    });
    const naive = await verifyJson(['--checkpoint', 'ledger.json', ...pinned], 1);
    assert.deepEqual([naive.broken!.reason, naive.broken!.position, naive.broken!.code], ['hash_mismatch', 3, 'CAIRN-1150']);

    let forgedHead = { position: 0, hash: '' };
    await asOwner(async (q) => {
      forgedHead = await rehash(q, projectId, 3);
      await q.query('DELETE FROM audit_checkpoints WHERE project_id = $1', [projectId]);
    });
    assert.equal((await serverVerify('ledger')).ok, true);
    const found = await verifyJson(['--checkpoint', 'ledger.json', ...pinned], 1);
    assert.deepEqual(
      [found.broken!.reason, found.broken!.position, found.broken!.code],
      ['checkpoint_mismatch', kept.position, 'CAIRN-1153'],
    );
    assert.match(found.broken!.detail, /the history up to that position was rewritten/);

    // The kept file edited to match the rewritten chain: its signature no longer verifies.
    writeFileSync(
      join(work, 'ledger-edited.json'),
      JSON.stringify({ ...kept, position: forgedHead.position, entries: forgedHead.position, hash: forgedHead.hash }),
    );
    const edited = await verifyJson(['--checkpoint', 'ledger-edited.json', ...pinned], 1);
    assert.deepEqual(
      edited.checkpoints.map((c) => [c.signature, c.keySource]),
      [['signature_mismatch', 'pinned']],
    );
    const editedText = await cli(['audit', 'verify', '--checkpoint', 'ledger-edited.json', ...pinned]);
    assert.match(
      editedText.stdout,
      /✗ checkpoint ledger-edited.json: signature not valid \[CAIRN-1152\]: the signature does not verify with key/,
    );

    // Re-signed with the attacker's own key, saved with that key: a pinned key refuses it...
    const attacker = loadAuditSigningKey(generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }).toString());
    const resigned = signAuditCheckpoint(
      {
        organizationId: kept.organizationId,
        projectId,
        position: forgedHead.position,
        hash: forgedHead.hash,
        entries: forgedHead.position,
        signedAt: kept.signedAt,
      },
      attacker,
    );
    writeFileSync(join(work, 'ledger-resigned.json'), JSON.stringify({ ...resigned, publicKey: auditPublicKeyJwk(attacker) }));
    const pinnedRefusal = await verifyJson(['--checkpoint', 'ledger-resigned.json', ...pinned], 1);
    assert.deepEqual(
      pinnedRefusal.checkpoints.map((c) => c.signature),
      ['unknown_key'],
    );
    // ...while the key saved in the file alone is trust on first use, and the CLI says it was not pinned.
    const unpinned = await cli(['audit', 'verify', '--project', 'ledger', '--checkpoint', 'ledger-resigned.json']);
    assert.match(unpinned.stderr, /the key was not pinned; pass --public-key/);
  });

  it('TRUNCATE: refused for the service role and, with its triggers on, the owner; done with them off, the kept checkpoint finds it', async () => {
    await project('archive', 3);
    const saved = await cli(['audit', 'checkpoint', '--project', 'archive', '--out', 'archive.json']);
    assert.equal(saved.code, 0, saved.stderr);
    const kept = JSON.parse(readFileSync(join(work, 'archive.json'), 'utf8')) as AuditCheckpoint;
    const pinned = ['--project', 'archive', '--checkpoint', 'archive.json', '--public-key', publicKey];

    await refused(service.query('TRUNCATE audit_log, audit_chain_heads, audit_checkpoints'), /permission denied/);
    await refused(owner.query('TRUNCATE audit_log'), /audit_log is append-only: it cannot be truncated/);
    await asOwner(async (q) => {
      await q.query('TRUNCATE audit_log, audit_chain_heads, audit_checkpoints');
    });
    assert.deepEqual(await serverVerify('archive'), { ok: true, entries: 0, head: null, checkpoint: null });
    const emptied = await verifyJson(pinned, 1);
    assert.deepEqual([emptied.broken!.reason, emptied.entries, emptied.broken!.code], ['truncated', 0, 'CAIRN-1153']);

    // New entries take the positions again; the chain still does not hold the kept head.
    for (let i = 0; i < 4; i++) await cpApi('POST', '/v1/projects/archive/api-keys', { name: `n${i}`, role: 'viewer' });
    const refilled = await verifyJson(pinned, 1);
    assert.deepEqual([refilled.broken!.reason, refilled.broken!.position], ['checkpoint_mismatch', kept.position]);
  });
});
