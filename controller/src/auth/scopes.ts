import type { OperatorScope } from '../../../shared/src/operator-api.js';

/**
 * The one place that decides which operator scope may make which request: a route → needed-scope
 * table, read by the operator API's auth middleware and by the dashboard (sign-in, which buttons
 * a session sees, each action it posts). A route not in the table needs `admin`: a new route is
 * closed until someone decides otherwise.
 */

/** What a request needs. `publish`: upload a release (what a CI job does). */
export type Need = 'read' | 'publish' | 'deploy' | 'admin';

const GRANTS: Record<OperatorScope, ReadonlySet<Need>> = {
  read: new Set(['read']),
  deploy: new Set(['read', 'publish', 'deploy']),
  admin: new Set(['read', 'publish', 'deploy', 'admin']),
  ci: new Set(['publish']),
};

interface Rule {
  methods: readonly string[];
  path: RegExp;
  need: Need;
}

const SEGMENT = '[^/]+';
const route = (methods: string | readonly string[], pattern: string, need: Need): Rule => ({
  methods: typeof methods === 'string' ? [methods] : methods,
  path: new RegExp(`^${pattern.replaceAll(':x', SEGMENT)}/?$`),
  need,
});
const READ = ['GET', 'HEAD'] as const;

/** First match wins. Secrets are never readable: token lists carry no tokens, webhook lists no secrets. */
export const SCOPE_RULES: readonly Rule[] = [
  // Tokens and backups are administration, even to look at.
  route(READ, '/v1/(operator-tokens|enrollment-tokens)(/:x)?', 'admin'),
  route(READ, '/v1/backup', 'admin'),
  route(READ, '/v1/.*', 'read'),
  route(READ, '/dashboard(/.*)?', 'read'),
  route('POST', '/v1/releases', 'publish'),
  // A plan is a dry run: it changes nothing.
  route('POST', '/v1/rollouts/plan', 'read'),
  route('PUT', '/v1/hosts/:x/desired', 'deploy'),
  // Pausing a host holds deployments back: a deploy decision, like setting its desired state.
  route('POST', '/v1/hosts/:x/(pause|resume)', 'deploy'),
  // Reboot policy, windows and locks decide when hosts reboot: deploy decisions too.
  route('PUT', '/v1/(hosts|tags)/:x/reboot-settings', 'deploy'),
  route('POST', '/v1/rollouts', 'deploy'),
  route('POST', '/v1/rollouts/:x/:x', 'deploy'),
  // Everything else (hosts, tokens, unknown hosts, webhooks) is admin by falling through.
];

export function neededScope(method: string, path: string): Need {
  const upper = method.toUpperCase();
  for (const rule of SCOPE_RULES) if (rule.methods.includes(upper) && rule.path.test(path)) return rule.need;
  return 'admin';
}

/** Whether a token of `scope` may make this request. */
export function scopeAllows(scope: OperatorScope, method: string, path: string): boolean {
  return GRANTS[scope].has(neededScope(method, path));
}

/** The scopes that may make a request, least first: for error messages ("needs deploy or admin"). */
export function scopesAllowing(method: string, path: string): OperatorScope[] {
  const need = neededScope(method, path);
  return (['read', 'ci', 'deploy', 'admin'] as const).filter((scope) => GRANTS[scope].has(need));
}

export function insufficientScopeMessage(operator: { name: string; scope: OperatorScope }, method: string, path: string): string {
  const what = operator.scope === 'ci' ? ', which may only publish releases (POST /v1/releases)' : '';
  return `operator token "${operator.name}" has scope ${operator.scope}${what}; ${method} ${path} needs scope ${scopesAllowing(method, path).join(' or ')}`;
}
