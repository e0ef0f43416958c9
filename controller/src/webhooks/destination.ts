import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Where webhooks may deliver. A webhook URL is chosen by an operator but fetched by the controller,
 * from inside the network: without this check it reaches loopback services, the cloud metadata
 * endpoint (169.254.169.254) and private ranges. Refused unless the config allows them. Host names
 * are checked after resolution, in the lookup of the very connection that sends (DNS rebinding).
 */
export interface DestinationPolicy {
  /** Everything is allowed (a lab, or receivers on the private network by design). */
  allowPrivateNetworks: boolean;
  /** CIDRs ("10.1.2.0/24", "fd00::/8", or one address) allowed although private. */
  allowedNetworks: readonly string[];
}

export const DENY_PRIVATE: DestinationPolicy = { allowPrivateNetworks: false, allowedNetworks: [] };

export type DestinationCheck = { ok: true } | { ok: false; message: string };

/** Ranges that are not "some public host": [cidr, what it is]. */
const REFUSED: ReadonlyArray<readonly [string, string]> = [
  ['0.0.0.0/8', 'this-network (0.0.0.0/8)'],
  ['10.0.0.0/8', 'private (RFC 1918)'],
  ['100.64.0.0/10', 'carrier-grade NAT (100.64.0.0/10)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local (cloud metadata lives here)'],
  ['172.16.0.0/12', 'private (RFC 1918)'],
  ['192.0.0.0/24', 'IETF protocol assignments'],
  ['192.0.2.0/24', 'documentation (TEST-NET-1)'],
  ['192.168.0.0/16', 'private (RFC 1918)'],
  ['198.18.0.0/15', 'benchmarking'],
  ['198.51.100.0/24', 'documentation (TEST-NET-2)'],
  ['203.0.113.0/24', 'documentation (TEST-NET-3)'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved (incl. broadcast)'],
  ['::/128', 'unspecified (::)'],
  ['::1/128', 'loopback (::1)'],
  ['::/96', 'IPv4-compatible IPv6'],
  ['100::/64', 'discard-only'],
  ['2001::/32', 'Teredo'],
  ['2001:db8::/32', 'documentation'],
  ['fc00::/7', 'unique local (ULA)'],
  ['fe80::/10', 'link-local'],
  ['fec0::/10', 'site-local'],
  ['ff00::/8', 'multicast'],
];

function family(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** Why a CIDR text is unusable, or null. */
export function cidrProblem(text: string): string | null {
  const [address, prefixText, extra] = text.split('/');
  if (extra !== undefined || !address || isIP(address) === 0) return `${JSON.stringify(text)} is not an address or CIDR (e.g. "10.1.0.0/16", "fd00::/8")`;
  if (prefixText === undefined) return null;
  const prefix = Number(prefixText);
  const max = isIP(address) === 6 ? 128 : 32;
  if (!/^\d+$/.test(prefixText) || prefix > max) return `${JSON.stringify(text)}: prefix must be 0–${max}`;
  return null;
}

function addCidr(list: BlockList, cidr: string): void {
  const [address, prefix] = cidr.split('/') as [string, string | undefined];
  if (prefix === undefined) list.addAddress(address, family(address));
  else list.addSubnet(address, Number(prefix), family(address));
}

/** IPv4 hidden inside IPv6 (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16), so it is judged as IPv4. */
function embeddedIPv4(address: string): string | null {
  if (isIP(address) !== 6) return null;
  const lower = address.toLowerCase();
  const dotted = /^(?:::ffff:|64:ff9b::)(\d+\.\d+\.\d+\.\d+)$/.exec(lower);
  if (dotted) return dotted[1]!;
  const words = expandIPv6(lower);
  const v4 = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) return v4(words[6]!, words[7]!);
  if (words[0] === 0x64 && words[1] === 0xff9b && words.slice(2, 6).every((w) => w === 0)) return v4(words[6]!, words[7]!);
  if (words[0] === 0x2002) return v4(words[1]!, words[2]!);
  return null;
}

function expandIPv6(address: string): number[] {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -dotted[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const middle = tail === undefined ? [] : Array<string>(8 - left.length - right.length).fill('0');
  return [...left, ...middle, ...right].map((w) => Number.parseInt(w || '0', 16));
}

/** The policy compiled once: check(address) says whether a connection to it may be made. */
export class DestinationGuard {
  private readonly refused: Array<{ list: BlockList; what: string; cidr: string }>;
  private readonly allowed = new BlockList();

  constructor(readonly policy: DestinationPolicy = DENY_PRIVATE) {
    this.refused = REFUSED.map(([cidr, what]) => {
      const list = new BlockList();
      addCidr(list, cidr);
      return { list, what, cidr };
    });
    for (const cidr of policy.allowedNetworks) addCidr(this.allowed, cidr);
  }

  check(address: string): DestinationCheck {
    if (this.policy.allowPrivateNetworks) return { ok: true };
    const inner = embeddedIPv4(address);
    if (inner !== null) {
      const judged = this.check(inner);
      return judged.ok ? judged : { ok: false, message: `${address} (IPv4 ${inner} inside IPv6): ${judged.message.replace(/^\S+ /, '')}` };
    }
    const kind = family(address);
    if (this.allowed.check(address, kind)) return { ok: true };
    const hit = this.refused.find((range) => range.list.check(address, kind));
    if (!hit) return { ok: true };
    return {
      ok: false,
      message: `${address} is ${hit.what} (${hit.cidr}); webhooks may reach it only if the controller config allows it (webhooks.allowedNetworks or webhooks.allowPrivateNetworks)`,
    };
  }

  /** The URL's host: an address literal is checked as is; a name is resolved and every address checked. */
  async checkUrl(url: string): Promise<DestinationCheck> {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    if (isIP(host) !== 0) return this.check(host);
    const addresses = await new Promise<LookupAddress[]>((resolve, reject) => dnsLookup(host, { all: true }, (error, found) => (error ? reject(error) : resolve(found))));
    for (const { address } of addresses) {
      const checked = this.check(address);
      if (!checked.ok) return { ok: false, message: `${host} resolves to ${checked.message}` };
    }
    return { ok: true };
  }

  /**
   * A `lookup` for net/http connections that refuses private answers: the connection uses exactly
   * the addresses checked here, so a name that answers differently the second time gains nothing.
   */
  readonly lookup = (hostname: string, options: { all?: boolean; family?: number }, callback: (...args: unknown[]) => void): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error);
      for (const { address } of addresses) {
        const checked = this.check(address);
        if (!checked.ok) return callback(Object.assign(new Error(`${hostname} resolves to ${checked.message}`), { code: 'EDESTINATION' }));
      }
      if (options.all) return callback(null, addresses);
      const first = addresses[0]!;
      callback(null, first.address, first.family);
    });
  };
}
