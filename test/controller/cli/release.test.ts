import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Release } from '../../../shared/src/rollout-api.js';
import { signedBundle, storePath } from '../helpers.js';
import { liveController, type LiveController } from '../server-helpers.js';
import { FakeAgent, shoal } from './cli-helpers.js';

describe('shoal release', () => {
  let ctl: LiveController;
  let dir: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    ctl = await liveController();
    dir = mkdtempSync(join(tmpdir(), 'shoal-cli-release-'));
    env = { SHOAL_CONTROLLER: ctl.handle.url, SHOAL_TOKEN: ctl.operatorToken };
    for (const name of ['web-1', 'web-2', 'db-1']) await FakeAgent.register(ctl.handle.url, ctl.operatorToken, name);
  });
  afterAll(async () => {
    await ctl.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a release from HOST=PATH arguments and shows it', async () => {
    const created = await shoal(
      ['release', 'create', 'v1', `web-1=${storePath('nixos-system-web-1', 'b')}`, `web-2=${storePath('nixos-system-web-2', 'b')}`, '--description', 'first', '--source', 'abc123'],
      env,
    );
    expect(created).toEqual({ code: 0, stdout: 'created release v1 (2 hosts)\n', stderr: '' });
    const [shown, human] = await Promise.all([shoal(['release', 'show', 'v1', '--json'], env), shoal(['release', 'show', 'v1'], env)]);
    expect(Release.parse(JSON.parse(shown.stdout))).toMatchObject({
      name: 'v1',
      description: 'first',
      source: 'abc123',
      createdBy: 'operator:test-admin',
      hosts: [
        { host: 'web-1', storePath: storePath('nixos-system-web-1', 'b') },
        { host: 'web-2', storePath: storePath('nixos-system-web-2', 'b') },
      ],
    });
    expect(human.stdout).toMatch(
      /^release v1: 2 hosts, created .* by operator:test-admin\nsigned by this controller's single key single-release-1 \(single-key mode\) at .*, floor 0\nsource abc123\nfirst\n\nHOST   SYSTEM\nweb-1  bbbbbbb-nixos-system-web-1\n/,
    );
  });

  it('shows who signed a CI-published release, when, at what floor, and from which source', async () => {
    const bundle = signedBundle(ctl.ciKey, 'ci-7', [{ host: 'web-1', storePath: storePath('web-1', 'f') }], {
      floor: 4,
      source: { revision: '0123456789abcdef0123456789abcdef01234567', flakeLockHash: 'ab'.repeat(32) },
    });
    const published = await fetch(`${ctl.handle.url}/v1/releases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ctl.operatorToken}`, 'content-type': 'application/json' },
      body: JSON.stringify(bundle),
    });
    expect(published.status).toBe(201);
    const human = await shoal(['release', 'show', 'ci-7'], env);
    expect(human.stdout).toContain(
      `signed by CI key ci-release-1 at 2030-01-02 03:04 UTC, floor 4\nbuilt from revision 0123456789abcdef0123456789abcdef01234567, flake.lock sha256 ${'ab'.repeat(32)}\n`,
    );
  });

  it('creates releases from a file in the map form and in the API list form, and lists them', async () => {
    const mapFile = join(dir, 'map.json');
    writeFileSync(mapFile, JSON.stringify({ hosts: { 'web-1': storePath('web-1', 'c'), 'db-1': storePath('db-1', 'c') }, description: 'from a map' }));
    const listFile = join(dir, 'list.json');
    writeFileSync(listFile, JSON.stringify({ hosts: [{ host: 'web-2', storePath: storePath('web-2', 'd') }] }));
    const [fromMap, fromList] = await Promise.all([
      shoal(['release', 'create', 'v2', '--file', mapFile, '--source', 'def456'], env),
      shoal(['release', 'create', 'v3', '--file', listFile, '--json'], env),
    ]);
    expect(fromMap).toMatchObject({ code: 0, stdout: 'created release v2 (2 hosts)\n' });
    expect(Release.parse(JSON.parse(fromList.stdout)).hosts).toEqual([{ host: 'web-2', storePath: storePath('web-2', 'd') }]);

    const listed = await shoal(['release', 'list'], env);
    const lines = listed.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^RELEASE\s+HOSTS\s+CREATED\s+SOURCE\s+DESCRIPTION$/);
    expect(lines.find((l) => l.startsWith('v2 '))).toMatch(/^v2\s+2\s+\d{4}-\d\d-\d\d \d\d:\d\d UTC\s+def456\s+from a map$/);
    for (const line of lines) expect(line.length).toBeLessThanOrEqual(80);
  });

  it('refuses unknown and duplicate hosts, naming each offender on its own line, and stores nothing', async () => {
    const refused = await shoal(
      ['release', 'create', 'bad', `web-1=${storePath('a', 'b')}`, `web-1=${storePath('a', 'c')}`, `ghost=${storePath('g', 'b')}`, `phantom=${storePath('p', 'b')}`],
      env,
    );
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe(
      [
        'shoal: release "bad" refused (invalid-release, HTTP 400):',
        '  host "web-1" appears more than once',
        '  host "ghost" is not known to this controller',
        '  host "phantom" is not known to this controller',
        '',
      ].join('\n'),
    );
    const missing = await shoal(['release', 'show', 'bad'], env);
    expect(missing).toMatchObject({ code: 1, stderr: 'shoal: no release named "bad" (unknown-release, HTTP 404)\n' });
  });

  it('names the host whose store path is not a store path, before asking the controller', async () => {
    const file = join(dir, 'bad-paths.json');
    writeFileSync(file, JSON.stringify({ hosts: { 'web-1': '/tmp/system', 'web-2': storePath('web-2', 'b'), 'db-1': `${storePath('db-1', 'b')}/bin` } }));
    const refused = await shoal(['release', 'create', 'paths', '--file', file], env);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      [
        'shoal: release refused: 2 bad host entries',
        '  host "web-1": "/tmp/system" is not a Nix store path (must start with /nix/store/)',
        `  host "db-1": "${storePath('db-1', 'b')}/bin" is not a Nix store path (must name a top-level store path, not a file inside one)`,
        '',
      ].join('\n'),
    );
  });

  it('says how to call it when given neither a file nor hosts, or both', async () => {
    const file = join(dir, 'map.json');
    const [neither, both, badPair] = await Promise.all([
      shoal(['release', 'create', 'v9'], env),
      shoal(['release', 'create', 'v9', '--file', file, `web-1=${storePath()}`], env),
      shoal(['release', 'create', 'v9', 'web-1'], env),
    ]);
    expect(neither).toMatchObject({ code: 2, stderr: 'shoal: release create needs --file FILE or HOST=/nix/store/… arguments\n' });
    expect(both).toMatchObject({ code: 2, stderr: 'shoal: give the hosts either with --file or as HOST=PATH arguments, not both\n' });
    expect(badPair).toMatchObject({ code: 2, stderr: 'shoal: expected HOST=/nix/store/…, got "web-1"\n' });
  });
});
