import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatSecretKey, generateNamedKey } from '../../shared/src/keys.js';
import { parseControllerConfig } from '../../controller/src/config.js';

const CONTROLLER = fileURLToPath(new URL('../../bin/shoal-controller', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'shoal-controller-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function configFile(name: string, content: unknown): string {
  const file = join(dir, name);
  writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

const minimal = { stateDir: '/var/lib/shoal-controller', releaseKeyFile: '/run/credentials/release-key' };

describe('controller config file', () => {
  it('fills defaults for everything but the state dir and the release key', () => {
    const result = parseControllerConfig(minimal, 'c.json');
    expect(result).toEqual({
      ok: true,
      config: {
        ...minimal,
        listen: '127.0.0.1:8420',
        db: null,
        manifestTtlSeconds: 86400,
        renewCheckSeconds: 60,
        pollIntervalSeconds: 30,
        metricsTokenFile: null,
        publicUrl: null,
        logLevel: 'info',
      },
    });
  });

  it('names every bad field and the file, and refuses unknown keys', () => {
    const result = parseControllerConfig(
      { stateDir: 'state', releaseKeyFile: '/k', listen: '8420', manifestTtlSecs: 5, renewCheckSeconds: 0, publicUrl: 'shoal.example.org', logLevel: 'loud' },
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
      'logLevel:',
      'manifestTtlSecs: unknown field',
    ]) {
      expect(message).toContain(part);
    }
  });

  it('lets flags replace fields of the file', () => {
    const result = parseControllerConfig({ ...minimal, listen: '0.0.0.0:80' }, 'c.json', { listen: '127.0.0.1:9000', db: undefined });
    expect(result.ok && result.config.listen).toBe('127.0.0.1:9000');
  });
});

describe('shoal-controller check-config', () => {
  const check = (file: string) => spawnSync(CONTROLLER, ['check-config', '--config', file], { encoding: 'utf8' });

  it('exits 0 for a good file without reading the release key (it exists only on the target host)', () => {
    const run = check(configFile('good.json', { ...minimal, db: '/var/lib/shoal-controller/fleet.sqlite', publicUrl: 'https://shoal.example.org' }));
    expect({ status: run.status, stderr: run.stderr }).toEqual({ status: 0, stderr: '' });
    expect(run.stdout).toMatch(/: ok \(listen 127\.0\.0\.1:8420/);
  });

  it.each([
    ['a misspelt key', { ...minimal, pollIntervalSecs: 5 }, /config .*misspelt\.json: pollIntervalSecs: unknown field/],
    ['a missing release key file', { stateDir: '/var/lib/x' }, /releaseKeyFile: is required/],
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

  it('exits 1 when the file does not exist', () => {
    const run = check(join(dir, 'absent.json'));
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/config .*absent\.json: cannot read: ENOENT/);
  });
});

describe('shoal-controller serve --config', () => {
  it('serves from the file, with flags taking precedence over it', async () => {
    const keyFile = join(dir, 'release.key');
    writeFileSync(keyFile, formatSecretKey(generateNamedKey('release-7')), { mode: 0o600 });
    const file = configFile('serve.json', { stateDir: join(dir, 'state'), releaseKeyFile: keyFile, listen: '127.0.0.1:1', logLevel: 'info' });
    const child = spawn(CONTROLLER, ['serve', '--config', file, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'ignore', 'pipe'] });
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        if (entry.msg === 'controller listening') resolve(entry);
      });
      child.on('exit', (code) => reject(new Error(`controller exited with ${code}`)));
    });
    expect(ready).toMatchObject({ releaseKey: 'release-7', db: join(dir, 'state', 'controller.sqlite') });
    expect(ready.port).not.toBe(1);
    const exited = new Promise((resolve) => child.on('exit', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
