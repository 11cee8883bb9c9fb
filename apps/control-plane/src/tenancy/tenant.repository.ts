import { Inject, Injectable } from '@nestjs/common';
import { Database, type Queryable } from '../db/database.js';

/** The roles an API key can hold; what each may do is in `auth/permissions.ts`. */
export const ROLES = ['admin', 'developer', 'operator', 'viewer', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

/**
 * How an organisation came to be: the self-hosted bootstrap (or `data-planes create` on a fresh
 * install), the operator's `organizations create`, or before this was recorded.
 */
export type OrganizationOrigin = 'bootstrap' | 'operator' | 'legacy';

/** How a key was minted: through the API, by the bootstrap, by an operator command, or before this was recorded. */
export type KeyMint = 'api' | 'bootstrap' | 'command' | 'legacy';

export interface Organization {
  readonly id: string;
  readonly name: string;
  readonly origin: OrganizationOrigin;
  readonly createdAt: Date;
}

export interface Project {
  readonly id: string;
  readonly organizationId: string;
  readonly name: string;
  readonly createdAt: Date;
}

export interface ApiKey {
  readonly id: string;
  readonly organizationId: string;
  /** Null for an organisation-wide key. */
  readonly projectId: string | null;
  readonly name: string;
  readonly role: Role;
  /** The first characters of the key, shown in lists so a key can be recognised. */
  readonly prefix: string;
  readonly createdBy: string | null;
  readonly createdAt: Date;
  readonly expiresAt: Date | null;
  readonly revokedAt: Date | null;
  readonly lastUsedAt: Date | null;
  readonly mintedBy: KeyMint;
}

interface OrganizationRow {
  id: string;
  name: string;
  origin: OrganizationOrigin;
  created_at: Date;
}

interface ProjectRow {
  id: string;
  organization_id: string;
  name: string;
  created_at: Date;
}

interface ApiKeyRow {
  id: string;
  organization_id: string;
  project_id: string | null;
  name: string;
  role: Role;
  prefix: string;
  created_by: string | null;
  created_at: Date;
  expires_at: Date | null;
  revoked_at: Date | null;
  last_used_at: Date | null;
  minted_by: KeyMint;
}

const KEY_COLUMNS =
  'id, organization_id, project_id, name, role, prefix, created_by, created_at, expires_at, revoked_at, last_used_at, minted_by';
const ORGANIZATION_COLUMNS = 'id, name, origin, created_at';

const toOrganization = (r: OrganizationRow): Organization => ({ id: r.id, name: r.name, origin: r.origin, createdAt: r.created_at });

const toProject = (r: ProjectRow): Project => ({ id: r.id, organizationId: r.organization_id, name: r.name, createdAt: r.created_at });

const toKey = (r: ApiKeyRow): ApiKey => ({
  id: r.id,
  organizationId: r.organization_id,
  projectId: r.project_id,
  name: r.name,
  role: r.role,
  prefix: r.prefix,
  createdBy: r.created_by,
  createdAt: r.created_at,
  expiresAt: r.expires_at,
  revokedAt: r.revoked_at,
  lastUsedAt: r.last_used_at,
  mintedBy: r.minted_by,
});

export interface NewApiKey {
  readonly id: string;
  readonly organizationId: string;
  readonly projectId: string | null;
  readonly name: string;
  readonly role: Role;
  readonly prefix: string;
  readonly secretSha256: string;
  readonly createdBy: string | null;
  readonly expiresAt: Date | null;
  readonly mintedBy: Exclude<KeyMint, 'legacy'>;
}

/** All SQL about organisations, projects and API keys (secrets stored as SHA-256 only). */
@Injectable()
export class TenantRepository {
  constructor(@Inject(Database) private readonly db: Database) {}

  /**
   * The organisation with this name, created with `origin` when missing (an existing one keeps its
   * own origin).
   */
  async ensureOrganization(id: string, name: string, origin: OrganizationOrigin, q: Queryable = this.db): Promise<Organization> {
    const result = await q.query<OrganizationRow>(
      `INSERT INTO organizations (id, name, origin) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
       RETURNING ${ORGANIZATION_COLUMNS}`,
      [id, name, origin],
    );
    return toOrganization(result.rows[0]!);
  }

  /** Creates an organisation; null when one with this name exists (it is left as it is). */
  async insertOrganization(id: string, name: string, origin: OrganizationOrigin, q: Queryable = this.db): Promise<Organization | null> {
    const result = await q.query<OrganizationRow>(
      `INSERT INTO organizations (id, name, origin) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO NOTHING
       RETURNING ${ORGANIZATION_COLUMNS}`,
      [id, name, origin],
    );
    const row = result.rows[0];
    return row ? toOrganization(row) : null;
  }

  async findOrganizationByName(name: string, q: Queryable = this.db): Promise<Organization | null> {
    const result = await q.query<OrganizationRow>(`SELECT ${ORGANIZATION_COLUMNS} FROM organizations WHERE name = $1`, [name]);
    const row = result.rows[0];
    return row ? toOrganization(row) : null;
  }

  async findOrganization(id: string): Promise<Organization | null> {
    const result = await this.db.query<OrganizationRow>(`SELECT ${ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1`, [id]);
    const row = result.rows[0];
    return row ? toOrganization(row) : null;
  }

  /**
   * Serialises the bootstrap of replicas starting together, for the rest of the transaction, so
   * two of them never both find no key and both mint one.
   */
  async lockBootstrap(q: Queryable): Promise<void> {
    await q.query("SELECT pg_advisory_xact_lock(hashtext('cairn_bootstrap'))");
  }

  /** Creates a project; null when the organisation already has one with this name. */
  async insertProject(id: string, organizationId: string, name: string, q: Queryable = this.db): Promise<Project | null> {
    const result = await q.query<ProjectRow>(
      `INSERT INTO projects (id, organization_id, name) VALUES ($1, $2, $3)
       ON CONFLICT (organization_id, name) DO NOTHING
       RETURNING id, organization_id, name, created_at`,
      [id, organizationId, name],
    );
    const row = result.rows[0];
    return row ? toProject(row) : null;
  }

  /** A project of the organisation by ID or by name. */
  async findProject(organizationId: string, idOrName: { id: string } | { name: string }, q: Queryable = this.db): Promise<Project | null> {
    const result =
      'id' in idOrName
        ? await q.query<ProjectRow>('SELECT id, organization_id, name, created_at FROM projects WHERE organization_id = $1 AND id = $2', [
            organizationId,
            idOrName.id,
          ])
        : await q.query<ProjectRow>('SELECT id, organization_id, name, created_at FROM projects WHERE organization_id = $1 AND name = $2', [
            organizationId,
            idOrName.name,
          ]);
    const row = result.rows[0];
    return row ? toProject(row) : null;
  }

  async listProjects(organizationId: string, onlyId: string | null, q: Queryable = this.db): Promise<Project[]> {
    const result = await q.query<ProjectRow>(
      `SELECT id, organization_id, name, created_at FROM projects
       WHERE organization_id = $1 AND ($2::uuid IS NULL OR id = $2) ORDER BY name`,
      [organizationId, onlyId],
    );
    return result.rows.map(toProject);
  }

  async insertKey(key: NewApiKey, q: Queryable = this.db): Promise<ApiKey> {
    const result = await q.query<ApiKeyRow>(
      `INSERT INTO api_keys (id, organization_id, project_id, name, role, prefix, secret_sha256, created_by, expires_at, minted_by)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       RETURNING ${KEY_COLUMNS}`,
      [
        key.id,
        key.organizationId,
        key.projectId,
        key.name,
        key.role,
        key.prefix,
        key.secretSha256,
        key.createdBy,
        key.expiresAt,
        key.mintedBy,
      ],
    );
    return toKey(result.rows[0]!);
  }

  /** The organisation's bootstrap keys that are not revoked, oldest first. */
  async activeBootstrapKeys(organizationId: string, q: Queryable = this.db): Promise<ApiKey[]> {
    const result = await q.query<ApiKeyRow>(
      `SELECT ${KEY_COLUMNS} FROM api_keys
       WHERE organization_id = $1 AND minted_by = 'bootstrap' AND revoked_at IS NULL
       ORDER BY created_at, id`,
      [organizationId],
    );
    return result.rows.map(toKey);
  }

  /** The key holding this secret, whatever its state (the caller checks expiry and revocation). */
  async findKeyBySecret(secretSha256: string, q: Queryable = this.db): Promise<ApiKey | null> {
    const result = await q.query<ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE secret_sha256 = $1`, [secretSha256]);
    const row = result.rows[0];
    return row ? toKey(row) : null;
  }

  /** Keys acting in a project: its own and, with `withOrganizationKeys`, the organisation-wide ones. */
  async listKeys(organizationId: string, projectId: string, withOrganizationKeys: boolean): Promise<ApiKey[]> {
    const result = await this.db.query<ApiKeyRow>(
      `SELECT ${KEY_COLUMNS} FROM api_keys
       WHERE organization_id = $1 AND (project_id = $2 OR ($3 AND project_id IS NULL))
       ORDER BY created_at DESC, id DESC`,
      [organizationId, projectId, withOrganizationKeys],
    );
    return result.rows.map(toKey);
  }

  async findKey(organizationId: string, keyId: string): Promise<ApiKey | null> {
    const result = await this.db.query<ApiKeyRow>(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE organization_id = $1 AND id = $2`, [
      organizationId,
      keyId,
    ]);
    const row = result.rows[0];
    return row ? toKey(row) : null;
  }

  /** Revokes a key; false when it was already revoked. */
  async revokeKey(keyId: string): Promise<boolean> {
    const result = await this.db.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [keyId]);
    return (result.rowCount ?? 0) > 0;
  }

  /** Records use, at most once a minute per key so reads do not turn into a write each. */
  async touchKey(keyId: string): Promise<void> {
    await this.db.query(
      `UPDATE api_keys SET last_used_at = now() WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')`,
      [keyId],
    );
  }
}
