import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatPublicKey, generateNamedKey } from '../../shared/src/keys.js';
import { SKIP_WITHOUT_LIB, evalJson, evalModules, failedAssertions, nixpkgsLib } from './nix.js';

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

const releaseKey = formatPublicKey(generateNamedKey('release-1'));
const controllerKey = formatPublicKey(generateNamedKey('controller-1'));
const cacheKey = formatPublicKey(generateNamedKey('cache-1'));

interface Service {
  description: string;
  wantedBy: string[];
  wants: string[];
  after: string[];
  restartIfChanged: boolean;
  unitConfig: Record<string, unknown>;
  serviceConfig: Record<string, unknown>;
  path: string[];
  configFile: string;
  checkCommand: string | null;
  renderedFile: string;
  renderedName: string;
  renderedJson: string;
}

interface Store {
  shoal: string;
  nix: string;
  systemd: string;
}

function agentConfig(agent: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return {
    ...extra,
    services: {
      'shoal-agent': {
        enable: true,
        controllerUrl: 'https://shoal.example.org',
        trustedReleaseKeys: [releaseKey],
        trustedControllerKeys: [controllerKey],
        ...agent,
      },
    },
  };
}

const service = (config: object) => evalJson<Service>(config, 'agent');
const rendered = (config: object) => JSON.parse(service(config).renderedJson) as Record<string, unknown>;

describe.skipIf(!lib)('services.shoal-agent', () => {
  it('renders every promoted option into the agent config file, with settings alongside', () => {
    const json = rendered(
      agentConfig(
        {
          enrollmentTokenFile: '/run/secrets/shoal-enroll',
          substituters: ['http://cache.internal:5000'],
          trustedPublicKeys: [cacheKey],
          pollInterval: 45,
          action: 'boot',
          healthChecks: [
            { name: 'web', command: ['/bin/sh', '-c', 'true'] },
            { name: 'http', url: 'http://127.0.0.1/health', expectStatus: 204, timeoutMs: 2000 },
          ],
          settings: {
            healthDeadlineMs: 120000,
            websocket: false,
            timeouts: { switchMs: 900000 },
            maxClockSkewMs: 60000,
            maxManifestLifetimeMs: 86400000,
          },
        },
        { networking: { hostName: 'web-1' } },
      ),
    );
    expect(json).toEqual({
      host: 'web-1',
      controllerUrl: 'https://shoal.example.org',
      trustedReleaseKeys: [releaseKey],
      trustedControllerKeys: [controllerKey],
      stateDir: '/var/lib/shoal-agent',
      enrollmentTokenFile: '/run/secrets/shoal-enroll',
      substituters: ['http://cache.internal:5000'],
      trustedPublicKeys: [cacheKey],
      pollIntervalMs: 45000,
      action: 'boot',
      healthChecks: [
        { name: 'web', command: ['/bin/sh', '-c', 'true'] },
        { name: 'http', url: 'http://127.0.0.1/health', expectStatus: 204, timeoutMs: 2000 },
      ],
      healthDeadlineMs: 120000,
      websocket: false,
      timeouts: { switchMs: 900000 },
      maxClockSkewMs: 60000,
      maxManifestLifetimeMs: 86400000,
      logLevel: 'info',
    });
  });

  it('leaves unset optional fields out of the file rather than writing null', () => {
    const json = rendered(agentConfig());
    expect(json).not.toHaveProperty('enrollmentTokenFile');
    expect(json).not.toHaveProperty('action');
    expect(json.pollIntervalMs).toBe(30000);
  });

  it("takes the binary caches and their keys from the host's nix.settings by default", () => {
    const json = rendered(
      agentConfig({}, { nix: { settings: { substituters: ['http://cache.internal:5000'], 'trusted-public-keys': [cacheKey] } } }),
    );
    expect(json.substituters).toEqual(['http://cache.internal:5000', 'https://cache.nixos.org/']);
    expect(json.trustedPublicKeys).toEqual([cacheKey]);
  });

  it("adds the host's extra-substituters and extra-trusted-public-keys, where NixOS users put a private cache", () => {
    const privateKey = formatPublicKey(generateNamedKey('private-1'));
    const json = rendered(
      agentConfig(
        {},
        {
          nix: {
            settings: {
              'extra-substituters': ['https://private.example.org'],
              'extra-trusted-public-keys': [privateKey],
            },
          },
        },
      ),
    );
    expect(json.substituters).toEqual(['https://cache.nixos.org/', 'https://private.example.org']);
    expect(json.trustedPublicKeys).toEqual([
      'cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=',
      privateKey,
    ]);
  });

  it('lets settings override a promoted option instead of failing with conflicting definitions', () => {
    const json = rendered(agentConfig({ pollInterval: 45, settings: { pollIntervalMs: 5000, controllerUrl: 'https://other.example.org' } }));
    expect(json.pollIntervalMs).toBe(5000);
    expect(json.controllerUrl).toBe('https://other.example.org');
  });

  it('writes controllerUrls when given, beside or instead of controllerUrl, and only then', () => {
    const replicas = ['https://shoal-a.example.org', 'https://shoal-b.example.org'];
    expect(rendered(agentConfig({ controllerUrl: null, controllerUrls: replicas }))).toMatchObject({ controllerUrls: replicas });
    expect(rendered(agentConfig({ controllerUrl: null, controllerUrls: replicas })).controllerUrl).toBeUndefined();
    expect(failedAssertions(agentConfig({ controllerUrl: null, controllerUrls: replicas }))).toEqual([]);
    expect(rendered(agentConfig()).controllerUrls).toBeUndefined();
  });

  it('replaces a promoted list set in settings rather than appending to it, and asserts on what is written', () => {
    const config = agentConfig({ settings: { trustedReleaseKeys: ['AAAA'] } });
    expect(rendered({ ...config, services: { 'shoal-agent': { ...config.services['shoal-agent'], checkConfig: false } } }).trustedReleaseKeys).toEqual(['AAAA']);
    expect(failedAssertions(config)).toEqual([expect.stringContaining('trustedReleaseKeys: "AAAA" is not a public key')]);
  });

  it('asserts on a controller URL or health check given only through settings', () => {
    expect(failedAssertions(agentConfig({ settings: { controllerUrl: 'shoal.example.org' } }))).toEqual([
      expect.stringContaining('has no http:// or https:// scheme'),
    ]);
    expect(failedAssertions(agentConfig({ settings: { healthChecks: [{ name: 'x', url: '127.0.0.1/health' }] } }))).toEqual([
      expect.stringContaining('url "127.0.0.1/health" needs an http:// or https:// scheme'),
    ]);
  });

  it.each(['https://cache.example.org?priority=30', 'https://cache.example.org?want-mass-query=true&priority=10', 'file:///srv/cache'])(
    'accepts the substituter %s, whose options leave Nix checking signatures',
    (url) => {
      expect(failedAssertions(agentConfig({ substituters: [url] }))).toEqual([]);
    },
  );

  it.each([
    ['https://cache.example.org?trusted=1', '`trusted`'],
    ['https://cache.example.org?priority=10&trusted=true', '`trusted`'],
    ['s3://bucket?region=eu-west-1&trusted=1', '`region`, `trusted`'],
  ])('refuses the substituter %s, whose options the agent would refuse', (url, named) => {
    expect(failedAssertions(agentConfig({ substituters: [url] }))).toEqual([
      expect.stringContaining(`services.shoal-agent.substituters: "${url}" carries ${named}`),
    ]);
  });

  it("refuses a weakening option that comes from the host's nix.settings, saying where it came from", () => {
    const failed = failedAssertions(agentConfig({}, { nix: { settings: { 'extra-substituters': ['http://10.0.0.9:5000?trusted=1'] } } }));
    expect(failed).toEqual([expect.stringContaining('"http://10.0.0.9:5000?trusted=1" carries `trusted`')]);
    expect(failed[0]).toContain('nix.settings.substituters');
  });

  it('puts the systemd the host runs on the PATH, not pkgs.systemd', () => {
    const store = evalJson<Store>(agentConfig(), 'store');
    const svc = service(agentConfig({}, { systemd: { package: store.shoal } }));
    expect(svc.path).toEqual([store.nix, store.shoal]);
  });

  describe('warnings', () => {
    const named = { networking: { hostName: 'web-1' } };
    const warnings = (config: object) => evalJson<string[]>(config, 'warnings');

    it('has none for an https controller and a host name of its own', () => {
      expect(warnings(agentConfig({}, named))).toEqual([]);
    });

    it.each(['http://127.0.0.1:8420', 'http://localhost:8420', 'http://[::1]:8420', 'HTTP://127.0.0.2/'])(
      'has none for plain HTTP to the loopback host %s',
      (url) => {
        expect(warnings(agentConfig({ controllerUrl: url }, named))).toEqual([]);
      },
    );

    it.each(['http://shoal.example.org', 'http://10.0.0.5:8420/', 'http://127.0.0.1.example.org', 'http://user@[2001:db8::1]:8420'])(
      'warns that plain HTTP to %s sends the enrollment token in clear',
      (url) => {
        expect(warnings(agentConfig({ controllerUrl: url }, named))).toEqual([
          expect.stringContaining(`services.shoal-agent.controllerUrl = "${url}" is plain HTTP to another host`),
        ]);
      },
    );

    it('warns about plain HTTP to a replica in controllerUrls too', () => {
      expect(warnings(agentConfig({ controllerUrls: ['http://10.0.0.6:8420'] }, named))).toEqual([
        expect.stringContaining('services.shoal-agent.controllerUrls: "http://10.0.0.6:8420" is plain HTTP to another host'),
      ]);
    });

    it('warns when networking.hostName is left at its default, so hosts would collide on the controller', () => {
      expect(warnings(agentConfig())).toEqual([expect.stringContaining('networking.hostName is left at its default "nixos"')]);
    });

    it('does not warn about the host name when settings.host names the host', () => {
      expect(warnings(agentConfig({ settings: { host: 'web-2' } }))).toEqual([]);
    });
  });

  it('runs the agent from the config file that was checked at build time, also linked into /etc', () => {
    const store = evalJson<Store>(agentConfig(), 'store');
    const svc = service(agentConfig());
    expect(svc.serviceConfig.ExecStart).toBe(`${store.shoal}/bin/shoal-agent run --config ${svc.configFile}`);
    expect(svc.checkCommand).toContain(`${store.shoal}/bin/shoal-agent check-config --config ${svc.renderedFile}\n`);
    expect(svc.checkCommand).toContain(`cp ${svc.renderedFile} $out`);
    expect(svc.renderedName).toBe('shoal-agent.json');
    expect(evalJson<string[]>(agentConfig(), 'etc')).toEqual(['shoal/agent.json']);
    expect(evalJson<string[]>(agentConfig(), 'systemPackages')).toEqual([store.shoal]);
  });

  it('uses the rendered file directly when checkConfig is off', () => {
    const svc = service(agentConfig({ checkConfig: false }));
    expect(svc.checkCommand).toBeNull();
    expect(svc.configFile).toBe(svc.renderedFile);
    expect(svc.serviceConfig.ExecStart).toMatch(new RegExp(` run --config ${svc.renderedFile}$`));
  });

  it('runs as root with Nix and systemd on its PATH', () => {
    const store = evalJson<Store>(agentConfig(), 'store');
    const svc = service(agentConfig());
    expect(svc.path).toEqual([store.nix, store.systemd]);
    expect(svc.serviceConfig).not.toHaveProperty('User');
    expect(svc.serviceConfig).not.toHaveProperty('DynamicUser');
    expect(svc.wantedBy).toEqual(['multi-user.target']);
    expect(svc.after).toContain('network-online.target');
  });

  it('uses the nix package the host configured', () => {
    const store = evalJson<Store>(agentConfig(), 'store');
    // Any store path that is not the default nix stands in for the operator's choice.
    const svc = service(agentConfig({}, { nix: { package: store.systemd } }));
    expect(svc.path[0]).toBe(store.systemd);
  });

  it('survives a switch it performs itself: not restarted or stopped by activation, only its own process killed', () => {
    const svc = service(agentConfig());
    expect(svc.restartIfChanged).toBe(false);
    expect(svc.unitConfig).toEqual({ 'X-StopOnRemoval': false });
    expect(svc.serviceConfig).toMatchObject({
      KillMode: 'process',
      Restart: 'always',
      StateDirectory: 'shoal-agent',
      StateDirectoryMode: '0700',
    });
  });

  it('derives StateDirectory from settings.stateDir', () => {
    const svc = service(agentConfig({ settings: { stateDir: '/var/lib/shoal/agent' } }));
    expect(svc.serviceConfig.StateDirectory).toBe('shoal/agent');
    expect(JSON.parse(svc.renderedJson).stateDir).toBe('/var/lib/shoal/agent');
  });

  it('has no failed assertions for a correct configuration', () => {
    expect(failedAssertions(agentConfig({ enrollmentTokenFile: '/run/secrets/enroll' }))).toEqual([]);
  });

  it('defines nothing when disabled', () => {
    expect(evalJson<string[]>({ services: { 'shoal-agent': { enable: false } } }, 'services')).toEqual([]);
    expect(evalJson<string[]>({}, 'etc')).toEqual([]);
    expect(failedAssertions({})).toEqual([]);
  });

  it('refuses a settings value of the wrong type, naming the option', () => {
    const result = evalModules(agentConfig({ settings: { logLevel: 'loud' } }), 'agent');
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.stderr).toContain('services.shoal-agent.settings.logLevel');
  });

  it('refuses a Nix path for the enrollment token, which would copy the secret into the world-readable store', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-module-'));
    try {
      writeFileSync(join(dir, 'token'), 'secret-token');
      writeFileSync(join(dir, 'module.nix'), '{ services.shoal-agent.enrollmentTokenFile = ./token; }');
      const result = evalModules(agentConfig(), 'agent', join(dir, 'module.nix'));
      expect(result.ok).toBe(false);
      if (!result.ok) expect(result.stderr).toContain('services.shoal-agent.enrollmentTokenFile');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const badInputs: Array<[string, Record<string, unknown>, Record<string, unknown>, string]> = [
    ['no controller URL', { controllerUrl: null }, {}, 'services.shoal-agent.controllerUrl is not set'],
    ['a controller URL without a scheme', { controllerUrl: 'shoal.example.org:8420' }, {}, 'has no http:// or https:// scheme'],
    ['a replica URL without a scheme', { controllerUrls: ['shoal-b.example.org'] }, {}, 'controllerUrls: "shoal-b.example.org" has no http:// or https:// scheme'],
    ['no trusted release key', { trustedReleaseKeys: [] }, {}, 'services.shoal-agent.trustedReleaseKeys is empty'],
    ['a release key that is not name:base64', { trustedReleaseKeys: ['AAAA'] }, {}, 'trustedReleaseKeys: "AAAA" is not a public key'],
    ['no trusted controller key', { trustedControllerKeys: [] }, {}, 'services.shoal-agent.trustedControllerKeys is empty'],
    ['a controller key that is not name:base64', { trustedControllerKeys: ['BBBB'] }, {}, 'trustedControllerKeys: "BBBB" is not a public key'],
    ['a controller key given only through settings that is not name:base64', { settings: { trustedControllerKeys: ['BBBB'] } }, {}, 'trustedControllerKeys: "BBBB" is not a public key'],
    ['a cache key that is not name:base64', { trustedPublicKeys: ['cache-1:short'] }, {}, 'trustedPublicKeys: "cache-1:short" is not a binary-cache public key'],
    ['an enrollment token in the Nix store', { enrollmentTokenFile: '/nix/store/abc-token' }, {}, 'must be an absolute path outside the Nix store'],
    ['a relative enrollment token path', { enrollmentTokenFile: 'secrets/token' }, {}, 'must be an absolute path outside the Nix store'],
    ['a host name the controller refuses', {}, { networking: { hostName: 'Web_1' } }, 'settings.host = "Web_1" is not a valid Shoal host name'],
    ['a state directory outside /var/lib', { settings: { stateDir: '/srv/shoal' } }, {}, 'must be a directory below /var/lib'],
    ['a health check with both command and url', { healthChecks: [{ name: 'x', command: ['/bin/true'], url: 'http://a/' }] }, {}, 'healthChecks "x" must set exactly one of `command` and `url`'],
    ['a health check with neither command nor url', { healthChecks: [{ name: 'x' }] }, {}, 'healthChecks "x" must set exactly one of `command` and `url`'],
    ['a health check with an empty command', { healthChecks: [{ name: 'x', command: [] }] }, {}, '`command` is empty'],
    ['a health check URL without a scheme', { healthChecks: [{ name: 'x', url: '127.0.0.1/health' }] }, {}, 'url "127.0.0.1/health" needs an http:// or https:// scheme'],
    ['expectStatus on a command check', { healthChecks: [{ name: 'x', command: ['/bin/true'], expectStatus: 200 }] }, {}, '`expectStatus` only applies to `url` checks'],
  ];

  it.each(badInputs)('asserts against %s, saying what to fix', (_what, agent, extra, message) => {
    const failed = failedAssertions(agentConfig(agent, extra));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain(message);
  });
});
