import { describe, expect, it } from 'vitest';
import { formatPublicKey, generateNamedKey } from '../../shared/src/keys.js';
import { SKIP_WITHOUT_LIB, evalJson, failedAssertions, nixpkgsLib } from './nix.js';

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

const CONTROLLER_KEY = '/run/credentials/shoal-controller.service/controller-key';
const RELEASE_KEY = '/run/credentials/shoal-controller.service/release-key';
const ciKey = formatPublicKey(generateNamedKey('ci-release-1'));

interface Service {
  wants: string[];
  after: string[];
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
        controllerKeyFile: '/var/lib/secrets/shoal-controller.key',
        trustedReleaseKeys: [ciKey],
        ...controller,
      },
    },
  };
}

const service = (config: object) => evalJson<Service>(config, 'controller');
const rendered = (config: object) => JSON.parse(service(config).renderedJson) as Record<string, unknown>;

describe.skipIf(!lib)('services.shoal-controller', () => {
  it("renders the config file the controller serves from: two-key mode, the controller key's credential and CI's release keys", () => {
    expect(rendered(controllerConfig())).toEqual({
      listen: '127.0.0.1:8420',
      stateDir: '/var/lib/shoal-controller',
      database: null,
      databasePasswordFile: null,
      controllerKeyFile: CONTROLLER_KEY,
      singleKeyReleaseKeyFile: null,
      trustedReleaseKeys: [ciKey],
      manifestTtlSeconds: 86400,
      publicUrl: null,
      caches: [],
      cacheConcurrency: 32,
      cacheTimeoutSeconds: 10,
    });
  });

  it('renders the binary caches the controller reads for diffs and the preflight, and asserts on their URL and keys', () => {
    const cacheKey = 'cache-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=';
    const config = controllerConfig({ binaryCaches: [{ url: 'https://cache.example.org', publicKeys: [cacheKey] }], settings: { cacheConcurrency: 8 } });
    expect(rendered(config)).toMatchObject({ caches: [{ url: 'https://cache.example.org', publicKeys: [cacheKey] }], cacheConcurrency: 8, cacheTimeoutSeconds: 10 });
    expect(failedAssertions(config)).toEqual([]);
    const bad = controllerConfig({ binaryCaches: [{ url: 'cache.example.org', publicKeys: ['AAAA'] }] });
    expect(failedAssertions(bad)).toEqual([
      expect.stringContaining('binaryCaches: url "cache.example.org" has no http:// or https:// scheme'),
      expect.stringContaining('binaryCaches: "cache.example.org" needs its Nix cache public keys as "name:base64"'),
    ]);
  });

  it('in single-key mode hands the controller its release key as a second credential, and warns that this is weaker', () => {
    const config = controllerConfig({ trustedReleaseKeys: [], singleKeyReleaseKeyFile: '/var/lib/secrets/shoal-release.key' });
    const json = rendered(config);
    expect(json.singleKeyReleaseKeyFile).toBe(RELEASE_KEY);
    expect(json.trustedReleaseKeys).toEqual([]);
    expect(service(config).serviceConfig.LoadCredential).toEqual([
      'controller-key:/var/lib/secrets/shoal-controller.key',
      'release-key:/var/lib/secrets/shoal-release.key',
    ]);
    expect(failedAssertions(config)).toEqual([]);
    expect(evalJson<string[]>(config, 'warnings')).toEqual([
      expect.stringContaining('single-key mode: a compromised controller can install anything'),
    ]);
  });

  it('lets settings.trustedReleaseKeys replace the option, and asserts on what is written', () => {
    const config = controllerConfig({ settings: { trustedReleaseKeys: ['CCCC'] } });
    expect(failedAssertions(config)).toEqual([expect.stringContaining('trustedReleaseKeys: "CCCC" is not a public key')]);
  });

  it('tells an operator still setting releaseKeyFile what replaced it', () => {
    const failed = failedAssertions(controllerConfig({ releaseKeyFile: '/var/lib/secrets/shoal-release.key' }));
    expect(failed).toEqual([expect.stringContaining('services.shoal-controller.releaseKeyFile')]);
    expect(failed[0]).toContain('controllerKeyFile');
    expect(failed[0]).toContain('singleKeyReleaseKeyFile');
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
      database: '/var/lib/shoal/fleet.sqlite',
      databasePasswordFile: null,
      controllerKeyFile: CONTROLLER_KEY,
      singleKeyReleaseKeyFile: null,
      trustedReleaseKeys: [ciKey],
      manifestTtlSeconds: 3600,
      publicUrl: 'https://shoal.example.org',
      renewCheckSeconds: 60,
      caches: [],
      cacheConcurrency: 32,
      cacheTimeoutSeconds: 10,
    });
  });

  it('points the controller at PostgreSQL, its password handed over as a credential, never written to the store', () => {
    const url = 'postgres://shoal@db.example.org/shoal?sslmode=verify-full';
    const config = controllerConfig({ database: url, databasePasswordFile: '/var/lib/secrets/shoal-db-password' });
    expect(failedAssertions(config)).toEqual([]);
    expect(rendered(config)).toMatchObject({ database: url, databasePasswordFile: '/run/credentials/shoal-controller.service/database-password' });
    expect(service(config).serviceConfig.LoadCredential).toEqual([
      'controller-key:/var/lib/secrets/shoal-controller.key',
      'database-password:/var/lib/secrets/shoal-db-password',
    ]);
    // A remote server: nothing on this machine to wait for.
    expect(service(config)).toMatchObject({ wants: ['network-online.target'], after: ['network-online.target'] });
  });

  it('starts after the PostgreSQL server of the same machine, without requiring it', () => {
    const local = 'postgresql://shoal-controller@localhost/shoal-controller?host=/run/postgresql';
    const withServer = { ...controllerConfig({ database: local }), services: { ...controllerConfig({ database: local }).services, postgresql: { enable: true } } };
    expect(failedAssertions(withServer)).toEqual([]);
    const svc = service(withServer);
    expect(svc).toMatchObject({ wants: ['network-online.target', 'postgresql.service'], after: ['network-online.target', 'postgresql.service'] });
    expect(svc.serviceConfig.LoadCredential).toEqual(['controller-key:/var/lib/secrets/shoal-controller.key']);
    // SQLite on a machine that also runs PostgreSQL for something else: no ordering.
    const sqlite = { ...controllerConfig(), services: { ...controllerConfig().services, postgresql: { enable: true } } };
    expect(service(sqlite).after).toEqual(['network-online.target']);
  });

  it('serves from the checked config file and receives only the controller key, as a credential', () => {
    const store = evalJson<{ shoal: string }>(controllerConfig(), 'store');
    const svc = service(controllerConfig());
    expect(svc.serviceConfig.ExecStart).toBe(`${store.shoal}/bin/shoal-controller serve --config ${svc.configFile}`);
    expect(svc.checkCommand).toContain(`${store.shoal}/bin/shoal-controller check-config --config ${svc.renderedFile}\n`);
    expect(svc.serviceConfig.LoadCredential).toEqual(['controller-key:/var/lib/secrets/shoal-controller.key']);
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
        'shoal-agent': {
          enable: true,
          controllerUrl: 'http://127.0.0.1:8420',
          trustedReleaseKeys: [ciKey],
          trustedControllerKeys: ['controller-1:' + 'A'.repeat(43) + '='],
        },
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
    ['no controller key file', { controllerKeyFile: null }, 'services.shoal-controller.controllerKeyFile is not set'],
    ['a controller key in the Nix store', { controllerKeyFile: '/nix/store/abc-controller.key' }, 'controllerKeyFile = "/nix/store/abc-controller.key" must be an absolute path outside the Nix store'],
    [
      'a single-key release key in the Nix store',
      { singleKeyReleaseKeyFile: '/nix/store/abc-release.key' },
      'singleKeyReleaseKeyFile = "/nix/store/abc-release.key" must be an absolute path outside the Nix store',
    ],
    [
      'neither trusted release keys nor a single-key release key',
      { trustedReleaseKeys: [] },
      'neither trustedReleaseKeys nor singleKeyReleaseKeyFile is set',
    ],
    ['a trusted release key that is not name:base64', { trustedReleaseKeys: ['AAAA'] }, 'trustedReleaseKeys: "AAAA" is not a public key'],
    ['a state directory outside /var/lib', { stateDir: '/srv/shoal' }, 'stateDir = "/srv/shoal" must be a directory below /var/lib'],
    ['a database outside the state directory', { databasePath: '/srv/shoal.sqlite' }, 'databasePath = "/srv/shoal.sqlite" is outside stateDir'],
    [
      'a SQLite path and a PostgreSQL database both',
      { databasePath: '/var/lib/shoal-controller/x.sqlite', database: 'postgres://shoal@db/shoal' },
      'services.shoal-controller.databasePath and services.shoal-controller.database are both set',
    ],
    [
      'a database that is not a PostgreSQL URL',
      { database: 'mysql://shoal@db/shoal' },
      'database = "mysql://shoal@db/shoal" is not a postgres:// or postgresql:// URL; for SQLite leave database null',
    ],
    [
      'a password inside the database URL',
      { database: 'postgres://shoal:hunter2@db/shoal' },
      'database = "postgres://shoal:***@db/shoal" carries a password, which would be written to the world-readable Nix store',
    ],
    [
      'a password parameter in the database URL',
      { database: 'postgres://shoal@db/shoal?password=hunter2' },
      'database = "postgres://shoal@db/shoal?password=***" carries a password',
    ],
    [
      'a database password file in the Nix store',
      { database: 'postgres://shoal@db/shoal', databasePasswordFile: '/nix/store/abc-db-password' },
      'databasePasswordFile = "/nix/store/abc-db-password" must be an absolute path outside the Nix store',
    ],
    [
      'a database password file for SQLite',
      { databasePasswordFile: '/var/lib/secrets/shoal-db-password' },
      'databasePasswordFile is set but database is null (SQLite, which has no password)',
    ],
    ['an open firewall for a loopback listener', { openFirewall: true }, 'openFirewall is set but listenAddress is "127.0.0.1"'],
    ['a public URL without a scheme', { settings: { publicUrl: 'shoal.example.org' } }, 'settings.publicUrl = "shoal.example.org" has no http:// or https:// scheme'],
  ];

  it.each(badInputs)('asserts against %s, saying what to fix', (_what, controller, message) => {
    const failed = failedAssertions(controllerConfig(controller));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain(message);
    expect(failed[0]).not.toContain('hunter2');
  });
});
