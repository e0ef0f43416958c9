import { describe, expect, it } from 'vitest';
import { SKIP_WITHOUT_LIB, evalJson, failedAssertions, nixpkgsLib } from './nix.js';

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

const CREDENTIAL = '/run/credentials/shoal-controller.service/release-key';

interface Service {
  restartIfChanged: boolean;
  serviceConfig: Record<string, unknown>;
  configFile: string;
  checkCommand: string | null;
  renderedFile: string;
  renderedJson: string;
}

function controllerConfig(controller: Record<string, unknown> = {}) {
  return {
    services: {
      'shoal-controller': {
        enable: true,
        releaseKeyFile: '/var/lib/secrets/shoal-release.key',
        ...controller,
      },
    },
  };
}

const service = (config: object) => evalJson<Service>(config, 'controller');
const rendered = (config: object) => JSON.parse(service(config).renderedJson) as Record<string, unknown>;

describe.skipIf(!lib)('services.shoal-controller', () => {
  it('renders the config file the controller serves from, pointing at the release key credential', () => {
    expect(rendered(controllerConfig())).toEqual({
      listen: '127.0.0.1:8420',
      stateDir: '/var/lib/shoal-controller',
      db: null,
      releaseKeyFile: CREDENTIAL,
      manifestTtlSeconds: 86400,
      publicUrl: null,
    });
  });

  it('writes listen address, port, database and settings where the controller reads them', () => {
    const json = rendered(
      controllerConfig({
        listenAddress: '::',
        port: 9000,
        stateDir: '/var/lib/shoal',
        databasePath: '/var/lib/shoal/fleet.sqlite',
        settings: { publicUrl: 'https://shoal.example.org', manifestTtlSeconds: 3600, renewCheckSeconds: 60 },
      }),
    );
    expect(json).toEqual({
      listen: '[::]:9000',
      stateDir: '/var/lib/shoal',
      db: '/var/lib/shoal/fleet.sqlite',
      releaseKeyFile: CREDENTIAL,
      manifestTtlSeconds: 3600,
      publicUrl: 'https://shoal.example.org',
      renewCheckSeconds: 60,
    });
  });

  it('serves from the checked config file and receives the release key as a credential', () => {
    const store = evalJson<{ shoal: string }>(controllerConfig(), 'store');
    const svc = service(controllerConfig());
    expect(svc.serviceConfig.ExecStart).toBe(`${store.shoal}/bin/shoal-controller serve --config ${svc.configFile}`);
    expect(svc.checkCommand).toContain(`${store.shoal}/bin/shoal-controller check-config --config ${svc.renderedFile}\n`);
    expect(svc.serviceConfig.LoadCredential).toBe('release-key:/var/lib/secrets/shoal-release.key');
    expect(evalJson<string[]>(controllerConfig(), 'etc')).toEqual(['shoal/controller.json']);
  });

  it('runs as its own unprivileged user under full systemd hardening', () => {
    const svc = service(controllerConfig());
    expect(svc.serviceConfig).toMatchObject({
      User: 'shoal-controller',
      Group: 'shoal-controller',
      StateDirectory: 'shoal-controller',
      StateDirectoryMode: '0700',
      UMask: '0077',
      ProtectSystem: 'strict',
      ProtectHome: true,
      NoNewPrivileges: true,
      PrivateTmp: true,
      PrivateDevices: true,
      PrivateUsers: true,
      CapabilityBoundingSet: '',
      RestrictAddressFamilies: ['AF_INET', 'AF_INET6', 'AF_UNIX'],
      RestrictNamespaces: true,
      SystemCallArchitectures: 'native',
      SystemCallFilter: ['@system-service', '~@privileged'],
      // Node's JIT needs writable-executable memory.
      MemoryDenyWriteExecute: false,
    });
    expect(evalJson<Record<string, unknown>>(controllerConfig(), 'users')).toEqual({
      'shoal-controller': {
        isSystemUser: true,
        isNormalUser: false,
        group: 'shoal-controller',
        home: '/var/lib/shoal-controller',
        createHome: false,
        description: 'Shoal controller',
      },
    });
    expect(evalJson<string[]>(controllerConfig(), 'groups')).toEqual(['shoal-controller']);
  });

  it('keeps only the capability to bind a port below 1024 when it listens on one', () => {
    const svc = service(controllerConfig({ port: 443, listenAddress: '0.0.0.0' }));
    expect(svc.serviceConfig).toMatchObject({
      CapabilityBoundingSet: 'CAP_NET_BIND_SERVICE',
      AmbientCapabilities: 'CAP_NET_BIND_SERVICE',
      PrivateUsers: false,
    });
  });

  it('opens the firewall port only when asked', () => {
    expect(evalJson<number[]>(controllerConfig(), 'allowedTCPPorts')).toEqual([]);
    expect(
      evalJson<number[]>(controllerConfig({ openFirewall: true, listenAddress: '0.0.0.0', port: 8443 }), 'allowedTCPPorts'),
    ).toEqual([8443]);
  });

  it('warns that an open firewall exposes its plain-HTTP listener, and not when the listener stays on loopback', () => {
    const warnings = (controller: Record<string, unknown>) => evalJson<string[]>(controllerConfig(controller), 'warnings');
    expect(warnings({})).toEqual([]);
    expect(warnings({ listenAddress: '0.0.0.0' })).toEqual([]);
    expect(warnings({ openFirewall: true, listenAddress: '0.0.0.0', port: 8443 })).toEqual([
      expect.stringContaining('services.shoal-controller.openFirewall opens port 8443 to the controller\'s plain-HTTP listener'),
    ]);
  });

  it('runs beside the agent on the same host', () => {
    const both = {
      services: {
        ...controllerConfig().services,
        'shoal-agent': { enable: true, controllerUrl: 'http://127.0.0.1:8420', trustedReleaseKeys: ['release-1:' + 'A'.repeat(43) + '='] },
      },
    };
    expect(failedAssertions(both)).toEqual([]);
    expect(evalJson<string[]>(both, 'services')).toEqual(['shoal-agent', 'shoal-controller']);
    expect(evalJson<string[]>(both, 'etc')).toEqual(['shoal/agent.json', 'shoal/controller.json']);
  });

  it('has no failed assertions for a correct configuration', () => {
    expect(failedAssertions(controllerConfig({ databasePath: '/var/lib/shoal-controller/db/x.sqlite' }))).toEqual([]);
  });

  const badInputs: Array<[string, Record<string, unknown>, string]> = [
    ['no release key file', { releaseKeyFile: null }, 'services.shoal-controller.releaseKeyFile is not set'],
    ['a release key in the Nix store', { releaseKeyFile: '/nix/store/abc-release.key' }, 'must be an absolute path outside the Nix store'],
    ['a state directory outside /var/lib', { stateDir: '/srv/shoal' }, 'stateDir = "/srv/shoal" must be a directory below /var/lib'],
    ['a database outside the state directory', { databasePath: '/srv/shoal.sqlite' }, 'databasePath = "/srv/shoal.sqlite" is outside stateDir'],
    ['an open firewall for a loopback listener', { openFirewall: true }, 'openFirewall is set but listenAddress is "127.0.0.1"'],
    ['a public URL without a scheme', { settings: { publicUrl: 'shoal.example.org' } }, 'settings.publicUrl = "shoal.example.org" has no http:// or https:// scheme'],
  ];

  it.each(badInputs)('asserts against %s, saying what to fix', (_what, controller, message) => {
    const failed = failedAssertions(controllerConfig(controller));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain(message);
  });
});
