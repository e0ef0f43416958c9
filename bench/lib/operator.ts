/** The few operator API calls the benchmarks make, over fetch with the admin token. */
export class Operator {
  constructor(
    readonly url: string,
    private readonly token: string,
  ) {}

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text.slice(0, 500)}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async enrollmentToken(maxUses: number): Promise<string> {
    const created = await this.request<{ token: string }>('POST', '/v1/enrollment-tokens', { ttlSeconds: 3600, maxUses });
    return created.token;
  }

  createRelease(name: string, hosts: Array<{ host: string; storePath: string }>): Promise<unknown> {
    return this.request('POST', '/v1/releases', { name, hosts });
  }

  startRollout(release: string, hosts?: string[]): Promise<{ id: string }> {
    return this.request('POST', '/v1/rollouts', {
      release,
      waves: ['100%'],
      ...(hosts ? { selector: { hosts } } : {}),
      failureThreshold: { percent: 100 },
    });
  }

  setDesired(host: string, storePath: string): Promise<{ version: number }> {
    return this.request('PUT', `/v1/hosts/${host}/desired`, { storePath });
  }
}

/** A syntactically valid store path that exists nowhere; simulated agents never realise it. */
export function fakeStorePath(label: string): string {
  const alphabet = '0123456789abcdfghijklmnpqrsvwxyz';
  let hash = '';
  let seed = [...label].reduce((acc, ch) => (acc * 31 + ch.charCodeAt(0)) >>> 0, 7);
  for (let i = 0; i < 32; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    hash += alphabet[seed % 32];
  }
  return `/nix/store/${hash}-nixos-system-${label}`;
}
