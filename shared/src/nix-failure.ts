import * as z from 'zod';
import type { CommandFailure } from './protocol.js';

/**
 * The common ways a deployment fails, recognised from the failing command's output and said in
 * plain words. The CLI and the dashboard both show `diagnoseFailure`'s sentence above the raw
 * output tail, so an operator at 3 a.m. reads what to do before reading Nix. Patterns are taken
 * from real Nix 2.8 output (test/shared/fixtures/nix-failures) and the messages NixOS's
 * switch-to-configuration and systemd print.
 */
export const FailureKind = z.enum(['timed-out', 'cache-unreachable', 'untrusted-signature', 'not-in-cache', 'unit-failed']);
export type FailureKind = z.infer<typeof FailureKind>;

export interface Diagnosis {
  kind: FailureKind;
  /** One sentence for a person: what went wrong and what to check. */
  summary: string;
}

// "warning: the substitute for '/nix/store/…' from 'https://cache' is not signed by any of the keys in 'trusted-public-keys'"
const UNTRUSTED = /the substitute for '([^']+)' from '([^']+)' is not signed by any of the keys|lacks a valid signature|no signature is trusted/;
// "warning: unable to download 'http://cache/nix-cache-info': Couldn't connect to server (7)"
const UNREACHABLE = /unable to download '([^']+?)\/nix-cache-info': ([^;\n]+)/;
// "don't know how to build these paths:\n  /nix/store/…" (nix-store --realise, no cache has it)
const MISSING = /don't know how to build these paths:\s*\n\s*(\/nix\/store\/\S+)/;
// NixOS: "warning: the following units failed: a.service, b.service"; systemd: "Job for a.service failed"
const UNITS_FAILED = /the following units failed: ([^\n]+)/;
const JOB_FAILED = /Job for (\S+) failed/;

/** The failing command's diagnosis, or null when the output matches nothing we know. */
export function diagnoseFailure(failure: Pick<CommandFailure, 'command' | 'timedOut' | 'outputTail'>): Diagnosis | null {
  const out = failure.outputTail;
  if (failure.timedOut) {
    return { kind: 'timed-out', summary: `timed out: ${commandName(failure.command)} did not finish in time and was stopped` };
  }
  const untrusted = UNTRUSTED.exec(out);
  if (untrusted) {
    const from = untrusted[2] ? ` from ${untrusted[2]}` : '';
    return {
      kind: 'untrusted-signature',
      summary: `untrusted signature: the cache's copy${from} is not signed by a key this host trusts (check the cache's signing key and the host's trusted-public-keys)`,
    };
  }
  const missing = MISSING.exec(out);
  const unreachable = UNREACHABLE.exec(out);
  if (unreachable) {
    return { kind: 'cache-unreachable', summary: `cache unreachable: ${unreachable[1]} (${unreachable[2]!.trim()}); is the cache up and reachable from this host?` };
  }
  if (missing) {
    return { kind: 'not-in-cache', summary: `not in any cache: no substituter has ${missing[1]}; was it pushed to the cache? (shoal release push-closures)` };
  }
  const units = UNITS_FAILED.exec(out)?.[1]?.trim() ?? JOB_FAILED.exec(out)?.[1];
  if (units) {
    const list = units.split(/,\s*/).filter(Boolean);
    const first = list[0]!;
    return {
      kind: 'unit-failed',
      summary: `${list.length === 1 ? 'unit' : 'units'} ${list.join(', ')} failed to start (journalctl -u ${first} on the host says why)`,
    };
  }
  return null;
}

/** "nix-store --realise /nix/store/… --option …" → "nix-store --realise": the words a person recognises. */
function commandName(command: string): string {
  const [first = command, second] = command.split(' ');
  const base = first.split('/').at(-1) ?? first;
  return second && !second.startsWith('/') && !second.startsWith("'") ? `${base} ${second}` : base;
}

/** The last `count` lines of an output tail, for a terminal. */
export function lastLines(text: string, count: number): string[] {
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.slice(-count).filter((line, i, all) => all.length > 1 || line.length > 0);
}
