// Retention for the audit log, attacked on real Postgres against a real control-plane process that
// serves as its service role: `control-plane audit prune` (run as the owner) deletes entries only up
// to a signed checkpoint and records it as the chain's anchor; the service role and API keys cannot
// prune; a checkpoint a customer kept before the prune still verifies with the real `cairn` CLI,
// which reports the prune; and rows deleted beyond the prune are found.
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { promisify } from 'node:util';
import pg from 'pg';
import type { AuditCheckpoint } from '@cairn/common';
import { testPostgres, testPostgresKinds, type PostgresServer } from '@cairn/local-postgres';
import { controlPlaneMain, startControlPlaneProcess, type ControlPlaneFixture } from './testing/fixture.js';

const execFileAsync = promisify(execFile);
const cliMain = join(dirname(fileURLToPath(import.meta.url)), '../../cli/dist/main.js');

interface ApiEntry {
  position: number;
  action: string;
  actor: { type: string };
  target: { type: string; id: string };
  metadata: Record<string, unknown>;
}
interface Anchor {
  position: number;
  hash: string;
  entries: number;
  pruned: number;
  prunedBefore: string;
  prunedAt: string;
  checkpoint: AuditCheckpoint;
}
interface ChainPage {
  entries: ApiEntry[];
  head: { position: number; hash: string } | null;
  anchor: Anchor | null;
}
type PruneLine =
  | { projectId: string; status: 'pruned'; pruned: number; position: number; hash: string; checkpointSignedAt: string }
  | { projectId: string; status: 'kept' | 'refused'; reason: string; code?: string };
interface VerifyJson {
  ok: boolean;
  entries: number;
  broken?: { position: number; reason: string; code: string; detail: string };
  checkpoints: Array<{ source: string; position: number; signature: string }>;
  pruned: { position: number; pruned: number; covered: number[]; checkpoint: { signature: string; keySource: string } } | null;
}

/** Rejects with a Postgres error of this SQLSTATE whose message matches. */
async function refused(promise: Promise<unknown>, sqlstate: string, message: RegExp): Promise<void> {
  await assert.rejects(promise, (error: { code?: string; message: string }) => {
    assert.equal(error.code, sqlstate, error.message);
    assert.match(error.message, message);
    return true;
  });
}

for (const kind of testPostgresKinds()) {
  describe(`audit log retention under attack on ${kind} Postgres`, () => {
    let server: PostgresServer;
    let cp: ControlPlaneFixture;
    let service: pg.Pool;
    let publicKey: string;
    let work: string;

    before(async () => {
      server = await testPostgres(kind);
      cp = await startControlPlaneProcess(server, { env: { CAIRN_DEV_MODE: 'true' } });
      service = new pg.Pool({ connectionString: cp.serviceUrl, max: 2 });
      service.on('error', () => undefined);
      const keys = (await (await fetch(`${cp.httpUrl}/.well-known/cairn-audit-keys`)).json()) as { keys: Array<{ x: string }> };
      publicKey = keys.keys[0]!.x;
      work = mkdtempSync(join(tmpdir(), 'cairn-audit-retention-'));
    });

    after(async () => {
      await service?.end();
      await cp?.close();
      await server?.stop();
    });

    const project = async (name: string, keys: number): Promise<string> => {
      const res = await cp.api<{ project: { id: string } }>('POST', '/v1/projects', { body: { name } });
      assert.equal(res.status, 201, JSON.stringify(res.body));
      await addKeys(name, keys);
      return res.body.project.id;
    };
    const addKeys = async (name: string, keys: number): Promise<void> => {
      for (let i = 0; i < keys; i++) await cp.key('viewer', { project: name });
    };
    const checkpoint = async (name: string): Promise<AuditCheckpoint> => {
      const res = await cp.api<{ checkpoint: AuditCheckpoint }>('POST', `/v1/projects/${name}/audit/checkpoints`);
      assert.ok(res.status === 201 || res.status === 200, JSON.stringify(res.body));
      return res.body.checkpoint;
    };
    const chain = async (name: string): Promise<ChainPage> => {
      const res = await cp.api<ChainPage>('GET', `/v1/projects/${name}/audit/chain`);
      assert.equal(res.status, 200, JSON.stringify(res.body));
      return res.body;
    };
    /** `control-plane audit prune` as an operator runs it; `url` is the role it connects as (default the owner). */
    const prune = async (
      args: string[],
      url = cp.databaseUrl,
      env: Record<string, string> = {},
    ): Promise<{ code: number; stdout: string; stderr: string }> =>
      execFileAsync(process.execPath, [controlPlaneMain, 'audit', 'prune', ...args], {
        env: { PATH: process.env['PATH'] ?? '', CAIRN_CP_DATABASE_URL: url, ...env },
      }).then(
        (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
        (e: unknown) => e as { code: number; stdout: string; stderr: string },
      );
    const pruned = (stdout: string, projectId: string): PruneLine | undefined =>
      stdout
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as PruneLine)
        .find((l) => l.projectId === projectId);
    /** The real `cairn audit verify`, as a customer runs it against checkpoint files it kept. */
    const verify = async (
      name: string,
      files: string[],
      json: boolean,
    ): Promise<{ code: number | null; stdout: string; stderr: string }> => {
      const key = await cp.key('auditor', { project: name });
      return new Promise((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [
            cliMain,
            'audit',
            'verify',
            ...files.flatMap((f) => ['--checkpoint', f]),
            '--public-key',
            publicKey,
            ...(json ? ['-o', 'json'] : []),
          ],
          {
            cwd: work,
            stdio: 'pipe',
            env: {
              PATH: process.env['PATH'] ?? '',
              HOME: work,
              CAIRN_CONFIG_DIR: join(work, 'config'),
              NO_COLOR: '1',
              CAIRN_CONTROL_PLANE_URL: cp.httpUrl,
              CAIRN_API_KEY: key,
              CAIRN_PROJECT: name,
            },
          },
        );
        let stdout = '';
        let stderr = '';
        child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
        child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
        child.on('error', reject);
        child.on('close', (code) => resolve({ code, stdout, stderr }));
        child.stdin.end();
      });
    };
    const keep = (file: string, c: AuditCheckpoint): string => {
      writeFileSync(join(work, file), JSON.stringify(c));
      return file;
    };

    test('the service role and API keys cannot prune; the prune function refuses a cut past the chain, at a forged checkpoint or over newer entries', async () => {
      const projectId = await project('guarded-retention', 3);
      const signed = await checkpoint('guarded-retention');
      const row = (
        await cp.sql.query<{ id: string }>('SELECT id FROM audit_checkpoints WHERE project_id = $1 ORDER BY id DESC LIMIT 1', [projectId])
      ).rows[0]!;

      // The service role: no EXECUTE on the prune function, no DELETE, no writing anchors.
      await refused(
        service.query('SELECT cairn_audit_prune($1, now())', [row.id]),
        '42501',
        /permission denied for function cairn_audit_prune/,
      );
      await refused(
        service.query('DELETE FROM audit_log WHERE project_id = $1', [projectId]),
        '42501',
        /permission denied for table audit_log/,
      );
      await refused(
        service.query(
          `INSERT INTO audit_prune_anchors (organization_id, project_id, checkpoint_id, position, hash, entries, pruned, pruned_before)
           SELECT organization_id, project_id, id, position, hash, entries, 0, now() FROM audit_checkpoints WHERE id = $1`,
          [row.id],
        ),
        '42501',
        /permission denied for table audit_prune_anchors/,
      );
      // The command run with the service role's URL: refused, saying what to do.
      const now = new Date().toISOString();
      const refusedRun = await prune(['--before', now, '--public-key', publicKey], cp.serviceUrl);
      assert.equal(refusedRun.code, 1);
      assert.match(
        refusedRun.stderr,
        /\[CAIRN-1156\] this database role may not prune the audit log: run `control-plane audit prune` as the schema owner \(CAIRN_CP_MIGRATION_DATABASE_URL\)/,
      );
      assert.equal((await chain('guarded-retention')).anchor, null);
      // Without the key that signs checkpoints, or with a bad cut-off, the command refuses before touching anything.
      const noKey = await prune(['--before', now]);
      assert.equal(noKey.code, 1);
      assert.match(noKey.stderr, /\[CAIRN-1156\] audit prune needs the public key that signs the checkpoints \(--public-key/);
      const both = await prune(['--before', now, '--keep-days', '3', '--public-key', publicKey]);
      assert.equal(both.code, 1);
      assert.match(both.stderr, /audit prune needs exactly one of --before DATE \(e\.g\. 2026-01-01\) or --keep-days N/);
      const badDays = await prune([], cp.databaseUrl, { CAIRN_CP_AUDIT_RETENTION_DAYS: '0', CAIRN_AUDIT_PUBLIC_KEY: publicKey });
      assert.equal(badDays.code, 1);
      assert.match(badDays.stderr, /CAIRN_CP_AUDIT_RETENTION_DAYS: expected a whole number of days from 1 to 999999/);
      const badKey = await prune([], cp.databaseUrl, { CAIRN_CP_AUDIT_RETENTION_DAYS: '30', CAIRN_AUDIT_PUBLIC_KEY: 'not a key' });
      assert.equal(badKey.code, 1);
      assert.match(badKey.stderr, /\[CAIRN-1001\] .*\n {2}CAIRN_AUDIT_PUBLIC_KEY: not an audit public key: give the key's base64url value/);
      // The scheduled form (a CronJob): the settings from the environment; nothing here is 30 days old.
      const scheduled = await prune([], cp.databaseUrl, { CAIRN_CP_AUDIT_RETENTION_DAYS: '30', CAIRN_AUDIT_PUBLIC_KEY: publicKey });
      assert.deepEqual([scheduled.code, scheduled.stdout, scheduled.stderr], [0, '', '']);
      const future = await prune(['--before', '2999-01-01', '--public-key', publicKey]);
      assert.equal(future.code, 1);
      assert.match(future.stderr, /--before must be a date or time in ISO 8601 that is not in the future/);
      assert.equal((await chain('guarded-retention')).anchor, null);

      // No API key can prune: there is no such route, whatever the role.
      const admin = await cp.key('admin', { project: 'guarded-retention' });
      for (const [method, path] of [
        ['POST', '/v1/projects/guarded-retention/audit/prune'],
        ['DELETE', '/v1/projects/guarded-retention/audit'],
        ['DELETE', '/v1/projects/guarded-retention/audit/chain'],
      ] as const) {
        assert.equal((await cp.api(method, path, { key: admin })).status, 404, `${method} ${path}`);
      }

      // The function itself, as the owner: a cut over entries newer than the cut-off, and a forged
      // checkpoint whose hash is not the chain's, are refused.
      await refused(
        cp.sql.query(`SELECT cairn_audit_prune($1, now() - interval '1 day')`, [row.id]),
        '22023',
        /entries up to position 4 are not all older than/,
      );
      const forged = await service.query<{ id: string }>(
        `INSERT INTO audit_checkpoints (organization_id, project_id, position, hash, entries, signed_at, key_id, signature)
         SELECT organization_id, id, 3, $2, 3, now(), $3, $4 FROM projects WHERE id = $1 RETURNING id`,
        [projectId, 'e'.repeat(64), signed.keyId, 'A'.repeat(86)],
      );
      await refused(
        cp.sql.query('SELECT cairn_audit_prune($1, now())', [forged.rows[0]!.id]),
        '22023',
        /the entry at position 3 does not carry the checkpoint's hash: it is not a checkpoint of this chain/,
      );

      // The service role forges a checkpoint of the real head further ahead (it may insert
      // checkpoints), hoping the operator's prune reaches past what was really signed: its signature
      // does not verify, so the prune stops at the last signed checkpoint.
      await addKeys('guarded-retention', 2); // 5–6 (after the admin key's entry)
      await cp.api('POST', '/v1/projects/guarded-retention/audit/verify'); // seals them
      const head = (await chain('guarded-retention')).head!;
      assert.ok(head.position > 4);
      await service.query(
        `INSERT INTO audit_checkpoints (organization_id, project_id, position, hash, entries, signed_at, key_id, signature)
         SELECT organization_id, id, $2, $3, $2, now(), $4, $5 FROM projects WHERE id = $1`,
        [projectId, head.position, head.hash, signed.keyId, 'A'.repeat(86)],
      );
      const ran = await prune(['--before', new Date().toISOString(), '--public-key', publicKey]);
      assert.equal(ran.code, 0, ran.stderr);
      assert.deepEqual(pruned(ran.stdout, projectId), {
        projectId,
        status: 'pruned',
        pruned: 4,
        position: 4,
        hash: signed.hash,
        checkpointSignedAt: signed.signedAt,
      });
      assert.deepEqual(
        (await chain('guarded-retention')).entries.slice(0, 2).map((e) => e.position),
        [5, 6],
      );
      // One prune at a time: a second one while the first holds the pruner lock is refused, not run twice.
      const holder = await cp.sql.connect();
      try {
        await holder.query('SELECT pg_advisory_lock($1, 3)', [0x63617564]);
        const second = await prune(['--before', new Date().toISOString(), '--public-key', publicKey]);
        assert.equal(second.code, 1);
        assert.match(second.stderr, /\[CAIRN-1156\] another audit prune is running: wait for it to finish, then run this again/);
      } finally {
        await holder.query('SELECT pg_advisory_unlock($1, 3)', [0x63617564]);
        holder.release();
      }
      // Pruning again at the same checkpoint: refused.
      await refused(
        cp.sql.query('SELECT cairn_audit_prune($1, now())', [row.id]),
        '22023',
        /the chain is already pruned up to position 4, the checkpoint at position 4 is not past it/,
      );
    });

    test('a prune stops at the newest signed checkpoint, records it as the anchor and an audit entry; a checkpoint kept before it still verifies and reports the prune', async () => {
      const projectId = await project('retained', 3); // positions 1–4
      const older = keep('retained-older.json', await checkpoint('retained'));
      await addKeys('retained', 2); // 5–6 (after the admin key's entry)
      const atCut = await checkpoint('retained');
      const newer = keep('retained-cut.json', atCut);
      assert.equal(atCut.position, 6);
      await addKeys('retained', 2); // 7–8, newer than every signed checkpoint
      await cp.api('POST', '/v1/projects/retained/audit/verify'); // seals them, signs nothing
      await addKeys('retained', 1); // 9, after the cut-off below
      await checkpoint('retained'); // seals 9; a checkpoint past the cut-off
      const cutoff = (
        await cp.sql.query<{ t: string }>(
          `SELECT to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS t FROM audit_log WHERE project_id = $1 AND position = 9`,
          [projectId],
        )
      ).rows[0]!.t;

      const ran = await prune(['--before', cutoff, '--public-key', publicKey]);
      assert.equal(ran.code, 0, ran.stderr);
      assert.deepEqual(pruned(ran.stdout, projectId), {
        projectId,
        status: 'pruned',
        pruned: 6,
        position: 6,
        hash: atCut.hash,
        checkpointSignedAt: atCut.signedAt,
      });
      // Nothing past the signed checkpoint at the cut is gone, though 7 and 8 are older than the cut-off.
      const left = await cp.sql.query<{ position: string }>(
        'SELECT position FROM audit_log WHERE project_id = $1 AND position IS NOT NULL ORDER BY position LIMIT 3',
        [projectId],
      );
      assert.deepEqual(
        left.rows.map((r) => Number(r.position)),
        [7, 8, 9],
      );
      // The control plane's own verification (which seals the prune's entry) starts from the anchor.
      const own = await cp.api<{ ok: boolean }>('POST', '/v1/projects/retained/audit/verify');
      assert.equal(own.body.ok, true, JSON.stringify(own.body));
      const page = await chain('retained');
      assert.deepEqual([page.anchor?.position, page.anchor?.hash, page.anchor?.pruned, page.anchor?.checkpoint], [6, atCut.hash, 6, atCut]);
      // The prune is itself in the log: counts and the boundary, no contents.
      const entry = page.entries.find((e) => e.action === 'audit.pruned');
      assert.ok(entry, 'the prune left an audit entry');
      assert.deepEqual(
        [entry.actor.type, entry.target, entry.metadata],
        [
          'system',
          { type: 'project', id: projectId },
          {
            entries: 6,
            position: 6,
            hash: atCut.hash,
            checkpointSignedAt: atCut.signedAt,
            before: new Date(cutoff).toISOString(),
            command: 'audit prune',
          },
        ],
      );
      // So does signing.
      const after = keep('retained-after.json', await checkpoint('retained'));

      // A customer's checkpoints kept before the prune: the real CLI verifies and reports the prune.
      const json = await verify('retained', [older, newer, after], true);
      assert.equal(json.code, 0, json.stdout + json.stderr);
      const report = JSON.parse(json.stdout) as VerifyJson;
      assert.equal(report.ok, true);
      assert.deepEqual(
        [
          report.pruned?.position,
          report.pruned?.pruned,
          report.pruned?.covered,
          report.pruned?.checkpoint.signature,
          report.pruned?.checkpoint.keySource,
        ],
        [6, 6, [4, 6], 'valid', 'pinned'],
      );
      const text = await verify('retained', [older, newer], false);
      assert.equal(text.code, 0, text.stdout + text.stderr);
      assert.match(text.stdout, /✓ audit chain intact/);
      assert.match(
        text.stdout,
        /✓ pruned under the retention policy: positions 1 to 6 \(the newest prune deleted 6 entries older than .*\); the chain starts from the checkpoint signed at .* at position 6 \(key pinned\)/,
      );
      assert.match(
        text.stdout,
        /✓ checkpoint retained-older\.json: position 4, .*pruned under the retention policy \(at or before the anchor at position 6\)/,
      );

      // With the triggers on, the owner cannot delete past the anchor, not even claiming to prune.
      await refused(
        cp.sql.query('DELETE FROM audit_log WHERE project_id = $1 AND position = 7', [projectId]),
        '42501',
        /the audit log is append-only/,
      );
      const client = await cp.sql.connect();
      try {
        await client.query('BEGIN');
        await client.query(`SELECT set_config('cairn.audit_pruning', $1, true)`, [projectId]);
        await refused(client.query('DELETE FROM audit_log WHERE project_id = $1 AND position = 7', [projectId]), '42501', /append-only/);
      } finally {
        await client.query('ROLLBACK');
        client.release();
      }
      await refused(
        cp.sql.query('DELETE FROM audit_prune_anchors WHERE project_id = $1', [projectId]),
        '42501',
        /anchors cannot be changed or deleted/,
      );

      // Rows deleted beyond the prune (the owner with the triggers off): the kept checkpoint finds them.
      const owner = await cp.sql.connect();
      try {
        await owner.query('BEGIN');
        await owner.query('SET LOCAL session_replication_role = replica');
        await owner.query('DELETE FROM audit_log WHERE project_id = $1 AND position <= 8', [projectId]);
        await owner.query('COMMIT');
      } finally {
        owner.release();
      }
      const caught = await verify('retained', [older, newer, after], true);
      assert.equal(caught.code, 1);
      const broken = JSON.parse(caught.stdout) as VerifyJson;
      assert.deepEqual([broken.ok, broken.broken?.reason, broken.broken?.position], [false, 'missing_entry', 7]);
      // Deleting the anchor too, so the chain seems never pruned: it then starts past position 1.
      const again = await cp.sql.connect();
      try {
        await again.query('BEGIN');
        await again.query('SET LOCAL session_replication_role = replica');
        await again.query('DELETE FROM audit_prune_anchors WHERE project_id = $1', [projectId]);
        await again.query('COMMIT');
      } finally {
        again.release();
      }
      const noAnchor = JSON.parse((await verify('retained', [older, newer, after], true)).stdout) as VerifyJson;
      assert.deepEqual([noAnchor.ok, noAnchor.broken?.reason, noAnchor.broken?.position], [false, 'missing_entry', 1]);
    });
  });
}
