import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { fromBase64, keyFingerprint } from '../../../shared/src/keys.js';
import { challengeMessage, type AgentWatermark } from '../../../shared/src/protocol.js';
import type { ControllerDeps } from '../deps.js';
import { recordUnknownHost } from './unknown.js';
import { noteWatermark, type WatermarkOutcome } from './watermark.js';

/**
 * What follows a host's login, the same for the websocket and the HTTP session: a known host's
 * watermark is taken into account; an unknown host's login is recorded for adoption.
 */

export interface LoginFacts {
  publicKey?: string | undefined;
  watermark?: AgentWatermark | undefined;
}

/** Call after a known host proved itself, before anything is sent to it. */
export async function afterLogin(deps: ControllerDeps, host: string, facts: LoginFacts): Promise<WatermarkOutcome> {
  return noteWatermark(deps, host, facts.watermark);
}

/**
 * A login under a name this controller does not know. When the agent presented its key and signed
 * this controller's nonce with it, the attempt is recorded (hosts/unknown.ts) and the answer says
 * how to adopt it. Returns the message for the refusal (the code stays `unknown-host`).
 */
export async function unknownHostLogin(
  deps: ControllerDeps,
  host: string,
  nonce: string,
  signatureBase64: string,
  audience: string | null,
  facts: LoginFacts,
): Promise<string> {
  const base = `no host named ${JSON.stringify(host)}`;
  if (facts.publicKey === undefined || audience === null) return base;
  const publicKey = fromBase64(facts.publicKey);
  if (!nodeEd25519.verify(challengeMessage(host, nonce, audience), fromBase64(signatureBase64), publicKey)) {
    return `${base}; the login was not recorded: its signature does not verify under the key it presented`;
  }
  const fingerprint = keyFingerprint(publicKey);
  const outcome = await recordUnknownHost(deps.store, deps.clock, { name: host, publicKey: facts.publicKey, watermark: facts.watermark });
  if (outcome === 'full') {
    deps.logger.warn({ host, fingerprint }, 'unknown host tried to log in; not recorded, the list of unknown hosts is full');
    return `${base}; the login was not recorded (too many unknown hosts); an operator can register this host's key (${fingerprint})`;
  }
  deps.logger.warn({ host, fingerprint, watermark: facts.watermark ?? null }, 'unknown host trying to connect');
  return `${base}; this login (key ${fingerprint}) was recorded: an operator can adopt it with \`shoal host adopt ${host}\``;
}
