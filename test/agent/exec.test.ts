import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { displayCommand, runCommand } from '../../agent/src/exec.js';
import { useTmpDirs } from './tmp-dir.js';

/** Running, as opposed to gone or a zombie waiting for a reaper that is not ours. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

describe('runCommand', () => {
  const tmpDir = useTmpDirs();

  it('returns the output of a command that succeeds', async () => {
    const result = await runCommand(['/bin/sh', '-c', 'echo one; echo two >&2'], { timeoutMs: 5_000, captureStdout: true });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.stdout).toBe('one\n');
    expect(result.outputTail).toBe('one\ntwo');
  });

  it('describes a failing command: which, exit status and the last lines it printed', async () => {
    const script = 'for i in $(seq 1 100); do echo "line $i"; done; echo "boom" >&2; exit 3';
    const result = await runCommand(['/bin/sh', '-c', script], { timeoutMs: 5_000 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.failure.command).toBe(`/bin/sh -c '${script}'`);
    expect(result.failure.exitCode).toBe(3);
    expect(result.failure.signal).toBeNull();
    expect(result.failure.timedOut).toBe(false);
    const lines = result.failure.outputTail.split('\n');
    expect(lines).toHaveLength(40);
    expect(lines.at(-1)).toBe('boom');
    expect(lines[0]).toBe('line 62');
  });

  it('bounds the tail in bytes when lines are long', async () => {
    const result = await runCommand(['/bin/sh', '-c', 'head -c 100000 /dev/zero | tr "\\0" x; exit 1'], { timeoutMs: 5_000 });
    expect(!result.ok && result.failure.outputTail.length).toBeLessThanOrEqual(8 * 1024);
  });

  it('kills a hanging command and everything it started at its deadline, and says so', async () => {
    const dir = await tmpDir();
    const pidFile = join(dir, 'bg.pid');
    // The background child ignores SIGTERM, so only the SIGKILL to the whole group ends it.
    const script = `trap "" TERM; sleep 600 & echo $! > ${pidFile}; echo started; wait`;
    const result = await runCommand(['/bin/sh', '-c', script], { timeoutMs: 500, killGraceMs: 300 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.failure.timedOut).toBe(true);
    expect(result.failure.signal).toBe('SIGKILL');
    expect(result.failure.outputTail).toBe('started');
    const backgroundPid = Number(await readFile(pidFile, 'utf8'));
    // A SIGKILLed process is gone once the kernel reaped it: wait for that rather than a fixed pause.
    await expect.poll(() => alive(backgroundPid)).toBe(false);
  });

  it('reports a program that does not exist as a failure, not an exception', async () => {
    const result = await runCommand(['/nonexistent/program', 'arg'], { timeoutMs: 1_000 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.failure.exitCode).toBeNull();
    expect(result.failure.outputTail).toContain('cannot run /nonexistent/program');
    expect(result.failure.outputTail).toContain('ENOENT');
  });

  it('does not wait forever for a background child that keeps the output open', async () => {
    // Waiting for the background child to close the output would end in the 10 s timeout (not ok, timedOut).
    const result = await runCommand(['/bin/sh', '-c', 'sleep 30 & echo done'], { timeoutMs: 10_000 });
    expect(result.ok).toBe(true);
  });

  it('quotes arguments only where a reader needs it', () => {
    expect(displayCommand(['nix-store', '--option', 'substituters', ''])).toBe("nix-store --option substituters ''");
    expect(displayCommand(['echo', "it's"])).toBe(`echo 'it'\\''s'`);
  });
});
