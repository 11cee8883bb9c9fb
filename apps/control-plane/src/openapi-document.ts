import 'reflect-metadata';
import { API_CONTROLLER_CLASSES } from './app.module.js';
import { OPENAPI_VERSION, buildOpenApi, collectRoutes } from './http/openapi.js';

/**
 * The OpenAPI document of the REST API, as `GET /openapi.json` serves it, built from the
 * controllers' declarations without starting anything (scripts/openapi.mjs generates the CLI's
 * types from it).
 */
export function controlPlaneOpenApi(): Record<string, unknown> {
  return buildOpenApi(collectRoutes(API_CONTROLLER_CLASSES), OPENAPI_VERSION);
}
