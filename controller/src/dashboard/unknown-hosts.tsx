import type { UnknownHost } from '../../../shared/src/operator-api.js';

/**
 * Hosts this controller does not know that keep trying to connect (typically after its database
 * was lost), with the fingerprint of the key each proved it holds and how to adopt it. Nothing
 * when there are none. Adopting stays a CLI/API action: it is an admin's decision about a key.
 */
export function UnknownHosts(props: { hosts: UnknownHost[] }) {
  if (props.hosts.length === 0) return null;
  return (
    <section class="unknown-hosts" aria-labelledby="unknown-hosts-title">
      <h2 id="unknown-hosts-title">Unknown hosts trying to connect</h2>
      <p class="muted">
        Compare each fingerprint with the one the agent logs at start, then adopt the host with <code>shoal host adopt NAME --fingerprint FP</code>.
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">Host</th>
            <th scope="col">Key fingerprint</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last seen</th>
            <th scope="col">Accepted up to</th>
          </tr>
        </thead>
        <tbody>
          {props.hosts.map((host) => (
            <tr>
              <td>{host.name}</td>
              <td>
                <code>{host.fingerprint}</code>
              </td>
              <td>{host.attempts}</td>
              <td>{host.lastSeenAt}</td>
              <td>{host.highestVersion === null ? '—' : `v${host.highestVersion} (floor ${host.highestFloor ?? 0})`}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}
