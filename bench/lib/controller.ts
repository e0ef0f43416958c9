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

/** The key files every replica of one controller shares, and the public keys agents trust. */
export interface ControllerKeys {
  releaseKeyFile: string;
  controllerKeyFile: string;
  releasePublicKey: string;
  controllerPublicKey: string;
}

/** A fresh release key and controller key, written (mode 0600) into dir. */
export function generateControllerKeys(dir: string): ControllerKeys {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const key = generateNamedKey('bench-release-1');
  const releaseKeyFile = join(dir, 'release.key');
  writeFileSync(releaseKeyFile, `${formatSecretKey(key)}\n`, { mode: 0o600 });
  const controllerKey = generateNamedKey('bench-controller-1');
  const controllerKeyFile = join(dir, 'controller.key');
  writeFileSync(controllerKeyFile, `${formatSecretKey(controllerKey)}\n`, { mode: 0o600 });
  return { releaseKeyFile, controllerKeyFile, releasePublicKey: formatPublicKey(key), controllerPublicKey: formatPublicKey(controllerKey) };
}

export interface ControllerOptions {
  args?: string[];
  nodeArgs?: string[];
  /** Shared with other replicas; default fresh keys in dir. */
  keys?: ControllerKeys;
  /** A replica after the first: the first one made the admin token (in its own state dir), this one finds tokens in the shared database and writes none. */
  adminToken?: string;
}

/**
 * The real controller (`controller/src/main.ts serve`) as its own process, so its RSS and CPU are
 * its own, on a fresh state dir with freshly generated keys. Single-key mode: the benchmarks publish
 * unsigned releases and set desired states directly.
 */
export async function startControllerProcess(dir: string, cleanup: Cleanup, options: ControllerOptions = {}): Promise<ControllerProcess> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const keys = options.keys ?? generateControllerKeys(dir);
  const stateDir = join(dir, 'state');
  const child = cleanup.child(
    spawnTs(
      join(REPO_ROOT, 'controller/src/main.ts'),
      [
        'serve',
        '--state-dir', stateDir,
        '--controller-key', keys.controllerKeyFile,
        '--single-key-release-key', keys.releaseKeyFile,
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
  const adminToken = options.adminToken ?? readFileSync(join(stateDir, 'admin-token'), 'utf8').trim();
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid!,
    adminToken,
    releasePublicKey: keys.releasePublicKey,
    controllerPublicKey: keys.controllerPublicKey,
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

/**
 * N controller processes sharing one PostgreSQL database and the same keys, each with its own state
 * dir and listen port (docs/high-availability.md). Started one after the other: the first migrates
 * the schema and makes the admin token, which the others then find in the database.
 */
export async function startControllerReplicas(
  dir: string,
  cleanup: Cleanup,
  options: { replicas: number; database: { url: string; passwordFile: string }; nodeArgs?: string[] },
): Promise<ControllerProcess[]> {
  const keys = generateControllerKeys(dir);
  const replicas: ControllerProcess[] = [];
  for (let r = 1; r <= options.replicas; r++) {
    replicas.push(
      await startControllerProcess(join(dir, `replica-${r}`), cleanup, {
        keys,
        nodeArgs: options.nodeArgs ?? [],
        args: ['--database', options.database.url, '--database-password-file', options.database.passwordFile],
        ...(replicas[0] ? { adminToken: replicas[0].adminToken } : {}),
      }),
    );
  }
  return replicas;
}
