import { Controller, Get, Inject, RequestMethod } from '@nestjs/common';
import { HTTP_CODE_METADATA, METHOD_METADATA, PATH_METADATA } from '@nestjs/common/constants.js';
import { z } from 'zod';
import { PERMISSIONS } from '../auth/permissions.js';
import { API_SPEC, type ApiSpec } from './api.js';
import { responseSchemas } from './responses.js';

/** The `info.version` of the document: the REST API's major version. */
export const OPENAPI_VERSION = '1';

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

const COMPONENT_URI = (id: string): string => `#/components/schemas/${id}`;

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: COMPONENT_URI('Error') } } },
});

const ERRORS: Record<string, string> = {
  '400': 'Bad input (CAIRN-1101): the message names each field and what is wrong',
  '401': 'No, an unknown, expired or revoked API key (CAIRN-1104)',
  '403': "The key's role may not do this (CAIRN-1111): the message names the roles that may",
  '404': 'No such project, run, workflow, schedule, key or data plane here (CAIRN-1105)',
  '409':
    'A conflict with the current state (CAIRN-1108, CAIRN-1114, CAIRN-1115; audit: CAIRN-1150 chain broken, CAIRN-1154 no signing key)',
  '429':
    'A project quota (CAIRN-1112), the request rate of this key or its organisation (CAIRN-1113), or too many failed credential attempts from this address (CAIRN-1142): wait for Retry-After',
  '503':
    'The control plane is not ready or cannot reach its database (CAIRN-1110), or a database statement ran past the statement timeout (CAIRN-1170): retry',
};

type JsonSchema = Record<string, unknown>;

function clean(schema: JsonSchema): JsonSchema {
  const { $schema: _schema, $id: _id, ...rest } = schema;
  return rest;
}

/** The named response schemas, as `components.schemas`. */
function componentSchemas(): Record<string, JsonSchema> {
  const { schemas } = z.toJSONSchema(responseSchemas, { io: 'output', uri: COMPONENT_URI, unrepresentable: 'any' }) as {
    schemas: Record<string, JsonSchema>;
  };
  return Object.fromEntries(Object.entries(schemas).map(([id, schema]) => [id, clean(schema)]));
}

/** A `$ref` to a named response schema, else the schema inline. */
function responseSchema(schema: z.ZodType): JsonSchema {
  const id = responseSchemas.get(schema)?.id;
  if (id) return { $ref: COMPONENT_URI(id) };
  return clean(z.toJSONSchema(schema, { io: 'output', unrepresentable: 'any' }));
}

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
        ...Object.fromEntries(
          [route.status, ...(route.spec.alsoStatus ?? [])].map((status) => [
            String(status),
            {
              description: status === 201 ? 'Created' : 'Success',
              content: { 'application/json': { schema: responseSchema(route.spec.response) } },
            },
          ]),
        ),
        ...Object.fromEntries(
          ['400', '401', '403', '404', ...(route.method === 'get' ? [] : ['409']), '429', '503'].map((status) => [
            status,
            errorResponse(ERRORS[status]!),
          ]),
        ),
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
    components: {
      securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'an API key (cak_...)' } },
      schemas: componentSchemas(),
    },
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
    this.document ??= buildOpenApi(collectRoutes(this.controllers), OPENAPI_VERSION);
    return this.document;
  }
}
