import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCheck, runHealthGate } from '../../agent/src/health.js';

describe('health checks', () => {
  let server: Server;
  let base: string;
  let healthyAfter = 0;

  beforeAll(async () => {
    server = createServer((req, res) => {
      if (req.url === '/health') return void res.writeHead(200).end('ok');
      if (req.url === '/slow') return void setTimeout(() => res.writeHead(200).end('late'), 2_000);
      if (req.url === '/eventually') return void res.writeHead(Date.now() >= healthyAfter ? 200 : 503).end('warming up');
      res.writeHead(500).end('database down');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it('passes an HTTP probe that answers the expected status', async () => {
    expect(await runCheck({ kind: 'http', name: 'web', url: `${base}/health`, expectStatus: 200, timeoutMs: 1_000 })).toEqual({ ok: true });
  });

  it('fails an HTTP probe with another status and shows what it answered', async () => {
    const result = await runCheck({ kind: 'http', name: 'web', url: `${base}/broken`, expectStatus: 200, timeoutMs: 1_000 });
    expect(result).toEqual({
      ok: false,
      reason: 'health check web failed: status 500, expected 200',
      failure: { command: `GET ${base}/broken`, exitCode: null, signal: null, timedOut: false, outputTail: 'HTTP 500\ndatabase down' },
    });
  });

  it('fails an HTTP probe that does not answer in time', async () => {
    const result = await runCheck({ kind: 'http', name: 'web', url: `${base}/slow`, expectStatus: 200, timeoutMs: 200 });
    expect(!result.ok && result.failure.timedOut).toBe(true);
    expect(!result.ok && result.reason).toBe('health check web failed: no answer within 200 ms');
  });

  it('retries until a service that is still starting comes up within the deadline', async () => {
    healthyAfter = Date.now() + 500;
    const gate = await runHealthGate({
      checks: [{ kind: 'http', name: 'web', url: `${base}/eventually`, expectStatus: 200, timeoutMs: 500 }],
      deadlineMs: 5_000,
      retryIntervalMs: 100,
      controllerReachable: async () => true,
    });
    expect(gate).toEqual({ ok: true });
  });

  it('checks once more at the deadline, so a service that comes up in the last retry interval passes', async () => {
    healthyAfter = Date.now() + 900;
    const gate = await runHealthGate({
      checks: [{ kind: 'http', name: 'web', url: `${base}/eventually`, expectStatus: 200, timeoutMs: 500 }],
      deadlineMs: 1_000,
      retryIntervalMs: 800,
      controllerReachable: async () => true,
    });
    expect(gate).toEqual({ ok: true });
  });

  it('gives up at the deadline, not before it, when the checks keep failing', async () => {
    const started = Date.now();
    const gate = await runHealthGate({
      checks: [{ kind: 'http', name: 'web', url: `${base}/broken`, expectStatus: 200, timeoutMs: 500 }],
      deadlineMs: 1_000,
      retryIntervalMs: 800,
      controllerReachable: async () => true,
    });
    expect(gate).toMatchObject({ ok: false, reason: 'health check web failed: status 500, expected 200 (still failing at the 1000 ms health deadline)' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
  });

  it('counts only units that failed after the switch', async () => {
    const gate = (failedNow: string[]) =>
      runHealthGate({
        checks: [],
        deadlineMs: 300,
        retryIntervalMs: 100,
        failedUnits: async () => failedNow,
        unitsFailedBefore: ['old.service'],
        controllerReachable: async () => true,
      });
    expect(await gate(['old.service'])).toEqual({ ok: true });
    expect(await gate(['old.service', 'web.service'])).toMatchObject({ ok: false, reason: expect.stringMatching(/^systemd units failed: web.service/) });
  });
});
