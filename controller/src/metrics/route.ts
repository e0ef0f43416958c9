import { createHash, timingSafeEqual } from 'node:crypto';
import type { Handler } from 'hono';
import { ApiError } from '../http/errors.js';
import { bearerToken } from '../http/request.js';
import type { ControllerMetrics } from './controller-metrics.js';

const digest = (text: string) => createHash('sha256').update(text).digest();

/**
 * GET /metrics. Open unless a token is configured (Prometheus' `authorization` /
 * `bearer_token_file` sends it); compared in constant time.
 */
export function metricsHandler(metrics: ControllerMetrics, token: string | null): Handler {
  const expected = token === null ? null : digest(token);
  return async (c) => {
    if (expected) {
      const given = bearerToken(c);
      if (given === null) throw new ApiError(401, 'missing-token', '/metrics needs "Authorization: Bearer <metrics token>"');
      if (!timingSafeEqual(digest(given), expected)) throw new ApiError(401, 'invalid-token', 'metrics token does not match --metrics-token-file');
    }
    return c.body(await metrics.scrape(), 200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
  };
}
