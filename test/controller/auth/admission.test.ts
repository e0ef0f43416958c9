import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentRoutes, PROTOCOL_VERSION, WsClose } from '../../../shared/src/protocol.js';
import { sourceKey } from '../../../controller/src/auth/admission.js';
import { AgentSocket, liveController, type LiveController } from '../server-helpers.js';

const sockets: AgentSocket[] = [];
let ctl: LiveController | null = null;
afterEach(async () => {
  for (const socket of sockets.splice(0)) socket.close();
  await ctl?.close();
  ctl = null;
});

function open(url: string, localAddress = '127.0.0.1'): AgentSocket {
  const socket = new AgentSocket(url, { localAddress });
  sockets.push(socket);
  return socket;
}

/** The first thing the controller does with a new socket: a challenge, or a close. */
async function firstAnswer(socket: AgentSocket): Promise<'challenge' | { code: number; reason: string }> {
  return Promise.race([socket.expect('challenge').then(() => 'challenge' as const), socket.closed]);
}

/** POST /v1/agent/challenge from a given source address (fetch cannot choose one). */
function askChallenge(url: string, host: string, localAddress = '127.0.0.1'): Promise<{ status: number; body: any; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(`${url}${AgentRoutes.challenge}`, { method: 'POST', localAddress, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text), retryAfter: res.headers['retry-after'] as string | undefined }));
    });
    req.on('error', reject);
    req.end(JSON.stringify({ protocol: PROTOCOL_VERSION, host }));
  });
}

describe('unauthenticated websockets', () => {
  it('lets one address hold only its share of unauthenticated sockets, closing the rest with 4429 and a reason', async () => {
    ctl = await liveController({ hub: { unauthenticated: { total: 1000, perAddress: 20 } } });
    const attacker = Array.from({ length: 30 }, () => open(ctl!.handle.url));
    const answers = await Promise.all(attacker.map(firstAnswer));
    expect(answers.filter((a) => a === 'challenge')).toHaveLength(20);
    const refused = answers.filter((a): a is { code: number; reason: string } => a !== 'challenge');
    expect(refused).toHaveLength(10);
    for (const close of refused) {
      expect(close.code).toBe(WsClose.tooManyUnauthenticated);
      expect(close.reason).toContain('20 unauthenticated connections from your address');
    }
    expect(ctl.handle.hub.unauthenticatedCount('127.0.0.1')).toBe(20);

    // An agent from another address is not affected, and once welcomed holds no slot.
    const host = await ctl.register('web-1');
    const agent = open(ctl.handle.url, '127.0.0.2');
    await agent.authenticate(host);
    await agent.expect('welcome');
    expect(ctl.handle.hub.unauthenticatedCount('127.0.0.2')).toBe(0);

    // Closing the attacker's sockets gives the address its room back.
    for (const socket of attacker) socket.close();
    await Promise.all(attacker.map((s) => s.closed));
    await expect.poll(() => ctl!.handle.hub.unauthenticatedCount('127.0.0.1')).toBe(0);
    const later = open(ctl.handle.url);
    expect(await firstAnswer(later)).toBe('challenge');
  });

  it('caps unauthenticated sockets in total, across addresses', async () => {
    ctl = await liveController({ hub: { unauthenticated: { total: 6, perAddress: 4 } } });
    const held = [...Array.from({ length: 4 }, () => open(ctl!.handle.url, '127.0.0.2')), ...Array.from({ length: 2 }, () => open(ctl!.handle.url, '127.0.0.3'))];
    expect(await Promise.all(held.map(firstAnswer))).toEqual(Array(6).fill('challenge'));
    const refused = await firstAnswer(open(ctl.handle.url, '127.0.0.4'));
    expect(refused).toEqual({ code: WsClose.tooManyUnauthenticated, reason: expect.stringContaining('controller busy') });
  });

  it('does not count authenticated agents: many hosts behind one address all connect', async () => {
    ctl = await liveController({ hub: { unauthenticated: { total: 100, perAddress: 2 } } });
    for (let i = 0; i < 8; i++) {
      const host = await ctl.register(`web-${i}`);
      const socket = open(ctl.handle.url);
      await socket.authenticate(host);
      await socket.expect('welcome');
    }
    expect(ctl.handle.hub.connectedCount).toBe(8);
  });
});

describe('pending challenges', () => {
  it('refuses more pending challenges from one address with 429 and Retry-After, and not other addresses', async () => {
    ctl = await liveController({ pendingChallenges: { total: 1000, perAddress: 50 } });
    await ctl.register('web-1');
    const answers = await Promise.all(Array.from({ length: 60 }, () => askChallenge(ctl!.handle.url, 'web-1')));
    expect(answers.filter((a) => a.status === 200)).toHaveLength(50);
    const refused = answers.filter((a) => a.status !== 200);
    expect(refused).toHaveLength(10);
    for (const answer of refused) {
      expect(answer.status).toBe(429);
      expect(answer.body.error).toMatchObject({ code: 'too-many-pending-challenges', message: expect.stringContaining('50 challenges') });
      expect(answer.retryAfter).toBe('1');
    }
    expect(ctl.handle.deps.challenges.size).toBe(50);
    // Another address still gets one.
    expect((await askChallenge(ctl.handle.url, 'web-1', '127.0.0.2')).status).toBe(200);
  });

  it('answers 503 once the controller holds its total of pending challenges', async () => {
    ctl = await liveController({ pendingChallenges: { total: 5, perAddress: 3 } });
    await ctl.register('web-1');
    for (const address of ['127.0.0.2', '127.0.0.2', '127.0.0.2', '127.0.0.3', '127.0.0.3']) {
      expect((await askChallenge(ctl.handle.url, 'web-1', address)).status).toBe(200);
    }
    const busy = await askChallenge(ctl.handle.url, 'web-1', '127.0.0.4');
    expect(busy.status).toBe(503);
    expect(busy.body.error.code).toBe('controller-busy');
  });
});

describe('source addresses', () => {
  it('folds IPv4-mapped IPv6 to IPv4 and counts IPv6 by its /64', () => {
    expect(sourceKey('::ffff:10.0.0.1')).toBe('10.0.0.1');
    expect(sourceKey('2001:db8:1:2:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('2001:db8:1:2:bbbb:cccc:dddd:eeee')).toBe('2001:db8:1:2::/64');
    expect(sourceKey('::1')).toBe('0:0:0:0::/64');
    expect(sourceKey(undefined)).toBe('unknown');
  });
});
