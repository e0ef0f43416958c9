import type { Child } from 'hono/jsx';
import { ago, utcTime } from './format.js';
import type { DashboardSession } from './sessions.js';

export const BASE = '/dashboard';
export const CSS_PATH = `${BASE}/assets/dashboard.css`;
export const JS_PATH = `${BASE}/assets/dashboard.js`;

export type Section = 'fleet' | 'rollouts' | 'webhooks' | 'none';

export function CsrfField(props: { session: DashboardSession }) {
  return <input type="hidden" name="_csrf" value={props.session.csrf} />;
}

export function Layout(props: { title: string; section: Section; session: DashboardSession | null; now?: number; children: Child }) {
  const { session } = props;
  const flash = session?.flash ?? null;
  if (session) session.flash = null;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="same-origin" />
        <title>{props.title} · Shoal</title>
        <link rel="stylesheet" href={CSS_PATH} />
        <script src={JS_PATH} defer></script>
      </head>
      <body data-server-now={props.now === undefined ? undefined : String(props.now)}>
        <a class="skip" href="#main">
          Skip to content
        </a>
        <header>
          <a class="brand" href={BASE}>
            Shoal
          </a>
          {session ? (
            <>
              <nav aria-label="Main">
                <a href={BASE} aria-current={props.section === 'fleet' ? 'page' : undefined}>
                  Fleet
                </a>
                <a href={`${BASE}/rollouts`} aria-current={props.section === 'rollouts' ? 'page' : undefined}>
                  Rollouts
                </a>
                <a href={`${BASE}/webhooks`} aria-current={props.section === 'webhooks' ? 'page' : undefined}>
                  Webhooks
                </a>
              </nav>
              <form method="post" action={`${BASE}/logout`}>
                <CsrfField session={session} />
                <button type="submit">Sign out {session.operator.name}</button>
              </form>
            </>
          ) : null}
        </header>
        <main id="main">
          {flash ? (
            <p class={`flash ${flash.kind}`} role={flash.kind === 'error' ? 'alert' : 'status'}>
              {flash.text}
            </p>
          ) : null}
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** Says whether the page is live; the script rewrites it, so without JS it tells the truth too. */
export function LiveState(props: { renderedAt: string }) {
  return (
    <p id="live-state" class="live-state" role="status">
      Shown as of {props.renderedAt.slice(11, 19)} UTC; reload for changes.
    </p>
  );
}

export function Badge(props: { kind: string; children: Child }) {
  return <span class={`badge s-${props.kind}`}>{props.children}</span>;
}

/**
 * "15 s ago", kept current by the browser from `datetime` (see the script), so a page that only
 * ages costs no traffic. `now` null (live updates) writes the time itself; the script rewrites it.
 */
export function RelativeTime(props: { iso: string | null; now: number | null }) {
  if (!props.iso) return <span>never</span>;
  return (
    <time datetime={props.iso} data-ago="" title={utcTime(props.iso)}>
      {props.now === null ? utcTime(props.iso) : ago(props.iso, props.now)}
    </time>
  );
}
