import { sign as nodeSign } from 'node:crypto';
import nacl from 'tweetnacl';
import { afterEach, describe, expect, it } from 'vitest';
import { nodePrivateKey, tweetnaclEd25519 } from '../../../shared/src/ed25519.js';
import { preAuthEncoding } from '../../../shared/src/envelope.js';
import { fromBase64, generateNamedKey } from '../../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE } from '../../../shared/src/protocol.js';
import { createManifestSigner, type ManifestSigner } from '../../../controller/src/manifests/signer.js';
import { SigningThread } from '../../../controller/src/manifests/signing-thread.js';

const closing: Array<{ close(): void }> = [];
afterEach(() => {
  for (const item of closing.splice(0)) item.close();
});

const payloads = (n: number) => Array.from({ length: n }, (_, i) => Buffer.from(JSON.stringify({ host: `h${i}`, version: i + 1 }), 'utf8'));

describe('signing a batch of manifests', () => {
  it('signs on the signing thread exactly what signing on the caller’s thread gives, while the caller works on', async () => {
    const key = generateNamedKey('controller-1');
    const thread = new SigningThread(nodePrivateKey(key.secretKey));
    closing.push(thread);
    await thread.started();
    const messages = payloads(200).map((p) => preAuthEncoding(MANIFEST_PAYLOAD_TYPE, p));
    let alongside = 0;
    const signatures = await thread.sign(messages, async () => void alongside++);
    expect(alongside).toBe(1);
    expect(signatures).not.toBeNull();
    const expected = messages.map((m) => new Uint8Array(nodeSign(null, m, nodePrivateKey(key.secretKey))));
    expect(signatures!.map((s) => Buffer.from(s).toString('hex'))).toEqual(expected.map((s) => Buffer.from(s).toString('hex')));
  });

  it('gives each message its own signature when the caller joins in and both threads share a large batch', async () => {
    const key = generateNamedKey('controller-1');
    const thread = new SigningThread(nodePrivateKey(key.secretKey));
    closing.push(thread);
    await thread.started();
    // Nothing to do alongside: the caller starts taking messages at once, beside the thread.
    const messages = payloads(2_000).map((p) => preAuthEncoding(MANIFEST_PAYLOAD_TYPE, p));
    const signatures = await thread.sign(messages, async () => {});
    const expected = messages.map((m) => Buffer.from(nodeSign(null, m, nodePrivateKey(key.secretKey))).toString('hex'));
    expect(signatures!.map((s) => Buffer.from(s).toString('hex'))).toEqual(expected);
  });

  it('makes envelopes an agent verifies, the same as one at a time, whether or not the thread is up yet', async () => {
    const key = generateNamedKey('controller-1');
    const signer: ManifestSigner = createManifestSigner(key);
    closing.push(signer);
    const batch = payloads(100);
    const one = batch.map((p) => signer.sign(p));
    // The first large batch starts the thread and is signed here; later ones are signed there.
    for (let round = 0; round < 3; round++) {
      let alongside = 0;
      expect(await signer.signMany(batch, async () => void alongside++)).toEqual(one);
      expect(alongside).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    for (const [i, envelope] of one.entries()) {
      const message = preAuthEncoding(envelope.payloadType, fromBase64(envelope.payload));
      expect(Buffer.from(fromBase64(envelope.payload)).equals(batch[i]!)).toBe(true);
      expect(nacl.sign.detached.verify(message, fromBase64(envelope.signatures[0]!.sig), key.publicKey)).toBe(true);
    }
  });

  it('signs on the caller’s thread once closed, and with another Ed25519 implementation', async () => {
    const key = generateNamedKey('controller-1');
    const closed = createManifestSigner(key);
    closed.close();
    const other = createManifestSigner(key, tweetnaclEd25519);
    const batch = payloads(40);
    expect(await closed.signMany(batch, async () => {})).toEqual(batch.map((p) => other.sign(p)));
    expect(await other.signMany(batch, async () => {})).toEqual(batch.map((p) => closed.sign(p)));
  });
});
