import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { HOST_KEY_FILE } from './identity.js';
import { StateStore } from './state.js';

/**
 * `shoal-agent rebootstrap`: the operator's explicit answer to a host that lost its state. The
 * agent cannot know which manifests it accepted before, so it will not guess; the operator
 * says what the highest accepted version (and floor) was, typically what the controller shows
 * for the host, and the agent continues from there. Run it while the agent is stopped.
 */

export type RebootstrapOutcome = { ok: true; summary: string } | { ok: false; message: string };

export async function rebootstrap(options: { stateDir: string; minVersion: number; minFloor: number }): Promise<RebootstrapOutcome> {
  const { stateDir, minVersion, minFloor } = options;
  if (!existsSync(stateDir)) return { ok: false, message: `state directory ${stateDir} does not exist; nothing to rebootstrap (a first start needs none)` };
  const hostKey = existsSync(join(stateDir, HOST_KEY_FILE));
  const { previous } = await StateStore.rebootstrap(stateDir, { minVersion, minFloor, enrolled: hostKey });
  const before =
    previous === null
      ? 'there was no readable state'
      : previous.stateLost
        ? 'the state was marked lost'
        : `it was at version ${previous.highestVersion}, floor ${previous.highestFloor}`;
  return {
    ok: true,
    summary:
      `rebootstrapped ${stateDir}: highest accepted version ${minVersion}, security floor ${minFloor} (${before}); ` +
      `the agent accepts manifests above version ${minVersion} again once it is started`,
  };
}
