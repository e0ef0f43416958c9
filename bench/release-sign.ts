import { mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { signRelease } from '../controller/src/cli/release-pipeline.js';
import { nodeEd25519 } from '../shared/src/ed25519.js';
import { formatSecretKey, generateNamedKey } from '../shared/src/keys.js';
import { PROTOCOL_VERSION } from '../shared/src/protocol.js';
import { verifyReleaseStatement, type ReleaseBuild } from '../shared/src/release-statement.js';
import type { Cleanup } from './lib/cleanup.js';
import type { Figures } from './lib/results.js';
import { spawnTs } from './lib/spawn.js';
import { round } from './lib/stats.js';

export interface ReleaseSignOptions {
  hosts: number;
  cleanup: Cleanup;
  log: (line: string) => void;
}

function hash(i: number, salt: string): string {
  // Store-path hashes use Nix's base-32 alphabet (no e, o, u, t).
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  let n = i * 2654435761 + salt.length;
  let out = '';
  for (let k = 0; k < 32; k++) {
    out += alphabet[n % 32];
    n = Math.floor(n / 32) + k * 7919 + i;
  }
  return out;
}

/** A release build as `shoal release build` writes it for a fleet of `hosts` machines, with facts. */
function syntheticBuild(hosts: number): ReleaseBuild {
  const kernel = `/nix/store/${hash(1, 'kernel')}-linux-6.6.30`;
  return {
    protocol: PROTOCOL_VERSION,
    kind: 'shoal-release-build',
    name: `bench-${hosts}`,
    description: 'synthetic release for the signing benchmark',
    source: { revision: 'f'.repeat(40), flakeLockHash: 'a'.repeat(64) },
    createdAt: new Date().toISOString(),
    hosts: Array.from({ length: hosts }, (_, i) => ({
      host: `host-${i}`,
      storePath: `/nix/store/${hash(i, 'system')}-nixos-system-host-${i}-24.05`,
      facts: { closureBytes: 1_500_000_000 + i, kernel: `${kernel}/bzImage`, initrd: `/nix/store/${hash(i, 'initrd')}-initrd-linux-6.6.30/initrd`, kernelModules: `${kernel}-modules/lib/modules`, switchInhibitors: null },
    })),
  };
}

function waitExit(child: ReturnType<typeof spawnTs>): Promise<number | null> {
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
}

/**
 * How long CI waits for `shoal release sign` on a large fleet: the signing itself (in process,
 * native Ed25519), the whole command as CI runs it (node + tsx start, read, sign, write), and
 * what the controller then spends verifying every statement of the bundle.
 */
export async function runReleaseSign(options: ReleaseSignOptions): Promise<Figures> {
  const { hosts, cleanup, log } = options;
  const dir = cleanup.dir(mkdtempSync(join(tmpdir(), 'shoal-bench-sign-')));
  const key = generateNamedKey('bench-ci');
  const keyFile = join(dir, 'ci.key');
  writeFileSync(keyFile, `${formatSecretKey(key)}\n`, { mode: 0o600 });
  const build = syntheticBuild(hosts);
  const buildFile = join(dir, 'release-build.json');
  writeFileSync(buildFile, JSON.stringify(build, null, 2));

  const signMs: number[] = [];
  let bundle = signRelease(build, key, 0).bundle;
  for (let i = 0; i < 3; i++) {
    const signed = signRelease(build, key, 0);
    signMs.push(signed.signingMs);
    bundle = signed.bundle;
  }
  const started = performance.now();
  for (const host of bundle.hosts) {
    if (!verifyReleaseStatement(host.statement, host, [key], nodeEd25519).valid) throw new Error(`statement of ${host.host} does not verify`);
  }
  const verifyMs = performance.now() - started;

  const bundleFile = join(dir, 'release-bundle.json');
  const cliStarted = performance.now();
  const code = await waitExit(cleanup.child(spawnTs('controller/src/cli/main.ts', ['release', 'sign', '--key', keyFile, buildFile, '-o', bundleFile], { stdio: ['ignore', 'ignore', 'inherit'] })));
  const cliS = (performance.now() - cliStarted) / 1000;
  if (code !== 0) throw new Error(`shoal release sign exited with ${code}`);
  const helpStarted = performance.now();
  await waitExit(cleanup.child(spawnTs('controller/src/cli/main.ts', ['--help'], { stdio: ['ignore', 'ignore', 'inherit'] })));
  const startupS = (performance.now() - helpStarted) / 1000;

  const figures: Figures = {
    [`release_sign.${hosts}.sign_ms`]: round(Math.min(...signMs), 1),
    [`release_sign.${hosts}.cli_s`]: round(cliS, 2),
    [`release_sign.${hosts}.cli_startup_s`]: round(startupS, 2),
    [`release_sign.${hosts}.verify_ms`]: round(verifyMs, 1),
    [`release_sign.${hosts}.bundle_mb`]: round(statSync(bundleFile).size / 1e6, 1),
  };
  log(`release sign, ${hosts} hosts: signing ${figures[`release_sign.${hosts}.sign_ms`]} ms, shoal release sign ${cliS.toFixed(2)} s (of which ${startupS.toFixed(2)} s start-up), verifying ${verifyMs.toFixed(0)} ms`);
  return figures;
}
