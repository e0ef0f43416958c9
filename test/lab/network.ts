import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Resource } from './cleanup.js';
import { pidAlive, uniqueSuffix } from './pids.js';
import { run, runOk } from './run.js';

/**
 * Lab networking. Each lab gets one bridge in the machine's namespace with 10.213.<k>.1/24
 * (k unique among labs running at once), and each networked host its own network namespace
 * joined to that bridge by a veth pair; inside, the interface is always called `lab0` and has
 * 10.213.<k>.<i>/24. One bridge address (rather than a /30 per host) means the controller and
 * the cache each listen on a single address that every host can reach, and no lab service
 * ever binds 0.0.0.0.
 */
export const HOST_IFACE = 'lab0';
const SUBNET_LOCKS = '/tmp/shoal-lab-net';
const NETNS_PREFIX = 'shoal-';

function ipSync(args: string[]): void {
  try {
    execFileSync('ip', args, { stdio: 'ignore' });
  } catch {
    // Already gone.
  }
}

function subnetsInUse(): Set<number> {
  const used = new Set<number>();
  const out = execFileSync('ip', ['-o', '-4', 'addr', 'show'], { encoding: 'utf8' });
  for (const match of out.matchAll(/inet 10\.213\.(\d+)\./g)) used.add(Number(match[1]));
  return used;
}

/** Claims 10.213.<k>.0/24 by creating <k>.pid exclusively, so parallel labs never share a subnet. */
function claimSubnet(): number {
  mkdirSync(SUBNET_LOCKS, { recursive: true });
  const used = subnetsInUse();
  for (let k = 0; k < 256; k++) {
    if (used.has(k)) continue;
    try {
      writeFileSync(join(SUBNET_LOCKS, `${k}.pid`), String(process.pid), { flag: 'wx' });
      return k;
    } catch {
      continue;
    }
  }
  throw new Error(`no free lab subnet: all of 10.213.0-255.0/24 are in use or claimed in ${SUBNET_LOCKS}`);
}

/**
 * A fixed address for a lab bridge. Left to the kernel, a bridge takes the lowest MAC address
 * among its ports and changes it whenever a host with a lower one joins; hosts that had already
 * learned the old address then send to a MAC the bridge no longer answers to, and their
 * connections to the lab's services hang until the neighbour entry expires (up to about a
 * minute: a bootstrap or realise timed out that way). An address set explicitly never moves.
 * Locally administered (0x02) and unicast, so never a real NIC's.
 */
function bridgeMac(): string {
  const bytes = randomBytes(6);
  bytes[0] = 0x02;
  return [...bytes].map((b) => b.toString(16).padStart(2, '0')).join(':');
}

export interface HostNetwork extends Resource {
  readonly netns: string;
  readonly address: string;
  readonly iface: string;
  readonly gateway: string;
  /** The veth end on the bridge, in the machine's namespace. */
  readonly bridgePort: string;
}

export class LabBridge implements Resource {
  readonly label: string;
  readonly gateway: string;
  private nextHost = 2;

  private constructor(
    readonly name: string,
    readonly subnet: number,
  ) {
    this.label = `bridge ${name}`;
    this.gateway = `10.213.${subnet}.1`;
  }

  static async create(): Promise<LabBridge> {
    const subnet = claimSubnet();
    const bridge = new LabBridge(`shb${uniqueSuffix()}`, subnet);
    try {
      await runOk('ip', ['link', 'add', bridge.name, 'address', bridgeMac(), 'type', 'bridge']);
      await runOk('ip', ['addr', 'add', `${bridge.gateway}/24`, 'dev', bridge.name]);
      await runOk('ip', ['link', 'set', bridge.name, 'up']);
    } catch (error) {
      bridge.releaseSync();
      throw error;
    }
    return bridge;
  }

  /** A new network namespace for one host, joined to the bridge. */
  async attachHost(): Promise<HostNetwork> {
    if (this.nextHost > 254) throw new Error(`lab bridge ${this.name} has no addresses left`);
    const suffix = uniqueSuffix();
    const netns = `${NETNS_PREFIX}${suffix}`;
    const veth = `shv${suffix}`;
    const address = `10.213.${this.subnet}.${this.nextHost++}`;
    const gateway = this.gateway;
    const release = () => {
      // Deleting the namespace deletes lab0 and with it the veth's other end.
      ipSync(['netns', 'del', netns]);
      ipSync(['link', 'del', veth]);
    };
    const host: HostNetwork = {
      label: `netns ${netns}`,
      netns,
      address,
      iface: HOST_IFACE,
      gateway,
      bridgePort: veth,
      release: async () => release(),
      releaseSync: release,
    };
    try {
      await runOk('ip', ['netns', 'add', netns]);
      await runOk('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', HOST_IFACE, 'netns', netns]);
      await runOk('ip', ['link', 'set', veth, 'master', this.name, 'up']);
      await runOk('ip', ['-n', netns, 'addr', 'add', `${address}/24`, 'dev', HOST_IFACE]);
      await runOk('ip', ['-n', netns, 'link', 'set', HOST_IFACE, 'up']);
      await runOk('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    } catch (error) {
      release();
      throw error;
    }
    return host;
  }

  /**
   * What the bridge and its hosts' namespaces look like, for failure messages: the bridge's own
   * address and ports, and per host its addresses and the MAC address it has for the gateway.
   */
  async diagnostics(hosts: readonly HostNetwork[]): Promise<string> {
    const show = async (title: string, args: string[]) => {
      const result = await run('ip', args, { timeoutMs: 5_000 });
      return `${title}:\n${(result.stdout + result.stderr).trimEnd() || '(nothing)'}`;
    };
    const parts = [
      await show(`bridge ${this.name}`, ['-br', 'link', 'show', 'dev', this.name]),
      await show('its ports', ['-br', 'link', 'show', 'master', this.name]),
      await show('its neighbours', ['neigh', 'show', 'dev', this.name]),
    ];
    for (const host of hosts) {
      parts.push(await show(`netns ${host.netns} (${host.address}, port ${host.bridgePort}) addresses`, ['-n', host.netns, '-br', 'addr']));
      parts.push(await show(`netns ${host.netns} neighbours`, ['-n', host.netns, 'neigh']));
    }
    return parts.join('\n');
  }

  async release(): Promise<void> {
    this.releaseSync();
  }

  releaseSync(): void {
    ipSync(['link', 'del', this.name]);
    rmSync(join(SUBNET_LOCKS, `${this.subnet}.pid`), { force: true });
  }
}

function deadOwner(name: string, prefix: string): boolean {
  const match = new RegExp(`^${prefix}(\\d+)-\\d+$`).exec(name);
  return match !== null && !pidAlive(Number(match[1]));
}

/**
 * Removes namespaces, interfaces and subnet claims left by lab processes that died without
 * cleaning up. Anything whose creator is still alive (a parallel test worker) is left alone.
 */
export function sweepStaleNetworks(): string[] {
  const removed: string[] = [];
  let netnsList = '';
  try {
    netnsList = execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  } catch {
    // No ip netns support: nothing of ours can exist.
  }
  for (const line of netnsList.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    if (deadOwner(name, NETNS_PREFIX)) {
      ipSync(['netns', 'del', name]);
      removed.push(`netns ${name}`);
    }
  }
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' });
  for (const line of links.split('\n')) {
    const name = /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '';
    if (deadOwner(name, 'sh[bv]')) {
      ipSync(['link', 'del', name]);
      removed.push(`link ${name}`);
    }
  }
  let locks: string[] = [];
  try {
    locks = readdirSync(SUBNET_LOCKS);
  } catch {
    // No claims yet.
  }
  for (const file of locks) {
    const text = readFileSync(join(SUBNET_LOCKS, file), 'utf8');
    // A claim being written right now has no pid yet; leave it.
    if (text === '' || pidAlive(Number(text))) continue;
    rmSync(join(SUBNET_LOCKS, file), { force: true });
    removed.push(`subnet claim ${file}`);
  }
  return removed;
}
