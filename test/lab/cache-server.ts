import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';

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

/**
 * Serves `dir` read-only. Binds 127.0.0.1 on an ephemeral port unless told otherwise; lab
 * hosts in their own network namespace need the lab bridge's address instead.
 */
export async function serveCache(dir: string, options: { host?: string; port?: number } = {}): Promise<CacheServer> {
  const root = normalize(dir);
  const requests: CacheRequest[] = [];
  const server: Server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://cache').pathname);
    const record = (status: number) => requests.push({ at: Date.now(), method: req.method ?? '?', path, status });
    const file = normalize(join(root, path));
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
