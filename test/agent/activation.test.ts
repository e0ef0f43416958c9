import { execFileSync } from 'node:child_process';
import { readFile, readlink, realpath, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROTOCOL_VERSION, type Action, type ManifestPayload } from '../../shared/src/protocol.js';
import { Nix } from '../../agent/src/nix.js';
import { bootInto, buildSystem, fakeHost, harness, type FakeHost } from './activation-fixture.js';
import { newKeyPublic, publishToCache, separateStoreEnv } from './nix-fixture.js';
import { useSmallDisks } from './small-disks.js';
import { useTmpDirs } from './tmp-dir.js';

function manifest(storePath: string, version: number, action: Action = 'safe-switch'): ManifestPayload {
  const now = Date.now();
  return {
    protocol: PROTOCOL_VERSION,
    host: 'web-1',
    version,
    storePath,
    action,
    rolloutId: null,
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 3_600_000).toISOString(),
    // The activator runs what verifyManifest accepted; it never looks at the statement again.
    statement: null,
  };
}

async function switchLog(host: FakeHost): Promise<string[]> {
  try {
    return (await readFile(host.log, 'utf8')).trim().split('\n');
  } catch {
    return [];
  }
}

describe('activation (real store paths, real switch scripts, host in a directory)', () => {
  const tmpDir = useTmpDirs();
  const smallDisk = useSmallDisks(tmpDir);

  async function hostRunning(mode: Parameters<typeof buildSystem>[2] = 'ok') {
    const host = await fakeHost(await tmpDir());
    const prev = buildSystem(host, 'prev');
    const next = buildSystem(host, 'next', mode);
    await bootInto(host, prev);
    return { host, prev, next };
  }

  it('switches with test, passes the health gate, then commits profile and boot default', async () => {
    const { host, prev, next } = await hostRunning();
    const h = await harness(host, { healthChecks: [{ kind: 'command', name: 'ok', command: ['/bin/true'], timeoutMs: 5_000 }] });
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 2);
    expect(result.phase).toBe('healthy');
    expect(h.phases()).toEqual(['accepted', 'realising', 'activating', 'checking', 'committing', 'healthy']);
    expect(await h.current()).toBe(next);
    expect(await realpath(host.profile)).toBe(next);
    expect((await readFile(host.bootDefault, 'utf8')).trim()).toBe(next);
    expect(await switchLog(host)).toEqual([`${next} test`, `${next} boot`]);
    expect(h.state.get()).toMatchObject({ highestVersion: 1, highestStorePath: next, highestFloor: 2, activation: null, lastResult: { phase: 'healthy' } });
    const healthy = h.outbox.pending().at(-1)!;
    expect(healthy.currentSystem).toBe(next);
    expect(healthy.detail.previousSystem).toBe(prev);
    expect(healthy.detail.closureBytes).toBeGreaterThan(0);
    expect(await readlink(`${host.root}/state/gcroots/desired`)).toBe(next);
  });

  it('rolls back a failing switch to the previous system and reports the command, status and output', async () => {
    const { host, prev, next } = await hostRunning('fail');
    const h = await harness(host);
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('rolled-back');
    expect(h.phases()).toEqual(['accepted', 'realising', 'activating', 'rolling-back', 'rolled-back']);
    expect(await h.current()).toBe(prev);
    expect(await realpath(host.profile)).toBe(prev);
    expect((await readFile(host.bootDefault, 'utf8')).trim()).toBe(prev);
    const report = h.outbox.pending().at(-1)!;
    expect(report.detail.reason).toBe('switch-to-configuration test failed (exit status 4)');
    expect(report.detail.failure).toMatchObject({ command: `${next}/bin/switch-to-configuration test`, exitCode: 4, signal: null, timedOut: false });
    expect(report.detail.failure?.outputTail).toBe('starting units\nJob for web.service failed');
    expect(report.currentSystem).toBe(prev);
    expect(await switchLog(host)).toEqual([`${next} test`, `${prev} switch`, `${prev} boot`]);
  });

  it('goes back to the previous system when the state directory fills up after the switch, though nothing can be recorded', async () => {
    const { host, prev, next } = await hostRunning();
    const stateDir = join(host.root, 'state');
    await smallDisk(1024 * 1024, stateDir);
    // Something else on the host fills the disk while the health gate runs; the check itself passes.
    const fill = { kind: 'command' as const, name: 'fill', command: ['/bin/sh', '-c', `/usr/bin/head -c 4M /dev/zero > ${stateDir}/other 2>/dev/null; exit 0`], timeoutMs: 5_000 };
    const h = await harness(host, { healthChecks: [fill] });
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('rolled-back');
    expect(result.reason).toMatch(/^unexpected error while committing: ENOSPC/);
    expect(await h.current()).toBe(prev);
    expect(await realpath(host.profile)).toBe(prev);
    expect((await readFile(host.bootDefault, 'utf8')).trim()).toBe(prev);
    expect(await switchLog(host)).toEqual([`${next} test`, `${prev} switch`, `${prev} boot`]);
  });

  it('rolls back when something unexpected fails after the switch', async () => {
    const { host, prev, next } = await hostRunning();
    const h = await harness(host);
    // The harness's activator holds these very deps.
    h.deps.confirmReachable = async () => {
      throw new TypeError('outbox went away');
    };
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('rolled-back');
    expect(h.phases()).toEqual(['accepted', 'realising', 'activating', 'checking', 'rolling-back', 'rolled-back']);
    expect(h.outbox.pending().at(-1)!.detail.reason).toBe('unexpected error while checking: outbox went away');
    expect(await h.current()).toBe(prev);
    expect(h.state.get().activation).toBeNull();
  });

  it('rolls back when a health check keeps failing until the deadline', async () => {
    const { host, prev, next } = await hostRunning();
    const h = await harness(host, {
      healthDeadlineMs: 1_500,
      healthChecks: [{ kind: 'command', name: 'web', command: ['/bin/sh', '-c', 'echo "connection refused"; exit 7'], timeoutMs: 1_000 }],
    });
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('rolled-back');
    expect(result.reason).toMatch(/^health gate: health check web failed \(still failing at the 1500 ms health deadline\)/);
    expect(await h.current()).toBe(prev);
    expect(h.outbox.pending().at(-1)!.detail.failure).toMatchObject({ exitCode: 7, outputTail: 'connection refused' });
  });

  it('kills a hanging switch at its deadline and rolls back', async () => {
    const { host, prev, next } = await hostRunning('hang');
    const h = await harness(host, { switchMs: 1_000 });
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('rolled-back');
    // Killed by its deadline, not finished by itself: the hang fixture never exits on its own.
    expect(result.reason).toBe('switch-to-configuration test failed (timed out)');
    expect(h.outbox.pending().at(-1)!.detail.failure?.timedOut).toBe(true);
    expect(await h.current()).toBe(prev);
  });

  it('rolls back when the controller does not acknowledge the checking report', async () => {
    const { host, prev, next } = await hostRunning();
    const h = await harness(host, { reachable: false });
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('rolled-back');
    expect(result.reason).toContain('controller did not acknowledge the checking report');
    expect(await h.current()).toBe(prev);
  });

  it('reports failed when there is no previous system to go back to', async () => {
    const host = await fakeHost(await tmpDir());
    const next = buildSystem(host, 'next', 'fail');
    const h = await harness(host);
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('failed');
    expect(result.reason).toContain('no previous system to roll back to');
  });

  it('renews the running healthy system without activating it again', async () => {
    const { host, next } = await hostRunning();
    const h = await harness(host);
    await h.activator.apply(manifest(next, 1), 'safe-switch', 1);
    const before = await switchLog(host);
    const renewed = await h.activator.apply(manifest(next, 2), 'safe-switch', 3);
    expect(renewed.phase).toBe('healthy');
    expect(await switchLog(host)).toEqual(before);
    expect(h.phases().slice(-1)).toEqual(['healthy']);
    // A renewal is an acceptance too: its floor is remembered.
    expect(h.state.get()).toMatchObject({ highestVersion: 2, highestFloor: 3 });
  });

  it('answers a new manifest for the system it already runs with its health gate, without switching', async () => {
    // Booted into prev with no result of its own for it (installed that way, or moved back by hand).
    const { host, prev } = await hostRunning();
    const h = await harness(host, { healthChecks: [{ kind: 'command', name: 'ok', command: ['/bin/true'], timeoutMs: 5_000 }] });
    const result = await h.activator.apply(manifest(prev, 5), 'safe-switch', 0);
    expect(result).toMatchObject({ phase: 'healthy', manifestVersion: 5, storePath: prev });
    expect(h.phases()).toEqual(['accepted', 'checking', 'healthy']);
    // Nothing was switched; only the boot default was made to match what runs.
    expect((await switchLog(host)).filter((line) => !line.endsWith(' boot'))).toEqual([]);
    expect((await readFile(host.bootDefault, 'utf8')).trim()).toBe(prev);
    expect(h.state.get()).toMatchObject({ highestVersion: 5, activation: null, lastResult: { phase: 'healthy', manifestVersion: 5 } });
  });

  it('reports failed, still running it, when the system it already runs fails its health checks', async () => {
    const { host, prev } = await hostRunning();
    const h = await harness(host, { healthChecks: [{ kind: 'command', name: 'web', command: ['/bin/false'], timeoutMs: 5_000 }], healthDeadlineMs: 200 });
    const result = await h.activator.apply(manifest(prev, 5), 'switch', 0);
    expect(result.phase).toBe('failed');
    expect(result.reason).toMatch(/already running this system, but its health gate failed: health check web failed/);
    expect(await h.current()).toBe(prev);
    expect(await switchLog(host)).toEqual([]);
  });

  it('refuses a store path that is not a NixOS system and changes nothing', async () => {
    const { host, prev } = await hostRunning();
    const h = await harness(host);
    const file = join(host.root, `not-a-system-${Date.now()}.txt`);
    await writeFile(file, 'just a file\n');
    const plain = execFileSync('nix-store', ['--add', file], { encoding: 'utf8' }).trim();
    const result = await h.activator.apply(manifest(plain, 1), 'safe-switch', 0);
    expect(result.phase).toBe('refused');
    const report = h.outbox.pending().at(-1)!;
    expect(report.detail.refusal).toBe('not-a-nixos-system');
    expect(report.detail.reason).toContain('has no bin/switch-to-configuration');
    expect(await h.current()).toBe(prev);
    expect(await switchLog(host)).toEqual([]);
  });

  it('refuses a closure that no trusted cache key signed, as Nix reports it, and changes nothing', async () => {
    const { host, prev, next } = await hostRunning();
    const cache = publishToCache(host.root, next, 'cache-1');
    const nix = new Nix({
      stateDir: join(host.root, 'state'),
      substituters: [cache.url],
      trustedPublicKeys: [newKeyPublic(host.root, 'other-1')],
      realiseTimeoutMs: 60_000,
      commandTimeoutMs: 30_000,
      env: separateStoreEnv(join(host.root, 'store-root'), join(host.root, 'home')),
    });
    const h = await harness(host, { nix });
    const result = await h.activator.apply(manifest(next, 1), 'safe-switch', 0);
    expect(result.phase).toBe('refused');
    const report = h.outbox.pending().at(-1)!;
    expect(report.detail.refusal).toBe('untrusted-closure');
    expect(report.detail.failure?.outputTail).toContain("is not signed by any of the keys in 'trusted-public-keys'");
    expect(h.phases()).toEqual(['accepted', 'realising', 'refused']);
    expect(await h.current()).toBe(prev);
    expect(await switchLog(host)).toEqual([]);
  });

  it('runs a plain switch for action switch, still health-gated and committed', async () => {
    const { host, next } = await hostRunning();
    const h = await harness(host);
    const result = await h.activator.apply(manifest(next, 1, 'switch'), 'switch', 0);
    expect(result.phase).toBe('healthy');
    expect(await switchLog(host)).toEqual([`${next} switch`, `${next} boot`]);
    expect(await realpath(host.profile)).toBe(next);
  });

  it('sets the boot default for action boot and reports the pending reboot', async () => {
    const { host, prev, next } = await hostRunning();
    const h = await harness(host);
    const result = await h.activator.apply(manifest(next, 1, 'boot'), 'boot', 0);
    expect(result.phase).toBe('pending-reboot');
    expect(await h.current()).toBe(prev);
    expect(await realpath(host.profile)).toBe(next);
    expect((await readFile(host.bootDefault, 'utf8')).trim()).toBe(next);
  });

  it('dry-activates without changing anything', async () => {
    const { host, prev, next } = await hostRunning();
    const h = await harness(host);
    const result = await h.activator.apply(manifest(next, 1, 'dry-activate'), 'dry-activate', 0);
    expect(result.phase).toBe('dry-activated');
    expect(result.reason).toBe('would restart web.service');
    expect(await h.current()).toBe(prev);
  });
});
