import Database from 'better-sqlite3';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import { ErrorBody } from '../../shared/src/protocol.js';
import type { LabController } from '../lab/controller.js';
import type { ApiResponse } from '../lab/operator-client.js';
import { Lab } from '../lab/lab.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

/**
 * test/controller/http covers each bad input against the Hono app in-process. This drives the
 * real controller process over a real socket (the node-server adapter, body limits on a stream
 * without Content-Length) and checks its SQLite file for writes.
 */
describe('the controller process refuses bad operator input over HTTP and writes nothing', () => {
  let lab: Lab;
  let controller: LabController;
  const STORE_PATH = '/nix/store/0fmc0rhihandbn3m4h0k14wi3ak51rvv-nixos-system-lab-good-2';

  function rowCounts(): Record<string, number> {
    const db = new Database(join(lab.dir, 'controller', 'controller.sqlite'), { readonly: true });
    try {
      const tables = ['hosts', 'manifests', 'reports', 'events', 'enrollment_tokens', 'operator_tokens'];
      return Object.fromEntries(tables.map((t) => [t, (db.prepare(`select count(*) as n from ${t}`).get() as { n: number }).n]));
    } finally {
      db.close();
    }
  }

  /**
   * PUTs `body` on a connection of its own (the server may close it after an early answer).
   * Chunked: with Transfer-Encoding: chunked, so the server cannot know the size up front.
   */
  function rawPut(path: string, body: string, options: { chunked: boolean }): Promise<ApiResponse> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(new URL(path, controller.url), {
        method: 'PUT',
        agent: false,
        headers: {
          authorization: `Bearer ${controller.adminToken}`,
          'content-type': 'application/json',
          ...(options.chunked ? { 'transfer-encoding': 'chunked' } : { 'content-length': String(Buffer.byteLength(body)) }),
        },
      });
      let answered = false;
      req.on('response', (res) => {
        answered = true;
        let text = '';
        res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
      });
      // The server may answer and close before we finished sending: only no answer at all is an error.
      req.on('error', () => undefined);
      req.on('close', () => setTimeout(() => answered || reject(new Error(`PUT ${path}: connection closed without an answer`)), 100));
      for (let i = 0; i < body.length; i += 8 * 1024) req.write(body.slice(i, i + 8 * 1024));
      req.end();
    });
  }

  function errorOf(response: ApiResponse): ErrorBody['error'] {
    return ErrorBody.parse(response.body).error;
  }

  beforeAll(async () => {
    lab = await Lab.start({ fixtures: await labFixtures() });
    controller = await lab.startController();
    await controller.client.registerHost({ name: 'api-1', publicKey: toBase64(generateNamedKey('api-1').publicKey) });
  });
  afterAll(() => lab?.cleanup());

  it('answers each bad request with a 4xx JSON error that names the problem', async () => {
    const before = rowCounts();
    const put = (host: string, body: unknown, token?: string | null) => controller.client.request('PUT', `/v1/hosts/${host}/desired`, body, { token });

    const malformed = await put('api-1', '{"storePath": ');
    expect([malformed.status, errorOf(malformed).code]).toEqual([400, 'malformed-json']);
    expect(errorOf(malformed).message).toMatch(/not valid JSON/);

    const unknown = await put('ghost-1', { storePath: STORE_PATH });
    expect([unknown.status, errorOf(unknown).code]).toEqual([404, 'unknown-host']);
    expect(errorOf(unknown).message).toContain('ghost-1');

    const badPath = await put('api-1', { storePath: '/nix/store/short-system' });
    expect([badPath.status, errorOf(badPath).code]).toEqual([400, 'invalid-request']);
    expect(errorOf(badPath).issues).toEqual([expect.stringMatching(/^storePath: not a Nix store path/)]);

    const oversized = await rawPut('/v1/hosts/api-1/desired', JSON.stringify({ storePath: STORE_PATH, pad: 'x'.repeat(100 * 1024) }), { chunked: false });
    expect([oversized.status, errorOf(oversized).code]).toEqual([413, 'body-too-large']);

    const noToken = await put('api-1', { storePath: STORE_PATH }, null);
    expect([noToken.status, errorOf(noToken).code]).toEqual([401, 'missing-token']);
    const badToken = await put('api-1', { storePath: STORE_PATH }, `${controller.adminToken}x`);
    expect([badToken.status, errorOf(badToken).code]).toEqual([401, 'invalid-token']);

    expect(rowCounts()).toEqual(before);
  });

  it('cuts off an oversized body streamed without a Content-Length', async () => {
    const before = rowCounts();
    const response = await rawPut('/v1/hosts/api-1/desired', JSON.stringify({ storePath: STORE_PATH, pad: 'x'.repeat(1024 * 1024) }), { chunked: true });
    expect([response.status, errorOf(response).code]).toEqual([413, 'body-too-large']);
    expect(rowCounts()).toEqual(before);
    // The same request, small, goes through on a stream as well: the limit, not chunking, refused it.
    const ok = await rawPut('/v1/hosts/api-1/desired', JSON.stringify({ storePath: STORE_PATH }), { chunked: true });
    expect(ok.status).toBe(200);
    expect(rowCounts().manifests).toBe(before.manifests! + 1);
  });
});
