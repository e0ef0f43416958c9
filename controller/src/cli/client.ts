import { ErrorBody } from '../../../shared/src/protocol.js';
import type { z } from 'zod';
import { CliError, controllerUrl, operatorToken, type CliIo, type GlobalValues } from './context.js';

/**
 * One line for a simple refusal; with several offenders, a headline and one offender per line
 * (the API puts each in `issues` and also joins them into the message).
 */
function refusal(error: { code: string; message: string; issues?: string[] | undefined }, status: number): CliError {
  const issues = error.issues ?? [];
  const joined = issues.join('; ');
  const at = issues.length > 1 ? error.message.indexOf(joined) : -1;
  if (at < 0) return new CliError(`${error.message} (${error.code}, HTTP ${status})`);
  const head = error.message.slice(0, at).replace(/[:;,]?\s*$/, '');
  const tail = error.message.slice(at + joined.length).replace(/^[;,]?\s*/, '');
  return new CliError(`${head} (${error.code}, HTTP ${status})${tail ? `; ${tail}` : ''}:`, 1, issues);
}

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

  /** A long-lived GET (server-sent events); the caller reads and cancels the body. */
  async stream(path: string, headers: Record<string, string>, signal: AbortSignal): Promise<Response> {
    let response: Response;
    try {
      response = await this.fetchImpl(`${this.baseUrl}${path}`, {
        headers: { authorization: `Bearer ${this.token}`, accept: 'text/event-stream', ...headers },
        signal,
      });
    } catch (error) {
      if (signal.aborted) throw error;
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      throw new CliError(`cannot reach the controller at ${this.baseUrl} (${cause?.code ?? cause?.message ?? (error as Error).message})`);
    }
    if (!response.ok) {
      const text = await response.text();
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        body = undefined;
      }
      const error = ErrorBody.safeParse(body);
      if (error.success) throw refusal(error.data.error, response.status);
      throw new CliError(`controller answered HTTP ${response.status} to GET ${path}: ${text.slice(0, 200)}`);
    }
    return response;
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
      if (error.success) throw refusal(error.data.error, response.status);
      throw new CliError(`controller answered HTTP ${response.status} to ${method} ${path}: ${text.slice(0, 200)}`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) throw new CliError(`unexpected answer from the controller to ${method} ${path}: ${parsed.error.issues[0]?.message}`);
    return parsed.data;
  }
}
