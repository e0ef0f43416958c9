import type { CommandFailure } from '../../shared/src/protocol.js';
import type { HealthCheck } from './config.js';
import { runCommand } from './exec.js';
import { httpFetch } from './http-fetch.js';

/**
 * The health gate after a switch: configured checks (commands, HTTP probes), no newly failed
 * systemd units, and the controller still reachable. Checks are retried until the deadline,
 * because services may need a few seconds to come up after an activation.
 */

export type CheckResult = { ok: true } | { ok: false; reason: string; failure: CommandFailure };

export async function runCheck(check: HealthCheck): Promise<CheckResult> {
  if (check.kind === 'command') {
    const result = await runCommand(check.command, { timeoutMs: check.timeoutMs });
    if (result.ok) return { ok: true };
    return { ok: false, reason: `health check ${check.name} failed`, failure: result.failure };
  }
  const command = `GET ${check.url}`;
  try {
    // Redirects are not followed: the check's own URL must answer.
    const response = await httpFetch(new URL(check.url), { method: 'GET', headers: {}, signal: AbortSignal.timeout(check.timeoutMs) });
    const body = (await response.text()).slice(-2048);
    if (response.status === check.expectStatus) return { ok: true };
    return {
      ok: false,
      reason: `health check ${check.name} failed: status ${response.status}, expected ${check.expectStatus}`,
      failure: { command, exitCode: null, signal: null, timedOut: false, outputTail: `HTTP ${response.status}\n${body}` },
    };
  } catch (error) {
    const timedOut = (error as Error).name === 'TimeoutError';
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const message = timedOut ? `no answer within ${check.timeoutMs} ms` : (cause?.code ?? cause?.message ?? (error as Error).message);
    return {
      ok: false,
      reason: `health check ${check.name} failed: ${message}`,
      failure: { command, exitCode: null, signal: null, timedOut, outputTail: message },
    };
  }
}

export interface GateOptions {
  checks: readonly HealthCheck[];
  deadlineMs: number;
  /** Lists failed systemd units now; absent when unit checking is off. */
  failedUnits?: () => Promise<string[] | null>;
  /** Units that had already failed before the switch; only new failures count against it. */
  unitsFailedBefore?: readonly string[];
  /** Resolves true once the controller acknowledged the 'checking' report. */
  controllerReachable: (timeoutMs: number) => Promise<boolean>;
  retryIntervalMs?: number;
}

export type GateResult = { ok: true } | { ok: false; reason: string; failure?: CommandFailure };

async function localChecks(options: GateOptions): Promise<GateResult> {
  for (const check of options.checks) {
    const result = await runCheck(check);
    if (!result.ok) return result;
  }
  if (options.failedUnits) {
    const failed = await options.failedUnits();
    const before = new Set(options.unitsFailedBefore ?? []);
    const fresh = (failed ?? []).filter((unit) => !before.has(unit));
    if (fresh.length > 0) return { ok: false, reason: `systemd units failed: ${fresh.join(', ')}` };
  }
  return { ok: true };
}

export async function runHealthGate(options: GateOptions): Promise<GateResult> {
  const deadline = Date.now() + options.deadlineMs;
  const reachable = options.controllerReachable(options.deadlineMs);

  let last: GateResult = { ok: false, reason: 'health checks did not run' };
  for (;;) {
    last = await localChecks(options);
    if (last.ok) break;
    const left = deadline - Date.now();
    if (left <= 0) {
      return { ...last, reason: `${last.reason} (still failing at the ${options.deadlineMs} ms health deadline)` };
    }
    // The last wait is cut short so that the last check runs at the deadline, not up to an interval before it.
    await new Promise((r) => setTimeout(r, Math.min(options.retryIntervalMs ?? 1_000, left)));
  }
  if (!(await reachable)) {
    return { ok: false, reason: `controller did not acknowledge the checking report within the ${options.deadlineMs} ms health deadline` };
  }
  return { ok: true };
}
