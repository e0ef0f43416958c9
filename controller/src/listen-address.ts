/** Parses "HOST:PORT", "[v6]:PORT" or ":PORT" (all interfaces); throws with the offending text. */
export function parseListenAddress(text: string): { host: string; port: number } {
  const colon = text.lastIndexOf(':');
  if (colon < 0) throw new Error(`--listen must be HOST:PORT, got ${JSON.stringify(text)}`);
  let host = text.slice(0, colon) || '0.0.0.0';
  if (host.startsWith('[') && host.endsWith(']')) host = host.slice(1, -1);
  const portText = text.slice(colon + 1);
  const port = Number(portText);
  if (!/^\d+$/.test(portText) || port > 65535) throw new Error(`--listen has an invalid port ${JSON.stringify(portText)}`);
  return { host, port };
}
