import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../../controller/src/cli/run.js';
import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { formatSecretKey, generateNamedKey } from '../../../shared/src/keys.js';
import { ReleaseBuild, ReleaseBundle, verifyReleaseStatement } from '../../../shared/src/release-statement.js';
import { generateCacheKey, type CacheKey } from '../../lab/binary-cache.js';
import { serveCache, type CacheServer } from '../../lab/cache-server.js';
import { writeLabFlake } from '../../lab/lab-flake.js';
import { run } from '../../lab/run.js';
import { shoal } from './cli-helpers.js';

interface Posted {
  method: string;
  path: string;
  authorization: string | undefined;
  body: unknown;
}

/**
 * Stands in for the controller's POST /v1/releases until the controller side of bundles is
 * merged (the full publish → rollout → hosts test runs against the real one): records what the
 * CLI sent and answers what `answer` says.
 */
async function releaseEndpoint(answer: (body: ReleaseBundle) => { status: number; body: unknown }): Promise<{ url: string; posted: Posted[]; close: () => Promise<void> }> {
  const posted: Posted[] = [];
  const server: Server = createServer((req, res) => {
    let text = '';
    req.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
    req.on('end', () => {
      const body = JSON.parse(text) as unknown;
      posted.push({ method: req.method!, path: req.url!, authorization: req.headers.authorization, body });
      const reply = answer(ReleaseBundle.parse(body));
      res.writeHead(reply.status, { 'content-type': 'application/json' }).end(JSON.stringify(reply.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    posted,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const stored = (bundle: ReleaseBundle) => ({
  status: 201,
  body: { name: bundle.name, description: bundle.description, createdAt: bundle.createdAt, createdBy: 'operator:ci', hosts: bundle.hosts.map(({ host, storePath }) => ({ host, storePath })) },
});

/** Real Nix throughout: the lab flake is evaluated and built, closures go into a real HTTP binary cache. */
describe('shoal release build / push-closures / sign (real Nix)', () => {
  let dir: string;
  let env: Record<string, string>;
  let flake: { dir: string; revision: string | null };
  let buildFile: string;
  let cache: CacheServer;
  let cacheKey: CacheKey;
  let ciKeyFile: string;
  const ciKey = generateNamedKey('ci-1');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shoal-cli-pipeline-'));
    // The machine's default substituter is unreachable here; an empty list keeps Nix from waiting on it.
    env = { HOME: dir, NIX_CONFIG: 'substituters =\nsandbox = false' };
    flake = await writeLabFlake(join(dir, 'flake'), {
      git: true,
      hosts: {
        'web-1': { label: `web-1 ${dir}` },
        'web-2': { label: `web-2 ${dir}` },
        'db-1': { label: `db-1 ${dir}`, kernel: '6.7.0-lab', switchInhibitors: 'postgresql 16' },
      },
    });
    buildFile = join(dir, 'release-build.json');
    cache = await serveCache(join(dir, 'cache'), { writable: true });
    cacheKey = await generateCacheKey(join(dir, 'keys'), 'lab-ci-cache-1');
    ciKeyFile = join(dir, 'ci.key');
    writeFileSync(ciKeyFile, `${formatSecretKey(ciKey)}\n`, { mode: 0o600 });
  });
  afterAll(async () => {
    await cache?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('builds every host of the lab flake with its store path, facts, git revision and lock hash', async () => {
    const result = await shoal(['release', 'build', '--flake', flake.dir, '--name', 'lab-1', '--description', 'from the lab flake', '-o', buildFile], env);
    expect(result.code, result.stderr).toBe(0);
    const build = ReleaseBuild.parse(JSON.parse(readFileSync(buildFile, 'utf8')));
    expect(build).toMatchObject({
      kind: 'shoal-release-build',
      name: 'lab-1',
      description: 'from the lab flake',
      source: { revision: flake.revision, flakeLockHash: createHash('sha256').update(readFileSync(join(flake.dir, 'flake.lock'))).digest('hex') },
    });
    expect(build.hosts.map((h) => h.host)).toEqual(['db-1', 'web-1', 'web-2']);
    for (const host of build.hosts) {
      expect(host.storePath).toMatch(new RegExp(`^/nix/store/[a-z0-9]{32}-nixos-system-${host.host}$`));
      expect(existsSync(host.storePath)).toBe(true);
      expect(readFileSync(join(host.storePath, 'nixos-version'), 'utf8')).toBe(`${host.host} ${dir}\n`);
      const closure = await run('nix-store', ['--query', '--requisites', host.storePath]);
      const closureBytes = (await run('nix-store', ['--query', '--size', ...closure.stdout.trim().split('\n')])).stdout
        .trim()
        .split('\n')
        .reduce((sum, n) => sum + Number(n), 0);
      expect(host.facts).toEqual({
        closureBytes,
        kernel: realpathSync(join(host.storePath, 'kernel')),
        initrd: realpathSync(join(host.storePath, 'initrd')),
        kernelModules: realpathSync(join(host.storePath, 'kernel-modules')),
        switchInhibitors: host.host === 'db-1' ? 'postgresql 16\n' : null,
      });
    }
    expect(build.hosts[0]!.facts!.kernel).toMatch(/-lab-kernel-6\.7\.0-lab\/bzImage$/);
    expect(readlinkSync(join(build.hosts[1]!.storePath, 'kernel'))).toMatch(/-lab-kernel-6\.6\.0-lab\/bzImage$/);
    expect(result.stderr).toContain('evaluating host 1 of 3: db-1\n');
    expect(result.stderr).toContain('host 3 of 3: web-2 /nix/store/');
    expect(result.stderr).toContain(`wrote ${buildFile}: release lab-1, 3 hosts, revision ${flake.revision}\n`);
  });

  it('records no revision outside git or from a dirty tree (unless --revision), and writes no flake.lock into the flake', async () => {
    const plain = await writeLabFlake(join(dir, 'plain-flake'), { lock: false, hosts: { 'app-1': { label: `app-1 ${dir}` } } });
    const out = join(dir, 'plain.json');
    const result = await shoal(['release', 'build', '--flake', plain.dir, '--name', 'plain', '-o', out], env);
    expect(result.code, result.stderr).toBe(0);
    expect(ReleaseBuild.parse(JSON.parse(readFileSync(out, 'utf8'))).source).toEqual({ revision: null, flakeLockHash: null });
    expect(existsSync(join(plain.dir, 'flake.lock'))).toBe(false);
    expect(result.stderr).toContain('revision (none: not a clean git tree)');

    const dirty = await writeLabFlake(join(dir, 'dirty-flake'), { git: true, hosts: { 'app-1': { label: `app-1 ${dir}` } } });
    writeFileSync(join(dirty.dir, 'flake-hosts.json'), readFileSync(join(dirty.dir, 'flake-hosts.json'), 'utf8').replace('app-1 ', 'app-1 uncommitted '));
    const fromDirty = await shoal(['release', 'build', '--flake', dirty.dir, '--name', 'dirty', '-o', '-'], env);
    expect(fromDirty.code, fromDirty.stderr).toBe(0);
    expect(ReleaseBuild.parse(JSON.parse(fromDirty.stdout)).source.revision).toBeNull();
    const named = await shoal(['release', 'build', '--flake', dirty.dir, '--name', 'dirty', '--revision', 'ci-run-7', '-o', '-'], env);
    expect(ReleaseBuild.parse(JSON.parse(named.stdout)).source.revision).toBe('ci-run-7');
  });

  it('builds from a Nix file that maps hosts to toplevels, and names the host whose build fails', async () => {
    const file = join(dir, 'hosts.nix');
    const drv = (name: string, script: string) =>
      `builtins.derivation { name = "${name}"; system = builtins.currentSystem; builder = "/bin/sh"; args = [ "-c" ${JSON.stringify(script)} ]; }`;
    writeFileSync(file, `{ app-1 = ${drv('app-1-system', `/bin/mkdir $out; echo ${dir} > $out/id`)}; }\n`);
    const ok = await shoal(['release', 'build', '--file', file, '--name', 'from-file', '-o', '-'], env);
    expect(ok.code, ok.stderr).toBe(0);
    const build = ReleaseBuild.parse(JSON.parse(ok.stdout));
    expect(build.hosts).toEqual([{ host: 'app-1', storePath: expect.stringMatching(/-app-1-system$/), facts: expect.objectContaining({ kernel: null, switchInhibitors: null }) }]);

    const broken = join(dir, 'broken.nix');
    writeFileSync(broken, `{ app-1 = ${drv('app-1-ok', `/bin/mkdir $out; echo ${dir} > $out/id`)}; app-2 = ${drv('app-2-broken', `echo ${dir}; echo the build of app-2 breaks >&2; exit 3`)}; }\n`);
    const failed = await shoal(['release', 'build', '--file', broken, '--name', 'broken', '-o', join(dir, 'broken.json')], env);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^shoal: nix build failed for host app-2 \(1 of 2\):\n {2}error: /m);
    expect(failed.stderr).toContain('app-2-broken.drv');
    expect(existsSync(join(dir, 'broken.json'))).toBe(false);
  });

  it('names the host whose evaluation fails, and a flake attribute that does not exist', async () => {
    const bad = await writeLabFlake(join(dir, 'bad-flake'), { hosts: { 'good-1': {}, 'bad-1': {} } });
    const hostsFile = join(bad.dir, 'flake-hosts.json');
    const spec = JSON.parse(readFileSync(hostsFile, 'utf8')) as { hosts: Record<string, { kernel: unknown }> };
    spec.hosts['bad-1']!.kernel = null;
    writeFileSync(hostsFile, JSON.stringify(spec));
    const evalFailed = await shoal(['release', 'build', '--flake', bad.dir, '--name', 'bad'], env);
    expect(evalFailed.code).toBe(1);
    expect(evalFailed.stderr).toMatch(/^shoal: evaluation failed for 1 of 2 hosts of path:.*bad-flake#nixosConfigurations:\n {2}host bad-1:\n {4}error: cannot coerce null/m);
    expect(evalFailed.stderr).not.toContain('host good-1');

    const missing = await shoal(['release', 'build', '--flake', `${flake.dir}#nixosConfigurationz`, '--name', 'bad'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^shoal: cannot evaluate the host list of .*#nixosConfigurationz:\n {2}error: .*does not provide attribute .*nixosConfigurationz/ms);
    const one = await shoal(['release', 'build', '--flake', `${flake.dir}#nixosConfigurations.web-1`, '--name', 'bad'], env);
    expect(one.code).toBe(1);
    expect(one.stderr).toContain('error: shoal: this is one system, not a set of host -> system');
    const noFlake = await shoal(['release', 'build', '--flake', dir, '--name', 'bad'], env);
    expect(noFlake).toMatchObject({ code: 2, stderr: `shoal: no flake.nix in ${dir} (--flake takes a directory or a flake URL, then #ATTR)\n` });
  });

  it('pushes every closure into an HTTP binary cache, signed by Nix with the cache key, fetchable into a store that requires signatures', async () => {
    const build = ReleaseBuild.parse(JSON.parse(readFileSync(buildFile, 'utf8')));
    const pushed = await shoal(['release', 'push-closures', '--to', cache.url, '--cache-key', cacheKey.secretKeyFile, '--release', buildFile], env);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(pushed.stderr).toContain(`copying the closures of 3 systems to ${cache.url} (signed with ${cacheKey.secretKeyFile})`);
    for (const host of build.hosts) {
      const narinfo = join(dir, 'cache', `${host.storePath.slice('/nix/store/'.length, '/nix/store/'.length + 32)}.narinfo`);
      expect(readFileSync(narinfo, 'utf8')).toMatch(/^Sig: lab-ci-cache-1:/m);
      expect(cache.requests.some((r) => r.method === 'PUT' && r.path === narinfo.slice(join(dir, 'cache').length) && r.status === 201)).toBe(true);
    }
    const copyInto = (root: string, publicKey: string, path: string) =>
      run('nix', ['--extra-experimental-features', 'nix-command', 'copy', '--from', cache.url, '--to', `local?root=${root}`, path, '--option', 'trusted-public-keys', publicKey], {
        env: { ...process.env, ...env },
      });
    for (const host of build.hosts) {
      const fetched = await copyInto(join(dir, `store-${host.host}`), cacheKey.publicKey, host.storePath);
      expect(fetched.exitCode, fetched.stderr).toBe(0);
      expect(existsSync(join(dir, `store-${host.host}`, host.storePath, 'bin/switch-to-configuration'))).toBe(true);
    }
    const other = await generateCacheKey(join(dir, 'keys'), 'someone-else');
    const refused = await copyInto(join(dir, 'store-untrusting'), other.publicKey, build.hosts[0]!.storePath);
    expect(refused.exitCode).not.toBe(0);
    // Nix 2.8 says "lacks a valid signature", later versions "lacks a signature by a trusted key".
    expect(refused.stderr).toMatch(/because it lacks a (valid )?signature/);
  });

  it('signs every statement offline with the CI key, each verifying for its own host and system', async () => {
    const build = ReleaseBuild.parse(JSON.parse(readFileSync(buildFile, 'utf8')));
    const bundleFile = join(dir, 'release-bundle.json');
    const out: string[] = [];
    const err: string[] = [];
    const code = await runCli(['release', 'sign', '--key', ciKeyFile, '--floor', '2', buildFile, '-o', bundleFile], {
      env: {},
      stdout: (t) => out.push(t),
      stderr: (t) => err.push(t),
      fetch: () => Promise.reject(new Error('release sign must not use the network')),
    });
    expect({ code, err: err.join('') }).toEqual({ code: 0, err: '' });
    expect(out.join('')).toMatch(new RegExp(`^signed 3 statements for release lab-1 with key ci-1 \\(floor 2\\) in \\d+ ms: ${bundleFile}\\n$`));
    const bundle = ReleaseBundle.parse(JSON.parse(readFileSync(bundleFile, 'utf8')));
    expect(bundle).toMatchObject({ kind: 'shoal-release-bundle', name: 'lab-1', floor: 2, source: build.source, createdAt: build.createdAt });
    for (const [i, host] of bundle.hosts.entries()) {
      expect(host).toMatchObject(build.hosts[i]!);
      const verified = verifyReleaseStatement(host.statement, host, [ciKey], nodeEd25519);
      expect(verified).toMatchObject({ valid: true, keyId: 'ci-1', statement: { host: host.host, storePath: host.storePath, release: 'lab-1', floor: 2, source: build.source } });
      const other = bundle.hosts[(i + 1) % bundle.hosts.length]!;
      expect(verifyReleaseStatement(host.statement, other, [ciKey], nodeEd25519)).toMatchObject({ valid: false, reason: 'statement-wrong-host' });
    }
  });

  it('refuses a CI key that group or others can read, and writes no bundle', async () => {
    const loose = join(dir, 'loose.key');
    writeFileSync(loose, `${formatSecretKey(generateNamedKey('ci-loose'))}\n`);
    chmodSync(loose, 0o640);
    const out = join(dir, 'loose-bundle.json');
    const result = await shoal(['release', 'sign', '--key', loose, buildFile, '-o', out], env);
    expect(result).toEqual({
      code: 1,
      stdout: '',
      stderr: `shoal: release key ${loose} is readable by group or others (mode 0640); refusing to use it. Run: chmod 600 ${loose}\n`,
    });
    expect(existsSync(out)).toBe(false);
  });

  it('publishes a signed bundle to POST /v1/releases with the operator token', async () => {
    const endpoint = await releaseEndpoint(stored);
    try {
      const bundleFile = join(dir, 'release-bundle.json');
      const result = await shoal(['release', 'publish', bundleFile], { ...env, SHOAL_CONTROLLER: endpoint.url, SHOAL_TOKEN: 'ci-token' });
      expect(result).toEqual({ code: 0, stdout: 'published release lab-1 (3 hosts, signed by ci-1, floor 2)\n', stderr: '' });
      expect(endpoint.posted).toEqual([{ method: 'POST', path: '/v1/releases', authorization: 'Bearer ci-token', body: JSON.parse(readFileSync(bundleFile, 'utf8')) }]);
    } finally {
      await endpoint.close();
    }
  });

  it('shows the controller refusing a bundle, naming the host', async () => {
    const endpoint = await releaseEndpoint((bundle) => ({
      status: 400,
      body: { error: { code: 'invalid-release', message: `release "${bundle.name}" refused: host "web-2": release statement signed by ci-1, none of which is a trusted release key` } },
    }));
    try {
      const result = await shoal(['release', 'publish', join(dir, 'release-bundle.json')], { ...env, SHOAL_CONTROLLER: endpoint.url, SHOAL_TOKEN: 'ci-token' });
      expect(result).toEqual({
        code: 1,
        stdout: '',
        stderr: 'shoal: release "lab-1" refused: host "web-2": release statement signed by ci-1, none of which is a trusted release key (invalid-release, HTTP 400)\n',
      });
    } finally {
      await endpoint.close();
    }
  });

  it('runs build → push → sign → publish as one command, with progress', async () => {
    const endpoint = await releaseEndpoint(stored);
    const next = await writeLabFlake(join(dir, 'flake-2'), { git: true, hosts: { 'web-1': { label: `web-1 v2 ${dir}` }, 'web-2': { label: `web-2 v2 ${dir}` } } });
    const bundleOut = join(dir, 'lab-2-bundle.json');
    try {
      const args = ['release', 'publish', '--flake', next.dir, '--name', 'lab-2', '--cache', cache.url, '--cache-key', cacheKey.secretKeyFile, '--key', ciKeyFile, '--floor', '3'];
      const result = await shoal([...args, '--bundle-out', bundleOut], { ...env, SHOAL_CONTROLLER: endpoint.url, SHOAL_TOKEN: 'ci-token' });
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe('published release lab-2 (2 hosts, signed by ci-1, floor 3)\n');
      const steps = result.stderr.split('\n').filter((l) => /^\[\d\/4\]/.test(l));
      expect(steps).toEqual([`[1/4] build ${next.dir}#nixosConfigurations`, `[2/4] push closures to ${cache.url}`, '[3/4] sign', `[4/4] publish to ${endpoint.url}`]);
      expect(result.stderr).toMatch(/^published release lab-2 in \d+\.\d s$/m);
      const bundle = ReleaseBundle.parse(endpoint.posted[0]!.body);
      expect(bundle).toEqual(JSON.parse(readFileSync(bundleOut, 'utf8')));
      expect(bundle).toMatchObject({ name: 'lab-2', floor: 3, source: { revision: next.revision } });
      for (const host of bundle.hosts) {
        expect(verifyReleaseStatement(host.statement, host, [ciKey], nodeEd25519)).toMatchObject({ valid: true, keyId: 'ci-1' });
        expect(cache.requests.some((r) => r.method === 'PUT' && r.path === `/${host.storePath.slice(11, 43)}.narinfo`)).toBe(true);
      }
    } finally {
      await endpoint.close();
    }
  });

  it('checks the key, the name and the cache key before building anything', async () => {
    const base = ['release', 'publish', '--flake', flake.dir, '--cache', cache.url, '--name', 'x'];
    const noKey = await shoal(base, { ...env, SHOAL_TOKEN: 't' });
    expect(noKey).toMatchObject({ code: 2, stderr: 'shoal: release publish --flake needs --key FILE (the CI release key)\n' });
    const noCacheKey = await shoal([...base, '--key', ciKeyFile, '--cache-key', join(dir, 'nope')], { ...env, SHOAL_TOKEN: 't' });
    expect(noCacheKey).toMatchObject({ code: 2, stderr: `shoal: cache key ${join(dir, 'nope')}: no such file\n` });
  });
});
