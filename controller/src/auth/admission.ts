import { isIPv6 } from 'node:net';

/**
 * Bounds on what unauthenticated clients may make the controller hold (pending challenges, sockets
 * that have not proved a host yet): one total and one per source address, so one client cannot use
 * up the room every agent needs. Agents hold at most one of each for a few milliseconds; an idle
 * attacker holds them until a deadline. Counts, not rates: a storm of 10,000 agents reconnecting at
 * once is only refused when more than the cap are mid-handshake at the same instant.
 */
export interface AdmissionLimits {
  total: number;
  perAddress: number;
}

export type Admission = { ok: true; release: () => void } | { ok: false; scope: 'total' | 'address'; limit: number };

/**
 * The key an address is counted under: IPv4 as is (IPv4-mapped IPv6 folded to IPv4), IPv6 by its
 * /64, since one client is routinely given a whole /64 and could otherwise rotate through it.
 */
export function sourceKey(address: string | undefined | null): string {
  if (!address) return 'unknown';
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return mapped[1]!;
  if (!isIPv6(address)) return address;
  const [head = '', tail = ''] = address.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => Number.parseInt(g || '0', 16).toString(16)).join(':')}::/64`;
}

/** Counted slots, each released exactly once by whoever acquired it. */
export class AdmissionCounter {
  private total = 0;
  private readonly byAddress = new Map<string, number>();

  constructor(readonly limits: AdmissionLimits) {}

  acquire(address: string): Admission {
    const held = this.byAddress.get(address) ?? 0;
    if (held >= this.limits.perAddress) return { ok: false, scope: 'address', limit: this.limits.perAddress };
    if (this.total >= this.limits.total) return { ok: false, scope: 'total', limit: this.limits.total };
    this.total += 1;
    this.byAddress.set(address, held + 1);
    let released = false;
    return {
      ok: true,
      release: () => {
        if (released) return;
        released = true;
        this.total -= 1;
        const left = (this.byAddress.get(address) ?? 1) - 1;
        if (left === 0) this.byAddress.delete(address);
        else this.byAddress.set(address, left);
      },
    };
  }

  get size(): number {
    return this.total;
  }

  heldBy(address: string): number {
    return this.byAddress.get(address) ?? 0;
  }
}

/** Defaults sized for a fleet of 10,000 reconnecting at once from distinct addresses. */
export const DEFAULT_ADMISSION = {
  pendingChallenges: { total: 10_000, perAddress: 256 },
  unauthenticatedSockets: { total: 10_000, perAddress: 256 },
} as const satisfies Record<string, AdmissionLimits>;
