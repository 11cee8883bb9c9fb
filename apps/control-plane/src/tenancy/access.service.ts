import { createHash, randomBytes } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import {
  CREDENTIAL_PREFIX_LENGTH,
  CairnError,
  CredentialThrottle,
  ErrorCodes,
  credentialThrottled,
  isId,
  isName,
  newId,
  type Logger,
} from '@cairn/common';
import { Database, type Queryable } from '../db/database.js';
import { ROLES, TenantRepository, type ApiKey, type Project, type Role } from './tenant.repository.js';
import { LOGGER } from '../tokens.js';
import type { Principal } from '../auth/principal.js';
import { AuditService } from '../audit/audit.service.js';

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
    @Inject(CredentialThrottle) private readonly throttle: CredentialThrottle = new CredentialThrottle(),
  ) {}

  /**
   * The key behind a bearer secret. Unknown, revoked and expired keys are UNAUTHENTICATED with a
   * message saying which, so the caller knows to create a new key rather than retry. Failed
   * attempts are throttled per source address (see {@link CredentialThrottle}): once an address
   * has failed too often, a key this process has not seen authenticate recently is answered
   * CAIRN-1142 (429, Retry-After) without being looked up.
   */
  async authenticate(secret: string | undefined, source = 'unknown'): Promise<Principal> {
    if (secret === undefined || secret === '') {
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, 'missing credential: send the header Authorization: Bearer <API key>');
    }
    const digest = sha256Hex(secret);
    const attempt = { source, prefix: secret.slice(0, CREDENTIAL_PREFIX_LENGTH), digest };
    const wait = this.throttle.retryAfterMs(attempt);
    if (wait > 0) throw credentialThrottled(wait, 'API keys');
    let key: ApiKey;
    try {
      key = this.usable(await this.tenants.findKeyBySecret(digest));
    } catch (error) {
      if (error instanceof CairnError && error.code === ErrorCodes.UNAUTHENTICATED) {
        this.throttle.failed(attempt);
        this.logger.info({ source, reason: error.details['reason'] }, 'API key refused');
      }
      throw error;
    }
    this.throttle.succeeded(attempt);
    void this.tenants.touchKey(key.id).catch(() => undefined);
    return { keyId: key.id, organizationId: key.organizationId, keyProjectId: key.projectId, role: key.role };
  }

  /** The key when it may act; UNAUTHENTICATED saying why not. */
  private usable(key: ApiKey | null): ApiKey {
    if (!key) {
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, 'unknown API key: check the key, or ask a project admin for a new one', {
        details: { reason: 'unknown' },
      });
    }
    if (key.revokedAt !== null) {
      throw new CairnError(ErrorCodes.UNAUTHENTICATED, `API key ${key.id} was revoked: ask a project admin for a new key`, {
        details: { reason: 'revoked' },
      });
    }
    if (key.expiresAt !== null && key.expiresAt.getTime() <= Date.now()) {
      throw new CairnError(
        ErrorCodes.UNAUTHENTICATED,
        `API key ${key.id} expired at ${key.expiresAt.toISOString()}: ask a project admin for a new key`,
        { details: { reason: 'expired' } },
      );
    }
    return key;
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
          mintedBy: 'api',
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
   * The self-hosted bootstrap (`CAIRN_BOOTSTRAP_ADMIN_KEY`), at every start: makes sure the
   * organisation and project exist and that `secret` is an organisation-wide admin key there.
   *
   * It mints a key only into an organisation the bootstrap made (never into a tenant made by
   * `organizations create`, nor one from before this was recorded), and only when that
   * organisation has no bootstrap key yet: the same secret at every start finds its key and
   * changes nothing; another secret while a bootstrap key is active is refused (rotate by creating
   * an admin key through the API, setting it here and revoking the old one). A minted key is
   * audited. A key that was revoked stays revoked (`revoked` is answered; the caller warns).
   */
  async bootstrap(input: { organization: string; project: string; secret: string }): Promise<BootstrapOutcome> {
    const digest = sha256Hex(input.secret);
    return this.db.transaction(async (tx): Promise<BootstrapOutcome> => {
      await this.tenants.lockBootstrap(tx);
      // Found, or made here (then the bootstrap's own); made by someone else meanwhile, found again.
      const organization =
        (await this.tenants.findOrganizationByName(input.organization, tx)) ??
        (await this.tenants.insertOrganization(newId(), input.organization, 'bootstrap', tx)) ??
        (await this.tenants.findOrganizationByName(input.organization, tx))!;
      const project = await this.projectIn(tx, organization.id, input.project);
      const existing = await this.tenants.findKeyBySecret(digest, tx);
      const ids = { organizationId: organization.id, projectId: project.id };
      if (existing) {
        if (existing.organizationId !== organization.id || existing.projectId !== null || existing.role !== 'admin') {
          throw new CairnError(
            ErrorCodes.BOOTSTRAP_REFUSED,
            `CAIRN_BOOTSTRAP_ADMIN_KEY holds API key ${existing.id}, which is not an organisation-wide admin key of organisation ${input.organization}: ` +
              'the bootstrap grants nothing with it. Set CAIRN_BOOTSTRAP_ADMIN_KEY to a new random secret (or to an organisation-wide admin key of that organisation).',
          );
        }
        if (existing.revokedAt !== null) return { ...ids, state: 'revoked', keyId: existing.id };
        if (existing.expiresAt !== null && existing.expiresAt.getTime() <= Date.now())
          return { ...ids, state: 'expired', keyId: existing.id };
        return { ...ids, state: 'ready', keyId: existing.id };
      }
      if (organization.origin !== 'bootstrap') {
        throw new CairnError(
          ErrorCodes.BOOTSTRAP_REFUSED,
          `organisation ${input.organization} was not created by the bootstrap (${organization.origin === 'operator' ? 'an operator created it with `organizations create`' : 'it predates the record of who creates organisations'}): ` +
            'the bootstrap never mints a key inside an existing organisation. Set CAIRN_BOOTSTRAP_ORGANIZATION to a name of its own, ' +
            `or mint an admin key deliberately with \`control-plane api-keys create --organization ${input.organization} --organization-wide --role admin\` (audited), then set it as CAIRN_BOOTSTRAP_ADMIN_KEY.`,
        );
      }
      const active = await this.tenants.activeBootstrapKeys(organization.id, tx);
      const current = active[0];
      if (current) {
        throw new CairnError(
          ErrorCodes.BOOTSTRAP_REFUSED,
          `organisation ${input.organization} already has a bootstrap admin key (${current.id}, ${current.prefix}…, created ${current.createdAt.toISOString()}) and CAIRN_BOOTSTRAP_ADMIN_KEY holds another secret: ` +
            'the bootstrap never mints a second key. To rotate it, create an organisation-wide admin key ' +
            `(POST /v1/projects/${input.project}/api-keys with {"organizationWide":true,"role":"admin"}), set that secret as CAIRN_BOOTSTRAP_ADMIN_KEY, then revoke ${current.id}; ` +
            'or set CAIRN_BOOTSTRAP_ADMIN_KEY back to the current key.',
        );
      }
      const key = await this.mint(tx, organization.id, {
        projectId: null,
        name: 'bootstrap-admin',
        role: 'admin',
        secret: input.secret,
        mintedBy: 'bootstrap',
      });
      return { ...ids, state: 'minted', keyId: key.id };
    });
  }

  /** The project `organization/project`, created (with its organisation) when missing (the `data-planes create` command). */
  async ensureProject(organization: string, project: string): Promise<Project> {
    for (const [field, value] of [
      ['organization', organization],
      ['project', project],
    ] as const) {
      if (!isName(value)) throw invalid(field, `--${field} must start with a letter and contain only letters, digits, _ . - (at most 100)`);
    }
    return this.db.transaction(async (tx) => {
      // An organisation made here is the self-hosted kind: the bootstrap may later give it its key.
      const org = await this.tenants.ensureOrganization(newId(), organization, 'bootstrap', tx);
      return this.projectIn(tx, org.id, project);
    });
  }

  /** The project of this name in the organisation, created (and audited) when missing. */
  private async projectIn(tx: Queryable, organizationId: string, name: string): Promise<Project> {
    const created = await this.tenants.insertProject(newId(), organizationId, name, tx);
    if (!created) return (await this.tenants.findProject(organizationId, { name }, tx))!;
    await this.audit.record(tx, {
      projectId: created.id,
      actor: { type: 'system' },
      action: 'project.created',
      target: { type: 'project', id: created.id },
      metadata: { name: created.name, organizationId: created.organizationId },
    });
    return created;
  }

  /**
   * Mints a key outside the API (bootstrap, operator commands) and audits it in the project it
   * acts in — for an organisation-wide key, in every project of the organisation, so each
   * project's auditors see a key that can act there.
   */
  private async mint(
    tx: Queryable,
    organizationId: string,
    key: { projectId: string | null; name: string; role: Role; secret: string; mintedBy: 'bootstrap' | 'command'; command?: string },
  ): Promise<ApiKey> {
    const inserted = await this.tenants.insertKey(
      {
        id: newId(),
        organizationId,
        projectId: key.projectId,
        name: key.name,
        role: key.role,
        prefix: prefixOf(key.secret),
        secretSha256: sha256Hex(key.secret),
        createdBy: null,
        expiresAt: null,
        mintedBy: key.mintedBy,
      },
      tx,
    );
    const projects = key.projectId === null ? await this.tenants.listProjects(organizationId, null, tx) : [{ id: key.projectId }];
    for (const project of projects) {
      await this.audit.record(tx, {
        projectId: project.id,
        actor: { type: 'system' },
        action: 'api_key.created',
        target: { type: 'api_key', id: inserted.id },
        metadata: {
          name: inserted.name,
          role: inserted.role,
          organizationWide: inserted.projectId === null,
          expiresAt: null,
          mintedBy: key.mintedBy,
          command: key.command,
        },
      });
    }
    return inserted;
  }

  /**
   * Creates an organisation with a first project and an organisation-wide admin key (the
   * `organizations create` command, for the operator of a hosted control plane). A name that
   * exists is refused (CAIRN-1140): this never hands out a key inside an existing tenant.
   */
  async createOrganization(input: {
    organization: string;
    project: string;
  }): Promise<{ organizationId: string; projectId: string; secret: string; keyId: string }> {
    for (const [field, value] of [
      ['organization', input.organization],
      ['project', input.project],
    ] as const) {
      if (!isName(value)) throw invalid(field, `--${field} must start with a letter and contain only letters, digits, _ . - (at most 100)`);
    }
    const secret = newSecret();
    const created = await this.db.transaction(async (tx) => {
      const organization = await this.tenants.insertOrganization(newId(), input.organization, 'operator', tx);
      if (!organization) {
        throw new CairnError(
          ErrorCodes.ORGANIZATION_EXISTS,
          `organisation ${input.organization} already exists: organizations create makes new organisations only and never hands out a key inside an existing one. ` +
            `Choose another name; to give someone a key in ${input.organization} on purpose, use \`control-plane api-keys create --organization ${input.organization} ...\` (audited).`,
        );
      }
      const project = await this.projectIn(tx, organization.id, input.project);
      const key = await this.mint(tx, organization.id, {
        projectId: null,
        name: 'organization-admin',
        role: 'admin',
        secret,
        mintedBy: 'command',
        command: 'organizations create',
      });
      return { organizationId: organization.id, projectId: project.id, keyId: key.id };
    });
    this.logger.info({ organizationId: created.organizationId, apiKeyId: created.keyId }, 'organisation created');
    return { ...created, secret };
  }

  /**
   * Mints a key inside an existing organisation on purpose (the `api-keys create` command, for the
   * operator): organisation-wide, or in one project. Audited as the system's `api_key.created`
   * with `mintedBy: "command"` in every project the key can act in.
   */
  async createKeyByCommand(input: {
    organization: string;
    project: string | null;
    role: string;
    name: string;
  }): Promise<{ key: ApiKey; secret: string }> {
    for (const [field, value] of [
      ['organization', input.organization],
      ['name', input.name],
      ...(input.project === null ? [] : [['project', input.project] as const]),
    ] as const) {
      if (!isName(value)) throw invalid(field, `--${field} must start with a letter and contain only letters, digits, _ . - (at most 100)`);
    }
    if (!(ROLES as readonly string[]).includes(input.role)) throw invalid('role', `--role must be one of ${ROLES.join(', ')}`);
    const secret = newSecret();
    const key = await this.db.transaction(async (tx) => {
      const organization = await this.tenants.findOrganizationByName(input.organization, tx);
      if (!organization) {
        throw new CairnError(
          ErrorCodes.NOT_FOUND,
          `organisation ${input.organization} does not exist: create it with organizations create`,
        );
      }
      let projectId: string | null = null;
      if (input.project !== null) {
        const project = await this.tenants.findProject(organization.id, { name: input.project }, tx);
        if (!project)
          throw new CairnError(ErrorCodes.NOT_FOUND, `project ${input.project} does not exist in organisation ${input.organization}`);
        projectId = project.id;
      }
      return this.mint(tx, organization.id, {
        projectId,
        name: input.name,
        role: input.role as Role,
        secret,
        mintedBy: 'command',
        command: 'api-keys create',
      });
    });
    this.logger.info(
      { apiKeyId: key.id, organizationId: key.organizationId, projectId: key.projectId, role: key.role },
      'API key minted by command',
    );
    return { key, secret };
  }
}

/** What the bootstrap found or did. */
export interface BootstrapOutcome {
  readonly organizationId: string;
  readonly projectId: string;
  readonly keyId: string;
  /** `minted` now; `ready` already there; `revoked`/`expired`: the key exists but no longer works (it is not revived). */
  readonly state: 'minted' | 'ready' | 'revoked' | 'expired';
}
