import { Inject, Injectable } from '@nestjs/common';
import { Database, type Queryable } from '../db/database.js';

/** An organisation's operator-set limits; null: the configured default applies. */
export interface OrganizationLimits {
  readonly maxSlotsPerStream: number | null;
  readonly maxStreamsPerDataPlane: number | null;
  readonly maxWaitsPerDataPlane: number | null;
  readonly requestsPerSecondPerKey: number | null;
  readonly requestsPerSecondPerDataPlane: number | null;
  readonly requestsPerSecond: number | null;
}

export const NO_LIMITS_SET: OrganizationLimits = Object.freeze({
  maxSlotsPerStream: null,
  maxStreamsPerDataPlane: null,
  maxWaitsPerDataPlane: null,
  requestsPerSecondPerKey: null,
  requestsPerSecondPerDataPlane: null,
  requestsPerSecond: null,
});

interface Row {
  organization_id: string;
  max_slots_per_stream: number | null;
  max_streams_per_data_plane: number | null;
  max_waits_per_data_plane: number | null;
  requests_per_second_per_key: number | null;
  requests_per_second_per_data_plane: number | null;
  requests_per_second: number | null;
}

const COLUMNS =
  'l.organization_id, l.max_slots_per_stream, l.max_streams_per_data_plane, l.max_waits_per_data_plane, l.requests_per_second_per_key, l.requests_per_second_per_data_plane, l.requests_per_second';

function toLimits(row: Row | undefined): OrganizationLimits {
  if (!row) return NO_LIMITS_SET;
  return {
    maxSlotsPerStream: row.max_slots_per_stream,
    maxStreamsPerDataPlane: row.max_streams_per_data_plane,
    maxWaitsPerDataPlane: row.max_waits_per_data_plane,
    requestsPerSecondPerKey: row.requests_per_second_per_key,
    requestsPerSecondPerDataPlane: row.requests_per_second_per_data_plane,
    requestsPerSecond: row.requests_per_second,
  };
}

/** The `organization_limits` table: written by the operator's admin command only. */
@Injectable()
export class LimitsRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  async forOrganization(organizationId: string): Promise<OrganizationLimits> {
    const result = await this.db.query<Row>(`SELECT ${COLUMNS} FROM organization_limits l WHERE l.organization_id = $1`, [organizationId]);
    return toLimits(result.rows[0]);
  }

  /** The organisation a data plane belongs to, or null when the data plane is unknown. */
  async organizationOfDataPlane(dataPlaneId: string): Promise<string | null> {
    const result = await this.db.query<{ organization_id: string }>(
      'SELECT p.organization_id FROM data_planes d JOIN projects p ON p.id = d.project_id WHERE d.id = $1',
      [dataPlaneId],
    );
    return result.rows[0]?.organization_id ?? null;
  }

  /** The organisation's ID by name, or null. */
  async organizationId(name: string): Promise<string | null> {
    const result = await this.db.query<{ id: string }>('SELECT id FROM organizations WHERE name = $1', [name]);
    return result.rows[0]?.id ?? null;
  }

  /** Replaces the organisation's limits (null columns: the default). */
  async set(organizationId: string, limits: OrganizationLimits, q: Queryable = this.db): Promise<OrganizationLimits> {
    const result = await q.query<Row>(
      `INSERT INTO organization_limits AS l (organization_id, max_slots_per_stream, max_streams_per_data_plane,
         max_waits_per_data_plane, requests_per_second_per_key, requests_per_second_per_data_plane, requests_per_second)
       VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (organization_id) DO UPDATE SET
         max_slots_per_stream = EXCLUDED.max_slots_per_stream,
         max_streams_per_data_plane = EXCLUDED.max_streams_per_data_plane,
         max_waits_per_data_plane = EXCLUDED.max_waits_per_data_plane,
         requests_per_second_per_key = EXCLUDED.requests_per_second_per_key,
         requests_per_second_per_data_plane = EXCLUDED.requests_per_second_per_data_plane,
         requests_per_second = EXCLUDED.requests_per_second,
         updated_at = now()
       RETURNING ${COLUMNS}`,
      [
        organizationId,
        limits.maxSlotsPerStream,
        limits.maxStreamsPerDataPlane,
        limits.maxWaitsPerDataPlane,
        limits.requestsPerSecondPerKey,
        limits.requestsPerSecondPerDataPlane,
        limits.requestsPerSecond,
      ],
    );
    return toLimits(result.rows[0]);
  }
}
