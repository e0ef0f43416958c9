import { Action, type StorePath } from '../../../shared/src/protocol.js';
import { OperatorRoutes, SetDesiredRequest } from '../../../shared/src/operator-api.js';
import type { ControllerDeps } from '../deps.js';
import { issueManifest } from '../manifests/issue.js';
import { storePathParts } from './format.js';

export type HostActionOutcome = { ok: true; done: string } | { ok: false; status: 404 | 409; message: string };

/**
 * A change to one host the dashboard offers. Each mirrors an operator API route: the session's
 * scope is checked against that route (scopeAllows), so the dashboard never grants more than the
 * API would. Every host action is confirmed first (confirm() with JavaScript, a page without).
 * Adding one (pausing a host, removing it) is one more entry here once the API has its route.
 */
export interface HostAction<T> {
  label: string;
  /** The operator API request this action is, for the scope check. */
  api: (host: string) => { method: string; path: string };
  /** The form's fields, checked as the API checks its body. */
  parse: (form: Record<string, string>) => { ok: true; value: T } | { ok: false; message: string };
  /** The question asked before doing it: what will happen, to which host. */
  question: (host: string, value: T) => string;
  /** The fields that carry `value` through the confirmation page. */
  fields: (value: T) => Record<string, string>;
  run: (deps: ControllerDeps, host: string, value: T, actor: string) => HostActionOutcome;
}

const setDesired: HostAction<{ storePath: StorePath; action: Action }> = {
  label: 'Set desired system',
  api: (host) => ({ method: 'PUT', path: OperatorRoutes.desired(host) }),
  parse: (form) => {
    const parsed = SetDesiredRequest.safeParse({ storePath: form.storePath?.trim() ?? '', action: form.action || undefined });
    if (parsed.success) return { ok: true, value: parsed.data };
    return { ok: false, message: parsed.error.issues.map((issue) => `${issue.path.join('.') || 'form'}: ${issue.message}`).join('; ') };
  },
  question: (host, value) =>
    `Set the desired system of ${host} to ${storePathParts(value.storePath)?.name ?? value.storePath} (${value.action})? The controller signs a new manifest and the agent moves to it at once.`,
  fields: (value) => ({ storePath: value.storePath, action: value.action }),
  run: (deps, host, value, actor) => {
    // The same operation as PUT /v1/hosts/:name/desired.
    const outcome = issueManifest(deps, { host, storePath: value.storePath, action: value.action, rolloutId: null }, { kind: 'desired-set', actor });
    if (outcome.ok) return { ok: true, done: `${host} now has desired manifest #${outcome.manifest.version}.` };
    return { ok: false, status: outcome.reason === 'unknown-host' ? 404 : 409, message: outcome.message };
  },
};

// Each entry has its own value type; the routes handle them through this erased view.
export const HOST_ACTIONS: Record<string, HostAction<unknown>> = {
  'set-desired': setDesired as HostAction<unknown>,
};

export const ACTION_CHOICES = Action.options;
