import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpFetch } from '../../agent/src/http-fetch.js';

describe('httpFetch (the agent client over node:http)', () => {
  let server: Server;
  let base: string;
  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/hang') return; // never answers
      let body = '';
      req.on('data', (chunk: Buffer) => (body += chunk.toString()));
      req.on('end', () => {
        res.writeHead(req.url === '/missing' ? 404 : 200, { etag: '"v7"', 'content-type': 'application/json' });
        res.end(JSON.stringify({ method: req.method, body, auth: req.headers.authorization ?? null, length: req.headers['content-length'] ?? null }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('sends the method, headers and body, and answers with status, headers and text', async () => {
    const body = JSON.stringify({ note: 'héllo' });
    const answer = await httpFetch(new URL('/x', base), { method: 'POST', headers: { authorization: 'Bearer t' }, body, signal: AbortSignal.timeout(5000) });
    expect(answer.ok).toBe(true);
    expect(answer.status).toBe(200);
    expect(answer.headers.get('ETag')).toBe('"v7"');
    expect(answer.headers.get('x-absent')).toBeNull();
    expect(JSON.parse(await answer.text())).toEqual({ method: 'POST', body, auth: 'Bearer t', length: String(Buffer.byteLength(body)) });
  });

  it('answers a 404 as not ok, with its body', async () => {
    const answer = await httpFetch(new URL('/missing', base), { method: 'GET', headers: {}, signal: AbortSignal.timeout(5000) });
    expect(answer.ok).toBe(false);
    expect(answer.status).toBe(404);
    expect(JSON.parse(await answer.text())).toMatchObject({ method: 'GET' });
  });

  it('rejects with the socket error code as cause when nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const error = await httpFetch(new URL(`http://127.0.0.1:${port}/`), { method: 'GET', headers: {}, signal: AbortSignal.timeout(5000) }).catch((e: unknown) => e);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
  });

  it('rejects with the signal reason when the answer does not come in time', async () => {
    const error = await httpFetch(new URL('/hang', base), { method: 'GET', headers: {}, signal: AbortSignal.timeout(200) }).catch((e: unknown) => e);
    expect((error as Error).name).toBe('TimeoutError');
  });

  it('refuses a URL scheme it cannot speak, naming it', async () => {
    await expect(httpFetch(new URL('ftp://example.invalid/'), { method: 'GET', headers: {}, signal: AbortSignal.timeout(5000) })).rejects.toThrow(/unsupported URL scheme ftp:/);
  });
});
