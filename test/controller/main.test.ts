import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { formatPublicKey, formatSecretKey, generateNamedKey } from '../../shared/src/keys.js';

const CONTROLLER = fileURLToPath(new URL('../../bin/shoal-controller', import.meta.url));
const CI_KEY = formatPublicKey(generateNamedKey('ci-release-1'));

function writeKey(dir: string, name: string, mode = 0o600): string {
  const file = join(dir, `${name}.key`);
  writeFileSync(file, formatSecretKey(generateNamedKey(name)), { mode });
  return file;
}

/** Runs `serve` until it exits; for the refusals that must happen before it listens. */
async function refusal(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(CONTROLLER, ['serve', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  return { code, stderr };
}

describe('shoal-controller --help', () => {
  it('renders its synopsis from the flags the parser takes, within 80 columns, and refuses a flag it does not list', async () => {
    const help = spawnSync(CONTROLLER, ['--help'], { encoding: 'utf8' });
    expect(help.status).toBe(0);
    const lines = help.stdout.split('\n');
    expect(lines.filter((line) => line.length > 80)).toEqual([]);
    const listed = [...help.stdout.matchAll(/\[--([a-z-]+) [^\]]+\]/g)].map((m) => m[1]);
    // Every flag once, with its value placeholder; a repeatable one says so.
    expect(new Set(listed).size).toBe(listed.length);
    expect(listed).toEqual(expect.arrayContaining(['config', 'controller-key', 'trusted-release-key', 'db', 'log-format', 'max-concurrent-reboots']));
    expect(help.stdout).toContain('[--trusted-release-key NAME:BASE64]...');

    const unknown = await refusal(['--max-reboots', '2']);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/--max-reboots/);
  });
});

describe('shoal-controller serve', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('creates a 0600 admin token at first start, logs where it listens, and stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const keyFile = writeKey(dir, 'controller-1');
    const stateDir = join(dir, 'state');
    const child = spawn(CONTROLLER, ['serve', '--state-dir', stateDir, '--controller-key', keyFile, '--trusted-release-key', CI_KEY, '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const logs: Array<Record<string, unknown>> = [];
    const listening = new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'controller listening') resolve(entry);
      });
      child.on('exit', (code) => reject(new Error(`controller exited with ${code}: ${JSON.stringify(logs)}`)));
    });
    const ready = await listening;
    expect(ready.port).toEqual(expect.any(Number));

    const tokenFile = join(stateDir, 'admin-token');
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(JSON.stringify(logs)).not.toContain(token);
    const response = await fetch(`http://127.0.0.1:${String(ready.port)}/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
    expect(await response.json()).toEqual({ hosts: [] });

    // 'close', not 'exit': only then has every line the process wrote to stderr been read.
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(logs.at(-1)?.msg).toBe('controller stopped');
  });

  it('refuses to start without a readable controller key, saying which file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const run = await refusal(['--state-dir', dir, '--controller-key', join(dir, 'nope.key'), '--trusted-release-key', CI_KEY]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^shoal-controller: cannot read controller key .*nope\.key: ENOENT/);
  });

  it.each([
    ['controller key', '0640', (file: string) => ['--controller-key', file, '--trusted-release-key', CI_KEY]],
    ['controller key', '0604', (file: string) => ['--controller-key', file, '--trusted-release-key', CI_KEY]],
    ['single-key release key', '0644', (file: string, own: string) => ['--controller-key', own, '--single-key-release-key', file]],
  ])('refuses a %s that group or others can read (mode %s), naming the file and its mode', async (role, mode, flags) => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const file = writeKey(dir, 'open', Number.parseInt(mode, 8));
    const run = await refusal(['--state-dir', join(dir, 'state'), ...flags(file, writeKey(dir, 'own'))]);
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `shoal-controller: ${role} ${file} is readable by group or others (mode ${mode}); refusing to use it. Run: chmod 600 ${file}\n`,
    );
  });

  it('refuses two-key mode with no trusted release key, saying what to configure', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const run = await refusal(['--state-dir', dir, '--controller-key', writeKey(dir, 'controller-1')]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/trustedReleaseKeys: two-key mode \(no singleKeyReleaseKeyFile\) needs at least one trusted release key: .*--trusted-release-key KEY/);
  });

  it('refuses to trust its own controller key as a release key outside single-key mode', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const key = generateNamedKey('controller-1');
    const file = join(dir, 'controller.key');
    writeFileSync(file, formatSecretKey(key), { mode: 0o600 });
    const run = await refusal(['--state-dir', dir, '--controller-key', file, '--trusted-release-key', formatPublicKey({ ...key, keyId: 'ci-1' })]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/trustedReleaseKeys lists ci-1, the public half of the controller key/);
  });

  it('explains what replaced --release-key', async () => {
    const run = await refusal(['--state-dir', '/tmp/unused', '--release-key', '/tmp/unused.key']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/--release-key no longer exists: pass the key that signs assignments as --controller-key FILE/);
  });

  it('warns at start that single-key mode lets a compromised controller install anything', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const args = ['serve', '--state-dir', join(dir, 'state'), '--controller-key', writeKey(dir, 'controller-1'), '--single-key-release-key', writeKey(dir, 'release-1'), '--listen', '127.0.0.1:0'];
    const child = spawn(CONTROLLER, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const logs: Array<Record<string, unknown>> = [];
    const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'controller listening') resolve(entry);
      });
      child.on('exit', (code) => reject(new Error(`controller exited with ${code}: ${JSON.stringify(logs)}`)));
    });
    expect(ready).toMatchObject({ trustMode: 'single-key', controllerKey: 'controller-1', trustedReleaseKeys: ['release-1'] });
    expect(logs).toContainEqual(expect.objectContaining({ level: 'warn', msg: 'single-key mode: a compromised controller can install anything', singleKeyReleaseKey: 'release-1' }));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });
});
