import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Received {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
  /** What the receiver answered. */
  status: number;
}

/** A webhook receiver on 127.0.0.1 that records every request and answers what `respond` says (200 by default). */
export class Receiver {
  readonly requests: Received[] = [];
  respond: (request: { headers: IncomingHttpHeaders; body: string; index: number }) => number = () => 200;
  private readonly server: Server;

  private constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = this.respond({ headers: req.headers, body, index: this.requests.length });
        this.requests.push({ path: req.url ?? '', headers: req.headers, body, status });
        res.writeHead(status, { 'content-type': 'text/plain' }).end(status === 200 ? 'ok' : 'receiver is having a bad day');
      });
    });
  }

  static async start(port = 0): Promise<Receiver> {
    const receiver = new Receiver();
    await new Promise<void>((resolve) => receiver.server.listen(port, '127.0.0.1', resolve));
    return receiver;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  /** The requests answered 2xx, in arrival order. */
  get accepted(): Received[] {
    return this.requests.filter((r) => r.status >= 200 && r.status < 300);
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
