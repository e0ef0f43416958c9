import { readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { StateStore } from '../../agent/src/state.js';
import { PATH_A } from './manifests.js';
import { useTmpDirs } from './tmp-dir.js';

describe('StateStore', () => {
  const tmpDir = useTmpDirs();

  it('starts empty when there is no state file', async () => {
    const store = await StateStore.open(await tmpDir());
    expect(store.get().highestVersion).toBe(0);
    expect(store.get().activation).toBeNull();
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
    // Nothing but the state file is left behind: the temporary file was renamed over it.
    expect(await readdir(dir)).toEqual(['state.json']);
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
});
