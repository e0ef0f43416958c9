import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, realpath, rm, symlink } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { reconcile, RESTARTED } from '../../agent/src/reconcile.js';
import { killOrphanedSwitch, processIdentity } from '../../agent/src/system.js';
import type { ActivationRecord } from '../../agent/src/state.js';
import { silentLogger } from '../../shared/src/logger.js';
import { bootInto, buildSystem, fakeHost, harness, type FakeHost, type Harness } from './activation-fixture.js';
import { useTmpDirs } from './tmp-dir.js';

function reconcileWith(h: Harness) {
  return reconcile({
    activator: h.activator,
    state: h.state,
    report: h.deps.report,
    paths: h.deps.paths,
    useSystemdRun: false,
    switchTimeoutMs: 10_000,
    logger: silentLogger(),
  });
}

/** What the state file looks like when the agent was SIGKILLed at `step`. */
async function killedAt(h: Harness, record: ActivationRecord): Promise<void> {
  await h.state.update((s) => {
    s.highestVersion = record.manifestVersion;
    s.highestStorePath = record.target;
    s.activation = record;
  });
}

async function pointCurrentAt(host: FakeHost, system: string): Promise<void> {
  await rm(host.currentSystem, { force: true });
  await symlink(system, host.currentSystem);
}

async function until(condition: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('reconcile after a restart', () => {
  const tmpDir = useTmpDirs();

  async function setup() {
    const host = await fakeHost(await tmpDir());
    const prev = buildSystem(host, 'prev');
    const next = buildSystem(host, 'next');
    await bootInto(host, prev);
    const h = await harness(host);
    const record = (step: ActivationRecord['step']): ActivationRecord => ({
      manifestVersion: 3,
      target: next,
      action: 'safe-switch',
      previousSystem: prev,
      step,
      startedAt: new Date().toISOString(),
    });
    return { host, prev, next, h, record };
  }

  it('only reports where the host stands when nothing was in flight', async () => {
    const { h, host, next } = await setup();
    await h.activator.apply(
      { protocol: 1, host: 'web-1', version: 1, storePath: next, action: 'safe-switch', rolloutId: null, issuedAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 60_000).toISOString(), statement: null },
      'safe-switch',
      0,
    );
    const logBefore = await readFile(host.log, 'utf8');
    const sizeBefore = h.outbox.size;
    expect(await reconcileWith(h)).toEqual({ kind: 'idle' });
    expect(await readFile(host.log, 'utf8')).toBe(logBefore);
    const report = h.outbox.pending()[sizeBefore]!;
    expect(report.phase).toBe('reconciled');
    expect(report.manifestVersion).toBe(1);
    expect(report.detail.reason).toBe('running the system of the last accepted manifest v1; last result for v1: healthy');
  });

  it('rolls back a switch that was being health-checked when the agent died', async () => {
    const { h, host, prev, next, record } = await setup();
    await pointCurrentAt(host, next);
    await killedAt(h, record('checking'));
    const result = await reconcileWith(h);
    expect(result.kind === 'resolved' && result.result.phase).toBe('rolled-back');
    expect(await h.current()).toBe(prev);
    expect(h.outbox.pending().at(-1)!.detail.reason).toBe(RESTARTED);
    expect(h.state.get().activation).toBeNull();
    expect((await readFile(host.log, 'utf8')).trim().split('\n')).toEqual([`${prev} switch`, `${prev} boot`]);
  });

  it('finishes the commit of a system that had passed its health gate', async () => {
    const { h, host, next, record } = await setup();
    await pointCurrentAt(host, next);
    await killedAt(h, record('committing'));
    const result = await reconcileWith(h);
    expect(result.kind === 'resolved' && result.result.phase).toBe('healthy');
    expect(await h.current()).toBe(next);
    expect(await realpath(host.profile)).toBe(next);
    expect((await readFile(host.bootDefault, 'utf8')).trim()).toBe(next);
  });

  it('starts over an activation that had not touched the system yet', async () => {
    const { h, next, record } = await setup();
    await killedAt(h, { ...record('realising'), previousSystem: null });
    const result = await reconcileWith(h);
    expect(result.kind === 'resolved' && result.result.phase).toBe('healthy');
    expect(await h.current()).toBe(next);
    expect(h.phases()).toEqual(['realising', 'activating', 'checking', 'committing', 'healthy']);
  });

  it('kills a switch the dead agent left running before rolling back over it', async () => {
    const { h, host, prev } = await setup();
    const hanging = buildSystem(host, 'hanging', 'hang');
    const orphan = spawn(`${hanging}/bin/switch-to-configuration`, ['test'], { detached: true, stdio: 'ignore' });
    const exited = new Promise((resolve) => orphan.once('exit', (_code, signal) => resolve(signal)));
    await until(async () => (await h.current()) === hanging);
    const switchProcess = await processIdentity(orphan.pid!);
    await killedAt(h, { manifestVersion: 3, target: hanging, action: 'safe-switch', previousSystem: prev, step: 'activating', startedAt: new Date().toISOString(), switchProcess });
    const result = await reconcileWith(h);
    expect(await exited).toBe('SIGKILL');
    expect(result.kind === 'resolved' && result.result.phase).toBe('rolled-back');
    expect(await h.current()).toBe(prev);
  });

  it('leaves alone a process that merely reuses a recorded pid', async () => {
    const bystander = spawn('/bin/sleep', ['30'], { detached: true, stdio: 'ignore' });
    const identity = (await processIdentity(bystander.pid!))!;
    expect(await killOrphanedSwitch({ ...identity, startTicks: identity.startTicks - 1 })).toBe(false);
    expect(await killOrphanedSwitch({ ...identity, bootId: 'another-boot' })).toBe(false);
    // Ended by our SIGTERM, not by a SIGKILL from the calls above (they would have come first).
    const bystanderExit = exited(bystander);
    bystander.kill('SIGTERM');
    expect(await bystanderExit).toBe('SIGTERM');

    const orphan = spawn('/bin/sleep', ['30'], { detached: true, stdio: 'ignore' });
    const orphanExit = exited(orphan);
    expect(await killOrphanedSwitch((await processIdentity(orphan.pid!))!)).toBe(true);
    expect(await orphanExit).toBe('SIGKILL');
  });

  it('never re-runs a finished activation across restarts', async () => {
    const { h, host, record } = await setup();
    await pointCurrentAt(host, record('checking').target);
    await killedAt(h, record('checking'));
    await reconcileWith(h);
    const log = await readFile(host.log, 'utf8');
    expect(await reconcileWith(h)).toEqual({ kind: 'idle' });
    expect(await readFile(host.log, 'utf8')).toBe(log);
  });
});

/** The signal that ended the child (null if it exited by itself). */
function exited(child: ChildProcess): Promise<NodeJS.Signals | null> {
  return new Promise((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
}
