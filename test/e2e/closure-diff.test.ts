import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nodeEd25519 } from '../../shared/src/ed25519.js';
import { generateNamedKey, parseSecretKey, toBase64 } from '../../shared/src/keys.js';
import { ClosureCache } from '../../controller/src/cache/closure.js';
import { narinfoFile } from '../../controller/src/cache/narinfo.js';
import { BinaryCacheReader } from '../../controller/src/cache/reader.js';
import { parsePublicKey } from '../../shared/src/keys.js';
import { readHostDiff } from '../../controller/src/closure-diff/release-diff.js';
import { serveCache, type CacheServer } from '../lab/cache-server.js';
import type { LabController } from '../lab/controller.js';
import type { LabFixtures } from '../lab/fixtures.js';
import { Lab } from '../lab/lab.js';
import { closureOf, nix } from '../lab/nix.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

/** `nix store diff-closures` lines with a version change: "name: a, b → c" → name → [removed, added]. */
async function nixDiffClosures(from: string, to: string): Promise<Record<string, [string[], string[]]>> {
  const out = await nix(['--option', 'substituters', '', 'store', 'diff-closures', from, to]);
  const result: Record<string, [string[], string[]]> = {};
  // eslint-disable-next-line no-control-regex
  for (const line of out.replace(/\x1b\[[0-9;]*m/g, '').split('\n')) {
    const match = /^(.+?): (.*?) → (.*?)(, [+-][\d.]+ KiB)?$/.exec(line.trim());
    if (!match) continue;
    const versions = (text: string) => (text === '∅' ? [] : text.split(', ').map((v) => (v === 'ε' ? '' : v)));
    result[match[1]!] = [versions(match[2]!), versions(match[3]!)];
  }
  return result;
}

function narinfoField(text: string, field: string): string {
  return new RegExp(`^${field}: (.*)$`, 'm').exec(text)![1]!;
}

describe('closure diffs from the lab binary cache', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let cache: CacheServer;
  let reader: BinaryCacheReader;

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    cache = await lab.serveCache();
    reader = new BinaryCacheReader({ caches: [{ url: cache.url, publicKeys: [parsePublicKey(fixtures.cache.key.publicKey)] }], concurrency: 8, timeoutMs: 5_000 });
  });
  afterAll(() => lab?.cleanup());

  it('finds the package changes nix store diff-closures finds between two realistic systems', async () => {
    const { realisticBase: from, realisticNext: to } = fixtures.systems;
    const diff = await readHostDiff(new ClosureCache(reader), { host: 'web-1', current: from.path, target: to.path, drifted: false });
    const ours = Object.fromEntries(diff.changes.filter((c) => c.kind !== 'rebuilt').map((c) => [c.name, [c.before, c.after]]));
    const theirs = await nixDiffClosures(from.path, to.path);
    expect(ours).toEqual(theirs);
    expect(ours).toMatchObject({ linux: [['6.12.9'], ['6.18.1']], openssl: [['3.3.1'], ['3.3.2']], htop: [[], ['3.3.0']], nano: [['8.0'], []] });
    expect(diff.reboot).toBe(true);
    expect(diff.status).toBe('ok');
  });

  it('counts as download the FileSize of each new path, as the narinfos give it', async () => {
    const { realisticBase: from, realisticNext: to } = fixtures.systems;
    const diff = await readHostDiff(new ClosureCache(reader), { host: 'web-1', current: from.path, target: to.path, drifted: false });
    const before = new Set(await closureOf([from.path]));
    const after = await closureOf([to.path]);
    const fresh = after.filter((p) => !before.has(p));
    let fileBytes = 0;
    let narBytes = 0;
    for (const path of fresh) {
      const text = await readFile(join(fixtures.cache.dir, narinfoFile(path)), 'utf8');
      fileBytes += Number(narinfoField(text, 'FileSize'));
      narBytes += Number(narinfoField(text, 'NarSize'));
    }
    expect(diff.newPaths).toBe(fresh.length);
    expect(diff.downloadBytes).toBe(fileBytes);
    expect(diff.downloadNarBytes).toBe(narBytes);
    expect(diff.pathsAfter).toBe(after.length);
    expect(diff.pathsBefore).toBe(before.size);
    // Most of a generation is shared: only what changed is downloaded.
    expect(fresh.length).toBeLessThan(after.length / 4);
  });

  it('fetches each narinfo once however many closures share it', async () => {
    const fresh = new BinaryCacheReader({ caches: [{ url: cache.url, publicKeys: [parsePublicKey(fixtures.cache.key.publicKey)] }], concurrency: 4, timeoutMs: 5_000 });
    const { realisticBase, realisticNext } = fixtures.systems;
    const closures = new ClosureCache(fresh);
    await Promise.all([realisticBase.path, realisticNext.path, realisticBase.path].map((p) => closures.get(p)));
    const distinct = new Set([...(await closureOf([realisticBase.path])), ...(await closureOf([realisticNext.path]))]);
    // One nix-cache-info plus one narinfo per distinct path.
    expect(fresh.requests).toBe(distinct.size + 1);
  });
});

describe('rollout preflight against a cache with a missing, an untrusted and a forged path', () => {
  let fixtures: LabFixtures;
  let lab: Lab;
  let controller: LabController;
  let broken: CacheServer;
  const hosts = ['pre-1', 'pre-2', 'pre-3'];
  let missing: string;
  let untrusted: string;
  let forged: string;

  beforeAll(async () => {
    fixtures = await labFixtures();
    lab = await Lab.start({ fixtures });
    // A copy of the lab cache, broken three ways (the shared fixture cache stays intact).
    const dir = join(lab.dir, 'broken-cache');
    await cp(fixtures.cache.dir, dir, { recursive: true });
    const { realisticBase, realisticNext } = fixtures.systems;
    const shared = new Set(await closureOf([realisticBase.path]));
    const only = (await closureOf([realisticNext.path])).filter((p) => !shared.has(p) && p !== realisticNext.path);
    [missing, untrusted, forged] = [only.find((p) => p.includes('-htop-'))!, only.find((p) => p.includes('-openssl-3.3.2-dev'))!, only.find((p) => p.includes('-curl-8.11.0-bin'))!];
    await rm(join(dir, narinfoFile(missing)));
    const resign = async (path: string, sign: (fingerprint: string) => string) => {
      const file = join(dir, narinfoFile(path));
      const text = await readFile(file, 'utf8');
      const refs = narinfoField(text, 'References').split(' ').filter(Boolean).map((r) => `/nix/store/${r}`).sort();
      const fingerprint = `1;${path};${narinfoField(text, 'NarHash')};${narinfoField(text, 'NarSize')};${refs.join(',')}`;
      await writeFile(file, `${text.replace(/^Sig: .*\n/gm, '')}Sig: ${sign(fingerprint)}\n`);
    };
    // Signed by the untrusted fixture key (a real Nix key file), which the hosts do not trust.
    const untrustedKey = parseSecretKey(await readFile(fixtures.untrustedCache.key.secretKeyFile, 'utf8'));
    await resign(untrusted, (f) => `${untrustedKey.keyId}:${toBase64(nodeEd25519.sign(Buffer.from(f), untrustedKey.secretKey))}`);
    // Names the trusted key, signed by another: a forgery.
    const impostor = generateNamedKey(fixtures.cache.key.name);
    await resign(forged, (f) => `${fixtures.cache.key.name}:${toBase64(nodeEd25519.sign(Buffer.from(f), impostor.secretKey))}`);

    broken = await serveCache(dir, { host: lab.serviceAddress });
    lab.scope.add({ label: `broken cache ${broken.url}`, release: () => broken.close(), releaseSync: () => undefined });
    controller = await lab.startController({ caches: [{ url: broken.url, publicKeys: [fixtures.cache.key.publicKey] }] });
    for (const name of hosts) {
      await controller.client.registerHost({ name, publicKey: toBase64(generateNamedKey(name).publicKey) });
    }
    await controller.client.createRelease({ name: 'pre-next', hosts: Object.fromEntries(hosts.map((h) => [h, realisticNext.path])) });
  });
  afterAll(() => lab?.cleanup());

  it('refuses the rollout, naming each bad path, why, and the hosts it affects; issues nothing', async () => {
    const response = await controller.client.request('POST', '/v1/rollouts', { release: 'pre-next', waves: ['100%'] });
    expect(response.status).toBe(409);
    const error = (response.body as { error: { code: string; message: string; issues: string[] } }).error;
    expect(error.code).toBe('preflight-failed');
    const line = (path: string) => error.issues.find((i) => i.startsWith(`${path}:`));
    expect(line(missing)).toMatch(/: missing \(in no configured binary cache\); 3 hosts pre-1, pre-2, pre-3$/);
    expect(line(untrusted)).toContain(`untrusted-key (${broken.url} serves it signed only by ${fixtures.untrustedCache.key.name}`);
    expect(line(forged)).toContain(`bad-signature (${broken.url} serves it with a signature by ${fixtures.cache.key.name} that does not verify`);
    expect(error.issues).toHaveLength(3);
    expect((await controller.client.request('GET', '/v1/rollouts')).body).toEqual({ rollouts: [] });
    for (const host of await controller.client.hosts()) expect(host.desired).toBeNull();
  });

  it('shows the same problems in the plan', async () => {
    const plan = await controller.client.plan({ release: 'pre-next', waves: ['100%'] });
    expect(plan.preflight.outcome).toBe('failed');
    expect(plan.preflight.problems.map((p) => [p.path, p.kind, p.hosts])).toEqual(
      expect.arrayContaining([
        [missing, 'missing', hosts],
        [untrusted, 'untrusted-key', hosts],
        [forged, 'bad-signature', hosts],
      ]),
    );
  });

  it('starts with skipPreflight, and the audit log records who overrode which problems', async () => {
    const status = await controller.client.startRollout({ release: 'pre-next', waves: ['100%'], skipPreflight: true });
    const started = (await controller.client.rolloutEvents(status.id)).find((e) => e.kind === 'rollout-started')!;
    expect(started.data.actor).toBe('operator:admin');
    expect(started.data.preflight).toMatchObject({ outcome: 'failed', skipped: true, paths: expect.any(Number) });
    expect((started.data.preflight as { problems: string[] }).problems).toEqual(expect.arrayContaining([expect.stringContaining(missing)]));
  });

  it('checks a retry like a start: a new rollout is refused before it issues anything, unless skipped', async () => {
    const { rollouts: before } = (await controller.client.request('GET', '/v1/rollouts')).body as { rollouts: Array<{ id: string }> };
    const first = before[0]!.id;
    expect((await controller.client.request('POST', `/v1/rollouts/${first}/abort`)).status).toBe(200);
    const refused = await controller.client.request('POST', `/v1/rollouts/${first}/retry`);
    expect(refused.status).toBe(409);
    expect((refused.body as { error: { code: string; issues: string[] } }).error.code).toBe('preflight-failed');
    expect((refused.body as { error: { issues: string[] } }).error.issues).toEqual(expect.arrayContaining([expect.stringContaining(missing)]));
    expect(((await controller.client.request('GET', '/v1/rollouts')).body as { rollouts: unknown[] }).rollouts).toHaveLength(before.length);
    const retried = await controller.client.request('POST', `/v1/rollouts/${first}/retry`, { skipPreflight: true });
    expect(retried.status).toBe(201);
    const retry = retried.body as { id: string; retryOf: string };
    expect(retry.retryOf).toBe(first);
    const started = (await controller.client.rolloutEvents(retry.id)).find((e) => e.kind === 'rollout-started')!;
    expect(started.data).toMatchObject({ retryOf: first, preflight: { outcome: 'failed', skipped: true } });
  });
});
