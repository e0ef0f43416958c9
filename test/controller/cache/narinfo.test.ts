import { describe, expect, it } from 'vitest';
import { nodeEd25519 } from '../../../shared/src/ed25519.js';
import { formatPublicKey, generateNamedKey, parsePublicKey, toBase64 } from '../../../shared/src/keys.js';
import { narinfoFingerprint, normaliseNarHash, parseNarinfo } from '../../../controller/src/cache/narinfo.js';
import { verifyNarinfo } from '../../../controller/src/cache/signatures.js';

const PATH = '/nix/store/0c8kkkf4sdhcc0ld3ma3bd2jvm3dv8nd-openssl-3.3.1';
const DEP = '/nix/store/1a2b3c4d5f6g7h8i9j0k1l2m3n4p5q6r-glibc-2.39-52';
const HASH = 'sha256:1b5ms0jp3mdvm2mykpnhd8sdzl31ia7w1sx3lxsvjb6qzqdwfw9r';

function narinfoText(overrides: Record<string, string> = {}, sigs: string[] = []): string {
  const fields: Record<string, string> = {
    StorePath: PATH,
    URL: 'nar/abc.nar.zst',
    Compression: 'zstd',
    FileHash: HASH,
    FileSize: '1234',
    NarHash: HASH,
    NarSize: '4096',
    References: `${DEP.slice(11)} ${PATH.slice(11)}`,
    ...overrides,
  };
  return [...Object.entries(fields).map(([k, v]) => `${k}: ${v}`), ...sigs.map((s) => `Sig: ${s}`)].join('\n') + '\n';
}

function signed(text: string, key = generateNamedKey('cache-1')): { text: string; key: ReturnType<typeof generateNamedKey> } {
  const parsed = parseNarinfo(text, PATH);
  if (!parsed.ok) throw new Error(parsed.problem);
  const sig = nodeEd25519.sign(Buffer.from(narinfoFingerprint(parsed.narinfo)), key.secretKey);
  return { text: `${text}Sig: ${key.keyId}:${toBase64(sig)}\n`, key };
}

describe('narinfo', () => {
  it('reads store path, references as full paths, sizes and signatures', () => {
    const parsed = parseNarinfo(narinfoText({}, ['cache-1:AAAA']), PATH);
    expect(parsed).toEqual({
      ok: true,
      narinfo: { storePath: PATH, references: [DEP, PATH], narHash: HASH, narSize: 4096, fileSize: 1234, sigs: ['cache-1:AAAA'] },
    });
  });

  it('builds the fingerprint Nix signs: version 1, path, hash, size, sorted full references', () => {
    const parsed = parseNarinfo(narinfoText(), PATH);
    expect(parsed.ok && narinfoFingerprint(parsed.narinfo)).toBe(`1;${PATH};${HASH};4096;${PATH},${DEP}`);
  });

  it('refuses a narinfo that describes another path than the one asked for', () => {
    expect(parseNarinfo(narinfoText(), DEP)).toEqual({ ok: false, problem: expect.stringContaining(`expected ${DEP}`) });
  });

  it('refuses missing sizes, odd hashes and references that are not store path names', () => {
    expect(parseNarinfo(narinfoText({ NarSize: 'lots' }), PATH).ok).toBe(false);
    expect(parseNarinfo(narinfoText({ NarHash: 'md5:abc' }), PATH).ok).toBe(false);
    expect(parseNarinfo(narinfoText({ References: '../etc/passwd' }), PATH).ok).toBe(false);
  });

  it('turns hex and SRI NAR hashes into the base-32 form of the fingerprint', () => {
    const bytes = Buffer.alloc(32, 7);
    const base32 = normaliseNarHash(`sha256:${bytes.toString('hex')}`);
    expect(base32).toMatch(/^sha256:[0-9a-z]{52}$/);
    expect(normaliseNarHash(`sha256-${bytes.toString('base64')}`)).toBe(base32);
  });
});

describe('narinfo signatures', () => {
  it('trusts a narinfo signed by a configured key', () => {
    const { text, key } = signed(narinfoText());
    const parsed = parseNarinfo(text, PATH);
    expect(parsed.ok && verifyNarinfo(parsed.narinfo, [parsePublicKey(formatPublicKey(key))], nodeEd25519)).toEqual({ trusted: true, keyId: 'cache-1' });
  });

  it('refuses a forged signature under a trusted key name', () => {
    const trusted = generateNamedKey('cache-1');
    const { text } = signed(narinfoText(), generateNamedKey('cache-1'));
    const parsed = parseNarinfo(text, PATH);
    expect(parsed.ok && verifyNarinfo(parsed.narinfo, [trusted], nodeEd25519)).toEqual({ trusted: false, reason: 'bad-signature', keyIds: ['cache-1'] });
  });

  it('refuses a narinfo altered after signing (a larger NarSize, another reference)', () => {
    const { text, key } = signed(narinfoText());
    for (const altered of [text.replace('NarSize: 4096', 'NarSize: 4097'), text.replace(`References: ${DEP.slice(11)} `, 'References: ')]) {
      const parsed = parseNarinfo(altered, PATH);
      expect(parsed.ok && verifyNarinfo(parsed.narinfo, [key], nodeEd25519)).toMatchObject({ trusted: false, reason: 'bad-signature' });
    }
  });

  it('names an unsigned narinfo and one signed only by other keys', () => {
    const unsigned = parseNarinfo(narinfoText(), PATH);
    expect(unsigned.ok && verifyNarinfo(unsigned.narinfo, [generateNamedKey('cache-1')], nodeEd25519)).toEqual({ trusted: false, reason: 'unsigned', keyIds: [] });
    const { text } = signed(narinfoText(), generateNamedKey('someone-else'));
    const other = parseNarinfo(text, PATH);
    expect(other.ok && verifyNarinfo(other.narinfo, [generateNamedKey('cache-1')], nodeEd25519)).toEqual({ trusted: false, reason: 'untrusted-key', keyIds: ['someone-else'] });
  });
});
