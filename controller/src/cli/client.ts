import { ErrorBody } from '../../../shared/src/protocol.js';
import type { z } from 'zod';
import { CliError, controllerUrl, operatorToken, type CliIo, type GlobalValues } from './context.js';

/** The operator API over HTTP; every failure becomes a CliError with one readable line. */
export class OperatorClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly fetchImpl: typeof fetch,
  ) {}

  static from(values: GlobalValues, io: CliIo): OperatorClient {
    return new OperatorClient(controllerUrl(values, io), operatorToken(values, io), io.fetch);
  }

  async call<S extends z.ZodType>(method: string, path: string, schema: S, body?: unknown): Promise<z.output<S>> {
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(30_000),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const reason = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new CliError(`cannot reach the controller at ${this.baseUrl} (${reason})`);
    }
    const text = await response.text();
    let json: unknown = undefined;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: reported below with the status.
    }
    if (!response.ok) {
      const error = ErrorBody.safeParse(json);
      if (error.success) throw new CliError(`${error.data.error.message} (${error.data.error.code}, HTTP ${response.status})`);
      throw new CliError(`controller answered HTTP ${response.status} to ${method} ${path}: ${text.slice(0, 200)}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new CliError(`unexpected answer from the controller to ${method} ${path}: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }
}
