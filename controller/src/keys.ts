import { parsePublicKey } from '../../shared/src/keys.js';
import type { ControllerConfig } from './config.js';
import { readSecretKeyFile } from './key-file.js';
import { createManifestSigner, type ManifestSigner } from './manifests/signer.js';
import { releaseTrust, type ReleaseTrust } from './manifests/statements.js';

/**
 * The keys `serve` starts with. Two-key mode reads exactly one secret key, the controller key; no
 * setting makes it read a release key, so a controller taken over holds nothing CI signs with.
 */
export function loadKeys(config: ControllerConfig): { signer: ManifestSigner; releaseTrust: ReleaseTrust } {
  const controllerKey = readSecretKeyFile(config.controllerKeyFile, 'controller key');
  const trusted = config.trustedReleaseKeys.map((text) => parsePublicKey(text));
  const sameAsController = trusted.find((key) => Buffer.from(key.publicKey).equals(Buffer.from(controllerKey.publicKey)));
  if (sameAsController && config.singleKeyReleaseKeyFile === null) {
    throw new Error(
      `trustedReleaseKeys lists ${sameAsController.keyId}, the public half of the controller key ${config.controllerKeyFile}: the controller could then sign release statements itself. Give CI its own release key, or configure single-key mode explicitly (singleKeyReleaseKeyFile)`,
    );
  }
  const singleKey = config.singleKeyReleaseKeyFile === null ? null : readSecretKeyFile(config.singleKeyReleaseKeyFile, 'single-key release key');
  return { signer: createManifestSigner(controllerKey), releaseTrust: releaseTrust(trusted, singleKey) };
}
