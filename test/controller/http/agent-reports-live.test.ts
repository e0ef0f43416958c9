import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, ReportAck, controllerAudience } from '../../../shared/src/protocol.js';
import { count, sampleReport, signChallenge, type TestHost } from '../helpers.js';
import { liveController, type LiveController } from '../server-helpers.js';

/** A failure report with a 4 KB reason: a few hundred of them exceed the body limit. */
const report = (seq: number) => sampleReport(seq, 'failed', { reason: 'x'.repeat(4000) });

const stored = (ctl: LiveController) => count(ctl.handle, 'reports');

describe('agent reports over a real socket', () => {
  let ctl: LiveController;
  let session: string;
  beforeEach(async () => {
    ctl = await liveController();
    session = await httpSession(ctl, await ctl.register('web-1'));
  });
  afterEach(async () => ctl.close());

  const body = (from: number, n: number) => JSON.stringify({ protocol: PROTOCOL_VERSION, reports: Array.from({ length: n }, (_, i) => report(from + i)) });
  const post = (text: string, chunked = false) =>
    fetch(`${ctl.handle.url}/v1/agent/reports`, {
      method: 'POST',
      headers: { authorization: `Bearer ${session}`, 'content-type': 'application/json' },
      // A stream has no length: it goes out chunked and the limit is counted while reading.
      ...(chunked
        ? { body: new Blob([text]).stream(), duplex: 'half' }
        : { body: text }),
    } as RequestInit);

  it('stores a batch sent with a Content-Length under the limit, and refuses one over it unread', async () => {
    const small = await post(body(1, 200));
    expect(small.status).toBe(200);
    expect(ReportAck.parse(await small.json()).stored).toBe(200);
    const huge = await post(body(1000, 300));
    expect(huge.status).toBe(413);
    expect(await stored(ctl)).toBe(200);
  });

  it('applies the same limit to a chunked batch', async () => {
    expect((await post(body(1, 200), true)).status).toBe(200);
    expect((await post(body(1000, 300), true)).status).toBe(413);
    expect(await stored(ctl)).toBe(200);
  });
});

async function httpSession(ctl: LiveController, host: TestHost): Promise<string> {
  const post = (path: string, payload: unknown) =>
    fetch(`${ctl.handle.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(payload) });
  const { nonce } = (await (await post('/v1/agent/challenge', { protocol: PROTOCOL_VERSION, host: host.name })).json()) as { nonce: string };
  const response = await post('/v1/agent/session', { protocol: PROTOCOL_VERSION, host: host.name, nonce, signature: signChallenge(host, nonce, controllerAudience(ctl.handle.url)) });
  return ((await response.json()) as { token: string }).token;
}
