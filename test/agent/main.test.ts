import { spawn } from 'node:child_process';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatPublicKey, generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import { useControllers } from './real-controller.js';
import { useTmpDirs } from './tmp-dir.js';

const BIN = resolve(import.meta.dirname, '../../bin/shoal-agent');

interface Exit {
  code: number | null;
  stdout: string;
  stderr: string;
}

function agent(args: string[], options: { onStderr?: (text: string, child: ReturnType<typeof spawn>) => void } = {}): Promise<Exit> {
  return new Promise((resolveExit) => {
    const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => {
      stderr += d;
      options.onStderr?.(stderr, child);
    });
    child.on('close', (code) => resolveExit({ code, stdout, stderr }));
  });
}

describe('bin/shoal-agent', () => {
  const tmpDir = useTmpDirs();
  const startController = useControllers();

  async function config(content: Record<string, unknown>): Promise<string> {
    const file = join(await tmpDir(), 'agent.json');
    await writeFile(file, JSON.stringify(content));
    return file;
  }

  const releaseKey = formatPublicKey(generateNamedKey('release-1'));
  const controllerKey = formatPublicKey(generateNamedKey('controller-1'));

  it('check-config exits 0 for a valid file', async () => {
    const file = await config({ host: 'web-1', controllerUrl: 'http://127.0.0.1:1', trustedReleaseKeys: [releaseKey], trustedControllerKeys: [controllerKey] });
    const result = await agent(['check-config', '--config', file]);
    expect(result).toMatchObject({ code: 0, stdout: `config ${file}: ok (host web-1, 1 release key(s), 1 controller key(s))\n` });
  });

  it('check-config refuses a substituter that would turn off Nix\'s signature checks (the NixOS module runs it at build time)', async () => {
    const file = await config({
      host: 'web-1',
      controllerUrl: 'http://127.0.0.1:1',
      trustedReleaseKeys: [releaseKey],
      trustedControllerKeys: [controllerKey],
      substituters: ['https://cache.example.org?trusted=1'],
    });
    const result = await agent(['check-config', '--config', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`shoal-agent: config ${file}: substituters.0: substituter "https://cache.example.org?trusted=1" has the parameter "trusted"`);
  });

  it('check-config exits 1 and names the file and the field', async () => {
    const file = await config({ host: 'web-1', controllerUrl: 'http://127.0.0.1:1', trustedReleaseKeys: [], trustedControllerKeys: [controllerKey] });
    const result = await agent(['check-config', '--config', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(`shoal-agent: config ${file}: trustedReleaseKeys: must contain at least one key\n`);
  });

  it('refuses to run when the controller already knows this host with another key (409)', async () => {
    const controller = await startController();
    await controller.register('web-1', toBase64(generateNamedKey('old').publicKey));
    const dir = await tmpDir();
    await writeFile(join(dir, 'token'), await controller.enrollmentToken());
    const file = await config({
      host: 'web-1',
      controllerUrl: controller.url,
      trustedReleaseKeys: [releaseKey],
      trustedControllerKeys: [controllerKey],
      stateDir: join(dir, 'state'),
      enrollmentTokenFile: join(dir, 'token'),
    });
    const result = await agent(['run', '--config', file]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('shoal-agent: host web-1 is already enrolled on the controller with a different public key');
  });

  it('stops cleanly on SIGTERM once running', async () => {
    const controller = await startController();
    const dir = await tmpDir();
    await writeFile(join(dir, 'token'), await controller.enrollmentToken());
    const file = await config({
      host: 'web-1',
      controllerUrl: controller.url,
      trustedReleaseKeys: [releaseKey],
      trustedControllerKeys: [controllerKey],
      stateDir: join(dir, 'state'),
      enrollmentTokenFile: join(dir, 'token'),
      checkSystemdUnits: false,
      useSystemdRun: false,
      paths: { profile: join(dir, 'profile'), currentSystem: join(dir, 'current'), bootedSystem: join(dir, 'booted') },
    });
    let signalled = false;
    const result = await agent(['run', '--config', file], {
      onStderr: (text, child) => {
        if (!signalled && text.includes('"msg":"agent running"')) {
          signalled = true;
          child.kill('SIGTERM');
        }
      },
    });
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('"msg":"agent stopped"');
    // Its start was reported, and delivered before it exited.
    expect(controller.phases()).toEqual(['reconciled']);
  });

  it('rebootstrap writes a fresh state at the version the operator names and says what it did', async () => {
    const dir = await tmpDir();
    const stateDir = join(dir, 'state');
    await mkdir(stateDir);
    await writeFile(join(stateDir, 'state.json'), JSON.stringify({ formatVersion: 1, enrolled: true, highestVersion: 0, highestStorePath: null, stateLost: true, activation: null, lastResult: null }));
    const file = await config({ host: 'web-1', controllerUrl: 'http://127.0.0.1:1', trustedReleaseKeys: [releaseKey], trustedControllerKeys: [controllerKey], stateDir });
    const result = await agent(['rebootstrap', '--config', file, '--min-version', '41']);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe(
      `rebootstrapped ${stateDir}: highest accepted version 41, security floor 0 (the state was marked lost); the agent accepts manifests above version 41 again once it is started\n`,
    );
    expect(result.stderr).toContain('"msg":"rebootstrapped');
    expect(JSON.parse(await readFile(join(stateDir, 'state.json'), 'utf8'))).toMatchObject({ enrolled: true, highestVersion: 41, stateLost: false });
    expect(JSON.parse(await readFile(join(stateDir, 'watermark.json'), 'utf8'))).toMatchObject({ highestVersion: 41, highestFloor: 0 });

    const bad = await agent(['rebootstrap', '--config', file, '--min-version', 'latest']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('--min-version must be a whole number (0 or more), got "latest"');
  });
});
