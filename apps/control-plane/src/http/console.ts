// Serves the console (apps/console, built at build time) from the control plane: the built files
// are read into memory at start, hashed assets are cached for a year, and the app's own addresses
// (/, /signin, /p/…) answer index.html so that links open where they point. The page holds only
// metadata from this server; its payload panels are fetched by the browser from the data plane's
// gateway, so the Content-Security-Policy lets it connect to any http(s) origin but run only
// scripts from here. Text files are compressed once, at start (gzip and brotli), and each answer
// is sent in the encoding the browser accepts.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import negotiate from '@fastify/accept-negotiator';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
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

/** The file types worth compressing. Source maps are left as they are: only a browser's developer tools read them. */
const COMPRESSED_TYPES = new Set(['.html', '.js', '.css', '.svg', '.json']);

type Encoding = 'br' | 'gzip';

interface Asset {
  readonly body: Buffer;
  readonly type: string;
  /** The file compressed, per encoding, where that is smaller than the file; null for a type not compressed. */
  readonly encoded: Readonly<Partial<Record<Encoding, Buffer>>> | null;
  /** The encodings it can be sent in, best first: brotli (the smallest), gzip, then the file as it is. */
  readonly offers: readonly (Encoding | 'identity')[];
}

/**
 * gzip at its best level and brotli at quality 5: the console's files compress in a fraction of a
 * second at start. Brotli's best quality (11) makes them some 8% smaller but takes seconds.
 */
function encode(body: Buffer): Partial<Record<Encoding, Buffer>> {
  const encoded: Partial<Record<Encoding, Buffer>> = {};
  const br = brotliCompressSync(body, {
    params: {
      [zlib.BROTLI_PARAM_MODE]: zlib.BROTLI_MODE_TEXT,
      [zlib.BROTLI_PARAM_QUALITY]: 5,
      [zlib.BROTLI_PARAM_SIZE_HINT]: body.length,
    },
  });
  if (br.length < body.length) encoded.br = br;
  const gzip = gzipSync(body, { level: zlib.Z_BEST_COMPRESSION });
  if (gzip.length < body.length) encoded.gzip = gzip;
  return encoded;
}

function readAssets(dir: string): Map<string, Asset> {
  const assets = new Map<string, Asset>();
  const walk = (folder: string): void => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const body = readFileSync(path);
        const encoded = COMPRESSED_TYPES.has(extname(name)) ? encode(body) : null;
        assets.set('/' + relative(dir, path).split(sep).join('/'), {
          body,
          type: TYPES[extname(name)] ?? 'application/octet-stream',
          encoded,
          offers: [...(['br', 'gzip'] as const).filter((e) => encoded?.[e] !== undefined), 'identity'],
        });
      }
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
  const send = (request: FastifyRequest, reply: FastifyReply, asset: Asset, cache: string): FastifyReply => {
    reply.headers(CONSOLE_HEADERS).header('cache-control', cache).type(asset.type);
    if (asset.encoded === null) return reply.send(asset.body);
    // A cache between here and the browser must keep one copy per encoding.
    reply.header('vary', 'accept-encoding');
    const accepted = negotiate(request.headers['accept-encoding'] ?? '', [...asset.offers]);
    const encoded = accepted === 'br' || accepted === 'gzip' ? asset.encoded[accepted] : undefined;
    if (accepted === null || encoded === undefined) return reply.send(asset.body);
    return reply.header('content-encoding', accepted).send(encoded);
  };
  const favicon = assets.get('/favicon.svg');
  if (favicon !== undefined) http.get('/favicon.svg', (request, reply) => send(request, reply, favicon, 'public, max-age=86400'));
  for (const route of CONSOLE_ROUTES) {
    http.get(route, (request, reply) => send(request, reply, index, 'no-cache'));
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
    return send(request, reply, asset, 'public, max-age=31536000, immutable');
  });
  return dir;
}
