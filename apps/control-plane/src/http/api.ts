import {
  applyDecorators,
  createParamDecorator,
  HttpCode,
  Inject,
  Injectable,
  SetMetadata,
  UseGuards,
  type CanActivate,
  type ExecutionContext,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { z } from 'zod';
import { CairnError, ErrorCodes, sourceOf } from '@cairn/common';
import { allows, rolesFor, type Permission } from '../auth/permissions.js';
import type { Project } from '../tenancy/tenant.repository.js';
import type { Principal } from '../auth/principal.js';
import { AccessService } from '../tenancy/access.service.js';
import { LimitsService } from '../metering/limits.service.js';
import { ReadinessService } from '../db/readiness.service.js';
import { Telemetry } from '../telemetry/telemetry.service.js';

/** What a REST route declares: who may call it, what it takes, for the guard and the OpenAPI document. */
export interface ApiSpec {
  /** The permission the caller's role needs (see auth/permissions.ts). */
  readonly permission: Permission;
  /** One line for the OpenAPI document. */
  readonly summary: string;
  /** More detail for the OpenAPI document. */
  readonly description?: string;
  /** The JSON body, validated before the handler runs; the handler receives the parsed value. */
  readonly body?: z.ZodType;
  /** The query string, validated likewise. */
  readonly query?: z.ZodType;
  /** The success status (default 200). */
  readonly status?: number;
  /** Other success statuses with the same body (e.g. 200 for a registration that existed). */
  readonly alsoStatus?: readonly number[];
  /** What the route answers on success, for the OpenAPI document (named schemas in http/responses.ts). */
  readonly response: z.ZodType;
  /** Tag grouping the route in the OpenAPI document. */
  readonly tag: string;
}

export const API_SPEC = 'cairn:api-spec';

/** The authenticated caller and, on project routes, the project named in the path. */
export interface RequestContext {
  readonly principal: Principal;
  readonly project: Project | null;
}

interface ApiRequest {
  id?: string;
  /** The client's address (the socket's, or the forwarded one behind CAIRN_CP_TRUSTED_PROXIES). */
  ip?: string;
  headers: Record<string, string | string[] | undefined>;
  params?: Record<string, string | undefined>;
  query?: unknown;
  body?: unknown;
  cairn?: RequestContext;
}

/** Declares a REST route's permission and schemas and puts it behind the access guard. */
export function Api(spec: ApiSpec): MethodDecorator {
  return applyDecorators(SetMetadata(API_SPEC, spec), UseGuards(AccessGuard), HttpCode(spec.status ?? 200));
}

/** The caller of a project route, with the project. */
export const Caller = createParamDecorator((_data: unknown, context: ExecutionContext): RequestContext => {
  const request = context.switchToHttp().getRequest<ApiRequest>();
  if (!request.cairn) throw new Error('route is missing @Api(...)');
  return request.cairn;
});

/** The project of a project route (`/v1/projects/:project/...`). */
export const CurrentProject = createParamDecorator((_data: unknown, context: ExecutionContext): Project => {
  const project = context.switchToHttp().getRequest<ApiRequest>().cairn?.project;
  if (!project) throw new Error('route has no :project parameter');
  return project;
});

/** Renders zod issues as one line per problem, naming where each is. */
export function describeIssues(issues: readonly z.core.$ZodIssue[], where: 'body' | 'query'): string {
  return issues
    .map((issue) => {
      const path = issue.path.map(String).join('.');
      return `${where}${path === '' ? '' : ` field ${path}`}: ${issue.message}`;
    })
    .join('; ');
}

/**
 * Authenticates the API key, resolves the project in the path (404 when the key cannot see it),
 * checks the route's permission against the key's role (403 naming the roles that may) and
 * validates the query and body.
 */
@Injectable()
export class AccessGuard implements CanActivate {
  constructor(
    @Inject(Reflector) private readonly reflector: Reflector,
    @Inject(AccessService) private readonly access: AccessService,
    @Inject(ReadinessService) private readonly readiness: ReadinessService,
    @Inject(LimitsService) private readonly limits: LimitsService,
    @Inject(Telemetry) private readonly telemetry: Telemetry,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const spec = this.reflector.get<ApiSpec | undefined>(API_SPEC, context.getHandler());
    if (!spec) throw new Error(`route ${context.getHandler().name} has no @Api spec`);
    this.readiness.assertServing();
    const request = context.switchToHttp().getRequest<ApiRequest>();
    const header = request.headers['authorization'];
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const principal = await this.access.authenticate(match?.[1], sourceOf(request.ip));
    // Per key and per organisation request rates (429 with Retry-After past them).
    try {
      await this.limits.admit({ kind: 'api key', id: principal.keyId }, principal.organizationId);
    } catch (error) {
      this.telemetry.metrics.limitRefusals.inc({ limit: 'rate' });
      throw error;
    }
    const projectRef = request.params?.['project'];
    const project = projectRef === undefined ? null : await this.access.resolveProject(principal, projectRef);
    const organizationOnly = spec.permission === 'organization.admin' && principal.keyProjectId !== null;
    if (organizationOnly || !allows(principal.role, spec.permission)) {
      throw new CairnError(
        ErrorCodes.FORBIDDEN,
        organizationOnly
          ? 'this route needs an organisation-wide admin key; this key is scoped to one project'
          : `this API key has the role ${principal.role}; this route needs ${rolesFor(spec.permission)}: use a key with one of those roles`,
      );
    }
    if (spec.query) {
      const parsed = spec.query.safeParse(request.query ?? {});
      if (!parsed.success) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, describeIssues(parsed.error.issues, 'query'));
      request.query = parsed.data;
    }
    if (spec.body) {
      const parsed = spec.body.safeParse(request.body ?? {});
      if (!parsed.success) throw new CairnError(ErrorCodes.INVALID_ARGUMENT, describeIssues(parsed.error.issues, 'body'));
      request.body = parsed.data;
    }
    request.cairn = { principal, project };
    return true;
  }
}
