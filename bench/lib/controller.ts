import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatPublicKey, formatSecretKey, generateNamedKey } from '../../shared/src/keys.js';
import type { Cleanup } from './cleanup.js';
import { REPO_ROOT, spawnTs } from './spawn.js';

export interface ControllerProcess {
  url: string;
  pid: number;
  adminToken: string;
  /** "name:base64", what agents list in trustedReleaseKeys (the bench runs single-key mode). */
  releasePublicKey: string;
  /** "name:base64", what agents list in trustedControllerKeys. */
  controllerPublicKey: string;
  child: ChildProcess;
  /** The last lines the controller wrote to stderr (for failure messages). */
  tail(): string;
  stop(): Promise<void>;
}

/**
 * The real controller (`controller/src/main.ts serve`) as its own process, so its RSS and CPU are
 * its own, on a fresh state dir with freshly generated keys. Single-key mode: the benchmarks publish
 * unsigned releases and set desired states directly.
 */
export async function startControllerProcess(dir: string, cleanup: Cleanup, options: { args?: string[]; nodeArgs?: string[] } = {}): Promise<ControllerProcess> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = generateNamedKey('bench-release-1');
  const keyFile = join(dir, 'release.key');
  writeFileSync(keyFile, `${formatSecretKey(key)}\n`, { mode: 0o600 });
  const controllerKey = generateNamedKey('bench-controller-1');
  const controllerKeyFile = join(dir, 'controller.key');
  writeFileSync(controllerKeyFile, `${formatSecretKey(controllerKey)}\n`, { mode: 0o600 });
  const stateDir = join(dir, 'state');
  const child = cleanup.child(
    spawnTs(
      join(REPO_ROOT, 'controller/src/main.ts'),
      [
        'serve',
        '--state-dir', stateDir,
        '--controller-key', controllerKeyFile,
        '--single-key-release-key', keyFile,
        '--listen', '127.0.0.1:0',
        ...(options.args ?? []),
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], nodeArgs: options.nodeArgs ?? [] },
    ),
  );
  const lines: string[] = [];
  let partial = '';
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`controller did not start within 30 s:\n${lines.slice(-20).join('\n')}`)), 30_000);
    child.stderr!.setEncoding('utf8');
    child.stderr!.on('data', (chunk: string) => {
      const parts = (partial + chunk).split('\n');
      partial = parts.pop()!;
      for (const line of parts) {
        lines.push(line);
        if (lines.length > 200) lines.shift();
        if (line.includes('"controller listening"')) {
          clearTimeout(timer);
          resolve((JSON.parse(line) as { port: number }).port);
        }
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`controller exited (${code ?? signal}) before listening:\n${lines.slice(-20).join('\n')}`));
    });
  });
  const adminToken = readFileSync(join(stateDir, 'admin-token'), 'utf8').trim();
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    adminToken,
    releasePublicKey: formatPublicKey(key),
    controllerPublicKey: formatPublicKey(controllerKey),
    child,
    tail: () => lines.slice(-20).join('\n'),
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        child.once('exit', () => {
          clearTimeout(timer);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
