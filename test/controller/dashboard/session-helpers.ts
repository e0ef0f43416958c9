import { expect } from 'vitest';
import type { TestController } from '../helpers.js';

export const ORIGIN = 'http://localhost';

/** The value of `name` in a Set-Cookie list, or null. */
export function cookieValue(setCookies: string[], name: string): string | null {
  for (const header of setCookies) {
    const [pair] = header.split(';');
    const [key, ...rest] = pair!.split('=');
    if (key!.trim() === name) return rest.join('=');
  }
  return null;
}

export function csrfIn(html: string): string {
  const match = /name="_csrf" value="([^"]+)"/.exec(html);
  if (!match) throw new Error(`no CSRF field in page: ${html.slice(0, 300)}`);
  return match[1]!;
}

export function form(fields: Record<string, string>): URLSearchParams {
  return new URLSearchParams(fields);
}

export interface SignIn {
  response: Response;
  setCookies: string[];
}

/** Fetches the login form (for its CSRF cookie and field) and posts `token` with it. */
export async function signIn(ctl: TestController, token: string, headers: Record<string, string> = { origin: ORIGIN, 'sec-fetch-site': 'same-origin' }): Promise<SignIn> {
  const page = await ctl.app.request('/dashboard/login');
  expect(page.status).toBe(200);
  const loginCookie = cookieValue(page.headers.getSetCookie(), 'shoal_login');
  expect(loginCookie).not.toBeNull();
  const response = await ctl.app.request('/dashboard/login', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `shoal_login=${loginCookie}`, ...headers },
    body: form({ _csrf: csrfIn(await page.text()), token, next: '/dashboard' }),
  });
  return { response, setCookies: response.headers.getSetCookie() };
}

export interface Browser {
  cookie: string;
  csrf: string;
  get(path: string, headers?: Record<string, string>): Promise<Response>;
  post(path: string, fields: Record<string, string>, headers?: Record<string, string>): Promise<Response>;
}

/** A signed-in "browser": its session cookie and the CSRF token its pages carry. */
export async function signedIn(ctl: TestController, token: string = ctl.operatorToken): Promise<Browser> {
  const { response, setCookies } = await signIn(ctl, token);
  expect(response.status).toBe(303);
  const session = cookieValue(setCookies, 'shoal_session');
  expect(session).toBeTruthy();
  const cookie = `shoal_session=${session}`;
  const get = (path: string, headers: Record<string, string> = {}) => Promise.resolve(ctl.app.request(path, { headers: { cookie, ...headers } }));
  const fleet = await get('/dashboard');
  expect(fleet.status).toBe(200);
  const csrf = csrfIn(await fleet.text());
  return {
    cookie,
    csrf,
    get,
    post: (path, fields, headers = { origin: ORIGIN, 'sec-fetch-site': 'same-origin' }) =>
      Promise.resolve(
        ctl.app.request(path, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, ...headers },
          body: form(fields),
        }),
      ),
  };
}
