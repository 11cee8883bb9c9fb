import { Controller, Get, Inject, RequestMethod } from '@nestjs/common';
import { HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { z } from 'zod';
import { PERMISSIONS } from '../auth/permissions.js';
import { API_SPEC, type ApiSpec } from './api.js';

/** DI token: the controllers whose routes the document describes. */
export const API_CONTROLLERS = Symbol('ApiControllers');

/** One documented route, as the OpenAPI document and the role matrix test see it. */
export interface RouteDoc {
  readonly method: string;
  /** OpenAPI style: `/v1/projects/{project}/runs`. */
  readonly path: string;
  readonly spec: ApiSpec;
  readonly status: number;
}

const METHODS: Partial<Record<RequestMethod, string>> = {
  [RequestMethod.GET]: 'get',
  [RequestMethod.POST]: 'post',
  [RequestMethod.PUT]: 'put',
  [RequestMethod.PATCH]: 'patch',
  [RequestMethod.DELETE]: 'delete',
};

const join = (...parts: string[]): string =>
  `/${parts
    .flatMap((p) => p.split('/'))
    .filter((p) => p !== '')
    .join('/')}`;

/** Every route declared with `@Api(...)` on these controllers. */
export function collectRoutes(controllers: readonly (abstract new (...args: never[]) => unknown)[]): RouteDoc[] {
  const routes: RouteDoc[] = [];
  for (const controller of controllers) {
    const base = (Reflect.getMetadata(PATH_METADATA, controller) as string | undefined) ?? '';
    const proto = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (name === 'constructor' || typeof handler !== 'function') continue;
      const spec = Reflect.getMetadata(API_SPEC, handler) as ApiSpec | undefined;
      const method = METHODS[Reflect.getMetadata(METHOD_METADATA, handler) as RequestMethod];
      if (!spec || !method) continue;
      const path = join(base, (Reflect.getMetadata(PATH_METADATA, handler) as string | undefined) ?? '').replace(/:(\w+)/g, '{$1}');
      routes.push({ method, path, spec, status: (Reflect.getMetadata(HTTP_CODE_METADATA, handler) as number | undefined) ?? 200 });
    }
  }
  return routes.sort((a, b) => a.path.localeCompare(b.path) || a.method.localeCompare(b.method));
}

const errorResponse = {
  description: 'An error: `{"error":{"code":"CAIRN-NNNN","message":"..."}}`',
  content: {
    'application/json': {
      schema: {
        type: 'object',
        required: ['error'],
        properties: {
          error: { type: 'object', required: ['code', 'message'], properties: { code: { type: 'string' }, message: { type: 'string' } } },
        },
      },
    },
  },
};

/** The OpenAPI 3.1 document of the REST API, built from the routes' declarations. */
export function buildOpenApi(routes: readonly RouteDoc[], version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    const parameters = [...route.path.matchAll(/\{(\w+)\}/g)].map((m) => ({
      name: m[1],
      in: 'path',
      required: true,
      schema: { type: 'string' },
      description: m[1] === 'project' ? 'project ID or name' : undefined,
    }));
    if (route.spec.query) {
      const schema = z.toJSONSchema(route.spec.query, { io: 'input', unrepresentable: 'any' }) as {
        properties?: Record<string, unknown>;
        required?: string[];
      };
      for (const [name, s] of Object.entries(schema.properties ?? {})) {
        parameters.push({
          name,
          in: 'query',
          required: schema.required?.includes(name) ?? false,
          schema: s as { type: string },
          description: undefined,
        });
      }
    }
    const roles = PERMISSIONS[route.spec.permission];
    (paths[route.path] ??= {})[route.method] = {
      summary: route.spec.summary,
      ...(route.spec.description ? { description: route.spec.description } : {}),
      tags: [route.spec.tag],
      security: [{ apiKey: [] }],
      'x-cairn-permission': route.spec.permission,
      'x-cairn-roles': roles,
      parameters,
      ...(route.spec.body
        ? {
            requestBody: {
              required: true,
              content: { 'application/json': { schema: z.toJSONSchema(route.spec.body, { io: 'input', unrepresentable: 'any' }) } },
            },
          }
        : {}),
      responses: {
        [String(route.status)]: { description: 'Success' },
        '400': errorResponse,
        '401': errorResponse,
        '403': errorResponse,
        '404': errorResponse,
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Cairn control plane',
      version,
      description:
        'Metadata only: runs, steps, workflows, schedules, keys, data planes, usage and audit. Payloads live in the data plane and are served by its gateway.',
    },
    components: { securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'an API key (cak_...)' } } },
    paths,
  };
}

/** Serves the OpenAPI document (no authentication: it describes the API, it holds no data). */
@Controller()
export class OpenApiController {
  private document: Record<string, unknown> | null = null;

  constructor(@Inject(API_CONTROLLERS) private readonly controllers: readonly (abstract new (...args: never[]) => unknown)[]) {}

  @Get('openapi.json')
  openapi(): Record<string, unknown> {
    this.document ??= buildOpenApi(collectRoutes(this.controllers), '1');
    return this.document;
  }
}
