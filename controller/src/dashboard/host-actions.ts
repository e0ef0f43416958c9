import { Action, type StorePath } from '../../../shared/src/protocol.js';
import { OperatorRoutes, SetDesiredRequest, type HostStatus } from '../../../shared/src/operator-api.js';
import type { ControllerDeps } from '../deps.js';
import { removeHost } from '../hosts/lifecycle.js';
import { setHostPaused } from '../hosts/pause.js';
import { issueManifest } from '../manifests/issue.js';
import { storePathParts } from './format.js';
import { BASE } from './layout.js';

/** `goTo`: where the browser goes afterwards when not the host's page (a removed host has none). */
export type HostActionOutcome = { ok: true; done: string; goTo?: string } | { ok: false; status: 404 | 409; message: string };

/**
 * A change to one host the dashboard offers. Each mirrors an operator API route: the session's
 * scope is checked against that route (scopeAllows), so the dashboard never grants more than the
 * API would. Every host action is confirmed first (confirm() with JavaScript, a page without).
 * Adding one is one more entry here once the API has its route.
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
  run: (deps: ControllerDeps, host: string, value: T, actor: string) => HostActionOutcome | Promise<HostActionOutcome>;
  /** Whether the host page offers it for this host now (resume only for a paused host, …). */
  offered?: (host: HostStatus) => boolean;
}

const setDesired: HostAction<{ storePath: StorePath; action: Action; force: boolean }> = {
  label: 'Set desired system',
  api: (host) => ({ method: 'PUT', path: OperatorRoutes.desired(host) }),
  parse: (form) => {
    const parsed = SetDesiredRequest.safeParse({ storePath: form.storePath?.trim() ?? '', action: form.action || undefined, force: form.force === 'yes' });
    if (parsed.success) return { ok: true, value: parsed.data };
    return { ok: false, message: parsed.error.issues.map((issue) => `${issue.path.join('.') || 'form'}: ${issue.message}`).join('; ') };
  },
  question: (host, value) =>
    `Set the desired system of ${host} to ${storePathParts(value.storePath)?.name ?? value.storePath} (${value.action})${value.force ? ', although the host is paused' : ''}? The controller signs a new manifest and the agent moves to it at once.`,
  fields: (value) => ({ storePath: value.storePath, action: value.action, ...(value.force ? { force: 'yes' } : {}) }),
  run: async (deps, host, value, actor) => {
    // The same operation as PUT /v1/hosts/:name/desired.
    const outcome = await issueManifest(deps, { host, storePath: value.storePath, action: value.action, rolloutId: null }, { kind: 'desired-set', actor }, { force: value.force });
    if (outcome.ok) return { ok: true, done: `${host} now has desired manifest #${outcome.manifest.version}.` };
    return { ok: false, status: outcome.reason === 'unknown-host' ? 404 : 409, message: outcome.message };
  },
};

const noFields = {
  parse: () => ({ ok: true as const, value: undefined }),
  fields: () => ({}),
};

function pauseAction(paused: boolean): HostAction<undefined> {
  return {
    ...noFields,
    label: paused ? 'Pause host' : 'Resume host',
    api: (host) => ({ method: 'POST', path: paused ? OperatorRoutes.pause(host) : OperatorRoutes.resume(host) }),
    question: (host) =>
      paused
        ? `Pause ${host}? No rollout issues it a new manifest until it is resumed (it waits in its wave, shown as paused), and setting its desired system needs force. What it runs now is unchanged.`
        : `Resume ${host}? A rollout waiting for it issues it its manifest at once.`,
    run: async (deps, host, _value, actor) => {
      // The same operation as POST /v1/hosts/:name/pause (or /resume).
      const outcome = await setHostPaused(deps, host, paused, actor);
      if (!outcome.ok) return { ok: false, status: outcome.status, message: outcome.message };
      if (!outcome.changed) return { ok: true, done: `${host} was already ${paused ? 'paused' : 'not paused'}.` };
      return { ok: true, done: paused ? `${host} is paused.` : `${host} is resumed.` };
    },
    offered: (host) => host.paused !== paused,
  };
}

const removeHostAction: HostAction<undefined> = {
  ...noFields,
  label: 'Remove host',
  api: (host) => ({ method: 'DELETE', path: OperatorRoutes.host(host) }),
  question: (host) =>
    `Remove ${host}? Its manifests, reports and history are deleted and its agent can no longer log in (its connection is closed). Refused while an active rollout includes it. To bring it back, register it again.`,
  run: async (deps, host, _value, actor) => {
    // The same operation as DELETE /v1/hosts/:name.
    const outcome = await removeHost(deps.store, deps.clock, host, actor);
    if (!outcome.ok) return { ok: false, status: outcome.status, message: outcome.message };
    await deps.sessions.revokeHost(host);
    deps.logger.info({ host, actor }, 'host removed');
    return { ok: true, done: `${host} was removed.`, goTo: BASE };
  },
};

// Each entry has its own value type; the routes handle them through this erased view.
export const HOST_ACTIONS: Record<string, HostAction<unknown>> = {
  'set-desired': setDesired as HostAction<unknown>,
  pause: pauseAction(true) as HostAction<unknown>,
  resume: pauseAction(false) as HostAction<unknown>,
  remove: removeHostAction as HostAction<unknown>,
};

export const ACTION_CHOICES = Action.options;
