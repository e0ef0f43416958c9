import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAgentArgs } from '../../agent/src/args.js';
import { loadConfig } from '../../agent/src/config.js';
import { controllerUrlsOf } from '../../agent/src/endpoints.js';
import { formatPublicKey, generateNamedKey } from '../../shared/src/keys.js';
import { useTmpDirs } from './tmp-dir.js';

const releaseKey = formatPublicKey(generateNamedKey('release-1'));
const controllerKey = formatPublicKey(generateNamedKey('controller-1'));
const minimal = { host: 'web-1', controllerUrl: 'http://127.0.0.1:8420', trustedReleaseKeys: [releaseKey], trustedControllerKeys: [controllerKey] };

describe('agent config', () => {
  const tmpDir = useTmpDirs();

  async function configFile(content: unknown): Promise<string> {
    const file = join(await tmpDir(), 'agent.json');
    await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
    return file;
  }

  it('fills in defaults for everything but the controller and the release keys', async () => {
    const result = await loadConfig(await configFile(minimal));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.stateDir).toBe('/var/lib/shoal-agent');
    expect(result.config.paths.currentSystem).toBe('/run/current-system');
    expect(result.config.timeouts.realiseMs).toBe(1_800_000);
    expect(result.config.websocket).toBe(true);
    expect(result.config.checkSystemdUnits).toBe('auto');
    expect(result.config.maxClockSkewMs).toBe(300_000);
    expect(result.config.maxManifestLifetimeMs).toBe(604_800_000);
  });

  it('takes several controller URLs to fail over between, beside or instead of controllerUrl, and needs at least one', async () => {
    const { controllerUrl: _, ...withoutUrl } = minimal;
    const replicas = ['https://shoal-a.example.org', 'https://shoal-b.example.org'];
    const listOnly = await loadConfig(await configFile({ ...withoutUrl, controllerUrls: replicas }));
    expect(listOnly.ok && controllerUrlsOf(listOnly.config)).toEqual(replicas);
    const both = await loadConfig(await configFile({ ...minimal, controllerUrls: [...replicas, minimal.controllerUrl] }));
    expect(both.ok && controllerUrlsOf(both.config)).toEqual([minimal.controllerUrl, ...replicas]);
    const none = await configFile(withoutUrl);
    expect(await loadConfig(none)).toEqual({
      ok: false,
      message: `config ${none}: controllerUrl: is required: the controller's URL (or controllerUrls, several controllers to fail over between)`,
    });
    const bad = await configFile({ ...minimal, controllerUrls: ['ftp://shoal.example.org'] });
    const refused = await loadConfig(bad);
    expect(refused.ok ? '' : refused.message).toMatch(new RegExp(`^config ${bad}: controllerUrls\\.0: `));
  });

  it('requires at least one trusted controller key, and distinct key names in each list', async () => {
    const { trustedControllerKeys: _, ...withoutControllerKeys } = minimal;
    const missing = await configFile(withoutControllerKeys);
    expect(await loadConfig(missing)).toEqual({ ok: false, message: `config ${missing}: trustedControllerKeys: expected array, received undefined` });
    const empty = await configFile({ ...minimal, trustedControllerKeys: [] });
    expect(await loadConfig(empty)).toEqual({ ok: false, message: `config ${empty}: trustedControllerKeys: must contain at least one key` });
    const twice = await configFile({ ...minimal, trustedControllerKeys: [controllerKey, formatPublicKey(generateNamedKey('controller-1'))] });
    expect(await loadConfig(twice)).toEqual({ ok: false, message: `config ${twice}: trustedControllerKeys: key name "controller-1" appears twice` });
  });

  it('refuses substituter options that would let Nix accept unsigned paths, naming the URL and the parameter', async () => {
    for (const [url, parameter] of [
      ['https://cache.example.org?trusted=1', 'trusted'],
      ['https://cache.example.org?priority=10&trusted=true', 'trusted'],
      ['https://cache.example.org?%74rusted=1', 'trusted'],
      ['file:///var/cache/nix?require-sigs=false', 'require-sigs'],
    ]) {
      const file = await configFile({ ...minimal, substituters: ['https://cache.nixos.org', url] });
      const result = await loadConfig(file);
      expect(result.ok).toBe(false);
      if (result.ok) continue;
      expect(result.message).toContain(`config ${file}: substituters.1: substituter ${JSON.stringify(url)} has the parameter "${parameter}"`);
      expect(result.message).toContain('only priority and want-mass-query are allowed');
    }
    const smuggled = await loadConfig(await configFile({ ...minimal, substituters: ['https://a.example.org https://b.example.org?trusted=1'] }));
    expect(!smuggled.ok && smuggled.message).toContain('contains whitespace');
    const fine = await loadConfig(await configFile({ ...minimal, substituters: ['https://cache.example.org?priority=30&want-mass-query=1', 'http://127.0.0.1:5000'] }));
    expect(fine.ok).toBe(true);
  });

  it('takes the time bounds from the file and refuses nonsense', async () => {
    const result = await loadConfig(await configFile({ ...minimal, maxClockSkewMs: 0, maxManifestLifetimeMs: 86_400_000 }));
    expect(result.ok && [result.config.maxClockSkewMs, result.config.maxManifestLifetimeMs]).toEqual([0, 86_400_000]);
    const bad = await configFile({ ...minimal, maxClockSkewMs: -1, maxManifestLifetimeMs: 0 });
    const refused = await loadConfig(bad);
    expect(!refused.ok && refused.message).toMatch(/maxClockSkewMs: .*; maxManifestLifetimeMs: /);
  });

  it('names the file and the field when the release keys are empty', async () => {
    const file = await configFile({ ...minimal, trustedReleaseKeys: [] });
    expect(await loadConfig(file)).toEqual({
      ok: false,
      message: `config ${file}: trustedReleaseKeys: must contain at least one key`,
    });
  });

  it('names nested fields, malformed keys and unknown fields', async () => {
    const file = await configFile({
      ...minimal,
      trustedReleaseKeys: ['release-1:tooshort'],
      timeouts: { realiseMs: -5 },
      healthChecks: [{ name: 'web', command: ['/bin/true'], url: 'http://127.0.0.1/' }],
      pollIntervalMS: 5,
    });
    const result = await loadConfig(file);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.message).toContain(`config ${file}: `);
    expect(result.message).toContain('trustedReleaseKeys.0: public key "release-1" must decode to 32 bytes');
    expect(result.message).toContain('timeouts.realiseMs:');
    expect(result.message).toContain('healthChecks.0: must have exactly one of "command" or "url"');
    expect(result.message).toContain('pollIntervalMS: unknown field');
  });

  it('reports a file that is not JSON or does not exist', async () => {
    const bad = await configFile('{ "host": ');
    const notJson = await loadConfig(bad);
    expect(!notJson.ok && notJson.message).toMatch(/^config .*agent\.json: not valid JSON/);
    const missing = await loadConfig('/nonexistent/agent.json');
    expect(!missing.ok && missing.message).toBe('config /nonexistent/agent.json: cannot read: ENOENT');
  });

  it('lets flags override the file, including nested paths', async () => {
    const file = await configFile({ ...minimal, pollIntervalMs: 30_000, paths: { profile: '/p' } });
    const args = parseAgentArgs(['run', '--config', file, '--poll-interval-ms', '500', '--no-websocket', '--current-system', '/tmp/cs']);
    expect(args.ok).toBe(true);
    if (!args.ok) return;
    expect(args.command).toBe('run');
    const result = await loadConfig(args.configFile, args.overrides);
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.config.pollIntervalMs).toBe(500);
    expect(result.config.websocket).toBe(false);
    expect(result.config.paths).toEqual({ profile: '/p', currentSystem: '/tmp/cs', bootedSystem: '/run/booted-system' });
  });

  it('names the field when a numeric flag is not a number', async () => {
    const args = parseAgentArgs(['run', '--config', await configFile(minimal), '--poll-interval-ms', 'soon']);
    if (!args.ok) throw new Error(args.message);
    const result = await loadConfig(args.configFile, args.overrides);
    expect(!result.ok && result.message).toContain('pollIntervalMs: expected number, received string');
  });

  it('parses health checks into command and HTTP checks with their default timeouts', async () => {
    const result = await loadConfig(
      await configFile({
        ...minimal,
        healthChecks: [
          { name: 'web', command: ['/bin/true'] },
          { name: 'http', url: 'http://127.0.0.1:80/health' },
        ],
      }),
    );
    expect(result.ok && result.config.healthChecks).toEqual([
      { kind: 'command', name: 'web', command: ['/bin/true'], timeoutMs: 10_000 },
      { kind: 'http', name: 'http', url: 'http://127.0.0.1:80/health', expectStatus: 200, timeoutMs: 5_000 },
    ]);
  });
});
