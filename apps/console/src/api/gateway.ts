// A data plane's gateway, called by this browser directly: inputs, outputs, errors, transcripts
// and token streams are decrypted by the gateway and come here without passing through the control
// plane. Typed from the gateway's OpenAPI document (src/gen/gateway.ts).
import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from '../gen/gateway.js';
import { gatewayFor } from '../gateways.js';
import { ApiError, errorFromAnswer } from './errors.js';

export type GatewaySchemas = components['schemas'];
export type GatewayClient = Client<paths>;

/** A client for the data plane's gateway, or an {@link ApiError} saying how to configure one. */
export function gatewayClient(dataPlaneId: string): { client: GatewayClient; url: string } {
  const config = gatewayFor(dataPlaneId);
  if (config === undefined || config.url === '') {
    throw new ApiError(
      'not_configured',
      `No gateway is configured for data plane ${dataPlaneId} in this browser. Add its URL and a gateway token under Data planes.`,
    );
  }
  const client = createClient<paths>({
    baseUrl: config.url,
    headers: config.token === '' ? {} : { authorization: `Bearer ${config.token}` },
  });
  return { client, url: config.url };
}

/** Unwraps a gateway answer; an unreachable gateway or a refused token becomes a message saying what to do. */
export async function unwrapGateway<T>(url: string, call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  let answer: { data?: T; error?: unknown; response: Response };
  try {
    answer = await call;
  } catch {
    throw new ApiError(
      'unreachable',
      `The gateway at ${url} did not answer. Check that the URL is right and the gateway is running, and that its allowed origins (CAIRN_GATEWAY_CORS_ORIGINS, Helm value gateway.corsOrigins) include ${window.location.origin}.`,
    );
  }
  if (answer.response.ok && answer.data !== undefined) return answer.data;
  const error = errorFromAnswer(answer.response.status, answer.error, `The gateway at ${url}`);
  if (answer.response.status === 401) {
    throw new ApiError(
      'answer',
      `The gateway at ${url} refused the token: ${error.message} Set a current gateway token under Data planes.`,
      401,
      error.code,
    );
  }
  return Promise.reject(error);
}
