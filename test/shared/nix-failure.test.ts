import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { diagnoseFailure, lastLines } from '../../shared/src/nix-failure.js';

// Output captured from real nix-store 2.8 runs (see the fixtures' README); the unit file is NixOS's switch-to-configuration output.
const fixture = (name: string) => readFileSync(join(import.meta.dirname, 'fixtures', 'nix-failures', `${name}.txt`), 'utf8');
const realise = 'nix-store --realise /nix/store/hncn9wfflpm9158qy5gaqypds42h3vsc-nixos-system-web-1 --add-root /var/lib/shoal-agent/gcroots/desired --indirect';
const failure = (outputTail: string, command = realise, timedOut = false) => ({ command, timedOut, outputTail });

describe('diagnoseFailure', () => {
  it('asks whether a closure no cache has was pushed', () => {
    const d = diagnoseFailure(failure(fixture('not-in-cache')));
    expect(d?.kind).toBe('not-in-cache');
    expect(d?.summary).toContain('was it pushed to the cache?');
    expect(d?.summary).toContain('/nix/store/hncn9wfflpm9158qy5gaqypds42h3vsc-nixos-system-web-1');
  });

  it('names an untrusted signature and the cache it came from', () => {
    const d = diagnoseFailure(failure(fixture('untrusted-signature')));
    expect(d?.kind).toBe('untrusted-signature');
    expect(d?.summary).toContain('file:///tmp/clid/cacheA');
    expect(d?.summary).toContain('trusted-public-keys');
  });

  it('tells an unreachable cache apart from a missing path', () => {
    const d = diagnoseFailure(failure(fixture('cache-unreachable')));
    expect(d?.kind).toBe('cache-unreachable');
    expect(d?.summary).toContain("http://127.0.0.1:1 (Couldn't connect to server (7))");
  });

  it('names the unit that failed to start', () => {
    const d = diagnoseFailure(failure(fixture('unit-failed'), '/nix/store/x-nixos-system-web-1/bin/switch-to-configuration test'));
    expect(d).toEqual({ kind: 'unit-failed', summary: 'unit nginx.service failed to start (journalctl -u nginx.service on the host says why)' });
  });

  it('says a command timed out, by its name', () => {
    const d = diagnoseFailure(failure('starting the following units: lab-app.service', '/nix/store/x-nixos-system-web-1/bin/switch-to-configuration switch', true));
    expect(d?.summary).toBe('timed out: switch-to-configuration switch did not finish in time and was stopped');
  });

  it('leaves output it does not know alone', () => {
    expect(diagnoseFailure(failure('error: something else entirely'))).toBeNull();
  });

  it('keeps the last lines of a tail', () => {
    expect(lastLines('a\nb\nc\n', 2)).toEqual(['b', 'c']);
    expect(lastLines('', 3)).toEqual([]);
  });
});
