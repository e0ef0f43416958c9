import { describe, expect, it } from 'vitest';
import { nodeEd25519, tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { preAuthEncoding, signEnvelope, verifyEnvelope } from '../../shared/src/envelope.js';
import { formatPublicKey, formatSecretKey, generateNamedKey, parsePublicKey, parseSecretKey } from '../../shared/src/keys.js';

const TYPE = 'application/vnd.shoal.test+json';
const payload = new TextEncoder().encode('{"hello":"fleet"}');

describe('Ed25519 implementations', () => {
  const key = generateNamedKey('release-1');
  const message = new TextEncoder().encode('a message to sign');

  it('produce byte-identical signatures', () => {
    expect(Buffer.from(nodeEd25519.sign(message, key.secretKey))).toEqual(
      Buffer.from(tweetnaclEd25519.sign(message, key.secretKey)),
    );
  });

  for (const [signer, verifier] of [
    [nodeEd25519, tweetnaclEd25519],
    [tweetnaclEd25519, nodeEd25519],
  ] as const) {
    it(`accept each other's signatures (${signer.name} signs, ${verifier.name} verifies)`, () => {
      const signature = signer.sign(message, key.secretKey);
      expect(verifier.verify(message, signature, key.publicKey)).toBe(true);
      const tampered = new Uint8Array(message);
      tampered[0] = tampered[0]! ^ 1;
      expect(verifier.verify(tampered, signature, key.publicKey)).toBe(false);
    });
  }

  it('agree on keys given as a view into a larger buffer, and on keys that are not curve points', () => {
    const signature = nodeEd25519.sign(message, key.secretKey);
    const framed = new Uint8Array(80);
    framed.set(key.publicKey, 7);
    const view = framed.subarray(7, 39);
    for (const impl of [nodeEd25519, tweetnaclEd25519]) {
      expect(impl.verify(message, signature, view)).toBe(true);
      for (const notAKey of [new Uint8Array(32), new Uint8Array(32).fill(0xff), new Uint8Array(32).fill(0x80)]) {
        expect(impl.verify(message, signature, notAKey)).toBe(false);
      }
    }
  });

  it('reject signatures of the wrong length instead of throwing', () => {
    for (const impl of [nodeEd25519, tweetnaclEd25519]) {
      expect(impl.verify(message, new Uint8Array(10), key.publicKey)).toBe(false);
    }
  });
});

describe('DSSE envelope', () => {
  const release = generateNamedKey('release-1');
  const other = generateNamedKey('release-2');

  it('signs the pre-authentication encoding defined by DSSE', () => {
    expect(Buffer.from(preAuthEncoding('t', new TextEncoder().encode('ab'))).toString()).toBe('DSSEv1 1 t 2 ab');
  });

  it('verifies under a trusted key and returns the exact payload bytes', () => {
    const envelope = signEnvelope(TYPE, payload, [release], nodeEd25519);
    const result = verifyEnvelope(envelope, TYPE, [other, release], 'release', tweetnaclEd25519);
    expect(result.valid).toBe(true);
    if (result.valid) {
      expect(Buffer.from(result.payload).toString()).toBe('{"hello":"fleet"}');
      expect(result.keyId).toBe('release-1');
    }
  });

  it('refuses a signature by an unknown key, naming the role of the keys it trusts', () => {
    const envelope = signEnvelope(TYPE, payload, [other], nodeEd25519);
    expect(verifyEnvelope(envelope, TYPE, [release], 'release', nodeEd25519)).toEqual({
      valid: false,
      reason: 'unknown-key',
      message: 'signed by release-2, none of which is a trusted release key',
    });
    expect(verifyEnvelope(envelope, TYPE, [release], 'controller', nodeEd25519)).toEqual({
      valid: false,
      reason: 'unknown-key',
      message: 'signed by release-2, none of which is a trusted controller key',
    });
  });

  it('refuses a payload changed after signing', () => {
    const envelope = signEnvelope(TYPE, payload, [release], nodeEd25519);
    const forged = { ...envelope, payload: Buffer.from('{"hello":"world"}').toString('base64') };
    expect(verifyEnvelope(forged, TYPE, [release], 'release', nodeEd25519)).toMatchObject({ valid: false, reason: 'bad-signature' });
  });

  it('refuses a key id that claims a trusted name but signs with another key', () => {
    const impostor = { ...other, keyId: 'release-1' };
    const envelope = signEnvelope(TYPE, payload, [impostor], nodeEd25519);
    expect(verifyEnvelope(envelope, TYPE, [release], 'release', nodeEd25519)).toMatchObject({ valid: false, reason: 'bad-signature' });
  });

  it('refuses an envelope whose payload type was swapped', () => {
    const envelope = signEnvelope(TYPE, payload, [release], nodeEd25519);
    expect(verifyEnvelope({ ...envelope, payloadType: 'other' }, 'other', [release], 'release', nodeEd25519)).toMatchObject({
      valid: false,
      reason: 'bad-signature',
    });
    expect(verifyEnvelope(envelope, 'other', [release], 'release', nodeEd25519)).toMatchObject({ valid: false, reason: 'wrong-payload-type' });
  });
});

describe('named keys', () => {
  it('round-trip through their text form', () => {
    const key = generateNamedKey('ci-2026');
    const secret = parseSecretKey(formatSecretKey(key));
    expect(secret.keyId).toBe('ci-2026');
    expect(Buffer.from(secret.publicKey)).toEqual(Buffer.from(key.publicKey));
    expect(parsePublicKey(formatPublicKey(key)).keyId).toBe('ci-2026');
  });

  it('name what is wrong with a malformed key', () => {
    expect(() => parsePublicKey('nokey')).toThrow(/name:base64/);
    expect(() => parsePublicKey('k:AAAA')).toThrow(/must decode to 32 bytes, got 3/);
  });
});
