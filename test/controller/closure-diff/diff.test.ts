import { describe, expect, it } from 'vitest';
import type { Closure } from '../../../controller/src/cache/closure.js';
import type { Narinfo } from '../../../controller/src/cache/narinfo.js';
import { diffClosures, hostDiff } from '../../../controller/src/closure-diff/diff.js';
import { fleetDiff } from '../../../controller/src/closure-diff/fleet.js';
import { parsePackageName } from '../../../controller/src/closure-diff/package-name.js';

let counter = 0;
/** A store path with a fresh hash for `name`. */
function path(name: string): string {
  const hash = (counter++).toString(32).padStart(32, '0').replace(/[eotu]/g, 'a');
  return `/nix/store/${hash}-${name}`;
}

function closure(root: string, sizes: Record<string, [number, number]>): Closure {
  const paths = new Map<string, Narinfo>();
  for (const [p, [narSize, fileSize]] of Object.entries(sizes)) {
    paths.set(p, { storePath: p, references: [], narHash: 'sha256:x', narSize, fileSize, sigs: [] });
  }
  return { root, paths, unreadable: new Map() };
}

describe('package names', () => {
  it.each([
    ['openssl-3.3.1', { name: 'openssl', version: '3.3.1', output: '' }],
    ['openssl-3.3.1-dev', { name: 'openssl', version: '3.3.1', output: 'dev' }],
    ['linux-6.12.9-modules', { name: 'linux', version: '6.12.9', output: 'modules' }],
    ['python3.12-requests-2.32.3', { name: 'python3.12-requests', version: '2.32.3', output: '' }],
    ['nixos-system-web-1-24.11.20241201', { name: 'nixos-system-web', version: '1-24.11.20241201', output: '' }],
    ['etc', { name: 'etc', version: '', output: '' }],
    ['gcc-13.3.0-lib', { name: 'gcc', version: '13.3.0', output: 'lib' }],
    ['lab-sw', { name: 'lab', version: '', output: 'sw' }],
  ])('reads %s as nix store diff-closures does', (name, expected) => {
    expect(parsePackageName(name)).toEqual(expected);
  });
});

describe('closure diff', () => {
  const glibc = path('glibc-2.39');
  const oldSsl = path('openssl-3.3.1');
  const oldSslDev = path('openssl-3.3.1-dev');
  const newSsl = path('openssl-3.3.2');
  const newSslDev = path('openssl-3.3.2-dev');
  const oldLinux = path('linux-6.12.9');
  const newLinux = path('linux-6.18.1');
  const nano = path('nano-8.0');
  const htop = path('htop-3.3.0');
  const curlOld = path('curl-8.9.1');
  const curlRebuilt = path('curl-8.9.1');
  const before = closure(oldSsl, {
    [glibc]: [100_000, 40_000],
    [oldSsl]: [50_000, 20_000],
    [oldSslDev]: [10_000, 4_000],
    [oldLinux]: [900_000, 300_000],
    [nano]: [20_000, 9_000],
    [curlOld]: [30_000, 10_000],
  });
  const after = closure(newSsl, {
    [glibc]: [100_000, 40_000],
    [newSsl]: [51_000, 21_000],
    [newSslDev]: [10_000, 4_000],
    [newLinux]: [950_000, 310_000],
    [htop]: [25_000, 11_000],
    [curlRebuilt]: [30_100, 10_050],
  });

  it('groups the outputs of a package and shows old → new versions, additions and removals', () => {
    const changes = diffClosures(before.paths, after.paths);
    expect(changes.map((c) => [c.name, c.kind, c.before, c.after, c.reboot])).toEqual([
      ['htop', 'added', [], ['3.3.0'], false],
      ['linux', 'changed', ['6.12.9'], ['6.18.1'], true],
      ['nano', 'removed', ['8.0'], [], false],
      ['openssl', 'changed', ['3.3.1'], ['3.3.2'], false],
    ]);
    expect(changes.find((c) => c.name === 'linux')!.sizeDelta).toBe(50_000);
  });

  it('shows a package rebuilt at the same version only when its size moved by 8 KiB or more', () => {
    const grown = closure(curlRebuilt, { [curlRebuilt]: [30_000 + 8 * 1024, 1] });
    expect(diffClosures(closure(curlOld, { [curlOld]: [30_000, 1] }).paths, grown.paths)).toEqual([
      { name: 'curl', kind: 'rebuilt', before: [], after: [], sizeDelta: 8 * 1024, reboot: false },
    ]);
  });

  it('counts as download the compressed size of the target paths the host lacks', () => {
    const diff = hostDiff({ host: 'web-1', current: oldSsl, target: newSsl, currentClosure: before, targetClosure: after, drifted: false });
    expect(diff).toMatchObject({
      status: 'ok',
      newPaths: 5,
      downloadBytes: 21_000 + 4_000 + 310_000 + 11_000 + 10_050,
      downloadNarBytes: 51_000 + 10_000 + 950_000 + 25_000 + 30_100,
      closureBytesBefore: 1_110_000,
      closureBytesAfter: 1_166_100,
      pathsBefore: 6,
      pathsAfter: 6,
      reboot: true,
    });
  });

  it('says so when the current system is not in the cache, and counts the whole target as new', () => {
    const missing = path('nixos-system-web-1');
    const diff = hostDiff({
      host: 'web-1',
      current: missing,
      target: newSsl,
      currentClosure: { root: missing, paths: new Map(), unreadable: new Map([[missing, { state: 'missing' }]]) },
      targetClosure: after,
      drifted: false,
    });
    expect(diff.status).toBe('current-not-in-cache');
    expect(diff.note).toContain('not in the binary cache');
    expect(diff.newPaths).toBe(6);
    expect(diff.closureBytesBefore).toBeNull();
    expect(diff.changes.every((c) => c.kind === 'added')).toBe(true);
  });

  it('reports nothing to do for a host already on its target', () => {
    expect(hostDiff({ host: 'web-1', current: newSsl, target: newSsl, currentClosure: null, targetClosure: after, drifted: false })).toMatchObject({
      status: 'up-to-date',
      changes: [],
      downloadBytes: 0,
      newPaths: 0,
    });
  });
});

describe('fleet diff', () => {
  const a = path('openssl-3.3.1');
  const b = path('openssl-3.3.2');
  const k1 = path('linux-6.12.9');
  const k2 = path('linux-6.18.1');
  const sslOnly = { before: closure(a, { [a]: [10, 10] }), after: closure(b, { [b]: [10, 7] }) };
  const withKernel = { before: closure(a, { [a]: [10, 10], [k1]: [10, 10] }), after: closure(b, { [b]: [10, 7], [k2]: [10, 500] }) };
  const diffs = [
    ...['web-1', 'web-2', 'web-3'].map((host) => hostDiff({ host, current: a, target: b, currentClosure: sslOnly.before, targetClosure: sslOnly.after, drifted: false })),
    ...['db-1', 'db-2'].map((host) => hostDiff({ host, current: a, target: b, currentClosure: withKernel.before, targetClosure: withKernel.after, drifted: host === 'db-2' })),
    hostDiff({ host: 'web-4', current: b, target: b, currentClosure: null, targetClosure: sslOnly.after, drifted: false }),
  ];
  const fleet = fleetDiff(diffs);

  it('counts each change over the hosts it reaches, most hosts first', () => {
    expect(fleet.packages.map((p) => `${p.name} ${p.before.join(',')} → ${p.after.join(',')} on ${p.hosts}${p.reboot ? ' (reboot)' : ''}`)).toEqual([
      'openssl 3.3.1 → 3.3.2 on 5',
      'linux 6.12.9 → 6.18.1 on 2 (reboot)',
    ]);
    expect(fleet.rebootHosts).toBe(2);
  });

  it('sums the download and names the largest host', () => {
    expect(fleet.downloadBytes).toBe(3 * 7 + 2 * 507);
    expect(fleet.largestDownload).toEqual({ host: 'db-1', bytes: 507 });
  });

  it('groups hosts with identical change sets', () => {
    expect(fleet.groups.map((g) => g.hosts)).toEqual([['web-1', 'web-2', 'web-3'], ['db-1', 'db-2'], ['web-4']]);
    expect(fleet.upToDate).toBe(1);
    // Each host points at its group's change list instead of repeating it.
    expect(fleet.perHost.map((h) => [h.host, h.group])).toEqual([['web-1', 0], ['web-2', 0], ['web-3', 0], ['db-1', 1], ['db-2', 1], ['web-4', 2]]);
    expect(fleet.perHost[0]).not.toHaveProperty('changes');
    expect(fleet.drifted).toEqual(['db-2']);
  });
});
