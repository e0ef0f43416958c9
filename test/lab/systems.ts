import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NIX_BUILD_OPTIONS, NIX_OFFLINE } from './nix.js';
import { runOk } from './run.js';

/**
 * What a lab system's switch-to-configuration does (see switch-to-configuration.sh):
 *  ok                 activates; brings the lab network (back) up
 *  fail-switch        activates (current-system points at it), then exits 1 with unit errors on stderr
 *  fail-switch-early  exits 1 before changing anything
 *  hang-switch        activates, then sleeps forever (until killed)
 *  break-network      activates and takes the host's network interface down
 *  fail-health        activates fine, but etc/health says "bad"
 * boot and dry-activate always succeed.
 */
export const FAULTS = ['ok', 'fail-switch', 'fail-switch-early', 'hang-switch', 'break-network', 'fail-health'] as const;
export type Fault = (typeof FAULTS)[number];

export interface SystemSpec {
  /** Unique among the systems built together; becomes the store name "nixos-system-<name>". */
  name: string;
  fault?: Fault;
  /** Written to nixos-version; defaults to the name. */
  label?: string;
  /** Systems with different kernel versions differ in kernel/initrd/kernel-modules (a reboot is needed). */
  kernel?: string;
  /** Makes the closure look like a real one: `count` extra store paths of `bytesEach` random bytes. */
  filler?: { count: number; bytesEach: number };
  /** Content of the system's `switch-inhibitors` file; none when absent. */
  switchInhibitors?: string;
  /** Store paths named like packages ("openssl-3.3.1"), referencing each other: see realistic-closure.ts. */
  packages?: readonly LabPackage[];
  /** The agent's configuration (JSON text), installed as `etc/shoal/agent.json` as the NixOS module does; none when absent. */
  agentConfig?: string;
}

/** One package path: its store name, size, and the packages (by name, of the same system) it references. */
export interface LabPackage {
  name: string;
  bytes: number;
  deps: readonly string[];
}

export interface LabSystem {
  name: string;
  /** The toplevel store path (what a manifest names). */
  path: string;
  fault: Fault;
  label: string;
  kernel: string;
}

/** A closure shaped like a small real NixOS system for benchmarks: 300 paths, 30 MB. */
export const REALISTIC_FILLER = { count: 300, bytesEach: 100_000 } as const;

const NAME = /^[A-Za-z0-9][A-Za-z0-9+._-]{0,100}$/;
const SYSTEMS_NIX = fileURLToPath(new URL('./systems.nix', import.meta.url));

export function ipCommand(): string {
  const found = ['/usr/sbin/ip', '/sbin/ip', '/usr/bin/ip', '/bin/ip'].find((p) => existsSync(p));
  if (!found) throw new Error('the fleet lab needs ip(8) (Debian package iproute2)');
  return found;
}

function normalise(spec: SystemSpec): Required<Omit<SystemSpec, 'filler' | 'switchInhibitors' | 'packages' | 'agentConfig'>> & Pick<SystemSpec, 'filler' | 'switchInhibitors' | 'packages' | 'agentConfig'> {
  if (!NAME.test(spec.name)) throw new Error(`lab system name ${JSON.stringify(spec.name)} must match ${NAME}`);
  // nix-build of the whole attribute set silently skips attributes whose names contain a dot.
  if (spec.name.includes('.')) throw new Error(`lab system name ${JSON.stringify(spec.name)} must not contain "." (nix-build would skip it)`);
  const fault = spec.fault ?? 'ok';
  if (!FAULTS.includes(fault)) throw new Error(`lab system ${spec.name}: unknown fault ${JSON.stringify(fault)}`);
  return {
    name: spec.name,
    fault,
    label: spec.label ?? spec.name,
    kernel: spec.kernel ?? '6.6.0-lab',
    filler: spec.filler,
    switchInhibitors: spec.switchInhibitors,
    packages: spec.packages,
    agentConfig: spec.agentConfig,
  };
}

/**
 * Builds every system in one nix-build (one evaluation, one build graph) into the machine's
 * store and keeps GC roots for them under `workDir`. Returns the systems by name.
 */
export async function buildSystems(specs: readonly SystemSpec[], workDir: string): Promise<Record<string, LabSystem>> {
  const systems = specs.map(normalise);
  const seen = new Set<string>();
  for (const s of systems) {
    if (seen.has(s.name)) throw new Error(`lab system name ${s.name} appears twice; names make the store paths differ`);
    seen.add(s.name);
  }
  await mkdir(workDir, { recursive: true });
  const specFile = join(workDir, 'systems.json');
  await writeFile(specFile, JSON.stringify({ ipCommand: ipCommand(), systems }, null, 2));

  // Evaluation alone maps names to paths exactly; nix-build's output order is not the spec order.
  const evalExpr = `builtins.mapAttrs (n: d: d.outPath) (import ${SYSTEMS_NIX} { specFile = ${JSON.stringify(specFile)}; })`;
  const paths = JSON.parse(
    await runOk('nix-instantiate', ['--eval', '--strict', '--json', ...NIX_OFFLINE, '-E', evalExpr]),
  ) as Record<string, string>;
  await runOk('nix-build', [
    SYSTEMS_NIX,
    '--argstr', 'specFile', specFile,
    '--out-link', join(workDir, 'gcroot'),
    ...NIX_BUILD_OPTIONS,
  ]);

  const result: Record<string, LabSystem> = {};
  for (const s of systems) {
    const path = paths[s.name];
    if (!path) throw new Error(`nix evaluation of ${SYSTEMS_NIX} did not produce system ${s.name}`);
    result[s.name] = { name: s.name, path, fault: s.fault, label: s.label, kernel: s.kernel };
  }
  return result;
}
