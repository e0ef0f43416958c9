import type { Context } from 'hono';

/**
 * The browser's own word on where a form came from. Sec-Fetch-Site and Origin are set by the
 * browser and cannot be forged by a page; either one naming another site refuses the request.
 * (The per-session CSRF token is checked as well: old browsers send neither header.)
 */
export function foreignOrigin(c: Context): string | null {
  const site = c.req.header('sec-fetch-site');
  if (site !== undefined && site !== 'same-origin') return `Sec-Fetch-Site is "${site}"`;
  const origin = c.req.header('origin');
  if (origin === undefined) return null;
  if (origin === 'null') return 'Origin is "null"';
  let originHost: string;
  try {
    originHost = new URL(origin).host;
  } catch {
    return `Origin "${origin}" is not a URL`;
  }
  // The host the browser addressed; behind a TLS proxy the scheme differs, the host does not.
  const host = c.req.header('host') ?? new URL(c.req.url).host;
  return originHost === host ? null : `Origin ${origin} is not this controller (${host})`;
}

/** Cookies are Secure when asked to be, or (auto) when the request reached us, or our proxy, over https. */
export function wantsSecureCookie(c: Context, setting: boolean | 'auto'): boolean {
  if (setting !== 'auto') return setting;
  return new URL(c.req.url).protocol === 'https:' || c.req.header('x-forwarded-proto') === 'https';
}
