import { readFile, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { silentLogger } from '../../shared/src/logger.js';
import { renderAgentMetrics, TextfileExporter } from '../../agent/src/metrics.js';
import { INITIAL_STATE, type AgentState } from '../../agent/src/state.js';
import { parseExposition, sampleValue } from '../controller/metrics/exposition.js';
import { useTmpDirs } from './tmp-dir.js';

const PATH = `/nix/store/${'b'.repeat(32)}-nixos-system-web-1`;
const deployed: AgentState = {
  ...INITIAL_STATE,
  enrolled: true,
  highestVersion: 7,
  highestStorePath: PATH,
  highestFloor: 3,
  lastResult: { manifestVersion: 7, storePath: PATH, phase: 'rolled-back', at: '2030-01-01T00:00:10Z', reason: 'health check web failed' },
};

describe('agent metrics textfile', () => {
  const tmpDir = useTmpDirs();

  it('renders the last result, the generation, the running system and the time since the controller answered', () => {
    const text = renderAgentMetrics({
      host: 'web-1',
      state: deployed,
      currentSystem: PATH,
      generation: 42,
      lastContactMs: Date.parse('2030-01-01T00:00:00Z'),
      nowMs: Date.parse('2030-01-01T00:01:30Z'),
    });
    const families = parseExposition(text);
    expect(sampleValue(families, 'shoal_agent_last_deployment_success', { host: 'web-1', phase: 'rolled-back' })).toBe(0);
    expect(sampleValue(families, 'shoal_agent_last_deployment_version', { host: 'web-1' })).toBe(7);
    expect(sampleValue(families, 'shoal_agent_current_generation', { host: 'web-1' })).toBe(42);
    expect(sampleValue(families, 'shoal_agent_highest_accepted_floor', { host: 'web-1' })).toBe(3);
    expect(sampleValue(families, 'shoal_agent_state_lost', { host: 'web-1' })).toBe(0);
    expect(sampleValue(families, 'shoal_agent_current_system_info', { host: 'web-1', store_path: PATH })).toBe(1);
    expect(sampleValue(families, 'shoal_agent_seconds_since_last_contact', { host: 'web-1' })).toBe(90);
  });

  it('before any deployment or contact, writes only what it knows', () => {
    const families = parseExposition(
      renderAgentMetrics({ host: 'web-1', state: INITIAL_STATE, currentSystem: null, generation: null, lastContactMs: null, nowMs: 0 }),
    );
    expect(families.get('shoal_agent_last_deployment_success')!.samples).toEqual([]);
    expect(families.has('shoal_agent_seconds_since_last_contact')).toBe(false);
    expect(sampleValue(families, 'shoal_agent_highest_accepted_version', { host: 'web-1' })).toBe(0);
  });

  it('shows a host that refuses everything because its state was lost', () => {
    const lost = { ...INITIAL_STATE, enrolled: true, stateLost: true };
    const families = parseExposition(renderAgentMetrics({ host: 'web-1', state: lost, currentSystem: null, generation: null, lastContactMs: null, nowMs: 0 }));
    expect(sampleValue(families, 'shoal_agent_state_lost', { host: 'web-1' })).toBe(1);
  });

  it('writes the file atomically, readable by node-exporter, reading the generation from the profile link', async () => {
    const dir = await tmpDir();
    await symlink('system-12-link', join(dir, 'system'));
    const file = join(dir, 'shoal.prom');
    const exporter = new TextfileExporter({
      file,
      host: 'web-1',
      intervalMs: 60_000,
      state: () => deployed,
      paths: { currentSystem: join(dir, 'no-current-system'), profile: join(dir, 'system') },
      lastContactMs: () => 1_000,
      now: () => 6_000,
      logger: silentLogger(),
    });
    await exporter.writeNow();
    const families = parseExposition(await readFile(file, 'utf8'));
    expect(sampleValue(families, 'shoal_agent_current_generation', { host: 'web-1' })).toBe(12);
    expect(sampleValue(families, 'shoal_agent_seconds_since_last_contact', { host: 'web-1' })).toBe(5);
    expect(families.get('shoal_agent_current_system_info')!.samples).toEqual([]);
    expect((await stat(file)).mode & 0o777).toBe(0o644);
  });
});
