import { eq } from 'drizzle-orm';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type RunningAgent } from '../../agent/src/daemon.js';
import { resolveSystem } from '../../agent/src/system.js';
import { createEnrollmentToken, registerHost } from '../../controller/src/hosts/enrollment.js';
import { hosts } from '../../controller/src/db/schema.js';
import { createManifestSigner } from '../../controller/src/manifests/signer.js';
import { formatPublicKey } from '../../shared/src/keys.js';
import { silentLogger } from '../../shared/src/logger.js';
import { testKeys } from '../controller/helpers.js';
import { liveController, type LiveController } from '../controller/server-helpers.js';
import { bootInto, buildSystem, fakeHost, fakeHostAgentConfig } from './activation-fixture.js';
import { useTmpDirs } from './tmp-dir.js';

// Two real controllers with the same keys stand in for two replicas (they cannot share one SQLite
// database); the host is known to both. What is tested is the agent's side: when the controller it
// uses goes away, it moves to the next URL it was given and keeps deploying from there.

async function until<T>(what: string, probe: () => T | null | undefined | false, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const hostRow = (controller: LiveController) => controller.handle.database.db.select().from(hosts).where(eq(hosts.name, 'web-1')).get();

async function setDesired(controller: LiveController, storePath: string): Promise<number> {
  const response = await controller.setDesired('web-1', storePath);
  const body = (await response.json()) as { version?: number };
  if (!response.ok || typeof body.version !== 'number') throw new Error(`set desired: ${response.status} ${JSON.stringify(body)}`);
  return body.version;
}

describe('an agent given several controller URLs', () => {
  const tmpDir = useTmpDirs();
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
  });

  it('fails over to the next controller when the one it uses goes away, and keeps deploying', async () => {
    const keys = testKeys('single-key');
    const shared = { signer: createManifestSigner(keys.controllerKey), releaseTrust: keys.trust };
    const first = await liveController(shared);
    cleanups.push(() => first.close());
    const second = await liveController(shared);
    cleanups.push(() => second.close());

    const host = await fakeHost(await tmpDir());
    await bootInto(host, buildSystem(host, 'prev'));
    const tokenFile = join(host.root, 'enroll');
    const { token } = await createEnrollmentToken(first.handle.store, first.handle.deps.clock, { ttlMs: 600_000, maxUses: 1, tags: [] });
    await writeFile(tokenFile, token);
    const config = fakeHostAgentConfig(host, {
      controllerUrls: [first.handle.url, second.handle.url],
      trustedControllerKeys: [formatPublicKey(keys.controllerKey)],
      trustedReleaseKeys: [formatPublicKey(keys.singleKey!)],
      enrollmentTokenFile: tokenFile,
    });
    const agent: RunningAgent = await startAgent(config, { logger: silentLogger() });
    cleanups.push(() => agent.stop(100));

    // Enrolled on the first controller; the same host (same key) registered on the second.
    const enrolled = await until('the agent to enroll on the first controller', () => hostRow(first));
    await registerHost(second.handle.store, second.handle.deps.clock, { name: 'web-1', publicKey: enrolled.publicKey, tags: [], actor: 'test' });

    const one = buildSystem(host, 'one');
    const v1 = await setDesired(first, one);
    await until('v1 healthy on the first controller', () => hostRow(first)?.reportedVersion === v1 && hostRow(first)?.phase === 'healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(one);

    await first.close();

    // The agent logs in to the second controller (and tells it the version it runs, so the
    // second continues above it), then deploys what the second sets.
    await until('the agent to log in to the second controller', () => hostRow(second)?.agentVersion);
    const two = buildSystem(host, 'two');
    const v2 = await setDesired(second, two);
    expect(v2).toBeGreaterThan(v1);
    await until('v2 healthy on the second controller', () => hostRow(second)?.reportedVersion === v2 && hostRow(second)?.phase === 'healthy');
    expect(await resolveSystem(host.currentSystem)).toBe(two);
  });
});
