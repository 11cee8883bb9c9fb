// Serves the console (apps/console, built at build time) from the control plane: the built files
// are read into memory at start, hashed assets are cached for a year, and the app's own addresses
// (/, /signin, /p/…) answer index.html so that links open where they point. The page holds only
// metadata from this server; its payload panels are fetched by the browser from the data plane's
// gateway, so the Content-Security-Policy lets it connect to any http(s) origin but run only
// scripts from here.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { Logger } from '@cairn/common';

const TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.json': 'application/json; charset=utf-8',
};

/** What every console response carries. `connect-src` is open because gateways are configured in the browser. */
export const CONSOLE_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' http: https:; " +
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
};

/** The console's client-side addresses, answered with index.html. */
export const CONSOLE_ROUTES = ['/', '/signin', '/p/*'] as const;

/** The workspace's (or image's) built console, beside this app: apps/console/dist. */
export function defaultConsoleDir(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '../../../console/dist');
}

interface Asset {
  readonly body: Buffer;
  readonly type: string;
}

function readAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (folder: string): void => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else
        assets.set('/' + relative(dir, path).split(sep).join('/'), {
          body: readFileSync(path),
          type: TYPES[extname(name)] ?? 'application/octet-stream',
        });
    }
  };
  walk(dir);
  return assets;
}

/**
 * Registers the console's routes on the control plane's HTTP server. Answers where the console is
 * served from, or null when it is turned off or was not built (the API works without it).
 */
export function registerConsole(http: FastifyInstance, configured: string | null | undefined, logger: Logger): string | null {
  if (configured === null) return null;
  const dir = resolve(configured ?? defaultConsoleDir());
  if (!existsSync(join(dir, 'index.html'))) {
    if (configured !== undefined)
      throw new Error(`CAIRN_CP_CONSOLE_DIR: ${dir} holds no index.html; build the console (pnpm build) or set CAIRN_CP_CONSOLE_DIR=off`);
    logger.warn({ dir }, 'the console is not built, so it is not served; run `pnpm build` to build it');
    return null;
  }
  const assets = readAssets(dir);
  const index = assets.get('/index.html')!;
  const send = (reply: FastifyReply, asset: Asset, cache: string): FastifyReply =>
    reply.headers(CONSOLE_HEADERS).header('cache-control', cache).type(asset.type).send(asset.body);
  const favicon = assets.get('/favicon.svg');
  if (favicon !== undefined) http.get('/favicon.svg', (_request, reply) => send(reply, favicon, 'public, max-age=86400'));
  for (const route of CONSOLE_ROUTES) {
    http.get(route, (_request, reply) => send(reply, index, 'no-cache'));
  }
  http.get('/assets/*', (request, reply) => {
    const asset = assets.get(request.url.split('?')[0] ?? '');
    if (asset === undefined) {
      return reply
        .code(404)
        .type('application/json')
        .send({ error: { code: 'CAIRN-1105', message: 'No such console asset; reload the console to fetch the current version.' } });
    }
    // Vite names every asset by its content hash, so an asset never changes under its name.
    return send(reply, asset, 'public, max-age=31536000, immutable');
  });
  return dir;
}
