import type { HostEvent, ManifestSummary } from '../../shared/src/operator-api.js';
import { TERMINAL_PHASES } from '../../shared/src/phases.js';
import type { Phase } from '../../shared/src/protocol.js';

/**
 * Where the wall time of one deployment went, from the host's event log: the agent stamps
 * each report when the phase begins (`reportedAt`), the controller stamps when it stored it.
 * All lab processes share one clock, so the differences are meaningful. Null where the agent
 * skipped a phase (e.g. nothing to realise).
 */
export interface DeploymentTimeline {
  version: number;
  outcome: Phase;
  totalMs: number;
  /** Manifest issued → agent accepted it. */
  notifyMs: number | null;
  /** Realising → activating (nix-store --realise from the cache). */
  realiseMs: number | null;
  /** Activating → checking (switch-to-configuration test). */
  switchMs: number | null;
  /** Checking → committing (the health gate). */
  healthMs: number | null;
  /** Committing → final phase (profile --set, switch-to-configuration boot). */
  commitMs: number | null;
  /** The final report: made by the agent → stored by the controller. */
  reportMs: number | null;
}

interface ReportEvent {
  phase: Phase;
  reportedAt: number;
  storedAt: number;
}

function reportsOf(events: readonly HostEvent[], version: number): ReportEvent[] {
  return events
    .filter((e) => e.kind === 'report' && e.data.manifestVersion === version)
    .map((e) => ({ phase: e.data.phase as Phase, reportedAt: Date.parse(String(e.data.reportedAt)), storedAt: Date.parse(e.at) }));
}

/** The timeline of `manifest`'s deployment, or null while it has not reached a terminal phase. */
export function deploymentTimeline(events: readonly HostEvent[], manifest: Pick<ManifestSummary, 'version' | 'issuedAt'>): DeploymentTimeline | null {
  const reports = reportsOf(events, manifest.version);
  const final = reports.find((r) => TERMINAL_PHASES.has(r.phase));
  if (!final) return null;
  const at = (phase: Phase) => reports.find((r) => r.phase === phase)?.reportedAt ?? null;
  const span = (from: number | null, to: number | null) => (from === null || to === null ? null : to - from);
  const issued = Date.parse(manifest.issuedAt);
  return {
    version: manifest.version,
    outcome: final.phase,
    totalMs: final.storedAt - issued,
    notifyMs: span(issued, at('accepted')),
    realiseMs: span(at('realising'), at('activating')),
    switchMs: span(at('activating'), at('checking')),
    healthMs: span(at('checking'), at('committing')),
    commitMs: span(at('committing'), final.reportedAt),
    reportMs: final.storedAt - final.reportedAt,
  };
}

export function formatTimeline(t: DeploymentTimeline): string {
  const ms = (v: number | null) => (v === null ? '-' : `${v} ms`);
  return `${t.outcome} in ${t.totalMs} ms: notify ${ms(t.notifyMs)}, realise ${ms(t.realiseMs)}, switch ${ms(t.switchMs)}, health ${ms(t.healthMs)}, commit ${ms(t.commitMs)}, report ${ms(t.reportMs)}`;
}
