import { existsSync, lstatSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { z } from 'zod';
import type { SystemFacts } from '../../../shared/src/release-statement.js';
import { CliError } from './context.js';
import { NixError, nixErrorText, runNix } from './nix.js';

const MAX_INHIBITORS_BYTES = 64 * 1024;
const PATH_INFO_BATCH = 500;

// Nix ≤ 2.18 prints a list of {path, closureSize}; later versions an object keyed by path.
const PathInfoList = z.array(z.object({ path: z.string(), closureSize: z.number().optional() }));
const PathInfoMap = z.record(z.string(), z.object({ closureSize: z.number().optional() }).nullable());

async function closureSizes(paths: string[], env: Record<string, string | undefined>): Promise<Map<string, number>> {
  const sizes = new Map<string, number>();
  for (let i = 0; i < paths.length; i += PATH_INFO_BATCH) {
    let raw: unknown;
    try {
      raw = JSON.parse(await runNix(['path-info', '--json', '--closure-size', ...paths.slice(i, i + PATH_INFO_BATCH)], { env }));
    } catch (error) {
      if (error instanceof NixError) throw new CliError('cannot read closure sizes with nix path-info:', 1, nixErrorText(error).split('\n'));
      throw error;
    }
    const list = PathInfoList.safeParse(raw);
    const entries = list.success
      ? list.data.map((info) => [info.path, info.closureSize] as const)
      : Object.entries(PathInfoMap.parse(raw)).map(([path, info]) => [path, info?.closureSize] as const);
    for (const [path, size] of entries) if (size !== undefined) sizes.set(path, size);
  }
  return sizes;
}

/** Where a NixOS system's link (kernel, initrd, kernel-modules) leads, when it has one. */
function linkTarget(toplevel: string, name: string): string | null {
  const link = `${toplevel}/${name}`;
  try {
    lstatSync(link);
  } catch {
    return null;
  }
  const target = realpathSync(link);
  return target.startsWith('/nix/store/') ? target : null;
}

function switchInhibitors(host: string, toplevel: string): string | null {
  const file = `${toplevel}/switch-inhibitors`;
  if (!existsSync(file)) return null;
  if (statSync(file).size > MAX_INHIBITORS_BYTES) throw new CliError(`host ${host}: ${file} is larger than 64 KiB; a release cannot carry it`);
  return readFileSync(file, 'utf8');
}

function humanBytes(bytes: number): string {
  if (bytes < 1e3) return `${bytes} B`;
  if (bytes < 1e6) return `${(bytes / 1e3).toFixed(1)} kB`;
  if (bytes < 1e9) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${(bytes / 1e9).toFixed(2)} GB`;
}

/** The facts of each built system, read from the local store. */
export async function systemFacts(
  systems: readonly { host: string; storePath: string }[],
  env: Record<string, string | undefined>,
  progress: (line: string) => void,
): Promise<Map<string, SystemFacts>> {
  const sizes = await closureSizes(systems.map((s) => s.storePath), env);
  const facts = new Map<string, SystemFacts>();
  systems.forEach(({ host, storePath }, i) => {
    const fact: SystemFacts = {
      closureBytes: sizes.get(storePath) ?? null,
      kernel: linkTarget(storePath, 'kernel'),
      initrd: linkTarget(storePath, 'initrd'),
      kernelModules: linkTarget(storePath, 'kernel-modules'),
      switchInhibitors: switchInhibitors(host, storePath),
    };
    facts.set(host, fact);
    const size = fact.closureBytes === null ? 'closure size unknown' : `closure ${humanBytes(fact.closureBytes)}`;
    progress(`host ${i + 1} of ${systems.length}: ${host} ${storePath} (${size})`);
  });
  return facts;
}
