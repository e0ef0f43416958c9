import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dirname, join, normalize } from 'node:path';
import { pipeline } from 'node:stream/promises';

export interface CacheRequest {
  at: number;
  method: string;
  /** URL path, e.g. "/abc…xyz.narinfo" or "/nar/….nar.zst". */
  path: string;
  status: number;
}

/** A binary-cache directory served over HTTP, with a log of every request it answered. */
export interface CacheServer {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly requests: readonly CacheRequest[];
  /** Whether a host asked this cache for the narinfo of `storePath` and got it. */
  served(storePath: string): boolean;
  close(): Promise<void>;
}

function narinfoName(storePath: string): string {
  const base = storePath.slice('/nix/store/'.length);
  return `/${base.slice(0, 32)}.narinfo`;
}

// What Nix's HTTP binary cache store uploads: nix-cache-info, <hash>.narinfo, nar/<hash>.nar.<ext>, log/…
const UPLOAD_PATH = /^\/[A-Za-z0-9+_.=-]+(\/[A-Za-z0-9+_.=-]+)?$/;

/**
 * An upload lands under a temporary name and is renamed into place, so a host reading the
 * cache meanwhile sees the whole file or none (as a real cache behind a web server would).
 */
async function storeUpload(req: IncomingMessage, file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  const temporary = `${file}.upload-${process.pid}-${Math.random().toString(36).slice(2)}`;
  try {
    await pipeline(req, createWriteStream(temporary));
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true });
    throw error;
  }
}

/**
 * Serves `dir`, read-only unless `writable` (then PUT stores files as Nix's HTTP binary cache
 * store uploads them: `nix copy --to http://…`). Binds 127.0.0.1 on an ephemeral port unless
 * told otherwise; lab hosts in their own network namespace need the lab bridge's address instead.
 */
export async function serveCache(dir: string, options: { host?: string; port?: number; writable?: boolean } = {}): Promise<CacheServer> {
  const root = normalize(dir);
  const requests: CacheRequest[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://cache').pathname);
    const record = (status: number) => requests.push({ at: Date.now(), method: req.method ?? '?', path, status });
    const file = normalize(join(root, path));
    if (req.method === 'PUT' && options.writable && UPLOAD_PATH.test(path) && file.startsWith(`${root}/`)) {
      storeUpload(req, file).then(
        () => {
          record(201);
          res.writeHead(201).end();
        },
        (error: Error) => {
          record(500);
          res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot store ${path}: ${error.message}\n`);
        },
      );
      return;
    }
    if ((req.method !== 'GET' && req.method !== 'HEAD') || !file.startsWith(`${root}/`)) {
      record(405);
      res.writeHead(405).end();
      return;
    }
    stat(file).then(
      (info) => {
        if (!info.isFile()) throw new Error('not a file');
        record(200);
        const type = path.endsWith('.narinfo') ? 'text/x-nix-narinfo' : path === '/nix-cache-info' ? 'text/plain' : 'application/octet-stream';
        res.writeHead(200, { 'content-type': type, 'content-length': info.size });
        if (req.method === 'HEAD') res.end();
        else createReadStream(file).pipe(res);
      },
      () => {
        record(404);
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      },
    );
  });
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${port}`,
    host,
    port,
    requests,
    served: (storePath) => requests.some((r) => r.path === narinfoName(storePath) && r.status === 200),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
