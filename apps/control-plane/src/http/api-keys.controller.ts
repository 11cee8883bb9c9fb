import { Body, Controller, Delete, Get, Inject, Param, Post } from '@nestjs/common';
import { z } from 'zod';
import { ROLES, type ApiKey, type Project } from '../tenancy/tenant.repository.js';
import { AccessService } from '../tenancy/access.service.js';
import { Api, Caller, CurrentProject, type RequestContext } from './api.js';
import { isoTimeSchema, nameSchema } from './schemas.js';
import { ApiKeyAnswer, ApiKeyCreated, ApiKeyList } from './responses.js';
import type { ApiKey as ApiKeySchema } from './responses.js';

const CreateKeyBody = z.strictObject({
  name: nameSchema,
  role: z.enum(ROLES, { error: `expected one of ${ROLES.join(', ')}` }),
  expiresAt: isoTimeSchema.optional(),
  organizationWide: z.boolean().optional(),
});

const iso = (d: Date | null): string | null => (d === null ? null : d.toISOString());

export function presentKey(key: ApiKey): z.input<typeof ApiKeySchema> {
  return {
    id: key.id,
    name: key.name,
    role: key.role,
    prefix: key.prefix,
    projectId: key.projectId,
    organizationWide: key.projectId === null,
    createdBy: key.createdBy,
    createdAt: key.createdAt.toISOString(),
    expiresAt: iso(key.expiresAt),
    revokedAt: iso(key.revokedAt),
    lastUsedAt: iso(key.lastUsedAt),
  };
}

/** API keys of a project: created with a role and optional expiry, shown once, revocable. */
@Controller('v1/projects/:project/api-keys')
export class ApiKeysController {
  constructor(@Inject(AccessService) private readonly access: AccessService) {}

  @Post()
  @Api({
    response: ApiKeyCreated,
    permission: 'project.admin',
    tag: 'access',
    summary: 'Create an API key; the secret is in this answer only',
    body: CreateKeyBody,
    status: 201,
  })
  async create(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Body() body: z.infer<typeof CreateKeyBody>,
  ): Promise<{ apiKey: unknown; secret: string }> {
    const { key, secret } = await this.access.createKey(caller.principal, project, {
      name: body.name,
      role: body.role,
      expiresAt: body.expiresAt === undefined ? null : new Date(body.expiresAt),
      organizationWide: body.organizationWide ?? false,
    });
    return { apiKey: presentKey(key), secret };
  }

  @Get()
  @Api({
    response: ApiKeyList,
    permission: 'project.admin',
    tag: 'access',
    summary: 'List the API keys acting in this project (never their secrets)',
  })
  async list(@Caller() caller: RequestContext, @CurrentProject() project: Project): Promise<{ apiKeys: unknown[] }> {
    return { apiKeys: (await this.access.listKeys(caller.principal, project)).map(presentKey) };
  }

  @Delete(':keyId')
  @Api({ response: ApiKeyAnswer, permission: 'project.admin', tag: 'access', summary: 'Revoke an API key; it stops working at once' })
  async revoke(
    @Caller() caller: RequestContext,
    @CurrentProject() project: Project,
    @Param('keyId') keyId: string,
  ): Promise<{ apiKey: unknown }> {
    return { apiKey: presentKey(await this.access.revokeKey(caller.principal, project, keyId)) };
  }
}
