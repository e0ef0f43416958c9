import { readdirSync, readFileSync } from 'node:fs';

/**
 * The init of a lab host's pid namespace: binds the host's own /nix and /run over the
 * machine's, starts the command, forwards SIGTERM/SIGINT to it (an init without handlers
 * would ignore them) and reaps whatever gets orphaned inside, until the command ends.
 * Arguments: <host nix dir> <host run dir> <command…>.
 */
const INIT_SCRIPT = `
mount --bind "$1" /nix || exit 125
mount --bind "$2" /run || exit 125
shift 2
"$@" &
child=$!
trap 'kill -TERM "$child" 2>/dev/null' TERM INT
wait "$child"; status=$?
while kill -0 "$child" 2>/dev/null; do wait "$child"; status=$?; done
exit "$status"
`;

export interface NamespaceSpec {
  nixDir: string;
  runDir: string;
  /** Network namespace to join first (its name under /run/netns), or null for the machine's network. */
  netns: string | null;
}

/**
 * argv that runs `command` inside a fresh mount and pid namespace of a lab host. Killing the
 * returned process (unshare, after `ip netns exec` has exec'd into it) kills everything
 * inside: --kill-child kills the namespace's init, and the kernel then kills the rest.
 */
export function namespacedArgv(spec: NamespaceSpec, command: readonly string[]): string[] {
  const unshare = [
    'unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--mount-proc',
    '/bin/sh', '-c', INIT_SCRIPT, 'lab-init', spec.nixDir, spec.runDir, ...command,
  ];
  return spec.netns ? ['ip', 'netns', 'exec', spec.netns, ...unshare] : unshare;
}

/** Pids of the direct children of `pid` (the kernel here lacks /proc/PID/task/PID/children). */
export function childPids(pid: number): number[] {
  const children: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      // Field 4 (ppid) follows the command name, which is in parentheses and may contain spaces.
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) children.push(Number(entry));
    } catch {
      // Exited while we looked.
    }
  }
  return children;
}
