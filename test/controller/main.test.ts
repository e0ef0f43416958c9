import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it } from 'vitest';
import { formatSecretKey, generateNamedKey } from '../../shared/src/keys.js';

const CONTROLLER = fileURLToPath(new URL('../../bin/shoal-controller', import.meta.url));

describe('shoal-controller serve', () => {
  const dirs: string[] = [];
  afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));

  it('creates a 0600 admin token at first start, logs where it listens, and stops cleanly on SIGTERM', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const keyFile = join(dir, 'release.key');
    writeFileSync(keyFile, formatSecretKey(generateNamedKey('release-1')), { mode: 0o600 });
    const stateDir = join(dir, 'state');
    const child = spawn(CONTROLLER, ['serve', '--state-dir', stateDir, '--release-key', keyFile, '--listen', '127.0.0.1:0'], {
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

  it('refuses to start without a readable release key, saying which file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-serve-test-'));
    dirs.push(dir);
    const child = spawn(CONTROLLER, ['serve', '--state-dir', dir, '--release-key', join(dir, 'nope.key'), '--listen', '127.0.0.1:0'], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    expect(code).toBe(1);
    expect(stderr).toMatch(/^shoal-controller: cannot read release key .*nope\.key: ENOENT/);
  });
});
