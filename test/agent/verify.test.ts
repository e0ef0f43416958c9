import { describe, expect, it } from 'vitest';
import { tweetnaclEd25519 } from '../../shared/src/ed25519.js';
import { signEnvelope } from '../../shared/src/envelope.js';
import { generateNamedKey, toBase64 } from '../../shared/src/keys.js';
import { MANIFEST_PAYLOAD_TYPE, MAX_VERSION_STEP, RELEASE_STATEMENT_PAYLOAD_TYPE } from '../../shared/src/protocol.js';
import { verifyManifest, type VerifyContext } from '../../agent/src/verify.js';
import { CONTROLLER_KEY, manifestPayload, NOW, PATH_A, PATH_B, RELEASE_KEY, releaseStatement, signedManifest } from './manifests.js';

const controller2 = generateNamedKey('controller-2');
const release2 = generateNamedKey('release-2');
const stranger = generateNamedKey('stranger');

function context(overrides: Partial<VerifyContext> = {}): VerifyContext {
  return {
    host: 'web-1',
    trustedControllerKeys: [CONTROLLER_KEY],
    trustedReleaseKeys: [RELEASE_KEY],
    highestVersion: 0,
    highestStorePath: null,
    highestFloor: 0,
    stateLost: false,
    maxClockSkewMs: 300_000,
    maxManifestLifetimeMs: 604_800_000,
    now: NOW,
    ed25519: tweetnaclEd25519,
    ...overrides,
  };
}

function refusalOf(result: ReturnType<typeof verifyManifest>): string {
  return result.outcome === 'refused' ? result.reason : `not refused: ${result.outcome}`;
}

function messageOf(result: ReturnType<typeof verifyManifest>): string {
  return result.outcome === 'refused' ? result.message : `not refused: ${result.outcome}`;
}

const iso = (offsetMs: number) => new Date(NOW.getTime() + offsetMs).toISOString();

describe('verifyManifest: the assignment (controller key)', () => {
  it('accepts an assignment by a trusted controller key carrying a statement by a trusted release key, and returns both', () => {
    const result = verifyManifest(signedManifest(CONTROLLER_KEY, { version: 3 }, { floor: 2 }), context({ highestFloor: 2 }));
    expect(result.outcome).toBe('valid');
    if (result.outcome !== 'valid') return;
    expect(result.manifest.version).toBe(3);
    expect(result.manifest.storePath).toBe(PATH_A);
    expect(result.keyId).toBe('controller-1');
    expect(result.statement).toMatchObject({ host: 'web-1', storePath: PATH_A, release: 'release-1', floor: 2 });
    expect(result.statementKeyId).toBe('release-1');
  });

  it('accepts either of two trusted controller keys and either of two trusted release keys (rotation)', () => {
    const ctx = context({ trustedControllerKeys: [CONTROLLER_KEY, controller2], trustedReleaseKeys: [RELEASE_KEY, release2] });
    for (const controllerKey of [CONTROLLER_KEY, controller2]) {
      for (const releaseKey of [RELEASE_KEY, release2]) {
        const result = verifyManifest(signedManifest(controllerKey, { version: 2 }, { releaseKey }), ctx);
        expect(result.outcome).toBe('valid');
        if (result.outcome !== 'valid') continue;
        expect(result.keyId).toBe(controllerKey.keyId);
        expect(result.statementKeyId).toBe(releaseKey.keyId);
      }
    }
  });

  it('refuses an assignment whose signature does not verify', () => {
    const envelope = signedManifest();
    const sig = Buffer.from(envelope.signatures[0]!.sig, 'base64');
    sig[5]! ^= 0xff;
    envelope.signatures[0]!.sig = sig.toString('base64');
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('bad-signature');
  });

  it('refuses an assignment whose payload was altered after signing', () => {
    const envelope = signedManifest();
    const tampered = Buffer.from(envelope.payload, 'base64').toString('utf8').replace('"version":1', '"version":9');
    envelope.payload = Buffer.from(tampered).toString('base64');
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('bad-signature');
  });

  it('refuses an assignment signed by an unknown key, even one named like a trusted key', () => {
    const unknown = verifyManifest(signedManifest(stranger), context());
    expect(refusalOf(unknown)).toBe('unknown-key');
    expect(messageOf(unknown)).toBe('assignment signed by stranger, none of which is a trusted controller key');
    const impostor = { ...stranger, keyId: 'controller-1' };
    expect(refusalOf(verifyManifest(signedManifest(impostor), context()))).toBe('bad-signature');
  });

  it('refuses an assignment signed by a release key: CI alone cannot move a host', () => {
    expect(refusalOf(verifyManifest(signedManifest(RELEASE_KEY), context()))).toBe('unknown-key');
  });

  it('refuses a manifest for another host without claiming its version, which belongs to that host', () => {
    const result = verifyManifest(signedManifest(CONTROLLER_KEY, { host: 'db-1', version: 4 }), context());
    expect(refusalOf(result)).toBe('wrong-host');
    if (result.outcome === 'refused') {
      expect(result.message).toContain('db-1');
      expect(result.version ?? null).toBeNull();
    }
  });

  it('refuses a replayed version that is not above the highest accepted', () => {
    const ctx = context({ highestVersion: 5, highestStorePath: PATH_A });
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { version: 4 }), ctx))).toBe('replayed-version');
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { version: 1, storePath: PATH_A }), ctx))).toBe('replayed-version');
  });

  it('refuses the same version naming another store path as equivocation', () => {
    const ctx = context({ highestVersion: 5, highestStorePath: PATH_A });
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { version: 5, storePath: PATH_B }), ctx))).toBe('equivocation');
  });

  it('treats the same version with the same store path as already held, not as a refusal', () => {
    const ctx = context({ highestVersion: 5, highestStorePath: PATH_A });
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { version: 5, storePath: PATH_A }), ctx)).toEqual({
      outcome: 'already-have',
      version: 5,
      storePath: PATH_A,
    });
  });

  it('refuses a version so far above the last that it would leave no room (2^53 - 1), and allows the largest step', () => {
    const wedge = verifyManifest(signedManifest(CONTROLLER_KEY, { version: Number.MAX_SAFE_INTEGER }), context({ highestVersion: 7, highestStorePath: PATH_B }));
    expect(refusalOf(wedge)).toBe('version-jump');
    expect(messageOf(wedge)).toContain(`at most ${MAX_VERSION_STEP}`);
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { version: MAX_VERSION_STEP + 1 }), context()))).toBe('version-jump');
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { version: MAX_VERSION_STEP }), context()).outcome).toBe('valid');
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { version: 7 + MAX_VERSION_STEP }), context({ highestVersion: 7, highestStorePath: PATH_B })).outcome).toBe('valid');
  });

  it('refuses an expired manifest by the injected clock', () => {
    const envelope = signedManifest(CONTROLLER_KEY, { expiresAt: iso(-1) });
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('expired');
    expect(verifyManifest(envelope, context({ now: new Date(NOW.getTime() - 10_000) })).outcome).toBe('valid');
  });

  it('refuses a manifest issued in the future beyond the clock skew, and accepts one within it', () => {
    const beyond = verifyManifest(signedManifest(CONTROLLER_KEY, { issuedAt: iso(300_001), expiresAt: iso(3_600_000) }), context());
    expect(refusalOf(beyond)).toBe('issued-in-future');
    expect(messageOf(beyond)).toContain('allowed clock skew of 300 s');
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { issuedAt: iso(300_000), expiresAt: iso(3_600_000) }), context()).outcome).toBe('valid');
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { issuedAt: iso(60_000) }), context({ maxClockSkewMs: 0 })).outcome).toBe('refused');
  });

  it('refuses a manifest whose lifetime exceeds the maximum, and accepts one exactly at it', () => {
    const week = 604_800_000;
    const tooLong = verifyManifest(signedManifest(CONTROLLER_KEY, { issuedAt: iso(-60_000), expiresAt: iso(week - 60_000 + 1) }), context());
    expect(refusalOf(tooLong)).toBe('lifetime-too-long');
    expect(messageOf(tooLong)).toContain('longer than the allowed 168 h');
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { issuedAt: iso(-60_000), expiresAt: iso(week - 60_000) }), context()).outcome).toBe('valid');
    const year = signedManifest(CONTROLLER_KEY, { issuedAt: iso(-60_000), expiresAt: iso(365 * 86_400_000) });
    expect(refusalOf(verifyManifest(year, context()))).toBe('lifetime-too-long');
  });

  it('refuses a store path that is not a top-level Nix store path', () => {
    for (const storePath of ['/tmp/evil', '/nix/store/short-name', `${PATH_A}/bin/switch-to-configuration`, '/nix/store/../../etc']) {
      const result = verifyManifest(signedManifest(CONTROLLER_KEY, { storePath }), context());
      expect(refusalOf(result)).toBe('invalid-store-path');
      if (result.outcome === 'refused') expect(result.storePath).toBeNull();
    }
  });

  it('refuses malformed envelopes and payloads', () => {
    expect(refusalOf(verifyManifest({ nonsense: true }, context()))).toBe('malformed');
    expect(refusalOf(verifyManifest('a string', context()))).toBe('malformed');
    const notJson = signEnvelope(MANIFEST_PAYLOAD_TYPE, new TextEncoder().encode('not json {'), [CONTROLLER_KEY], tweetnaclEd25519);
    expect(refusalOf(verifyManifest(notJson, context()))).toBe('malformed');
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { version: -1 }), context()))).toBe('malformed');
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { action: 'reboot-now' }), context()))).toBe('malformed');
    expect(refusalOf(verifyManifest({ payloadType: MANIFEST_PAYLOAD_TYPE, payload: toBase64(new Uint8Array(3)), signatures: [] }, context()))).toBe('malformed');
  });

  it('refuses a trusted signature over another payload type', () => {
    const envelope = signedManifest(CONTROLLER_KEY, {}, { payloadType: 'application/vnd.shoal.other+json' });
    expect(refusalOf(verifyManifest(envelope, context()))).toBe('wrong-payload-type');
  });

  it('refuses a release statement passed off as an assignment: payload types are domain-separated', () => {
    // Even with the statement's signer trusted for assignments too, its signature is over another payload type.
    const statement = releaseStatement({ host: 'web-1', storePath: PATH_A });
    const both = context({ trustedControllerKeys: [CONTROLLER_KEY, RELEASE_KEY] });
    expect(refusalOf(verifyManifest(statement, both))).toBe('wrong-payload-type');
    const relabelled = { ...statement, payloadType: MANIFEST_PAYLOAD_TYPE };
    expect(refusalOf(verifyManifest(relabelled, both))).toBe('bad-signature');
  });

  it('refuses every manifest with state-lost while the state is lost, naming the rebootstrap command', () => {
    const result = verifyManifest(signedManifest(CONTROLLER_KEY, { version: 9 }), context({ stateLost: true }));
    expect(refusalOf(result)).toBe('state-lost');
    expect(messageOf(result)).toContain('shoal-agent rebootstrap --config FILE --min-version N');
    // The verified claim is reported, so the operator sees which version the controller is at.
    expect(result.outcome === 'refused' && result.version).toBe(9);
  });
});

describe('verifyManifest: the release statement (CI key)', () => {
  it('refuses an assignment without a release statement', () => {
    const result = verifyManifest(signedManifest(CONTROLLER_KEY, { statement: null }), context());
    expect(refusalOf(result)).toBe('no-release-statement');
    if (result.outcome === 'refused') expect(result.version).toBe(1);
  });

  it('refuses a statement signed by a key that is not a trusted release key, the controller\'s own included', () => {
    const byStranger = verifyManifest(signedManifest(CONTROLLER_KEY, {}, { releaseKey: stranger }), context());
    expect(refusalOf(byStranger)).toBe('statement-unknown-key');
    expect(messageOf(byStranger)).toContain('stranger');
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, {}, { releaseKey: CONTROLLER_KEY }), context()))).toBe('statement-unknown-key');
  });

  it('refuses a statement whose signature does not verify', () => {
    const statement = releaseStatement();
    statement.payload = Buffer.from(Buffer.from(statement.payload, 'base64').toString('utf8').replace('"floor":0', '"floor":1')).toString('base64');
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { statement }), context()))).toBe('statement-bad-signature');
  });

  it("refuses another host's statement for the same store path", () => {
    const statement = releaseStatement({ host: 'db-1', storePath: PATH_A });
    const result = verifyManifest(signedManifest(CONTROLLER_KEY, { statement }), context());
    expect(refusalOf(result)).toBe('statement-wrong-host');
    expect(messageOf(result)).toContain('"db-1"');
  });

  it('refuses a statement for another store path than the assignment names', () => {
    const statement = releaseStatement({ host: 'web-1', storePath: PATH_B });
    const result = verifyManifest(signedManifest(CONTROLLER_KEY, { storePath: PATH_A, statement }), context());
    expect(refusalOf(result)).toBe('statement-mismatch');
    expect(result.outcome === 'refused' && result.storePath).toBe(PATH_A);
  });

  it('refuses a statement that is not an envelope, or whose payload is not a statement', () => {
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { statement: { payloadType: 'x' } }), context()))).toBe('malformed');
    const notAStatement = signEnvelope(RELEASE_STATEMENT_PAYLOAD_TYPE, new TextEncoder().encode('{"host":"web-1"}'), [RELEASE_KEY], tweetnaclEd25519);
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { statement: notAStatement }), context()))).toBe('statement-malformed');
  });

  it('refuses an assignment passed off as a statement: payload types are domain-separated', () => {
    const assignment = signEnvelope(MANIFEST_PAYLOAD_TYPE, new TextEncoder().encode(JSON.stringify(manifestPayload())), [RELEASE_KEY], tweetnaclEd25519);
    expect(refusalOf(verifyManifest(signedManifest(CONTROLLER_KEY, { statement: assignment }), context()))).toBe('statement-malformed');
  });

  it('refuses a statement below the highest floor accepted, and accepts one at or above it', () => {
    const below = verifyManifest(signedManifest(CONTROLLER_KEY, { version: 2 }, { floor: 2 }), context({ highestFloor: 3 }));
    expect(refusalOf(below)).toBe('below-floor');
    expect(messageOf(below)).toBe('release "release-1" has security floor 2, below the floor 3 this host already accepted');
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { version: 2 }, { floor: 3 }), context({ highestFloor: 3 })).outcome).toBe('valid');
    expect(verifyManifest(signedManifest(CONTROLLER_KEY, { version: 2 }, { floor: 4 }), context({ highestFloor: 3 })).outcome).toBe('valid');
  });
});
