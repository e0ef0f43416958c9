import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatPublicKey, formatSecretKey, generateNamedKey } from '../../shared/src/keys.js';
import { parseControllerConfig } from '../../controller/src/config.js';

const CONTROLLER = fileURLToPath(new URL('../../bin/shoal-controller', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'shoal-controller-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const CI_KEY = formatPublicKey(generateNamedKey('ci-release-1'));
const minimal = { stateDir: '/var/lib/shoal-controller', controllerKeyFile: '/run/credentials/controller-key', trustedReleaseKeys: [CI_KEY] };

describe('controller config file', () => {
  it('takes the binary caches to read with their Nix keys, and names what is wrong with one', () => {
    const cacheKey = formatPublicKey(generateNamedKey('cache-1'));
    const ok = parseControllerConfig({ ...minimal, caches: [{ url: 'https://cache.example.org', publicKeys: [cacheKey] }], cacheTimeoutSeconds: 3 }, 'c.json');
    expect(ok).toMatchObject({ ok: true, config: { caches: [{ url: 'https://cache.example.org', publicKeys: [cacheKey] }], cacheTimeoutSeconds: 3 } });
    const bad = parseControllerConfig({ ...minimal, caches: [{ url: 'ftp://cache', publicKeys: [] }, { url: 'https://c', publicKeys: ['nope'], priority: 1 }] }, 'c.json');
    expect(bad.ok).toBe(false);
    const message = !bad.ok ? bad.message : '';
    expect(message).toContain('caches.0.url: must be an http:// or https:// URL');
    expect(message).toContain('caches.0.publicKeys: needs at least one Nix cache public key');
    expect(message).toContain('caches.1.publicKeys.0: public key must look like "name:base64"');
    expect(message).toContain('caches.1.priority: unknown field');
  });

  it('fills defaults for everything but the state dir, the controller key and the trusted release keys', () => {
    const result = parseControllerConfig(minimal, 'c.json');
    expect(result).toEqual({
      ok: true,
      config: {
        ...minimal,
        singleKeyReleaseKeyFile: null,
        listen: '127.0.0.1:8420',
        database: null,
        databasePasswordFile: null,
        db: null,
        manifestTtlSeconds: 86400,
        renewCheckSeconds: 60,
        pollIntervalSeconds: 30,
        metricsTokenFile: null,
        publicUrl: null,
        logLevel: 'info',
        caches: [],
        cacheConcurrency: 32,
        cacheTimeoutSeconds: 10,
        admission: { pendingChallenges: 10000, pendingChallengesPerAddress: 256, unauthenticatedConnections: 10000, unauthenticatedConnectionsPerAddress: 256 },
        webhooks: { allowPrivateNetworks: false, allowedNetworks: [] },
        retention: { reportsDays: 30, eventsDays: 30, auditEventsDays: 400, webhookDeliveriesDays: 30, manifestsDays: 90, pruneIntervalSeconds: 300 },
        reboots: { maxConcurrent: 1, leaseSeconds: 1800 },
      },
    });
  });

  it('names bad limits, webhook networks and retention ages', () => {
    const result = parseControllerConfig(
      { ...minimal, admission: { pendingChallenges: 0, perIp: 3 }, webhooks: { allowedNetworks: ['10.0.0.0/33', 'intranet'] }, retention: { reportsDays: 1.5, eventsDays: null } },
      'c.json',
    );
    expect(result.ok).toBe(false);
    const message = result.ok ? '' : result.message;
    for (const part of [
      'admission.pendingChallenges: must be at least 1',
      'admission.perIp: unknown field',
      'webhooks.allowedNetworks.0: "10.0.0.0/33": prefix must be 0–32',
      'webhooks.allowedNetworks.1: "intranet" is not an address or CIDR',
      'retention.reportsDays: must be a whole number of days',
    ]) {
      expect(message).toContain(part);
    }
    const ok = parseControllerConfig({ ...minimal, retention: { eventsDays: null } }, 'c.json');
    expect(ok.ok && ok.config.retention).toMatchObject({ eventsDays: null, reportsDays: 30 });
  });

  it('names every bad field and the file, and refuses unknown keys', () => {
    const result = parseControllerConfig(
      { stateDir: 'state', controllerKeyFile: '/k', trustedReleaseKeys: [CI_KEY, 'ci-2:short'], listen: '8420', manifestTtlSecs: 5, renewCheckSeconds: 0, publicUrl: 'shoal.example.org', logLevel: 'loud' },
      '/etc/shoal/controller.json',
    );
    expect(result.ok).toBe(false);
    const message = result.ok ? '' : result.message;
    expect(message).toMatch(/^config \/etc\/shoal\/controller\.json: /);
    for (const part of [
      'listen: must be HOST:PORT, got "8420"',
      'stateDir: must be an absolute path',
      'renewCheckSeconds: must be at least 1',
      'publicUrl: must be an http:// or https:// URL',
      'trustedReleaseKeys.1: public key "ci-2" must decode to 32 bytes',
      'logLevel:',
      'manifestTtlSecs: unknown field',
    ]) {
      expect(message).toContain(part);
    }
  });

  it('refuses two-key mode without a trusted release key, saying what to configure', () => {
    const result = parseControllerConfig({ ...minimal, trustedReleaseKeys: [] }, 'c.json');
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.message).toContain(
      'trustedReleaseKeys: two-key mode (no singleKeyReleaseKeyFile) needs at least one trusted release key',
    );
  });

  it('accepts single-key mode without trusted release keys', () => {
    const result = parseControllerConfig({ ...minimal, trustedReleaseKeys: [], singleKeyReleaseKeyFile: '/run/credentials/release-key' }, 'c.json');
    expect(result.ok).toBe(true);
  });

  it('tells a file with the old releaseKeyFile what replaced it', () => {
    const result = parseControllerConfig({ ...minimal, releaseKeyFile: '/k' }, 'c.json');
    expect(result.ok ? '' : result.message).toMatch(/releaseKeyFile: no longer exists: the controller key that signs assignments is controllerKeyFile/);
  });

  it('takes a SQLite file or a postgres:// URL as database, and a password file for PostgreSQL only', () => {
    const parse = (fields: Record<string, unknown>) => parseControllerConfig({ ...minimal, ...fields }, 'c.json');
    expect(parse({ database: '/var/lib/shoal-controller/fleet.sqlite' })).toMatchObject({ ok: true, config: { database: '/var/lib/shoal-controller/fleet.sqlite' } });
    expect(parse({ database: 'postgresql://shoal@db.example.org/shoal', databasePasswordFile: '/run/credentials/db-password' })).toMatchObject({
      ok: true,
      config: { database: 'postgresql://shoal@db.example.org/shoal', databasePasswordFile: '/run/credentials/db-password' },
    });
    expect(parse({ database: 'postgres:///shoal?host=/run/postgresql' }).ok).toBe(true);
    // The older name of a SQLite database keeps working.
    expect(parse({ db: '/var/lib/shoal-controller/old.sqlite' })).toMatchObject({ ok: true, config: { db: '/var/lib/shoal-controller/old.sqlite', database: null } });
  });

  it.each([
    ['an unknown scheme', { database: 'mysql://shoal@db/shoal' }, 'database: unknown scheme "mysql:": give a SQLite file as an absolute path, or a postgres:// or postgresql:// URL'],
    ['a relative SQLite path', { database: 'fleet.sqlite' }, 'database: must be an absolute path to a SQLite file or a postgres:// or postgresql:// URL'],
    ['db and database both', { db: '/var/lib/a.sqlite', database: '/var/lib/b.sqlite' }, 'db: is the older name of database, and both are set: keep only database'],
    [
      'a password file with a SQLite database',
      { database: '/var/lib/shoal-controller/fleet.sqlite', databasePasswordFile: '/run/credentials/db-password' },
      'databasePasswordFile: applies to a PostgreSQL database only, and database is a SQLite file (/var/lib/shoal-controller/fleet.sqlite)',
    ],
    ['a password file with the default SQLite database', { databasePasswordFile: '/run/credentials/db-password' }, 'databasePasswordFile: applies to a PostgreSQL database only'],
    [
      'a password in the URL and a password file',
      { database: 'postgres://shoal:hunter2@db.example.org/shoal', databasePasswordFile: '/run/credentials/db-password' },
      'databasePasswordFile: is set and the database URL carries a password too: remove the password from the URL',
    ],
    [
      'a password parameter in the URL and a password file',
      { database: 'postgres://shoal@db.example.org/shoal?password=hunter2', databasePasswordFile: '/run/credentials/db-password' },
      'databasePasswordFile: is set and the database URL carries a password too',
    ],
    ['a relative password file', { database: 'postgres://shoal@db/shoal', databasePasswordFile: 'db-password' }, 'databasePasswordFile: must be an absolute path'],
  ])('refuses %s, naming the setting', (_what, fields, message) => {
    const result = parseControllerConfig({ ...minimal, ...fields }, 'c.json');
    expect(result.ok).toBe(false);
    expect(result.ok ? '' : result.message).toContain(message);
    expect(result.ok ? '' : result.message).not.toContain('hunter2');
  });

  it('lets flags replace fields of the file', () => {
    const result = parseControllerConfig({ ...minimal, listen: '0.0.0.0:80' }, 'c.json', { listen: '127.0.0.1:9000', db: undefined });
    expect(result.ok && result.config.listen).toBe('127.0.0.1:9000');
  });
});

describe('shoal-controller check-config', () => {
  const check = (file: string) => spawnSync(CONTROLLER, ['check-config', '--config', file], { encoding: 'utf8' });

  it('exits 0 for a good file without reading the key files (they exist only on the target host)', () => {
    const run = check(configFile('good.json', { ...minimal, db: '/var/lib/shoal-controller/fleet.sqlite', publicUrl: 'https://shoal.example.org' }));
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(run.stdout).toMatch(/: ok \(listen 127\.0\.0\.1:8420, .*, two-key mode, 1 trusted release key\(s\)\)/);
  });

  it('says when a file configures single-key mode, and what that means', () => {
    const run = check(configFile('single.json', { ...minimal, trustedReleaseKeys: [], singleKeyReleaseKeyFile: '/run/credentials/release-key' }));
    expect(run.status).toBe(0);
    expect(run.stdout).toContain('single-key mode: a compromised controller can install anything');
  });

  it.each([
    ['a misspelt key', { ...minimal, pollIntervalSecs: 5 }, /config .*misspelt\.json: pollIntervalSecs: unknown field/],
    ['a missing controller key file', { stateDir: '/var/lib/x', trustedReleaseKeys: [CI_KEY] }, /controllerKeyFile: is required/],
    ['two-key mode without release keys', { stateDir: '/var/lib/x', controllerKeyFile: '/k' }, /trustedReleaseKeys: two-key mode .* needs at least one trusted release key/],
    ['a negative TTL', { ...minimal, manifestTtlSeconds: -1 }, /manifestTtlSeconds: must be at least 1/],
    ['text that is not JSON', '{"stateDir": ', /config .*: not valid JSON/],
  ])('exits 1 and names the field for %s', (what, content, pattern) => {
    const run = check(configFile(what === 'a misspelt key' ? 'misspelt.json' : `${what.replace(/ /g, '-')}.json`, content));
    expect(run.status).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^shoal-controller: /);
    expect(run.stderr).toMatch(pattern);
    expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
  });

  it('names the database it selects, a PostgreSQL URL without its password, and does not read the password file', () => {
    const sqlite = check(configFile('sqlite.json', minimal));
    expect(sqlite.stdout).toContain('database SQLite /var/lib/shoal-controller/controller.sqlite,');
    const withFile = check(configFile('pg-file.json', { ...minimal, database: 'postgres://shoal@db.example.org/shoal', databasePasswordFile: join(dir, 'absent-password') }));
    expect({ status: withFile.status, stderr: withFile.stderr }).toEqual({ status: 0, stderr: '' });
    expect(withFile.stdout).toContain(`database PostgreSQL postgres://shoal@db.example.org/shoal with the password in ${join(dir, 'absent-password')},`);
    const inUrl = check(configFile('pg-url.json', { ...minimal, database: 'postgres://shoal:hunter2@db.example.org/shoal' }));
    expect(inUrl.status).toBe(0);
    expect(inUrl.stdout).toContain('database PostgreSQL postgres://shoal:***@db.example.org/shoal,');
    expect(inUrl.stdout).not.toContain('hunter2');
  });

  it('exits 1 when the file does not exist', () => {
    const run = check(join(dir, 'absent.json'));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/config .*absent\.json: cannot read: ENOENT/);
  });
});

describe('shoal-controller serve --config', () => {
  it('serves from the file, with flags taking precedence over it', async () => {
    const keyFile = join(dir, 'controller.key');
    writeFileSync(keyFile, formatSecretKey(generateNamedKey('controller-7')), { mode: 0o600 });
    const file = configFile('serve.json', { stateDir: join(dir, 'state'), controllerKeyFile: keyFile, trustedReleaseKeys: [CI_KEY], listen: '127.0.0.1:1', logLevel: 'info' });
    // --database FILE is taken relative to the working directory, as every path flag is.
    const child = spawn(CONTROLLER, ['serve', '--config', file, '--listen', '127.0.0.1:0', '--database', 'fleet.sqlite'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry.msg === 'controller listening') resolve(entry);
      });
      child.on('exit', (code) => reject(new Error(`controller exited with ${code}`)));
    });
    expect(ready).toMatchObject({ controllerKey: 'controller-7', trustMode: 'two-key', trustedReleaseKeys: ['ci-release-1'], database: join(dir, 'fleet.sqlite') });
    expect(ready.port).not.toBe(1);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});

describe('shoal-controller serve --database', () => {
  const serve = (args: string[]) =>
    spawnSync(CONTROLLER, ['serve', '--state-dir', join(dir, 'state-db'), '--controller-key', join(dir, 'no.key'), '--trusted-release-key', CI_KEY, ...args], { encoding: 'utf8' });

  it.each([
    ['an unknown scheme', ['--database', 'mysql://shoal:hunter2@db/shoal'], /database: unknown scheme "mysql:"/],
    ['--db and --database', ['--db', join(dir, 'a.sqlite'), '--database', join(dir, 'b.sqlite')], /--db is the older name of --database: give only --database/],
    ['a password file with SQLite', ['--database', join(dir, 'fleet.sqlite'), '--database-password-file', join(dir, 'pw')], /databasePasswordFile: applies to a PostgreSQL database only/],
    [
      'an unreadable password file',
      ['--database', 'postgres://shoal@127.0.0.1:9/shoal', '--database-password-file', join(dir, 'absent-password')],
      /databasePasswordFile .*absent-password: cannot read: ENOENT/,
    ],
  ])('refuses %s before starting, naming the setting', (_what, args, pattern) => {
    const run = serve(args);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/^shoal-controller: /);
    expect(run.stderr).toMatch(pattern);
    expect(run.stderr).not.toContain('hunter2');
  });
});
