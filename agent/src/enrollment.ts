import { readFile } from 'node:fs/promises';
import type { Logger } from '../../shared/src/logger.js';
import { describeCallError, type ControllerClient } from './client.js';
import type { StateStore } from './state.js';

/**
 * First start: present this host's public key with an operator-made enrollment token. Without
 * a token file the operator is expected to have registered the key (`shoal host register`).
 */

export type EnrollmentOutcome =
  | { ok: true; how: 'already' | 'enrolled' | 'pre-registered' }
  /** retry: the controller may come back; otherwise nothing the agent can do will help. */
  | { ok: false; retry: boolean; message: string };

export async function ensureEnrolled(deps: {
  state: StateStore;
  client: Pick<ControllerClient, 'enroll'>;
  tokenFile: string | null;
  host: string;
  logger: Logger;
}): Promise<EnrollmentOutcome> {
  if (deps.state.get().enrolled) return { ok: true, how: 'already' };
  if (!deps.tokenFile) return { ok: true, how: 'pre-registered' };
  let token: string;
  try {
    token = (await readFile(deps.tokenFile, 'utf8')).trim();
  } catch (error) {
    return { ok: false, retry: false, message: `cannot read enrollment token file ${deps.tokenFile}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}` };
  }
  if (!token) return { ok: false, retry: false, message: `enrollment token file ${deps.tokenFile} is empty` };
  const result = await deps.client.enroll(token);
  if (result.ok) {
    await deps.state.update((s) => void (s.enrolled = true));
    deps.logger.info('enrolled with the controller');
    return { ok: true, how: 'enrolled' };
  }
  const error = result.error;
  if (error.kind === 'http' && error.status === 409) {
    return {
      ok: false,
      retry: false,
      message: `host ${deps.host} is already enrolled on the controller with a different public key (${error.message}); if this host was reinstalled, remove it on the controller first, or restore its old ${'host.key'}`,
    };
  }
  if (error.kind === 'http' && error.status >= 400 && error.status < 500) {
    return { ok: false, retry: false, message: `enrollment refused: ${describeCallError(error)}` };
  }
  return { ok: false, retry: true, message: `enrollment not possible yet: ${describeCallError(error)}` };
}
