import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { runCommand } from '../../agent/src/exec.js';
import { gcRootPath, Nix, parseFetchPlan, parsePathInfo, trustOptions } from '../../agent/src/nix.js';
import { UnsafeSubstituterError } from '../../agent/src/substituters.js';
import { buildOnBase, buildToplevel, newKeyPublic, publishToCache, separateStoreEnv } from './nix-fixture.js';
import { useTmpDirs } from './tmp-dir.js';

describe('Nix operations (real Nix, separate store)', () => {
  const tmpDir = useTmpDirs();

  async function setup() {
    const dir = await tmpDir();
    const storePath = buildToplevel(dir, `nixtest-${process.pid}-${Date.now()}`);
    const cache = publishToCache(dir, storePath, 'cache-1');
    const stateDir = join(dir, 'state');
    const env = separateStoreEnv(join(dir, 'root'), join(dir, 'home'));
    return { dir, storePath, cache, stateDir, env };
  }

  it('realises a closure from a cache signed by a trusted key, pins it, and counts what it downloaded', async () => {
    const { storePath, cache, stateDir, env } = await setup();
    const nix = new Nix({ stateDir, substituters: [cache.url], trustedPublicKeys: [cache.publicKey], realiseTimeoutMs: 60_000, commandTimeoutMs: 30_000, env });
    expect(await nix.isValid(storePath)).toBe(false);
    const first = await nix.realise(storePath);
    expect(first.ok).toBe(true);
    if (!first.ok) return;
    expect(first.closureBytes).toBeGreaterThan(0);
    expect(first.downloadedBytes).toBe(first.closureBytes);
    expect(await readlink(gcRootPath(stateDir))).toBe(storePath);
    expect(await nix.isValid(storePath)).toBe(true);

    const again = await nix.realise(storePath);
    expect(again.ok && again.downloadedBytes).toBe(0);
  });

  it('counts as downloaded only what it fetched, even when the rest arrived in the same second', async () => {
    const dir = await tmpDir();
    const { base, system } = buildOnBase(dir, `nixbase-${process.pid}-${Date.now()}`);
    const cache = publishToCache(dir, system, 'cache-1');
    const root = join(dir, 'root');
    const nix = new Nix({ stateDir: join(dir, 'state'), substituters: [cache.url], trustedPublicKeys: [cache.publicKey], realiseTimeoutMs: 60_000, commandTimeoutMs: 30_000, env: separateStoreEnv(root, join(dir, 'home')) });
    const baseRealised = await nix.realise(base);
    expect(baseRealised.ok).toBe(true);
    // Nix registration times are whole seconds; a base registered in the second the next
    // realise starts (as a freshly installed host's is) looks no older than the download.
    // Dating it later than now makes that case certain instead of a race.
    const storeDb = new Database(join(root, 'nix/var/nix/db/db.sqlite'));
    storeDb.prepare('UPDATE ValidPaths SET registrationTime = ? WHERE path = ?').run(Math.floor(Date.now() / 1000) + 3600, base);
    storeDb.close();

    const realised = await nix.realise(system);
    expect(realised.ok).toBe(true);
    if (!realised.ok || !baseRealised.ok) return;
    expect(realised.closureBytes).toBe(baseRealised.closureBytes! + realised.downloadedBytes!);
    expect(realised.downloadedBytes).toBeGreaterThan(0);
    expect(realised.downloadedBytes).toBeLessThan(realised.closureBytes!);
  });

  it('reads the paths Nix plans to fetch from its dry-run, in the one- and the many-path form', () => {
    const one = '/nix/store/g5qzkagswnhgyy0lq4bgbw2ka48n15bw-x';
    const two = '/nix/store/mb07d8v477f5kynyiq5alxp9vyq0x5i3-y';
    const built = '/nix/store/bxjljd96ri4xsr3cjfpm7sgm14pxf8c7-z.drv';
    expect(parseFetchPlan(`this path will be fetched (0.00 MiB download, 0.00 MiB unpacked):\n  ${one}\n`)).toEqual(new Set([one]));
    expect(
      parseFetchPlan(`these derivations will be built:\n  ${built}\nthese 2 paths will be fetched (1.20 MiB download, 4.00 MiB unpacked):\n  ${one}\n  ${two}\nwarning: something\n`),
    ).toEqual(new Set([one, two]));
    expect(parseFetchPlan('')).toEqual(new Set());
  });

  it('refuses a closure that no trusted key signed, and recognises Nix saying so', async () => {
    const { dir, storePath, cache, stateDir, env } = await setup();
    const otherKey = newKeyPublic(dir, 'other-1');
    const nix = new Nix({ stateDir, substituters: [cache.url], trustedPublicKeys: [otherKey], realiseTimeoutMs: 60_000, commandTimeoutMs: 30_000, env });
    const result = await nix.realise(storePath);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.untrusted).toBe(true);
    expect(result.failure.exitCode).toBe(1);
    expect(result.failure.command).toContain('nix-store --realise');
    expect(result.failure.outputTail).toContain(`the substitute for '${storePath}' from '${cache.url}' is not signed by any of the keys in 'trusted-public-keys'`);
    expect(await nix.isValid(storePath)).toBe(false);
  });

  it('never hands Nix a substituter whose options would make it take an unsigned closure (?trusted=1)', async () => {
    const { dir, storePath, cache, stateDir, env } = await setup();
    const otherKey = newKeyPublic(dir, 'other-1');
    const loosened = `${cache.url}?trusted=1`;
    // The attack is real: given this URL, Nix takes a closure no trusted key signed, require-sigs notwithstanding.
    const direct = await runCommand(
      ['nix-store', '--realise', storePath, ...trustOptions({ substituters: [cache.url], trustedPublicKeys: [otherKey] }).map((a) => (a === cache.url ? loosened : a))],
      { timeoutMs: 60_000, env },
    );
    expect(direct.ok).toBe(true);
    // The agent's wrapper refuses it before Nix ever sees it, whatever the config check let through.
    const options = { stateDir, substituters: [loosened], trustedPublicKeys: [otherKey], realiseTimeoutMs: 60_000, commandTimeoutMs: 30_000, env };
    expect(() => new Nix(options)).toThrow(UnsafeSubstituterError);
    expect(() => trustOptions(options)).toThrow(/has the parameter "trusted"/);
  });

  it('fails without calling it untrusted when no cache has the path', async () => {
    const { stateDir, env, cache, storePath } = await setup();
    const nix = new Nix({ stateDir, substituters: [], trustedPublicKeys: [cache.publicKey], realiseTimeoutMs: 60_000, commandTimeoutMs: 30_000, env });
    const result = await nix.realise(storePath);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.untrusted).toBe(false);
  });

  it('sets a profile generation to a store path', async () => {
    const { dir, storePath, cache, stateDir, env } = await setup();
    const nix = new Nix({ stateDir, substituters: [cache.url], trustedPublicKeys: [cache.publicKey], realiseTimeoutMs: 60_000, commandTimeoutMs: 30_000, env });
    expect((await nix.realise(storePath)).ok).toBe(true);
    const profile = join(dir, 'profiles', 'system');
    const result = await nix.setProfile(profile, storePath);
    expect(result.ok).toBe(true);
    expect((await lstat(profile)).isSymbolicLink()).toBe(true);
    expect(await readlink(join(dir, 'profiles', await readlink(profile)))).toBe(storePath);
  });

  it('reads path-info in both the old array and the new object JSON shapes', () => {
    const path = '/nix/store/g5qzkagswnhgyy0lq4bgbw2ka48n15bw-x';
    expect(parsePathInfo(JSON.stringify([{ path, narSize: 10, registrationTime: 5 }]))).toEqual([{ path, narSize: 10 }]);
    expect(parsePathInfo(JSON.stringify({ [path]: { narSize: 10 } }))).toEqual([{ path, narSize: 10 }]);
  });
});
