import type { IncomingMessage } from 'node:http';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { z } from 'zod';
import { PROTOCOL_VERSION } from '../../../shared/src/protocol.js';
import { sourceKey } from '../auth/admission.js';
import { ApiError } from './errors.js';

/** Reads the body as JSON: a syntax error is 'malformed-json', a schema mismatch a ZodError (→ 400 naming the fields). */
export async function readJson(c: Context): Promise<unknown> {
  const text = await c.req.text();
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new ApiError(400, 'malformed-json', `request body is not valid JSON: ${(error as Error).message}`);
  }
}

/**
 * Parses the body with `schema`. A wrong `protocol` gets its own code, so an agent of another
 * protocol version knows that retrying cannot help.
 */
export async function readBody<S extends z.ZodType>(c: Context, schema: S, alreadyRead?: unknown): Promise<z.output<S>> {
  const raw = alreadyRead === undefined ? await readJson(c) : alreadyRead;
  const parsed = schema.safeParse(raw);
  if (parsed.success) return parsed.data;
  if (parsed.error.issues.some((issue) => issue.path.length === 1 && issue.path[0] === 'protocol')) {
    const got = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>).protocol : undefined;
    throw new ApiError(400, 'protocol-mismatch', `controller speaks protocol ${PROTOCOL_VERSION}, request has protocol ${JSON.stringify(got)}`);
  }
  throw parsed.error;
}

export function limitBody(maxBytes: number) {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError(413, 'body-too-large', `request body exceeds ${maxBytes} bytes`);
    },
  });
}

export function bearerToken(c: Context): string | null {
  const header = c.req.header('authorization');
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1]! : '';
}

/** The caller's source address, as admission limits count it ('unknown' without a socket, e.g. app.request in tests). */
export function requestSource(c: Context): string {
  const incoming = (c.env as { incoming?: IncomingMessage } | undefined)?.incoming;
  return sourceKey(incoming?.socket?.remoteAddress);
}
