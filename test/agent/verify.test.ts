import { describe, expect, it } from 'vitest';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { signEnvelope } from '../../shared/src/envelope.js';
import { generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE } from '../../shared/src/protocol.js';
import { verifyManifest, type VerifyContext } from '../../agent/src/verify.js';
import { NOW, PATH_A, PATH_B, signedManifest } from './manifests.js';

const release1 = generateNamedKey('release-1');
const release2 = generateNamedKey('release-2');
const stranger = generateNamedKey('stranger');

function context(overrides: Partial<VerifyContext> = {}): VerifyContext {
  return {
    host: 'web-1',
    trustedKeys: [release1],
    highestVersion: 0,
    highestStorePath: null,
    now: NOW,
    ed25519: tweetnaclEd25519,
    ...overrides,
  };
}

function refusalOf(result: ReturnType<typeof verifyManifest>): string {
  return result.outcome === 'refused' ? result.reason : `not refused: ${result.outcome}`;
}

describe('verifyManifest', () => {
  it('accepts a manifest signed by a trusted key for this host and carries its payload', () => {
    const result = verifyManifest(signedManifest(release1, { version: 3 }), context());
    expect(result.outcome).toBe('valid');
    if (result.outcome !== 'valid') return;
    expect(result.manifest.version).toBe(3);
    expect(result.manifest.storePath).toBe(PATH_A);
    expect(result.keyId).toBe('release-1');
  });

  it('accepts a manifest signed by a rotated second key', () => {
    const result = verifyManifest(signedManifest(release2, { version: 2 }), context({ trustedKeys: [release1, release2] }));
    expect(result.outcome).toBe('valid');
    if (result.outcome === 'valid') expect(result.keyId).toBe('release-2');
  });

  it('refuses a manifest whose signature does not verify', () => {
    const envelope = signedManifest(release1);
    const sig = Buffer.from(envelope.signatures[0]!.sig, 'base64');
    sig[5]! ^= 0xff;
    envelope.signatures[0]!.sig = sig.toString('base64');
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('bad-signature');
  });

  it('refuses a manifest whose payload was altered after signing', () => {
    const envelope = signedManifest(release1);
    const tampered = Buffer.from(envelope.payload, 'base64').toString('utf8').replace('"version":1', '"version":9');
    envelope.payload = Buffer.from(tampered).toString('base64');
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('bad-signature');
  });

  it('refuses a manifest signed by an unknown key, even one named like a trusted key', () => {
    expect(refusalOf(verifyManifest(signedManifest(stranger), context()))).toBe('unknown-key');
    const impostor = { ...stranger, keyId: 'release-1' };
    expect(refusalOf(verifyManifest(signedManifest(impostor), context()))).toBe('bad-signature');
  });

  it('refuses a manifest for another host without claiming its version, which belongs to that host', () => {
    const result = verifyManifest(signedManifest(release1, { host: 'db-1', version: 4 }), context());
    expect(refusalOf(result)).toBe('wrong-host');
    if (result.outcome === 'refused') {
      expect(result.message).toContain('db-1');
      expect(result.version ?? null).toBeNull();
    }
  });

  it('refuses a replayed version that is not above the highest accepted', () => {
    const ctx = context({ highestVersion: 5, highestStorePath: PATH_A });
    expect(refusalOf(verifyManifest(signedManifest(release1, { version: 4 }), ctx))).toBe('replayed-version');
    expect(refusalOf(verifyManifest(signedManifest(release1, { version: 1, storePath: PATH_A }), ctx))).toBe('replayed-version');
  });

  it('refuses the same version naming another store path as equivocation', () => {
    const ctx = context({ highestVersion: 5, highestStorePath: PATH_A });
    expect(refusalOf(verifyManifest(signedManifest(release1, { version: 5, storePath: PATH_B }), ctx))).toBe('equivocation');
  });

  it('treats the same version with the same store path as already held, not as a refusal', () => {
    const ctx = context({ highestVersion: 5, highestStorePath: PATH_A });
    expect(verifyManifest(signedManifest(release1, { version: 5, storePath: PATH_A }), ctx)).toEqual({
      outcome: 'already-have',
      version: 5,
      storePath: PATH_A,
    });
  });

  it('refuses an expired manifest by the injected clock', () => {
    const envelope = signedManifest(release1, { expiresAt: new Date(NOW.getTime() - 1).toISOString() });
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('expired');
    expect(verifyManifest(envelope, context({ now: new Date(NOW.getTime() - 10_000) })).outcome).toBe('valid');
  });

  it('refuses a store path that is not a top-level Nix store path', () => {
    for (const storePath of ['/tmp/evil', '/nix/store/short-name', `${PATH_A}/bin/switch-to-configuration`, '/nix/store/../../etc']) {
      const result = verifyManifest(signedManifest(release1, { storePath }), context());
      expect(refusalOf(result)).toBe('invalid-store-path');
      if (result.outcome === 'refused') expect(result.storePath).toBeNull();
    }
  });

  it('refuses malformed envelopes and payloads', () => {
    expect(refusalOf(verifyManifest({ nonsense: true }, context()))).toBe('malformed');
    expect(refusalOf(verifyManifest('a string', context()))).toBe('malformed');
    const notJson = signEnvelope(MANIFEST_PAYLOAD_TYPE, new TextEncoder().encode('not json {'), [release1], tweetnaclEd25519);
    expect(refusalOf(verifyManifest(notJson, context()))).toBe('malformed');
    expect(refusalOf(verifyManifest(signedManifest(release1, { version: -1 }), context()))).toBe('malformed');
    expect(refusalOf(verifyManifest(signedManifest(release1, { action: 'reboot-now' }), context()))).toBe('malformed');
    expect(refusalOf(verifyManifest({ payloadType: MANIFEST_PAYLOAD_TYPE, payload: toBase64(new Uint8Array(3)), signatures: [] }, context()))).toBe('malformed');
  });

  it('refuses a trusted signature over another payload type', () => {
    const envelope = signedManifest(release1, {}, 'application/vnd.shoal.other+json');
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('wrong-payload-type');
  });
});
