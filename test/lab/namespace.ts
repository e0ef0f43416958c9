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
