// For tests of the HTTP APIs (gateway, control plane): checks answers against the API's own OpenAPI
// document. The operation for the method and path must exist, the status must be documented, and a
// JSON body must match the documented schema (JSON Schema 2020-12, $refs into components resolved
// by ajv).
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';

type Json = Record<string, unknown>;

export class OpenApiCheck {
  readonly #doc: Json;
  readonly #ajv: Ajv2020;
  readonly #validators = new Map<string, ValidateFunction>();
  readonly #routes: Array<{ method: string; template: string; pattern: RegExp }> = [];
  /** Every `METHOD template status` checked, to tell which documented answers were exercised. */
  readonly seen = new Set<string>();

  constructor(doc: Json) {
    this.#doc = doc;
    this.#ajv = new Ajv2020({ strict: false, validateFormats: false, allErrors: true });
    this.#ajv.addSchema({ $id: 'openapi', components: doc['components'] });
    for (const [template, operations] of Object.entries(doc['paths'] as Record<string, Json>)) {
      const pattern = new RegExp(`^${template.replace(/\{\w+\}/g, '[^/]+')}$`);
      for (const method of Object.keys(operations)) this.#routes.push({ method: method.toUpperCase(), template, pattern });
    }
  }

  /** Throws naming the route, status and every mismatch when the answer is not what the document says. */
  check(method: string, url: string, status: number, contentType: string | undefined, body: unknown): void {
    const path = url.split('?')[0]!;
    const route = this.#routes.find((r) => r.method === method && r.pattern.test(path));
    if (!route) {
      if (status === 404) return; // no such route: the 404 is the answer, and it is checked by its own test
      throw new Error(`${method} ${path}: no such operation in the OpenAPI document`);
    }
    const operation = (this.#doc['paths'] as Record<string, Record<string, Json>>)[route.template]![method.toLowerCase()]!;
    const response = (operation['responses'] as Record<string, Json>)[String(status)];
    if (!response) throw new Error(`${method} ${route.template} answered ${status}, which its OpenAPI operation does not document`);
    this.seen.add(`${method} ${route.template} ${status}`);
    const content = response['content'] as Record<string, { schema: Json }> | undefined;
    if (!content) return;
    if (content['text/event-stream']) {
      if (!contentType?.startsWith('text/event-stream')) throw new Error(`${method} ${route.template} ${status}: expected an event stream`);
      return;
    }
    const schema = content['application/json']?.schema;
    if (!schema) throw new Error(`${method} ${route.template} ${status}: no JSON schema documented`);
    const key = `${method} ${route.template} ${status}`;
    let validate = this.#validators.get(key);
    if (!validate) {
      validate = this.#ajv.compile(rebase(schema));
      this.#validators.set(key, validate);
    }
    if (!validate(body)) {
      throw new Error(
        `${method} ${route.template} ${status}: the body does not match the documented schema: ` +
          `${this.#ajv.errorsText(validate.errors, { separator: '; ' })}\n${JSON.stringify(body).slice(0, 2000)}`,
      );
    }
  }
}

/** `#/components/...` refs point into the document registered as `openapi`. */
function rebase(schema: unknown): Json {
  return JSON.parse(JSON.stringify(schema).replace(/"\$ref":"#\/components\//g, '"$ref":"openapi#/components/')) as Json;
}
