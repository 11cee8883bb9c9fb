import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { CairnError, ErrorCodes, isId, isName, newId, type Logger } from '@cairn/common';
import { Database, type Queryable } from '../db/database.js';
import { TenantRepository, type ApiKey, type Project, type Role } from '../db/tenant.repository.js';
import { LOGGER } from '../tokens.js';
import { AuditService } from './audit.service.js';

/** Who is calling a REST route: the API key, its organisation, the project it acts in, its role. */
export interface Principal {
  readonly keyId: string;
  readonly organizationId: string;
  /** The project the key is scoped to; null for an organisation-wide key. */
  readonly keyProjectId: string | null;
  readonly role: Role;
}

/** A key as just created: the secret is in the answer once and never again. */
export interface CreatedApiKey {
  readonly key: ApiKey;
  readonly secret: string;
}

export const sha256Hex = (value: string): string => createHash('sha256').update(value).digest('hex');

const KEY_PREFIX = 'cak_';
const newSecret = (): string => `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
/** Shown in key lists: enough to recognise a key, far too little to use it. */
const prefixOf = (secret: string): string => secret.slice(0, KEY_PREFIX.length + 6);

function invalid(field: string, message: string): CairnError {
  return new CairnError(ErrorCodes.INVALID_ARGUMENT, message, { details: { field } });
}

/** Organisations, projects and API keys: creation, authentication and scoping. */
@Injectable()
export class AccessService {
  constructor(
    @Inject(TenantRepository) private readonly tenants: TenantRepository,
    @Inject(Database) private readonly db: Database,
    @Inject(LOGGER) private readonly logger: Logger,
    @Inject(AuditService) private readonly audit: AuditService,
  ) {}

  /**
   * The key behind a bearer secret. Unknown, revoked and expired keys are UNAUTHENTICATED with a
   * message saying which, so the caller knows to create a new key rather than retry.
   */
  async authenticate(secret: string | undefined): Promise<Principal> {
    if (secret === undefined || secret === '') {
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, 'missing credential: send the header Authorization: Bearer <API key>');
    }
    const key = await this.tenants.findKeyBySecret(sha256Hex(secret));
    if (!key) {
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, 'unknown API key: check the key, or ask a project admin for a new one');
    }
    if (key.revokedAt !== null) {
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, `API key ${key.id} was revoked: ask a project admin for a new key`);
    }
    if (key.expiresAt !== null && key.expiresAt.getTime() <= Date.now()) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        `API key ${key.id} expired at ${key.expiresAt.toISOString()}: ask a project admin for a new key`,
      );
    }
    void this.tenants.touchKey(key.id).catch(() => undefined);
    return { keyId: key.id, organizationId: key.organizationId, keyProjectId: key.projectId, role: key.role };
  }

  /**
   * The project a route names (by ID or by name) as the principal may see it. A project of another
   * organisation, or one a project-scoped key is not scoped to, is NOT_FOUND: its existence is not
   * revealed.
   */
  async resolveProject(principal: Principal, ref: string | undefined): Promise<Project> {
    if (ref === undefined || ref === '' || !(isId(ref) || isName(ref))) {
      throw invalid('project', 'the project in the path must be a project ID (a lowercase UUID) or a project name');
    }
    const project = await this.tenants.findProject(principal.organizationId, isId(ref) ? { id: ref } : { name: ref });
    if (!project || (principal.keyProjectId !== null && principal.keyProjectId !== project.id)) {
      throw new CairnError(ErrorCodes.NOT_FOUND, `project ${ref} not found: list the projects this key can see with GET /v1/projects`);
    }
    return project;
  }

  async listProjects(principal: Principal): Promise<Project[]> {
    return this.tenants.listProjects(principal.organizationId, principal.keyProjectId);
  }

  async createProject(principal: Principal, name: string): Promise<Project> {
    if (!isName(name)) throw invalid('name', 'name must start with a letter and contain only letters, digits, _ . - (at most 100)');
    const project = await this.db.transaction(async (tx) => {
      const created = await this.tenants.insertProject(newId(), principal.organizationId, name, tx);
      if (created) {
        await this.audit.record(tx, {
          projectId: created.id,
          actor: AuditService.actorOf(principal),
          action: 'project.created',
          target: { type: 'project', id: created.id },
          metadata: { name: created.name, organizationId: created.organizationId },
        });
      }
      return created;
    });
    if (!project)
      throw new CairnError(ErrorCodes.CONFLICT, `a project named ${name} already exists in this organisation: choose another name`);
    this.logger.info({ projectId: project.id, keyId: principal.keyId }, 'project created');
    return project;
  }

  /**
   * Creates an API key in a project, or organisation-wide. Only an organisation-wide admin key may
   * create organisation-wide keys.
   */
  async createKey(
    principal: Principal,
    project: Project,
    input: { name: string; role: Role; expiresAt: Date | null; organizationWide: boolean },
  ): Promise<CreatedApiKey> {
    if (input.organizationWide && principal.keyProjectId !== null) {
      throw new CairnError(
        ErrorCodes.FORBIDDEN,
        'only an organisation-wide admin key can create organisation-wide keys: create a key for this project instead',
      );
    }
    if (input.expiresAt !== null && input.expiresAt.getTime() <= Date.now()) {
      throw invalid('expiresAt', 'expiresAt must be in the future');
    }
    const secret = newSecret();
    const key = await this.db.transaction(async (tx) => {
      const inserted = await this.tenants.insertKey(
        {
          id: newId(),
          organizationId: project.organizationId,
          projectId: input.organizationWide ? null : project.id,
          name: input.name,
          role: input.role,
          prefix: prefixOf(secret),
          secretSha256: sha256Hex(secret),
          createdBy: principal.keyId,
          expiresAt: input.expiresAt,
        },
        tx,
      );
      await this.audit.record(tx, {
        projectId: project.id,
        actor: AuditService.actorOf(principal),
        action: 'api_key.created',
        target: { type: 'api_key', id: inserted.id },
        metadata: {
          name: inserted.name,
          role: inserted.role,
          organizationWide: inserted.projectId === null,
          expiresAt: inserted.expiresAt?.toISOString() ?? null,
        },
      });
      return inserted;
    });
    this.logger.info({ apiKeyId: key.id, projectId: key.projectId, role: key.role, keyId: principal.keyId }, 'API key created');
    return { key, secret };
  }

  async listKeys(principal: Principal, project: Project): Promise<ApiKey[]> {
    return this.tenants.listKeys(project.organizationId, project.id, principal.keyProjectId === null);
  }

  /** Revokes a key of this project (an organisation-wide admin may revoke organisation-wide keys too). */
  async revokeKey(principal: Principal, project: Project, keyId: string): Promise<ApiKey> {
    if (!isId(keyId)) throw invalid('keyId', 'the API key ID in the path must be a lowercase UUID');
    const key = await this.tenants.findKey(project.organizationId, keyId);
    const visible = key && (key.projectId === project.id || (key.projectId === null && principal.keyProjectId === null));
    if (!key || !visible) throw new CairnError(ErrorCodes.NOT_FOUND, `API key ${keyId} not found in project ${project.name}`);
    if (await this.tenants.revokeKey(key.id)) {
      await this.audit.record(null, {
        projectId: project.id,
        actor: AuditService.actorOf(principal),
        action: 'api_key.revoked',
        target: { type: 'api_key', id: key.id },
        metadata: { name: key.name, role: key.role, organizationWide: key.projectId === null },
      });
    }
    this.logger.info({ apiKeyId: key.id, keyId: principal.keyId }, 'API key revoked');
    return (await this.tenants.findKey(project.organizationId, keyId))!;
  }

  /**
   * The self-hosted bootstrap: makes sure the organisation and project exist and that `secret` is
   * an organisation-wide admin key. Idempotent; runs at every start when configured.
   */
  async bootstrap(input: {
    organization: string;
    project: string;
    secret: string;
  }): Promise<{ organizationId: string; projectId: string }> {
    return this.db.transaction(async (tx) => {
      const organization = await this.tenants.ensureOrganization(newId(), input.organization, tx);
      const created = await this.tenants.insertProject(newId(), organization.id, input.project, tx);
      if (created) await this.recordSystemProject(tx, created);
      const project = created ?? (await this.tenants.findProject(organization.id, { name: input.project }, tx))!;
      await this.tenants.ensureKey(
        {
          id: newId(),
          organizationId: organization.id,
          projectId: null,
          name: 'bootstrap-admin',
          role: 'admin',
          prefix: prefixOf(input.secret),
          secretSha256: sha256Hex(input.secret),
          createdBy: null,
          expiresAt: null,
        },
        tx,
      );
      return { organizationId: organization.id, projectId: project.id };
    });
  }

  /** The project `organization/project`, created (with its organisation) when missing. */
  async ensureProject(organization: string, project: string): Promise<Project> {
    for (const [field, value] of [
      ['organization', organization],
      ['project', project],
    ] as const) {
      if (!isName(value)) throw invalid(field, `--${field} must start with a letter and contain only letters, digits, _ . - (at most 100)`);
    }
    return this.db.transaction(async (tx) => {
      const org = await this.tenants.ensureOrganization(newId(), organization, tx);
      const created = await this.tenants.insertProject(newId(), org.id, project, tx);
      if (created) await this.recordSystemProject(tx, created);
      return created ?? (await this.tenants.findProject(org.id, { name: project }, tx))!;
    });
  }

  /** A project created by the control plane itself (bootstrap, command line). */
  private async recordSystemProject(tx: Queryable, project: Project): Promise<void> {
    await this.audit.record(tx, {
      projectId: project.id,
      actor: { type: 'system' },
      action: 'project.created',
      target: { type: 'project', id: project.id },
      metadata: { name: project.name, organizationId: project.organizationId },
    });
  }

  /** Creates an organisation with a first project and an organisation-wide admin key (the `organizations create` command). */
  async createOrganization(input: {
    organization: string;
    project: string;
  }): Promise<{ organizationId: string; projectId: string; secret: string }> {
    for (const [field, value] of [
      ['organization', input.organization],
      ['project', input.project],
    ] as const) {
      if (!isName(value)) throw invalid(field, `--${field} must start with a letter and contain only letters, digits, _ . - (at most 100)`);
    }
    const secret = newSecret();
    const ids = await this.bootstrap({ ...input, secret });
    return { ...ids, secret };
  }
}
