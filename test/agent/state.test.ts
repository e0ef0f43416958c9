import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { rebootstrap } from '../../agent/src/rebootstrap.js';
import { STATE_FILE, StateStore, WATERMARK_FILE } from '../../agent/src/state.js';
import { PATH_A, PATH_B } from './manifests.js';
import { useTmpDirs } from './tmp-dir.js';

describe('StateStore', () => {
  const tmpDir = useTmpDirs();

  it('starts empty on a first start and writes both copies at once (before the host key exists)', async () => {
    const dir = await tmpDir();
    const store = await StateStore.open(dir, { alreadySetUp: false });
    expect(store.origin).toBe('first-start');
    expect(store.get()).toMatchObject({ highestVersion: 0, highestFloor: 0, stateLost: false, activation: null });
    expect((await readdir(dir)).sort()).toEqual([STATE_FILE, WATERMARK_FILE]);
  });

  it('keeps the highest accepted version and the activation in flight across a reload', async () => {
    const dir = await tmpDir();
    const store = await StateStore.open(dir);
    await store.update((s) => {
      s.highestVersion = 7;
      s.highestStorePath = PATH_A;
      s.activation = {
        manifestVersion: 7,
        target: PATH_A,
        action: 'safe-switch',
        previousSystem: null,
        step: 'activating',
        startedAt: '2030-01-01T00:00:00.000Z',
      };
    });
    const reloaded = await StateStore.open(dir);
    expect(reloaded.get().highestVersion).toBe(7);
    expect(reloaded.get().highestStorePath).toBe(PATH_A);
    expect(reloaded.get().activation?.step).toBe('activating');
    // Nothing but the two files is left behind: each temporary file was renamed over its target.
    expect((await readdir(dir)).sort()).toEqual([STATE_FILE, WATERMARK_FILE]);
  });

  it('serialises concurrent updates so none is lost', async () => {
    const dir = await tmpDir();
    const store = await StateStore.open(dir);
    await Promise.all(Array.from({ length: 20 }, () => store.update((s) => void (s.highestVersion += 1))));
    expect((await StateStore.open(dir)).get().highestVersion).toBe(20);
    expect(JSON.parse(await readFile(join(dir, 'state.json'), 'utf8')).highestVersion).toBe(20);
  });

  it('refuses to start from a corrupt state file instead of forgetting the highest version', async () => {
    const dir = await tmpDir();
    await writeFile(join(dir, 'state.json'), '{"formatVersion":1,"highestVers');
    await expect(StateStore.open(dir)).rejects.toThrow(/state file .*state.json is not valid JSON/);
  });

  it('never persists a state that breaks its own schema', async () => {
    const dir = await tmpDir();
    const store = await StateStore.open(dir);
    await expect(store.update((s) => void (s.highestStorePath = '/tmp/not-a-store-path'))).rejects.toThrow();
    expect(store.get().highestStorePath).toBeNull();
  });

  async function accepted(dir: string, version: number, storePath: string, floor: number): Promise<void> {
    const store = await StateStore.open(dir, { alreadySetUp: false });
    await store.update((s) => {
      s.enrolled = true;
      s.highestVersion = version;
      s.highestStorePath = storePath;
      s.highestFloor = floor;
    });
  }

  it('restores the highest version, store path and floor from the copy when state.json is lost', async () => {
    const dir = await tmpDir();
    await accepted(dir, 7, PATH_A, 3);
    await rm(join(dir, STATE_FILE));
    const store = await StateStore.open(dir, { alreadySetUp: true });
    expect(store.origin).toBe('restored');
    expect(store.get()).toMatchObject({ enrolled: true, highestVersion: 7, highestStorePath: PATH_A, highestFloor: 3, stateLost: false });
    // Written back at once: a second loss of the copy alone loses nothing.
    await rm(join(dir, WATERMARK_FILE));
    const again = await StateStore.open(dir, { alreadySetUp: true });
    expect(again.origin).toBe('loaded');
    expect(again.get().highestVersion).toBe(7);
    expect(JSON.parse(await readFile(join(dir, WATERMARK_FILE), 'utf8'))).toMatchObject({ highestVersion: 7, highestFloor: 3 });
  });

  it('marks the state lost, durably, when both copies are gone on a host that was set up', async () => {
    const dir = await tmpDir();
    await accepted(dir, 7, PATH_A, 3);
    await rm(join(dir, STATE_FILE));
    await rm(join(dir, WATERMARK_FILE));
    const store = await StateStore.open(dir, { alreadySetUp: true });
    expect(store.origin).toBe('lost');
    expect(store.get()).toMatchObject({ stateLost: true, enrolled: true, highestVersion: 0 });
    // Updates while lost (enrollment, results) never write a watermark that could later pass for a real one.
    await store.update((s) => void (s.enrolled = true));
    expect(await readdir(dir)).toEqual([STATE_FILE]);
    expect((await StateStore.open(dir, { alreadySetUp: true })).get().stateLost).toBe(true);
  });

  it('is cleared only by rebootstrap, which records the version and floor the operator names', async () => {
    const dir = await tmpDir();
    await accepted(dir, 7, PATH_A, 3);
    await rm(join(dir, STATE_FILE));
    await rm(join(dir, WATERMARK_FILE));
    await StateStore.open(dir, { alreadySetUp: true });
    const outcome = await rebootstrap({ stateDir: dir, minVersion: 7, minFloor: 3 });
    expect(outcome).toEqual({
      ok: true,
      summary: `rebootstrapped ${dir}: highest accepted version 7, security floor 3 (the state was marked lost); the agent accepts manifests above version 7 again once it is started`,
    });
    const store = await StateStore.open(dir, { alreadySetUp: true });
    expect(store.get()).toMatchObject({ stateLost: false, enrolled: true, highestVersion: 7, highestStorePath: null, highestFloor: 3 });
    expect(JSON.parse(await readFile(join(dir, WATERMARK_FILE), 'utf8'))).toMatchObject({ highestVersion: 7, highestFloor: 3 });
    expect(await rebootstrap({ stateDir: join(dir, 'nope'), minVersion: 0, minFloor: 0 })).toMatchObject({ ok: false });
  });

  it('loads a state file from before floors and the copy, and adds the copy', async () => {
    const dir = await tmpDir();
    const old = { formatVersion: 1, enrolled: true, highestVersion: 4, highestStorePath: PATH_B, activation: null, lastResult: null };
    await writeFile(join(dir, STATE_FILE), JSON.stringify(old));
    const store = await StateStore.open(dir, { alreadySetUp: true });
    expect(store.origin).toBe('loaded');
    expect(store.get()).toMatchObject({ highestVersion: 4, highestFloor: 0, stateLost: false });
    expect(JSON.parse(await readFile(join(dir, WATERMARK_FILE), 'utf8'))).toEqual({ formatVersion: 1, highestVersion: 4, highestStorePath: PATH_B, highestFloor: 0 });
  });

  it('refuses to restore from a corrupt copy instead of starting over', async () => {
    const dir = await tmpDir();
    await writeFile(join(dir, WATERMARK_FILE), '{"formatVersion":1,');
    await expect(StateStore.open(dir, { alreadySetUp: true })).rejects.toThrow(/watermark file .*watermark.json is not valid JSON/);
  });
});
