import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatSecretKey, generateNamedKey } from '../../shared/src/keys.js';
import { listeningPort } from '../lab/controller.js';
import { LabProcess } from '../lab/lab-process.js';

const BIN = resolve(import.meta.dirname, '../../bin');

/**
 * Operators start the bin scripts from wherever they stand. tsx reads JSX settings from a
 * tsconfig.json, and from the *current* directory unless told otherwise: every dashboard page
 * used to be a 500 ("React is not defined") when the controller was started outside the repo.
 */
describe('bin scripts started outside the repository', () => {
  let elsewhere: string;
  let controller: LabProcess;
  let url: string;

  beforeAll(async () => {
    elsewhere = mkdtempSync(join(tmpdir(), 'shoal-bin-elsewhere-'));
    const key = join(elsewhere, 'controller.key');
    writeFileSync(key, `${formatSecretKey(generateNamedKey('bin-test'))}\n`, { mode: 0o600 });
    const releaseKey = join(elsewhere, 'release.key');
    writeFileSync(releaseKey, `${formatSecretKey(generateNamedKey('bin-test-release'))}\n`, { mode: 0o600 });
    controller = new LabProcess('controller', join(BIN, 'shoal-controller'), [
      'serve', '--state-dir', join(elsewhere, 'state'), '--controller-key', key, '--single-key-release-key', releaseKey, '--listen', '127.0.0.1:0',
    ], { cwd: elsewhere, logFile: join(elsewhere, 'controller.log') });
    // Port 0: the controller binds a port of the kernel's choosing and names it; no window for another worker to take it.
    const listening = await controller.waitForLine((line) => line.includes('controller listening'), 30_000, 'a "controller listening" log line');
    url = `http://127.0.0.1:${listeningPort(listening)}`;
  });
  afterAll(async () => {
    await controller?.kill();
    rmSync(elsewhere, { recursive: true, force: true });
  });

  it('bin/shoal-controller serves dashboard pages', async () => {
    const login = await fetch(`${url}/dashboard/login`);
    expect(login.status).toBe(200);
    expect(await login.text()).toContain('<form');
  });

  it('bin/shoal runs against that controller', async () => {
    const token = readFileSync(join(elsewhere, 'state', 'admin-token'), 'utf8').trim();
    const child = spawn(join(BIN, 'shoal'), ['status'], { cwd: elsewhere, env: { PATH: process.env.PATH, SHOAL_CONTROLLER: url, SHOAL_TOKEN: token } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((done) => child.on('close', done));
    expect(code).toBe(0);
    expect(out).toMatch(/^0 hosts: /);
    expect(out).toMatch(/\nHOST\s+/);
  });

  it('bin/shoal-agent answers --help', () => {
    const run = spawnSync(join(BIN, 'shoal-agent'), ['--help'], { cwd: elsewhere, encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/usage: shoal-agent/);
  });
});
