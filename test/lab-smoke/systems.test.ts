import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LabFixtures } from '../lab/fixtures.js';
import { buildSystems } from '../lab/systems.js';
import { labFixtures } from '../lab/vitest-fixtures.js';

describe('lab systems', () => {
  let fixtures: LabFixtures;
  let scratch: string;
  beforeAll(async () => {
    fixtures = await labFixtures();
    scratch = await mkdtemp(join(tmpdir(), 'shoal-lab-smoke-'));
  });
  afterAll(() => rm(scratch, { recursive: true, force: true }));

  it('builds every standard system, each a distinct toplevel with a switch-to-configuration', () => {
    const systems = Object.values(fixtures.systems);
    expect(new Set(systems.map((s) => s.path)).size).toBe(systems.length);
    for (const system of systems) {
      expect(system.path).toMatch(new RegExp(`^/nix/store/[0-9a-z]{32}-nixos-system-${system.name}$`));
      const script = join(system.path, 'bin/switch-to-configuration');
      expect(statSync(script).mode & 0o111).not.toBe(0);
      expect(readFileSync(script, 'utf8')).toContain(`fault=${system.fault}`);
    }
  });

  it('gives only the fail-health systems an etc/health that is not "ok"', () => {
    for (const [key, system] of Object.entries(fixtures.systems)) {
      const health = readFileSync(join(system.path, 'etc/health'), 'utf8').trim();
      expect([key, health]).toEqual([key, system.fault === 'fail-health' ? 'bad' : 'ok']);
    }
    expect(Object.values(fixtures.systems).filter((s) => s.fault === 'fail-health').map((s) => s.name).sort()).toEqual(['lab-fail-health-9', 'lab-kernel-fail-health-14']);
  });

  it('gives a system with another kernel another kernel, initrd and modules', () => {
    const { base, v2, newKernel } = fixtures.systems;
    const target = (system: { path: string }, link: string) => readFileSync(join(system.path, link), 'utf8');
    expect(target(v2, 'kernel')).toBe(target(base, 'kernel'));
    expect(target(newKernel, 'kernel')).not.toBe(target(base, 'kernel'));
    expect(target(newKernel, 'initrd')).not.toBe(target(base, 'initrd'));
  });

  it('builds a list of new systems in one nix-build and returns each by name', async () => {
    const built = await buildSystems(
      [
        { name: 'smoke-a-1', fault: 'ok' },
        { name: 'smoke-b-1', fault: 'hang-switch', filler: { count: 20, bytesEach: 1000 } },
      ],
      scratch,
    );
    expect(Object.keys(built).sort()).toEqual(['smoke-a-1', 'smoke-b-1']);
    expect(built['smoke-b-1']!.fault).toBe('hang-switch');
    expect(existsSync(built['smoke-a-1']!.path)).toBe(true);
    const packages = readFileSync(join(built['smoke-b-1']!.path, 'lab-packages'), 'utf8').trim().split('\n');
    expect(packages).toHaveLength(20);
  });

  it('refuses two systems with the same name, since their paths would not differ', async () => {
    await expect(buildSystems([{ name: 'twice' }, { name: 'twice', fault: 'fail-switch' }], scratch)).rejects.toThrow(/appears twice/);
  });
});
