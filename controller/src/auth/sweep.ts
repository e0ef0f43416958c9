import { runBackground } from '../background.js';
import type { ControllerDeps } from '../deps.js';

export const AUTH_SWEEP_MS = 60_000;

/**
 * Deletes expired agent sessions and challenges (each is also deleted when presented). Without
 * it, nonces asked for and never answered (a flood of them, capped per replica by admission) and
 * sessions never used again would stay. Every replica sweeps; the deletes are idempotent and one
 * index range each.
 */
export function startAuthSweep(deps: Pick<ControllerDeps, 'sessions' | 'challenges' | 'logger'>, intervalMs = AUTH_SWEEP_MS): { stop(): void } {
  const timer = setInterval(
    () =>
      runBackground(deps.logger, 'expired session sweep', async () => {
        const challenges = await deps.challenges.sweepExpired();
        const sessions = await deps.sessions.sweepExpired();
        if (challenges + sessions > 0) deps.logger.debug({ challenges, sessions }, 'expired challenges and sessions deleted');
      }),
    intervalMs,
  );
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
