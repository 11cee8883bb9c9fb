// Outbound HTTP(S) proxy for the data plane's processes, from the usual variables.
//
// Neither client honours them by itself: Node's fetch (which model providers' SDKs call) ignores
// HTTPS_PROXY unless the process started with NODE_USE_ENV_PROXY, and @grpc/grpc-js reads only the
// lower-case `https_proxy` / `http_proxy` / `grpc_proxy` and `no_proxy` / `no_grpc_proxy`.
import * as http from 'node:http';

/** The proxy settings in effect, as logged at start-up (the proxy's origin, never its credentials). */
export interface EgressProxy {
  /** Proxy for https:// requests and for the gRPC connection (scheme, host and port). */
  readonly httpsProxy: string | undefined;
  /** Proxy for http:// requests. */
  readonly httpProxy: string | undefined;
  /** Hosts reached directly (NO_PROXY as given). */
  readonly noProxy: string | undefined;
}

type Env = Record<string, string | undefined>;

/** The value of a proxy variable, lower case first (as curl and undici read them); empty is unset. */
function read(env: Env, name: string): { variable: string; value: string } | undefined {
  for (const variable of [name.toLowerCase(), name.toUpperCase()]) {
    const value = env[variable]?.trim();
    if (value) return { variable, value };
  }
  return undefined;
}

function origin(found: { variable: string; value: string } | undefined): string | undefined {
  if (found === undefined) return undefined;
  // The value is never echoed: it may carry the proxy's credentials.
  const refused = new Error(
    `${found.variable} is not an http:// or https:// URL: give the proxy as http://host:port (credentials, if any, as http://user:password@host:port)`,
  );
  let url: URL;
  try {
    url = new URL(found.value);
  } catch {
    throw refused;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw refused;
  return `${url.protocol}//${url.host}`;
}

/**
 * Routes this process's outbound HTTP through the proxy named by `HTTPS_PROXY` / `HTTP_PROXY`
 * (either case), except for the hosts in `NO_PROXY`:
 *
 * - `fetch` and `node:http(s)`'s global agents, so model provider SDKs go through it (Node's own
 *   `http.setGlobalProxyFromEnv`, which installs undici's `EnvHttpProxyAgent`);
 * - the gRPC connection to the control plane (an HTTP CONNECT tunnel; TLS runs end to end inside
 *   it), by giving @grpc/grpc-js the lower-case variables it reads when only upper-case ones are set.
 *
 * Returns the settings to log, or undefined when no proxy is set. Throws, naming the variable, for
 * a value that is not an http(s) URL.
 */
export function useEgressProxyFromEnv(env: Env = process.env): EgressProxy | undefined {
  const https = read(env, 'https_proxy');
  const plain = read(env, 'http_proxy');
  const noProxy = read(env, 'no_proxy');
  const settings: EgressProxy = { httpsProxy: origin(https), httpProxy: origin(plain), noProxy: noProxy?.value };
  if (https === undefined && plain === undefined) return undefined;
  const setGlobalProxyFromEnv = (http as { setGlobalProxyFromEnv?: (env: Env) => unknown }).setGlobalProxyFromEnv;
  if (setGlobalProxyFromEnv === undefined) {
    throw new Error(
      `${(https ?? plain)!.variable} is set but this Node.js cannot apply it to fetch (http.setGlobalProxyFromEnv needs Node.js 24.5 or newer): ` +
        'upgrade Node.js, or start the process with NODE_USE_ENV_PROXY=1',
    );
  }
  setGlobalProxyFromEnv({
    ...(https ? { HTTPS_PROXY: https.value } : {}),
    ...(plain ? { HTTP_PROXY: plain.value } : {}),
    ...(noProxy ? { NO_PROXY: noProxy.value } : {}),
  });
  // @grpc/grpc-js reads these from process.env itself, lower case only, each time it opens a channel.
  if (https && !process.env['https_proxy']) process.env['https_proxy'] = https.value;
  if (plain && !process.env['http_proxy']) process.env['http_proxy'] = plain.value;
  if (noProxy && !process.env['no_proxy']) process.env['no_proxy'] = noProxy.value;
  return settings;
}
