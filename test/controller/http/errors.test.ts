import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { StoreUnavailable } from '../../../controller/src/db/store-errors.js';
import { errorHandler } from '../../../controller/src/http/errors.js';
import { silentLogger } from '../../../shared/src/logger.js';

function appThrowing(error: Error): Hono {
  const app = new Hono();
  app.get('/x', () => {
    throw error;
  });
  app.onError(errorHandler(silentLogger()));
  return app;
}

describe('a request while the database is unreachable', () => {
  it('is refused with 503 database-unavailable and a Retry-After, not an internal error', async () => {
    const response = await appThrowing(new StoreUnavailable('connect ECONNREFUSED /run/postgresql/.s.PGSQL.5432', { cause: new Error('ECONNREFUSED') })).request('/x');
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    const body = (await response.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('database-unavailable');
    expect(body.error.message).toContain('ECONNREFUSED');
  });

  it('recognises the driver error under the query error that wraps it', async () => {
    const cause = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    const response = await appThrowing(new Error('Failed query: select 1', { cause })).request('/x');
    expect(response.status).toBe(503);
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe('database-unavailable');
  });

  it('leaves other failures internal errors', async () => {
    const response = await appThrowing(new Error('UNIQUE constraint failed: hosts.name')).request('/x');
    expect(response.status).toBe(500);
  });
});
