import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ControllerClient } from '../../agent/src/client.js';
import { ControllerEndpoints } from '../../agent/src/endpoints.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { liveController, type LiveController } from '../controller/server-helpers.js';

/** A real HTTP server that answers every request with `status`, as a proxy without a backend does. */
async function answering(status: number): Promise<{ url: string; server: Server }> {
  const server = createServer((_request, response) => response.writeHead(status, { 'content-type': 'text/plain' }).end('no backend'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

/** A loopback URL nothing listens on (the port was just released). */
async function refusing(): Promise<string> {
  const { url, server } = await answering(200);
  await new Promise((resolve) => server.close(resolve));
  return url;
}

describe('controller endpoints', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) await cleanup();
  });

  it('moves to the next URL once per failure of the current one, wrapping around', () => {
    const endpoints = new ControllerEndpoints(['http://a', 'http://b', 'http://c']);
    endpoints.failed('http://a', 'refused');
    expect(endpoints.current).toBe('http://b');
    // The websocket and a poll often notice the same outage: the second report of "a" changes nothing.
    endpoints.failed('http://a', 'refused');
    expect(endpoints.current).toBe('http://b');
    endpoints.failed('http://b', 'refused');
    endpoints.failed('http://c', 'refused');
    expect(endpoints.current).toBe('http://a');
  });

  it.each([
    ['refuses connections', async () => ({ url: await refusing(), close: async () => undefined })],
    [
      'answers 503',
      async () => {
        const { url, server } = await answering(503);
        return { url, close: () => new Promise((resolve) => server.close(resolve)) };
      },
    ],
  ])('has the agent client use the next controller when the current one %s', async (_what, makeDown) => {
    const down = await makeDown();
    cleanups.push(down.close);
    const live: LiveController = await liveController();
    cleanups.push(() => live.close());
    const host = await live.register('web-1');
    const endpoints = new ControllerEndpoints([down.url, live.handle.url]);
    const client = new ControllerClient({ baseUrl: endpoints, host: 'web-1', identity: { file: '(test)', publicKey: host.keys.publicKey, secretKey: host.keys.secretKey }, ed25519: tweetnaclEd25519 });

    const failed = await client.getManifest();
    expect(failed.ok).toBe(false);
    expect(endpoints.current).toBe(live.handle.url);
    // The caller retries after its backoff, as the poller and the outbox do: now at the live controller.
    expect(await client.getManifest()).toEqual({ ok: true, value: { kind: 'none' } });
  });
});
