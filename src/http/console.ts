import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join, relative, sep } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { CONSOLE_CSP } from './edge/index.ts';

// Serves the operator console (console/, built by Vite into console/dist) under /console.
// The build is a handful of files, so they are read once into memory, with a gzip copy of each:
// no file-system access per request, no path from a URL ever reaches the file system.
// Hashed assets are cached for a year; index.html never (so a new build is picked up at once).
// Every page carries the strict CSP (scripts and calls from this origin only, no inline script).

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

interface Asset {
  body: Buffer;
  gzip?: Buffer;
  type: string;
  etag: string;
  immutable: boolean;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = join(dir, name);
    return statSync(full).isDirectory() ? walk(full) : [full];
  });
}

export function loadConsoleAssets(distDir: string): Map<string, Asset> | undefined {
  if (!existsSync(join(distDir, 'index.html'))) return undefined;
  const assets = new Map<string, Asset>();
  for (const file of walk(distDir)) {
    const type = TYPES[extname(file)];
    if (!type) continue;
    const body = readFileSync(file);
    const path = relative(distDir, file).split(sep).join('/');
    assets.set(path, {
      body,
      type,
      gzip: body.length > 1024 && !type.startsWith('image/png') ? gzipSync(body, { level: 9 }) : undefined,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      immutable: path.startsWith('assets/'),
    });
  }
  return assets;
}

export interface ConsoleOptions {
  /** Where the built console is (console/dist). */
  distDir: string;
}

export function registerConsole(app: FastifyInstance, opts: ConsoleOptions) {
  const assets = loadConsoleAssets(opts.distDir);

  function send(req: FastifyRequest, reply: FastifyReply, a: Asset) {
    reply.header('content-type', a.type);
    reply.header('etag', a.etag);
    reply.header('cache-control', a.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
    reply.header('content-security-policy', CONSOLE_CSP);
    reply.header('vary', 'Accept-Encoding');
    if (req.headers['if-none-match'] === a.etag) return reply.status(304).send();
    const gz = a.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (gz) reply.header('content-encoding', 'gzip');
    return reply.send(gz ? a.gzip : a.body);
  }

  const hide = { schema: { hide: true } };
  app.get('/console', hide, async (_req, reply) => reply.redirect('/console/', 302));
  app.get<{ Params: { '*': string } }>('/console/*', hide, async (req, reply) => {
    if (!assets) {
      reply.header('content-type', 'text/plain; charset=utf-8');
      return reply
        .status(503)
        .send('The console is not built. `npm start` builds it; or run `node console/build.mjs`.\n');
    }
    const path = req.params['*'];
    const asset = assets.get(path);
    if (asset) return send(req, reply, asset);
    // A missing file under assets/ is a 404 (a stale page asking for an old build's chunk);
    // any other path is a page of the single-page app, which the app's router draws.
    if (path.startsWith('assets/') || extname(path) !== '')
      return reply
        .status(404)
        .send({ error: { code: 'route_not_found', message: 'No such console file', request_id: req.id } });
    return send(req, reply, assets.get('index.html')!);
  });
  return { built: assets !== undefined };
}
