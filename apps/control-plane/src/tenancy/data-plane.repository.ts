import { Inject, Injectable } from '@nestjs/common';
import { Database } from '../db/database.js';

export interface DataPlaneRecord {
  readonly id: string;
  readonly projectId: string;
  readonly name: string;
  readonly createdAt: Date;
  readonly revokedAt: Date | null;
}

interface DataPlaneRow {
  id: string;
  project_id: string;
  name: string;
  created_at: Date;
  revoked_at: Date | null;
}

/** A stored data plane with the SHA-256 of its credential (never shown outside the control plane). */
export interface StoredDataPlane extends DataPlaneRecord {
  readonly tokenSha256: string;
}

const COLUMNS = 'id, project_id, name, created_at, revoked_at';
const toRecord = (row: DataPlaneRow): DataPlaneRecord => ({
  id: row.id,
  projectId: row.project_id,
  name: row.name,
  createdAt: row.created_at,
  revokedAt: row.revoked_at,
});

/** All SQL about registered data planes and their credentials (stored as SHA-256 only). */
@Injectable()
export class DataPlaneRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /**
   * Creates the data plane in a project, or for an existing ID in the same project sets its name
   * and credential and un-revokes it — writing nothing when all three are already so. Answers what
   * it was before (null when created), `other_project` when the ID belongs to another project, or
   * `revoked_credential` when the data plane is revoked and this is the credential it was revoked
   * with (a revoked secret is never made valid again).
   */
  async save(
    id: string,
    projectId: string,
    name: string,
    tokenSha256: string,
  ): Promise<{ record: DataPlaneRecord; before: StoredDataPlane | null } | 'other_project' | 'revoked_credential'> {
    return this.db.transaction(async (tx) => {
      const found = await tx.query<DataPlaneRow & { token_sha256: string }>(
        `SELECT ${COLUMNS}, token_sha256 FROM data_planes WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const row = found.rows[0];
      if (!row) {
        const inserted = await tx.query<DataPlaneRow>(
          `INSERT INTO data_planes (id, project_id, name, token_sha256) VALUES ($1, $2, $3, $4) RETURNING ${COLUMNS}`,
          [id, projectId, name, tokenSha256],
        );
        return { record: toRecord(inserted.rows[0]!), before: null };
      }
      if (row.project_id !== projectId) return 'other_project';
      if (row.revoked_at !== null && row.token_sha256 === tokenSha256) return 'revoked_credential';
      const before = { ...toRecord(row), tokenSha256: row.token_sha256 };
      if (row.name === name && row.token_sha256 === tokenSha256 && row.revoked_at === null) return { record: toRecord(row), before };
      const updated = await tx.query<DataPlaneRow>(
        `UPDATE data_planes SET name = $2, token_sha256 = $3, revoked_at = NULL, updated_at = now() WHERE id = $1 RETURNING ${COLUMNS}`,
        [id, name, tokenSha256],
      );
      return { record: toRecord(updated.rows[0]!), before };
    });
  }

  /** Gives an active data plane of the project a new credential; null when it is missing or revoked. */
  async rotate(projectId: string, id: string, tokenSha256: string): Promise<DataPlaneRecord | null> {
    const result = await this.db.query<DataPlaneRow>(
      `UPDATE data_planes SET token_sha256 = $3, updated_at = now()
       WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL
       RETURNING ${COLUMNS}`,
      [projectId, id, tokenSha256],
    );
    const row = result.rows[0];
    return row ? toRecord(row) : null;
  }

  /**
   * Whether this credential (by SHA-256) is still the data plane's and not revoked: asked before a
   * stream's request is handled, so a request that arrives after a rotation committed is refused on
   * every replica whether or not its notification has arrived.
   */
  async isCurrent(id: string, tokenSha256: string): Promise<boolean> {
    const result = await this.db.prepared(
      'cp_dp_credential_current',
      'SELECT 1 FROM data_planes WHERE id = $1 AND token_sha256 = $2 AND revoked_at IS NULL',
      [id, tokenSha256],
    );
    return (result.rowCount ?? 0) > 0;
  }

  /** The current credential digest of each of these data planes that is active (revoked ones are absent). */
  async currentCredentials(ids: readonly string[]): Promise<Map<string, string>> {
    if (ids.length === 0) return new Map();
    const result = await this.db.query<{ id: string; token_sha256: string }>(
      'SELECT id, token_sha256 FROM data_planes WHERE id = ANY($1::uuid[]) AND revoked_at IS NULL',
      [ids],
    );
    return new Map(result.rows.map((r) => [r.id, r.token_sha256]));
  }

  /** The active (not revoked) data plane holding a credential, by the credential's SHA-256. */
  async findActiveByTokenSha256(tokenSha256: string): Promise<DataPlaneRecord | null> {
    const result = await this.db.query<DataPlaneRow>(`SELECT ${COLUMNS} FROM data_planes WHERE token_sha256 = $1 AND revoked_at IS NULL`, [
      tokenSha256,
    ]);
    const row = result.rows[0];
    return row ? toRecord(row) : null;
  }

  async find(projectId: string, id: string): Promise<DataPlaneRecord | null> {
    const result = await this.db.query<DataPlaneRow>(`SELECT ${COLUMNS} FROM data_planes WHERE project_id = $1 AND id = $2`, [
      projectId,
      id,
    ]);
    const row = result.rows[0];
    return row ? toRecord(row) : null;
  }

  async list(projectId: string): Promise<DataPlaneRecord[]> {
    const result = await this.db.query<DataPlaneRow>(
      `SELECT ${COLUMNS} FROM data_planes WHERE project_id = $1 ORDER BY created_at DESC, id DESC`,
      [projectId],
    );
    return result.rows.map(toRecord);
  }

  async revoke(projectId: string, id: string): Promise<boolean> {
    const result = await this.db.query(
      'UPDATE data_planes SET revoked_at = now(), updated_at = now() WHERE project_id = $1 AND id = $2 AND revoked_at IS NULL',
      [projectId, id],
    );
    return (result.rowCount ?? 0) > 0;
  }

  // ---- workers ---------------------------------------------------------------------------------

  /** A worker's stream was welcomed on this replica (replaces what an earlier stream of it recorded). */
  async workerConnected(worker: NewWorkerRecord): Promise<void> {
    await this.db.query(
      `INSERT INTO data_plane_workers (data_plane_id, worker_id, session_id, sdk_version, protocol_version, slots, workflows,
                                       workflow_versions, connected_at, last_seen_at, disconnected_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), now(), NULL)
       ON CONFLICT (data_plane_id, worker_id) DO UPDATE SET session_id = EXCLUDED.session_id, sdk_version = EXCLUDED.sdk_version,
         protocol_version = EXCLUDED.protocol_version, slots = EXCLUDED.slots, workflows = EXCLUDED.workflows,
         workflow_versions = EXCLUDED.workflow_versions, connected_at = now(), last_seen_at = now(), disconnected_at = NULL`,
      [
        worker.dataPlaneId,
        worker.workerId,
        worker.sessionId,
        worker.sdkVersion,
        worker.protocolVersion,
        worker.slots,
        worker.workflowVersions.length,
        worker.workflowVersions,
      ],
    );
    // Workers not seen for a week are forgotten.
    await this.db.query(`DELETE FROM data_plane_workers WHERE data_plane_id = $1 AND last_seen_at < now() - interval '7 days'`, [
      worker.dataPlaneId,
    ]);
  }

  /** The worker's stream is still open: refreshes its last-seen time (only while this stream is its latest). */
  async workerSeen(dataPlaneId: string, workerId: string, sessionId: string): Promise<void> {
    await this.db.query(
      'UPDATE data_plane_workers SET last_seen_at = now() WHERE data_plane_id = $1 AND worker_id = $2 AND session_id = $3',
      [dataPlaneId, workerId, sessionId],
    );
  }

  /** The worker's stream ended (unless a newer stream of the same worker replaced it meanwhile). */
  async workerDisconnected(dataPlaneId: string, workerId: string, sessionId: string): Promise<void> {
    await this.db.query(
      `UPDATE data_plane_workers SET last_seen_at = now(), disconnected_at = now()
       WHERE data_plane_id = $1 AND worker_id = $2 AND session_id = $3 AND disconnected_at IS NULL`,
      [dataPlaneId, workerId, sessionId],
    );
  }

  /** The workflow versions the data plane's workers announced, the most recently seen first. */
  async announcedVersions(dataPlaneId: string): Promise<AnnouncedVersion[]> {
    const result = await this.db.query<{ name: string; version: string; task_queue: string; first_seen_at: Date; last_seen_at: Date }>(
      `SELECT name, version, task_queue, first_seen_at, last_seen_at FROM workflow_versions
       WHERE data_plane_id = $1 ORDER BY last_seen_at DESC, name, version LIMIT 500`,
      [dataPlaneId],
    );
    return result.rows.map((r) => ({
      name: r.name,
      version: r.version,
      taskQueue: r.task_queue,
      firstSeenAt: r.first_seen_at,
      lastSeenAt: r.last_seen_at,
    }));
  }

  /** The workers a data plane connected in the last week, the most recently seen first. */
  async workers(dataPlaneId: string): Promise<WorkerRecord[]> {
    const result = await this.db.query<{
      worker_id: string;
      sdk_version: string;
      protocol_version: number;
      slots: number;
      workflows: number;
      connected_at: Date;
      last_seen_at: Date;
      disconnected_at: Date | null;
      connected: boolean;
    }>(
      `SELECT worker_id, sdk_version, protocol_version, slots, workflows, connected_at, last_seen_at, disconnected_at,
              disconnected_at IS NULL AND last_seen_at >= now() - make_interval(secs => $2) AS connected
       FROM data_plane_workers WHERE data_plane_id = $1 AND last_seen_at >= now() - interval '7 days'
       ORDER BY last_seen_at DESC, worker_id LIMIT 500`,
      [dataPlaneId, WORKER_STALE_AFTER_MS / 1000],
    );
    return result.rows.map((r) => ({
      connected: r.connected,
      workerId: r.worker_id,
      sdkVersion: r.sdk_version,
      protocolVersion: r.protocol_version,
      slots: r.slots,
      workflows: r.workflows,
      connectedAt: r.connected_at,
      lastSeenAt: r.last_seen_at,
      disconnectedAt: r.disconnected_at,
    }));
  }
}

/** A workflow version the data plane's workers announced. */
export interface AnnouncedVersion {
  readonly name: string;
  readonly version: string;
  readonly taskQueue: string;
  readonly firstSeenAt: Date;
  readonly lastSeenAt: Date;
}

/** A worker's stream as its Hello announced it (classified metadata only). */
export interface NewWorkerRecord {
  readonly dataPlaneId: string;
  readonly workerId: string;
  readonly sessionId: string;
  readonly sdkVersion: string;
  readonly protocolVersion: number;
  readonly slots: number;
  /** The workflow versions the worker announced, as `name@version`. */
  readonly workflowVersions: readonly string[];
}

/**
 * A stream refreshes its worker's last-seen time every 15 s; a worker not seen for this long is not
 * counted as connected even without a recorded disconnection (its replica stopped).
 */
export const WORKER_STALE_AFTER_MS = 60_000;

export interface WorkerRecord {
  /** The stream is open: no disconnection recorded and seen within {@link WORKER_STALE_AFTER_MS}. */
  readonly connected: boolean;
  readonly workerId: string;
  readonly sdkVersion: string;
  readonly protocolVersion: number;
  readonly slots: number;
  readonly workflows: number;
  readonly connectedAt: Date;
  readonly lastSeenAt: Date;
  readonly disconnectedAt: Date | null;
}
