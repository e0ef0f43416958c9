import { storeUnavailable } from '../db/store-errors.js';
import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { ZodError } from 'zod';
import type { Logger } from '../../../shared/src/logger.js';
import type { ErrorBody } from '../../../shared/src/protocol.js';

/** An expected failure with its HTTP status and a stable code; rendered by the one onError below. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly issues?: string[],
  ) {
    super(message);
  }
}

export function describeZodIssues(error: ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.map(String).join('.');
    return path ? `${path}: ${issue.message}` : issue.message;
  });
}

function body(code: string, message: string, issues?: string[]): ErrorBody {
  return { error: issues ? { code, message, issues } : { code, message } };
}

export function errorHandler(logger: Logger) {
  return (error: Error, c: Context): Response => {
    if (error instanceof ApiError) {
      // The unread rest of an oversized body is still on the socket: close it rather than reuse it.
      if (error.status === 413) c.header('Connection', 'close');
      return c.json(body(error.code, error.message, error.issues), error.status);
    }
    if (error instanceof ZodError) {
      const issues = describeZodIssues(error);
      return c.json(body('invalid-request', `invalid request: ${issues.join('; ')}`, issues), 400);
    }
    const down = storeUnavailable(error);
    if (down) {
      // Nothing was written (the transaction never committed); clients retry, agents keep their outboxes.
      logger.warn({ err: down, method: c.req.method, path: c.req.path }, 'request refused: the database is unreachable');
      c.header('Retry-After', '5');
      return c.json(body('database-unavailable', `the controller cannot reach its database (${down.detail}); nothing was changed: retry once it is back`), 503);
    }
    logger.error({ err: error, method: c.req.method, path: c.req.path }, 'request failed');
    return c.json(body('internal', 'internal error; see the controller log'), 500);
  };
}
