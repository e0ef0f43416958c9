import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { formatPublicKey, formatSecretKey, generateNamedKey } from '../../../shared/src/keys.js';
import { parseExposition } from './exposition.js';

const CONTROLLER = fileURLToPath(new URL('../../../bin/shoal-controller', import.meta.url));

describe('shoal-controller serve --metrics-token-file', () => {
  const dirs: string[] = [];
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const child of children.splice(0)) child.kill('SIGKILL');
    dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true }));
  });

  function setup(): { dir: string; args: string[] } {
    const dir = mkdtempSync(join(tmpdir(), 'shoal-metrics-serve-'));
    dirs.push(dir);
    const keyFile = join(dir, 'controller.key');
    writeFileSync(keyFile, formatSecretKey(generateNamedKey('controller-1')), { mode: 0o600 });
    const ciKey = formatPublicKey(generateNamedKey('ci-release-1'));
    return { dir, args: ['serve', '--state-dir', join(dir, 'state'), '--controller-key', keyFile, '--trusted-release-key', ciKey, '--listen', '127.0.0.1:0'] };
  }

  it('requires the token from the file on /metrics, and exposes process metrics', async () => {
    const { dir, args } = setup();
    const tokenFile = join(dir, 'metrics-token');
    writeFileSync(tokenFile, 'scrape-me-please\n', { mode: 0o600 });
    const child = spawn(CONTROLLER, [...args, '--metrics-token-file', tokenFile], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    const port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stderr! }).on('line', (line) => {
        const entry = JSON.parse(line) as { msg?: string; port?: number };
        if (entry.msg === 'controller listening') resolve(entry.port!);
      });
      child.on('exit', (code) => reject(new Error(`controller exited with ${code}`)));
    });
    const url = `http://127.0.0.1:${port}/metrics`;
    expect((await fetch(url)).status).toBe(401);
    const response = await fetch(url, { headers: { authorization: 'Bearer scrape-me-please' } });
    expect(response.status).toBe(200);
    const families = parseExposition(await response.text());
    expect(families.get('process_resident_memory_bytes')?.type).toBe('gauge');
    expect(families.get('shoal_hosts')?.type).toBe('gauge');
  });

  it('refuses to start when the token file cannot be read, naming it', async () => {
    const { dir, args } = setup();
    const child = spawn(CONTROLLER, [...args, '--metrics-token-file', join(dir, 'absent')], { stdio: ['ignore', 'ignore', 'pipe'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    expect(await new Promise<number | null>((resolve) => child.on('exit', resolve))).toBe(1);
    expect(stderr).toMatch(/^shoal-controller: metrics token file .*absent: cannot read: ENOENT/);
  });
});
