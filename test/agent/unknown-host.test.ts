import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { ControllerClient, describeCallError } from '../../agent/src/client.js';
import { loadOrCreateIdentity } from '../../agent/src/identity.js';
import { runCli } from '../../controller/src/cli/run.js';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { liveController, type LiveController } from '../controller/server-helpers.js';

let ctl: LiveController;
let dir: string;
beforeAll(async () => {
  ctl = await liveController();
  dir = mkdtempSync(join(tmpdir(), 'shoal-unknown-host-'));
});
afterAll(async () => {
  await ctl.close();
  rmSync(dir, { recursive: true, force: true });
});

it('tells the operator the exact shoal host register command for a host the controller does not know, and that command works', async () => {
  const { identity } = await loadOrCreateIdentity(dir);
  const client = new ControllerClient({ baseUrl: ctl.handle.url, host: 'stranger-1', identity, ed25519: tweetnaclEd25519 });
  const refused = await client.getManifest();
  expect(refused.ok).toBe(false);
  const message = refused.ok ? '' : describeCallError(refused.error);
  const command = /register it there with: (shoal host register \S+ --public-key \S+)/.exec(message)?.[1];
  expect(command, message).toBe(`shoal host register stranger-1 --public-key ${Buffer.from(identity.publicKey).toString('base64')}`);

  // What the operator pastes, run as the CLI runs it.
  let stderr = '';
  const code = await runCli(command!.split(' ').slice(1), {
    env: { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken },
    stdout: () => undefined,
    stderr: (text) => (stderr += text),
    fetch,
  });
  expect([code, stderr]).toEqual([0, '']);
  expect(await client.getManifest()).toEqual({ ok: true, value: { kind: 'none' } });
});
