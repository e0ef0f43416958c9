import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Poller } from '../../agent/src/agent.js';
import { ControllerClient } from '../../agent/src/client.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { silentLogger } from '../../shared/src/logger.js';
import { storePath } from '../controller/helpers.js';
import { liveController, type LiveController } from '../controller/server-helpers.js';

/** An agent without a websocket, against the real controller's long-poll. */
describe('the poller long-polls the controller', () => {
  let ctl: LiveController;
  let poller: Poller | null = null;
  let client: ControllerClient;
  const received: string[] = [];
  let arrived: () => void = () => {};

  beforeEach(async () => {
    ctl = await liveController();
    const host = await ctl.register('web-1');
    client = new ControllerClient({
      baseUrl: ctl.handle.url,
      host: 'web-1',
      identity: { file: '(test)', publicKey: host.keys.publicKey, secretKey: host.keys.secretKey },
      ed25519: tweetnaclEd25519,
    });
    received.length = 0;
  });
  afterEach(async () => {
    poller?.stop();
    await ctl.close();
  });

  function startPoller(waitSeconds: number): Poller {
    poller = new Poller({
      client,
      // Ten minutes: a change that arrives during a test came through a held poll, never through the interval.
      intervalMs: 600_000,
      waitSeconds,
      shouldPoll: () => true,
      onEnvelope: async (envelope) => {
        received.push(JSON.stringify(envelope));
        arrived();
      },
      logger: silentLogger(),
    });
    poller.start();
    return poller;
  }
  const nextArrival = () => new Promise<void>((resolve) => (arrived = resolve));

  it('learns of each change while its poll is held, not at its next interval', async () => {
    startPoller(30);
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    let next = nextArrival();
    expect((await ctl.setDesired('web-1', storePath('sys', 'a'))).status).toBe(200);
    await next;
    // It asked again at once: its next poll is held before the second change comes.
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    next = nextArrival();
    await ctl.setDesired('web-1', storePath('sys', 'b'));
    await next;
    expect(new Set(received).size).toBe(2);
  });

  it('abandons its held poll when stopped', async () => {
    const started = startPoller(30);
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(1);
    started.stop();
    await expect.poll(() => ctl.handle.deps.bus.waiterCount()).toBe(0);
  });
});
