import { connect as netConnect, type Socket } from 'node:net';

export interface RawResponse {
  status: number;
  body: string;
}

interface Pending {
  bytes: Buffer;
  resolve(response: RawResponse): void;
  reject(error: Error): void;
}

/**
 * A minimal keep-alive HTTP/1.1 client for the load generators: raw sockets, one request in flight
 * per socket, responses framed by Content-Length. node:http's client costs more CPU per request
 * than the controller spends answering it, so on two cores a report benchmark driven by it
 * measured the generator (at 1,000 hosts the controller sat half idle). Only for the benchmark's
 * own controller on loopback: no TLS, no redirects, no chunked bodies (refused by name).
 */
export class RawHttpClient {
  private readonly idle: Socket[] = [];
  private readonly waiting: Pending[] = [];
  private open = 0;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly maxSockets: number,
  ) {}

  post(path: string, body: string, headers: Record<string, string>): Promise<RawResponse> {
    const { host } = new URL(this.url);
    const head = [`POST ${path} HTTP/1.1`, `Host: ${host}`, 'Content-Type: application/json', `Content-Length: ${Buffer.byteLength(body)}`];
    for (const [name, value] of Object.entries(headers)) head.push(`${name}: ${value}`);
    const bytes = Buffer.from(`${head.join('\r\n')}\r\n\r\n${body}`);
    return new Promise((resolve, reject) => {
      this.waiting.push({ bytes, resolve, reject });
      this.dispatch();
    });
  }

  close(): void {
    this.closed = true;
    for (const socket of this.idle.splice(0)) socket.destroy();
  }

  private dispatch(): void {
    while (this.waiting.length > 0) {
      const socket = this.idle.pop() ?? (this.open < this.maxSockets ? this.connect() : null);
      if (!socket) return;
      this.exchange(socket, this.waiting.shift()!);
    }
  }

  private connect(): Socket {
    const { hostname, port } = new URL(this.url);
    this.open += 1;
    const socket = netConnect({ host: hostname, port: Number(port), noDelay: true });
    socket.setEncoding('utf8');
    socket.once('close', () => {
      this.open -= 1;
      const at = this.idle.indexOf(socket);
      if (at >= 0) this.idle.splice(at, 1);
    });
    // An idle socket's error closes it; one in use reports through exchange().
    socket.on('error', () => undefined);
    return socket;
  }

  private exchange(socket: Socket, pending: Pending): void {
    let buffer = '';
    const done = (error: Error | null, response?: RawResponse) => {
      socket.off('data', onData);
      socket.off('close', onClose);
      if (error) {
        socket.destroy();
        pending.reject(error);
      } else {
        pending.resolve(response!);
        if (!this.closed) this.idle.push(socket);
        else socket.destroy();
      }
      this.dispatch();
    };
    const onData = (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buffer.slice(0, end);
      if (/\r\ntransfer-encoding:/i.test(head)) return done(new Error(`raw-http: a response without Content-Length (${head.split('\r\n')[0]})`));
      const length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      // Content-Length counts bytes; the buffer holds characters (bodies here are ASCII JSON).
      if (Buffer.byteLength(buffer.slice(end + 4)) < length) return;
      done(null, { status: Number(head.slice(9, 12)), body: buffer.slice(end + 4) });
    };
    const onClose = () => done(new Error('raw-http: the controller closed the connection mid-request'));
    socket.on('data', onData);
    socket.on('close', onClose);
    socket.write(pending.bytes);
  }
}
