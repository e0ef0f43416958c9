import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { BinaryCacheReader } from '../../../controller/src/cache/reader.js';
import { generateNamedKey } from '../../../shared/src/keys.js';

const PATH = (i: number) => `/nix/store/${String(i).padStart(32, '0')}-pkg-${i}`;

let server: Server | null = null;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  server = null;
});

/** A cache that answers with `handler`; returns its URL. */
async function cache(handler: (path: string, reply: (status: number, body?: string) => void) => void): Promise<string> {
  server = createServer((req, res) => handler(req.url ?? '/', (status, body = '') => res.writeHead(status).end(body)));
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', () => resolve()));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const reader = (url: string, options: { concurrency?: number; timeoutMs?: number } = {}) =>
  new BinaryCacheReader({ caches: [{ url, publicKeys: [generateNamedKey('cache-1')] }], concurrency: options.concurrency ?? 4, timeoutMs: options.timeoutMs ?? 2_000 });

describe('binary cache reader', () => {
  it('says a path is missing when the cache answers 404', async () => {
    const url = await cache((_path, reply) => reply(404));
    expect(await reader(url).lookup(PATH(1))).toEqual({ state: 'missing' });
  });

  it('gives up on a cache that does not answer within the timeout, naming it', async () => {
    const url = await cache(() => undefined);
    const lookup = await reader(url, { timeoutMs: 200 }).lookup(PATH(1));
    expect(lookup).toEqual({ state: 'error', detail: `${url}/nix-cache-info: no answer within 200 ms` });
  });

  it('refuses an answer larger than a narinfo can be, without reading all of it', async () => {
    const url = await cache((path, reply) => reply(200, path === '/nix-cache-info' ? 'StoreDir: /nix/store\n' : 'x'.repeat(2 * 1024 * 1024)));
    expect(await reader(url).lookup(PATH(1))).toMatchObject({ state: 'error', detail: expect.stringContaining('answer larger than 1048576 bytes') });
  });

  it('refuses a cache for another store directory', async () => {
    const url = await cache((_path, reply) => reply(200, 'StoreDir: /gnu/store\n'));
    expect(await reader(url).lookup(PATH(1))).toEqual({ state: 'error', detail: `${url} serves store directory /gnu/store, not /nix/store` });
  });

  it('keeps at most `concurrency` requests in flight', async () => {
    let inFlight = 0;
    let most = 0;
    const url = await cache((path, reply) => {
      if (path === '/nix-cache-info') return reply(404);
      inFlight += 1;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight -= 1;
        reply(404);
      }, 20);
    });
    const r = reader(url, { concurrency: 3 });
    await Promise.all(Array.from({ length: 20 }, (_, i) => r.lookup(PATH(i))));
    expect(most).toBe(3);
    expect(r.requests).toBe(21);
  });
});
