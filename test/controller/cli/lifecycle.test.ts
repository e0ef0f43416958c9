import Database from 'better-sqlite3';
import { and, asc, eq, like } from 'drizzle-orm';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fromBase64, keyFingerprint } from '../../../shared/src/keys.js';
import { WsClose } from '../../../shared/src/protocol.js';
import { runCli } from '../../../controller/src/cli/run.js';
import { eventsOf, newHostKeys, storePath } from '../helpers.js';
import { AgentSocket, liveController, type LiveController } from '../server-helpers.js';
import { onPostgres } from '../test-engine.js';

async function shoal(env: Record<string, string>, ...args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(args, { env, stdout: (t) => (stdout += t), stderr: (t) => (stderr += t), fetch });
  return { code, stdout, stderr };
}

describe('host and token lifecycle from the CLI', () => {
  let ctl: LiveController;
  let dir: string;
  let env: Record<string, string>;
  const sockets: AgentSocket[] = [];
  const connect = () => {
    const socket = new AgentSocket(ctl.handle.url);
    sockets.push(socket);
    return socket;
  };
  beforeEach(async () => {
    ctl = await liveController();
    dir = mkdtempSync(join(tmpdir(), 'shoal-lifecycle-'));
    env = { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken };
  });
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    await ctl.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('removes a host: its connection is closed, it can no longer log in, and the removal stays in the audit log', async () => {
    const host = await ctl.register('web-1');
    const socket = connect();
    await socket.authenticate(host);
    await socket.expect('welcome');
    expect(await shoal(env, 'host', 'rm', 'web-1')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^removed web-1/) });
    expect((await socket.closed).code).toBe(WsClose.authFailed);
    const again = connect();
    await again.authenticate(host);
    expect(await again.expect('error')).toMatchObject({ code: 'unknown-host' });
    const [removal] = await eventsOf(ctl.handle.store, 'host-removed');
    expect(removal!.host).toBeNull();
    expect(removal!.data).toEqual({ host: 'web-1', fingerprint: keyFingerprint(fromBase64(host.publicKey)) });
    expect(await shoal(env, 'host', 'rm', 'web-1')).toMatchObject({ code: 1, stderr: 'shoal: no host named "web-1" (unknown-host, HTTP 404)\n' });
  });

  it('refuses to remove a host that an active rollout includes', async () => {
    await ctl.register('web-1');
    const headers = { authorization: `Bearer ${ctl.operatorToken}`, 'content-type': 'application/json' };
    await fetch(`${ctl.handle.url}/v1/releases`, { method: 'POST', headers, body: JSON.stringify({ name: 'r1', hosts: [{ host: 'web-1', storePath: storePath('sys', 'b') }] }) });
    const started = await fetch(`${ctl.handle.url}/v1/rollouts`, { method: 'POST', headers, body: JSON.stringify({ release: 'r1', waves: ['100%'], approvalBefore: [0] }) });
    const { id } = (await started.json()) as { id: string };
    const refused = await shoal(env, 'host', 'rm', 'web-1');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`host "web-1" is part of rollout ${id}, which is waiting-approval; abort it or let it finish`);
  });

  it('pauses a host: set is refused with a clear 409 unless --force, status shows it paused, resume lifts it, all in the audit log', async () => {
    await ctl.register('web-1');
    const paused = await shoal(env, 'host', 'pause', 'web-1');
    expect(paused).toMatchObject({ code: 0, stdout: expect.stringMatching(/^paused web-1: rollouts leave it waiting/) });
    const path = storePath('nixos-system-web-1', 'c');
    const refused = await shoal(env, 'set', 'web-1', path);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe('shoal: host "web-1" is paused; resume it (shoal host resume web-1) or set it anyway with --force (host-paused, HTTP 409)\n');
    const listed = await shoal(env, 'status');
    expect(listed.stdout).toContain('1 host: 0 healthy, 1 offline (1 paused)');
    expect(listed.stdout).toContain('  paused: rollouts leave it waiting and set needs --force (shoal host resume web-1)');
    expect(JSON.parse((await shoal(env, 'status', '--json')).stdout).hosts[0]).toMatchObject({ name: 'web-1', paused: true, desired: null });
    // A rollout sends it nothing and says why it waits.
    const headers = { authorization: `Bearer ${ctl.operatorToken}`, 'content-type': 'application/json' };
    await fetch(`${ctl.handle.url}/v1/releases`, { method: 'POST', headers, body: JSON.stringify({ name: 'r1', hosts: [{ host: 'web-1', storePath: storePath('sys', 'b') }] }) });
    const started = await fetch(`${ctl.handle.url}/v1/rollouts`, { method: 'POST', headers, body: JSON.stringify({ release: 'r1', waves: ['100%'] }) });
    const { id } = (await started.json()) as { id: string };
    const rollout = await shoal(env, 'rollout', 'status', id);
    expect(rollout.stdout.replace(/\s+/g, ' ')).toContain('paused hosts, waiting in their wave until resumed (shoal host resume NAME): web-1');
    expect(JSON.parse((await shoal(env, 'status', '--json')).stdout).hosts[0].desired).toBeNull();

    expect(await shoal(env, 'set', 'web-1', path, '--force')).toMatchObject({ code: 0, stdout: expect.stringContaining(`web-1: generation #1 ${path}`) });
    expect(await shoal(env, 'host', 'resume', 'web-1')).toMatchObject({ code: 0, stdout: expect.stringMatching(/^resumed web-1/) });
    expect((await shoal(env, 'status')).stdout).not.toContain('paused');
    // Resumed, the rollout issues it at once.
    expect(JSON.parse((await shoal(env, 'status', '--json')).stdout).hosts[0].desired).toMatchObject({ rolloutId: id, storePath: storePath('sys', 'b') });
    expect(await shoal(env, 'set', 'web-1', storePath('nixos-system-web-1', 'd'))).toMatchObject({ code: 0 });
    const { events } = ctl.handle.store.t;
    const kinds = await ctl.handle.store.db
      .select({ kind: events.kind, actor: events.actor })
      .from(events)
      .where(and(eq(events.host, 'web-1'), like(events.kind, 'host-%')))
      .orderBy(asc(events.id));
    expect(kinds).toEqual([
      { kind: 'host-registered', actor: expect.any(String) },
      { kind: 'host-paused', actor: 'operator:test-admin' },
      { kind: 'host-resumed', actor: 'operator:test-admin' },
    ]);
    const history = (await shoal(env, 'history', 'web-1')).stdout;
    expect(history).toContain('paused the host: rollouts leave it waiting, set needs --force');
    expect(history).toContain('resumed the host');
    expect(await shoal(env, 'host', 'pause', 'nope')).toMatchObject({ code: 1, stderr: 'shoal: no host named "nope" (unknown-host, HTTP 404)\n' });
  });

  it('re-keys a reinstalled host: the new key logs in, the old one is cut off at once', async () => {
    const old = await ctl.register('web-2');
    const socket = connect();
    await socket.authenticate(old);
    await socket.expect('welcome');
    const reinstalled = newHostKeys('web-2');
    expect(await shoal(env, 'host', 'rekey', 'web-2', '--public-key', reinstalled.publicKey)).toMatchObject({ code: 0, stdout: 're-keyed web-2; the old key no longer logs in\n' });
    expect((await socket.closed).code).toBe(WsClose.authFailed);
    const fresh = connect();
    await fresh.authenticate(reinstalled);
    await fresh.expect('welcome');
    const stale = connect();
    await stale.authenticate(old);
    expect(await stale.expect('error')).toMatchObject({ code: 'bad-signature' });
    expect((await shoal(env, 'host', 'rekey', 'web-2')).stderr).toBe('shoal: host rekey needs --public-key BASE64 (the reinstalled host’s new Ed25519 public key)\n');
  });

  it('shows an unknown host trying to connect over the websocket, and adopts it with one command', async () => {
    const lost = newHostKeys('db-1');
    const socket = connect();
    await socket.authenticate(lost, lost.keys, { publicKey: lost.publicKey, watermark: { highestVersion: 30, highestFloor: 0 } });
    expect((await socket.expect('error')).message).toContain('an operator can adopt it with `shoal host adopt db-1`');
    const fingerprint = keyFingerprint(fromBase64(lost.publicKey));
    const listed = await shoal(env, 'host', 'unknown');
    expect(listed.stdout).toContain(`db-1                  ${fingerprint}  1 attempt(s)`);
    expect(listed.stdout).toContain('accepted up to v30 (floor 0)');
    expect(await shoal(env, 'host', 'adopt', 'db-1', '--fingerprint', fingerprint, '--tag', 'db')).toMatchObject({ code: 0 });
    const back = connect();
    await back.authenticate(lost, lost.keys, { publicKey: lost.publicKey, watermark: { highestVersion: 30, highestFloor: 0 } });
    await back.expect('welcome');
    expect((await ctl.setDesired('db-1', storePath('sys', 'c'))).status).toBe(200);
    expect((await back.expect('manifest')).version).toBe(31);
  });

  it('lists and revokes enrollment tokens and operator tokens, never showing a secret', async () => {
    const enroll = JSON.parse((await shoal(env, 'enroll-token', 'create', '--max-uses', '2', '--tag', 'web', '--json')).stdout) as { id: string; token: string };
    const listed = await shoal(env, 'enroll-token', 'list');
    expect(listed.stdout).toMatch(new RegExp(`^${enroll.id}  active    0/2 uses`));
    expect(listed.stdout).not.toContain(enroll.token);
    expect(await shoal(env, 'enroll-token', 'revoke', enroll.id)).toMatchObject({ code: 0 });
    expect((await shoal(env, 'enroll-token', 'list')).stdout).toMatch(new RegExp(`^${enroll.id}  revoked`));
    const host = newHostKeys('web-5');
    const enrolled = await fetch(`${ctl.handle.url}/v1/agent/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ protocol: 1, host: 'web-5', publicKey: host.publicKey, token: enroll.token }),
    });
    expect(enrolled.status).toBe(401);

    const viewer = JSON.parse((await shoal(env, 'token', 'create', '--name', 'viewer', '--scope', 'read', '--json')).stdout) as { id: string; token: string; scope: string };
    expect(viewer.scope).toBe('read');
    const tokens = await shoal(env, 'token', 'list');
    expect(tokens.stdout).toMatch(new RegExp(`${viewer.id}  viewer +read  +created `));
    expect(tokens.stdout).not.toContain(viewer.token);
    const asViewer = { ...env, SHOAL_TOKEN: viewer.token };
    expect((await shoal(asViewer, 'status')).code).toBe(0);
    expect((await shoal(asViewer, 'host', 'rm', 'web-1')).stderr).toContain('insufficient-scope');
    expect(await shoal(env, 'token', 'revoke', viewer.id)).toMatchObject({ code: 0, stdout: `revoked ${viewer.id}\n` });
    expect((await shoal(asViewer, 'status')).stderr).toContain('invalid-token');
    expect((await shoal(env, 'token', 'revoke', viewer.id)).stderr).toContain('unknown-token');
  });

  // The backup endpoint copies the SQLite file online; a PostgreSQL database is backed up with its own tools (docs/high-availability.md).
  it.skipIf(onPostgres)('backs up the database online into a file that opens as the same fleet', async () => {
    await ctl.register('web-1');
    await ctl.register('web-2');
    expect((await ctl.setDesired('web-1', storePath('sys', 'a'))).status).toBe(200);
    const out = join(dir, 'backup.sqlite');
    const result = await shoal(env, 'backup', '--out', out);
    expect(result).toMatchObject({ code: 0, stdout: expect.stringMatching(/^backup written to .*backup\.sqlite \(\d+ bytes, 2 hosts, integrity ok\)\n$/) });
    expect(statSync(out).mode & 0o777).toBe(0o600);
    const copy = new Database(out, { readonly: true });
    expect(copy.prepare('select name, desired_version as v from hosts order by name').all()).toEqual([
      { name: 'web-1', v: 1 },
      { name: 'web-2', v: null },
    ]);
    copy.close();
    expect((await shoal(env, 'backup', '--out', out)).stderr).toBe(`shoal: ${out} already exists; refusing to overwrite a backup\n`);
    const viewer = JSON.parse((await shoal(env, 'token', 'create', '--name', 'v', '--scope', 'deploy', '--json')).stdout) as { token: string };
    expect((await shoal({ ...env, SHOAL_TOKEN: viewer.token }, 'backup', '--out', join(dir, 'b2.sqlite'))).stderr).toContain('insufficient-scope');
  });
});
