import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

/** What the agent's controller client needs of an HTTP call; Node's global fetch fits it too (tests pass that). */
export type HttpFetch = (url: URL, init: { method: string; headers: Record<string, string>; body?: string; signal: AbortSignal }) => Promise<HttpAnswer>;

export interface HttpAnswer {
  ok: boolean;
  status: number;
  statusText: string;
  headers: { get(name: string): string | null };
  text(): Promise<string>;
}

/**
 * That call over node:http / node:https, which the websocket already loads. Node's global fetch
 * (undici) compiles a WebAssembly HTTP parser on its first request and keeps its own code and
 * connection pool resident: ~10 MB of the agent's idle RSS, for a request every few minutes
 * (bench/README.md). Failures reject like fetch's: an Error whose `cause` carries the socket's
 * `code`, or the signal's reason when aborted.
 */
export const httpFetch: HttpFetch = (url, init) =>
  new Promise<HttpAnswer>((resolve, reject) => {
    if (init.signal.aborted) {
      reject(init.signal.reason);
      return;
    }
    const send = url.protocol === 'https:' ? httpsRequest : url.protocol === 'http:' ? httpRequest : null;
    if (!send) {
      reject(new TypeError(`unsupported URL scheme ${url.protocol} in ${url.origin}`));
      return;
    }
    const headers: Record<string, string | number> = { ...init.headers };
    if (init.body !== undefined) headers['content-length'] = Buffer.byteLength(init.body);
    const req = send(url, { method: init.method, headers, signal: init.signal }, (res) => resolve(answer(res)));
    req.on('error', (error: Error & { code?: string }) =>
      reject(init.signal.aborted ? init.signal.reason : Object.assign(new Error(`request to ${url.origin} failed: ${error.message}`), { cause: error })),
    );
    req.end(init.body);
  });

function answer(res: IncomingMessage): HttpAnswer {
  const status = res.statusCode ?? 0;
  return {
    ok: status >= 200 && status < 300,
    status,
    statusText: res.statusMessage ?? '',
    headers: {
      get: (name) => {
        const value = res.headers[name.toLowerCase()];
        return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
      },
    },
    text: () =>
      new Promise<string>((resolve, reject) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
        res.on('aborted', () => reject(new Error('connection closed before the answer was complete')));
      }),
  };
}
