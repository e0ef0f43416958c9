import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../agent/src/config.js';
import { formatPublicKey, generateNamedKey } from '../../shared/src/keys.js';
import { SKIP_WITHOUT_LIB, evalJson, nixpkgsLib, repoRoot } from './nix.js';

// The module's files must be accepted by the programs that read them: render them with the
// module and hand them to the real programs' check-config (and the agent's schema, to see the
// parsed values).

const lib = nixpkgsLib();
if (!lib) console.warn(SKIP_WITHOUT_LIB);

const agentMain = join(repoRoot, 'agent/src/main.ts');
const controllerMain = join(repoRoot, 'controller/src/main.ts');

const releaseKey = formatPublicKey(generateNamedKey('release-1'));
const controllerKey = formatPublicKey(generateNamedKey('controller-1'));
const cacheKey = formatPublicKey(generateNamedKey('cache-1'));

const agentModule = (settings: Record<string, unknown> = {}, agent: Record<string, unknown> = {}) => ({
  networking: { hostName: 'web-1' },
  nix: { settings: { substituters: ['http://127.0.0.1:5000?priority=30'], 'trusted-public-keys': [cacheKey] } },
  services: {
    'shoal-agent': {
      enable: true,
      controllerUrl: 'http://127.0.0.1:8420',
      trustedReleaseKeys: [releaseKey],
      trustedControllerKeys: [controllerKey],
      enrollmentTokenFile: '/run/secrets/shoal-enroll',
      pollInterval: 10,
      action: 'switch',
      healthChecks: [
        { name: 'web', command: ['/bin/sh', '-c', 'true'], timeoutMs: 10000 },
        { name: 'http', url: 'http://127.0.0.1:80/health', expectStatus: 200 },
      ],
      settings: {
        healthDeadlineMs: 60000,
        timeouts: { switchMs: 600000 },
        maxClockSkewMs: 120000,
        maxManifestLifetimeMs: 172800000,
        ...settings,
      },
      ...agent,
    },
  },
});

const controllerModule = (controller: Record<string, unknown> = {}) => ({
  services: {
    'shoal-controller': {
      enable: true,
      controllerKeyFile: '/var/lib/secrets/shoal-controller.key',
      trustedReleaseKeys: [releaseKey],
      settings: { publicUrl: 'https://shoal.example.org' },
      ...controller,
    },
  },
});

const dir = mkdtempSync(join(tmpdir(), 'shoal-nixos-module-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The JSON text the module writes, as nix-instantiate --eval --json --strict prints it. */
function renderToFile(config: object, attr: 'agent' | 'controller', name: string): string {
  const { renderedJson } = evalJson<{ renderedJson: string }>(config, attr);
  const file = join(dir, name);
  writeFileSync(file, renderedJson);
  return file;
}

function runCheckConfig(main: string, executable: string, file: string) {
  const launcher = join(repoRoot, 'bin', executable);
  const [command, args] = existsSync(launcher)
    ? [launcher, ['check-config', '--config', file]]
    : [process.execPath, [join(repoRoot, 'node_modules/tsx/dist/cli.mjs'), main, 'check-config', '--config', file]];
  return spawnSync(command, args, { encoding: 'utf8', cwd: repoRoot });
}

describe.skipIf(!lib)('the agent config the module renders', () => {
  it("is accepted by the agent's config schema, field for field", () => {
    const file = renderToFile(agentModule(), 'agent', 'agent-schema.json');
    const result = parseConfig(JSON.parse(readFileSync(file, 'utf8')), file);
    if (!result.ok) throw new Error(result.message);
    expect(result.config).toMatchObject({
      host: 'web-1',
      controllerUrl: 'http://127.0.0.1:8420',
      trustedReleaseKeys: [releaseKey],
      trustedControllerKeys: [controllerKey],
      maxClockSkewMs: 120000,
      maxManifestLifetimeMs: 172800000,
      enrollmentTokenFile: '/run/secrets/shoal-enroll',
      substituters: ['http://127.0.0.1:5000?priority=30', 'https://cache.nixos.org/'],
      trustedPublicKeys: [cacheKey],
      pollIntervalMs: 10000,
      action: 'switch',
      stateDir: '/var/lib/shoal-agent',
      healthChecks: [
        { kind: 'command', name: 'web', command: ['/bin/sh', '-c', 'true'], timeoutMs: 10000 },
        { kind: 'http', name: 'http', url: 'http://127.0.0.1:80/health', expectStatus: 200 },
      ],
    });
  });

  it('is refused by the schema, naming the field, when settings carries a misspelt key', () => {
    const file = renderToFile(agentModule({ pollIntervalSecs: 5 }), 'agent', 'agent-typo.json');
    const result = parseConfig(JSON.parse(readFileSync(file, 'utf8')), file);
    expect(result.ok ? 'accepted' : result.message).toContain('pollIntervalSecs: unknown field');
  });

  it('passes the real shoal-agent check-config', () => {
    const run = runCheckConfig(agentMain, 'shoal-agent', renderToFile(agentModule(), 'agent', 'agent.json'));
    // The object form shows what the program printed when it refuses.
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
  });

  it('fails the real shoal-agent check-config when settings has a misspelt key', () => {
    const run = runCheckConfig(agentMain, 'shoal-agent', renderToFile(agentModule({ pollIntervalSecs: 5 }), 'agent', 'bad.json'));
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('pollIntervalSecs');
  });

  // The module asserts against it too; this is the agent's own guard, which the build runs.
  it('fails the real shoal-agent check-config for a substituter that would let Nix skip signature checks', () => {
    const config = agentModule({}, { substituters: ['http://127.0.0.1:5000?trusted=1'] });
    const run = runCheckConfig(agentMain, 'shoal-agent', renderToFile(config, 'agent', 'trusted.json'));
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('substituters');
  });
});

describe.skipIf(!lib)('the controller config the module renders', () => {
  it('passes the real shoal-controller check-config in two-key mode', () => {
    const run = runCheckConfig(controllerMain, 'shoal-controller', renderToFile(controllerModule(), 'controller', 'controller.json'));
    // The object form shows what the program printed when it refuses.
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
  });

  it('passes the real shoal-controller check-config with a PostgreSQL database and its password file', () => {
    const config = controllerModule({ database: 'postgres://shoal@db.example.org/shoal', databasePasswordFile: '/var/lib/secrets/shoal-db-password' });
    const run = runCheckConfig(controllerMain, 'shoal-controller', renderToFile(config, 'controller', 'postgres.json'));
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
    expect(run.stdout).toContain('database PostgreSQL postgres://shoal@db.example.org/shoal with the password in /run/credentials/shoal-controller.service/database-password');
  });

  it('passes the real shoal-controller check-config in single-key mode', () => {
    const config = controllerModule({ trustedReleaseKeys: [], singleKeyReleaseKeyFile: '/var/lib/secrets/shoal-release.key' });
    const run = runCheckConfig(controllerMain, 'shoal-controller', renderToFile(config, 'controller', 'single-key.json'));
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: expect.any(String) });
  });
});
